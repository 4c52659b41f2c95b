/* The tensor registry: lookup, shape checks and their messages, dtype conversion. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "weights/tensors.h"

Test(registry, find_and_shape_check)
{
    me_tensors *ts = me_tensors_new("test");
    static const float w[6] = {1, 2, 3, 4, 5, 6};
    cr_assert_eq(me_tensors_add(ts, "blocks.3.attn.qkv.weight", ME_F32, 2, (int64_t[]){3, 2}, w), MOEDIT_OK);
    cr_assert_eq(me_tensors_add(ts, "bias", ME_F32, 1, (int64_t[]){6}, w), MOEDIT_OK);
    cr_assert_eq(me_tensors_count(ts), 2);
    cr_assert_eq(me_tensors_param_count(ts), 12);
    cr_assert_null(me_tensors_find(ts, "nope"));

    const float *p;
    cr_assert_eq(me_tensors_f32(ts, "blocks.3.attn.qkv.weight", 2, (int64_t[]){3, -1}, &p), MOEDIT_OK);
    cr_assert_eq(p[5], 6.0f);
    cr_assert_eq(me_tensors_f32(ts, "blocks.3.attn.qkv.weight", 2, (int64_t[]){2, 3}, &p), MOEDIT_EINPUT);
    cr_assert_str_eq(moedit_last_error(), "blocks.3.attn.qkv.weight: expected [2,3], got [3,2]");
    cr_assert_eq(me_tensors_f32(ts, "missing.weight", 1, (int64_t[]){4}, &p), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "missing.weight"));
    cr_assert_eq(me_tensors_add(ts, "bias", ME_F32, 1, (int64_t[]){6}, w), MOEDIT_EINPUT);
    me_tensors_free(ts);
}

Test(registry, many_names_hash)
{
    me_tensors *ts = me_tensors_new("test");
    static const float one = 1;
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "t.%d", i);
        cr_assert_eq(me_tensors_add(ts, name, ME_F32, 0, NULL, &one), MOEDIT_OK);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "t.%d", i);
        const me_tensor *t = me_tensors_find(ts, name);
        cr_assert_not_null(t);
        cr_assert_str_eq(t->name, name);
    }
    me_tensors_free(ts);
}

Test(registry, half_precision_conversion)
{
    /* 1.0, -2.5, 65504 (f16 max), 2^-24 (smallest subnormal) */
    static const uint16_t f16[4] = {0x3c00, 0xc100, 0x7bff, 0x0001};
    static const uint16_t bf16[2] = {0x3f80, 0xc020};
    me_tensors *ts = me_tensors_new("test");
    me_tensors_add(ts, "h", ME_F16, 1, (int64_t[]){4}, f16);
    me_tensors_add(ts, "b", ME_BF16, 1, (int64_t[]){2}, bf16);
    const float *p;
    cr_assert_eq(me_tensors_f32(ts, "h", 1, (int64_t[]){4}, &p), MOEDIT_OK);
    cr_assert_eq(p[0], 1.0f);
    cr_assert_eq(p[1], -2.5f);
    cr_assert_eq(p[2], 65504.0f);
    cr_assert_eq(p[3], 5.9604644775390625e-8f);
    cr_assert_eq(me_tensors_f32(ts, "b", 1, (int64_t[]){2}, &p), MOEDIT_OK);
    cr_assert_eq(p[0], 1.0f);
    cr_assert_eq(p[1], -2.5f);
    for (int i = 0; i < 4; i++) cr_assert_eq(me_f32_to_f16(me_f16_to_f32(f16[i])), f16[i]);
    cr_assert_eq(me_f32_to_bf16(-2.5f), 0xc020);
    me_tensors_free(ts);
}

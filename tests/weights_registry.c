/* The tensor registry: lookup, shape checks and their messages, dtype conversion, the digest. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
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

/* One sequential pass over the stream the digest is defined on (tensors.h):
   name and its NUL, type and rank bytes, each dimension as 8 little-endian
   bytes, then the data. */
static uLong digest_by_hand(uLong crc, const char *name, me_dtype type, int ndim, const int64_t *shape,
                            const void *data, size_t bytes)
{
    crc = crc32(crc, (const Bytef *)name, (uInt)strlen(name) + 1);
    const uint8_t head[2] = {(uint8_t)type, (uint8_t)ndim};
    crc = crc32(crc, head, 2);
    for (int d = 0; d < ndim; d++) {
        uint8_t le[8];
        for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)shape[d] >> (8 * b));
        crc = crc32(crc, le, 8);
    }
    return crc32(crc, data, (uInt)bytes);
}

/* The weights' identity: the per-tensor CRCs taken on several threads and
   joined equal one sequential pass; one byte, one name or one dimension
   changed changes it. */
Test(registry, digest_is_one_pass_over_names_shapes_and_bytes)
{
    enum { BIG = 3 << 20 };
    float *big = malloc(BIG * sizeof *big);
    cr_assert_not_null(big);
    for (int i = 0; i < BIG; i++) big[i] = (float)(i % 977) * 0.25f;
    static const uint16_t half[6] = {1, 2, 3, 4, 5, 0x3c00};
    static const float one = 1;
    uint32_t crc[4];
    for (int variant = 0; variant < 4; variant++) {
        me_tensors *ts = me_tensors_new("test");
        const int64_t big_shape[2] = {variant == 3 ? 6 : 3, variant == 3 ? BIG / 6 : BIG / 3}, half_shape[2] = {2, 3};
        const char *name = variant == 2 ? "blocks.0.mlp.fc2.weight" : "blocks.0.mlp.fc1.weight";
        big[12345] = variant == 1 ? 2.5f : 0.5f;
        cr_assert_eq(me_tensors_add(ts, name, ME_F32, 2, big_shape, big), MOEDIT_OK);
        cr_assert_eq(me_tensors_add(ts, "scale", ME_F32, 0, NULL, &one), MOEDIT_OK);
        cr_assert_eq(me_tensors_add(ts, "half", ME_BF16, 2, half_shape, half), MOEDIT_OK);
        cr_assert_eq(me_tensors_digest(ts, &crc[variant]), MOEDIT_OK);
        uLong want = crc32(0, NULL, 0);
        want = digest_by_hand(want, name, ME_F32, 2, big_shape, big, sizeof(float) * (size_t)BIG);
        want = digest_by_hand(want, "scale", ME_F32, 0, NULL, &one, sizeof one);
        want = digest_by_hand(want, "half", ME_BF16, 2, half_shape, half, sizeof half);
        cr_assert_eq(crc[variant], (uint32_t)want, "variant %d: %08x, one pass %08lx", variant, crc[variant], want);
        me_tensors_free(ts);
    }
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++) cr_assert_neq(crc[a], crc[b], "variants %d and %d", a, b);
    free(big);
}

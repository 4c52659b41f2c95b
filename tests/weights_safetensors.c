/* safetensors: reading a file written by tools/make_safetensors_fixtures.py
   (tensor bytes from PyTorch), the writer's round trip and its f16/bf16
   rounding against torch's, and hostile headers crafted byte by byte. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "weights/formats.h"
#include "tests/testutil.h"

#define MIXED FIXTURES "/safetensors/mixed.safetensors"

static char tmpdir[64];

static void make_tmpdir(void) { tu_tmpdir(tmpdir, sizeof tmpdir, "st"); }
static void remove_tmpdir(void) { tu_rmtree(tmpdir); }
static int count_files(void) { return tu_count_files(tmpdir); }

TestSuite(safetensors, .init = make_tmpdir, .fini = remove_tmpdir);

static const me_tensor *get(const me_tensors *ts, const char *name, me_dtype dtype, int ndim)
{
    const me_tensor *t = me_tensors_find(ts, name);
    cr_assert_not_null(t, "missing %s", name);
    cr_assert_eq(t->dtype, dtype, "%s: dtype %s", name, me_dtype_name(t->dtype));
    cr_assert_eq(t->ndim, ndim, "%s: ndim %d", name, t->ndim);
    return t;
}

static void check_mixed_values(me_tensors *ts, int floats_as_f32)
{
    const float *f;
    cr_assert_eq(me_tensors_f32(ts, "a", 2, (int64_t[]){2, 3}, &f), MOEDIT_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(f[i], 0.5f * i - 1);
    cr_assert_eq(me_tensors_f32(ts, "h", 1, (int64_t[]){5}, &f), MOEDIT_OK);
    cr_assert_eq(f[0], 1.0f);
    cr_assert_eq(f[1], -2.5f);
    cr_assert_eq(f[2], 65504.0f);
    cr_assert_eq(f[3], 5.9604644775390625e-8f);
    cr_assert_eq(f[4], 0.0999755859375f);            /* torch.tensor(0.1).half() */
    cr_assert_eq(me_tensors_f32(ts, "b", 2, (int64_t[]){2, 2}, &f), MOEDIT_OK);
    cr_assert_eq(f[2], 3.140625f);
    cr_assert_eq(f[3], 0.10009765625f);              /* torch.tensor(0.1).bfloat16() */
    cr_assert_eq(me_tensors_f32(ts, "d", 1, (int64_t[]){3}, &f), MOEDIT_OK);
    cr_assert_eq(f[0], 1e-3f);
    cr_assert_eq(f[2], -7.0f);
    cr_assert_eq(me_tensors_f32(ts, "scalar", 0, NULL, &f), MOEDIT_OK);
    cr_assert_eq(f[0], 3.5f);

    const me_tensor *t = get(ts, "l", ME_I64, 1);
    int64_t l[4];
    memcpy(l, t->data, sizeof l);
    cr_assert(l[0] == -1 && l[1] == 0 && l[2] == ((int64_t)1 << 40) && l[3] == 7);
    t = get(ts, "i", ME_I32, 1);
    int32_t i32[2];
    memcpy(i32, t->data, sizeof i32);
    cr_assert(i32[0] == -5 && i32[1] == 6);
    t = get(ts, "s16", ME_I16, 1);
    int16_t i16[2];
    memcpy(i16, t->data, sizeof i16);
    cr_assert(i16[0] == -300 && i16[1] == 300);
    t = get(ts, "s8", ME_I8, 1);
    cr_assert(((const int8_t *)t->data)[0] == -128 && ((const int8_t *)t->data)[1] == 127);
    t = get(ts, "u8", ME_U8, 1);
    cr_assert(!memcmp(t->data, "\x00\x80\xff", 3));
    t = get(ts, "flag", ME_BOOL, 1);
    cr_assert(((const uint8_t *)t->data)[0] == 1 && ((const uint8_t *)t->data)[1] == 0);
    t = get(ts, "empty", ME_F32, 2);
    cr_assert(t->numel == 0 && t->shape[0] == 0 && t->shape[1] == 3);
    if (floats_as_f32) get(ts, "h", ME_F32, 1);

    cr_assert_str_eq(me_tensors_meta(ts, "format"), "pt");
    cr_assert_str_eq(me_tensors_meta(ts, "note"), "ünïcode ✓");
    cr_assert_str_eq(me_tensors_meta(ts, "multi"), "line1\nline2");
}

Test(safetensors, reads_torch_written_file)
{
    me_tensors *ts;
    cr_assert_eq(me_tensors_open(MIXED, &ts), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_tensors_count(ts), 15);
    cr_assert_eq(me_tensors_meta_count(ts), 3);
    /* insertion order is the header's order */
    cr_assert_str_eq(me_tensors_at(ts, 0)->name, "u8");
    cr_assert_str_eq(me_tensors_at(ts, 14)->name, "sin_bf16");
    get(ts, "h", ME_F16, 1);
    get(ts, "b", ME_BF16, 2);
    get(ts, "d", ME_F64, 1);
    check_mixed_values(ts, 0);
    me_tensors_free(ts);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static uint64_t header_len(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t b[8];
    cr_assert_eq(fread(b, 1, 8, f), 8u);
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    return n;
}

Test(safetensors, write_f32_round_trip)
{
    me_tensors *ts, *back;
    char out[128];
    snprintf(out, sizeof out, "%s/out.safetensors", tmpdir);
    cr_assert_eq(me_read_safetensors(MIXED, &ts), MOEDIT_OK);
    cr_assert_eq(me_write_safetensors(ts, out, ME_F32), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(count_files(), 1, "temporary file left behind");
    cr_assert_eq(me_read_safetensors(out, &back), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_tensors_count(back), 15);
    check_mixed_values(back, 1);

    /* Padded header, no holes, every tensor aligned to its element size. */
    uint64_t h = header_len(out);
    cr_assert_eq(h % 8, 0u);
    uint64_t total = 0;
    for (int i = 0; i < me_tensors_count(back); i++) {
        const me_tensor *t = me_tensors_at(back, i);
        size_t es = me_dtype_size(t->dtype);
        total += (uint64_t)t->numel * es;
        cr_assert_eq((uintptr_t)t->data % es, 0u, "%s misaligned", t->name);
    }
    cr_assert_eq((uint64_t)file_size(out), 8 + h + total);
    me_tensors_free(back);
    me_tensors_free(ts);
}

/* The writer's rounding must be torch's: sin_f16/sin_bf16 are torch's own
   .half()/.bfloat16() of the f32 tensor "sin". */
static void check_rounding(me_dtype dtype, const char *torch_name)
{
    me_tensors *ts, *back;
    char out[128];
    snprintf(out, sizeof out, "%s/half.safetensors", tmpdir);
    cr_assert_eq(me_read_safetensors(MIXED, &ts), MOEDIT_OK);
    cr_assert_eq(me_write_safetensors(ts, out, dtype), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_read_safetensors(out, &back), MOEDIT_OK, "%s", moedit_last_error());
    const me_tensor *mine = get(back, "sin", dtype, 1), *ref = get(ts, torch_name, dtype, 1);
    cr_assert_eq(mine->numel, 100);
    cr_assert(!memcmp(mine->data, ref->data, 200), "%s differs from torch's rounding", me_dtype_name(dtype));
    get(back, "d", dtype, 1);      /* f64 is a float type too */
    get(back, "l", ME_I64, 1);     /* integers keep their type */
    get(back, "flag", ME_BOOL, 1);
    me_tensors_free(back);
    me_tensors_free(ts);
}

Test(safetensors, write_f16_matches_torch) { check_rounding(ME_F16, "sin_f16"); }
Test(safetensors, write_bf16_matches_torch) { check_rounding(ME_BF16, "sin_bf16"); }

Test(safetensors, write_failures_leave_nothing)
{
    me_tensors *ts = me_tensors_new("mem");
    static const float w[2] = {1, 2};
    me_tensors_add(ts, "w", ME_F32, 1, (int64_t[]){2}, w);
    char out[128];
    snprintf(out, sizeof out, "%s/no/such/dir/x.safetensors", tmpdir);
    cr_assert_eq(me_write_safetensors(ts, out, ME_F32), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), out));
    snprintf(out, sizeof out, "%s/x.safetensors", tmpdir);
    cr_assert_eq(me_write_safetensors(ts, out, ME_I64), MOEDIT_EINPUT);
    cr_assert_eq(count_files(), 0);

    /* names and metadata the reader would refuse are refused up front */
    static const char *bad_names[] = {"a\nb", "__metadata__", "\xff", ""};
    for (int i = 0; i < 4; i++) {
        me_tensors *b = me_tensors_new("mem");
        me_tensors_add(b, bad_names[i], ME_F32, 1, (int64_t[]){2}, w);
        cr_assert_eq(me_write_safetensors(b, out, ME_F32), MOEDIT_EINPUT, "name #%d accepted", i);
        me_tensors_free(b);
    }
    me_tensors_set_meta(ts, "bad", "\xc3");
    cr_assert_eq(me_write_safetensors(ts, out, ME_F32), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "UTF-8"));
    cr_assert_eq(count_files(), 0);
    me_tensors_set_meta(ts, "bad", "tab\tctrl\x01 ok");   /* control bytes are escaped */
    cr_assert_eq(me_write_safetensors(ts, out, ME_F32), MOEDIT_OK, "%s", moedit_last_error());
    me_tensors *ctrl;
    cr_assert_eq(me_read_safetensors(out, &ctrl), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_str_eq(me_tensors_meta(ctrl, "bad"), "tab\tctrl\x01 ok");
    me_tensors_free(ctrl);
    unlink(out);

    /* a finite weight beyond the output type's range is refused, naming it */
    static const float big[3] = {1, 70000, 2};
    static const double huge[2] = {1, 1e39};
    me_tensors *wide = me_tensors_new("mem");
    me_tensors_add(wide, "blocks.0.w", ME_F32, 1, (int64_t[]){3}, big);
    cr_assert_eq(me_write_safetensors(wide, out, ME_F16), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "tensor blocks.0.w: element 1 (70000) does not fit in F16"), "%s",
                       moedit_last_error());
    cr_assert_eq(count_files(), 0);
    cr_assert_eq(me_write_safetensors(wide, out, ME_BF16), MOEDIT_OK, "%s", moedit_last_error());
    unlink(out);
    me_tensors_add(wide, "d", ME_F64, 1, (int64_t[]){2}, huge);
    cr_assert_eq(me_write_safetensors(wide, out, ME_F32), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "tensor d: element 1 (1e+39) does not fit in F32"), "%s",
                       moedit_last_error());
    cr_assert_eq(count_files(), 0);
    me_tensors_free(wide);

    /* an empty registry is a valid (empty) file */
    me_tensors *empty = me_tensors_new("mem"), *back;
    cr_assert_eq(me_write_safetensors(empty, out, ME_F16), MOEDIT_OK);
    cr_assert_eq(me_read_safetensors(out, &back), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_tensors_count(back), 0);
    me_tensors_free(back);
    me_tensors_free(empty);
    me_tensors_free(ts);
}

/* ---- hostile input ----------------------------------------------------- */

/* Writes 8-byte length + header + body to a file and expects rejection with
   a message that names the file and contains want. */
static void expect_bad_raw(const void *bytes, size_t n, const char *want)
{
    char path[128];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    me_tensors *ts = (me_tensors *)1;
    cr_assert_eq(me_read_safetensors(path, &ts), MOEDIT_EINPUT, "accepted (want '%s')", want);
    cr_assert_null(ts);
    const char *msg = moedit_last_error();
    cr_assert_eq(strncmp(msg, path, strlen(path)), 0, "message does not start with the file: %s", msg);
    cr_assert_not_null(strstr(msg, want), "message '%s' lacks '%s'", msg, want);
    cr_assert_null(strchr(msg, '\n'), "multi-line message: %s", msg);
}

static void expect_bad(const char *header, size_t body, const char *want)
{
    size_t n;
    uint8_t *buf = tu_safetensors(header, body, &n);
    expect_bad_raw(buf, n, want);
    free(buf);
}

Test(safetensors, truncated)
{
    expect_bad_raw("", 0, "truncated");
    expect_bad_raw("\x10\0\0", 3, "truncated");
    expect_bad_raw("\x10\0\0\0\0\0\0\0{}", 10, "past the end");
}

Test(safetensors, header_length_huge)
{
    expect_bad_raw("\0\0\0\0\0\0\0\x80{}", 10, "past the end");            /* 2^63 */
    expect_bad_raw("\xff\xff\xff\xff\xff\xff\xff\xff{}", 10, "past the end");
}

Test(safetensors, bad_json)
{
    expect_bad("{\"a\":{\"dtype\":\"F32\",", 0, "invalid JSON");
    expect_bad("{\"a\" 1}", 0, "invalid JSON");
    expect_bad("[1,2]   ", 0, "not a JSON object");
    expect_bad("{}  x   ", 0, "trailing");
    expect_bad("{\"a\":1}", 0, "not an object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":"
               "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate");
}

Test(safetensors, invalid_utf8)
{
    expect_bad("{\"w\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");
    expect_bad("{\"\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");  /* overlong */
    expect_bad("{\"\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");  /* surrogate */
    /* an escaped control character would split the one-line error message */
    expect_bad("{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"sh\x01pe\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");
}

Test(safetensors, unknown_dtype)
{
    expect_bad("{\"w\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'F17'");
    expect_bad("{\"w\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not supported");
}

Test(safetensors, bad_shapes)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,4]}}", 4, "non-negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "non-negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
               "too large");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
               "dimensions");
}

Test(safetensors, bad_offsets)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside the data section");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "outside the data section");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "need 8");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "two non-negative");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}", 4,
               "two non-negative");
}

Test(safetensors, bad_metadata)
{
    expect_bad("{\"__metadata__\":{\"heads\":6}}", 0, "not a string");
    expect_bad("{\"__metadata__\":[]}", 0, "not an object");
}

Test(safetensors, overlap_allowed_in_memory)
{
    /* Two views of the same 8 bytes, parsed from memory. */
    static const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    uint8_t buf[8 + sizeof hdr - 1 + 8];
    uint64_t h = sizeof hdr - 1;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(h >> (8 * i));
    memcpy(buf + 8, hdr, h);
    const float v[2] = {1.5f, -2.0f};
    memcpy(buf + 8 + h, v, 8);
    me_tensors *ts = me_tensors_new("mem");
    cr_assert_eq(me_parse_safetensors(ts, buf, sizeof buf, "mem"), MOEDIT_OK, "%s", moedit_last_error());
    const float *a;
    cr_assert_eq(me_tensors_f32(ts, "a", 1, (int64_t[]){2}, &a), MOEDIT_OK);
    cr_assert_eq(a[1], -2.0f);
    cr_assert_eq(me_tensors_find(ts, "b")->data, (const void *)(buf + 8 + h + 4));
    me_tensors_free(ts);
}

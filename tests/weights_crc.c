/* Integrity of what the readers hand out: every ZIP entry read from a torch
   checkpoint or an npz is checked against its CRC-32 (flipped bytes in
   tensor data, in the pickle or in an npz member are refused naming the
   entry; moedit_set_verify(0) skips the check), including entries long
   enough to be checked in several chunks joined with crc32_combine; and
   NaN/inf weights are refused naming the tensor whatever their dtype. */
#include <criterion/criterion.h>
#include <string.h>
#include "tests/testutil.h"
#include "weights/formats.h"
#include "weights/npy.h"
#include "weights/zip.h"

static char tmp[64];
static void setup(void) { tu_tmpdir(tmp, sizeof tmp, "crc"); }
static void teardown(void)
{
    moedit_set_verify(1);
    cr_assert_eq(tu_rmtree(tmp), 0);
}
TestSuite(crc, .init = setup, .fini = teardown);

/* A copy of src in tmp/name with byte `at` of entry `entry`'s data flipped. */
static const char *corrupt_copy(const char *src, const char *entry_suffix, size_t at, const char *name)
{
    size_t n;
    uint8_t *buf = (uint8_t *)tu_slurp(src, &n);
    cr_assert_not_null(buf, "%s", src);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, src), MOEDIT_OK, "%s", moedit_last_error());
    const me_zip_entry *e = me_zip_find_suffix(&z, entry_suffix);
    cr_assert_not_null(e, "%s has no entry %s", src, entry_suffix);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, e, &p, &size), MOEDIT_OK);
    cr_assert_lt(at, size);
    buf[(p - buf) + at] ^= 0x10;
    me_zip_close(&z);
    const char *path = tu_join(tmp, name);
    tu_write_file(path, buf, n);
    free(buf);
    return path;
}

Test(crc, flipped_tensor_byte_names_the_entry)
{
    const char *path = corrupt_copy(FIXTURES "/dit/moe_top1.pt", "data/3", 5, "bad.pt");
    me_tensors *ts;
    cr_assert_eq(me_read_torch(path, &ts), MOEDIT_EINPUT);
    const char *msg = moedit_last_error();
    cr_assert(strstr(msg, "bad.pt") && strstr(msg, "/data/3") && strstr(msg, "CRC-32 mismatch"), "%s", msg);
    /* the unverified load reads the same file without a word */
    moedit_set_verify(0);
    cr_assert_eq(me_read_torch(path, &ts), MOEDIT_OK, "%s", moedit_last_error());
    me_tensors_free(ts);
}

Test(crc, flipped_pickle_byte_is_caught_before_unpickling)
{
    const char *path = corrupt_copy(FIXTURES "/dit/moe_top1.pt", "data.pkl", 40, "badpkl.pt");
    me_tensors *ts;
    cr_assert_eq(me_read_torch(path, &ts), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "data.pkl: CRC-32 mismatch"), "%s", moedit_last_error());
}

Test(crc, npz_member)
{
    const char *path = corrupt_copy(FIXTURES "/weights/samples.npz", "arr_0.npy", 130, "bad.npz");
    me_npz z;
    me_array a;
    cr_assert_eq(me_npz_open(path, &z), MOEDIT_OK);
    cr_assert_eq(me_npz_get(&z, "arr_0", &a), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "arr_0.npy: CRC-32 mismatch"), "%s", moedit_last_error());
    me_npz_close(&z);
}

/* 40 MB: three chunks of the parallel check, joined by crc32_combine. */
Test(crc, multi_chunk_entry)
{
    const size_t n = 40u << 20;
    uint8_t *data = malloc(n);
    cr_assert_not_null(data);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 2654435761u >> 13);
    const char *path = tu_join(tmp, "big.zip");
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_add(&w, "big", data, n), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_add(&w, "empty", data, 0), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK);
    size_t len;
    uint8_t *file = (uint8_t *)tu_slurp(path, &len);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, file, len, "big.zip"), MOEDIT_OK);
    const me_zip_entry *list[2] = {me_zip_find(&z, "big"), me_zip_find(&z, "empty")};
    cr_assert_eq(me_zip_verify(&z, list, 2), MOEDIT_OK, "%s", moedit_last_error());
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, list[0], &p, &size), MOEDIT_OK);
    file[(p - file) + (33u << 20) + 5] ^= 1;   /* inside the third chunk */
    cr_assert_eq(me_zip_verify(&z, list, 2), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "entry big: CRC-32 mismatch"), "%s", moedit_last_error());
    me_zip_close(&z);
    free(file);
    free(data);
}

static void expect_refused(me_dtype dtype, const void *data, int64_t n, const char *what, const char *index)
{
    me_tensors *ts = me_tensors_new("w.safetensors");
    cr_assert_eq(me_tensors_add(ts, "blocks.0.attn.qkv.weight", dtype, 1, &n, data), MOEDIT_OK);
    const float *f;
    cr_assert_eq(me_tensors_f32(ts, "blocks.0.attn.qkv.weight", 1, &n, &f), MOEDIT_EINPUT);
    const char *msg = moedit_last_error();
    cr_assert(strstr(msg, "w.safetensors: tensor blocks.0.attn.qkv.weight holds") && strstr(msg, what) &&
                  strstr(msg, index), "%s", msg);
    me_tensors_free(ts);
}

Test(crc, non_finite_weights_named)
{
    float f32[5] = {1, 2, 3, NAN, 5};
    expect_refused(ME_F32, f32, 5, "nan", "index 3");
    float inf32[3] = {0, -INFINITY, 1};
    expect_refused(ME_F32, inf32, 3, "-inf", "index 1");
    uint16_t f16[4] = {0x3c00, 0x3c00, 0x3c00, 0x7c00};   /* 1, 1, 1, +inf */
    expect_refused(ME_F16, f16, 4, "inf", "index 3");
    uint16_t bf16[2] = {0x7fc0, 0x3f80};                   /* nan, 1 */
    expect_refused(ME_BF16, bf16, 2, "nan", "index 0");
    double f64[2] = {1e300, INFINITY};
    expect_refused(ME_F64, f64, 2, "inf", "index 1");
    /* finite extremes pass, integers are never checked */
    float big[2] = {3.4e38f, -1e-45f};
    int64_t two = 2;
    me_tensors *ts = me_tensors_new("ok");
    cr_assert_eq(me_tensors_add(ts, "w", ME_F32, 1, &two, big), MOEDIT_OK);
    const float *f;
    cr_assert_eq(me_tensors_f32(ts, "w", 1, &two, &f), MOEDIT_OK, "%s", moedit_last_error());
    me_tensors_free(ts);
}

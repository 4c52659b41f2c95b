/* .npy / .npz: files written by numpy (tools/make_weights_fixtures.py) read
   with their values, our writers matching numpy's bytes and read back
   (ZIP64 included), and bad headers / truncated data failing cleanly. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "weights/npy.h"
#include "tests/testutil.h"

#define W FIXTURES "/weights/"

static void read_ok(const char *path, me_array *a, me_dtype dtype, int ndim, const int64_t *shape)
{
    cr_assert_eq(me_npy_read(path, a), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(a->dtype, dtype, "%s: dtype %d", path, a->dtype);
    cr_assert_eq(a->ndim, ndim, "%s: ndim %d", path, a->ndim);
    for (int i = 0; i < ndim; i++) cr_expect_eq(a->shape[i], shape[i], "%s: dim %d", path, i);
}

static void expect_f32(const me_array *a, const float *want, int n)
{
    cr_assert_eq(a->numel, n);
    float got[64];
    me_array_to_f32(a, got);
    for (int i = 0; i < n; i++) cr_expect_eq(got[i], want[i], "[%d] = %g, want %g", i, got[i], want[i]);
}

Test(npy, numpy_files)
{
    me_array a;
    read_ok(W "f4.npy", &a, ME_F32, 2, (int64_t[]){2, 3});
    expect_f32(&a, (float[]){0, 0.5f, 1, 1.5f, 2, 2.5f}, 6);
    cr_expect_eq((uintptr_t)a.data % 4, 0);
    me_array_free(&a);
    read_ok(W "f8.npy", &a, ME_F64, 1, (int64_t[]){3});
    double d[3];
    memcpy(d, a.data, sizeof d);
    cr_expect_eq(d[0], 1.5);
    cr_expect_eq(d[1], -2.25);
    cr_expect_eq(d[2], 1e100);
    me_array_free(&a);
    read_ok(W "i8.npy", &a, ME_I64, 1, (int64_t[]){4});
    int64_t l[4];
    me_array_to_i64(&a, l);
    cr_expect_eq(l[0], -1);
    cr_expect_eq(l[2], 360);
    cr_expect_eq(l[3], (int64_t)1 << 40);
    me_array_free(&a);
    read_ok(W "i4.npy", &a, ME_I32, 2, (int64_t[]){2, 2});
    me_array_to_i64(&a, l);
    cr_expect_eq(l[1], -2);
    cr_expect_eq(l[3], 4);
    me_array_free(&a);
    read_ok(W "u1.npy", &a, ME_U8, 3, (int64_t[]){2, 2, 3});
    for (int i = 0; i < 12; i++) cr_expect_eq(((const uint8_t *)a.data)[i], i);
    me_array_free(&a);
    read_ok(W "f2.npy", &a, ME_F16, 1, (int64_t[]){3});
    expect_f32(&a, (float[]){1, -2.5f, 65504}, 3);
    me_array_free(&a);
    read_ok(W "scalar.npy", &a, ME_F32, 0, NULL);
    expect_f32(&a, (float[]){2.5f}, 1);
    me_array_free(&a);
    read_ok(W "v2.npy", &a, ME_F32, 1, (int64_t[]){4});   /* format 2.0 header */
    expect_f32(&a, (float[]){0, 1, 2, 3}, 4);
    me_array_free(&a);
}

static void read_bad(const char *path, const char *needle)
{
    me_array a;
    cr_assert_eq(me_npy_read(path, &a), MOEDIT_EINPUT, "read %s", path);
    cr_expect_null(a.data);
    const char *msg = moedit_last_error();
    cr_expect_not_null(strstr(msg, path), "%s", msg);
    cr_expect_not_null(strstr(msg, needle), "message lacks '%s': %s", needle, msg);
}

Test(npy, refused_numpy_files)
{
    read_bad(W "fortran.npy", "Fortran");
    read_bad(W "bigendian.npy", "byte order");
    read_bad(W "plain.pt", "not an .npy file");
    read_bad(W "no-such.npy", "No such file");
}

/* A v1.0 .npy with the given header dict and data bytes. */
static size_t make_npy(uint8_t *buf, const char *dict, size_t data_bytes)
{
    size_t hl = strlen(dict);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)hl;
    buf[9] = (uint8_t)(hl >> 8);
    memcpy(buf + 10, dict, hl);
    memset(buf + 10 + hl, 0, data_bytes);
    return 10 + hl + data_bytes;
}

static void parse_bad(const char *dict, size_t data, const char *needle)
{
    static uint8_t buf[4096];
    size_t n = make_npy(buf, dict, data);
    me_array a;
    cr_assert_eq(me_npy_parse(buf, n, "x.npy", &a), MOEDIT_EINPUT, "parsed %s", dict);
    const char *msg = moedit_last_error();
    cr_expect_eq(strncmp(msg, "x.npy: ", 7), 0, "%s", msg);
    cr_expect_not_null(strstr(msg, needle), "message lacks '%s': %s", needle, msg);
}

Test(npy, header_parsing)
{
    static uint8_t buf[4096];
    me_array a;
    /* key order, double quotes, no trailing comma, extra blanks, Python 2 longs */
    size_t n = make_npy(buf, "{ \"shape\" : ( 2 ,3L ) , 'fortran_order':False,'descr':'|u1'}\n", 6);
    cr_assert_eq(me_npy_parse(buf, n, "x.npy", &a), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(a.ndim, 2);
    cr_expect_eq(a.shape[1], 3);
    cr_expect_eq(a.numel, 6);
    n = make_npy(buf, "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 5), }", 0);
    cr_assert_eq(me_npy_parse(buf, n, "x.npy", &a), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(a.numel, 0);

    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23, "truncated .npy data");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 0, "overflows");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0, "shape");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3,4,5,6,7,8,9), }", 0, "shape");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12, "shape");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", 12, "shape");
    parse_bad("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8, "unsupported npy dtype '<c8'");
    parse_bad("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 8, "structured");
    parse_bad("{'descr': '<f4', 'fortran_order': False, }", 8, "lacks");
    parse_bad("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", 8, "fortran_order");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 8, "unexpected key");
    parse_bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 8, "malformed");
    parse_bad("{'descr': '<f4", 8, "malformed");
    parse_bad("[]", 8, "not a dict");
    memcpy(buf, "\x93NUMPY\x01\x00\xff\x00{", 11);
    cr_expect_eq(me_npy_parse(buf, 11, "x.npy", &a), MOEDIT_EINPUT);   /* header length past the end */
    cr_expect_not_null(strstr(moedit_last_error(), "truncated .npy header"));
    memcpy(buf, "\x93NUMPY\x09\x00\x10\x00", 10);
    cr_expect_eq(me_npy_parse(buf, 10, "x.npy", &a), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "version 9.0"));
}

Test(npy, header_bytes_match_numpy)
{
    FILE *f = fopen(W "f4.npy", "rb");
    cr_assert_not_null(f);
    char want[128], got[640];
    cr_assert_eq(fread(want, 1, sizeof want, f), sizeof want);
    fclose(f);
    cr_assert_eq(me_npy_header(ME_F32, 2, (int64_t[]){2, 3}, got, sizeof got), 128);
    cr_expect_eq(memcmp(got, want, 128), 0, "got %.118s", got + 10);
    f = fopen(W "i8.npy", "rb");
    cr_assert_eq(fread(want, 1, sizeof want, f), sizeof want);
    fclose(f);
    cr_assert_eq(me_npy_header(ME_I64, 1, (int64_t[]){4}, got, sizeof got), 128);
    cr_expect_eq(memcmp(got, want, 128), 0, "got %.118s", got + 10);
    f = fopen(W "u1.npy", "rb");
    cr_assert_eq(fread(want, 1, sizeof want, f), sizeof want);
    fclose(f);
    cr_assert_eq(me_npy_header(ME_U8, 3, (int64_t[]){2, 2, 3}, got, sizeof got), 128);
    cr_expect_eq(memcmp(got, want, 128), 0, "got %.118s", got + 10);
    cr_expect_eq(me_npy_header(ME_BF16, 1, (int64_t[]){4}, got, sizeof got), 0);   /* numpy has no bf16 */
}

Test(npy, numpy_npz)
{
    me_npz z;
    cr_assert_eq(me_npz_open(W "samples.npz", &z), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_count(&z), 2);
    cr_expect_str_eq(me_npz_name(&z, 0), "arr_0.npy");
    me_array imgs, labels;
    cr_assert_eq(me_npz_get(&z, "arr_0", &imgs), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(imgs.dtype, ME_U8);
    cr_assert_eq(imgs.ndim, 4);
    cr_expect_eq(imgs.shape[0], 2);
    cr_expect_eq(imgs.shape[3], 3);
    for (int i = 0; i < 96; i++) cr_expect_eq(((const uint8_t *)imgs.data)[i], i);
    cr_assert_eq(me_npz_get(&z, "arr_1.npy", &labels), MOEDIT_OK);
    int64_t l[2];
    me_array_to_i64(&labels, l);
    cr_expect_eq(l[0], 207);
    cr_expect_eq(l[1], 360);
    me_array_free(&labels);
    cr_expect_eq(me_npz_get(&z, "arr_2", &labels), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "no array 'arr_2'"));
    me_array_free(&imgs);
    me_npz_close(&z);

    cr_assert_eq(me_npz_open(W "stats.npz", &z), MOEDIT_OK);
    me_array mu, sigma;
    cr_assert_eq(me_npz_get(&z, "mu", &mu), MOEDIT_OK);
    cr_assert_eq(me_npz_get(&z, "sigma", &sigma), MOEDIT_OK);
    cr_expect_eq(mu.dtype, ME_F64);
    cr_expect_eq(sigma.shape[1], 3);
    expect_f32(&mu, (float[]){0, 1, 2}, 3);
    expect_f32(&sigma, (float[]){2, 0, 0, 0, 2, 0, 0, 0, 2}, 9);
    cr_expect_eq((uintptr_t)sigma.data % 8, 0);
    me_array_free(&mu);
    me_array_free(&sigma);
    me_npz_close(&z);

    cr_assert_eq(me_npz_open(W "compressed.npz", &z), MOEDIT_OK);
    cr_assert_eq(me_npz_get(&z, "arr_0", &imgs), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(imgs.numel, 96);
    for (int i = 0; i < 96; i++) cr_expect_eq(((const uint8_t *)imgs.data)[i], i);
    cr_expect_not_null(imgs.owned);
    me_array_free(&imgs);
    me_npz_close(&z);

    cr_expect_eq(me_npz_open(W "f4.npy", &z), MOEDIT_EINPUT);
}

static char tmpdir[64];
static void make_tmp(void) { tu_tmpdir(tmpdir, sizeof tmpdir, "npy"); }
static void remove_tmp(void) { cr_expect_eq(tu_rmtree(tmpdir), 0); }
TestSuite(npy_write, .init = make_tmp, .fini = remove_tmp);

Test(npy_write, npy_roundtrip)
{
    char path[128];
    snprintf(path, sizeof path, "%s/x.npy", tmpdir);
    float x[6] = {1, -2, 3.5f, 4, 5, 6e-8f};
    cr_assert_eq(me_npy_write(path, ME_F32, 2, (int64_t[]){3, 2}, x), MOEDIT_OK, "%s", moedit_last_error());
    me_array a;
    read_ok(path, &a, ME_F32, 2, (int64_t[]){3, 2});
    expect_f32(&a, x, 6);
    me_array_free(&a);
    int64_t y[3] = {-5, 0, 1000};
    cr_assert_eq(me_npy_write(path, ME_I64, 1, (int64_t[]){3}, y), MOEDIT_OK);
    read_ok(path, &a, ME_I64, 1, (int64_t[]){3});
    cr_expect_eq(memcmp(a.data, y, sizeof y), 0);
    me_array_free(&a);
    cr_expect_eq(me_npy_write(path, ME_BF16, 1, (int64_t[]){3}, y), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), path));
    snprintf(path, sizeof path, "%s/missing/x.npy", tmpdir);
    cr_expect_eq(me_npy_write(path, ME_F32, 1, (int64_t[]){1}, x), MOEDIT_EINPUT);
}

/* The fid-sample pattern: images streamed in batches, then labels. */
static void npz_stream(int force64)
{
    char path[128];
    snprintf(path, sizeof path, "%s/s%d.npz", tmpdir, force64);
    enum { N = 5, H = 6 };
    static uint8_t img[N][H][H][3];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < H * H * 3; j++) ((uint8_t *)img[i])[j] = (uint8_t)(i * 31 + j);
    int64_t labels[N] = {0, 9, 3, 207, 999};
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    w.force_zip64 = force64;
    cr_assert_eq(me_npz_begin(&w, "arr_0", ME_U8, 4, (int64_t[]){N, H, H, 3}), MOEDIT_OK, "%s", moedit_last_error());
    for (int i = 0; i < N; i += 2)
        cr_assert_eq(me_zip_writer_write(&w, img[i], sizeof img[0] * (size_t)(i + 2 <= N ? 2 : 1)), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_end(&w), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_1", ME_I64, 1, (int64_t[]){N}, labels), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());

    me_npz z;
    cr_assert_eq(me_npz_open(path, &z), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_str_eq(me_npz_name(&z, 1), "arr_1.npy");
    me_array a;
    cr_assert_eq(me_npz_get(&z, "arr_0", &a), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(a.ndim, 4);
    cr_expect_eq(a.shape[0], N);
    cr_expect_eq(memcmp(a.data, img, sizeof img), 0);
    cr_expect_null(a.owned, "stored members are views");
    cr_assert_eq(me_npz_get(&z, "arr_1", &a), MOEDIT_OK);
    cr_expect_eq(memcmp(a.data, labels, sizeof labels), 0);
    cr_expect_eq((uintptr_t)a.data % 8, 0);
    me_npz_close(&z);
}

Test(npy_write, npz_streaming) { npz_stream(0); }
Test(npy_write, npz_streaming_zip64) { npz_stream(1); }

Test(npy, npz_member_damage)
{
    FILE *f = fopen(W "samples.npz", "rb");
    static uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    me_npz z;
    me_array a;
    /* shrink arr_0's header length so its shape promises more than is stored */
    cr_assert_eq(me_npz_open_memory(buf, n, "s.npz", &z), MOEDIT_OK);
    const me_zip_entry *e = me_zip_find(&z.zip, "arr_0.npy");
    const uint8_t *member;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z.zip, e, &member, &size), MOEDIT_OK);
    uint8_t *npy = buf + (member - buf);
    cr_assert_eq(memcmp(npy, "\x93NUMPY", 6), 0);
    uint8_t *shape = (uint8_t *)strstr((char *)npy + 10, "(2, 4");
    cr_assert_not_null(shape);
    shape[1] = '9';
    cr_expect_eq(me_npz_get(&z, "arr_0", &a), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "s.npz: entry arr_0.npy: CRC-32 mismatch"), "%s", moedit_last_error());
    /* past the checksum (--no-verify), the parser still refuses the promise */
    moedit_set_verify(0);
    cr_expect_eq(me_npz_get(&z, "arr_0", &a), MOEDIT_EINPUT);
    moedit_set_verify(1);
    cr_expect_not_null(strstr(moedit_last_error(), "s.npz:arr_0.npy: truncated .npy data"), "%s", moedit_last_error());
    me_npz_close(&z);
}

/* The ZIP reader on archives written by torch.save and Python's zipfile
   (ZIP64 forced), the writer's output read back (plain and ZIP64, 64-byte
   aligned data, CRCs), and damaged archives failing cleanly. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "weights/zip.h"
#include "tests/testutil.h"

#define W FIXTURES "/weights/"

static uint8_t *slurp(const char *path, size_t *n)
{
    uint8_t *buf = (uint8_t *)tu_slurp(path, n);
    cr_assert_not_null(buf, "%s", path);
    return buf;
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }

static void expect_fail(const uint8_t *buf, size_t n, const char *needle)
{
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, "bad.zip"), MOEDIT_EINPUT, "opened; wanted '%s'", needle);
    const char *msg = moedit_last_error();
    cr_expect_eq(strncmp(msg, "bad.zip: ", 9), 0, "%s", msg);
    cr_expect_not_null(strstr(msg, needle), "message lacks '%s': %s", needle, msg);
}

/* the data of the entry named by suffix, or a failure with its message */
static int entry(const uint8_t *buf, size_t n, const char *suffix, const uint8_t **data, uint64_t *size)
{
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, "bad.zip"), MOEDIT_OK, "%s", moedit_last_error());
    const me_zip_entry *e = me_zip_find_suffix(&z, suffix);
    cr_assert_not_null(e, "%s", suffix);
    int rc = me_zip_data(&z, e, data, size);
    me_zip_close(&z);
    return rc;
}

Test(zip, torch_archive_entries)
{
    size_t n;
    uint8_t *buf = slurp(W "plain.pt", &n);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, "plain.pt"), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(z.count, 6);   /* data.pkl, data/0..3, version */
    cr_expect_str_eq(z.entries[0].name, "plain/data.pkl");
    const me_zip_entry *e = me_zip_find_suffix(&z, "data.pkl");
    cr_assert_not_null(e);
    cr_expect_eq(e, me_zip_find(&z, "plain/data.pkl"));
    cr_expect_null(me_zip_find(&z, "data.pkl"));
    cr_expect_null(me_zip_find_suffix(&z, "ta.pkl"));     /* not at a '/' */
    e = me_zip_find_suffix(&z, "data/1");                 /* proj.bias: 100, 101 */
    cr_assert_not_null(e);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, e, &p, &size), MOEDIT_OK);
    cr_assert_eq(size, 8);
    float v[2];
    memcpy(v, p, 8);
    cr_expect_eq(v[0], 100.0f);
    cr_expect_eq(v[1], 101.0f);
    cr_expect_eq((uintptr_t)(p - buf) % 64, 0, "torch aligns storages to 64 bytes");
    uint8_t copy[8];
    cr_assert_eq(me_zip_extract(&z, e, copy), MOEDIT_OK);   /* checks the CRC */
    cr_expect_eq(memcmp(copy, p, 8), 0);
    e = me_zip_find_suffix(&z, "version");
    cr_assert_eq(me_zip_data(&z, e, &p, &size), MOEDIT_OK);
    cr_expect_eq(size, 2);
    cr_expect_eq(memcmp(p, "3\n", 2), 0);
    me_zip_close(&z);
    free(buf);
}

Test(zip, python_zip64_archive)
{
    size_t n;
    uint8_t *buf = slurp(W "zip64.pt", &n);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(entry(buf, n, "data/3", &p, &size), MOEDIT_OK, "%s", moedit_last_error());
    float v[2];
    cr_assert_eq(size, 8);
    memcpy(v, p, 8);
    cr_expect_eq(v[0], 300.0f);
    cr_expect_eq(v[1], 301.0f);
    free(buf);
}

Test(zip, deflate_entries)
{
    size_t n;
    uint8_t *buf = slurp(W "deflated.pt", &n);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, "deflated.pt"), MOEDIT_OK);
    const me_zip_entry *e = me_zip_find_suffix(&z, "data.pkl");
    cr_assert_eq(e->method, 8);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, e, &p, &size), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "compressed (method 8)"), "%s", moedit_last_error());
    uint8_t *out = malloc(e->size);
    cr_assert_eq(me_zip_extract(&z, e, out), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(memcmp(out, "\x80\x02" "ccollections\nOrderedDict\n", 27), 0);
    /* corrupt the compressed stream: extraction fails (bad data or CRC) */
    uint8_t *data = buf + e->local_offset + 30 + strlen(e->name);
    data[5] ^= 0x55;
    cr_expect_eq(me_zip_extract(&z, e, out), MOEDIT_EINPUT);
    free(out);
    me_zip_close(&z);
    free(buf);
}

static char tmpdir[64];
static void make_tmp(void) { tu_tmpdir(tmpdir, sizeof tmpdir, "zip"); }
static void remove_tmp(void) { cr_expect_eq(tu_rmtree(tmpdir), 0); }
TestSuite(zip_writer, .init = make_tmp, .fini = remove_tmp);

/* Writes three entries (one streamed in chunks) and reads them back. */
static void roundtrip(int force64)
{
    char path[128];
    snprintf(path, sizeof path, "%s/t%d.zip", tmpdir, force64);
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 + (i >> 9));
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    w.force_zip64 = force64;
    cr_assert_eq(me_zip_writer_add(&w, "a.txt", "hello", 5), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_begin(&w, "dir/big.bin", sizeof big), MOEDIT_OK);
    for (size_t off = 0; off < sizeof big; off += 30000) {
        size_t k = sizeof big - off < 30000 ? sizeof big - off : 30000;
        cr_assert_eq(me_zip_writer_write(&w, big + off, k), MOEDIT_OK);
    }
    cr_assert_eq(me_zip_writer_end(&w), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_add(&w, "empty", "", 0), MOEDIT_OK);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    cr_expect_eq(access(path, F_OK), -1, "visible before finish");
    cr_expect_eq(access(tmp, F_OK), 0);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(access(tmp, F_OK), -1);

    size_t n;
    uint8_t *buf = slurp(path, &n);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, path), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(z.count, 3);
    cr_expect_str_eq(z.entries[1].name, "dir/big.bin");
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, me_zip_find(&z, "dir/big.bin"), &p, &size), MOEDIT_OK);
    cr_assert_eq(size, sizeof big);
    cr_expect_eq(memcmp(p, big, sizeof big), 0);
    cr_expect_eq((uintptr_t)(p - buf) % 64, 0, "entry data is 64-byte aligned");
    cr_expect_eq(z.entries[1].crc32, (uint32_t)crc32(0, big, sizeof big));
    uint8_t five[5];
    cr_assert_eq(me_zip_extract(&z, me_zip_find(&z, "a.txt"), five), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(memcmp(five, "hello", 5), 0);
    cr_assert_eq(me_zip_data(&z, me_zip_find(&z, "empty"), &p, &size), MOEDIT_OK);
    cr_expect_eq(size, 0);
    /* ZIP64: the EOCD points through the locator; the central entries carry the extra */
    int has_locator = n >= 42 && memcmp(buf + n - 42, "PK\x06\x07", 4) == 0;
    cr_expect_eq(has_locator, force64);
    me_zip_close(&z);
    free(buf);
}

Test(zip_writer, roundtrip) { roundtrip(0); }
Test(zip_writer, roundtrip_zip64) { roundtrip(1); }

Test(zip_writer, misuse_leaves_no_file)
{
    char path[128];
    snprintf(path, sizeof path, "%s/bad.zip", tmpdir);
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_begin(&w, "x", 4), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_write(&w, "abc", 3), MOEDIT_OK);
    cr_expect_eq(me_zip_writer_end(&w), MOEDIT_EINTERNAL);   /* 1 byte short */
    cr_expect_neq(me_zip_writer_finish(&w), MOEDIT_OK);
    cr_expect_eq(access(path, F_OK), -1);
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_begin(&w, "x", 2), MOEDIT_OK);
    cr_expect_eq(me_zip_writer_write(&w, "abc", 3), MOEDIT_EINTERNAL);   /* too much */
    me_zip_writer_abort(&w);
    cr_expect_eq(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/no/such/dir/x.zip", tmpdir);
    cr_expect_eq(me_zip_writer_open(&w, path), MOEDIT_EINPUT);
}

/* ---- damaged archives ---- */

Test(zip, not_zip_and_truncated)
{
    static const uint8_t zeros[64];
    expect_fail(zeros, sizeof zeros, "not a zip archive");
    expect_fail(zeros, 5, "too short");
    size_t n;
    uint8_t *buf = slurp(W "plain.pt", &n);
    size_t cuts[] = {0, 21, 100, n / 2, n - 23, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) expect_fail(buf, cuts[i], "not a zip archive");
    /* the central directory cut off: a file whose EOCD survives but nothing before it */
    size_t keep = 22;
    expect_fail(buf + n - keep, keep, "central directory out of range");
    free(buf);
}

Test(zip, eocd_offsets_past_end)
{
    size_t n;
    uint8_t *buf = slurp(W "plain.pt", &n);
    uint8_t *eocd = buf + n - 22;
    cr_assert_eq(memcmp(eocd, "PK\x05\x06", 4), 0);
    uint8_t save[22];
    memcpy(save, eocd, 22);
    put32(eocd + 16, 0x7ffffff0u);                       /* central directory offset */
    expect_fail(buf, n, "central directory out of range");
    memcpy(eocd, save, 22);
    put32(eocd + 12, 0x7ffffff0u);                       /* central directory size */
    expect_fail(buf, n, "central directory out of range");
    memcpy(eocd, save, 22);
    eocd[10] = eocd[8] = 200;                            /* more entries than fit */
    expect_fail(buf, n, "entry count");
    memcpy(eocd, save, 22);
    eocd[20] = 5;                                        /* comment length runs past the end */
    expect_fail(buf, n, "no end of central directory");
    free(buf);
    buf = slurp(W "samples.npz", &n);                    /* Python's zipfile: no ZIP64 records */
    put32(buf + n - 22 + 16, 0xffffffffu);               /* says ZIP64, has no locator */
    expect_fail(buf, n, "locator");
    free(buf);
}

Test(zip, entry_data_past_end)
{
    size_t n;
    uint8_t *buf = slurp(W "plain.pt", &n);
    /* central entry of data/3: find its record and damage it */
    uint8_t *rec = NULL;
    for (size_t i = 0; i + 46 < n; i++)
        if (memcmp(buf + i, "PK\x01\x02", 4) == 0 && memcmp(buf + i + 46, "plain/data/3", 12) == 0) rec = buf + i;
    cr_assert_not_null(rec);
    uint8_t save[46];
    memcpy(save, rec, 46);
    const uint8_t *p;
    uint64_t size;
    put32(rec + 20, 0x10000000u);                        /* sizes far past the end */
    put32(rec + 24, 0x10000000u);
    cr_expect_eq(entry(buf, n, "data/3", &p, &size), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "past the end"), "%s", moedit_last_error());
    memcpy(rec, save, 46);
    put32(rec + 42, (uint32_t)n - 10);                   /* local header at the very end */
    cr_expect_eq(entry(buf, n, "data/3", &p, &size), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "local header"), "%s", moedit_last_error());
    memcpy(rec, save, 46);
    put32(rec + 42, 1);                                  /* no local header signature there */
    cr_expect_eq(entry(buf, n, "data/3", &p, &size), MOEDIT_EINPUT);
    memcpy(rec, save, 46);
    put32(rec + 24, 9);                                  /* stored entry whose sizes disagree */
    expect_fail(buf, n, "sizes disagree");
    memcpy(rec, save, 46);
    rec[30] = 200;                                       /* extra field runs past the directory */
    expect_fail(buf, n, "central directory");
    free(buf);
}

Test(zip_writer, zip64_sizes_that_overflow)
{
    char path[128];
    snprintf(path, sizeof path, "%s/z.zip", tmpdir);
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    w.force_zip64 = 1;
    cr_assert_eq(me_zip_writer_add(&w, "x", "12345678", 8), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK);
    size_t n;
    uint8_t *buf = slurp(path, &n);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(entry(buf, n, "x", &p, &size), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(memcmp(p, "12345678", 8), 0);
    /* central record = after the data; its ZIP64 extra holds size, csize, offset */
    uint8_t *rec = NULL;
    for (size_t i = 0; i + 4 < n; i++)
        if (memcmp(buf + i, "PK\x01\x02", 4) == 0) rec = buf + i;
    cr_assert_not_null(rec);
    uint8_t *x = rec + 46 + 1;   /* name "x" */
    cr_assert_eq(x[0], 1);
    uint8_t save[28];
    memcpy(save, x, 28);
    put64(x + 4, UINT64_MAX - 4);                        /* size and csize near 2^64 */
    put64(x + 12, UINT64_MAX - 4);
    cr_expect_eq(entry(buf, n, "x", &p, &size), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "past the end"), "%s", moedit_last_error());
    memcpy(x, save, 28);
    put64(x + 20, UINT64_MAX - 10);                      /* local offset near 2^64 */
    cr_expect_eq(entry(buf, n, "x", &p, &size), MOEDIT_EINPUT);
    memcpy(x, save, 28);
    x[2] = 8;                                            /* extra too short for its fields */
    expect_fail(buf, n, "ZIP64 extra field too short");
    memcpy(x, save, 28);
    uint8_t *eocd64 = buf + n - 22 - 20 - 56;
    cr_assert_eq(memcmp(eocd64, "PK\x06\x06", 4), 0);
    put64(eocd64 + 48, UINT64_MAX - 100);                /* central directory offset */
    expect_fail(buf, n, "central directory out of range");
    put64(buf + n - 22 - 20 + 8, UINT64_MAX - 3);        /* locator pointing nowhere */
    expect_fail(buf, n, "ZIP64 end of central directory record out of range");
    free(buf);
}

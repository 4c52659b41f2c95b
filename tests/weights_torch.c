/* me_read_torch on checkpoints written by torch.save (tools/make_weights_fixtures.py)
   and on hostile archives built here: the values, the state-dict choice,
   zero-copy views, and clean MOEDIT_EINPUT failures that never execute anything. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "weights/formats.h"
#include "weights/zip.h"
#include "tests/testutil.h"

#define W FIXTURES "/weights/"

static me_tensors *load(const char *path)
{
    me_tensors *ts = NULL;
    int rc = me_read_torch(path, &ts);
    cr_assert_eq(rc, MOEDIT_OK, "%s: %s", path, moedit_last_error());
    return ts;
}

static void expect_f32(me_tensors *ts, const char *name, int ndim, const int64_t *shape, const float *want, int n)
{
    const float *p;
    cr_assert_eq(me_tensors_f32(ts, name, ndim, shape, &p), MOEDIT_OK, "%s", moedit_last_error());
    for (int i = 0; i < n; i++) cr_expect_eq(p[i], want[i], "%s[%d] = %g, want %g", name, i, p[i], want[i]);
}

/* Tiny().fill(base): value = base + 100 * parameter index + arange */
static void expect_tiny(me_tensors *ts, float base)
{
    cr_assert_eq(me_tensors_count(ts), 4);
    expect_f32(ts, "proj.weight", 2, (int64_t[]){2, 3},
               (float[]){base, base + 1, base + 2, base + 3, base + 4, base + 5}, 6);
    expect_f32(ts, "proj.bias", 1, (int64_t[]){2}, (float[]){base + 100, base + 101}, 2);
    expect_f32(ts, "norm.weight", 1, (int64_t[]){2}, (float[]){base + 200, base + 201}, 2);
    expect_f32(ts, "norm.bias", 1, (int64_t[]){2}, (float[]){base + 300, base + 301}, 2);
    cr_expect_eq(me_tensors_at(ts, 0)->dtype, ME_F32);
    cr_expect_str_eq(me_tensors_at(ts, 0)->name, "proj.weight");   /* state-dict order */
}

Test(torch, plain_state_dict)
{
    me_tensors *ts = load(W "plain.pt");
    expect_tiny(ts, 0);
    cr_expect_null(me_tensors_meta(ts, "torch.state_dict"));
    me_tensors_free(ts);
}

Test(torch, train_checkpoint_takes_ema)
{
    me_tensors *ts = load(W "train.pt");
    expect_tiny(ts, 1000);
    cr_expect_str_eq(me_tensors_meta(ts, "torch.state_dict"), "ema");
    cr_expect_str_eq(me_tensors_meta(ts, "args.model"), "DiT-S/2");
    cr_expect_str_eq(me_tensors_meta(ts, "args.image_size"), "256");
    cr_expect_str_eq(me_tensors_meta(ts, "args.num_classes"), "1000");
    me_tensors_free(ts);
}

Test(torch, model_state_dict_module_and_prefixes)
{
    me_tensors *ts = load(W "model_only.pt");
    expect_tiny(ts, 0);
    cr_expect_str_eq(me_tensors_meta(ts, "torch.state_dict"), "model");
    me_tensors_free(ts);
    ts = load(W "ddp.pt");
    expect_tiny(ts, 0);   /* "module." stripped */
    cr_expect_str_eq(me_tensors_meta(ts, "torch.state_dict"), "state_dict");
    me_tensors_free(ts);
    ts = load(W "deepspeed.pt");
    expect_tiny(ts, 0);   /* "module._orig_mod." stripped */
    cr_expect_str_eq(me_tensors_meta(ts, "torch.state_dict"), "module");
    me_tensors_free(ts);
}

Test(torch, parameters_and_zip64)
{
    me_tensors *ts = load(W "param.pt");
    expect_tiny(ts, 0);
    me_tensors_free(ts);
    ts = load(W "zip64.pt");
    expect_tiny(ts, 0);
    me_tensors_free(ts);
}

Test(torch, dtypes)
{
    me_tensors *ts = load(W "dtypes.pt");
    int64_t four[1] = {4};
    static const struct { const char *name; me_dtype dtype; float v[4]; } cases[] = {
        {"f16", ME_F16, {1, -2.5f, 0.5f, 65504}},   {"bf16", ME_BF16, {1, -2.5f, 0.5f, 3}},
        {"f64", ME_F64, {1, -2.5f, 0.5f, 65504}},   {"i64", ME_I64, {-3, 0, 5, 1099511627776.0f}},
        {"i32", ME_I32, {-3, 0, 5, 70000}},         {"i16", ME_I16, {-3, 0, 5, 300}},
        {"i8", ME_I8, {-3, 0, 5, 100}},             {"u8", ME_U8, {3, 0, 5, 255}},
        {"bool", ME_BOOL, {1, 0, 1, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const me_tensor *t = me_tensors_find(ts, cases[i].name);
        cr_assert_not_null(t, "%s", cases[i].name);
        cr_expect_eq(t->dtype, cases[i].dtype, "%s", cases[i].name);
        expect_f32(ts, cases[i].name, 1, four, cases[i].v, 4);
    }
    int64_t big;
    memcpy(&big, (const uint8_t *)me_tensors_find(ts, "i64")->data + 24, 8);
    cr_expect_eq(big, (int64_t)1 << 40);
    me_tensors_free(ts);
}

Test(torch, views_share_one_storage)
{
    me_tensors *ts = load(W "views.pt");
    float want[24];
    for (int i = 0; i < 24; i++) want[i] = (float)i;
    expect_f32(ts, "base", 2, (int64_t[]){4, 6}, want, 24);
    float tr[24];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++) tr[i * 4 + j] = (float)(j * 6 + i);
    expect_f32(ts, "t", 2, (int64_t[]){6, 4}, tr, 24);
    expect_f32(ts, "s", 2, (int64_t[]){2, 3}, (float[]){8, 9, 10, 14, 15, 16}, 6);
    expect_f32(ts, "row", 1, (int64_t[]){6}, (float[]){12, 13, 14, 15, 16, 17}, 6);
    expect_f32(ts, "e", 2, (int64_t[]){2, 3}, (float[]){0, 1, 2, 0, 1, 2}, 6);
    expect_f32(ts, "scalar", 0, NULL, (float[]){3.5f}, 1);
    expect_f32(ts, "nested.inner.w", 1, (int64_t[]){2}, (float[]){7, 8}, 2);
    const me_tensor *e = me_tensors_find(ts, "empty");
    cr_assert_not_null(e);
    cr_expect_eq(e->ndim, 2);
    cr_expect_eq(e->numel, 0);
    cr_expect_null(me_tensors_find(ts, "nested.note"));
    /* contiguous views point into the mapping: row is base + 12 elements */
    const uint8_t *base = me_tensors_find(ts, "base")->data, *row = me_tensors_find(ts, "row")->data;
    cr_expect_eq(row, base + 12 * 4);
    cr_expect_eq(me_tensors_count(ts), 8);
    me_tensors_free(ts);
}

Test(torch, compressed_archive_refused)
{
    me_tensors *ts = NULL;
    cr_assert_eq(me_read_torch(W "deflated.pt", &ts), MOEDIT_EINPUT);
    cr_expect_null(ts);
    cr_expect_not_null(strstr(moedit_last_error(), "deflated.pt"), "%s", moedit_last_error());
    cr_expect_not_null(strstr(moedit_last_error(), "compressed"), "%s", moedit_last_error());
}

/* ---- hostile archives ---- */

static char tmpdir[64];

static void make_tmp(void) { tu_tmpdir(tmpdir, sizeof tmpdir, "torch"); }
static void remove_tmp(void) { cr_expect_eq(tu_rmtree(tmpdir), 0); }

TestSuite(torch_hostile, .init = make_tmp, .fini = remove_tmp);

/* archive/data.pkl = pkl, archive/data/0 = 16 bytes (floats 1..4) */
static const char *archive(const char *name, const char *pkl, size_t n)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    static const float storage[4] = {1, 2, 3, 4};
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_add(&w, "archive/data.pkl", pkl, n), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_add(&w, "archive/data/0", storage, sizeof storage), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_add(&w, "archive/version", "3\n", 2), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
    return path;
}

static void expect_einput(const char *path, const char *needle)
{
    me_tensors *ts = NULL;
    cr_assert_eq(me_read_torch(path, &ts), MOEDIT_EINPUT, "%s", moedit_last_error());
    cr_expect_null(ts);
    const char *msg = moedit_last_error();
    cr_expect_not_null(strstr(msg, path), "message does not name the file: %s", msg);
    cr_expect_not_null(strstr(msg, needle), "message lacks '%s': %s", needle, msg);
}

/* A pickle under construction: opcodes (with explicit lengths, as they hold
   NUL bytes) and BINUNICODE strings. */
typedef struct { char b[1024]; size_t n; } pk;

static pk *ops(pk *p, const void *s, size_t n)
{
    cr_assert_lt(p->n + n, sizeof p->b);
    memcpy(p->b + p->n, s, n);
    p->n += n;
    return p;
}
#define OPS(p, lit) ops(p, lit, sizeof lit - 1)

static pk *str(pk *p, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    OPS(p, "X");
    ops(p, &n, 4);
    return ops(p, s, n);
}

static pk *binint(pk *p, int32_t v)
{
    OPS(p, "J");
    return ops(p, &v, 4);
}

/* {'w': _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), 0, (size,), (stride,), False, None)} */
static const char *tensor_archive(const char *name, const char *key, int numel, int size, int stride)
{
    pk p = {0};
    str(OPS(&p, "\x80\x02}"), "w");
    str(OPS(&p, "ctorch._utils\n_rebuild_tensor_v2\n(("), "storage");
    str(str(OPS(&p, "ctorch\nFloatStorage\n"), key), "cpu");
    OPS(binint(&p, numel), "tQK\x00");
    OPS(binint(&p, size), "\x85");
    OPS(binint(&p, stride), "\x85\x89NtRs.");
    return archive(name, p.b, p.n);
}

Test(torch_hostile, valid_handmade_tensor)
{
    me_tensors *ts = load(tensor_archive("ok.pt", "0", 4, 2, 2));
    expect_f32(ts, "w", 1, (int64_t[]){2}, (float[]){1, 3}, 2);   /* stride-2 view, gathered */
    me_tensors_free(ts);
}

Test(torch_hostile, os_system_is_never_called)
{
    char marker[128], cmd[160];
    snprintf(marker, sizeof marker, "%s/pwned", tmpdir);
    /* posix.system("touch <marker>") at the top level */
    pk p = {0};
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    OPS(str(OPS(&p, "\x80\x02" "cposix\nsystem\n"), cmd), "\x85R.");
    expect_einput(archive("system.pt", p.b, p.n), "not a state dict");
    cr_expect_neq(access(marker, F_OK), 0, "the command ran");
    /* {'x': builtins.eval("open(marker, 'w')")} */
    pk e = {0};
    snprintf(cmd, sizeof cmd, "open('%s','w')", marker);
    str(OPS(&e, "\x80\x02}"), "x");
    OPS(str(OPS(&e, "cbuiltins\neval\n"), cmd), "\x85Rs.");
    expect_einput(archive("eval.pt", e.b, e.n), "no tensors");
    cr_expect_neq(access(marker, F_OK), 0, "the command ran");
    /* a tensor whose storage would come from a call */
    pk c = {0};
    str(OPS(&c, "\x80\x02}"), "w");
    str(OPS(&c, "ctorch._utils\n_rebuild_tensor_v2\n(cos\nsystem\n"), "ls");
    OPS(&c, "\x85RK\x00K\x01\x85K\x01\x85\x89NtRs.");
    expect_einput(archive("call.pt", c.b, c.n), "code execution");
}

Test(torch_hostile, storage_problems)
{
    expect_einput(tensor_archive("nokey.pt", "5", 4, 4, 1), "missing");
    expect_einput(tensor_archive("extent.pt", "0", 4, 5, 1), "past its storage");
    expect_einput(tensor_archive("stride.pt", "0", 4, 2, 4), "past its storage");
    expect_einput(tensor_archive("bytes.pt", "0", 64, 4, 1), "holds 16 bytes");
    expect_einput(tensor_archive("negative.pt", "0", 4, -1, 1), "negative");
    expect_einput(tensor_archive("expand.pt", "0", 4, 1 << 30, 0), "far larger than the file");
    pk p = {0};
    str(str(OPS(&p, "\x80\x02}"), "w"), "x");
    OPS(&p, "Qs.");
    expect_einput(archive("badpid.pt", p.b, p.n), "persistent id");
}

Test(torch_hostile, bad_pickles)
{
    expect_einput(archive("opcode.pt", "\x80\x02}\xff.", 5), "unknown opcode 0xff at offset 3");
    expect_einput(archive("nostop.pt", "\x80\x02}", 3), "without STOP");
    expect_einput(archive("list.pt", "\x80\x02]K\x01" "a.", 7), "a list");
    /* d = {'a': d}: a cycle must not recurse forever */
    pk p = {0};
    OPS(str(OPS(&p, "\x80\x02}q\x00"), "a"), "h\x00s.");
    expect_einput(archive("cycle.pt", p.b, p.n), "nested deeper");
}

Test(torch_hostile, deep_nesting)
{
    enum { N = 20000 };
    char *pkl = malloc(8 * N + 8), *q = pkl;
    memcpy(q, "\x80\x02", 2), q += 2;
    for (int i = 0; i < N; i++) memcpy(q, "}X\x01\x00\x00\x00k", 7), q += 7;
    *q++ = '}';
    for (int i = 0; i < N; i++) *q++ = 's';
    *q++ = '.';
    expect_einput(archive("deep.pt", pkl, (size_t)(q - pkl)), "nested deeper");
    free(pkl);
}

Test(torch_hostile, truncated_and_not_zip)
{
    FILE *f = fopen(W "plain.pt", "rb");
    cr_assert_not_null(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t cuts[] = {0, 3, 30, 200, n / 2, n - 100, n - 22, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/cut%zu.pt", tmpdir, cuts[i]);
        FILE *o = fopen(path, "wb");
        fwrite(buf, 1, cuts[i], o);
        fclose(o);
        expect_einput(path, "zip");
    }
    expect_einput(W "f4.npy", "not a zip archive");
}

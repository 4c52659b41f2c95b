/* The safe pickle machine on pickles written by CPython (protocols 2 and 4)
   and on hand-made hostile ones: values, placeholders, and clean errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "weights/pickle.h"

#define W FIXTURES "/weights/"

static me_pickle *run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    me_pickle *p;
    cr_assert_eq(me_pickle_run(buf, n, path, &p), MOEDIT_OK, "%s", moedit_last_error());
    memset(buf, 0xee, sizeof buf);   /* results must not point into the input */
    return p;
}

static const me_pk_value *get(const me_pk_value *d, const char *key, me_pk_kind kind)
{
    const me_pk_value *v = me_pk_dict_get(d, key);
    cr_assert_not_null(v, "missing %s", key);
    cr_assert_eq(v->kind, kind, "%s: kind %d, want %d", key, v->kind, kind);
    return v;
}

static void check_mixed(const char *path, int proto)
{
    me_pickle *p = run_file(path);
    const me_pk_value *d = me_pickle_result(p);
    cr_assert_eq(d->kind, ME_PK_DICT);
    cr_expect_eq(me_pk_dict_len(d), 13);
    cr_expect_eq(get(d, "a", ME_PK_INT)->u.i, 1);
    cr_expect_eq(get(d, "b", ME_PK_INT)->u.i, -2);
    cr_expect_eq(get(d, "big", ME_PK_INT)->u.i, (int64_t)1 << 40);
    cr_expect_eq(get(d, "neg", ME_PK_INT)->u.i, INT64_MIN);
    cr_expect_eq(get(d, "f", ME_PK_FLOAT)->u.f, 1.5);
    const me_pk_value *s = get(d, "s", ME_PK_STR);
    cr_expect_str_eq(s->u.str.s, "h\xc3\xa9llo");
    cr_expect_eq(s->u.str.len, 6);
    if (proto >= 3) {
        const me_pk_value *b = get(d, "by", ME_PK_BYTES);
        cr_expect_eq(b->u.str.len, 2);
        cr_expect_eq(memcmp(b->u.str.s, "\x00\x01", 2), 0);
    } else {
        /* protocol 2 pickles bytes as _codecs.encode(...): a placeholder */
        cr_expect_str_eq(get(d, "by", ME_PK_OBJECT)->u.global.module, "_codecs");
    }
    const me_pk_value *t = get(d, "t", ME_PK_TUPLE);
    cr_assert_eq(t->u.seq.n, 3);
    cr_expect_eq(t->u.seq.items[2]->u.i, 3);
    const me_pk_value *l = get(d, "l", ME_PK_LIST);
    cr_assert_eq(l->u.seq.n, 3);
    cr_expect_eq(l->u.seq.items[0]->kind, ME_PK_NONE);
    cr_expect_eq(l->u.seq.items[1]->kind, ME_PK_BOOL);
    cr_expect_eq(l->u.seq.items[1]->u.i, 1);
    cr_expect_eq(l->u.seq.items[2]->u.i, 0);
    cr_expect_eq(get(d, "e", ME_PK_TUPLE)->u.seq.n, 0);
    const me_pk_value *ns = get(d, "ns", ME_PK_OBJECT);
    cr_expect_str_eq(ns->u.global.module, "argparse");
    cr_expect_str_eq(ns->u.global.name, "Namespace");
    cr_assert_not_null(ns->state);
    cr_expect_eq(get(ns->state, "x", ME_PK_INT)->u.i, 1);
    cr_expect_eq(get(d, "huge", ME_PK_OBJECT)->kind, ME_PK_OBJECT);   /* wider than 64 bits */
    const me_pk_value *od = get(d, "od", ME_PK_DICT);
    cr_expect_eq(get(od, "k", ME_PK_INT)->u.i, 5);
    me_pickle_free(p);
}

Test(pickle, cpython_protocol2) { check_mixed(W "mixed_p2.pkl", 2); }
Test(pickle, cpython_protocol4) { check_mixed(W "mixed_p4.pkl", 4); }

static const me_pk_value *run_ok(const char *bytes, size_t n, me_pickle **p)
{
    cr_assert_eq(me_pickle_run((const uint8_t *)bytes, n, "t.pkl", p), MOEDIT_OK, "%s", moedit_last_error());
    return me_pickle_result(*p);
}

static void run_bad(const char *bytes, size_t n, const char *needle)
{
    me_pickle *p = (me_pickle *)1;
    cr_assert_eq(me_pickle_run((const uint8_t *)bytes, n, "t.pkl", &p), MOEDIT_EINPUT, "ran; wanted '%s'", needle);
    cr_expect_null(p);
    const char *msg = moedit_last_error();
    cr_expect_eq(strncmp(msg, "t.pkl: pickle: ", 15), 0, "%s", msg);
    cr_expect_not_null(strstr(msg, needle), "message lacks '%s': %s", needle, msg);
}
#define OK(lit, p) run_ok(lit, sizeof lit - 1, p)
#define BAD(lit, needle) run_bad(lit, sizeof lit - 1, needle)

Test(pickle, stack_and_memo_opcodes)
{
    me_pickle *p;
    /* [1, 1, (2, 3)] via DUP, MEMOIZE + BINGET, LONG_BINPUT + LONG_BINGET, POP, POP_MARK */
    /* (hex escapes stop at a closing quote: "\x01" "a" is two bytes) */
    const me_pk_value *v = OK("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00"
                              "]\x94" "K\x01\x94" "2" "0" "(K\x07K\x08" "1" "a"
                              "K\x02K\x03\x86r\x05\x00\x00\x00" "0" "j\x05\x00\x00\x00" "a" "h\x01" "a.", &p);
    cr_assert_eq(v->kind, ME_PK_LIST);
    cr_assert_eq(v->u.seq.n, 3);
    cr_expect_eq(v->u.seq.items[0]->u.i, 1);
    cr_expect_eq(v->u.seq.items[1]->kind, ME_PK_TUPLE);
    cr_expect_eq(v->u.seq.items[1]->u.seq.items[1]->u.i, 3);
    cr_expect_eq(v->u.seq.items[2]->u.i, 1);
    me_pickle_free(p);
    /* DICT and LIST from a MARK; BININT2; BINUNICODE8; SHORT_BINSTRING */
    v = OK("(X\x01\x00\x00\x00k(M\x34\x12\x8d\x02\x00\x00\x00\x00\x00\x00\x00hiU\x02yold.", &p);
    const me_pk_value *l = get(v, "k", ME_PK_LIST);
    cr_assert_eq(l->u.seq.n, 3);
    cr_expect_eq(l->u.seq.items[0]->u.i, 0x1234);
    cr_expect_str_eq(l->u.seq.items[1]->u.str.s, "hi");
    cr_expect_str_eq(l->u.seq.items[2]->u.str.s, "yo");
    me_pickle_free(p);
    /* LONG1: 0 bytes = 0, one byte 0xff = -1; BININT negative */
    v = OK("(\x8a\x00\x8a\x01\xffJ\xfe\xff\xff\xfft.", &p);
    cr_assert_eq(v->u.seq.n, 3);
    cr_expect_eq(v->u.seq.items[0]->u.i, 0);
    cr_expect_eq(v->u.seq.items[1]->u.i, -1);
    cr_expect_eq(v->u.seq.items[2]->u.i, -2);
    me_pickle_free(p);
}

Test(pickle, globals_are_inert)
{
    me_pickle *p;
    /* os.system('rm -rf /') and eval: placeholders, nothing called */
    const me_pk_value *v = OK("cos\nsystem\nX\x08\x00\x00\x00rm -rf /\x85R.", &p);
    cr_assert_eq(v->kind, ME_PK_OBJECT);
    cr_expect_str_eq(v->u.global.module, "os");
    cr_expect_str_eq(v->u.global.name, "system");
    me_pickle_free(p);
    /* calling, building and filling a placeholder give placeholders */
    v = OK("cbuiltins\neval\n)R)R}bK\x01" "aK\x02K\x03s(K\x04" "e.", &p);
    cr_expect_eq(v->kind, ME_PK_OBJECT);
    me_pickle_free(p);
    /* a reference to a known function, never called */
    v = OK("ctorch._utils\n_rebuild_tensor_v2\n.", &p);
    cr_expect_eq(v->kind, ME_PK_GLOBAL);
    me_pickle_free(p);
    /* OrderedDict() is a dict; torch.FloatStorage() called directly is not a storage */
    v = OK("ccollections\nOrderedDict\n)R.", &p);
    cr_expect_eq(v->kind, ME_PK_DICT);
    me_pickle_free(p);
    v = OK("ctorch\nFloatStorage\n)R.", &p);
    cr_expect_eq(v->kind, ME_PK_OBJECT);
    me_pickle_free(p);
}

Test(pickle, tensor_values)
{
    me_pickle *p;
    /* _rebuild_parameter(_rebuild_tensor_v2(('storage', HalfStorage, 'k', 'cuda:0', 12), 2, (2, 3), (1, 2), …)) */
    const me_pk_value *v = OK("ctorch._utils\n_rebuild_parameter\n("
                              "ctorch._utils\n_rebuild_tensor_v2\n"
                              "((X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x00k"
                              "X\x06\x00\x00\x00" "cuda:0K\x0ctQ"
                              "K\x02K\x02K\x03\x86K\x01K\x02\x86\x89NtR\x88Nt" "R.", &p);
    cr_assert_eq(v->kind, ME_PK_TENSOR, "kind %d", v->kind);
    const me_pk_tensor *t = v->u.tensor;
    cr_expect_eq(t->storage->dtype, ME_F16);
    cr_expect_str_eq(t->storage->key, "k");
    cr_expect_str_eq(t->storage->location, "cuda:0");
    cr_expect_eq(t->storage->numel, 12);
    cr_expect_eq(t->offset, 2);
    cr_expect_eq(t->ndim, 2);
    cr_expect_eq(t->shape[1], 3);
    cr_expect_eq(t->stride[1], 2);
    cr_expect_eq(t->numel, 6);
    me_pickle_free(p);
}

Test(pickle, malformed)
{
    BAD("\x80\x02}\xfe.", "unknown opcode 0xfe at offset 3");
    BAD("I01\n.", "unknown opcode 0x49 at offset 0");   /* text protocol 0 is not emitted by torch */
    BAD("", "ends without STOP");
    BAD("}", "ends without STOP");
    BAD(".", "stack underflow");
    BAD("a.", "stack underflow");
    BAD("(.", "stack underflow");                       /* STOP may not reach under a MARK */
    BAD("K\x01(s.", "stack underflow");
    BAD("K\x01t.", "missing MARK");
    BAD("h\x05.", "memo key not found");
    BAD("K\x01r\xff\xff\xff\x7f.", "memo index out of range");
    BAD("X\xff\xff\xff\x7f" "abc.", "truncated string");
    BAD("\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", "truncated string");
    BAD("\x8b\xff\xff\xff\x7f\x00.", "truncated LONG");
    BAD("J\x01\x00", "truncated");
    BAD("cos\nsystem", "unterminated GLOBAL");
    BAD("K\x01K\x02R.", "not a tuple");
    BAD("]K\x01K\x02s.", "non-dict");
    BAD("}K\x01" "a.", "non-list");
    BAD("(K\x01" "d.", "odd number");
    BAD("K\x01K\x02\x93.", "two strings");
    BAD("(X\x07\x00\x00\x00storagecx\ny\nX\x01\x00\x00\x00kX\x03\x00\x00\x00" "cpuK\x01tQ.", "unsupported storage type y");
    BAD("ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x00)))tR.", "without a storage");
}

/* Lots of nesting or repetition costs memory linear in the input, no recursion */
Test(pickle, deep_and_wide)
{
    enum { N = 200000 };
    char *b = malloc(3 * N + 4);
    size_t n = 0;
    for (int i = 0; i < N; i++) b[n++] = ']';      /* N nested lists: [[[…]]] */
    for (int i = 0; i < N - 1; i++) b[n++] = 'a';
    b[n++] = '.';
    me_pickle *p;
    const me_pk_value *v = run_ok(b, n, &p);
    int depth = 0;
    while (v->kind == ME_PK_LIST && v->u.seq.n == 1) v = v->u.seq.items[0], depth++;
    cr_expect_eq(depth, N - 1);
    me_pickle_free(p);
    n = 0;
    for (int i = 0; i < N; i++) b[n++] = '(';       /* N marks, then STOP */
    b[n++] = '.';
    run_bad(b, n, "stack underflow");
    free(b);
}

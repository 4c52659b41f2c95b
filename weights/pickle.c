/* The safe pickle machine (see pickle.h). Opcode semantics follow CPython's
   Lib/pickle.py and pickletools.py; nothing here imports or calls. */
#include <stdlib.h>
#include <string.h>
#include "weights/pickle.h"

enum {   /* meaning of a GLOBAL's `known` field */
    G_OTHER, G_STORAGE, G_REBUILD_TENSOR, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER,
    G_REBUILD_PARAMETER_STATE, G_REBUILD_FROM_TYPE_V2, G_ORDERED_DICT,
};

typedef struct block { struct block *next; size_t used, cap; } block;

struct me_pickle {
    const char *what;
    const uint8_t *data;
    size_t size, pos, op_pos;
    block *blocks;
    size_t arena_bytes, arena_limit;
    me_pk_value **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    me_pk_value **memo;
    size_t memo_cap, memo_len;   /* len: slots in use, the next MEMOIZE index */
    me_pk_value *result;
    me_pk_value none;
};

static int fail(me_pickle *p, const char *msg)
{
    return me_fail(MOEDIT_EINPUT, "%s: pickle: %s at offset %zu", p->what, msg, p->op_pos);
}

/* Bump allocation from blocks freed all at once; bounded so hostile input
   cannot make us use more than a fixed multiple of its size. */
static void *arena(me_pickle *p, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0 || n > p->arena_limit - p->arena_bytes) {
        fail(p, "uses too much memory for its size");
        return NULL;
    }
    block *b = p->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof(block) + 15 + cap);
        if (!b) { me_fail(MOEDIT_EINTERNAL, "out of memory"); return NULL; }
        b->used = 0;
        b->cap = cap;
        b->next = p->blocks;
        p->blocks = b;
    }
    uint8_t *base = (uint8_t *)(((uintptr_t)(b + 1) + 15) & ~(uintptr_t)15);
    void *r = base + b->used;
    b->used += n;
    p->arena_bytes += n;
    return r;
}

static me_pk_value *new_value(me_pickle *p, me_pk_kind kind)
{
    me_pk_value *v = arena(p, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
    }
    return v;
}

static char *new_string(me_pickle *p, const uint8_t *s, size_t n)
{
    if (n == SIZE_MAX) { fail(p, "string too long"); return NULL; }
    char *c = arena(p, n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

static me_pk_value *placeholder(me_pickle *p, const char *module, const char *name)
{
    me_pk_value *v = new_value(p, ME_PK_OBJECT);
    if (v) {
        v->u.global.module = module;
        v->u.global.name = name;
    }
    return v;
}

static int seq_push(me_pickle *p, me_pk_value *seq, me_pk_value *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? 2 * seq->u.seq.cap : 4;
        me_pk_value **items = arena(p, cap * sizeof *items);
        if (!items) return MOEDIT_EINPUT;
        if (seq->u.seq.n) memcpy(items, seq->u.seq.items, seq->u.seq.n * sizeof *items);
        seq->u.seq.items = items;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.items[seq->u.seq.n++] = item;
    return MOEDIT_OK;
}

/* ---- the stack ---- */

static int push(me_pickle *p, me_pk_value *v)
{
    if (!v) return MOEDIT_EINPUT;
    if (p->sp == p->stack_cap) {
        size_t cap = p->stack_cap ? 2 * p->stack_cap : 64;
        me_pk_value **s = realloc(p->stack, cap * sizeof *s);
        if (!s) return me_fail(MOEDIT_EINTERNAL, "out of memory");
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->sp++] = v;
    return MOEDIT_OK;
}

static me_pk_value *pop(me_pickle *p)
{
    size_t floor = p->nmarks ? p->marks[p->nmarks - 1] : 0;
    if (p->sp <= floor) {
        fail(p, "stack underflow");
        return NULL;
    }
    return p->stack[--p->sp];
}

static me_pk_value *top(me_pickle *p)
{
    size_t floor = p->nmarks ? p->marks[p->nmarks - 1] : 0;
    if (p->sp <= floor) {
        fail(p, "stack underflow");
        return NULL;
    }
    return p->stack[p->sp - 1];
}

/* Items since the last MARK: pops the mark, returns their index in stack. */
static int pop_mark(me_pickle *p, size_t *start)
{
    if (!p->nmarks) return fail(p, "missing MARK");
    *start = p->marks[--p->nmarks];
    return MOEDIT_OK;
}

static me_pk_value *make_seq(me_pickle *p, me_pk_kind kind, me_pk_value **items, size_t n)
{
    me_pk_value *v = new_value(p, kind);
    if (!v) return NULL;
    if (n) {
        v->u.seq.items = arena(p, n * sizeof *items);
        if (!v->u.seq.items) return NULL;
        memcpy(v->u.seq.items, items, n * sizeof *items);
    }
    v->u.seq.n = v->u.seq.cap = n;
    return v;
}

/* ---- reading operands ---- */

static int take(me_pickle *p, size_t n, const uint8_t **out)
{
    if (n > p->size - p->pos) return fail(p, "truncated");
    *out = p->data + p->pos;
    p->pos += n;
    return MOEDIT_OK;
}

static uint64_t le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static int take_le(me_pickle *p, int n, uint64_t *v)
{
    const uint8_t *b = NULL;
    int rc = take(p, (size_t)n, &b);
    if (!rc) *v = le(b, n);
    return rc;
}

/* lenbytes of little-endian length, then that many bytes; too_long names
   the operand in the error when the length runs past the end. */
static int take_counted(me_pickle *p, int lenbytes, const char *too_long, const uint8_t **s, uint64_t *n)
{
    int rc = take_le(p, lenbytes, n);
    if (rc) return rc;
    if (*n > p->size - p->pos) return fail(p, too_long);
    return take(p, (size_t)*n, s);
}

static int take_line(me_pickle *p, const char **line)
{
    const uint8_t *s = p->data + p->pos;
    const uint8_t *nl = memchr(s, '\n', p->size - p->pos);
    if (!nl) return fail(p, "unterminated GLOBAL name");
    size_t n = (size_t)(nl - s);
    p->pos += n + 1;
    *line = new_string(p, s, n);
    return *line ? MOEDIT_OK : MOEDIT_EINPUT;
}

/* ---- globals and calls ---- */

static const struct { const char *name; me_dtype dtype; } storages[] = {
    {"FloatStorage", ME_F32}, {"HalfStorage", ME_F16}, {"BFloat16Storage", ME_BF16},
    {"DoubleStorage", ME_F64}, {"LongStorage", ME_I64}, {"IntStorage", ME_I32},
    {"ShortStorage", ME_I16}, {"CharStorage", ME_I8}, {"ByteStorage", ME_U8},
    {"BoolStorage", ME_BOOL},
};

static me_pk_value *make_global(me_pickle *p, const char *module, const char *name)
{
    me_pk_value *g = new_value(p, ME_PK_GLOBAL);
    if (!g) return NULL;
    g->u.global.module = module;
    g->u.global.name = name;
    int k = G_OTHER;
    if (strcmp(module, "torch") == 0) {
        for (size_t i = 0; i < sizeof storages / sizeof *storages; i++)
            if (strcmp(name, storages[i].name) == 0) k = G_STORAGE;
    } else if (strcmp(module, "torch._utils") == 0) {
        if (strcmp(name, "_rebuild_tensor") == 0) k = G_REBUILD_TENSOR;
        else if (strcmp(name, "_rebuild_tensor_v2") == 0) k = G_REBUILD_TENSOR_V2;
        else if (strcmp(name, "_rebuild_parameter") == 0) k = G_REBUILD_PARAMETER;
        else if (strcmp(name, "_rebuild_parameter_with_state") == 0) k = G_REBUILD_PARAMETER_STATE;
    } else if (strcmp(module, "torch._tensor") == 0 && strcmp(name, "_rebuild_from_type_v2") == 0) {
        k = G_REBUILD_FROM_TYPE_V2;
    } else if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0) {
        k = G_ORDERED_DICT;
    }
    g->u.global.known = k;
    return g;
}

static int get_int(const me_pk_value *v, int64_t *out)
{
    if (!v || (v->kind != ME_PK_INT && v->kind != ME_PK_BOOL)) return 0;
    *out = v->u.i;
    return 1;
}

static int int_tuple(const me_pk_value *v, int64_t *out, int *n)
{
    if (!v || (v->kind != ME_PK_TUPLE && v->kind != ME_PK_LIST) || v->u.seq.n > ME_MAX_DIMS) return 0;
    for (size_t i = 0; i < v->u.seq.n; i++)
        if (!get_int(v->u.seq.items[i], &out[i])) return 0;
    *n = (int)v->u.seq.n;
    return 1;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, …): validated against the
   storage's element count (the caller checks the bytes behind it). */
static me_pk_value *rebuild_tensor(me_pickle *p, const me_pk_value *args)
{
    if (args->kind != ME_PK_TUPLE || args->u.seq.n < 4) {
        fail(p, "_rebuild_tensor_v2 needs (storage, offset, size, stride, …)");
        return NULL;
    }
    me_pk_value **a = args->u.seq.items;
    if (a[0]->kind != ME_PK_STORAGE) {
        fail(p, "tensor without a storage (its data would need code execution)");
        return NULL;
    }
    me_pk_tensor *t = arena(p, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->storage = a[0]->u.storage;
    int nd = 0, ns = 0;
    if (!get_int(a[1], &t->offset) || !int_tuple(a[2], t->shape, &nd) || !int_tuple(a[3], t->stride, &ns) ||
        nd != ns || t->offset < 0) {
        fail(p, "tensor with a bad offset, size or stride");
        return NULL;
    }
    t->ndim = nd;
    /* last element = offset + sum((size-1)*stride) must be inside the storage */
    uint64_t numel = 1, last = (uint64_t)t->offset;
    const uint64_t lim = (uint64_t)1 << 62;
    for (int i = 0; i < nd; i++) {
        if (t->shape[i] < 0 || t->stride[i] < 0 || (uint64_t)t->shape[i] >= lim || (uint64_t)t->stride[i] >= lim) {
            fail(p, "tensor with a negative or huge size/stride");
            return NULL;
        }
    }
    for (int i = 0; i < nd; i++) {
        if (numel > lim / ((uint64_t)t->shape[i] + 1)) { fail(p, "tensor too large"); return NULL; }
        numel *= (uint64_t)t->shape[i];
    }
    if (numel > 0) {
        for (int i = 0; i < nd; i++) {
            uint64_t s = (uint64_t)t->shape[i] - 1, st = (uint64_t)t->stride[i];
            if (st && s > (lim - last) / st) { fail(p, "tensor extent overflows"); return NULL; }
            last += s * st;
        }
        if (last >= (uint64_t)t->storage->numel) {
            fail(p, "tensor extends past its storage");
            return NULL;
        }
    }
    t->numel = (int64_t)numel;
    me_pk_value *v = new_value(p, ME_PK_TENSOR);
    if (v) v->u.tensor = t;
    return v;
}

static me_pk_value *call(me_pickle *p, me_pk_value *fn, me_pk_value *args);

/* _rebuild_from_type_v2(func, new_type, args, state): torch's wrapper for
   tensor subclasses; the result is func(*args). */
static me_pk_value *rebuild_from_type(me_pickle *p, me_pk_value *args)
{
    if (args->kind != ME_PK_TUPLE || args->u.seq.n < 3) return placeholder(p, "torch._tensor", "_rebuild_from_type_v2");
    return call(p, args->u.seq.items[0], args->u.seq.items[2]);
}

/* REDUCE / NEWOBJ: only the known functions do anything; the rest of the
   world becomes placeholders. */
static me_pk_value *call(me_pickle *p, me_pk_value *fn, me_pk_value *args)
{
    if (fn->kind == ME_PK_OBJECT) return placeholder(p, fn->u.global.module, fn->u.global.name);
    if (fn->kind != ME_PK_GLOBAL) return placeholder(p, "?", "call of a non-callable");
    int tuple = args->kind == ME_PK_TUPLE;
    size_t n = tuple ? args->u.seq.n : 0;
    switch (fn->u.global.known) {
    case G_REBUILD_TENSOR:
    case G_REBUILD_TENSOR_V2:
        return rebuild_tensor(p, args);
    case G_REBUILD_PARAMETER:
    case G_REBUILD_PARAMETER_STATE:
        if (n >= 1 && args->u.seq.items[0]->kind == ME_PK_TENSOR) return args->u.seq.items[0];
        fail(p, "_rebuild_parameter without a tensor");
        return NULL;
    case G_REBUILD_FROM_TYPE_V2:
        return rebuild_from_type(p, args);
    case G_ORDERED_DICT:
        if (tuple && n == 0) return new_value(p, ME_PK_DICT);
        break;
    }
    return placeholder(p, fn->u.global.module, fn->u.global.name);
}

/* ('storage', StorageType, key, location, numel) */
static me_pk_value *persistent_load(me_pickle *p, me_pk_value *pid)
{
    me_pk_value **a = pid->u.seq.items;
    int64_t numel;
    if (pid->kind != ME_PK_TUPLE || pid->u.seq.n != 5 || a[0]->kind != ME_PK_STR ||
        strcmp(a[0]->u.str.s, "storage") != 0 || a[2]->kind != ME_PK_STR || a[3]->kind != ME_PK_STR ||
        !get_int(a[4], &numel) || numel < 0) {
        fail(p, "persistent id is not ('storage', type, key, location, numel)");
        return NULL;
    }
    if (a[1]->kind != ME_PK_GLOBAL || a[1]->u.global.known != G_STORAGE) {
        const char *name = a[1]->kind == ME_PK_GLOBAL ? a[1]->u.global.name : "?";
        me_fail(MOEDIT_EINPUT, "%s: pickle: unsupported storage type %s at offset %zu", p->what, name, p->op_pos);
        return NULL;
    }
    me_pk_storage *s = arena(p, sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < sizeof storages / sizeof *storages; i++)
        if (strcmp(a[1]->u.global.name, storages[i].name) == 0) s->dtype = storages[i].dtype;
    s->key = a[2]->u.str.s;
    s->location = a[3]->u.str.s;
    s->numel = numel;
    me_pk_value *v = new_value(p, ME_PK_STORAGE);
    if (v) v->u.storage = s;
    return v;
}

/* ---- memo ---- */

static int memo_put(me_pickle *p, uint64_t idx)
{
    /* indices are assigned sequentially, so one beyond the bytes read so far is hostile */
    if (idx > p->pos) return fail(p, "memo index out of range");
    me_pk_value *v = top(p);
    if (!v) return MOEDIT_EINPUT;
    if (idx >= p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        me_pk_value **m = realloc(p->memo, cap * sizeof *m);
        if (!m) return me_fail(MOEDIT_EINTERNAL, "out of memory");
        memset(m + p->memo_cap, 0, (cap - p->memo_cap) * sizeof *m);
        p->memo = m;
        p->memo_cap = cap;
    }
    if (!p->memo[idx]) p->memo_len++;
    p->memo[idx] = v;
    return MOEDIT_OK;
}

static int memo_get(me_pickle *p, uint64_t idx)
{
    if (idx >= p->memo_cap || !p->memo[idx]) return fail(p, "memo key not found");
    return push(p, p->memo[idx]);
}

/* ---- the opcodes ---- */

static int op_string(me_pickle *p, me_pk_kind kind, int lenbytes)
{
    uint64_t n = 0;
    const uint8_t *s = NULL;
    int rc = take_counted(p, lenbytes, "truncated string", &s, &n);
    if (rc) return rc;
    me_pk_value *v = new_value(p, kind);
    if (!v || !(v->u.str.s = new_string(p, s, (size_t)n))) return MOEDIT_EINPUT;
    v->u.str.len = (size_t)n;
    return push(p, v);
}

static int op_int(me_pickle *p, int64_t i)
{
    me_pk_value *v = new_value(p, ME_PK_INT);
    if (v) v->u.i = i;
    return push(p, v);
}

/* LONG1/LONG4: little-endian two's complement; wider than 64 bits becomes a placeholder */
static int op_long(me_pickle *p, int lenbytes)
{
    uint64_t n = 0;
    const uint8_t *b = NULL;
    int rc = take_counted(p, lenbytes, "truncated LONG", &b, &n);
    if (rc) return rc;
    if (n > 8) return push(p, placeholder(p, "builtins", "int (wider than 64 bits)"));
    uint64_t v = n ? le(b, (int)n) : 0;
    if (n && n < 8 && (b[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
    return op_int(p, (int64_t)v);
}

static int op_tuple(me_pickle *p, size_t n)
{
    if (p->sp < n || (p->nmarks && p->sp - n < p->marks[p->nmarks - 1])) return fail(p, "stack underflow");
    me_pk_value *t = make_seq(p, ME_PK_TUPLE, p->stack + p->sp - n, n);
    p->sp -= n;
    return push(p, t);
}

static int op_mark_seq(me_pickle *p, me_pk_kind kind)
{
    size_t start = 0;
    int rc = pop_mark(p, &start);
    if (rc) return rc;
    me_pk_value *v = make_seq(p, kind, p->stack + start, p->sp - start);
    if (v && kind == ME_PK_DICT && v->u.seq.n % 2) return fail(p, "DICT with an odd number of items");
    p->sp = start;
    return push(p, v);
}

/* APPEND(S) / SETITEM(S) / ADDITEMS on the object below the items */
static int op_fill(me_pickle *p, size_t start, int pairs)
{
    if (start == 0 || (p->nmarks && start - 1 < p->marks[p->nmarks - 1])) return fail(p, "stack underflow");
    me_pk_value *target = p->stack[start - 1];
    size_t n = p->sp - start;
    if (pairs && n % 2) return fail(p, "SETITEMS with an odd number of items");
    int ok = pairs ? target->kind == ME_PK_DICT : target->kind == ME_PK_LIST;
    if (ok) {
        for (size_t i = start; i < p->sp; i++)
            if (seq_push(p, target, p->stack[i])) return MOEDIT_EINPUT;
    } else if (target->kind != ME_PK_OBJECT) {
        return fail(p, pairs ? "SETITEMS on a non-dict" : "APPENDS on a non-list");
    }
    p->sp = start;
    return MOEDIT_OK;
}

static int step(me_pickle *p, int *done)
{
    p->op_pos = p->pos;
    uint8_t op = p->data[p->pos++];
    uint64_t n = 0;
    size_t start = 0;
    int rc = MOEDIT_OK;
    me_pk_value *a, *b, *c;
    switch (op) {
    case 0x80: return take_le(p, 1, &n);                         /* PROTO */
    case 0x95: return take_le(p, 8, &n);                         /* FRAME: frames are a hint */
    case '.':                                                    /* STOP */
        if (!(p->result = pop(p))) return MOEDIT_EINPUT;
        *done = 1;
        return MOEDIT_OK;
    case '(':                                                    /* MARK */
        if (p->nmarks == p->marks_cap) {
            size_t cap = p->marks_cap ? 2 * p->marks_cap : 64;
            size_t *m = realloc(p->marks, cap * sizeof *m);
            if (!m) return me_fail(MOEDIT_EINTERNAL, "out of memory");
            p->marks = m;
            p->marks_cap = cap;
        }
        p->marks[p->nmarks++] = p->sp;
        return MOEDIT_OK;
    case '0': return pop(p) ? MOEDIT_OK : MOEDIT_EINPUT;         /* POP */
    case '1':                                                    /* POP_MARK */
        if ((rc = pop_mark(p, &start))) return rc;
        p->sp = start;
        return MOEDIT_OK;
    case '2': return (a = top(p)) ? push(p, a) : MOEDIT_EINPUT;  /* DUP */
    case 'N': return push(p, &p->none);
    case 0x88: case 0x89:                                        /* NEWTRUE, NEWFALSE */
        if ((a = new_value(p, ME_PK_BOOL))) a->u.i = op == 0x88;
        return push(p, a);
    case 'J':                                                    /* BININT */
        if ((rc = take_le(p, 4, &n))) return rc;
        return op_int(p, (int32_t)(uint32_t)n);
    case 'K': if ((rc = take_le(p, 1, &n))) return rc; return op_int(p, (int64_t)n);
    case 'M': if ((rc = take_le(p, 2, &n))) return rc; return op_int(p, (int64_t)n);
    case 0x8a: return op_long(p, 1);
    case 0x8b: return op_long(p, 4);
    case 'G': {                                                  /* BINFLOAT, big-endian */
        const uint8_t *f = NULL;
        if ((rc = take(p, 8, &f))) return rc;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | f[i];
        if ((a = new_value(p, ME_PK_FLOAT))) memcpy(&a->u.f, &bits, 8);
        return push(p, a);
    }
    case 'X': case 'T': return op_string(p, ME_PK_STR, 4);      /* BINUNICODE, BINSTRING */
    case 0x8c: case 'U': return op_string(p, ME_PK_STR, 1);     /* SHORT_BINUNICODE, SHORT_BINSTRING */
    case 0x8d: return op_string(p, ME_PK_STR, 8);               /* BINUNICODE8 */
    case 'B': return op_string(p, ME_PK_BYTES, 4);              /* BINBYTES */
    case 'C': return op_string(p, ME_PK_BYTES, 1);              /* SHORT_BINBYTES */
    case 0x8e: case 0x96: return op_string(p, ME_PK_BYTES, 8);  /* BINBYTES8, BYTEARRAY8 */
    case ')': return op_tuple(p, 0);
    case 0x85: return op_tuple(p, 1);
    case 0x86: return op_tuple(p, 2);
    case 0x87: return op_tuple(p, 3);
    case 't': return op_mark_seq(p, ME_PK_TUPLE);
    case ']': case 0x8f: return push(p, new_value(p, ME_PK_LIST));   /* EMPTY_LIST, EMPTY_SET */
    case 'l': return op_mark_seq(p, ME_PK_LIST);
    case 0x91: return op_mark_seq(p, ME_PK_LIST);                     /* FROZENSET */
    case '}': return push(p, new_value(p, ME_PK_DICT));
    case 'd': return op_mark_seq(p, ME_PK_DICT);
    case 'a': return op_fill(p, p->sp ? p->sp - 1 : 0, 0);           /* APPEND */
    case 's': return op_fill(p, p->sp >= 2 ? p->sp - 2 : 0, 1);      /* SETITEM */
    case 'e': case 0x90:                                              /* APPENDS, ADDITEMS */
        if ((rc = pop_mark(p, &start))) return rc;
        return op_fill(p, start, 0);
    case 'u':                                                         /* SETITEMS */
        if ((rc = pop_mark(p, &start))) return rc;
        return op_fill(p, start, 1);
    case 'c': {                                                       /* GLOBAL */
        const char *module, *name;
        if ((rc = take_line(p, &module)) || (rc = take_line(p, &name))) return rc;
        return push(p, make_global(p, module, name));
    }
    case 0x93:                                                        /* STACK_GLOBAL */
        if (!(b = pop(p)) || !(a = pop(p))) return MOEDIT_EINPUT;
        if (a->kind != ME_PK_STR || b->kind != ME_PK_STR) return fail(p, "STACK_GLOBAL needs two strings");
        return push(p, make_global(p, a->u.str.s, b->u.str.s));
    case 'R': case 0x81:                                              /* REDUCE, NEWOBJ */
        if (!(b = pop(p)) || !(a = pop(p))) return MOEDIT_EINPUT;
        if (b->kind != ME_PK_TUPLE) return fail(p, "call arguments are not a tuple");
        return push(p, call(p, a, b));
    case 0x92:                                                        /* NEWOBJ_EX */
        if (!(c = pop(p)) || !(b = pop(p)) || !(a = pop(p))) return MOEDIT_EINPUT;
        if (b->kind != ME_PK_TUPLE) return fail(p, "call arguments are not a tuple");
        return push(p, call(p, a, b));
    case 'b':                                                         /* BUILD */
        if (!(b = pop(p)) || !(a = top(p))) return MOEDIT_EINPUT;
        if (a->kind == ME_PK_OBJECT) a->state = b;   /* kept for inspection only */
        return MOEDIT_OK;
    case 'Q':                                                         /* BINPERSID */
        if (!(a = pop(p))) return MOEDIT_EINPUT;
        return push(p, persistent_load(p, a));
    case 'q': if ((rc = take_le(p, 1, &n))) return rc; return memo_put(p, n);   /* BINPUT */
    case 'r': if ((rc = take_le(p, 4, &n))) return rc; return memo_put(p, n);   /* LONG_BINPUT */
    case 0x94: return memo_put(p, p->memo_len);                                 /* MEMOIZE */
    case 'h': if ((rc = take_le(p, 1, &n))) return rc; return memo_get(p, n);   /* BINGET */
    case 'j': if ((rc = take_le(p, 4, &n))) return rc; return memo_get(p, n);   /* LONG_BINGET */
    default:
        return me_fail(MOEDIT_EINPUT, "%s: pickle: unknown opcode 0x%02x at offset %zu", p->what, op, p->op_pos);
    }
}

int me_pickle_run(const uint8_t *data, size_t size, const char *what, me_pickle **out)
{
    *out = NULL;
    me_pickle *p = me_calloc(1, sizeof *p);
    if (!p) return MOEDIT_EINTERNAL;
    p->what = what ? what : "pickle";
    p->data = data;
    p->size = size;
    p->arena_limit = size < (SIZE_MAX - (16u << 20)) / 64 ? 64 * size + (16u << 20) : SIZE_MAX;
    p->none.kind = ME_PK_NONE;
    p->stack_cap = 64;   /* never NULL: sequences are built from stack + index */
    p->stack = malloc(p->stack_cap * sizeof *p->stack);
    int done = 0, rc = p->stack ? MOEDIT_OK : me_fail(MOEDIT_EINTERNAL, "out of memory");
    while (!rc && !done) {
        if (p->pos >= p->size) {
            p->op_pos = p->pos;
            rc = fail(p, "ends without STOP");
            break;
        }
        rc = step(p, &done);
    }
    free(p->stack); free(p->marks); free(p->memo);
    p->stack = NULL; p->marks = NULL; p->memo = NULL;
    p->data = NULL;
    p->what = NULL;
    if (rc) {
        me_pickle_free(p);
        return rc;
    }
    *out = p;
    return MOEDIT_OK;
}

const me_pk_value *me_pickle_result(const me_pickle *p) { return p->result; }

void me_pickle_free(me_pickle *p)
{
    if (!p) return;
    while (p->blocks) {
        block *b = p->blocks;
        p->blocks = b->next;
        free(b);
    }
    free(p->stack); free(p->marks); free(p->memo);
    free(p);
}

size_t me_pk_dict_len(const me_pk_value *d)
{
    return d && d->kind == ME_PK_DICT ? d->u.seq.n / 2 : 0;
}

const me_pk_value *me_pk_dict_get(const me_pk_value *d, const char *key)
{
    if (!d || d->kind != ME_PK_DICT) return NULL;
    for (size_t i = d->u.seq.n; i >= 2; i -= 2) {
        const me_pk_value *k = d->u.seq.items[i - 2];
        if (k->kind == ME_PK_STR && strcmp(k->u.str.s, key) == 0) return d->u.seq.items[i - 1];
    }
    return NULL;
}

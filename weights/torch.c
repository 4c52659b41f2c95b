/* torch.save checkpoints (zip format, torch >= 1.6): data.pkl run through
   the safe pickle machine, storages mapped from data/<key> entries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "weights/formats.h"
#include "weights/pickle.h"
#include "weights/zip.h"

enum { MAX_DEPTH = 16, MAX_NAME = 1024 };

typedef struct {
    const char *path;
    me_zip zip;
    char prefix[MAX_NAME];     /* "archive/" */
    me_tensors *ts;
    int verify;                /* check the CRC-32 of every entry read */
    uint8_t *read;             /* [zip.count]: entry i is read */
} loader;

/* "<prefix>/data.pkl" at the top level of the archive; the prefix is the
   name torch.save used (archive, or the file's stem in older versions). */
static int find_pickle(loader *L, const me_zip_entry **out)
{
    const me_zip_entry *found = NULL;
    for (int i = 0; i < L->zip.count; i++) {
        const char *n = L->zip.entries[i].name, *slash = strchr(n, '/');
        if (!slash || strcmp(slash + 1, "data.pkl") != 0) continue;
        if (found) return me_fail(MOEDIT_EINPUT, "%s: several data.pkl entries", L->path);
        found = &L->zip.entries[i];
        size_t plen = (size_t)(slash - n) + 1;
        if (plen >= sizeof L->prefix) return me_fail(MOEDIT_EINPUT, "%s: archive prefix too long", L->path);
        memcpy(L->prefix, n, plen);
        L->prefix[plen] = 0;
    }
    if (!found) return me_fail(MOEDIT_EINPUT, "%s: zip archive without <name>/data.pkl: not a torch.save checkpoint", L->path);
    *out = found;
    return MOEDIT_OK;
}

static int check_byteorder(loader *L)
{
    char name[MAX_NAME + 16];
    snprintf(name, sizeof name, "%sbyteorder", L->prefix);
    const me_zip_entry *e = me_zip_find(&L->zip, name);
    if (!e) return MOEDIT_OK;   /* written since torch 2.1; absent means little-endian */
    const uint8_t *p;
    uint64_t n;
    int rc = me_zip_data(&L->zip, e, &p, &n);
    if (rc) return rc;
    L->read[e - L->zip.entries] = 1;
    if (n != 6 || memcmp(p, "little", 6) != 0)
        return me_fail(MOEDIT_EINPUT, "%s: big-endian checkpoint (byteorder %.*s) is not supported", L->path,
                       (int)(n < 16 ? n : 16), (const char *)p);
    return MOEDIT_OK;
}

static int is_contiguous(const me_pk_tensor *t)
{
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return 0;
        expect *= t->shape[i];
    }
    return 1;
}

/* Copies a strided view element by element into dst, row-major. */
static void gather(const me_pk_tensor *t, const uint8_t *base, size_t esize, uint8_t *dst)
{
    int64_t idx[ME_MAX_DIMS] = {0};
    int64_t off = 0;
    for (int64_t n = 0; n < t->numel; n++) {
        memcpy(dst + (size_t)n * esize, base + (size_t)off * esize, esize);
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += t->stride[d];
            if (++idx[d] < t->shape[d]) break;
            off -= t->stride[d] * t->shape[d];
            idx[d] = 0;
        }
    }
}

static int add_tensor(loader *L, const char *name, const me_pk_tensor *t)
{
    const me_pk_storage *s = t->storage;
    char entry[MAX_NAME + 64];
    if (snprintf(entry, sizeof entry, "%sdata/%s", L->prefix, s->key) >= (int)sizeof entry)
        return me_fail(MOEDIT_EINPUT, "%s: %s: storage key too long", L->path, name);
    const me_zip_entry *e = me_zip_find(&L->zip, entry);
    if (!e) return me_fail(MOEDIT_EINPUT, "%s: %s: storage %s missing from the archive", L->path, name, entry);
    const uint8_t *data;
    uint64_t bytes;
    int rc = me_zip_data(&L->zip, e, &data, &bytes);
    if (rc) return rc;
    L->read[e - L->zip.entries] = 1;
    size_t esize = me_dtype_size(s->dtype), need;
    if (!me_mul_size((size_t)s->numel, esize, &need) || need > bytes)
        return me_fail(MOEDIT_EINPUT, "%s: %s: storage %s holds %llu bytes, %lld %s elements need more",
                       L->path, name, entry, (unsigned long long)bytes, (long long)s->numel,
                       me_dtype_name(s->dtype));
    /* the pickle machine checked offset + extent < numel */
    const uint8_t *base = data + (size_t)t->offset * esize;
    const void *ptr = base;
    if (!is_contiguous(t)) {
        /* zero strides (expand) let a tiny storage describe a huge view: cap the copy */
        if ((uint64_t)t->numel > (4 * (uint64_t)L->zip.size + (64u << 20)) / esize)
            return me_fail(MOEDIT_EINPUT, "%s: %s: strided view %lld elements, far larger than the file",
                           L->path, name, (long long)t->numel);
        uint8_t *buf = me_tensors_own_alloc(L->ts, (size_t)t->numel * esize);
        if (!buf) return MOEDIT_EINTERNAL;
        gather(t, base, esize, buf);
        ptr = buf;
    }
    rc = me_tensors_add(L->ts, name, s->dtype, t->ndim, t->shape, ptr);
    return rc ? me_fail_prefix(rc, L->path) : MOEDIT_OK;
}

/* Adds every tensor under dict d; nested dicts give dotted names, other
   values (ints, strings, placeholders) are skipped. */
static int add_dict(loader *L, const me_pk_value *d, const char *prefix, int depth, int *count)
{
    if (depth > MAX_DEPTH) return me_fail(MOEDIT_EINPUT, "%s: state dict nested deeper than %d levels", L->path, MAX_DEPTH);
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const me_pk_value *k = d->u.seq.items[i], *v = d->u.seq.items[i + 1];
        if (v->kind != ME_PK_TENSOR && v->kind != ME_PK_DICT) continue;
        char key[32];
        const char *ks = key;
        if (k->kind == ME_PK_STR) ks = k->u.str.s;
        else if (k->kind == ME_PK_INT) snprintf(key, sizeof key, "%lld", (long long)k->u.i);
        else continue;
        /* DistributedDataParallel and torch.compile wrappers prefix every name */
        while (depth == 0 && (strncmp(ks, "module.", 7) == 0 || strncmp(ks, "_orig_mod.", 10) == 0))
            ks += ks[0] == 'm' ? 7 : 10;
        char name[MAX_NAME];
        if (snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", ks) >= (int)sizeof name)
            return me_fail(MOEDIT_EINPUT, "%s: tensor name too long", L->path);
        int rc = v->kind == ME_PK_TENSOR ? add_tensor(L, name, v->u.tensor)
                                         : add_dict(L, v, name, depth + 1, count);
        if (rc) return rc;
        if (v->kind == ME_PK_TENSOR) (*count)++;
    }
    return MOEDIT_OK;
}

/* Scalars of a train.py "args" Namespace become metadata "args.<name>". */
static int add_args_meta(loader *L, const me_pk_value *top)
{
    const me_pk_value *args = me_pk_dict_get(top, "args");
    if (!args || args->kind != ME_PK_OBJECT || !args->state || args->state->kind != ME_PK_DICT) return MOEDIT_OK;
    const me_pk_value *d = args->state;
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const me_pk_value *k = d->u.seq.items[i], *v = d->u.seq.items[i + 1];
        if (k->kind != ME_PK_STR || strlen(k->u.str.s) > 200) continue;
        char key[256], val[64];
        const char *vs = val;
        switch (v->kind) {
        case ME_PK_STR: vs = v->u.str.s; break;
        case ME_PK_INT: snprintf(val, sizeof val, "%lld", (long long)v->u.i); break;
        case ME_PK_BOOL: vs = v->u.i ? "true" : "false"; break;
        case ME_PK_FLOAT: snprintf(val, sizeof val, "%.17g", v->u.f); break;
        default: continue;
        }
        snprintf(key, sizeof key, "args.%s", k->u.str.s);
        int rc = me_tensors_set_meta(L->ts, key, vs);
        if (rc) return rc;
    }
    return MOEDIT_OK;
}

static const char *describe(const me_pk_value *v)
{
    switch (v->kind) {
    case ME_PK_OBJECT: return "an object that would need code execution to build";
    case ME_PK_TENSOR: return "a single tensor";
    case ME_PK_LIST: case ME_PK_TUPLE: return "a list";
    case ME_PK_GLOBAL: return "a class or function reference";
    default: return "a plain value";
    }
}

/* The CRC-32 of every entry marked read, all at once so threads share the work. */
static int verify_read(loader *L)
{
    const me_zip_entry **list = me_calloc((size_t)L->zip.count, sizeof *list);
    if (!list) return MOEDIT_EINTERNAL;
    int n = 0;
    for (int i = 0; i < L->zip.count; i++)
        if (L->read[i]) list[n++] = &L->zip.entries[i];
    int rc = me_zip_verify(&L->zip, list, n);
    free(list);
    return rc;
}

static int load(loader *L, const uint8_t *data, size_t size)
{
    int rc = me_zip_open_memory(&L->zip, data, size, L->path);
    if (rc) return rc;
    if (!(L->read = me_calloc((size_t)L->zip.count, 1))) return MOEDIT_EINTERNAL;
    const me_zip_entry *pe = NULL;
    const uint8_t *pkl;
    uint64_t pkl_size;
    if ((rc = find_pickle(L, &pe)) || (rc = me_zip_data(&L->zip, pe, &pkl, &pkl_size)) || (rc = check_byteorder(L)))
        return rc;
    /* the pickle first: a corrupt one would fail later with a misleading message */
    if (L->verify && (rc = me_zip_verify(&L->zip, &pe, 1))) return rc;
    me_pickle *pk;
    if ((rc = me_pickle_run(pkl, (size_t)pkl_size, L->path, &pk))) return rc;
    const me_pk_value *top = me_pickle_result(pk), *sd = top;
    /* train.py's EMA weights first; "module" is a DeepSpeed engine checkpoint */
    static const char *choices[] = {"ema", "model", "state_dict", "module"};
    const char *chosen = "";
    if (top->kind == ME_PK_DICT) {
        for (int i = 0; i < 4; i++) {
            const me_pk_value *v = me_pk_dict_get(top, choices[i]);
            if (v && v->kind == ME_PK_DICT) {
                sd = v;
                chosen = choices[i];
                break;
            }
        }
    }
    int count = 0;
    if (sd->kind != ME_PK_DICT) {
        rc = me_fail(MOEDIT_EINPUT, "%s: the pickled object is %s, not a state dict (nothing was executed)",
                     L->path, describe(sd));
    } else {
        rc = add_dict(L, sd, "", 0, &count);
        if (!rc && count == 0)
            rc = me_fail(MOEDIT_EINPUT, "%s: the checkpoint%s%s%s holds no tensors", L->path,
                         *chosen ? " entry \"" : "", chosen, *chosen ? "\"" : "");
        if (!rc && *chosen) rc = me_tensors_set_meta(L->ts, "torch.state_dict", chosen);
        if (!rc && top->kind == ME_PK_DICT) rc = add_args_meta(L, top);
        if (!rc && L->verify) rc = verify_read(L);
    }
    me_pickle_free(pk);
    return rc;
}

int me_parse_torch(me_tensors *ts, const uint8_t *data, size_t size, const char *label)
{
    loader L;
    memset(&L, 0, sizeof L);
    L.path = label;
    L.ts = ts;
    L.verify = me_verify_enabled();
    int rc = load(&L, data, size);
    free(L.read);
    me_zip_close(&L.zip);
    return rc;
}

int me_read_torch(const char *path, me_tensors **out)
{
    *out = NULL;
    loader L;
    memset(&L, 0, sizeof L);
    L.path = path;
    L.verify = me_verify_enabled();
    me_file f;
    int rc = me_file_open(path, &f);
    if (rc) return rc;
    L.ts = me_tensors_new(path);
    if (!L.ts) {
        me_file_close(&f);
        return MOEDIT_EINTERNAL;
    }
    rc = load(&L, f.data, f.size);
    free(L.read);
    me_zip_close(&L.zip);
    if (!rc) rc = me_tensors_own_file(L.ts, &f);   /* tensors point into the mapping */
    if (rc) {
        me_file_close(&f);
        me_tensors_free(L.ts);
        return rc;
    }
    *out = L.ts;
    return MOEDIT_OK;
}

/* The tensor registry (see tensors.h): a name-hashed array of tensors plus the
   mappings and buffers their data lives in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "weights/formats.h"
#include "weights/tensors.h"

struct me_tensors {
    char *source;
    me_tensor *items;
    int count, cap;
    int *slots;          /* open-addressing hash of item indices, -1 = empty */
    int nslots;
    me_file *files;
    int nfiles;
    void **owned;
    int nowned;
    char **meta;         /* key, value, key, value, … */
    int nmeta;
    uint32_t digest;     /* me_tensors_digest's, once has_digest */
    int has_digest;
};

static const struct { const char *name; size_t size; } dtype_info[ME_DTYPE_COUNT] = {
    [ME_F32] = {"F32", 4}, [ME_F16] = {"F16", 2}, [ME_BF16] = {"BF16", 2},
    [ME_F64] = {"F64", 8}, [ME_I64] = {"I64", 8}, [ME_I32] = {"I32", 4},
    [ME_I16] = {"I16", 2}, [ME_I8] = {"I8", 1},   [ME_U8] = {"U8", 1},
    [ME_BOOL] = {"BOOL", 1},
};

size_t me_dtype_size(me_dtype t) { return (unsigned)t < ME_DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *me_dtype_name(me_dtype t) { return (unsigned)t < ME_DTYPE_COUNT ? dtype_info[t].name : "?"; }

int me_dtype_from_name(const char *name, me_dtype *t)
{
    for (int i = 0; i < ME_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) { *t = (me_dtype)i; return 1; }
    return 0;
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

me_tensors *me_tensors_new(const char *source)
{
    me_tensors *ts = me_calloc(1, sizeof *ts);
    if (!ts) return NULL;
    ts->source = me_strdup(source ? source : "");
    if (!ts->source) { free(ts); return NULL; }
    return ts;
}

void me_tensors_free(me_tensors *ts)
{
    if (!ts) return;
    for (int i = 0; i < ts->count; i++) {
        free(ts->items[i].name);
        me_free_aligned(ts->items[i].f32);
    }
    for (int i = 0; i < ts->nfiles; i++) me_file_close(&ts->files[i]);
    for (int i = 0; i < ts->nowned; i++) me_free_aligned(ts->owned[i]);
    for (int i = 0; i < 2 * ts->nmeta; i++) free(ts->meta[i]);
    free(ts->items); free(ts->slots); free(ts->files); free(ts->owned); free(ts->meta);
    free(ts->source);
    free(ts);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap) return MOEDIT_OK;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) return me_fail(MOEDIT_EINTERNAL, "out of memory");
    *arr = p;
    *cap = ncap;
    return MOEDIT_OK;
}

static int rehash(me_tensors *ts)
{
    int n = 64;
    while (n < ts->count * 2) n *= 2;
    int *slots = malloc((size_t)n * sizeof *slots);
    if (!slots) return me_fail(MOEDIT_EINTERNAL, "out of memory");
    memset(slots, -1, (size_t)n * sizeof *slots);
    for (int i = 0; i < ts->count; i++) {
        uint32_t h = hash_name(ts->items[i].name) & (uint32_t)(n - 1);
        while (slots[h] >= 0) h = (h + 1) & (uint32_t)(n - 1);
        slots[h] = i;
    }
    free(ts->slots);
    ts->slots = slots;
    ts->nslots = n;
    return MOEDIT_OK;
}

const me_tensor *me_tensors_find(const me_tensors *ts, const char *name)
{
    if (!ts->nslots) return NULL;
    uint32_t h = hash_name(name) & (uint32_t)(ts->nslots - 1);
    while (ts->slots[h] >= 0) {
        const me_tensor *t = &ts->items[ts->slots[h]];
        if (strcmp(t->name, name) == 0) return t;
        h = (h + 1) & (uint32_t)(ts->nslots - 1);
    }
    return NULL;
}

int me_tensors_add(me_tensors *ts, const char *name, me_dtype dtype, int ndim,
                   const int64_t *shape, const void *data)
{
    if ((unsigned)dtype >= ME_DTYPE_COUNT) return me_fail(MOEDIT_EINPUT, "%s: unknown dtype", name);
    if (ndim < 0 || ndim > ME_MAX_DIMS)
        return me_fail(MOEDIT_EINPUT, "%s: %d dimensions (at most %d)", name, ndim, ME_MAX_DIMS);
    if (me_tensors_find(ts, name)) return me_fail(MOEDIT_EINPUT, "%s: duplicate tensor", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !me_mul_size(numel, (size_t)shape[i], &numel) || numel > (size_t)INT64_MAX / 8)
            return me_fail(MOEDIT_EINPUT, "%s: invalid shape", name);
    }
    if (grow((void **)&ts->items, &ts->cap, ts->count + 1, sizeof *ts->items)) return MOEDIT_EINTERNAL;
    me_tensor *t = &ts->items[ts->count];
    memset(t, 0, sizeof *t);
    t->name = me_strdup(name);
    if (!t->name) return MOEDIT_EINTERNAL;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = (int64_t)numel;
    t->data = data;
    ts->count++;
    if (ts->count * 2 > ts->nslots) return rehash(ts);
    uint32_t h = hash_name(name) & (uint32_t)(ts->nslots - 1);
    while (ts->slots[h] >= 0) h = (h + 1) & (uint32_t)(ts->nslots - 1);
    ts->slots[h] = ts->count - 1;
    return MOEDIT_OK;
}

void *me_tensors_own_alloc(me_tensors *ts, size_t bytes)
{
    int cap = ts->nowned;   /* grown one at a time: owned buffers are few */
    void **p = realloc(ts->owned, (size_t)(cap + 1) * sizeof *p);
    if (!p) { me_fail(MOEDIT_EINTERNAL, "out of memory"); return NULL; }
    ts->owned = p;
    void *buf = me_alloc_aligned(bytes);
    if (!buf) return NULL;
    ts->owned[ts->nowned++] = buf;
    return buf;
}

int me_tensors_own_file(me_tensors *ts, me_file *f)
{
    me_file *p = realloc(ts->files, (size_t)(ts->nfiles + 1) * sizeof *p);
    if (!p) return me_fail(MOEDIT_EINTERNAL, "out of memory");
    ts->files = p;
    ts->files[ts->nfiles++] = *f;
    memset(f, 0, sizeof *f);
    return MOEDIT_OK;
}

int me_tensors_set_meta(me_tensors *ts, const char *key, const char *value)
{
    for (int i = 0; i < ts->nmeta; i++)
        if (strcmp(ts->meta[2 * i], key) == 0) {
            char *v = me_strdup(value);
            if (!v) return MOEDIT_EINTERNAL;
            free(ts->meta[2 * i + 1]);
            ts->meta[2 * i + 1] = v;
            return MOEDIT_OK;
        }
    char **p = realloc(ts->meta, (size_t)(ts->nmeta + 1) * 2 * sizeof *p);
    if (!p) return me_fail(MOEDIT_EINTERNAL, "out of memory");
    ts->meta = p;
    char *k = me_strdup(key), *v = me_strdup(value);
    if (!k || !v) { free(k); free(v); return MOEDIT_EINTERNAL; }
    ts->meta[2 * ts->nmeta] = k;
    ts->meta[2 * ts->nmeta + 1] = v;
    ts->nmeta++;
    return MOEDIT_OK;
}

const char *me_tensors_source(const me_tensors *ts) { return ts->source; }
int me_tensors_count(const me_tensors *ts) { return ts->count; }
const me_tensor *me_tensors_at(const me_tensors *ts, int i) { return &ts->items[i]; }
int me_tensors_meta_count(const me_tensors *ts) { return ts->nmeta; }

void me_tensors_meta_at(const me_tensors *ts, int i, const char **key, const char **value)
{
    *key = ts->meta[2 * i];
    *value = ts->meta[2 * i + 1];
}

const char *me_tensors_meta(const me_tensors *ts, const char *key)
{
    for (int i = 0; i < ts->nmeta; i++)
        if (strcmp(ts->meta[2 * i], key) == 0) return ts->meta[2 * i + 1];
    return NULL;
}

int64_t me_tensors_param_count(const me_tensors *ts)
{
    int64_t n = 0;
    for (int i = 0; i < ts->count; i++) n += ts->items[i].numel;
    return n;
}

/* Each tensor's CRC on its own thread, joined in order by crc32_combine:
   the value of one sequential pass, at the threads' pace. */
int me_tensors_digest(me_tensors *ts, uint32_t *out)
{
    if (ts->has_digest) {
        *out = ts->digest;
        return MOEDIT_OK;
    }
    uint32_t *crc = malloc((size_t)(ts->count ? ts->count : 1) * sizeof *crc);
    uint64_t *len = malloc((size_t)(ts->count ? ts->count : 1) * sizeof *len);
    if (!crc || !len) {
        free(crc), free(len);
        return me_fail(MOEDIT_EINTERNAL, "out of memory");
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(me_threads())
    for (int i = 0; i < ts->count; i++) {
        const me_tensor *t = &ts->items[i];
        uint8_t head[16];
        head[0] = (uint8_t)t->dtype, head[1] = (uint8_t)t->ndim;
        uLong c = crc32(0, (const Bytef *)t->name, (uInt)strlen(t->name) + 1);
        c = crc32(c, head, 2);
        for (int d = 0; d < t->ndim; d++) {
            for (int b = 0; b < 8; b++) head[b] = (uint8_t)((uint64_t)t->shape[d] >> (8 * b));
            c = crc32(c, head, 8);
        }
        uint64_t n = (uint64_t)t->numel * me_dtype_size(t->dtype), bytes = strlen(t->name) + 3 + 8 * (uint64_t)t->ndim;
        for (const uint8_t *p = t->data; n; ) {
            uInt step = n > (1u << 30) ? 1u << 30 : (uInt)n;
            c = crc32(c, p, step);
            p += step, n -= step, bytes += step;
        }
        crc[i] = (uint32_t)c, len[i] = bytes;
    }
    uLong all = crc32(0, NULL, 0);
    for (int i = 0; i < ts->count; i++) all = crc32_combine(all, crc[i], (z_off_t)len[i]);
    free(crc), free(len);
    *out = ts->digest = (uint32_t)all;
    ts->has_digest = 1;
    return MOEDIT_OK;
}

const char *me_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

void me_tensor_to_f32(const me_tensor *t, float *dst)
{
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ME_F32: { float v; memcpy(&v, p + 4 * i, 4); dst[i] = v; break; }
        case ME_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = me_f16_to_f32(v); break; }
        case ME_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = me_bf16_to_f32(v); break; }
        case ME_F64: { double v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; break; }
        case ME_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; break; }
        case ME_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = (float)v; break; }
        case ME_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = (float)v; break; }
        case ME_I8: dst[i] = (float)(int8_t)p[i]; break;
        case ME_U8: case ME_BOOL: dst[i] = (float)p[i]; break;
        default: dst[i] = 0; break;
        }
    }
}

/* Index of the first of n elements (esize bytes, little-endian) whose
   exponent bits, mask, are all ones (NaN or infinity), or -1. */
static int64_t first_non_finite(const uint8_t *p, int64_t n, int esize, uint64_t mask)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        memcpy(&v, p + (size_t)i * esize, (size_t)esize);
        if ((v & mask) == mask) return i;
    }
    return -1;
}

int me_tensor_check_finite(me_tensor *t, const char *source)
{
    if (t->finite) return MOEDIT_OK;
    uint64_t mask;
    switch (t->dtype) {
    case ME_F32: mask = 0x7f800000u; break;
    case ME_F16: mask = 0x7c00u; break;
    case ME_BF16: mask = 0x7f80u; break;
    case ME_F64: mask = 0x7ff0000000000000ull; break;
    default: t->finite = 1; return MOEDIT_OK;
    }
    /* one branch-free pass first: weights are almost always clean */
    const uint8_t *p = t->data;
    int esize = (int)me_dtype_size(t->dtype);
    int bad = 0;
    if (t->dtype == ME_F32 && ((uintptr_t)p & 3) == 0) {
        const uint32_t *w = (const uint32_t *)p;
        for (int64_t i = 0; i < t->numel; i++) bad |= (w[i] & 0x7f800000u) == 0x7f800000u;
    } else {
        bad = first_non_finite(p, t->numel, esize, mask) >= 0;
    }
    if (bad) {
        int64_t i = first_non_finite(p, t->numel, esize, mask);
        uint64_t v = 0;
        memcpy(&v, p + (size_t)i * esize, (size_t)esize);
        uint64_t mantissa = (mask & (~mask + 1)) - 1, sign = v >> (8 * esize - 1);
        return me_fail(MOEDIT_EINPUT, "%s: tensor %s holds %s at index %lld: the weights are corrupt", source,
                       t->name, v & mantissa ? "nan" : sign ? "-inf" : "inf", (long long)i);
    }
    t->finite = 1;
    return MOEDIT_OK;
}

static int shape_matches(const me_tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < 0) return 1;
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) return 0;
    return 1;
}

int me_tensors_f32_opt(me_tensors *ts, const char *name, int ndim, const int64_t *shape,
                       const float **out)
{
    *out = NULL;
    me_tensor *t = (me_tensor *)me_tensors_find(ts, name);
    if (!t) return MOEDIT_OK;
    if (!shape_matches(t, ndim, shape)) {
        char want[160], got[160];
        return me_fail(MOEDIT_EINPUT, "%s: expected %s, got %s", name,
                       me_shape_str(ndim, shape, want, sizeof want),
                       me_shape_str(t->ndim, t->shape, got, sizeof got));
    }
    int rc = me_tensor_check_finite(t, ts->source);
    if (rc) return rc;
    if (t->dtype == ME_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = t->data;
        return MOEDIT_OK;
    }
    if (!t->f32) {
        size_t bytes;
        if (!me_mul_size((size_t)t->numel, 4, &bytes)) return me_fail(MOEDIT_EINPUT, "%s: too large", name);
        t->f32 = me_alloc_aligned(bytes);
        if (!t->f32) return MOEDIT_EINTERNAL;
        me_tensor_to_f32(t, t->f32);
    }
    *out = t->f32;
    return MOEDIT_OK;
}

int me_tensors_f32(me_tensors *ts, const char *name, int ndim, const int64_t *shape,
                   const float **out)
{
    int rc = me_tensors_f32_opt(ts, name, ndim, shape, out);
    if (rc == MOEDIT_OK && !*out) {
        char want[160];
        return me_fail(MOEDIT_EINPUT, "%s: missing tensor %s%s%s", ts->source, name,
                       ndim >= 0 ? " " : "", ndim >= 0 ? me_shape_str(ndim, shape, want, sizeof want) : "");
    }
    return rc;
}

int me_tensors_open(const char *path, me_tensors **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return me_fail(MOEDIT_EINPUT, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) return me_read_diffusers(path, out);
    FILE *f = fopen(path, "rb");
    if (!f) return me_fail(MOEDIT_EINPUT, "%s: cannot open", path);
    uint8_t head[9] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) return me_read_torch(path, out);
    if (got == 9 && head[8] == '{') return me_read_safetensors(path, out);
    if (got >= 2 && head[0] == 0x80)
        return me_fail(MOEDIT_EINPUT, "%s: legacy (pre-1.6) torch.save format; re-save it with a current torch", path);
    return me_fail(MOEDIT_EINPUT, "%s: not a torch zip checkpoint, safetensors file or diffusers folder", path);
}

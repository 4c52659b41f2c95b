/* safetensors reader and writer.

   Layout: u64 little-endian header length n, n bytes of JSON
   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
    "__metadata__": {"key": "value"}}, then the data section. Offsets are
   relative to the data section. The file is untrusted: every length, shape
   and offset is checked before a tensor is registered, and tensors point
   straight into the mapping (no copy). Offsets may overlap and need not
   cover the data section (the reference implementation is stricter; we
   only insist that every tensor lies inside the file). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "weights/formats.h"

/* The reference implementation's cap: a larger header is not a real file. */
#define MAX_HEADER ((uint64_t)100000000)
/* Shapes and offsets arrive as JSON doubles: beyond 2^53 they are not exact. */
#define MAX_EXACT 9007199254740992.0

/* What control bytes a UTF-8 check lets through: none in tensor names (a
   decoded newline would break one-line error messages), JSON whitespace in
   the raw header (other raw control bytes are illegal JSON), all in
   metadata values (the writer escapes them). */
static int utf8_ok(const uint8_t *s, size_t n, int controls) { return me_utf8_check(s, n, controls) == ME_UTF8_OK; }

/* A JSON number that is an exact non-negative integer. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= MAX_EXACT) || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Names as they appear in messages: bounded, so a hostile 1 MB name cannot
   crowd out the rest of the line. */
#define NAME_FMT "%.120s"

static int parse_metadata(me_tensors *ts, const cJSON *meta, const char *label)
{
    if (!cJSON_IsObject(meta)) return me_fail(MOEDIT_EINPUT, "%s: __metadata__ is not an object", label);
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return me_fail(MOEDIT_EINPUT, "%s: __metadata__ value of '" NAME_FMT "' is not a string",
                           label, m->string);
        if (me_tensors_set_meta(ts, m->string, m->valuestring)) return MOEDIT_EINTERNAL;
    }
    return MOEDIT_OK;
}

static int parse_entry(me_tensors *ts, const cJSON *e, const uint8_t *data, uint64_t data_size,
                       const char *label)
{
    const char *name = e->string;
    if (!*name || !utf8_ok((const uint8_t *)name, strlen(name), ME_UTF8_NO_CONTROL))
        return me_fail(MOEDIT_EINPUT, "%s: tensor name is empty or not valid UTF-8", label);
    if (!cJSON_IsObject(e)) return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": entry is not an object", label, name);

    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": needs string dtype, array shape and array data_offsets",
                       label, name);

    me_dtype dt;
    if (!me_dtype_from_name(jd->valuestring, &dt)) {
        static const char *known[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(jd->valuestring, known[i]))
                return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": dtype %s is not supported", label, name, known[i]);
        return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": unknown dtype '%.20s'", label, name, jd->valuestring);
    }

    int ndim = cJSON_GetArraySize(js);
    if (ndim > ME_MAX_DIMS)
        return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": %d dimensions (at most %d)", label, name, ndim, ME_MAX_DIMS);
    int64_t shape[ME_MAX_DIMS];
    size_t bytes = me_dtype_size(dt);
    int d = 0;
    for (const cJSON *s = js->child; s; s = s->next, d++) {
        uint64_t v;
        if (!json_uint(s, &v))
            return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": shape entries must be non-negative integers", label, name);
        if (!me_mul_size(bytes, (size_t)v, &bytes) || bytes > (uint64_t)INT64_MAX)
            return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": shape too large", label, name);
        shape[d] = (int64_t)v;
    }

    uint64_t begin, end;
    if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end))
        return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": data_offsets must be two non-negative integers", label, name);
    if (begin > end || end > data_size)
        return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": data_offsets [%llu, %llu] outside the data section (%llu bytes)",
                       label, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    if (end - begin != bytes)
        return me_fail(MOEDIT_EINPUT, "%s: " NAME_FMT ": data_offsets span %llu bytes, shape and dtype need %llu",
                       label, name, (unsigned long long)(end - begin), (unsigned long long)bytes);
    int rc = me_tensors_add(ts, name, dt, ndim, shape, data + begin);
    if (rc) return me_fail_prefix(rc, label);
    return MOEDIT_OK;
}

int me_parse_safetensors(me_tensors *ts, const uint8_t *data, size_t size, const char *label)
{
    if (size < 8) return me_fail(MOEDIT_EINPUT, "%s: truncated safetensors file (%zu bytes)", label, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n > size - 8)
        return me_fail(MOEDIT_EINPUT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                       label, (unsigned long long)n, size);
    if (n > MAX_HEADER)
        return me_fail(MOEDIT_EINPUT, "%s: header length %llu exceeds the %llu-byte limit", label,
                       (unsigned long long)n, (unsigned long long)MAX_HEADER);
    const uint8_t *hdr = data + 8;
    if (n < 2 || hdr[0] != '{') return me_fail(MOEDIT_EINPUT, "%s: header is not a JSON object", label);
    if (!utf8_ok(hdr, (size_t)n, ME_UTF8_WHITESPACE)) return me_fail(MOEDIT_EINPUT, "%s: header is not valid UTF-8 JSON", label);

    /* cJSON gets its own NUL-terminated copy: the header is not terminated
       in the file, and the data right after it must never be read as JSON. */
    char *text = me_alloc((size_t)n + 1);
    if (!text) return MOEDIT_EINTERNAL;
    memcpy(text, hdr, (size_t)n);
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n + 1, &end, 0);
    int rc = MOEDIT_OK;
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        rc = me_fail(MOEDIT_EINPUT, "%s: invalid JSON header (near byte %zu)", label, at);
        goto done;
    }
    for (const char *p = end; p < text + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = me_fail(MOEDIT_EINPUT, "%s: trailing bytes after the JSON header", label);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        rc = me_fail(MOEDIT_EINPUT, "%s: header is not a JSON object", label);
        goto done;
    }
    const uint8_t *body = hdr + n;
    uint64_t body_size = size - 8 - n;
    for (const cJSON *e = root->child; e && rc == MOEDIT_OK; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) rc = parse_metadata(ts, e, label);
        else rc = parse_entry(ts, e, body, body_size, label);
    }
done:
    cJSON_Delete(root);
    free(text);
    return rc;
}

int me_read_safetensors(const char *path, me_tensors **out)
{
    *out = NULL;
    me_file f;
    int rc = me_file_open(path, &f);
    if (rc) return rc;
    me_tensors *ts = me_tensors_new(path);
    if (!ts) { me_file_close(&f); return MOEDIT_EINTERNAL; }
    rc = me_parse_safetensors(ts, f.data, f.size, path);
    if (rc) { me_file_close(&f); me_tensors_free(ts); return rc; }
    rc = me_tensors_own_file(ts, &f);
    if (rc) { me_file_close(&f); me_tensors_free(ts); return rc; }
    *out = ts;
    return MOEDIT_OK;
}

/* ---- writer ------------------------------------------------------------ */

static int is_float(me_dtype t) { return t == ME_F32 || t == ME_F16 || t == ME_BF16 || t == ME_F64; }

static float load_float(me_dtype t, const uint8_t *p)
{
    switch (t) {
    case ME_F16: { uint16_t v; memcpy(&v, p, 2); return me_f16_to_f32(v); }
    case ME_BF16: { uint16_t v; memcpy(&v, p, 2); return me_bf16_to_f32(v); }
    case ME_F64: { double v; memcpy(&v, p, 8); return (float)v; }
    default: { float v; memcpy(&v, p, 4); return v; }
    }
}

static void store_float(me_dtype t, float v, uint8_t *p)
{
    if (t == ME_F32) { memcpy(p, &v, 4); return; }
    uint16_t h = t == ME_F16 ? me_f32_to_f16(v) : me_f32_to_bf16(v);
    memcpy(p, &h, 2);
}

typedef struct { int index; me_dtype dtype; size_t bytes; } out_tensor;

/* Largest elements first, so every tensor starts at a multiple of its
   element size (the header is padded to 8) without leaving holes, which
   other readers reject; ties keep the registry's order. */
static int cmp_out(const void *a, const void *b)
{
    const out_tensor *x = a, *y = b;
    size_t sx = me_dtype_size(x->dtype), sy = me_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return x->index - y->index;
}

/* The JSON header, unpadded; NULL after me_fail. Numbers are printed by
   hand: cJSON would print offsets past 10^15 in exponent notation. */
static char *build_header(const me_tensors *ts, const out_tensor *ot, int count)
{
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    if (!root) goto oom;
    if (me_tensors_meta_count(ts)) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        if (!meta) goto oom;
        for (int i = 0; i < me_tensors_meta_count(ts); i++) {
            const char *k, *v;
            me_tensors_meta_at(ts, i, &k, &v);
            if (!cJSON_AddStringToObject(meta, k, v)) goto oom;
        }
    }
    uint64_t offset = 0;
    char buf[32 * (ME_MAX_DIMS + 1)];
    for (int i = 0; i < count; i++) {
        const me_tensor *t = me_tensors_at(ts, ot[i].index);
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", me_dtype_name(ot[i].dtype))) goto oom;
        size_t used = 0;
        buf[used++] = '[';
        for (int d = 0; d < t->ndim; d++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        snprintf(buf + used, sizeof buf - used, "]");
        if (!cJSON_AddRawToObject(e, "shape", buf)) goto oom;
        snprintf(buf, sizeof buf, "[%llu,%llu]", (unsigned long long)offset,
                 (unsigned long long)(offset + ot[i].bytes));
        if (!cJSON_AddRawToObject(e, "data_offsets", buf)) goto oom;
        offset += ot[i].bytes;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) goto oom;
    cJSON_Delete(root);
    return text;
oom:
    cJSON_Delete(root);
    me_fail(MOEDIT_EINTERNAL, "out of memory building the safetensors header");
    return NULL;
}

/* Converts and writes one tensor in fixed-size chunks, so a tens-of-GB
   checkpoint never needs a second full copy in memory. */
/* A finite weight that becomes an infinity in the narrower type (beyond
   f16's 65504, or an f64 beyond f32's range) is refused: the file would
   load as garbage, or not at all. */
static int write_tensor(me_atomic_file *af, const char *path, const me_tensor *t, me_dtype dtype, uint8_t *chunk,
                        size_t chunk_elems)
{
    size_t in_size = me_dtype_size(t->dtype), out_size = me_dtype_size(dtype);
    size_t n = (size_t)t->numel;
    const uint8_t *src = t->data;
    if (dtype == t->dtype) return me_atomic_write(af, src, n * in_size);
    for (size_t i = 0; i < n; i += chunk_elems) {
        size_t m = n - i < chunk_elems ? n - i : chunk_elems;
        for (size_t k = 0; k < m; k++) {
            const uint8_t *from = src + (i + k) * in_size;
            store_float(dtype, load_float(t->dtype, from), chunk + k * out_size);
            if (isinf(load_float(dtype, chunk + k * out_size))) {
                double v;
                if (t->dtype == ME_F64) memcpy(&v, from, 8);
                else v = load_float(t->dtype, from);
                if (isfinite(v))
                    return me_fail(MOEDIT_EINPUT, "%s: tensor %s: element %zu (%g) does not fit in %s", path,
                                   t->name, i + k, v, me_dtype_name(dtype));
            }
        }
        int rc = me_atomic_write(af, chunk, m * out_size);
        if (rc) return rc;
    }
    return MOEDIT_OK;
}

/* Never write a file the reader would refuse: names and metadata come from
   other formats (pickled dict keys, training args) with other rules. */
static int check_strings(const me_tensors *ts, const char *path)
{
    for (int i = 0; i < me_tensors_count(ts); i++) {
        const char *n = me_tensors_at(ts, i)->name;
        if (!*n || !strcmp(n, "__metadata__") || !utf8_ok((const uint8_t *)n, strlen(n), ME_UTF8_NO_CONTROL))
            return me_fail(MOEDIT_EINPUT, "%s: tensor #%d: its name is empty, reserved, or has control "
                           "characters or invalid UTF-8", path, i);
    }
    for (int i = 0; i < me_tensors_meta_count(ts); i++) {
        const char *k, *v;
        me_tensors_meta_at(ts, i, &k, &v);
        if (!utf8_ok((const uint8_t *)k, strlen(k), ME_UTF8_ANY_CONTROL) ||
            !utf8_ok((const uint8_t *)v, strlen(v), ME_UTF8_ANY_CONTROL))
            return me_fail(MOEDIT_EINPUT, "%s: metadata entry #%d is not valid UTF-8", path, i);
    }
    return MOEDIT_OK;
}

int me_write_safetensors(const me_tensors *ts, const char *path, me_dtype dtype)
{
    if (dtype != ME_F32 && dtype != ME_F16 && dtype != ME_BF16)
        return me_fail(MOEDIT_EINPUT, "%s: safetensors output dtype must be F32, F16 or BF16", path);
    int rc = check_strings(ts, path);
    if (rc) return rc;
    int count = me_tensors_count(ts);
    out_tensor *ot = me_calloc(count ? (size_t)count : 1, sizeof *ot);
    if (!ot) return MOEDIT_EINTERNAL;
    for (int i = 0; i < count; i++) {
        const me_tensor *t = me_tensors_at(ts, i);
        ot[i].index = i;
        ot[i].dtype = is_float(t->dtype) ? dtype : t->dtype;
        ot[i].bytes = (size_t)t->numel * me_dtype_size(ot[i].dtype);
    }
    qsort(ot, (size_t)count, sizeof *ot, cmp_out);

    const size_t chunk_elems = 1 << 16;
    char *header = build_header(ts, ot, count);
    uint8_t *chunk = header ? me_alloc(chunk_elems * 4) : NULL;
    if (!chunk) { free(ot); cJSON_free(header); return MOEDIT_EINTERNAL; }

    size_t hlen = strlen(header), padded = (hlen + 7) & ~(size_t)7;
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    me_atomic_file af;
    rc = me_atomic_open(&af, path);
    if (!rc) rc = me_atomic_write(&af, len_le, 8);
    if (!rc) rc = me_atomic_write(&af, header, hlen);
    if (!rc) rc = me_atomic_write(&af, spaces, padded - hlen);
    for (int i = 0; i < count && !rc; i++)
        rc = write_tensor(&af, path, me_tensors_at(ts, ot[i].index), ot[i].dtype, chunk, chunk_elems);
    if (!rc) rc = me_atomic_commit(&af);
    else if (af.fp) me_atomic_abort(&af);
    free(chunk);
    cJSON_free(header);
    free(ot);
    return rc;
}

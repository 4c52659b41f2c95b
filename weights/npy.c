/* .npy / .npz reading and writing; see npy.h and numpy/lib/format.py for
   the format (magic, version, header length, a Python dict literal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "weights/npy.h"

static const struct { const char *descr; me_dtype dtype; } descrs[] = {
    {"f4", ME_F32}, {"f8", ME_F64}, {"f2", ME_F16}, {"i8", ME_I64}, {"i4", ME_I32},
    {"i2", ME_I16}, {"i1", ME_I8}, {"u1", ME_U8}, {"b1", ME_BOOL},
};

void me_array_free(me_array *a)
{
    me_free_aligned(a->owned);
    me_file_close(&a->file);
    memset(a, 0, sizeof *a);
}

static me_tensor as_tensor(const me_array *a)
{
    me_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = a->dtype;
    t.numel = a->numel;
    t.data = a->data;
    return t;
}

void me_array_to_f32(const me_array *a, float *dst)
{
    me_tensor t = as_tensor(a);
    me_tensor_to_f32(&t, dst);
}

/* float to int64 without undefined behaviour: NaN and out-of-range give 0 */
static int64_t f2i(double v) { return v > -9.2e18 && v < 9.2e18 ? (int64_t)v : 0; }

void me_array_to_i64(const me_array *a, int64_t *dst)
{
    const uint8_t *p = a->data;
    for (int64_t i = 0; i < a->numel; i++) {
        switch (a->dtype) {
        case ME_I64: memcpy(&dst[i], p + 8 * i, 8); break;
        case ME_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = v; break; }
        case ME_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = v; break; }
        case ME_I8: dst[i] = (int8_t)p[i]; break;
        case ME_U8: case ME_BOOL: dst[i] = p[i]; break;
        case ME_F64: { double v; memcpy(&v, p + 8 * i, 8); dst[i] = f2i(v); break; }
        case ME_F32: { float v; memcpy(&v, p + 4 * i, 4); dst[i] = f2i(v); break; }
        case ME_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = f2i(me_f16_to_f32(v)); break; }
        case ME_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); dst[i] = f2i(me_bf16_to_f32(v)); break; }
        default: dst[i] = 0; break;
        }
    }
}

/* ---- the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */

typedef struct {
    const char *s, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')) c->s++;
}

static int eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->s < c->end && *c->s == ch) { c->s++; return 1; }
    return 0;
}

/* A quoted string into buf; 0 when malformed or too long. */
static int read_str(cursor *c, char *buf, size_t cap)
{
    skip_ws(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return 0;
    char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (n + 1 >= cap) return 0;
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end) return 0;
    c->s++;
    buf[n] = 0;
    return 1;
}

static int read_shape(cursor *c, me_array *a)
{
    if (!eat(c, '(')) return 0;
    a->ndim = 0;
    if (eat(c, ')')) return 1;   /* (): a scalar */
    for (;;) {
        skip_ws(c);
        if (c->s >= c->end || *c->s < '0' || *c->s > '9' || a->ndim == ME_MAX_DIMS) return 0;
        int64_t v = 0;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            if (v > (INT64_MAX - 9) / 10) return 0;
            v = v * 10 + (*c->s++ - '0');
        }
        if (c->s < c->end && *c->s == 'L') c->s++;    /* Python 2 long */
        a->shape[a->ndim++] = v;
        if (eat(c, ')')) return a->ndim > 1;   /* "(3)" is not a tuple, "(2, 3)" is */
        if (!eat(c, ',')) return 0;
        if (eat(c, ')')) return 1;
    }
}

static int parse_header(const char *h, size_t n, const char *what, me_array *a)
{
    cursor c = {h, h + n};
    int have_descr = 0, have_order = 0, have_shape = 0;
    char key[32], descr[32];
    if (!eat(&c, '{')) return me_fail(MOEDIT_EINPUT, "%s: npy header is not a dict", what);
    while (!eat(&c, '}')) {
        if (!read_str(&c, key, sizeof key) || !eat(&c, ':'))
            return me_fail(MOEDIT_EINPUT, "%s: malformed npy header", what);
        if (strcmp(key, "descr") == 0) {
            skip_ws(&c);
            if (c.s < c.end && *c.s == '[')
                return me_fail(MOEDIT_EINPUT, "%s: unsupported npy dtype (structured arrays are not supported)", what);
            if (!read_str(&c, descr, sizeof descr)) return me_fail(MOEDIT_EINPUT, "%s: malformed npy header", what);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_ws(&c);
            if ((size_t)(c.end - c.s) >= 5 && memcmp(c.s, "False", 5) == 0) {
                c.s += 5;
            } else if ((size_t)(c.end - c.s) >= 4 && memcmp(c.s, "True", 4) == 0) {
                return me_fail(MOEDIT_EINPUT, "%s: Fortran-ordered arrays are not supported (save a C-contiguous array)", what);
            } else {
                return me_fail(MOEDIT_EINPUT, "%s: malformed fortran_order in npy header", what);
            }
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (!read_shape(&c, a)) return me_fail(MOEDIT_EINPUT, "%s: malformed shape in npy header", what);
            have_shape = 1;
        } else {
            return me_fail(MOEDIT_EINPUT, "%s: unexpected key '%s' in npy header", what, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return me_fail(MOEDIT_EINPUT, "%s: malformed npy header", what);
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return me_fail(MOEDIT_EINPUT, "%s: npy header lacks descr, fortran_order or shape", what);
    size_t dl = strlen(descr);
    int found = 0;
    if (dl == 3) {
        for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
            if (strcmp(descr + 1, descrs[i].descr) == 0) { a->dtype = descrs[i].dtype; found = 1; }
    }
    if (!found) return me_fail(MOEDIT_EINPUT, "%s: unsupported npy dtype '%s'", what, descr);
    if (me_dtype_size(a->dtype) > 1 && descr[0] != '<' && descr[0] != '=')
        return me_fail(MOEDIT_EINPUT, "%s: unsupported byte order in dtype '%s' (need little-endian)", what, descr);
    if (me_dtype_size(a->dtype) == 1 && descr[0] != '|' && descr[0] != '<' && descr[0] != '>' && descr[0] != '=')
        return me_fail(MOEDIT_EINPUT, "%s: unsupported npy dtype '%s'", what, descr);
    return MOEDIT_OK;
}

int me_npy_parse(const uint8_t *buf, size_t size, const char *what, me_array *out)
{
    size_t data_off;
    int rc = me_npy_parse_header(buf, size, what, out, &data_off);
    if (rc) return rc;
    size_t bytes = (size_t)out->numel * me_dtype_size(out->dtype);
    if (bytes > size - data_off) {
        char s[160];
        return me_fail(MOEDIT_EINPUT, "%s: truncated .npy data (%s %s needs %zu bytes, %zu present)", what,
                       me_dtype_name(out->dtype), me_shape_str(out->ndim, out->shape, s, sizeof s), bytes,
                       size - data_off);
    }
    out->data = buf + data_off;
    return MOEDIT_OK;
}

int me_npy_parse_header(const uint8_t *buf, size_t size, const char *what, me_array *out, size_t *data_offset)
{
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) return me_fail(MOEDIT_EINPUT, "%s: not an .npy file", what);
    int major = buf[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return me_fail(MOEDIT_EINPUT, "%s: truncated .npy header", what);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    } else {
        return me_fail(MOEDIT_EINPUT, "%s: unsupported .npy format version %d.%d", what, major, buf[7]);
    }
    if (hlen > size - start) return me_fail(MOEDIT_EINPUT, "%s: truncated .npy header", what);
    int rc = parse_header((const char *)buf + start, hlen, what, out);
    if (rc) return rc;
    size_t numel = 1;
    for (int i = 0; i < out->ndim; i++)
        if (!me_mul_size(numel, (size_t)out->shape[i], &numel) || numel > (size_t)INT64_MAX / 8)
            return me_fail(MOEDIT_EINPUT, "%s: npy shape overflows", what);
    out->numel = (int64_t)numel;
    *data_offset = start + hlen;
    return MOEDIT_OK;
}

/* Gives an array parsed from someone else's memory its own aligned copy. */
static int own_copy(me_array *a)
{
    size_t bytes = (size_t)a->numel * me_dtype_size(a->dtype);
    void *buf = me_alloc_aligned(bytes);
    if (!buf) return MOEDIT_EINTERNAL;
    memcpy(buf, a->data, bytes);
    a->data = a->owned = buf;
    return MOEDIT_OK;
}

static int aligned(const me_array *a)
{
    return (uintptr_t)a->data % me_dtype_size(a->dtype) == 0;
}

int me_npy_read(const char *path, me_array *out)
{
    me_file f;
    memset(out, 0, sizeof *out);
    int rc = me_file_open(path, &f);
    if (rc) return rc;
    rc = me_npy_parse(f.data, f.size, path, out);
    if (!rc && !aligned(out)) {
        rc = own_copy(out);
        me_file_close(&f);
    } else if (!rc) {
        out->file = f;
    } else {
        me_file_close(&f);
    }
    return rc;
}

size_t me_npy_header(me_dtype dtype, int ndim, const int64_t *shape, char *buf, size_t cap)
{
    const char *d = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
        if (descrs[i].dtype == dtype) d = descrs[i].descr;
    if (!d) {
        me_fail(MOEDIT_EINPUT, "dtype %s cannot be written to .npy", me_dtype_name(dtype));
        return 0;
    }
    if (ndim < 0 || ndim > ME_MAX_DIMS || cap < 128) {
        me_fail(MOEDIT_EINTERNAL, "bad .npy header request");
        return 0;
    }
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     me_dtype_size(dtype) == 1 ? '|' : '<', d);
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
    if (ndim > 1) n--;   /* numpy writes "(3,)" but "(2, 3)" */
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64;   /* magic..len, dict, '\n' */
    if (total > cap) {
        me_fail(MOEDIT_EINTERNAL, "bad .npy header request");
        return 0;
    }
    size_t hlen = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    return total;
}

static int data_bytes(me_dtype dtype, int ndim, const int64_t *shape, uint64_t *bytes)
{
    size_t n = me_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || !me_mul_size(n, (size_t)shape[i], &n))
            return me_fail(MOEDIT_EINPUT, "array shape overflows");
    *bytes = n;
    return MOEDIT_OK;
}

int me_npy_write(const char *path, me_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    char h[640];
    uint64_t bytes = 0;
    size_t hl = me_npy_header(dtype, ndim, shape, h, sizeof h);
    if (!hl) return me_fail_prefix(MOEDIT_EINPUT, path);
    int rc = data_bytes(dtype, ndim, shape, &bytes);
    if (rc) return me_fail_prefix(rc, path);
    me_atomic_file af;
    if ((rc = me_atomic_open(&af, path))) return rc;
    rc = me_atomic_write(&af, h, hl);
    if (!rc) rc = me_atomic_write(&af, data, (size_t)bytes);
    if (rc) {
        me_atomic_abort(&af);
        return rc;
    }
    return me_atomic_commit(&af);
}

/* ---- npz ---- */

int me_npz_open_memory(const uint8_t *data, size_t size, const char *what, me_npz *z)
{
    memset(z, 0, sizeof *z);
    return me_zip_open_memory(&z->zip, data, size, what);
}

int me_npz_open(const char *path, me_npz *z)
{
    memset(z, 0, sizeof *z);
    int rc = me_file_open(path, &z->file);
    if (rc) return rc;
    rc = me_zip_open_memory(&z->zip, z->file.data, z->file.size, path);
    if (rc) me_file_close(&z->file);
    return rc;
}

void me_npz_close(me_npz *z)
{
    me_zip_close(&z->zip);
    me_file_close(&z->file);
}

int me_npz_count(const me_npz *z) { return z->zip.count; }
const char *me_npz_name(const me_npz *z, int i) { return z->zip.entries[i].name; }

int me_npz_get(me_npz *z, const char *name, me_array *out)
{
    memset(out, 0, sizeof *out);
    char full[512];
    size_t nl = strlen(name);
    if (nl + 5 > sizeof full) return me_fail(MOEDIT_EINPUT, "%s: member name too long", z->zip.what);
    snprintf(full, sizeof full, "%s%s", name, nl >= 4 && strcmp(name + nl - 4, ".npy") == 0 ? "" : ".npy");
    const me_zip_entry *e = me_zip_find(&z->zip, full);
    if (!e) return me_fail(MOEDIT_EINPUT, "%s: no array '%s'", z->zip.what, name);
    char what[640];
    snprintf(what, sizeof what, "%s:%s", z->zip.what, full);
    int rc;
    if (e->method == 0) {
        const uint8_t *p;
        uint64_t n;
        if ((rc = me_zip_data(&z->zip, e, &p, &n)) || (me_verify_enabled() && (rc = me_zip_verify(&z->zip, &e, 1))) ||
            (rc = me_npy_parse(p, (size_t)n, what, out)))
            return rc;
        return aligned(out) ? MOEDIT_OK : own_copy(out);
    }
    if (e->size > SIZE_MAX - 64) return me_fail(MOEDIT_EINPUT, "%s: member too large", what);
    /* deflate expands at most 1032x: refuse sizes the stored bytes cannot hold before allocating */
    if (e->comp_size > z->zip.size || e->size > (uint64_t)1 << 40 || (e->size > 64 && (e->size - 64) / 1032 > e->comp_size))
        return me_fail(MOEDIT_EINPUT, "%s: implausible uncompressed size", what);
    uint8_t *buf = me_alloc_aligned((size_t)e->size);
    if (!buf) return MOEDIT_EINTERNAL;
    rc = me_zip_extract(&z->zip, e, buf);
    if (!rc) rc = me_npy_parse(buf, (size_t)e->size, what, out);
    if (!rc) rc = own_copy(out);
    me_free_aligned(buf);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

int me_npz_begin(me_zip_writer *w, const char *name, me_dtype dtype, int ndim, const int64_t *shape)
{
    char full[512], h[640];
    size_t nl = strlen(name);
    if (nl + 5 > sizeof full) return me_fail(MOEDIT_EINPUT, "%s: member name too long", name);
    snprintf(full, sizeof full, "%s%s", name, nl >= 4 && strcmp(name + nl - 4, ".npy") == 0 ? "" : ".npy");
    uint64_t bytes = 0;
    size_t hl = me_npy_header(dtype, ndim, shape, h, sizeof h);
    if (!hl) return MOEDIT_EINPUT;
    int rc = data_bytes(dtype, ndim, shape, &bytes);
    if (rc) return rc;
    if ((rc = me_zip_writer_begin(w, full, hl + bytes))) return rc;
    return me_zip_writer_write(w, h, hl);
}

int me_npz_add(me_zip_writer *w, const char *name, me_dtype dtype, int ndim, const int64_t *shape,
               const void *data)
{
    int rc = me_npz_begin(w, name, dtype, ndim, shape);
    uint64_t bytes = 0;
    if (!rc) rc = data_bytes(dtype, ndim, shape, &bytes);
    if (!rc) rc = me_zip_writer_write(w, data, (size_t)bytes);
    if (!rc) rc = me_zip_writer_end(w);
    return rc;
}

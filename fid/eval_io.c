/* Feature and reference files of the ADM evaluation (see eval.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "fid/eval.h"
#include "weights/npy.h"

static const char *const prep_names[] = {"pytorch-fid", "adm"};

const char *me_preprocess_name(me_preprocess p) { return prep_names[p == ME_PREPROCESS_ADM]; }

int me_preprocess_parse(const char *s, me_preprocess *p)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, prep_names[i])) {
            *p = (me_preprocess)i;
            return MOEDIT_OK;
        }
    return me_fail(MOEDIT_EINPUT, "preprocessing '%s' is not adm or pytorch-fid", s);
}

void me_adm_file_free(me_adm_file *f)
{
    free(f->pool);
    free(f->spatial);
    free(f->logits);
    me_fid_stats_free(&f->stats);
    me_fid_stats_free(&f->stats_s);
    memset(f, 0, sizeof *f);
}

/* Float rows [n, dim] of member name into a new buffer; *n < 0 means "any". */
static int get_rows(me_npz *z, const char *path, const char *name, int dim, int64_t *n, float **out)
{
    me_array a;
    int rc = me_npz_get(z, name, &a);
    if (rc) return rc;
    if (a.ndim != 2 || a.shape[1] != dim || (*n >= 0 && a.shape[0] != *n) || (a.dtype != ME_F32 && a.dtype != ME_F64))
        rc = me_fail(MOEDIT_EINPUT, "%s: '%s' is not float features [N, %d]%s", path, name, dim,
                     *n >= 0 ? " with the same N as 'pool'" : "");
    else if ((*out = me_alloc(sizeof(float) * (size_t)(a.numel ? a.numel : 1)))) {
        me_array_to_f32(&a, *out);
        *n = a.shape[0];
        /* NaN rows would carry into every metric (FID refuses them, the
           precision/recall distances would not) */
        char bad[96];
        int nbad = me_non_finite_rows(*out, (int)a.shape[0], (size_t)dim, bad, sizeof bad);
        if (nbad) {
            rc = me_fail(MOEDIT_EINPUT, "%s: '%s' holds NaN or inf (as float32) in %d of %lld rows: %s", path, name,
                         nbad, (long long)a.shape[0], bad);
            free(*out);
            *out = NULL;
        }
    } else {
        rc = MOEDIT_EINTERNAL;
    }
    me_array_free(&a);
    return rc;
}

static int has(me_npz *z, const char *name)
{
    char m[64];
    snprintf(m, sizeof m, "%s.npy", name);
    return me_zip_find(&z->zip, m) != NULL;
}

int me_adm_file_load(const char *path, me_adm_file *f)
{
    memset(f, 0, sizeof *f);
    me_npz z;
    int rc = me_npz_open(path, &z);
    if (rc) return rc;
    rc = me_adm_file_read(&z, path, f);
    me_npz_close(&z);
    return rc;
}

int me_adm_file_read(me_npz *z, const char *path, me_adm_file *f)
{
    memset(f, 0, sizeof *f);
    f->prep = -1;
    int rc = MOEDIT_OK;
    f->has_images = has(z, "arr_0");
    const me_zip_entry *img = me_zip_find(&z->zip, "arr_0.npy");
    if (img) f->source = ((uint64_t)img->crc32 << 32 ^ img->size) | 1;
    f->n = -1;
    if (has(z, "pool")) rc = get_rows(z, path, "pool", ME_INCEPTION_DIM, &f->n, &f->pool);
    if (!rc && has(z, "spatial") && f->pool)
        rc = get_rows(z, path, "spatial", ME_INCEPTION_SPATIAL, &f->n, &f->spatial);
    if (!rc && has(z, "logits") && f->pool)
        rc = get_rows(z, path, "logits", ME_INCEPTION_CLASSES, &f->n, &f->logits);
    if (f->n < 0) f->n = 0;
    f->total = f->n;
    if (!rc && has(z, "mu")) rc = me_fid_stats_from_npz(z, path, "mu", "sigma", &f->stats);
    if (!rc && has(z, "mu_s")) rc = me_fid_stats_from_npz(z, path, "mu_s", "sigma_s", &f->stats_s);
    me_array a;
    if (!rc && has(z, "range") && !(rc = me_npz_get(z, "range", &a))) {
        if (a.dtype != ME_I64 || a.numel != 3 || ((const int64_t *)a.data)[1] != f->n)
            rc = me_fail(MOEDIT_EINPUT, "%s: 'range' is not int64 [first, n, total] for its %lld rows", path,
                         (long long)f->n);
        else {
            f->first = ((const int64_t *)a.data)[0];
            f->total = ((const int64_t *)a.data)[2];
            if (f->first < 0 || f->first > f->total || f->n > f->total - f->first)   /* first + n could overflow */
                rc = me_fail(MOEDIT_EINPUT, "%s: 'range' %lld+%lld is outside 0..%lld", path, (long long)f->first,
                             (long long)f->n, (long long)f->total);
        }
        me_array_free(&a);
    }
    if (!rc && !img && has(z, "source") && !(rc = me_npz_get(z, "source", &a))) {
        if (a.dtype != ME_I64 || a.numel != 1) rc = me_fail(MOEDIT_EINPUT, "%s: 'source' is not one int64", path);
        else f->source = (uint64_t)((const int64_t *)a.data)[0];
        me_array_free(&a);
    }
    if (!rc && has(z, "inception") && !(rc = me_npz_get(z, "inception", &a))) {
        int64_t v = a.dtype == ME_I64 && a.numel == 1 ? ((const int64_t *)a.data)[0] : -1;
        if (v <= 0 || v > UINT32_MAX) rc = me_fail(MOEDIT_EINPUT, "%s: 'inception' is not one int64 digest", path);
        else f->inception = (uint32_t)v;
        me_array_free(&a);
    }
    if (!rc && has(z, "preprocess") && !(rc = me_npz_get(z, "preprocess", &a))) {
        char name[32] = "";
        if (a.dtype == ME_U8 && a.ndim == 1 && a.numel < (int64_t)sizeof name) memcpy(name, a.data, (size_t)a.numel);
        me_preprocess p = ME_PREPROCESS_PYTORCH_FID;
        if (!me_preprocess_parse(name, &p)) f->prep = (int)p;
        else rc = me_fail(MOEDIT_EINPUT, "%s: 'preprocess' is not adm or pytorch-fid", path);
        me_array_free(&a);
    }
    if (rc) me_adm_file_free(f);
    return rc;
}

int me_adm_file_save(const char *path, const me_adm_file *f)
{
    me_zip_writer w;
    int rc = me_zip_writer_open(&w, path);
    if (rc) return rc;
    const int64_t n = f->n;
    if (f->pool) rc = me_npz_add(&w, "pool", ME_F32, 2, (int64_t[]){n, ME_INCEPTION_DIM}, f->pool);
    if (!rc && f->spatial) rc = me_npz_add(&w, "spatial", ME_F32, 2, (int64_t[]){n, ME_INCEPTION_SPATIAL}, f->spatial);
    if (!rc && f->logits) rc = me_npz_add(&w, "logits", ME_F32, 2, (int64_t[]){n, ME_INCEPTION_CLASSES}, f->logits);
    if (!rc && f->pool) rc = me_npz_add(&w, "range", ME_I64, 1, (int64_t[]){3}, (int64_t[]){f->first, n, f->total});
    if (!rc && f->pool && f->source) rc = me_npz_add(&w, "source", ME_I64, 1, (int64_t[]){1}, (int64_t[]){(int64_t)f->source});
    if (!rc && f->pool && f->inception)
        rc = me_npz_add(&w, "inception", ME_I64, 1, (int64_t[]){1}, (int64_t[]){(int64_t)f->inception});
    const me_fid_stats *st[2] = {&f->stats, &f->stats_s};
    static const char *const names[2][2] = {{"mu", "sigma"}, {"mu_s", "sigma_s"}};
    for (int i = 0; i < 2 && !rc; i++) {
        int64_t d = st[i]->dim;
        if (!d) continue;
        rc = me_npz_add(&w, names[i][0], ME_F64, 1, &d, st[i]->mu);
        if (!rc) rc = me_npz_add(&w, names[i][1], ME_F64, 2, (int64_t[]){d, d}, st[i]->sigma);
    }
    if (!rc && f->prep >= 0) {
        const char *p = me_preprocess_name((me_preprocess)f->prep);
        rc = me_npz_add(&w, "preprocess", ME_U8, 1, (int64_t[]){(int64_t)strlen(p)}, p);
    }
    if (rc) {
        me_zip_writer_abort(&w);
        return rc;
    }
    return me_zip_writer_finish(&w);
}

/* Order of parts: by first row; an empty part (more shards than images) before the part
   that starts where it does, so that it is not taken for an overlap. */
static int by_first(const void *a, const void *b)
{
    const me_adm_file *x = *(me_adm_file *const *)a, *y = *(me_adm_file *const *)b;
    if (x->first != y->first) return (x->first > y->first) - (x->first < y->first);
    return (x->n > y->n) - (x->n < y->n);
}

int me_adm_file_join(int count, me_adm_file *parts, char *const *names, me_adm_file *out)
{
    memset(out, 0, sizeof *out);
    me_adm_file **order = me_alloc(sizeof *order * (size_t)count);
    int rc = order ? MOEDIT_OK : MOEDIT_EINTERNAL;
    for (int i = 0; !rc && i < count; i++) {
        order[i] = &parts[i];
        if (!parts[i].pool || !parts[i].spatial || !parts[i].logits)
            rc = me_fail(MOEDIT_EINPUT, "%s: not a feature file (pool, spatial and logits)", names[i]);
        else if (parts[i].prep != parts[0].prep ||
                 (parts[i].total != parts[0].total && !(parts[i].first == 0 && parts[i].n == parts[i].total)))
            rc = me_fail(MOEDIT_EINPUT, "%s: a shard of another run (%lld images, %s) than %s (%lld, %s)", names[i],
                         (long long)parts[i].total, parts[i].prep < 0 ? "?" : me_preprocess_name(parts[i].prep),
                         names[0], (long long)parts[0].total,
                         parts[0].prep < 0 ? "?" : me_preprocess_name(parts[0].prep));
        else if (parts[i].inception && parts[0].inception && parts[i].inception != parts[0].inception)
            rc = me_fail(MOEDIT_EINPUT, "%s: features of other Inception weights (%08x) than %s's (%08x)", names[i],
                         (unsigned)parts[i].inception, names[0], (unsigned)parts[0].inception);
    }
    /* whole files (one per sample shard) are concatenated in the given order;
       parts of one batch (--shard) are put in place by their range, and must
       come from the same images (the same count alone could be another set) */
    int whole = 1;
    for (int i = 0; i < count; i++) whole &= parts[i].first == 0 && parts[i].n == parts[i].total;
    for (int i = 1; !rc && !whole && i < count; i++)
        if (parts[i].source && parts[0].source && parts[i].source != parts[0].source)
            rc = me_fail(MOEDIT_EINPUT, "%s: features of other images than %s's (another --samples)", names[i],
                         names[0]);
    int64_t at = 0;
    if (!rc && whole) {
        for (int i = 0; i < count; i++) {
            parts[i].first = at;
            at += parts[i].n;
        }
        for (int i = 0; i < count; i++) parts[i].total = at;
        at = 0;
    }
    if (!rc) qsort(order, (size_t)count, sizeof *order, by_first);
    for (int i = 0; !rc && i < count; i++) {
        const char *name = names[order[i] - parts];
        if (order[i]->first != at)
            rc = me_fail(MOEDIT_EINPUT, "%s: rows %lld… %s; images %lld… are %s", name, (long long)order[i]->first,
                         order[i]->first < at ? "overlap another shard" : "leave a gap", (long long)at,
                         order[i]->first < at ? "duplicated" : "missing");
        at += order[i]->n;
    }
    if (!rc && at != parts[0].total)
        rc = me_fail(MOEDIT_EINPUT, "%s…: the shards cover %lld of %lld images (a shard is missing)", names[0],
                     (long long)at, (long long)parts[0].total);
    if (!rc) {
        out->n = out->total = at;
        out->prep = parts[0].prep;
        out->inception = parts[0].inception;   /* known when every part names it (no two differ, above) */
        for (int i = 1; i < count; i++)
            if (parts[i].inception != out->inception) out->inception = 0;
        out->pool = me_alloc(sizeof(float) * (size_t)at * ME_INCEPTION_DIM);
        out->spatial = me_alloc(sizeof(float) * (size_t)at * ME_INCEPTION_SPATIAL);
        out->logits = me_alloc(sizeof(float) * (size_t)at * ME_INCEPTION_CLASSES);
        if (!out->pool || !out->spatial || !out->logits) rc = MOEDIT_EINTERNAL;
    }
    for (int i = 0; !rc && i < count; i++) {
        const me_adm_file *p = order[i];
        memcpy(out->pool + p->first * ME_INCEPTION_DIM, p->pool, sizeof(float) * p->n * ME_INCEPTION_DIM);
        memcpy(out->spatial + p->first * ME_INCEPTION_SPATIAL, p->spatial, sizeof(float) * p->n * ME_INCEPTION_SPATIAL);
        memcpy(out->logits + p->first * ME_INCEPTION_CLASSES, p->logits, sizeof(float) * p->n * ME_INCEPTION_CLASSES);
    }
    for (int i = 0; i < count; i++) me_adm_file_free(&parts[i]);
    free(order);
    if (rc) me_adm_file_free(out);
    return rc;
}

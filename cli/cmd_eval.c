/* moedit eval: the five numbers of guided-diffusion's evaluator (Inception
   Score, FID, sFID, Precision, Recall) for a sample batch against a
   reference batch, printed as evaluator.py prints them. The metrics live in
   the library (fid/eval.c); this command finds, checks and featurises the
   inputs.

   Inputs (comma-separated lists): image batches (arr_0 uint8 [N, H, W, 3]
   or 1 channel), feature files of earlier runs (--features-out, whole or
   --shard parts), and for --ref also ADM reference batches (arr_0 plus mu,
   sigma, mu_s, sigma_s, the statistics winning for FID/sFID) and --stats-out
   files. Everything is checked before the 95 MB network loads.

   Images are streamed in batches (fid/npz_stream.c). With --features-out
   the samples' finished feature rows go to OUT.partial and OUT.state is
   rewritten after every batch, as fid-sample does, so --resume continues a
   killed run losing at most one batch. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "cli/images.h"
#include "cli/shard.h"
#include "core/core.h"
#include "fid/eval.h"
#include "fid/npz_stream.h"
#include "weights/npy.h"

#define CMD "eval"
#define STATE_MAGIC "moedit eval state 1"
#define MAX_FILES 256

typedef struct {
    const char *inception, *samples, *ref, *json, *stats_out, *features_out, *preprocess, *shard, *device;
    int batch, threads, resume, help, is_split, no_verify;
    me_preprocess prep;
    int shard_k, shard_n;
} ev_args;

/* One side (samples or reference): image batches to featurise, or features. */
typedef struct {
    char *names[MAX_FILES];
    int count;
    me_npz_stream img[MAX_FILES];
    int opened;         /* streams in img[] */
    int64_t n;          /* images (or feature rows) in all */
    int h, w, c;
    int images;         /* 1: featurise img[], 0: feat came from files */
    me_adm_file feat;   /* features (and a reference's stored statistics) */
    uint64_t source;    /* the image files' fingerprint, stamped on their features */
} side;

/* ---- printing as Python's print(float) -------------------------------- */

/* repr(float): the shortest digits that read back to v, positional for
   1e-4 <= |v| < 1e16 and scientific otherwise ("1e-05", "2.5e+16"). */
static void py_float(double v, char *out, size_t cap)
{
    if (isnan(v) || isinf(v)) {
        snprintf(out, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == 0) {
        snprintf(out, cap, "%s", signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char e[40], digits[24];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e: [-]d[.ddd]e±XX */
    const char *s = e + (e[0] == '-');
    int nd = 0, exp10 = atoi(strchr(s, 'e') + 1);
    for (const char *p = s; *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char body[64];
    size_t k = 0;
    if (exp10 < -4 || exp10 >= 16) {
        k += (size_t)snprintf(body + k, sizeof body - k, "%c", digits[0]);
        if (nd > 1) k += (size_t)snprintf(body + k, sizeof body - k, ".%s", digits + 1);
        snprintf(body + k, sizeof body - k, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 < 0) {
        k += (size_t)snprintf(body, sizeof body, "0.");
        for (int i = 0; i < -exp10 - 1; i++) body[k++] = '0';
        snprintf(body + k, sizeof body - k, "%s", digits);
    } else {
        for (int i = 0; i <= exp10; i++) body[k++] = i < nd ? digits[i] : '0';
        body[k++] = '.';
        snprintf(body + k, sizeof body - k, "%s", nd > exp10 + 1 ? digits + exp10 + 1 : "0");
    }
    snprintf(out, cap, "%s%s", v < 0 ? "-" : "", body);
}

/* ---- inputs ----------------------------------------------------------- */

static void side_free(side *s)
{
    for (int i = 0; i < s->opened; i++) me_npz_stream_close(&s->img[i]);
    for (int i = 0; i < s->count; i++) free(s->names[i]);
    me_adm_file_free(&s->feat);
    memset(s, 0, sizeof *s);
}

static int is_feature_file(const me_adm_file *f) { return f->pool && f->spatial && f->logits; }

/* The list's files: image batches (all of one size) or feature files. A
   reference may also be one file with statistics, features and/or images. */
static int open_side(const ev_args *a, const char *list, int is_ref, side *s)
{
    const char *what = is_ref ? "--ref" : "--samples";
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (s->count == MAX_FILES) return cli_usage_error(CMD, "%s: more than %d files", what, MAX_FILES);
        if (!l || !(s->names[s->count] = strndup(p, l))) return cli_usage_error(CMD, "%s: an empty file name", what);
        s->count++;
        p += l + (p[l] == ',');
    }
    me_adm_file parts[MAX_FILES];
    int images = 0, e = 0;
    for (int i = 0; i < s->count; i++) {
        if ((e = me_adm_file_load(s->names[i], &parts[i]))) {
            for (int j = 0; j < i; j++) me_adm_file_free(&parts[j]);
            return cli_fail(e);
        }
        images += parts[i].has_images && !parts[i].pool;
    }
    if (images && images != s->count)
        e = me_fail(MOEDIT_EINPUT, "%s: image batches and feature files mixed in one list", what);
    if (!e && !images && s->count > 1) e = me_adm_file_join(s->count, parts, s->names, &s->feat);
    else if (!e && !images) s->feat = parts[0];
    else {
        /* the ADM reference's statistics stay with its images */
        if (!e && is_ref && s->count == 1) {
            s->feat.stats = parts[0].stats;
            s->feat.stats_s = parts[0].stats_s;
            memset(&parts[0].stats, 0, sizeof parts[0].stats);
            memset(&parts[0].stats_s, 0, sizeof parts[0].stats_s);
        }
        for (int i = 0; i < s->count; i++) {
            s->source = (s->source ^ parts[i].source) * 0x100000001b3ull;
            me_adm_file_free(&parts[i]);
        }
    }
    if (e) return cli_fail(e);
    if (!images) {
        s->n = s->feat.n;
        if (s->feat.prep >= 0 && s->feat.prep != (int)a->prep)
            return cli_usage_error(CMD, "%s: features made with --preprocess %s, not %s", s->names[0],
                                   me_preprocess_name(s->feat.prep), me_preprocess_name(a->prep));
        if (!is_ref && !is_feature_file(&s->feat))
            return cli_usage_error(CMD, "%s: neither images (arr_0) nor a feature file", s->names[0]);
        if (is_ref && !s->feat.pool)
            return cli_usage_error(CMD, "%s: no images (arr_0) or pool features for Precision/Recall", s->names[0]);
        return 0;
    }
    s->images = 1;
    for (int i = 0; i < s->count; i++) {
        me_npz_stream *st = &s->img[i];
        if ((e = me_npz_stream_open(s->names[i], "arr_0", st))) return cli_fail(e);
        s->opened++;
        const me_array *x = &st->array;
        int c;
        if ((e = cli_images_layout(s->names[i], x, &c))) return cli_fail(e);
        if (i && (x->shape[1] != s->h || x->shape[2] != s->w || c != s->c))
            return cli_usage_error(CMD, "%s: images of %lldx%lldx%d in a batch of %dx%dx%d", s->names[i],
                                   (long long)x->shape[1], (long long)x->shape[2], c, s->h, s->w, s->c);
        s->h = (int)x->shape[1];
        s->w = (int)x->shape[2];
        s->c = c;
        s->n += x->shape[0];
    }
    return 0;
}

/* ---- featurising ------------------------------------------------------ */

/* A partial file's row: pool, spatial, logits of image i, packed from f
   (pack) or unpacked into it. */
static void pack_row(me_adm_file *f, int64_t i, float *row, int pack)
{
    float *part[3] = {f->pool + i * ME_INCEPTION_DIM, f->spatial + i * ME_INCEPTION_SPATIAL,
                      f->logits + i * ME_INCEPTION_CLASSES};
    const int len[3] = {ME_INCEPTION_DIM, ME_INCEPTION_SPATIAL, ME_INCEPTION_CLASSES};
    for (int p = 0; p < 3; row += len[p], p++)
        if (pack) memcpy(row, part[p], sizeof(float) * len[p]);
        else memcpy(part[p], row, sizeof(float) * len[p]);
}

/* Whether out is a finished feature file of f's images (source, range,
   preprocessing) made by f's network; if so f takes its rows. */
static int finished_before(const char *out, me_adm_file *f)
{
    me_adm_file had;
    if (me_adm_file_load(out, &had)) return 0;
    int same = is_feature_file(&had) && had.source == f->source && had.first == f->first && had.n == f->n &&
               had.total == f->total && had.prep == f->prep && had.inception == f->inception;
    if (same) {
        float **mine[3] = {&f->pool, &f->spatial, &f->logits}, **theirs[3] = {&had.pool, &had.spatial, &had.logits};
        for (int i = 0; i < 3; i++) {
            free(*mine[i]);
            *mine[i] = *theirs[i];
            *theirs[i] = NULL;
        }
    }
    me_adm_file_free(&had);
    return same;
}

/* Images first … first+count−1 of s's files into s->feat; with out, the
   resumable partial/state files beside it. */
static int featurise(const ev_args *a, me_inception *net, const char *label, side *s, int64_t first, int64_t count,
                     const char *out)
{
    me_adm_file *f = &s->feat;
    f->n = count;
    f->first = first;
    f->source = s->source | 1;
    f->total = s->n;
    f->prep = (int)a->prep;
    f->inception = me_inception_digest(net);
    f->pool = me_alloc(sizeof(float) * (size_t)(count ? count : 1) * ME_INCEPTION_DIM);
    f->spatial = me_alloc(sizeof(float) * (size_t)(count ? count : 1) * ME_INCEPTION_SPATIAL);
    f->logits = me_alloc(sizeof(float) * (size_t)(count ? count : 1) * ME_INCEPTION_CLASSES);
    const size_t img = (size_t)s->h * s->w * s->c, B = (size_t)a->batch;
    uint8_t *px = me_alloc(img * B);
    float *row = me_alloc(sizeof(float) * ME_ADM_ROW * B);
    char part[4200], state[4200], fp[8192];
    FILE *pf = NULL;
    int e = f->pool && f->spatial && f->logits && px && row ? 0 : MOEDIT_EINTERNAL, rc = 0;
    int64_t done = 0;
    if (e) goto fail;
    if (out) {
        snprintf(part, sizeof part, "%s.partial", out);
        snprintf(state, sizeof state, "%s.state", out);
        char by_path[8000];
        snprintf(by_path, sizeof by_path, "samples=%s images=%" PRId64 "x%dx%dx%d range=%" PRId64 "+%" PRId64
                 " preprocess=%s inception=%s batch=%d", a->samples, s->n, s->h, s->w, s->c, first, count,
                 me_preprocess_name(a->prep), a->inception, a->batch);
        /* the images by content too: other images of the same count behind
           the same path must not resume into the first ones' features */
        snprintf(fp, sizeof fp, "%s source=%016" PRIx64, by_path, f->source);
        /* a rerun of a script after some shards finished: keep the file
           rather than featurise its images again */
        if (a->resume && access(state, F_OK) && finished_before(out, f)) {
            if (count)
                fprintf(stderr, "%s: already holds the features of images %" PRId64 "..%" PRId64 " of these samples, "
                        "preprocessing and Inception weights: kept\n", out, first, first + count - 1);
            else
                fprintf(stderr, "%s: already holds this empty part of these samples, preprocessing and Inception "
                        "weights: kept\n", out);
            goto done;
        }
        done = a->resume ? cli_state_read(state, STATE_MAGIC, fp) : 0;
        if (done < 0 && (done = cli_state_read(state, STATE_MAGIC, by_path)) >= 0)
            fprintf(stderr, "moedit %s: %s is from a build that named the images by path only: resuming unchecked\n",
                    CMD, state);
        if (done < 0 || done > count) {
            rc = cli_usage_error(CMD, "--resume: %s is from a run with other settings or images (remove it to "
                                 "start over)", state);
            goto done;
        }
        if (done && (rc = cli_partial_reopen(CMD, part, state, done * ME_ADM_ROW * (int64_t)sizeof(float), &pf)))
            goto done;
        /* the rows already done come back from the partial file */
        for (int64_t i = 0; i < done; i++) {
            if (fread(row, sizeof(float), ME_ADM_ROW, pf) != ME_ADM_ROW) {
                e = me_fail(MOEDIT_EINTERNAL, "%s: short read", part);
                goto fail;
            }
            pack_row(f, i, row, 0);
        }
        if (done) fprintf(stderr, "resuming %s: %" PRId64 " of %" PRId64 " images done\n", out, done, count);
        else if (!(pf = fopen(part, "w+b"))) {
            rc = cli_usage_error(CMD, "%s: %s", part, strerror(errno));
            goto done;
        } else if ((e = cli_state_write(state, STATE_MAGIC, fp, 0))) {
            goto fail;
        }
        if (fseek(pf, 0, SEEK_END)) {
            e = me_fail(MOEDIT_EINTERNAL, "%s: %s", part, strerror(errno));
            goto fail;
        }
    }
    /* walk the files to image first + done */
    int fi = 0;
    int64_t skip = first + done;
    while (fi < s->count && skip >= s->img[fi].array.shape[0]) skip -= s->img[fi++].array.shape[0];
    if (fi < s->count && (e = me_npz_stream_skip(&s->img[fi], (uint64_t)skip * img))) goto fail;
    const double t0 = cli_now();
    const int64_t done0 = done;
    while (done < count) {
        int k = count - done < a->batch ? (int)(count - done) : a->batch, got = 0;
        while (got < k) {   /* a batch may span two files */
            me_npz_stream *st = &s->img[fi];
            int64_t avail = (int64_t)(st->left / img), take = k - got < avail ? k - got : avail;
            if ((e = me_npz_stream_read(st, px + got * img, (uint64_t)take * img))) goto fail;
            got += (int)take;
            if (take == avail) fi++;
        }
        float *pool = f->pool + done * ME_INCEPTION_DIM, *sp = f->spatial + done * ME_INCEPTION_SPATIAL;
        float *lg = f->logits + done * ME_INCEPTION_CLASSES;
        if ((e = me_adm_features_u8(net, a->prep, k, s->h, s->w, s->c, px, pool, sp, lg))) goto fail;
        if (pf) {
            for (int i = 0; i < k; i++) pack_row(f, done + i, row + (size_t)i * ME_ADM_ROW, 1);
            if (fwrite(row, sizeof(float) * ME_ADM_ROW, (size_t)k, pf) != (size_t)k || fflush(pf) ||
                fsync(fileno(pf))) {
                e = me_fail(MOEDIT_EINTERNAL, "%s: %s", part, strerror(errno));
                goto fail;
            }
        }
        done += k;
        if (pf && (e = cli_state_write(state, STATE_MAGIC, fp, done))) goto fail;
        double el = cli_now() - t0, rate = (double)(done - done0) / (el > 0 ? el : 1e-9);
        fprintf(stderr, "%s: %" PRId64 "/%" PRId64 " images  %.2f img/s  ETA %.0fs\n", label, done, count, rate,
                (double)(count - done) / rate);
    }
    if (out) {
        if ((e = me_adm_file_save(out, f))) goto fail;
        fclose(pf);
        pf = NULL;
        unlink(part);
        unlink(state);
        if (count)
            fprintf(stderr, "wrote %s: features of images %" PRId64 "..%" PRId64 " of %" PRId64 "\n", out, first,
                    first + count - 1, s->n);
        else   /* more shards than images */
            fprintf(stderr, "wrote %s: no features (this part of the %" PRId64 " images is empty)\n", out, s->n);
    }
    goto done;
fail:
    rc = cli_fail(e);
done:
    if (pf) fclose(pf);
    free(px);
    free(row);
    return rc;
}

/* ---- the command ------------------------------------------------------ */

/* The outputs, --inception and both lists' files (open_side refuses longer lists) */
#define CHECKED_FILES (2 * MAX_FILES + 7)

/* The files of a comma list (copied into *copy) as inputs of
   cli_check_files; empty names are left to open_side. */
static int list_inputs(const char *flag, const char *list, char **copy, cli_file *f, int n)
{
    if (!list) return n;
    if (!(*copy = strdup(list))) return -1;
    for (char *p = *copy; *p && n < CHECKED_FILES;) {
        size_t l = strcspn(p, ",");
        int last = !p[l];
        p[l] = 0;
        if (l) f[n++] = (cli_file){flag, p, CLI_IN};
        p += l + !last;
    }
    return n;
}

/* No output may be an input or another output. */
static int check_files(const ev_args *a)
{
    char part[4200], state[4200], lock[4200];
    snprintf(part, sizeof part, "%s.partial", a->features_out ? a->features_out : "");
    snprintf(state, sizeof state, "%s.state", a->features_out ? a->features_out : "");
    snprintf(lock, sizeof lock, "%s.lock", a->features_out ? a->features_out : "");
    cli_file f[CHECKED_FILES] = {
        {"--json", a->json, CLI_OUT},
        {"--stats-out", a->stats_out, CLI_OUT},
        {"--features-out", a->features_out, CLI_OUT},
        {"--features-out's .partial", a->features_out ? part : NULL, CLI_OUT},
        {"--features-out's .state", a->features_out ? state : NULL, CLI_OUT},
        {"--features-out's .lock", a->features_out ? lock : NULL, CLI_OUT},
        {"--inception", a->inception, CLI_IN},
    };
    char *samples = NULL, *ref = NULL;
    int n = list_inputs("--samples", a->samples, &samples, f, 7);
    if (n >= 0) n = list_inputs("--ref", a->ref, &ref, f, n);
    int rc = n < 0 ? cli_fail(me_fail(MOEDIT_EINTERNAL, "out of memory")) : cli_check_files(CMD, f, n);
    free(samples);
    free(ref);
    return rc;
}

static int write_json(const ev_args *a, const me_adm_metrics *m, int64_t n, int64_t n_ref, int stored)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "inception_score", m->inception_score);
    cJSON_AddNumberToObject(j, "fid", m->fid);
    cJSON_AddNumberToObject(j, "sfid", m->sfid);
    cJSON_AddNumberToObject(j, "precision", m->precision);
    cJSON_AddNumberToObject(j, "recall", m->recall);
    cJSON_AddNumberToObject(j, "n", (double)n);
    cJSON_AddNumberToObject(j, "n_ref", (double)n_ref);
    cJSON_AddStringToObject(j, "samples", a->samples);
    cJSON_AddStringToObject(j, "reference", a->ref);
    cJSON_AddStringToObject(j, "reference_statistics", stored ? "stored" : "from features");
    cJSON_AddStringToObject(j, "preprocess", me_preprocess_name(a->prep));
    cJSON_AddNumberToObject(j, "is_split", a->is_split);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return cli_fail(me_fail(MOEDIT_EINTERNAL, "json: out of memory"));
    me_atomic_file af;
    int e = me_atomic_open(&af, a->json);
    if (!e && ((e = me_atomic_write(&af, text, strlen(text))) || (e = me_atomic_write(&af, "\n", 1))))
        me_atomic_abort(&af);
    else if (!e) e = me_atomic_commit(&af);
    free(text);
    return e ? cli_fail(e) : 0;
}

/* --stats-out: the reference as an ADM reference batch (statistics) plus
   the pool features Precision/Recall need. */
static int write_stats(const ev_args *a, side *r)
{
    me_adm_file o = {.n = r->feat.n, .first = 0, .total = r->feat.n, .prep = (int)a->prep, .pool = r->feat.pool,
                     .inception = r->feat.inception};
    int e = 0;
    if (r->feat.stats.dim) o.stats = r->feat.stats;
    else e = me_fid_stats_from_features(r->feat.n, ME_INCEPTION_DIM, r->feat.pool, &o.stats);
    if (!e && r->feat.stats_s.dim) o.stats_s = r->feat.stats_s;
    else if (!e) e = me_fid_stats_from_features(r->feat.n, ME_INCEPTION_SPATIAL, r->feat.spatial, &o.stats_s);
    if (!e) e = me_adm_file_save(a->stats_out, &o);
    if (!r->feat.stats.dim) me_fid_stats_free(&o.stats);
    if (!r->feat.stats_s.dim) me_fid_stats_free(&o.stats_s);
    if (!e) fprintf(stderr, "wrote %s: reference statistics and features of %" PRId64 " images\n", a->stats_out, o.n);
    return e ? cli_fail(e) : 0;
}

static int check_ref(const ev_args *a, const side *r)
{
    const me_fid_stats *st = &r->feat.stats, *ss = &r->feat.stats_s;
    if (st->dim && st->dim != ME_INCEPTION_DIM)
        return cli_usage_error(CMD, "%s: mu/sigma have dimension %d, not %d", a->ref, st->dim, ME_INCEPTION_DIM);
    if (ss->dim && ss->dim != ME_INCEPTION_SPATIAL)
        return cli_usage_error(CMD, "%s: mu_s/sigma_s have dimension %d, not %d", a->ref, ss->dim,
                               ME_INCEPTION_SPATIAL);
    if (!r->images && !ss->dim && !r->feat.spatial)
        return cli_usage_error(CMD, "%s: no mu_s/sigma_s, images or spatial features for sFID", a->ref);
    return 0;
}

/* Feature files name the Inception weights that made them (files from
   before that do not): features of two networks compared would give a
   number that means nothing, so they are refused before any featurising. */
static int same_network(const side *s, const side *r, const me_inception *net)
{
    uint32_t want = net ? me_inception_digest(net) : 0;
    const char *by = "--inception";
    const side *sides[2] = {s, r};
    for (int i = 0; i < 2; i++) {
        const side *d = sides[i];
        if (d->images || !d->count || !d->feat.inception) continue;
        if (want && d->feat.inception != want)
            return cli_usage_error(CMD, "%s: features of other Inception weights (%08x) than %s's (%08x)",
                                   d->names[0], (unsigned)d->feat.inception, by, (unsigned)want);
        want = d->feat.inception, by = d->names[0];
    }
    return 0;
}

static int run(ev_args *a)
{
    side s = {0}, r = {0};
    me_inception *net = NULL;
    int rc = 0, e;
    if (a->samples && (rc = open_side(a, a->samples, 0, &s))) goto done;
    if (a->ref && ((rc = open_side(a, a->ref, 1, &r)) || (rc = check_ref(a, &r)))) goto done;
    if ((a->shard || a->features_out) && !s.images) {
        rc = cli_usage_error(CMD, "--shard/--features-out: --samples must be image batches, not features");
        goto done;
    }
    if (a->ref && a->samples && !a->shard && (s.n <= ME_PR_K || r.n <= ME_PR_K)) {
        rc = cli_usage_error(CMD, "%lld samples and %lld reference images: Precision/Recall need at least %d each",
                             (long long)s.n, (long long)r.n, ME_PR_K + 1);
        goto done;
    }
    if (s.images || r.images) {
        if (!a->inception) {
            rc = cli_usage_error(CMD, "--inception PTH is needed to featurise images");
            goto done;
        }
        if ((e = me_inception_load(a->inception, &net))) goto fail;
    }
    if ((rc = same_network(&s, &r, net))) goto done;
    if (s.images) {
        const int64_t first = s.n * a->shard_k / a->shard_n, last = s.n * (a->shard_k + 1) / a->shard_n;
        if ((rc = featurise(a, net, "samples", &s, first, last - first, a->features_out))) goto done;
        if (a->shard) goto done;
    }
    if (r.images && (rc = featurise(a, net, "reference", &r, 0, r.n, NULL))) goto done;
    if (a->stats_out && (rc = write_stats(a, &r))) goto done;
    if (!a->samples || !a->ref) goto done;
    me_adm_metrics m;
    me_adm_features sf = {s.n, s.feat.pool, s.feat.spatial, s.feat.logits};
    me_adm_features rf = {r.n, r.feat.pool, r.feat.spatial, NULL};
    if ((e = me_adm_evaluate(&sf, &rf, r.feat.stats.dim ? &r.feat.stats : NULL,
                             r.feat.stats_s.dim ? &r.feat.stats_s : NULL, a->is_split, &m)))
        goto fail;
    char v[5][64];
    py_float(m.inception_score, v[0], sizeof v[0]);
    py_float(m.fid, v[1], sizeof v[1]);
    py_float(m.sfid, v[2], sizeof v[2]);
    py_float(m.precision, v[3], sizeof v[3]);
    py_float(m.recall, v[4], sizeof v[4]);
    printf("Inception Score: %s\nFID: %s\nsFID: %s\nPrecision: %s\nRecall: %s\n", v[0], v[1], v[2], v[3], v[4]);
    fflush(stdout);
    if (a->json) rc = write_json(a, &m, s.n, r.n, r.feat.stats.dim != 0);
    goto done;
fail:
    rc = cli_fail(e);
done:
    side_free(&s);
    side_free(&r);
    me_inception_free(net);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    ev_args a = {.batch = 32, .threads = INT_MIN, .is_split = 5000, .preprocess = "adm"};
    const cli_flag flags[] = {
        {"--inception", CLI_STR, &a.inception, "PTH", "pt_inception-2015-12-05-6726825d.pth (pytorch-fid)"},
        {"--samples", CLI_STR, &a.samples, "S.npz", "sample batch arr_0 uint8 [N,H,W,3], or feature files F0,F1,…"},
        {"--ref", CLI_STR, &a.ref, "R.npz", "reference: images, ADM batch, --stats-out or feature files"},
        {"--json", CLI_STR, &a.json, "OUT.json", "also the numbers, N, the reference, the preprocessing"},
        {"--stats-out", CLI_STR, &a.stats_out, "R.npz", "the reference's mu, sigma, mu_s, sigma_s, pool features"},
        {"--features-out", CLI_STR, &a.features_out, "F.npz", "the samples' features (resumable; a --samples)"},
        {"--resume", CLI_BOOL, &a.resume, NULL, "continue a killed --features-out run; keep a finished one"},
        {"--shard", CLI_STR, &a.shard, "k/n|auto", "featurise part k of n of --samples into --features-out (%k, %n), then stop"},
        {"--preprocess", CLI_STR, &a.preprocess, "P", "adm (TF graph: default) or pytorch-fid"},
        {"--batch", CLI_INT, &a.batch, "B", "images per batch, in chunks of up to 4 per thread (default 32)"},
        {"--is-split", CLI_INT, &a.is_split, "K", "Inception Score split size (default 5000)"},
        {"--threads", CLI_INT, &a.threads, "N", CLI_THREADS_HELP},
        {"--device", CLI_STR, &a.device, "cpu", "(Inception has no CUDA path yet)"},
        {"--no-verify", CLI_BOOL, &a.no_verify, NULL, CLI_NO_VERIFY_HELP},
        {"--help", CLI_BOOL, &a.help, NULL, "this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse(CMD, argc, argv, flags, pos, 0, &npos)) return 2;
    if (a.help) {
        cli_usage(CMD, "--inception PTH --samples S.npz --ref R.npz [--json OUT.json] [--preprocess adm|pytorch-fid]",
                  flags);
        return 0;
    }
    if (cli_cpu_only(CMD, a.device, "Inception")) return 2;
    if (me_preprocess_parse(a.preprocess, &a.prep))
        return cli_usage_error(CMD, "--preprocess: '%s' is not adm or pytorch-fid", a.preprocess);
    cli_shard sh;
    char features_path[4096];
    if (cli_shard_parse(CMD, a.shard, a.threads != INT_MIN, &sh)) return 2;
    if (a.features_out) {
        if (cli_shard_expand(CMD, "--features-out", a.features_out, &sh, features_path, sizeof features_path))
            return 2;
        a.features_out = features_path;
    }
    a.shard_k = sh.k;
    a.shard_n = sh.n;
    if (!a.samples && !a.ref) return cli_usage_error(CMD, "--samples and/or --ref are required");
    if (a.shard && (!a.samples || !a.features_out))
        return cli_usage_error(CMD, "--shard needs --samples and --features-out");
    if (a.resume && !a.features_out) return cli_usage_error(CMD, "--resume needs --features-out");
    if (a.stats_out && !a.ref) return cli_usage_error(CMD, "--stats-out needs --ref");
    if (a.features_out && !a.samples) return cli_usage_error(CMD, "--features-out needs --samples");
    if (!a.ref && !a.features_out)
        return cli_usage_error(CMD, "--ref is required (or --features-out to only featurise)");
    if (a.batch < 1 || a.batch > 4096) return cli_usage_error(CMD, "--batch: %d is not in 1..4096", a.batch);
    if (a.is_split < 1) return cli_usage_error(CMD, "--is-split: %d must be >= 1", a.is_split);
    if (cli_threads(CMD, a.threads)) return 2;
    int rc = check_files(&a);
    if (rc) return rc;
    /* two runs featurising into one --features-out (a shard started twice,
       a path without %k) would interleave their rows in one .partial, which
       --resume then reads back as features */
    char lock_path[4200];
    int lock_fd = -1;
    if (a.features_out) {
        snprintf(lock_path, sizeof lock_path, "%s.lock", a.features_out);
        if ((rc = cli_lock(CMD, lock_path, &lock_fd))) return rc;
    }
    cli_shard_report(CMD, &sh);
    rc = run(&a);
    if (a.features_out) cli_unlock(lock_path, lock_fd);
    return rc;
}

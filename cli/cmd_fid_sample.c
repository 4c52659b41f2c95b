/* moedit fid-sample: FID sample batches as DiT's sample_ddp.py writes them —
   arr_0 uint8 [N, H, W, 3], arr_1 int64 labels — from N class-conditional
   samples, over any number of processes or machines.

   Reproducibility across shards: sample i's label (balanced: i mod classes;
   random: a hash of (seed, i)) and its noise (the native RNG stream
   me_native_row_seed(seed, i)) depend only on (seed, i). Samples go in
   batches of --batch fixed by index (batch b holds samples bB … bB+B−1), and
   --shard k/n takes a contiguous run of whole batches, so every sample is
   computed in exactly the same batch as in an unsharded run and the
   shards' npz-merge equals the unsharded file byte for byte.

   Interruption: finished images are appended to OUT.npz.partial and a
   small OUT.npz.state (the settings and the count done) is rewritten
   atomically after every batch; --resume checks the settings, cuts the
   partial file back to that count and goes on, so a killed run loses at most
   the batch in flight. OUT.npz itself is written (atomically) only at the
   end, then the two sidecar files are removed; --resume keeps an OUT.npz
   that a run of the same settings and weights finished.

   Small models (a guided forward of one batch under WORKER_FLOPS) keep the
   threads of one forward waiting on each other more than working: there
   every thread samples whole batches of its own, with its own copy of the
   model and the VAE and one thread inside, and the batches are appended in
   order. A sample's bytes do not depend on the thread count, so the file
   is the same either way. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/class_names.h"
#include "cli/cli.h"
#include "cli/shard.h"
#include "core/core.h"
#include "image/image.h"
#include "moedit.h"
#include "ops/gemm.h"
#include "sampler/sampler.h"
#include "trace/trace.h"
#include "weights/npy.h"

#define CMD "fid-sample"
#define STATE_MAGIC "moedit fid-sample state 1"
#define COPY_CHUNK ((size_t)8 << 20)
/* Batch workers below this many FLOPs per guided forward of a batch
   (fmnist-moe, 16 samples: 1.1 GFLOP); measured in docs/performance.md,
   "Shared machines". */
#define WORKER_FLOPS 20e9
#define MAX_WORKERS 64
/* --class entries: every class of ImageNet and the null one, with room to
   weight some by naming them twice. The resolved list goes into the resume
   state's settings line (under 8 KB with the rest), as at most this many
   characters of ids: ImageNet's 0..1000 take 3,895. */
#define MAX_CLASS_LIST 1024
#define MAX_CLASS_TEXT 4096

typedef struct {
    cli_sampling s;
    const char *npz, *labels, *shard, *trace, *classes;
    int num, batch, resume, help;
    int shard_k, shard_n, random_labels;
    int class_count;                      /* --class: the ids sampled, else 0 (every class) */
    int64_t class_list[MAX_CLASS_LIST];
    char class_text[MAX_CLASS_TEXT + 16]; /* " classes=3,7" for the settings line, else "" */
    char npz_path[4096];   /* --npz with %k/%n expanded */
    char device[16];   /* --shard auto with a bare --device cuda: cuda:<local rank> */
} fs_args;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Label of sample i: depends on (seed, i) only. Of --class's list by the
   same rule, so that the list of every class in order is the default. */
static int64_t label_of(const fs_args *a, uint64_t seed, int64_t i, int classes)
{
    const uint64_t k = (uint64_t)(a->class_count ? a->class_count : classes);
    const uint64_t j = a->random_labels ? splitmix64(splitmix64(seed ^ 0x6C6162656C73ull) + (uint64_t)i) % k
                                        : (uint64_t)i % k;
    return a->class_count ? a->class_list[j] : (int64_t)j;
}

/* --class resolved against the model (ids, or names from the defaults.json
   beside it); 0, or 2 after a one-line usage error. */
static int parse_class_list(fs_args *a, const char *model_path, int num_classes)
{
    me_class_names cn;
    if (cli_class_names(CMD, NULL, model_path, num_classes, &cn)) return 2;
    int rc = me_class_parse_list(&cn, a->classes, num_classes, a->class_list, MAX_CLASS_LIST, &a->class_count);
    me_class_names_free(&cn);
    if (rc) return cli_usage_error(CMD, "--class: %s", moedit_last_error());
    /* as ids, so that names and ids of one list are one setting */
    size_t at = (size_t)snprintf(a->class_text, sizeof a->class_text, " classes=");
    for (int i = 0; i < a->class_count && at < sizeof a->class_text; i++)
        at += (size_t)snprintf(a->class_text + at, sizeof a->class_text - at, "%s%lld", i ? "," : "",
                               (long long)a->class_list[i]);
    if (at >= sizeof a->class_text)
        return cli_usage_error(CMD, "--class: %d classes take more than %d characters as ids", a->class_count,
                               MAX_CLASS_TEXT);
    return 0;
}

/* ---- the resume state -------------------------------------------------- */

/* Everything that decides the output's bytes, as one line. */
static void fingerprint(const fs_args *a, const char *model, const moedit_sample_options *o, char *buf, size_t cap)
{
    /* the solver settings and vae_bf16 only when there are any, so that
       older state files of ddpm / ddim / flow runs still resume */
    /* and the class list only when given */
    char solver[128];
    cli_solver_describe(o, solver, sizeof solver);
    snprintf(buf, cap, "model=%s vae=%s num=%d batch=%d shard=%d/%d labels=%s seed=%" PRIu64
             " sampler=%d steps=%s cfg=%a cfg_channels=%d eta=%a cosine=%d heads=%d top_k=%d bf16=%d%s%s%s",
             model, a->s.vae, a->num, a->batch, a->shard_k, a->shard_n, a->random_labels ? "random" : "balanced",
             o->seed, (int)o->sampler, o->steps, o->cfg, o->cfg_channels, o->eta, o->cosine_schedule,
             a->s.load.heads, a->s.load.top_k, a->s.load.bf16, solver, a->s.vae_bf16 ? " vae_bf16=1" : "", a->class_text);
}

/* ---- the command ------------------------------------------------------- */

static int parse_args(fs_args *a)
{
    if (!a->npz) return cli_usage_error(CMD, "--npz OUT.npz is required");
    cli_shard sh;
    if (cli_shard_parse(CMD, a->shard, a->s.load.threads != INT_MIN, &sh) ||
        cli_shard_expand(CMD, "--npz", a->npz, &sh, a->npz_path, sizeof a->npz_path))
        return 2;
    a->npz = a->npz_path;
    a->shard_k = sh.k;
    a->shard_n = sh.n;
    if (a->shard && !strcmp(a->shard, "auto") && a->s.load.device && !strcmp(a->s.load.device, "cuda")) {
        snprintf(a->device, sizeof a->device, "cuda:%d", sh.local);
        a->s.load.device = a->device;
    }
    size_t l = strlen(a->npz);
    if (l < 5 || strcmp(a->npz + l - 4, ".npz")) return cli_usage_error(CMD, "--npz: '%s' is not a .npz file", a->npz);
    if (a->num < 1) return cli_usage_error(CMD, "--num N (>= 1) is required");
    if (a->batch < 1 || a->batch > 4096) return cli_usage_error(CMD, "--batch: %d is not in 1..4096", a->batch);
    if (a->labels && strcmp(a->labels, "balanced") && strcmp(a->labels, "random"))
        return cli_usage_error(CMD, "--labels: '%s' is not balanced or random", a->labels);
    a->random_labels = a->labels && !strcmp(a->labels, "random");
    if (a->trace && a->resume) return cli_usage_error(CMD, "--trace cannot be resumed: drop --resume or --trace");
    cli_shard_report(CMD, &sh);
    return 0;
}

/* One thread's model, VAE and batch buffers (worker 0: the run's own). */
typedef struct {
    moedit_model *m;
    moedit_vae *vae;
    moedit_sample_options o;
    float *latents, *z, *img;
    uint8_t *u8;
    int64_t *labels;
    uint64_t *seeds;
    float peak;   /* the last batch's largest |latent| (cli_latents_peak) */
} fs_worker;

typedef struct {
    fs_worker w[MAX_WORKERS];
    int workers;
    me_trace *tr;
    FILE *part;
    int fresh;        /* this run created .partial and .state and has finished no batch yet */
} fs_state;

static void worker_free(fs_worker *w)
{
    moedit_vae_free(w->vae);
    moedit_model_free(w->m);
    free(w->latents);
    free(w->z);
    free(w->img);
    free(w->u8);
    free(w->labels);
    free(w->seeds);
    memset(w, 0, sizeof *w);
}

static void release(fs_state *st)
{
    if (st->tr) {
        moedit_model_set_tracer(st->w[0].m, NULL, NULL);
        me_trace_abort(st->tr);
    }
    if (st->part) fclose(st->part);
    for (int i = 0; i < MAX_WORKERS; i++) worker_free(&st->w[i]);
}

/* Streams the partial file's images and the labels into the final npz. */
static int finish_npz(const fs_args *a, FILE *part, const cli_shard_meta *meta, int px, int classes,
                      uint64_t seed, uint8_t *buf, size_t cap)
{
    const int64_t first = meta->first, count = meta->count;
    me_zip_writer w;
    int rc = me_zip_writer_open(&w, a->npz);
    if (rc) return rc;
    rc = me_npz_begin(&w, "arr_0", ME_U8, 4, (int64_t[]){count, px, px, 3});
    uint64_t left = (uint64_t)count * px * px * 3;
    if (!rc && fseek(part, 0, SEEK_SET)) rc = me_fail(MOEDIT_EINTERNAL, "%s.partial: %s", a->npz, strerror(errno));
    while (!rc && left) {
        size_t k = left < cap ? (size_t)left : cap;
        if (fread(buf, 1, k, part) != k) rc = me_fail(MOEDIT_EINTERNAL, "%s.partial: short read", a->npz);
        else rc = me_zip_writer_write(&w, buf, k);
        left -= k;
    }
    if (!rc) rc = me_zip_writer_end(&w);
    if (!rc) {
        rc = me_npz_begin(&w, "arr_1", ME_I64, 1, &count);
        for (int64_t i = 0; i < count && !rc; i++) {
            int64_t y = label_of(a, seed, first + i, classes);
            rc = me_zip_writer_write(&w, &y, sizeof y);
        }
        if (!rc) rc = me_zip_writer_end(&w);
    }
    if (!rc) rc = cli_shard_write_meta(&w, meta);
    if (rc) {
        me_zip_writer_abort(&w);
        return rc;
    }
    return me_zip_writer_finish(&w);
}

/* Whether npz is this very run's finished file: its shard record names the
   same shard and settings (weights by content included) and it holds count
   px×px images and their labels. fid-sample writes OUT.npz atomically and
   only when complete, so such a file needs no sampling again. */
static int finished_before(const char *npz, const cli_shard_meta *want, int px)
{
    me_npz z;
    if (access(npz, F_OK) || me_npz_open(npz, &z)) return 0;
    cli_shard_meta have;
    me_array img = {0}, lab = {0};
    const int64_t c = want->count;
    int same = cli_shard_read_meta(&z, npz, &have) == 1 && have.k == want->k && have.n == want->n &&
               have.first == want->first && have.count == c && have.num == want->num &&
               !strcmp(have.settings, want->settings) && !me_npz_get(&z, "arr_0", &img) &&
               !me_npz_get(&z, "arr_1", &lab) && img.dtype == ME_U8 && img.ndim == 4 && img.shape[0] == c &&
               img.shape[1] == px && img.shape[2] == px && img.shape[3] == 3 && lab.dtype == ME_I64 &&
               lab.ndim == 1 && lab.shape[0] == c;
    me_array_free(&img);
    me_array_free(&lab);
    me_npz_close(&z);
    return same;
}

/* Batch buffers of worker w for batches of B samples; u8 holds at least
   u8_bytes (worker 0's also serves finish_npz). */
static int worker_buffers(fs_worker *w, size_t B, size_t latent, size_t image, size_t u8_bytes)
{
    w->latents = me_alloc(sizeof(float) * B * latent);
    w->z = me_alloc(sizeof(float) * B * latent);
    w->img = me_alloc(sizeof(float) * B * image);
    w->u8 = me_alloc(u8_bytes);
    w->labels = me_alloc(sizeof(int64_t) * B);
    w->seeds = me_alloc(sizeof(uint64_t) * B);
    return w->latents && w->z && w->img && w->u8 && w->labels && w->seeds ? MOEDIT_OK : MOEDIT_EINTERNAL;
}

/* A worker's own model and VAE, as the run loaded worker 0's. */
static int worker_load(fs_worker *w, const char *model_path, const moedit_load_options *lo, const fs_args *a)
{
    int e = moedit_model_load(model_path, lo, &w->m);
    if (!e) e = moedit_vae_load(a->s.vae, &w->vae);
    if (!e && a->s.vae_bf16) e = moedit_vae_set_bf16(w->vae, 1);
    return e;
}

/* Threads that sample batches side by side: one (each forward and decode
   uses all the threads; also when no batch is left, a resumed run that
   only has the final file to write) unless the model is small, runs on the
   CPU's own kernels and no trace is kept (its rows are batch-local, in
   order). */
static int worker_count(const fs_args *a, moedit_model *m, const moedit_load_options *lo, int64_t batches)
{
    int t = me_threads_max();
    if (t < 2 || batches < 2 || a->trace || lo->device.kind != MOEDIT_DEVICE_CPU || !me_gemm_native(0) ||
        moedit_model_flops(m, 2 * a->batch) > WORKER_FLOPS)
        return 1;
    if (t > MAX_WORKERS) t = MAX_WORKERS;
    return batches < t ? (int)batches : t;
}

/* Samples [i0, i0 + n) into w->u8 as HWC uint8 images (grayscale replicated
   to RGB). */
static int make_batch(const fs_args *a, fs_worker *w, int64_t i0, int n, int px)
{
    const moedit_config *c = moedit_model_config(w->m);
    const int C = c->in_channels, S = c->input_size, oc = moedit_vae_out_channels(w->vae);
    const float sf = moedit_vae_scaling_factor(w->vae);
    const size_t plane = (size_t)px * px, img_bytes = plane * 3;
    for (int r = 0; r < n; r++) {
        w->labels[r] = label_of(a, w->o.seed, i0 + r, c->num_classes);
        w->seeds[r] = me_native_row_seed(w->o.seed, (uint64_t)(i0 + r));
    }
    w->o.row_seeds = w->seeds;
    int e = moedit_sample(w->m, &w->o, n, w->labels, w->latents);
    if (e) return e;
    w->peak = cli_latents_peak((size_t)n * C * S * S, w->latents);
    for (size_t i = 0; i < (size_t)n * C * S * S; i++) w->z[i] = w->latents[i] / sf;
    if ((e = moedit_vae_decode(w->vae, n, S, S, w->z, w->img))) return e;
    for (int r = 0; r < n; r++)
        for (size_t p = 0; p < plane; p++)
            for (int ch = 0; ch < 3; ch++)
                w->u8[r * img_bytes + p * 3 + ch] = me_to_u8(w->img[((size_t)r * oc + (oc == 3 ? ch : 0)) * plane + p]);
    return MOEDIT_OK;
}

static int run(fs_args *a)
{
    fs_state st = {0};
    const char *model_path = cli_model_path(a->s.model);
    moedit_load_options lo;
    moedit_sample_options o;
    int rc, e;
    char part_path[4200], state_path[4200], lock_path[4200], fp[8192];
    snprintf(part_path, sizeof part_path, "%s.partial", a->npz);
    snprintf(state_path, sizeof state_path, "%s.state", a->npz);
    snprintf(lock_path, sizeof lock_path, "%s.lock", a->npz);
    if ((rc = cli_sampling_defaults(CMD, &a->s, model_path))) return rc;
    const cli_file files[] = {
        {"--model", model_path, CLI_IN}, {"--vae", a->s.vae, CLI_IN},
        {"--npz", a->npz, CLI_OUT},      {"--trace", a->trace, CLI_OUT},
        {"--npz's .partial", part_path, CLI_OUT}, {"--npz's .state", state_path, CLI_OUT},
        {"--npz's .lock", lock_path, CLI_OUT},
    };
    if ((rc = cli_check_files(CMD, files, sizeof files / sizeof files[0]))) return rc;
    int lock_fd;
    if ((rc = cli_lock(CMD, lock_path, &lock_fd))) return rc;

    if ((rc = cli_model_options(CMD, &a->s.load, &lo))) goto done;
    if (!a->s.vae) {
        rc = cli_model_exists(CMD, model_path) ? 2 : cli_usage_error(CMD, "no VAE to decode with: give --vae DIR (or "
                                                                         "a defaults.json \"vae\")");
        goto done;
    }
    fs_worker *w0 = &st.w[0];
    if ((e = moedit_model_load(model_path, &lo, &w0->m))) goto fail;
    if ((rc = cli_sampling_resolve(CMD, &a->s, w0->m, &o))) goto done;
    o.rng = MOEDIT_RNG_NATIVE;   /* per-row streams: a sample must not depend on its batch */
    const moedit_config *c = moedit_model_config(w0->m);
    if (a->classes && (rc = parse_class_list(a, model_path, c->num_classes))) goto done;
    if ((e = moedit_vae_load(a->s.vae, &w0->vae))) goto fail;
    if (a->s.vae_bf16 && (e = moedit_vae_set_bf16(w0->vae, 1))) goto fail;
    const int C = c->in_channels, S = c->input_size, oc = moedit_vae_out_channels(w0->vae);
    const int px = S * moedit_vae_upscale(w0->vae);
    if (moedit_vae_latent_channels(w0->vae) != C || (oc != 1 && oc != 3)) {
        rc = cli_usage_error(CMD, "%s: the VAE takes %d latent channels and makes %d (need %d and 1 or 3)",
                             a->s.vae, moedit_vae_latent_channels(w0->vae), oc, C);
        goto done;
    }

    /* this shard's whole batches */
    const int64_t nb = ((int64_t)a->num + a->batch - 1) / a->batch;
    const int64_t first = nb * a->shard_k / a->shard_n * a->batch;
    int64_t last = nb * (a->shard_k + 1) / a->shard_n * a->batch;
    if (last > a->num) last = a->num;
    const int64_t count = last - first;
    const size_t img_bytes = (size_t)px * px * 3, B = (size_t)a->batch;

    /* the weights by content too: a checkpoint replaced behind the same
       path must not resume into a file of the old one's samples */
    uint32_t model_crc, vae_crc;
    if ((e = moedit_model_digest(w0->m, &model_crc)) || (e = moedit_vae_digest(w0->vae, &vae_crc))) goto fail;
    char by_path[8000];
    fingerprint(a, model_path, &o, by_path, sizeof by_path);
    snprintf(fp, sizeof fp, "%s weights=%08x vae_weights=%08x", by_path, (unsigned)model_crc, (unsigned)vae_crc);
    cli_shard_meta meta = {.k = a->shard_k, .n = a->shard_n, .first = first, .count = count, .num = a->num};
    cli_shard_settings(fp, meta.settings, sizeof meta.settings);
    /* a rerun of a script after some shards finished, a requeued array task
       that had finished: keep the file rather than sample it again */
    if (a->resume && access(state_path, F_OK) && finished_before(a->npz, &meta, px)) {
        if (count)
            fprintf(stderr, "%s: already holds samples %" PRId64 "..%" PRId64 " of these settings and weights: kept\n",
                    a->npz, first, last - 1);
        else
            fprintf(stderr, "%s: already holds shard %d/%d, which has no samples, of these settings and weights: "
                    "kept\n", a->npz, a->shard_k, a->shard_n);
        rc = 0;
        goto done;
    }
    int64_t done = a->resume ? cli_state_read(state_path, STATE_MAGIC, fp) : 0;
    if (done < 0 && (done = cli_state_read(state_path, STATE_MAGIC, by_path)) >= 0)
        fprintf(stderr, "moedit %s: %s is from a build that named the weights by path only: resuming unchecked\n", CMD,
                state_path);
    if (done < 0 || done > count || (done % a->batch && done != count)) {
        rc = cli_usage_error(CMD, "--resume: %s is from a run with other settings or weights (remove it to start over)",
                             state_path);
        goto done;
    }
    if (done) {
        if ((rc = cli_partial_reopen(CMD, part_path, state_path, done * (int64_t)img_bytes, &st.part))) goto done;
        if (fseek(st.part, 0, SEEK_END)) {
            e = me_fail(MOEDIT_EINTERNAL, "%s: %s", part_path, strerror(errno));
            goto fail;
        }
        fprintf(stderr, "resuming %s: %" PRId64 " of %" PRId64 " samples done\n", a->npz, done, count);
    } else {
        if (!(st.part = fopen(part_path, "w+b"))) {
            rc = cli_usage_error(CMD, "%s: %s", part_path, strerror(errno));
            goto done;
        }
        st.fresh = 1;
        if ((e = cli_state_write(state_path, STATE_MAGIC, fp, 0))) goto fail;
    }
    const int64_t done0 = done, batches = (count - done + a->batch - 1) / a->batch;
    st.workers = worker_count(a, w0->m, &lo, batches);
    double per_row = sizeof(float) * (2.0 * C * S * S + (double)oc * px * px) + img_bytes + 16;
    if ((e = me_memory_check(per_row * (double)B, "the sample buffers of one --batch"))) goto fail;
    const int forward_rows = o.cfg > 1 ? 2 * a->batch : a->batch;   /* a guided step runs both halves */
    for (int i = 0; i < st.workers; i++) {
        fs_worker *w = &st.w[i];
        w->o = o;
        int err = i ? me_memory_check(per_row * (double)B, "the sample buffers") : 0;
        if (!err && i) err = worker_load(w, model_path, &lo, a);
        size_t u8_bytes = B * img_bytes > COPY_CHUNK || i ? B * img_bytes : COPY_CHUNK;
        if (!err) err = worker_buffers(w, B, (size_t)C * S * S, (size_t)oc * px * px, u8_bytes);
        /* each copy's activations and decoder buffers now, so that the next
           copy is checked with them */
        if (!err && batches) err = moedit_model_reserve(w->m, forward_rows);
        if (!err && batches) err = moedit_vae_reserve(w->vae, S, S);
        if (err && i) {   /* another copy would not fit in memory: the workers so far */
            worker_free(w);
            st.workers = i;
            break;
        }
        if ((e = err)) goto fail;
    }
    if (a->trace) {
        if ((e = me_trace_open(&st.tr, a->trace, c))) goto fail;
        moedit_model_set_tracer(w0->m, me_trace_route, st.tr);
    }

    char side[64] = "";
    if (st.workers > 1) snprintf(side, sizeof side, ", %d batches at a time (one per thread)", st.workers);
    if (first == last)   /* shards take whole batches: fewer batches than shards leave some without */
        fprintf(stderr, "%s: no samples for shard %d/%d (%d samples make %" PRId64 " batch%s of %d, and shards take "
                "whole batches)\n", a->npz, a->shard_k, a->shard_n, a->num, nb, nb == 1 ? "" : "es", a->batch);
    else
        fprintf(stderr, "%s: samples %" PRId64 "..%" PRId64 " of %d (shard %d/%d), %d per batch, %dx%d images%s\n",
                a->npz, first, last - 1, a->num, a->shard_k, a->shard_n, a->batch, px, px, side);
    const double t0 = cli_now();
    int failed = 0;   /* the first error, which stops every worker */
    int warned = 0;   /* blown-up latents reported (in the ordered section) */
    char why[512] = "";
    if (st.workers > 1) moedit_set_adaptive_threads(0);   /* no forward shares its thread */
    #pragma omp parallel num_threads(st.workers)
    {
        fs_worker *w = &st.w[omp_get_thread_num()];
        if (st.workers > 1) me_threads_cap(1);
        #pragma omp for ordered schedule(static, 1)
        for (int64_t b = 0; b < batches; b++) {
            const int64_t at = done0 + b * a->batch;
            const int n = (int)(count - at < a->batch ? count - at : a->batch);
            int err = __atomic_load_n(&failed, __ATOMIC_RELAXED) ? 0 : make_batch(a, w, first + at, n, px);
            #pragma omp ordered
            if (!__atomic_load_n(&failed, __ATOMIC_RELAXED)) {
                if (!err && (fwrite(w->u8, img_bytes, (size_t)n, st.part) != (size_t)n || fflush(st.part) ||
                             fsync(fileno(st.part))))
                    err = me_fail(MOEDIT_EINTERNAL, "%s: %s", part_path, strerror(errno));
                if (!err) err = cli_state_write(state_path, STATE_MAGIC, fp, done + n);
                if (err) {
                    snprintf(why, sizeof why, "%s", moedit_last_error());
                    __atomic_store_n(&failed, err, __ATOMIC_RELAXED);
                } else {
                    if (!warned && w->peak > CLI_LATENT_PEAK) {   /* once, at the first such batch */
                        cli_warn_blown_up(CMD, &w->o, w->peak);
                        warned = 1;
                    }
                    done += n;
                    st.fresh = 0;   /* from here on a failure leaves what --resume continues */
                    double el = cli_now() - t0, rate = (done - done0) / (el > 0 ? el : 1e-9);
                    fprintf(stderr, "%" PRId64 "/%" PRId64 " samples  %.2f samples/s  ETA %.0fs\n", done, count,
                            rate, (count - done) / rate);
                }
            }
        }
        me_threads_cap(0);
    }
    if (failed) {
        e = me_fail(failed, "%s", why);
        goto fail;
    }
    if ((e = finish_npz(a, st.part, &meta, px, c->num_classes, o.seed, w0->u8,
                        B * img_bytes > COPY_CHUNK ? B * img_bytes : COPY_CHUNK)))
        goto fail;
    if (st.tr) {
        moedit_model_set_tracer(w0->m, NULL, NULL);
        e = me_trace_close(st.tr);
        st.tr = NULL;
        if (e) goto fail;
    }
    fclose(st.part);
    st.part = NULL;
    unlink(part_path);
    unlink(state_path);
    fprintf(stderr, "wrote %s: %" PRId64 " sample%s\n", a->npz, count, count == 1 ? "" : "s");
    rc = 0;
    goto done;
fail:
    rc = cli_fail(e);
done:
    release(&st);
    if (st.fresh) {   /* nothing to resume: leave no file behind */
        unlink(part_path);
        unlink(state_path);
    }
    cli_unlock(lock_path, lock_fd);
    return rc;
}

int cmd_fid_sample(int argc, char **argv)
{
    fs_args a = {.batch = 16};
    cli_sampling_init(&a.s);
    const cli_flag own[] = {
        {"--npz", CLI_STR, &a.npz, "OUT.npz", "arr_0 uint8 [N,H,W,3], arr_1 int64 labels (%k, %n: the shard)"},
        {"--num", CLI_INT, &a.num, "N", "number of samples (all shards together)"},
        {"--batch", CLI_INT, &a.batch, "B", "samples per batch (default 16; the same for every shard)"},
        {"--labels", CLI_STR, &a.labels, "balanced|random", "i mod classes (default) or a hash of (seed, i)"},
        {"--class", CLI_STR, &a.classes, "LIST", "only these classes, names or ids (N: unconditional), taken as --labels says"},
        {"--shard", CLI_STR, &a.shard, "k/n|auto", "this process's part (k from 0; auto: Slurm, MPI or torchrun; a bare --device cuda becomes cuda:<local rank>)"},
        {"--resume", CLI_BOOL, &a.resume, NULL, "continue an interrupted run of the same command; keep its finished --npz"},
        {"--trace", CLI_STR, &a.trace, "T.bin", "record every expert routing decision (rows batch-local)"},
        {"--help", CLI_BOOL, &a.help, NULL, "this help"},
        {0},
    };
    cli_flag flags[CLI_SAMPLING_FLAGS + sizeof own / sizeof own[0]];
    int k = cli_sampling_flags(&a.s, flags);
    memcpy(flags + k, own, sizeof own);
    char *pos[1];
    int npos, rc;
    if (cli_parse(CMD, argc, argv, flags, pos, 0, &npos)) return 2;
    if (a.help) {
        cli_usage(CMD, "--npz OUT.npz --num N [--model CKPT] [sampling flags] [--shard k/n|auto] [--resume]", flags);
        return 0;
    }
    rc = parse_args(&a);
    if (!rc) rc = run(&a);
    cli_sampling_free(&a.s);
    return rc;
}

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
   end, then the two sidecar files are removed. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/shard.h"
#include "core/core.h"
#include "image/image.h"
#include "moedit.h"
#include "sampler/sampler.h"
#include "trace/trace.h"
#include "weights/npy.h"

#define CMD "fid-sample"
#define STATE_MAGIC "moedit fid-sample state 1"
#define COPY_CHUNK ((size_t)8 << 20)

typedef struct {
    cli_sampling s;
    const char *npz, *labels, *shard, *trace;
    int num, batch, resume, help;
    int shard_k, shard_n, random_labels;
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

/* Label of sample i: depends on (seed, i) only. */
static int64_t label_of(const fs_args *a, uint64_t seed, int64_t i, int classes)
{
    if (!a->random_labels) return i % classes;
    return (int64_t)(splitmix64(splitmix64(seed ^ 0x6C6162656C73ull) + (uint64_t)i) % (uint64_t)classes);
}

/* ---- the resume state -------------------------------------------------- */

/* Everything that decides the output's bytes, as one line. */
static void fingerprint(const fs_args *a, const char *model, const moedit_sample_options *o, char *buf, size_t cap)
{
    /* the solver settings and vae_bf16 only when there are any, so that
       older state files of ddpm / ddim / flow runs still resume */
    char solver[128];
    cli_solver_describe(o, solver, sizeof solver);
    snprintf(buf, cap, "model=%s vae=%s num=%d batch=%d shard=%d/%d labels=%s seed=%" PRIu64
             " sampler=%d steps=%s cfg=%a cfg_channels=%d eta=%a cosine=%d heads=%d top_k=%d bf16=%d%s%s",
             model, a->s.vae, a->num, a->batch, a->shard_k, a->shard_n, a->random_labels ? "random" : "balanced",
             o->seed, (int)o->sampler, o->steps, o->cfg, o->cfg_channels, o->eta, o->cosine_schedule,
             a->s.load.heads, a->s.load.top_k, a->s.load.bf16, solver, a->s.vae_bf16 ? " vae_bf16=1" : "");
}

/* ---- the command ------------------------------------------------------- */

static int parse_args(fs_args *a)
{
    if (!a->npz) return cli_usage_error(CMD, "--npz OUT.npz is required");
    cli_shard sh;
    if (cli_shard_parse(CMD, a->shard, &sh) ||
        cli_shard_expand(CMD, "--npz", a->npz, &sh, a->npz_path, sizeof a->npz_path))
        return 2;
    a->npz = a->npz_path;
    a->shard_k = sh.k;
    a->shard_n = sh.n;
    if (a->s.load.threads == INT_MIN && sh.threads) a->s.load.threads = sh.threads;
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
    return 0;
}

typedef struct {
    moedit_model *m;
    moedit_vae *vae;
    me_trace *tr;
    FILE *part;
    float *latents, *z, *img;
    uint8_t *u8;
    int64_t *labels;
    uint64_t *seeds;
    int fresh;        /* this run created .partial and .state and has finished no batch yet */
} fs_state;

static void release(fs_state *st)
{
    if (st->tr) {
        moedit_model_set_tracer(st->m, NULL, NULL);
        me_trace_abort(st->tr);
    }
    if (st->part) fclose(st->part);
    moedit_vae_free(st->vae);
    moedit_model_free(st->m);
    free(st->latents);
    free(st->z);
    free(st->img);
    free(st->u8);
    free(st->labels);
    free(st->seeds);
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
    int lock_fd;
    if ((rc = cli_lock(CMD, lock_path, &lock_fd))) return rc;

    if ((rc = cli_sampling_defaults(CMD, &a->s, model_path)) || (rc = cli_model_options(CMD, &a->s.load, &lo)))
        goto done;
    if (!a->s.vae) {
        rc = cli_usage_error(CMD, "no VAE to decode with: give --vae DIR (or a defaults.json \"vae\")");
        goto done;
    }
    if ((e = moedit_model_load(model_path, &lo, &st.m))) goto fail;
    if ((rc = cli_sampling_resolve(CMD, &a->s, st.m, &o))) goto done;
    o.rng = MOEDIT_RNG_NATIVE;   /* per-row streams: a sample must not depend on its batch */
    const moedit_config *c = moedit_model_config(st.m);
    if ((e = moedit_vae_load(a->s.vae, &st.vae))) goto fail;
    if (a->s.vae_bf16 && (e = moedit_vae_set_bf16(st.vae, 1))) goto fail;
    const int C = c->in_channels, S = c->input_size, oc = moedit_vae_out_channels(st.vae);
    const int px = S * moedit_vae_upscale(st.vae);
    if (moedit_vae_latent_channels(st.vae) != C || (oc != 1 && oc != 3)) {
        rc = cli_usage_error(CMD, "%s: the VAE takes %d latent channels and makes %d (need %d and 1 or 3)",
                             a->s.vae, moedit_vae_latent_channels(st.vae), oc, C);
        goto done;
    }

    /* this shard's whole batches */
    const int64_t nb = ((int64_t)a->num + a->batch - 1) / a->batch;
    const int64_t first = nb * a->shard_k / a->shard_n * a->batch;
    int64_t last = nb * (a->shard_k + 1) / a->shard_n * a->batch;
    if (last > a->num) last = a->num;
    const int64_t count = last - first;
    const size_t img_bytes = (size_t)px * px * 3, B = (size_t)a->batch;

    fingerprint(a, model_path, &o, fp, sizeof fp);
    int64_t done = a->resume ? cli_state_read(state_path, STATE_MAGIC, fp) : 0;
    if (done < 0 || done > count || (done % a->batch && done != count)) {
        rc = cli_usage_error(CMD, "--resume: %s is from a run with other settings (remove it to start over)", state_path);
        goto done;
    }
    if (done) {
        /* drop whatever the killed run wrote after its last checkpoint */
        if (!(st.part = fopen(part_path, "r+b")) || ftruncate(fileno(st.part), (off_t)(done * img_bytes)) ||
            fseek(st.part, 0, SEEK_END) || ftell(st.part) != (long)(done * img_bytes)) {
            rc = cli_usage_error(CMD, "--resume: %s is missing or shorter than %s says", part_path, state_path);
            goto done;
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
    double per_row = sizeof(float) * (2.0 * C * S * S + (double)oc * px * px) + img_bytes + 16;
    if ((e = me_memory_check(per_row * (double)B, "the sample buffers of one --batch"))) goto fail;
    st.latents = me_alloc(sizeof(float) * B * C * S * S);
    st.z = me_alloc(sizeof(float) * B * C * S * S);
    st.img = me_alloc(sizeof(float) * B * oc * px * px);
    st.u8 = me_alloc(B * img_bytes > COPY_CHUNK ? B * img_bytes : COPY_CHUNK);
    st.labels = me_alloc(sizeof(int64_t) * B);
    st.seeds = me_alloc(sizeof(uint64_t) * B);
    if (!st.latents || !st.z || !st.img || !st.u8 || !st.labels || !st.seeds) {
        e = MOEDIT_EINTERNAL;
        goto fail;
    }
    if (a->trace) {
        if ((e = me_trace_open(&st.tr, a->trace, c))) goto fail;
        moedit_model_set_tracer(st.m, me_trace_route, st.tr);
    }

    fprintf(stderr, "%s: samples %" PRId64 "..%" PRId64 " of %d (shard %d/%d), %d per batch, %dx%d images\n",
            a->npz, first, last - 1, a->num, a->shard_k, a->shard_n, a->batch, px, px);
    const float sf = moedit_vae_scaling_factor(st.vae);
    const double t0 = cli_now();
    const int64_t done0 = done;
    while (done < count) {
        const int n = (int)(count - done < a->batch ? count - done : a->batch);
        for (int r = 0; r < n; r++) {
            int64_t i = first + done + r;
            st.labels[r] = label_of(a, o.seed, i, c->num_classes);
            st.seeds[r] = me_native_row_seed(o.seed, (uint64_t)i);
        }
        o.row_seeds = st.seeds;
        if ((e = moedit_sample(st.m, &o, n, st.labels, st.latents))) goto fail;
        for (size_t i = 0; i < (size_t)n * C * S * S; i++) st.z[i] = st.latents[i] / sf;
        if ((e = moedit_vae_decode(st.vae, n, S, S, st.z, st.img))) goto fail;
        /* CHW float → HWC uint8, grayscale replicated to RGB */
        const size_t plane = (size_t)px * px;
        for (int r = 0; r < n; r++)
            for (size_t p = 0; p < plane; p++)
                for (int ch = 0; ch < 3; ch++)
                    st.u8[r * img_bytes + p * 3 + ch] = me_to_u8(st.img[((size_t)r * oc + (oc == 3 ? ch : 0)) * plane + p]);
        if (fwrite(st.u8, img_bytes, (size_t)n, st.part) != (size_t)n || fflush(st.part) || fsync(fileno(st.part))) {
            e = me_fail(MOEDIT_EINTERNAL, "%s: %s", part_path, strerror(errno));
            goto fail;
        }
        done += n;
        if ((e = cli_state_write(state_path, STATE_MAGIC, fp, done))) goto fail;
        st.fresh = 0;   /* from here on a failure leaves what --resume continues */
        double el = cli_now() - t0, rate = (done - done0) / (el > 0 ? el : 1e-9);
        fprintf(stderr, "%" PRId64 "/%" PRId64 " samples  %.2f samples/s  ETA %.0fs\n", done, count, rate,
                (count - done) / rate);
    }
    cli_shard_meta meta = {.k = a->shard_k, .n = a->shard_n, .first = first, .count = count, .num = a->num};
    cli_shard_settings(fp, meta.settings, sizeof meta.settings);
    if ((e = finish_npz(a, st.part, &meta, px, c->num_classes, o.seed, st.u8,
                        B * img_bytes > COPY_CHUNK ? B * img_bytes : COPY_CHUNK)))
        goto fail;
    if (st.tr) {
        moedit_model_set_tracer(st.m, NULL, NULL);
        e = me_trace_close(st.tr);
        st.tr = NULL;
        if (e) goto fail;
    }
    fclose(st.part);
    st.part = NULL;
    unlink(part_path);
    unlink(state_path);
    fprintf(stderr, "wrote %s: %" PRId64 " samples\n", a->npz, count);
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
        {"--shard", CLI_STR, &a.shard, "k/n|auto", "this process's part (k from 0; auto: Slurm, MPI or torchrun; a bare --device cuda becomes cuda:<local rank>)"},
        {"--resume", CLI_BOOL, &a.resume, NULL, "continue an interrupted run of the same command"},
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

/* moedit sample: class-conditional sampling from the command line — the
   sampling flags and defaults.json (shared with fid-sample, cli/sampling.c),
   the class list, progress on stderr, and the outputs (PNG grid, per-sample
   PNGs, latents .npy, expert trace), each written atomically and only after
   sampling succeeded. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/class_names.h"
#include "cli/cli.h"
#include "core/core.h"
#include "image/image.h"
#include "moedit.h"
#include "sampler/sampler.h"
#include "trace/trace.h"
#include "weights/npy.h"

#define CMD "sample"
#define MAX_ROWS 4096

/* The sampling flags shared with fid-sample (cli_sampling), then this
   command's own; NULL means "not given". */
typedef struct {
    cli_sampling s;
    const char *classes, *rng, *noise, *out, *outdir, *latents_out, *trace;
    int no_vae, help;
    const char *class_names;   /* --class-names FILE */
    int scale;                 /* --scale N; INT_MIN: tiles to at least 128 pixels */
    me_class_names names;      /* from --class-names, defaults.json or the ImageNet list */
} sample_args;

/* ---- flag values ------------------------------------------------------- */

/* "golden retriever,360" → labels (names, unique name prefixes or ids);
   returns the count or -1 after a usage error. */
static int parse_classes(const char *s, const me_class_names *names, int num_classes, int64_t *labels)
{
    int n;
    if (me_class_parse_list(names, s, num_classes, labels, MAX_ROWS, &n))
        return cli_usage_error(CMD, "--class: %s", moedit_last_error()), -1;
    return n;
}

/* Without --class: one sample of each class for small label sets (Fashion-
   MNIST's 10), DiT sample.py's eight classes for ImageNet, else classes 0..7. */
static int default_classes(int num_classes, int64_t *labels)
{
    static const int64_t imagenet[8] = {207, 360, 387, 974, 88, 979, 417, 279};
    if (num_classes == 1000) {
        memcpy(labels, imagenet, sizeof imagenet);
        return 8;
    }
    int n = num_classes <= 10 ? num_classes : 8;
    for (int i = 0; i < n; i++) labels[i] = i;
    return n;
}

/* ---- progress ---------------------------------------------------------- */

typedef struct {
    double start;
    int tty, last_pct;
} progress_state;

static void progress(void *user, int step, int total)
{
    progress_state *p = user;
    double el = cli_now() - p->start, rate = step / (el > 0 ? el : 1e-9), eta = (total - step) / rate;
    if (p->tty) {
        char bar[31];
        int fill = (int)(30.0 * step / total);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %d/%d  %.2f steps/s  ETA %.0fs ", bar, step, total, rate, eta);
        if (step == total) fputc('\n', stderr);
        return;
    }
    int pct = (int)(100.0 * step / total);
    if (pct / 10 != p->last_pct / 10 || step == total || total <= 20) {
        fprintf(stderr, "step %d/%d  %.2f steps/s  ETA %.0fs\n", step, total, rate, eta);
        p->last_pct = pct;
    }
}

/* ---- outputs ----------------------------------------------------------- */

/* Decodes latents / scaling_factor into *img [n, oc, s·up, s·up]. */
static int decode_images(moedit_vae *vae, int n, int c, int s, const float *latents, float **img)
{
    int oc = moedit_vae_out_channels(vae), up = moedit_vae_upscale(vae);
    size_t zn = (size_t)n * c * s * s, in = (size_t)n * oc * s * up * s * up;
    float *z = malloc(sizeof(float) * zn);
    *img = malloc(sizeof(float) * in);
    if (!z || !*img) {
        free(z);
        fprintf(stderr, "moedit: out of memory for %d decoded images\n", n);
        return 1;
    }
    float sf = moedit_vae_scaling_factor(vae);
    for (size_t i = 0; i < zn; i++) z[i] = latents[i] / sf;
    double t0 = cli_now();
    int r = moedit_vae_decode(vae, n, s, s, z, *img);
    free(z);
    if (r) return cli_fail(r);
    fprintf(stderr, "decoded %d image%s in %.2fs\n", n, n == 1 ? "" : "s", cli_now() - t0);
    return 0;
}

/* Grid columns: one per distinct class when there are at most 10 of them
   (repeats of a class line up), else a square layout; rows as needed. */
static int grid_cols(int n, const int64_t *labels)
{
    int distinct = 0;
    for (int i = 0; i < n && distinct <= 10; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = labels[j] == labels[i];
        distinct += !seen;
    }
    return distinct <= 10 ? distinct : 0;
}

/* --out naming one of the files --outdir will hold (0000_class1.png …)
   would have the grid replaced by a sample without a word: refused. */
static int check_grid_beside_images(const sample_args *a, int n, const int64_t *labels)
{
    if (!a->out || !a->outdir) return 0;
    const char *slash = strrchr(a->out, '/'), *base = slash ? slash + 1 : a->out;
    char parent[4096];
    snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - a->out) + 1 : 1, slash ? a->out : ".");
    struct stat p, d;
    if (stat(parent, &p) || stat(a->outdir, &d) || p.st_dev != d.st_dev || p.st_ino != d.st_ino) return 0;
    for (int i = 0; i < n; i++) {
        char name[64];
        me_sample_png_name(name, sizeof name, i, &labels[i]);
        if (!strcmp(base, name))
            return cli_usage_error(CMD, "--out %s is the file --outdir %s writes for sample %d: name the grid "
                                   "otherwise", a->out, a->outdir, i);
    }
    return 0;
}

/* The --out grid's layout for n tiles of px × px pixels, one place for the
   check before sampling and the grid written after. */
static me_grid_style grid_style(const sample_args *a, int n, int px, const int64_t *labels,
                                const char *const *captions)
{
    return (me_grid_style){.cols = grid_cols(n, labels), .pad = -1, .captions = captions,
                           .scale = a->scale == INT_MIN ? me_grid_auto_scale(px) : a->scale};
}

/* A grid past ME_GRID_MAX_PX, refused before the sampling that would fill
   it; one line, 2. The captions' text does not change the size, only that
   there are captions. */
static int check_grid_size(const sample_args *a, moedit_vae *vae, int n, int s, const int64_t *labels)
{
    static const char *const some_captions[] = {""};
    int px = s * moedit_vae_upscale(vae), gw, gh;
    me_grid_style st = grid_style(a, n, px, labels, some_captions);
    if (!a->out || !me_grid_size(n, px, px, &st, &gw, &gh)) return 0;
    return cli_usage_error(CMD, "--out %s: %s (fewer samples, or a smaller --scale)", a->out, moedit_last_error());
}

/* The grid (captioned with the class names, else ids) and the per-sample PNGs. */
static int write_images(const sample_args *a, moedit_vae *vae, int n, int s, const float *img,
                        const int64_t *labels)
{
    int oc = moedit_vae_out_channels(vae), px = s * moedit_vae_upscale(vae), r;
    if (a->out) {
        char (*caps)[128] = malloc(sizeof *caps * n);
        const char **capp = malloc(sizeof *capp * n);
        if (!caps || !capp) {
            free(caps);
            free(capp);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            me_class_label(&a->names, (int)labels[i], caps[i], sizeof caps[i]);
            capp[i] = caps[i];
        }
        me_grid_style st = grid_style(a, n, px, labels, capp);
        r = me_grid_write_png(a->out, n, oc, px, px, img, &st);
        free(caps);
        free(capp);
        if (r) return cli_fail(r);
        fprintf(stderr, "wrote %s\n", a->out);
    }
    if (a->outdir) {
        me_atomic_dir dir;
        if ((r = me_atomic_dir_open(&dir, a->outdir))) return cli_fail(r);
        if ((r = me_write_sample_pngs(dir.work, 0, n, oc, px, px, img, labels)) || (r = me_atomic_dir_commit(&dir))) {
            if (dir.path) me_atomic_dir_abort(&dir);
            return cli_fail(r);
        }
        fprintf(stderr, "wrote %d image%s into %s\n", n, n == 1 ? "" : "s", a->outdir);
    }
    return 0;
}

/* ---- the command ------------------------------------------------------- */

/* Settles every option from the shared sampling flags, then --rng; returns
   0 or the exit status of a usage error. */
static int resolve_options(const sample_args *a, const moedit_model *m, moedit_sample_options *o)
{
    int rc = cli_sampling_resolve(CMD, &a->s, m, o);
    if (rc) return rc;
    if (a->rng) {
        if (!strcmp(a->rng, "torch")) o->rng = MOEDIT_RNG_TORCH;
        else if (!strcmp(a->rng, "native")) o->rng = MOEDIT_RNG_NATIVE;
        else return cli_usage_error(CMD, "--rng: '%s' is not torch or native", a->rng);
    }
    return 0;
}

static void print_repeat(const char *model, const moedit_sample_options *o, int n, const int64_t *labels,
                         const sample_args *a)
{
    char chans[16], solver[128], num[CLI_FLOAT_STR];
    snprintf(chans, sizeof chans, "%d", o->cfg_channels);
    cli_solver_describe(o, solver, sizeof solver);
    fprintf(stderr, "moedit sample --model %s --sampler %s --steps %s%s --cfg %s --cfg-channels %s", model,
            me_sampler_name(o->sampler), o->steps, solver, cli_float_str(o->cfg, num), o->cfg_channels ? chans : "all");
    if (a->s.load.heads != INT_MIN) fprintf(stderr, " --heads %d", a->s.load.heads);
    if (a->s.load.top_k != INT_MIN) fprintf(stderr, " --top-k %d", a->s.load.top_k);
    if (a->s.load.bf16) fprintf(stderr, " --bf16");
    if (o->sampler == MOEDIT_SAMPLER_DDIM) fprintf(stderr, " --eta %s", cli_float_str(o->eta, num));
    if (!me_sampler_is_flow(o->sampler)) fprintf(stderr, " --schedule %s", o->cosine_schedule ? "cosine" : "linear");
    if (a->noise) fprintf(stderr, " --noise %s", a->noise);
    else fprintf(stderr, " --seed %llu --rng %s", (unsigned long long)o->seed, o->rng == MOEDIT_RNG_TORCH ? "torch" : "native");
    fprintf(stderr, " --class ");
    for (int i = 0; i < n; i++) fprintf(stderr, "%s%lld", i ? "," : "", (long long)labels[i]);
    fputc('\n', stderr);
}

static int run(sample_args *a)
{
    const char *model_path = cli_model_path(a->s.model);
    moedit_load_options lo;
    int rc = cli_sampling_defaults(CMD, &a->s, model_path), r;
    if (rc) return rc;

    /* outputs: decide before any work so a bad request fails fast */
    if (a->out && !cli_has_ext(a->out, ".png")) return cli_usage_error(CMD, "--out: '%s' is not a .png file", a->out);
    if (a->latents_out && !cli_has_ext(a->latents_out, ".npy"))
        return cli_usage_error(CMD, "--latents-out: '%s' is not a .npy file", a->latents_out);
    if (!a->out && !a->outdir && !a->latents_out) a->out = "sample.png";
    const cli_file files[] = {
        {"--model", model_path, CLI_IN},         {"--vae", a->s.vae, CLI_IN},
        {"--noise", a->noise, CLI_IN},           {"--class-names", a->class_names, CLI_IN},
        {"--out", a->out, CLI_OUT},              {"--outdir", a->outdir, CLI_OUT_DIR},
        {"--latents-out", a->latents_out, CLI_OUT}, {"--trace", a->trace, CLI_OUT},
    };
    if ((rc = cli_check_files(CMD, files, sizeof files / sizeof files[0]))) return rc;
    int want_images = a->out || a->outdir;
    if (a->scale != INT_MIN && (a->scale < 1 || a->scale > 64))
        return cli_usage_error(CMD, "--scale: %d is not 1..64", a->scale);
    if (want_images && a->no_vae)
        return cli_usage_error(CMD, "--no-vae leaves no images to write: give --latents-out L.npy instead of %s",
                               a->out ? "--out" : "--outdir");
    if (a->s.vae_bf16 && !want_images)
        return cli_usage_error(CMD, "--vae-bf16: nothing is decoded (no --out or --outdir)");
    if (want_images && !a->s.vae)
        return cli_model_exists(CMD, model_path) ? 2 : cli_usage_error(CMD, "no VAE to decode with: give --vae DIR, "
                                                                          "or --no-vae --latents-out L.npy");
    if ((rc = cli_model_options(CMD, &a->s.load, &lo))) return rc;

    moedit_model *m = NULL;
    moedit_vae *vae = NULL;
    me_trace *tr = NULL;
    float *latents = NULL, *noise = NULL, *img = NULL;
    int64_t *labels = malloc(sizeof(int64_t) * MAX_ROWS);
    rc = 1;
    if (!labels) return 1;
    double t0 = cli_now();
    if ((r = moedit_model_load(model_path, &lo, &m))) {
        rc = cli_fail(r);
        goto done;
    }
    const moedit_config *c = moedit_model_config(m);
    double load_time = cli_now() - t0;

    moedit_sample_options o;
    if ((rc = resolve_options(a, m, &o))) goto done;
    rc = 1;
    const int C = c->in_channels, S = c->input_size;
    const size_t chw = (size_t)C * S * S;
    int n;
    if ((rc = cli_class_names(CMD, a->class_names, model_path, c->num_classes, &a->names))) goto done;
    rc = 1;
    if (a->classes) {
        if ((n = parse_classes(a->classes, &a->names, c->num_classes, labels)) < 0) {
            rc = 2;
            goto done;
        }
    } else {
        n = default_classes(c->num_classes, labels);
    }
    if (a->noise) {
        me_array z;
        if ((r = me_npy_read(a->noise, &z))) {
            rc = cli_fail(r);
            goto done;
        }
        int ok = z.ndim == 4 && z.shape[1] == C && z.shape[2] == S && z.shape[3] == S && z.shape[0] >= 1 &&
                 z.shape[0] <= MAX_ROWS && (z.dtype == ME_F32 || z.dtype == ME_F64 || z.dtype == ME_F16);
        if (ok && !a->classes) {   /* the noise decides the count; labels cycle */
            for (int i = n; i < z.shape[0]; i++) labels[i] = labels[i % n];
            n = (int)z.shape[0];
        }
        ok = ok && z.shape[0] == n;
        char got[96];
        me_shape_str(z.ndim, z.shape, got, sizeof got);
        const char *dtype = me_dtype_name(z.dtype);
        if (ok && (noise = malloc(sizeof(float) * z.numel))) me_array_to_f32(&z, noise);
        me_array_free(&z);
        if (!ok) {
            rc = cli_usage_error(CMD, "--noise %s: expected float [%d,%d,%d,%d] (one row per class), got %s %s",
                                 a->noise, n, C, S, S, dtype, got);
            goto done;
        }
        if (!noise) goto done;
        /* NaN or inf would stop the run only after its first step */
        if (!isfinite(cli_latents_peak((size_t)n * C * S * S, noise))) {
            rc = cli_usage_error(CMD, "--noise %s: holds NaN or inf", a->noise);
            goto done;
        }
        o.noise = noise;
    }
    if ((rc = check_grid_beside_images(a, n, labels))) goto done;
    rc = 1;
    if (want_images && ((r = moedit_vae_load(a->s.vae, &vae)) || (a->s.vae_bf16 && (r = moedit_vae_set_bf16(vae, 1))))) {
        rc = cli_fail(r);
        goto done;
    }
    if (vae && moedit_vae_latent_channels(vae) != C) {
        rc = cli_usage_error(CMD, "%s: the VAE takes %d latent channels, the model makes %d", a->s.vae,
                             moedit_vae_latent_channels(vae), C);
        goto done;
    }
    if (vae && (rc = check_grid_size(a, vae, n, S, labels))) goto done;
    rc = 1;
    if (a->trace) {
        if ((r = me_trace_open(&tr, a->trace, c))) {
            rc = cli_fail(r);
            goto done;
        }
        moedit_model_set_tracer(m, me_trace_route, tr);
    }
    if (!(latents = malloc(sizeof(float) * n * chw))) goto done;

    /* all checked: from here on stderr is progress, not a one-line error */
    fprintf(stderr, "loaded %s (%s, depth %d, hidden %d) in %.2fs\n", model_path,
            c->family == MOEDIT_FAMILY_DIT ? "dit" : c->family == MOEDIT_FAMILY_DIT_MOE ? "dit-moe" : "switch-dit",
            c->depth, c->hidden, load_time);
    print_repeat(a->s.model ? a->s.model : "fmnist-moe", &o, n, labels, a);
    progress_state ps = {cli_now(), isatty(2), -1};
    o.progress = progress;
    o.progress_user = &ps;
    if ((r = moedit_sample(m, &o, n, labels, latents))) {
        if (ps.tty) fputc('\n', stderr);
        rc = cli_fail(r);
        goto done;
    }
    double el = cli_now() - ps.start;
    int steps = 0;
    me_sample_evaluations(&o, &steps);
    fprintf(stderr, "sampled %d latent%s in %.2fs (%.1f ms/step, %d model evaluations of up to %d rows)\n", n,
            n == 1 ? "" : "s", el,
            1e3 * el / (steps > 0 ? steps : 1), steps, o.cfg > 1 ? 2 * n : n);
    cli_warn_blown_up(CMD, &o, cli_latents_peak((size_t)n * chw, latents));
    /* decode before writing anything, so a failure leaves no outputs */
    if (vae && (rc = decode_images(vae, n, C, S, latents, &img))) goto done;
    rc = 1;
    if (tr) {
        moedit_model_set_tracer(m, NULL, NULL);
        me_trace_set_info(tr, me_sampler_name(o.sampler), steps, o.cfg);
        r = me_trace_close(tr);
        tr = NULL;
        if (r) {
            rc = cli_fail(r);
            goto done;
        }
        fprintf(stderr, "wrote %s\n", a->trace);
    }
    if (a->latents_out) {
        int64_t shape[4] = {n, C, S, S};
        if ((r = me_npy_write(a->latents_out, ME_F32, 4, shape, latents))) {
            rc = cli_fail(r);
            goto done;
        }
        fprintf(stderr, "wrote %s\n", a->latents_out);
    }
    rc = vae ? write_images(a, vae, n, S, img, labels) : 0;
done:
    if (tr) {
        moedit_model_set_tracer(m, NULL, NULL);
        me_trace_abort(tr);
    }
    moedit_vae_free(vae);
    moedit_model_free(m);
    free(latents);
    free(noise);
    free(img);
    free(labels);
    me_class_names_free(&a->names);
    return rc;
}

int cmd_sample(int argc, char **argv)
{
    sample_args a = {0};
    a.scale = INT_MIN;
    cli_sampling_init(&a.s);
    const cli_flag own[] = {
        {"--class", CLI_STR, &a.classes, "LIST", "class names or ids, e.g. \"golden retriever\",360 (default: one per class when <= 10)"},
        {"--class-names", CLI_STR, &a.class_names, "FILE", "class names, one per line (default: defaults.json, ImageNet for 1000)"},
        {"--scale", CLI_INT, &a.scale, "N", "grid tiles magnified N times (default: to >= 128 pixels)"},
        {"--rng", CLI_STR, &a.rng, "torch|native", "torch (default) reproduces PyTorch's CPU torch.randn"},
        {"--noise", CLI_STR, &a.noise, "Z.npy", "initial noise [n,C,H,W] instead of the RNG"},
        {"--out", CLI_STR, &a.out, "GRID.png", "image grid (default sample.png)"},
        {"--outdir", CLI_STR, &a.outdir, "DIR", "one PNG per sample"},
        {"--latents-out", CLI_STR, &a.latents_out, "L.npy", "final latents, before the VAE"},
        {"--no-vae", CLI_BOOL, &a.no_vae, NULL, "do not decode (use with --latents-out)"},
        {"--trace", CLI_STR, &a.trace, "T.bin", "record every expert routing decision"},
        {"--help", CLI_BOOL, &a.help, NULL, "this help"},
        {0},
    };
    cli_flag flags[CLI_SAMPLING_FLAGS + sizeof own / sizeof own[0]];
    int k = cli_sampling_flags(&a.s, flags);
    memcpy(flags + k, own, sizeof own);
    char *pos[1];
    int npos, rc = 0;
    if (cli_parse(CMD, argc, argv, flags, pos, 0, &npos)) rc = 2;
    else if (a.help)
        cli_usage(CMD, "[--model CKPT] [--class 1,2] [--sampler NAME] [--steps N] [--cfg S] [--cfg-interval LO,HI] "
                       "[--out grid.png | --outdir DIR | --no-vae --latents-out L.npy]", flags);
    else rc = run(&a);
    cli_sampling_free(&a.s);
    return rc;
}

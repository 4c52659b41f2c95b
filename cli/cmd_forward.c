/* moedit forward: one model evaluation on arrays from .npy files (the
   contract the PyTorch comparisons rely on); moedit bench: the median time
   and achieved GFLOP/s of that evaluation on random inputs, or with
   --inception the images/s of FID's feature extraction on given images. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include "cli/cli.h"
#include "cli/images.h"
#include "core/core.h"
#include "core/cpu.h"
#include "fid/inception.h"
#include "ops/peak.h"
#include "weights/npy.h"

static int is_float(me_dtype t) { return t == ME_F32 || t == ME_F64 || t == ME_F16 || t == ME_BF16; }
static int is_int(me_dtype t) { return t == ME_I64 || t == ME_I32 || t == ME_I16 || t == ME_I8 || t == ME_U8; }

static int shape_error(const char *file, const char *want, const me_array *a)
{
    char got[160];
    return cli_usage_error("forward", "%s: expected %s, got %s %s", file, want, me_dtype_name(a->dtype),
                           me_shape_str(a->ndim, a->shape, got, sizeof got));
}

int cmd_forward(int argc, char **argv)
{
    const char *model = NULL, *xp = NULL, *tp = NULL, *yp = NULL, *outp = NULL;
    int help = 0;
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    cli_flag flags[5 + CLI_MODEL_FLAGS + 2] = {
        {"--model", CLI_STR, &model, "CKPT|ALIAS", CLI_MODEL_HELP},
        {"--x", CLI_STR, &xp, "X.npy", "float32 [N,C,H,W]"},
        {"--t", CLI_STR, &tp, "T.npy", "float32 [N], timesteps as the model receives them"},
        {"--y", CLI_STR, &yp, "Y.npy", "int64 or int32 [N], class ids (num_classes = null)"},
        {"--out", CLI_STR, &outp, "OUT.npy", "float32 [N,out_channels,H,W]"},
    };
    int k = 5 + cli_model_flags(&mo, flags + 5);
    flags[k] = (cli_flag){"--help", CLI_BOOL, &help, NULL, "this help"};
    char *pos[1];
    int npos;
    moedit_load_options lo;
    if (cli_parse("forward", argc, argv, flags, pos, 0, &npos)) return 2;
    if (help) {
        cli_usage("forward", "[--model CKPT] --x X.npy --t T.npy --y Y.npy --out OUT.npy", flags);
        return 0;
    }
    if (!xp || !tp || !yp || !outp) return cli_usage_error("forward", "--x, --t, --y and --out are required");
    if (!cli_has_ext(outp, ".npy")) return cli_usage_error("forward", "--out %s: must end in .npy", outp);
    /* before the forward: an --out naming an input would replace it */
    const char *model_path = cli_model_path(model);
    if (cli_defaults_hints("forward", model_path, &mo.heads, &mo.top_k) || cli_model_options("forward", &mo, &lo))
        return 2;
    const cli_file files[] = {{"--model", model_path, CLI_IN}, {"--x", xp, CLI_IN}, {"--t", tp, CLI_IN},
                              {"--y", yp, CLI_IN}, {"--out", outp, CLI_OUT}};
    if (cli_check_files("forward", files, sizeof files / sizeof files[0])) return 2;

    moedit_model *m = NULL;
    me_array x = {0}, t = {0}, y = {0};
    float *xf = NULL, *tf = NULL, *out = NULL;
    int64_t *yi = NULL;
    int rc = moedit_model_load(model_path, &lo, &m);
    if (!rc) rc = me_npy_read(xp, &x);
    if (!rc) rc = me_npy_read(tp, &t);
    if (!rc) rc = me_npy_read(yp, &y);
    if (rc) {
        rc = cli_fail(rc);
        goto done;
    }
    const moedit_config *c = moedit_model_config(m);
    int64_t n = x.ndim == 4 ? x.shape[0] : 0, S = c->input_size;
    char want[96];
    snprintf(want, sizeof want, "float [N,%d,%d,%d]", c->in_channels, c->input_size, c->input_size);
    if (!is_float(x.dtype) || x.ndim != 4 || n < 1 || n > (1 << 20) || x.shape[1] != c->in_channels ||
        x.shape[2] != S || x.shape[3] != S) {
        rc = shape_error(xp, want, &x);
        goto done;
    }
    snprintf(want, sizeof want, "float [%lld]", (long long)n);
    if (!is_float(t.dtype) || t.ndim != 1 || t.shape[0] != n) {
        rc = shape_error(tp, want, &t);
        goto done;
    }
    snprintf(want, sizeof want, "int64 or int32 [%lld]", (long long)n);
    if (!is_int(y.dtype) || y.ndim != 1 || y.shape[0] != n) {
        rc = shape_error(yp, want, &y);
        goto done;
    }
    size_t out_len = (size_t)n * c->out_channels * S * S;
    xf = malloc((size_t)x.numel * sizeof *xf), tf = malloc((size_t)n * sizeof *tf);
    yi = malloc((size_t)n * sizeof *yi), out = malloc(out_len * sizeof *out);
    if (!xf || !tf || !yi || !out) {
        fprintf(stderr, "moedit forward: out of memory\n");
        rc = 1;
        goto done;
    }
    me_array_to_f32(&x, xf), me_array_to_f32(&t, tf), me_array_to_i64(&y, yi);
    /* after the conversion: float64 beyond float's range is inf here */
    size_t row = (size_t)c->in_channels * S * S;
    char bad[96];
    int nbad = me_non_finite_rows(xf, (int)n, row, bad, sizeof bad);
    if (nbad) {
        rc = cli_usage_error("forward", "%s: NaN or inf (as float32) in %d of %lld rows: %s", xp, nbad, (long long)n,
                             bad);
        goto done;
    }
    rc = moedit_model_forward(m, (int)n, xf, tf, yi, out);
    /* finite inputs can still overflow (x of 3e38): no output then */
    if (!rc && (nbad = me_non_finite_rows(out, (int)n, out_len / (size_t)n, bad, sizeof bad))) {
        rc = cli_usage_error("forward", "%s: the output overflows to NaN or inf in %d of %lld rows: %s; nothing "
                             "written", xp, nbad, (long long)n, bad);
        goto done;
    }
    if (!rc) rc = me_npy_write(outp, ME_F32, 4, (int64_t[]){n, c->out_channels, S, S}, out);
    if (rc) rc = cli_fail(rc);
done:
    free(xf), free(tf), free(yi), free(out);
    me_array_free(&x), me_array_free(&t), me_array_free(&y);
    moedit_model_free(m);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Processor time of all threads: with one thread, the work a forward costs
   even on a machine whose other processes stretch its wall time. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* xorshift64*: inputs need only be plausible, not reproducible across tools. */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return ((*s * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

/* The host line every published figure names, then this run's peaks. */
static void print_cpu_and_peak(const me_peak *peak)
{
    const me_cpu *c = me_cpu_info();
    printf("cpu: %s (%s family %d model %d stepping %d), L1d %ld KB, L2 %ld KB, L3 %ld MB; kernels %s%s\n",
           c->brand[0] ? c->brand : "unknown", c->vendor, c->family, c->model, c->stepping, c->l1d >> 10,
           c->l2 >> 10, c->l3 >> 20, me_cpu_isa_name(me_cpu_isa()), me_cpu_amx() ? ", amx-bf16" : "");
    printf("peak_fp32_gflops: %.1f (%s FMA loop, %d threads)\n", peak->fp32_gflops, peak->fp32_isa, peak->threads);
    if (peak->bf16_gflops > 0) printf("peak_bf16_gflops: %.1f (vdpbf16ps loop)\n", peak->bf16_gflops);
    else printf("peak_bf16_gflops: n/a (no AVX512-BF16)\n");
    if (peak->amx_gflops > 0) printf("peak_amx_gflops: %.1f (tdpbf16ps loop; bf16 weight products run on AMX)\n", peak->amx_gflops);
}

/* FID's Inception features and logits (what `moedit fid` computes per
   sample image) of every image in npz, `batch` images a call: one pass to
   warm up (the threads' first start, the packed weights' first reads from
   memory, the input buffer sized), then `iters` timed passes; the best pass counts, as in
   tools/bench_inception_torch.py, whose PyTorch figure it is set beside. */
static int bench_inception(const char *inception, const char *npz, int batch, int iters, const me_peak *peak)
{
    cli_images im;
    moedit_inception *net = NULL;
    float *feats = NULL, *logits = NULL;
    double *rate = malloc((size_t)iters * sizeof *rate), first = 0;
    int rc = cli_images_open(npz, &im);
    if (!rc) rc = moedit_inception_load(inception, &net);
    if (rc) {
        rc = cli_fail(rc);
        goto done;
    }
    if (batch > im.n) batch = im.n;
    feats = malloc(sizeof(float) * batch * ME_INCEPTION_DIM);
    logits = malloc(sizeof(float) * batch * ME_INCEPTION_CLASSES);
    if (!rate || !feats || !logits) {
        fprintf(stderr, "moedit bench: out of memory\n");
        rc = 1;
        goto done;
    }
    size_t img_bytes = (size_t)im.h * im.w * im.c;
    for (int pass = -1; pass < iters; pass++) {
        double t0 = now_ms();
        for (int i = 0; i < im.n; i += batch) {
            int k = im.n - i < batch ? im.n - i : batch;
            if ((rc = moedit_inception_features(net, k, im.h, im.w, im.c,
                                                (const uint8_t *)im.img.data + i * img_bytes, feats, logits))) {
                rc = cli_fail(rc);
                goto done;
            }
        }
        double ips = im.n / ((now_ms() - t0) / 1e3);
        if (pass < 0) first = ips;
        else rate[pass] = ips;
    }
    qsort(rate, (size_t)iters, sizeof *rate, cmp_double);
    double best = rate[iters - 1], median = iters % 2 ? rate[iters / 2] : (rate[iters / 2 - 1] + rate[iters / 2]) / 2;
    double gflop = moedit_inception_flops(net) / 1e9, multiplied = moedit_inception_flops_multiplied(net) / 1e9;
    printf("images_per_s: %.2f\ngflops: %.1f\n", best, best * gflop);
    if (peak->fp32_gflops > 0) printf("pct_of_peak: %.1f (of the fp32 peak)\n", 100 * best * gflop / peak->fp32_gflops);
    printf("median_images_per_s: %.2f first_pass_images_per_s: %.2f gflop_per_image: %.2f "
           "gflop_multiplied_per_image: %.2f images: %d (%dx%d) batch: %d threads: %d\n",
           median, first, gflop, multiplied, im.n, im.h, im.w, batch, me_threads());
    print_cpu_and_peak(peak);
done:
    free(rate), free(feats), free(logits);
    moedit_inception_free(net);
    cli_images_close(&im);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL, *inception = NULL, *images = NULL;
    int batch = INT_MIN, iters = INT_MIN, peak_only = 0, help = 0;
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    cli_flag flags[6 + CLI_MODEL_FLAGS + 2] = {
        {"--model", CLI_STR, &model, "CKPT|ALIAS", CLI_MODEL_HELP},
        {"--batch", CLI_INT, &batch, "B", "rows per forward (default 8); with --inception images per call (default 32, as fid)"},
        {"--iters", CLI_INT, &iters, "N", "timed forwards (--inception: passes over the images) after one warm-up (default 10)"},
        {"--peak", CLI_BOOL, &peak_only, NULL, "only name the CPU and measure its peaks (no --model)"},
        {"--inception", CLI_STR, &inception, "PTH", "time FID's Inception features instead of a transformer (needs --images)"},
        {"--images", CLI_STR, &images, "NPZ", "with --inception: arr_0 uint8 [N,H,W,3] images, all of them each pass"},
    };
    int k = 6 + cli_model_flags(&mo, flags + 6);
    flags[k] = (cli_flag){"--help", CLI_BOOL, &help, NULL, "this help"};
    char *pos[1];
    int npos;
    moedit_load_options lo;
    if (cli_parse("bench", argc, argv, flags, pos, 0, &npos)) return 2;
    if (help) {
        cli_usage("bench",
                  "[--model CKPT] [--batch B] [--iters N] [--threads N] [--bf16] | --peak"
                  " | --inception PTH --images NPZ [--batch B] [--iters N] [--threads N]",
                  flags);
        return 0;
    }
    /* --peak runs no forward: a model, batch or precision given with it
       would be ignored, and the figures read as if they described it */
    if (peak_only && (model || batch != INT_MIN || iters != INT_MIN || mo.bf16 || mo.fp32 || mo.device ||
                      mo.heads != INT_MIN || mo.top_k != INT_MIN))
        return cli_usage_error("bench", "--peak takes --threads only (it runs no model)");
    if (batch == INT_MIN) batch = inception ? 32 : 8;
    if (iters == INT_MIN) iters = 10;
    if (batch < 1 || batch > 65536) return cli_usage_error("bench", "--batch: %d is not 1 to 65536", batch);
    if (iters < 1 || iters > 100000) return cli_usage_error("bench", "--iters: %d is not 1 to 100000", iters);
    if (!inception != !images) return cli_usage_error("bench", "--inception and --images go together");
    if (inception && (model || peak_only || mo.bf16 || mo.fp32 || mo.device || mo.heads != INT_MIN ||
                      mo.top_k != INT_MIN))
        return cli_usage_error("bench", "--inception takes --images, --batch, --iters and --threads only");
    if (!peak_only && !inception && cli_defaults_hints("bench", cli_model_path(model), &mo.heads, &mo.top_k))
        return 2;
    if (cli_model_options("bench", &mo, &lo)) return 2;
    moedit_set_adaptive_threads(0);   /* a benchmark measures the count it names */
    /* The peaks first (the clocks are those the forward then runs at), the
       forward's figures first in the output. */
    me_peak peak;
    me_peak_measure(0, &peak);
    if (peak_only) {
        print_cpu_and_peak(&peak);
        return 0;
    }
    if (inception) return bench_inception(inception, images, batch, iters, &peak);
    moedit_model *m;
    double t_load = now_ms();
    int rc = moedit_model_load(cli_model_path(model), &lo, &m);
    if (rc) return cli_fail(rc);
    t_load = now_ms() - t_load;
    const moedit_config *c = moedit_model_config(m);
    size_t in_len = (size_t)batch * c->in_channels * c->input_size * c->input_size;
    size_t out_len = (size_t)batch * c->out_channels * c->input_size * c->input_size;
    float *x = malloc(in_len * sizeof *x), *t = malloc((size_t)batch * sizeof *t);
    float *out = malloc(out_len * sizeof *out);
    int64_t *y = malloc((size_t)batch * sizeof *y);
    double *ms = malloc((size_t)iters * sizeof *ms);
    if (!x || !t || !out || !y || !ms) {
        fprintf(stderr, "moedit bench: out of memory\n");
        rc = 1;
        goto done;
    }
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < in_len; i++)   /* Box–Muller: latents are roughly N(0, 1) */
        x[i] = (float)(sqrt(-2 * log(1 - uniform(&s))) * cos(6.283185307179586 * uniform(&s)));
    for (int b = 0; b < batch; b++) {
        t[b] = c->flow ? (float)uniform(&s) : (float)(int)(uniform(&s) * 1000);
        y[b] = (int64_t)(uniform(&s) * c->num_classes) % c->num_classes;
    }
    if ((rc = moedit_model_forward(m, batch, x, t, y, out))) {
        rc = cli_fail(rc);
        goto done;
    }
    double cpu0 = cpu_ms();
    for (int i = 0; i < iters; i++) {
        double t0 = now_ms();
        if ((rc = moedit_model_forward(m, batch, x, t, y, out))) {
            rc = cli_fail(rc);
            goto done;
        }
        ms[i] = now_ms() - t0;
    }
    double cpu_per = (cpu_ms() - cpu0) / iters;
    qsort(ms, (size_t)iters, sizeof *ms, cmp_double);
    double median = iters % 2 ? ms[iters / 2] : (ms[iters / 2 - 1] + ms[iters / 2]) / 2;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double gflops = moedit_model_flops(m, batch) / (median * 1e6);
    double limit = me_peak_forward_limit(&peak, mo.bf16);
    printf("forward_ms: %.3f\ngflops: %.2f\ncpu_ms: %.3f\n", median, gflops, cpu_per);
    if (limit > 0)
        printf("pct_of_peak: %.1f (of the %s peak)\n", 100 * gflops / limit,
               limit == peak.fp32_gflops ? "fp32" : limit == peak.amx_gflops ? "AMX bf16" : "bf16");
    printf("min_ms: %.3f max_ms: %.3f load_ms: %.0f peak_rss_mb: %.0f threads: %d bf16: %d\n", ms[0],
           ms[iters - 1], t_load, ru.ru_maxrss / 1024.0, me_threads(), mo.bf16);
    print_cpu_and_peak(&peak);
    if (lo.device.kind == MOEDIT_DEVICE_CUDA)
        printf("device: cuda:%d precision: %s\n", lo.device.index, mo.fp32 ? "fp32" : "bf16");
done:
    free(x), free(t), free(out), free(y), free(ms);
    moedit_model_free(m);
    return rc;
}

/* The transformer forward on a CUDA device against the same PyTorch
   fixtures as tests/dit_forward.c: float32 (TF32 off) within 1e-4 of the
   largest output, bfloat16 within 2e-2; the shipped models against the CPU
   forward at a larger batch after the device arena has grown. Without a GPU
   (or without -DMOEDIT_CUDA=ON) these say "skipped: no CUDA device", and
   only the refusal of a CUDA request is checked.

   MOEDIT_FIXTURES in the environment replaces the fixture folder compiled
   in, so scripts/gpu_check.sh can run a binary built on another machine. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dit/model.h"
#include "tests/testutil.h"

static const moedit_device cuda0 = {MOEDIT_DEVICE_CUDA, 0};

static void need_gpu(void)
{
    if (moedit_device_check(cuda0)) {
        const char *why = moedit_last_error();
        if (!strcmp(why, "no CUDA device")) cr_skip_test("skipped: no CUDA device");
        cr_skip_test("skipped: no CUDA device (%s)", why);
    }
}

static const char *path_of(const char *file, const char *suffix)
{
    static char buf[4][768];
    static int next;
    const char *dir = getenv("MOEDIT_FIXTURES");
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/dit/%s%s", dir && *dir ? dir : FIXTURES, file, suffix);
    return p;
}

static moedit_model *load_fixture(const char *variant, const char *file, moedit_device dev, int fp32)
{
    cJSON *j = tu_json_file(path_of(variant, ".json"));
    moedit_load_options o = {
        .heads = cJSON_GetObjectItemCaseSensitive(j, "heads")->valueint,
        .top_k = cJSON_GetObjectItemCaseSensitive(j, "top_k")->valueint,
        .device = dev, .fp32 = fp32,
    };
    cJSON_Delete(j);
    moedit_model *m;
    cr_assert_eq(moedit_model_load(path_of(file, ".pt"), &o, &m), MOEDIT_OK, "%s: %s", file, moedit_last_error());
    return m;
}

/* max|gpu − torch| / max|torch| over the fixture's inputs. */
static void check_fixture(const char *variant, const char *file, const char *out_suffix, int fp32, double tol)
{
    need_gpu();
    moedit_model *m = load_fixture(variant, file, cuda0, fp32);
    int64_t xn, tn, yn, wn;
    float *x = tu_npy_f32(path_of(variant, "_x.npy"), NULL, NULL, &xn);
    float *t = tu_npy_f32(path_of(variant, "_t.npy"), NULL, NULL, &tn);
    int64_t *y = tu_npy_i64(path_of(variant, "_y.npy"), &yn);
    float *want = tu_npy_f32(path_of(variant, out_suffix), NULL, NULL, &wn);
    float *got = malloc((size_t)wn * sizeof *got);
    cr_assert_eq(moedit_model_forward(m, (int)tn, x, t, y, got), MOEDIT_OK, "%s", moedit_last_error());
    double ref, err = tu_max_error(got, want, (size_t)wn, &ref) / ref;
    fprintf(stderr, "%s on cuda:0 %s: relative error %.3g (limit %g)\n", file, fp32 ? "fp32" : "bf16", err, tol);
    cr_expect(err <= tol, "%s %s: relative error %g > %g", file, fp32 ? "fp32" : "bf16", err, tol);
    free(x), free(t), free(y), free(want), free(got);
    moedit_model_free(m);
}

Test(dit_cuda, fp32_dense) { check_fixture("dit", "dit", "_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_moe_top2) { check_fixture("moe_top2", "moe_top2", "_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_moe_top1) { check_fixture("moe_top1", "moe_top1", "_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_moe_qknorm) { check_fixture("moe_qknorm", "moe_qknorm", "_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_switch_dmoe) { check_fixture("switch_dmoe", "switch_dmoe", "_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_switch_dtr) { check_fixture("switch_dtr", "switch_dtr", "_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_bf16_checkpoint) { check_fixture("dit", "dit_bf16", "_bf16_out.npy", 1, 1e-4); }
Test(dit_cuda, fp32_f16_checkpoint) { check_fixture("moe_qknorm", "moe_qknorm_f16", "_f16_out.npy", 1, 1e-4); }

Test(dit_cuda, bf16_dense) { check_fixture("dit", "dit", "_out.npy", 0, 2e-2); }
Test(dit_cuda, bf16_moe_top2) { check_fixture("moe_top2", "moe_top2", "_out.npy", 0, 2e-2); }
Test(dit_cuda, bf16_moe_top1) { check_fixture("moe_top1", "moe_top1", "_out.npy", 0, 2e-2); }
Test(dit_cuda, bf16_moe_qknorm) { check_fixture("moe_qknorm", "moe_qknorm", "_out.npy", 0, 2e-2); }
Test(dit_cuda, bf16_switch_dmoe) { check_fixture("switch_dmoe", "switch_dmoe", "_out.npy", 0, 2e-2); }
Test(dit_cuda, bf16_switch_dtr) { check_fixture("switch_dtr", "switch_dtr", "_out.npy", 0, 2e-2); }

/* The tensor-core attention in several score batches: moe_top2's 4 rows ×
   2 heads are 8 (row, head) pairs of 16×16 float32 scores (1 KB each); a
   3 KB bound makes batches of 3, 3 and 2 pairs. */
Test(dit_cuda, bf16_attention_in_score_batches)
{
    setenv("MOEDIT_CUDA_SCORE_BYTES", "3072", 1);
    check_fixture("moe_top2", "moe_top2", "_out.npy", 0, 2e-2);
    unsetenv("MOEDIT_CUDA_SCORE_BYTES");
}

/* A shipped model (8 experts, 16 tokens) at 33 rows on the GPU after a
   1-row forward (the arena grows between them) against the CPU forward,
   itself checked against PyTorch by tests/dit_forward.c. */
static void check_against_cpu(const char *model, int fp32, double tol)
{
    need_gpu();
    char path[768];
    snprintf(path, sizeof path, "%s/models/%s/model.pt", MOEDIT_SOURCE_DIR, model);
    moedit_model *cpu, *gpu;
    cr_assert_eq(moedit_model_load(path, NULL, &cpu), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(moedit_model_load(path, &(moedit_load_options){.device = cuda0, .fp32 = fp32}, &gpu), MOEDIT_OK,
                 "%s", moedit_last_error());
    const moedit_config *c = moedit_model_config(cpu);
    enum { ROWS = 33 };
    size_t in = (size_t)c->in_channels * c->input_size * c->input_size;
    size_t out = (size_t)c->out_channels * c->input_size * c->input_size;
    float *x = malloc(ROWS * in * sizeof *x), t[ROWS], *a = malloc(ROWS * out * sizeof *a);
    float *b = malloc(ROWS * out * sizeof *b);
    int64_t y[ROWS];
    for (size_t i = 0; i < ROWS * in; i++) x[i] = (float)(tu_splitmix64(i) % 2001) / 1000.0f - 1.0f;
    for (int r = 0; r < ROWS; r++) {
        t[r] = (float)(tu_splitmix64(ROWS * in + r) % 1000);
        y[r] = (int64_t)(r % (c->num_classes + 1));   /* the null class too */
    }
    cr_assert_eq(moedit_model_forward(gpu, 1, x, t, y, b), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(moedit_model_forward(gpu, ROWS, x, t, y, b), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(moedit_model_forward(cpu, ROWS, x, t, y, a), MOEDIT_OK, "%s", moedit_last_error());
    double ref, err = tu_max_error(b, a, ROWS * out, &ref) / ref;
    fprintf(stderr, "%s on cuda:0 %s vs CPU: relative error %.3g (limit %g)\n", model, fp32 ? "fp32" : "bf16", err, tol);
    cr_expect(err <= tol, "%s: relative error %g > %g", model, err, tol);
    free(x), free(a), free(b);
    moedit_model_free(cpu);
    moedit_model_free(gpu);
}

Test(dit_cuda, fmnist_moe_fp32_vs_cpu) { check_against_cpu("fmnist-moe", 1, 1e-4); }
Test(dit_cuda, fmnist_switch_fp32_vs_cpu) { check_against_cpu("fmnist-switch", 1, 1e-4); }
Test(dit_cuda, fmnist_moe_bf16_vs_cpu) { check_against_cpu("fmnist-moe", 0, 2e-2); }

/* The tracer on the GPU: every routing decision of the fp32 forward equals
   PyTorch's (fixture routes [depth, N, T, k] for DiT-MoE, [depth, N, k] and
   the gate probabilities for Switch-DiT), weights within 1e-5. */
typedef struct {
    int count, bad, T, k, rows;
    const int64_t *idx;
    const float *w, *probs;
    char first[256];
} route_check;

static void on_route(void *user, const moedit_route *r)
{
    route_check *c = user;
    c->count++;
    int64_t base = r->token >= 0 ? (((int64_t)r->layer * c->rows + r->row) * c->T + r->token) * c->k
                                 : ((int64_t)r->layer * c->rows + r->row) * c->k;
    for (int j = 0; j < r->k; j++)
        if (r->experts[j] != c->idx[base + j] || fabsf(r->weights[j] - c->w[base + j]) > 1e-5f) {
            if (!c->bad++)
                snprintf(c->first, sizeof c->first, "layer %d row %d token %d choice %d: expert %d (%g), want %d (%g)",
                         r->layer, r->row, r->token, j, r->experts[j], r->weights[j], (int)c->idx[base + j],
                         c->w[base + j]);
        }
    for (int e = 0; c->probs && e < r->num_probs; e++)
        if (fabsf(r->probs[e] - c->probs[((int64_t)r->layer * c->rows + r->row) * r->num_probs + e]) > 1e-5f) c->bad++;
    if (r->step != 7 || r->is_null != (r->row >= 2)) c->bad++;
}

static void check_routes(const char *variant, int switch_dit)
{
    need_gpu();
    moedit_model *m = load_fixture(variant, variant, cuda0, 1);
    me_array ra;   /* only the routes' shape */
    cr_assert_eq(me_npy_read(path_of(variant, "_routes.npy"), &ra), MOEDIT_OK, "%s", moedit_last_error());
    int ndim = ra.ndim;
    int64_t shape[ME_MAX_DIMS], n_idx, n_w, n_p, xn, tn, yn;
    memcpy(shape, ra.shape, sizeof shape);
    me_array_free(&ra);
    int64_t *idx = tu_npy_i64(path_of(variant, "_routes.npy"), &n_idx);
    float *w = tu_npy_f32(path_of(variant, "_route_weights.npy"), NULL, NULL, &n_w);
    float *probs = switch_dit ? tu_npy_f32(path_of(variant, "_gate_probs.npy"), NULL, NULL, &n_p) : NULL;
    route_check c = {.T = switch_dit ? 1 : (int)shape[2], .k = (int)shape[ndim - 1], .rows = (int)shape[1],
                     .idx = idx, .w = w, .probs = probs};
    float *x = tu_npy_f32(path_of(variant, "_x.npy"), NULL, NULL, &xn);
    float *t = tu_npy_f32(path_of(variant, "_t.npy"), NULL, NULL, &tn);
    int64_t *y = tu_npy_i64(path_of(variant, "_y.npy"), &yn);
    float *out = malloc(2 * (size_t)xn * sizeof *out);
    moedit_model_set_tracer(m, on_route, &c);
    moedit_model_set_step(m, 7, 2);
    cr_assert_eq(moedit_model_forward(m, (int)tn, x, t, y, out), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(c.count, n_idx / c.k, "%s: %d routing calls, want %lld", variant, c.count, (long long)(n_idx / c.k));
    cr_expect_eq(c.bad, 0, "%s: %d mismatches, first: %s", variant, c.bad, c.first);
    free(idx), free(w), free(probs), free(x), free(t), free(y), free(out);
    moedit_model_free(m);
}

Test(dit_cuda, routes_moe_top2) { check_routes("moe_top2", 0); }
Test(dit_cuda, routes_moe_qknorm) { check_routes("moe_qknorm", 0); }
Test(dit_cuda, routes_switch_dmoe) { check_routes("switch_dmoe", 1); }

/* Without a usable GPU a CUDA load fails before reading weights, with the
   device check's message: the build's or the machine's reason. */
Test(dit_cuda, unusable_device_is_refused)
{
    moedit_device far = {MOEDIT_DEVICE_CUDA, 1023};
    int gpu = moedit_device_check(cuda0) == MOEDIT_OK;
    cr_assert_eq(moedit_device_check(far), MOEDIT_EINPUT);
    char why[256];
    snprintf(why, sizeof why, "%s", moedit_last_error());
    if (gpu) cr_expect_not_null(strstr(why, "no CUDA device 1023 ("), "%s", why);
    else
        cr_expect(!strcmp(why, "no CUDA device") || !strcmp(why, "moedit was built without CUDA (-DMOEDIT_CUDA=ON)"),
                  "%s", why);
    moedit_model *m = (moedit_model *)&m;
    cr_expect_eq(moedit_model_load(path_of("dit", ".pt"), &(moedit_load_options){.device = far}, &m),
                 MOEDIT_EINPUT);
    cr_expect_null(m);
    cr_expect_str_eq(moedit_last_error(), why);
    cr_expect_eq(moedit_device_check((moedit_device){MOEDIT_DEVICE_CPU, 0}), MOEDIT_OK);
}

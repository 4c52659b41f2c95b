/* The performance modes of the transformer forward: the output must not
   depend on the thread count (every parallel split keeps each element's
   summation order), and the bfloat16 weight mode must stay close to
   PyTorch's float32 output without ever holding a float32 copy of a
   bfloat16 checkpoint's block matrices. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/cpu.h"
#include "dit/model.h"
#include "ops/gemm.h"
#include "weights/npy.h"
#include "tests/testutil.h"

#define DIR FIXTURES "/dit/"

static float *load_f32(const char *variant, const char *suffix, int64_t *numel, int64_t *rows)
{
    char path[512];
    int64_t shape[ME_MAX_DIMS];
    snprintf(path, sizeof path, DIR "%s%s", variant, suffix);
    float *f = tu_npy_f32(path, NULL, shape, numel);
    *rows = shape[0];
    return f;
}

static int json_int(const char *variant, const char *key)
{
    char path[512];
    snprintf(path, sizeof path, DIR "%s.json", variant);
    cJSON *j = tu_json_file(path);
    int v = cJSON_GetObjectItemCaseSensitive(j, key)->valueint;
    cJSON_Delete(j);
    return v;
}

static moedit_model *load(const char *variant, const char *file, int bf16)
{
    char path[512];
    snprintf(path, sizeof path, DIR "%s.pt", file);
    moedit_load_options o = {.heads = json_int(variant, "heads"), .top_k = json_int(variant, "top_k"), .bf16 = bf16};
    moedit_model *m;
    cr_assert_eq(moedit_model_load(path, &o, &m), MOEDIT_OK, "%s", moedit_last_error());
    return m;
}

/* The fixture's rows tiled to `rows` rows (labels and timesteps cycling), so
   every product and loop is large enough to be split over threads. */
static void run_tiled(moedit_model *m, const char *variant, int rows, float *out)
{
    int64_t xn, n, tn, yn, r2;
    float *x = load_f32(variant, "_x.npy", &xn, &n), *t = load_f32(variant, "_t.npy", &tn, &r2);
    char path[512];
    snprintf(path, sizeof path, DIR "%s_y.npy", variant);
    int64_t *y = tu_npy_i64(path, &yn);
    size_t per = (size_t)(xn / n);
    float *bx = malloc((size_t)rows * per * sizeof *bx), *bt = malloc((size_t)rows * sizeof *bt);
    int64_t *by = malloc((size_t)rows * sizeof *by);
    for (int r = 0; r < rows; r++) {
        memcpy(bx + (size_t)r * per, x + (size_t)(r % n) * per, per * sizeof *bx);
        bx[(size_t)r * per] += 0.01f * r;   /* rows differ */
        bt[r] = t[(r / n) % tn];
        by[r] = y[(r + r / n) % yn];
    }
    cr_assert_eq(moedit_model_forward(m, rows, bx, bt, by, out), MOEDIT_OK, "%s", moedit_last_error());
    free(x), free(t), free(y), free(bx), free(bt), free(by);
}

/* One thread against two and eight, on 192 rows and on one: more threads
   than the cores here, and (one row: 16 tokens) than a DiT-MoE layer's
   work items, so every item goes in two stages; the per-thread buffers
   regrow after the one-thread forward. */
static void thread_independent(const char *variant)
{
    moedit_model *m = load(variant, variant, 0);
    const moedit_config *c = moedit_model_config(m);
    static const int row_counts[] = {192, 1};
    for (int r = 0; r < 2; r++) {
        int rows = row_counts[r];
        size_t len = (size_t)rows * c->out_channels * c->input_size * c->input_size;
        float *one = malloc(len * sizeof *one), *more = malloc(len * sizeof *more);
        moedit_set_threads(1);
        run_tiled(m, variant, rows, one);
        static const int thread_counts[] = {2, 8};
        for (int i = 0; i < 2; i++) {
            int threads = thread_counts[i];
            moedit_set_threads(threads);
            run_tiled(m, variant, rows, more);
            double maxref, maxdiff = tu_max_error(more, one, len, &maxref);
            fprintf(stderr, "%s, %d rows: 1 vs %d threads, max diff / max = %.3g\n", variant, rows, threads,
                    maxdiff / maxref);
            cr_expect(maxdiff <= 1e-5 * maxref, "%s, %d rows: 1 vs %d threads differ by %g (max %g)", variant, rows,
                      threads, maxdiff, maxref);
        }
        free(one), free(more);
    }
    moedit_set_threads(0);
    moedit_model_free(m);
}

Test(dit_perf, threads_dense) { thread_independent("dit"); }
Test(dit_perf, threads_moe) { thread_independent("moe_top2"); }
Test(dit_perf, threads_moe_qknorm) { thread_independent("moe_qknorm"); }
Test(dit_perf, threads_switch_dmoe) { thread_independent("switch_dmoe"); }
Test(dit_perf, threads_moe_wide) { thread_independent("moe_wide"); }

/* max|got − want| / max|want| on the fixture's own rows. */
static double fixture_error(moedit_model *m, const char *variant, const char *out_suffix)
{
    int64_t xn, n, tn, r2, wn, r3;
    float *x = load_f32(variant, "_x.npy", &xn, &n), *t = load_f32(variant, "_t.npy", &tn, &r2);
    float *want = load_f32(variant, out_suffix, &wn, &r3), *got = malloc((size_t)wn * sizeof *got);
    char path[512];
    snprintf(path, sizeof path, DIR "%s_y.npy", variant);
    int64_t *y = tu_npy_i64(path, NULL);
    cr_assert_eq(moedit_model_forward(m, (int)n, x, t, y, got), MOEDIT_OK, "%s", moedit_last_error());
    double maxref, maxdiff = tu_max_error(got, want, (size_t)wn, &maxref);
    free(x), free(t), free(y), free(want), free(got);
    return maxdiff / maxref;
}

Test(dit_perf, bf16_weights_close_to_float32)
{
    if (!me_gemm_native(1)) cr_skip_test("no AVX512-BF16 on this CPU");
    /* A bf16 checkpoint: the weights are exact, only the activations are
       rounded to bf16 (8 significant bits) in every product. */
    moedit_model *m = load("dit", "dit_bf16", 1);
    double err = fixture_error(m, "dit", "_bf16_out.npy");
    fprintf(stderr, "dit_bf16 in bf16 mode: relative error %.3g\n", err);
    cr_expect(err <= 2e-2, "bf16 mode: relative error %g", err);
    cr_expect(err > 0, "bf16 mode seems not to be on");
    /* No float32 copy was made of a block matrix. */
    const me_tensor *w = me_tensors_find(m->ts, "blocks.0.attn.qkv.weight");
    cr_assert_not_null(w);
    cr_expect_eq(w->dtype, ME_BF16);
    cr_expect_null(w->f32, "a float32 copy of a bf16 weight was made");
    moedit_model_free(m);

    m = load("moe_top2", "moe_top2", 1);
    err = fixture_error(m, "moe_top2", "_out.npy");
    fprintf(stderr, "moe_top2 in bf16 mode: relative error %.3g\n", err);
    cr_expect(err <= 3e-2, "bf16 mode (moe_top2): relative error %g", err);
    moedit_model_free(m);

    /* Experts run in chunks of the bf16 K block (AMX: whole). */
    m = load("moe_wide", "moe_wide", 1);
    const dit_swiglu *ex = &m->blocks[0].experts[0];
    if (!me_cpu_amx()) cr_expect_lt(ex->chunk, ex->hid, "bf16 experts of %d units ran unchunked", ex->hid);
    err = fixture_error(m, "moe_wide", "_out.npy");
    fprintf(stderr, "moe_wide in bf16 mode: relative error %.3g\n", err);
    cr_expect(err <= 3e-2, "bf16 mode (moe_wide): relative error %g", err);
    moedit_model_free(m);
}

/* The GEMM kernels against a naive double-precision product computed here,
   over sizes that hit every edge (rows not a multiple of 14, columns not a
   multiple of 32, K blocks of unequal use, k = 1), every transpose, alpha,
   beta and bias; the bfloat16 mode against a product of the bf16-rounded
   operands; results that do not change with the thread count; and the
   tiles that read B's rows in place against the packed-panel ones. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/gemm.h"
#include "ops/gemm_tile.h"
#include "ops/ops.h"
#include "ops/vexp.h"

static float *rnd(size_t n, unsigned seed)
{
    float *v = malloc(n * sizeof *v + 4);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) / 16777216.0 * 2.0 - 1.0);
    }
    return v;
}

static float round_bf16(float f) { return me_bf16_to_f32(me_f32_to_bf16(f)); }

/* ref[i, j] = alpha·Σ op(A)[i,kk]·op(B)[kk,j] + bias[j] + beta·c0[i, j], and
   the Σ|terms| that bound the rounding error. bf16: operands rounded first. */
static void reference(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                      int ldb, const float *bias, float beta, const float *c0, int ldc, int bf16, double *ref,
                      double *mag)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0, s_abs = 0;
            for (int kk = 0; kk < k; kk++) {
                float x = ta ? a[(size_t)kk * lda + i] : a[(size_t)i * lda + kk];
                float y = tb ? b[(size_t)j * ldb + kk] : b[(size_t)kk * ldb + j];
                if (bf16) x = round_bf16(x), y = round_bf16(y);
                s += (double)x * y, s_abs += fabs((double)x * y);
            }
            s *= alpha, s_abs *= fabs(alpha);
            double extra = (bias ? bias[j] : 0.0) + (beta != 0.0f ? beta * (double)c0[(size_t)i * ldc + j] : 0.0);
            ref[(size_t)i * n + j] = s + extra;
            mag[(size_t)i * n + j] = s_abs + fabs(extra);
        }
}

static void check(int m, int n, const float *c, int ldc, const double *ref, const double *mag, double rel,
                  const char *what)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double want = ref[(size_t)i * n + j], got = c[(size_t)i * ldc + j];
            double tol = rel * mag[(size_t)i * n + j] + 1e-30;
            cr_assert(fabs(got - want) <= tol, "%s: C[%d,%d] = %.9g, want %.9g (tol %.3g)", what, i, j, got,
                      want, tol);
        }
}

static const int sizes[] = {1, 3, 17, 33, 64, 100, 257};
#define NS (int)(sizeof sizes / sizeof *sizes)

Test(gemm, sgemm_all_transposes_odd_sizes)
{
    for (int mi = 0; mi < NS; mi++)
        for (int ni = 0; ni < NS; ni++)
            for (int ki = 0; ki < NS; ki += 2) {
                int m = sizes[mi], n = sizes[ni], k = sizes[ki] + (mi == 3);   /* + one k above 257 */
                /* every transpose on the smaller shapes, one (cycling) on the large */
                int big = (double)m * n * k > 3e5;
                for (int t = big ? (mi + ni + ki) % 4 : 0; t < 4; t += big ? 4 : 1) {
                    int ta = t & 1, tb = t >> 1;
                    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 5;
                    float *a = rnd((size_t)(ta ? k : m) * lda, 1 + t), *b = rnd((size_t)(tb ? n : k) * ldb, 7 + t);
                    float *c = rnd((size_t)m * ldc, 11), *c0 = malloc((size_t)m * ldc * sizeof *c0);
                    memcpy(c0, c, (size_t)m * ldc * sizeof *c);
                    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
                    float alpha = t == 3 ? -0.5f : 1.0f, beta = t == 1 ? 0.0f : t == 2 ? 0.75f : 1.0f;
                    reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, beta, c0, ldc, 0, ref, mag);
                    me_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                    char what[64];
                    snprintf(what, sizeof what, "m %d n %d k %d ta %d tb %d", m, n, k, ta, tb);
                    check(m, n, c, ldc, ref, mag, 2e-6, what);
                    /* the padding columns of C stay untouched */
                    for (int i = 0; i < m; i++)
                        for (int j = n; j < ldc; j++) cr_assert_eq(c[(size_t)i * ldc + j], c0[(size_t)i * ldc + j]);
                    free(a), free(b), free(c), free(c0), free(ref), free(mag);
                }
            }
}

/* Products whose last tile has 2 or 8 = 6 + 2 rows (on AVX2 the 2-row
   tile takes all 32 columns at once, with its own store), alpha and beta,
   over a partial panel and K blocks that accumulate. */
Test(gemm, two_row_tiles_alpha_beta)
{
    static const int ms[2] = {2, 8};
    for (int mi = 0; mi < 2; mi++) {
        int m = ms[mi], n = 45, k = 300, ldc = n + 3;
        float *a = rnd((size_t)m * k, 31), *b = rnd((size_t)k * n, 32);
        float *c = rnd((size_t)m * ldc, 33), *c0 = malloc((size_t)m * ldc * sizeof *c0);
        memcpy(c0, c, (size_t)m * ldc * sizeof *c);
        double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
        reference(0, 0, m, n, k, -0.5f, a, k, b, n, NULL, 0.75f, c0, ldc, 0, ref, mag);
        me_sgemm(0, 0, m, n, k, -0.5f, a, k, b, n, 0.75f, c, ldc);
        check(m, n, c, ldc, ref, mag, 2e-6, m == 2 ? "2 rows" : "8 rows");
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++) cr_assert_eq(c[(size_t)i * ldc + j], c0[(size_t)i * ldc + j]);
        free(a), free(b), free(c), free(c0), free(ref), free(mag);
    }
}

/* me_gemm on a packed PyTorch-layout weight W [n, k]: y = x·Wᵀ + bias. */
static void packed_case(int m, int n, int k, int bf16, int type, double rel)
{
    float *x = rnd((size_t)m * k, 3), *w = rnd((size_t)n * k, 5), *bias = rnd((size_t)n, 9);
    /* the weight as the source type holds it (rounded for bf16/f16) */
    uint16_t *w16 = malloc((size_t)n * k * sizeof *w16 + 2);
    for (size_t i = 0; i < (size_t)n * k; i++) {
        w16[i] = type == ME_GEMM_BF16 ? me_f32_to_bf16(w[i]) : me_f32_to_f16(w[i]);
        if (type != ME_GEMM_F32) w[i] = type == ME_GEMM_BF16 ? me_bf16_to_f32(w16[i]) : me_f16_to_f32(w16[i]);
    }
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
    me_gemm_b_init(&pb, mem, k, n, bf16);
    /* packed in two column ranges, as the fused gate/up weights are */
    int half = n / 2;
    const void *src = type == ME_GEMM_F32 ? (const void *)w : w16;
    size_t esz = type == ME_GEMM_F32 ? 4 : 2;
    me_gemm_pack_b(&pb, 0, half, 1, type, src, k);
    me_gemm_pack_b(&pb, half, n - half, 1, type, (const char *)src + (size_t)half * k * esz, k);
    float *y = malloc((size_t)m * n * sizeof *y);
    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
    int bf = pb.bf16;
    reference(0, 1, m, n, k, 1.0f, x, k, w, k, bias, 0.0f, NULL, n, bf, ref, mag);
    me_gemm(m, x, k, &pb, 1.0f, bias, 0.0f, y, n);
    char what[64];
    snprintf(what, sizeof what, "packed m %d n %d k %d bf16 %d", m, n, k, bf);
    check(m, n, y, n, ref, mag, rel, what);
    me_free_aligned(mem);
    free(x), free(w), free(w16), free(bias), free(y), free(ref), free(mag);
}

Test(gemm, packed_weights_f32_f16)
{
    for (int mi = 0; mi < NS; mi++)
        for (int ni = 1; ni < NS; ni++) {
            packed_case(sizes[mi], sizes[ni], sizes[(mi + ni) % NS] + 1, 0, ME_GEMM_F32, 2e-6);
            packed_case(sizes[mi], sizes[ni], sizes[(mi + ni) % NS], 0, ME_GEMM_F16, 2e-6);
        }
    packed_case(340, 200, 1537, 0, ME_GEMM_F32, 2e-6);   /* more than one row block, K blocks outermost */
    packed_case(60, 200, 1537, 0, ME_GEMM_F32, 2e-6);    /* A packed for every K block, panels outermost */
    /* 2-row tiles (AVX2: all 32 columns at once) with bias, over a partial panel */
    packed_case(2, 45, 300, 0, ME_GEMM_F32, 2e-6);
    packed_case(8, 77, 129, 0, ME_GEMM_F32, 2e-6);
}

Test(gemm, packed_weights_bf16)
{
    /* A is rounded to bf16 on the fly; the products are then exact in
       float32 and only the float32 sums round. Odd k exercises the pad. */
    for (int mi = 0; mi < NS; mi++)
        for (int ni = 1; ni < NS; ni++) {
            packed_case(sizes[mi], sizes[ni], sizes[(mi + 2 * ni) % NS], 1, ME_GEMM_BF16, 2e-6);
            packed_case(sizes[mi], sizes[ni], sizes[(mi + ni) % NS] + 1, 1, ME_GEMM_F32, 2e-6);
        }
    packed_case(340, 70, 1537, 1, ME_GEMM_BF16, 4e-6);
    packed_case(100, 70, 1537, 1, ME_GEMM_BF16, 4e-6);   /* AVX512-BF16: A packed for its 4 K blocks at once */
}

/* Views of a packed [k, n] weight (me_gemm_b_view): a block of columns ×
   rows against the reference over that block of the source, and the
   products over me_gemm_k_chunk's row ranges, accumulated through beta,
   the same bit for bit as the whole product (the promise dit/moe.c's
   chunked experts rely on). */
static void view_case(int m, int n, int k, int bf16)
{
    float *x = rnd((size_t)m * k, 21), *w = rnd((size_t)n * k, 23);
    me_gemm_b pb, view;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
    me_gemm_b_init(&pb, mem, k, n, bf16);
    me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
    int chunk = me_gemm_k_chunk(k, bf16), native = me_gemm_native(pb.bf16) && !(pb.bf16 && me_cpu_amx());
    cr_assert_eq(k % chunk, 0, "k %d in chunks of %d", k, chunk);
    if (native) cr_expect_lt(chunk, k, "k %d not cut into K blocks", k);

    int col = native ? 64 : 0, cols = native ? 96 : n, k0 = k > chunk ? chunk : 0;
    me_gemm_b_view(&pb, col, cols, k0, chunk, &view);
    float *y = malloc((size_t)m * n * sizeof *y), *whole = malloc((size_t)m * n * sizeof *whole);
    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
    reference(0, 1, m, cols, chunk, 1.0f, x + k0, k, w + (size_t)col * k + k0, k, NULL, 0.0f, NULL, cols, pb.bf16,
              ref, mag);
    me_gemm(m, x + k0, (size_t)k, &view, 1.0f, NULL, 0.0f, y, (size_t)cols);
    char what[80];
    snprintf(what, sizeof what, "view m %d cols %d+%d rows %d+%d bf16 %d", m, col, cols, k0, chunk, pb.bf16);
    check(m, cols, y, cols, ref, mag, 4e-6, what);

    me_gemm(m, x, (size_t)k, &pb, 1.0f, NULL, 0.0f, whole, (size_t)n);
    for (int c0 = 0; c0 < k; c0 += chunk) {
        me_gemm_b_view(&pb, 0, n, c0, chunk, &view);
        me_gemm(m, x + c0, (size_t)k, &view, 1.0f, NULL, c0 ? 1.0f : 0.0f, y, (size_t)n);
    }
    cr_expect(memcmp(y, whole, (size_t)m * n * sizeof *y) == 0, "%s: chunked sums differ from the whole", what);
    me_free_aligned(mem);
    free(x), free(w), free(y), free(whole), free(ref), free(mag);
}

Test(gemm, views_of_packed_weights)
{
    view_case(100, 384, 1536, 0);   /* an S/2 expert's down product */
    view_case(30, 200, 3072, 0);
    view_case(100, 384, 1536, 1);
    view_case(30, 200, 3072, 1);
}

/* Bit for bit on the own kernels; within rounding on the OpenBLAS fallback
   (MOEDIT_NO_AVX2=1), whose kernels change with the column split. */
static int same(const float *x, const float *y, size_t count)
{
    if (me_gemm_native(0)) return memcmp(x, y, count * sizeof *x) == 0;
    double mx = 0, diff = 0;
    for (size_t i = 0; i < count; i++) mx = fmax(mx, fabs(x[i])), diff = fmax(diff, fabs(x[i] - y[i]));
    return diff <= 1e-5 * mx;
}

Test(gemm, same_result_on_one_and_two_threads)
{
    int m = 515, k = 700;
    /* Split by panels: 2 rows × 32 panels, 100 × 32; by rows: 515 × 2 (too
       few panels), 515 × 32 (less data moved: two M blocks of B panels
       against every thread packing all 515 rows of A). */
    static const int cases[4][2] = {{2, 1000}, {100, 1000}, {515, 1000}, {515, 40}};
    for (int ci = 0; ci < 4; ci++) {
        int rows = cases[ci][0], n = cases[ci][1];
        float *a = rnd((size_t)m * k, 21), *b = rnd((size_t)k * n, 22);
        float *c1 = malloc((size_t)m * n * sizeof *c1), *c2 = malloc((size_t)m * n * sizeof *c2);
        me_gemm_b pb;
        void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 0));
        me_gemm_b_init(&pb, mem, k, n, 0);
        me_gemm_pack_b(&pb, 0, n, 0, ME_GEMM_F32, b, n);
        moedit_set_threads(1);
        me_sgemm(0, 0, rows, n, k, 1.0f, a, k, b, n, 0.0f, c1, n);
        me_gemm(rows, a, k, &pb, 1.0f, NULL, 0.0f, c2, n);
        cr_assert(same(c1, c2, (size_t)rows * n), "me_sgemm and me_gemm differ");
        moedit_set_threads(2);
        me_sgemm(0, 0, rows, n, k, 1.0f, a, k, b, n, 0.0f, c2, n);
        cr_assert(same(c1, c2, (size_t)rows * n), "me_sgemm: 1 vs 2 threads");
        me_gemm(rows, a, k, &pb, 1.0f, NULL, 0.0f, c2, n);
        cr_assert(same(c1, c2, (size_t)rows * n), "me_gemm: 1 vs 2 threads");
        me_free_aligned(mem);
        free(a), free(b), free(c1), free(c2);
    }
    moedit_set_threads(0);
}

/* A following product named with me_gemm_b_then is only prefetched: the
   product with it matches the reference, and equals the one without it bit
   for bit, whichever way its panels end (last of A packed for all of K; of
   a K block, then of an M block, on the K-block-outer order); a view does
   not inherit it. */
Test(gemm, following_product_never_changes_results)
{
    static const int cases[3][3] = {{60, 200, 1537}, {515, 200, 1537}, {2, 45, 300}};
    moedit_set_threads(1);
    for (int ci = 0; ci < 3; ci++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            int m = cases[ci][0], n = cases[ci][1], k = cases[ci][2];
            float *a = rnd((size_t)m * k, 31), *w = rnd((size_t)k * n, 32), *w2 = rnd((size_t)k * n, 33);
            float *c1 = malloc((size_t)m * n * sizeof *c1), *c2 = malloc((size_t)m * n * sizeof *c2);
            me_gemm_b pb, next, view;
            void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
            void *mem2 = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
            me_gemm_b_init(&pb, mem, k, n, bf16);
            me_gemm_pack_b(&pb, 0, n, 0, ME_GEMM_F32, w, n);
            me_gemm_b_init(&next, mem2, k, n, bf16);
            me_gemm_pack_b(&next, 0, n, 0, ME_GEMM_F32, w2, n);
            me_gemm(m, a, k, &pb, 1.0f, NULL, 0.0f, c1, n);
            me_gemm_b_then(&pb, &next);
            cr_assert(!me_gemm_native(0) || (pb.then == next.data && pb.then_lines > 0), "no hint set");
            me_gemm(m, a, k, &pb, 1.0f, NULL, 0.0f, c2, n);
            double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
            char what[64];
            snprintf(what, sizeof what, "hinted m %d n %d k %d bf16 %d", m, n, k, pb.bf16);
            reference(0, 0, m, n, k, 1.0f, a, k, w, n, NULL, 0.0f, NULL, n, pb.bf16, ref, mag);
            check(m, n, c2, n, ref, mag, pb.bf16 ? 4e-6 : 2e-6, what);   /* as packed_case at K 1537 */
            cr_assert(same(c1, c2, (size_t)m * n), "%s: the hint changed the product", what);
            free(ref), free(mag);
            me_gemm_b_view(&pb, 0, n, 0, k, &view);
            cr_assert_null(view.then, "a view inherited the hint");
            me_gemm_b_then(&pb, NULL);
            cr_assert_null(pb.then);
            me_gemm_b empty = next;
            empty.k = 0;
            me_gemm_b_then(&pb, &empty);   /* nothing to fetch: no hint (and no division by a zero block count) */
            cr_assert_null(pb.then);
            me_free_aligned(mem), me_free_aligned(mem2);
            free(a), free(w), free(w2), free(c1), free(c2);
        }
    moedit_set_threads(0);
}

Test(gemm, zero_k_applies_bias_and_beta)
{
    float c[6] = {1, 2, 3, 4, 5, 6}, bias[3] = {10, 20, 30};
    me_sgemm(0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 2.0f, c, 3);
    cr_assert_eq(c[5], 12.0f);
    me_gemm_b pb;
    float mem[64] __attribute__((aligned(64)));
    me_gemm_b_init(&pb, mem, 0, 3, 0);
    me_gemm(2, NULL, 0, &pb, 1.0f, bias, 0.0f, c, 3);
    cr_assert_eq(c[0], 10.0f);
    cr_assert_eq(c[5], 30.0f);
}

Test(gemm, sgemm_inside_a_parallel_region)
{
    /* As ops/conv.c calls it: every thread its own product, single-threaded. */
    int m = 40, n = 300, k = 200;
    float *a = rnd((size_t)m * k, 31), *b = rnd((size_t)k * n, 32);
    float *c = calloc((size_t)4 * m * n, sizeof *c);
    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
    reference(0, 0, m, n, k, 1.0f, a, k, b, n, NULL, 0.0f, NULL, n, 0, ref, mag);
    #pragma omp parallel for num_threads(2)
    for (int i = 0; i < 4; i++) me_sgemm(CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c + (size_t)i * m * n, n);
    for (int i = 0; i < 4; i++) check(m, n, c + (size_t)i * m * n, n, ref, mag, 2e-6, "inside parallel");
    free(a), free(b), free(c), free(ref), free(mag);
}

/* me_gemm_rows: A's rows picked by index (repeats and any order, as the
   DiT-MoE experts gather their tokens) against the reference product of
   the explicitly gathered matrix. */
static void gathered_case(int m, int n, int k, int bf16)
{
    int src_rows = 37, lda = k + 5;
    float *x = rnd((size_t)src_rows * lda, 41), *w = rnd((size_t)n * k, 42), *bias = rnd((size_t)n, 43);
    float *gathered = malloc((size_t)m * k * sizeof *gathered), *y = malloc((size_t)m * n * sizeof *y);
    int *rows = malloc((size_t)m * sizeof *rows);
    for (int i = 0; i < m; i++) {
        rows[i] = (i * 7 + i / 3) % src_rows;
        memcpy(gathered + (size_t)i * k, x + (size_t)rows[i] * lda, (size_t)k * sizeof *x);
    }
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
    me_gemm_b_init(&pb, mem, k, n, bf16);
    me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
    reference(0, 1, m, n, k, 1.0f, gathered, k, w, k, bias, 0.0f, NULL, n, pb.bf16, ref, mag);
    me_gemm_rows(m, x, (size_t)lda, rows, &pb, 1.0f, bias, 0.0f, y, n);
    char what[64];
    snprintf(what, sizeof what, "gathered m %d n %d k %d bf16 %d", m, n, k, pb.bf16);
    check(m, n, y, n, ref, mag, 2e-6, what);
    me_free_aligned(mem);
    free(x), free(w), free(bias), free(gathered), free(y), free(rows), free(ref), free(mag);
}

Test(gemm, gathered_rows)
{
    for (int bf16 = 0; bf16 < 2; bf16++) {
        gathered_case(1, 33, 17, bf16);
        gathered_case(29, 64, 100, bf16);
        gathered_case(113, 70, 385, bf16);   /* 9 row panels, K blocks of 193 (f32) */
    }
}

Test(gemm, gathered_rows_on_openblas)
{
    setenv("MOEDIT_NO_AVX512", "1", 1);   /* read once, at this process's first product */
    setenv("MOEDIT_NO_AVX2", "1", 1);
    cr_assert_not(me_gemm_native(0));
    gathered_case(29, 64, 100, 0);
    gathered_case(5, 40, 40000, 0);   /* rows too long for the gather buffer */
}

/* A row's value does not depend on the rows multiplied with it (batch 1, 7
   or 64 of a sampler; 2 as in the adaLN products, which the AVX2 kernels
   give to their all-columns tile), on packed and per-call operands alike;
   nor on the loop order, which the row count chooses (the 700-row packed
   product runs K blocks outermost, its 64-row parts panels outermost). */
Test(gemm, rows_do_not_depend_on_m)
{
    if (!me_gemm_native(0)) cr_skip_test("OpenBLAS path: no such guarantee");
    int k = 777, n = 300, M = 700, ms[4] = {1, 2, 7, 64};
    float *a = rnd((size_t)M * k, 51), *b = rnd((size_t)k * n, 52);
    float *full = malloc((size_t)M * n * sizeof *full), *part = malloc((size_t)64 * n * sizeof *part);
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 0));
    me_gemm_b_init(&pb, mem, k, n, 0);
    me_gemm_pack_b(&pb, 0, n, 0, ME_GEMM_F32, b, n);
    for (int packed = 0; packed < 2; packed++) {
        if (packed) me_gemm(M, a, k, &pb, 1.0f, NULL, 0.0f, full, n);
        else me_sgemm(0, 0, M, n, k, 1.0f, a, k, b, n, 0.0f, full, n);
        for (int mi = 0; mi < 4; mi++)
            for (int r0 = 0; r0 + ms[mi] <= M; r0 += 57) {
                const float *ar = a + (size_t)r0 * k;
                if (packed) me_gemm(ms[mi], ar, k, &pb, 1.0f, NULL, 0.0f, part, n);
                else me_sgemm(0, 0, ms[mi], n, k, 1.0f, ar, k, b, n, 0.0f, part, n);
                cr_assert(memcmp(part, full + (size_t)r0 * n, (size_t)ms[mi] * n * sizeof *part) == 0,
                          "rows %d..%d differ from the %d-row product (packed %d)", r0, r0 + ms[mi], M, packed);
            }
    }
    me_free_aligned(mem);
    free(a), free(b), free(full), free(part);
}

enum { PICKED_ROWS = 100 };   /* gathered row indices lie below this */

/* bf16 products whose K is a multiple of 32, which run on AMX tiles where
   the CPU has them (else on the AVX512-BF16 tiles): row counts around the
   16- and 32-row tile blocks, partial panels, alpha, beta and bias, rows
   gathered, one and two threads (rows then panels split), bit for bit
   alike, against the double product of the bf16-rounded operands. */
static void bf16_k32_case(int m, int n, int k, const int *rows, int threads)
{
    int ldc = n + 3, a_rows = rows ? PICKED_ROWS : m;
    float *a = rnd((size_t)a_rows * k, 61), *w = rnd((size_t)n * k, 62), *bias = rnd((size_t)n, 63);
    float *c = rnd((size_t)m * ldc, 64), *c0 = malloc((size_t)m * ldc * sizeof *c0);
    float *gathered = malloc((size_t)m * k * sizeof *gathered);
    memcpy(c0, c, (size_t)m * ldc * sizeof *c);
    for (int i = 0; i < m; i++) memcpy(gathered + (size_t)i * k, a + (size_t)(rows ? rows[i] : i) * k, (size_t)k * sizeof *a);
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 1));
    me_gemm_b_init(&pb, mem, k, n, 1);
    me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
    reference(0, 1, m, n, k, 0.5f, gathered, k, w, k, bias, -0.75f, c0, ldc, pb.bf16, ref, mag);
    moedit_set_threads(threads);
    me_gemm_rows(m, a, (size_t)k, rows, &pb, 0.5f, bias, -0.75f, c, (size_t)ldc);
    moedit_set_threads(0);
    char what[80];
    snprintf(what, sizeof what, "bf16 k32 m %d n %d k %d threads %d rows %d", m, n, k, threads, rows != NULL);
    check(m, n, c, ldc, ref, mag, 4e-6, what);
    for (int i = 0; i < m; i++)   /* the padding columns untouched */
        for (int j = n; j < ldc; j++) cr_assert_eq(c[(size_t)i * ldc + j], c0[(size_t)i * ldc + j], "%s", what);
    me_free_aligned(mem);
    free(a), free(w), free(bias), free(c), free(c0), free(gathered), free(ref), free(mag);
}

Test(gemm, bf16_k_multiple_of_32)
{
    if (me_cpu_bf16() && me_cpu_info()->amx && !getenv("MOEDIT_NO_AMX")) cr_assert(me_cpu_amx(), "AMX not used");
    static const int ms[] = {1, 2, 15, 16, 17, 31, 32, 33, 70, 129};
    int pick[129];
    for (int i = 0; i < 129; i++) pick[i] = (i * 37 + 5) % PICKED_ROWS;
    for (int mi = 0; mi < 10; mi++)
        for (int threads = 1; threads <= 2; threads++) {
            bf16_k32_case(ms[mi], 45, 384, NULL, threads);
            bf16_k32_case(ms[mi], 100, 32, pick, threads);
        }
    bf16_k32_case(70, 1000, 1536, NULL, 2);   /* more panels than threads by far, K in one sum */
    bf16_k32_case(40, 64, 8192, pick, 2);      /* the longest K, 32-row chunks */
}

Test(gemm, bf16_k32_rows_do_not_depend_on_threads_or_m)
{
    if (!me_cpu_bf16()) cr_skip_test("no native bf16 products");
    int k = 768, n = 200, M = 100;
    float *a = rnd((size_t)M * k, 71), *w = rnd((size_t)n * k, 72);
    float *full = malloc((size_t)M * n * sizeof *full), *part = malloc((size_t)M * n * sizeof *part);
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 1));
    me_gemm_b_init(&pb, mem, k, n, 1);
    me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
    moedit_set_threads(1);
    me_gemm(M, a, k, &pb, 1.0f, NULL, 0.0f, full, n);
    moedit_set_threads(2);
    static const int ms[] = {1, 17, 33, 100};
    for (int mi = 0; mi < 4; mi++) {
        me_gemm(ms[mi], a + (size_t)(M - ms[mi]) * k, k, &pb, 1.0f, NULL, 0.0f, part, n);
        cr_assert(memcmp(part, full + (size_t)(M - ms[mi]) * n, (size_t)ms[mi] * n * sizeof *part) == 0,
                  "%d rows on two threads differ from the same rows of %d on one", ms[mi], M);
    }
    moedit_set_threads(0);
    me_free_aligned(mem);
    free(a), free(w), free(full), free(part);
}

/* beta 0 into whole 64-byte lines (ldc 128 floats, C aligned): on AMX the
   full panels' rows are streamed past the caches, the partial panel's
   stored as usual; bias and alpha still applied, the padding untouched. */
Test(gemm, bf16_k32_streamed_rows)
{
    if (!me_cpu_bf16()) cr_skip_test("no native bf16 products");
    int k = 96, n = 112, ldc = 128;
    static const int ms[] = {5, 33, 70};
    for (int mi = 0; mi < 3; mi++)
        for (int threads = 1; threads <= 2; threads++) {
            int m = ms[mi];
            float *a = rnd((size_t)m * k, 91), *w = rnd((size_t)n * k, 92), *bias = rnd((size_t)n, 93);
            float *c = me_alloc_aligned((size_t)m * ldc * sizeof *c);
            for (size_t i = 0; i < (size_t)m * ldc; i++) c[i] = 7.0f;
            me_gemm_b pb;
            void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 1));
            me_gemm_b_init(&pb, mem, k, n, 1);
            me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
            double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
            reference(0, 1, m, n, k, 0.5f, a, k, w, k, bias, 0.0f, c, ldc, 1, ref, mag);
            moedit_set_threads(threads);
            me_gemm(m, a, (size_t)k, &pb, 0.5f, bias, 0.0f, c, (size_t)ldc);
            moedit_set_threads(0);
            char what[64];
            snprintf(what, sizeof what, "streamed m %d threads %d", m, threads);
            check(m, n, c, ldc, ref, mag, 4e-6, what);
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldc; j++) cr_assert_eq(c[(size_t)i * ldc + j], 7.0f, "%s: padding written", what);
            me_free_aligned(mem), me_free_aligned(c);
            free(a), free(w), free(bias), free(ref), free(mag);
        }
}

/* me_gemm_swiglu against me_gemm_rows then me_silu_vec, bit for bit (on
   AMX the fused store, elsewhere that very sequence), and against
   silu(g)·u of the double products: gate halves of 64 and 96 columns
   (fused on AMX) and 48 (not), rows gathered or not, one and two threads,
   float32 and bf16 weights. */
static void swiglu_case(int m, int half, int k, int bf16, const int *rows, int threads)
{
    int n = 2 * half, ldc = n, a_rows = rows ? PICKED_ROWS : m;
    float *a = rnd((size_t)a_rows * k, 94), *w = rnd((size_t)n * k, 95);
    float *c = me_alloc_aligned((size_t)m * ldc * sizeof *c), *want = malloc((size_t)m * ldc * sizeof *want);
    float *gathered = malloc((size_t)m * k * sizeof *gathered);
    for (int i = 0; i < m; i++) memcpy(gathered + (size_t)i * k, a + (size_t)(rows ? rows[i] : i) * k, (size_t)k * sizeof *a);
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
    me_gemm_b_init(&pb, mem, k, n, bf16);
    me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
    moedit_set_threads(threads);
    me_gemm_rows(m, a, (size_t)k, rows, &pb, 1.0f, NULL, 0.0f, want, (size_t)ldc);
    for (int i = 0; i < m; i++) me_silu_vec((size_t)half, want + (size_t)i * ldc, want + (size_t)i * ldc + half, want + (size_t)i * ldc);
    me_gemm_swiglu(m, a, (size_t)k, rows, &pb, c, (size_t)ldc, NULL);
    moedit_set_threads(0);
    double *ref = malloc((size_t)m * n * sizeof *ref), *mag = malloc((size_t)m * n * sizeof *mag);
    reference(0, 1, m, n, k, 1.0f, gathered, k, w, k, NULL, 0.0f, NULL, ldc, pb.bf16, ref, mag);
    char what[80];
    snprintf(what, sizeof what, "swiglu m %d half %d k %d bf16 %d rows %d threads %d", m, half, k, pb.bf16,
             rows != NULL, threads);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < half; j++) {
            float got = c[(size_t)i * ldc + j], same = want[(size_t)i * ldc + j];
            cr_assert(memcmp(&got, &same, sizeof got) == 0, "%s: [%d,%d] %.9g, unfused %.9g", what, i, j, got, same);
            double g = ref[(size_t)i * n + j], u = ref[(size_t)i * n + half + j];
            double exact = g / (1.0 + exp(-g)) * u;
            double tol = 1.1 * 4e-6 * mag[(size_t)i * n + j] * fabs(u) + 4e-6 * mag[(size_t)i * n + half + j] * fabs(g) + 1e-6 * fabs(exact) + 1e-6;
            cr_assert(fabs(got - exact) <= tol, "%s: [%d,%d] %.9g, want %.9g (tol %.3g)", what, i, j, got, exact, tol);
        }
    me_free_aligned(mem), me_free_aligned(c);
    free(a), free(w), free(want), free(gathered), free(ref), free(mag);
}

Test(gemm, swiglu_fused_as_unfused)
{
    int pick[70];
    for (int i = 0; i < 70; i++) pick[i] = (i * 37 + 5) % PICKED_ROWS;
    static const int ms[] = {1, 17, 33, 70}, halves[] = {64, 96, 48};
    for (int bf16 = 0; bf16 <= 1; bf16++)
        for (int mi = 0; mi < 4; mi++)
            for (int hi = 0; hi < 3; hi++)
                for (int threads = 1; threads <= 2; threads++)
                    swiglu_case(ms[mi], halves[hi], 384, bf16, mi % 2 ? pick : NULL, threads);
}

/* An expert's hidden chunks: gate·up products over views of one packed B
   (chunk gate columns, then their up twins, per chunk) with A packed once
   and kept (me_gemm_apack) against packing it for every product — bit for
   bit, the kept copy poisoned with NaN before the first product so that a
   product reading it unpacked would show. 128 rows at K 384 always fit one
   packed block on the own kernels, so the reuse is checked to happen there;
   the other shapes (A packed for two K blocks; more rows than one block on
   some hosts) only have to agree. */
static void apack_case(int m, int k, int chunk, int chunks, int bf16, const int *rows)
{
    int n = 2 * chunk * chunks, ldc = 2 * chunk, a_rows = rows ? PICKED_ROWS : m;
    float *a = rnd((size_t)a_rows * k, 98), *w = rnd((size_t)n * k, 99);
    me_gemm_b pb;
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, bf16));
    me_gemm_b_init(&pb, mem, k, n, bf16);
    me_gemm_pack_b(&pb, 0, n, 1, ME_GEMM_F32, w, k);
    float *kept = me_alloc_aligned((size_t)m * ldc * sizeof *kept), *fresh = me_alloc_aligned((size_t)m * ldc * sizeof *fresh);
    float *buf = me_alloc_aligned(me_gemm_apack_floats() * sizeof *buf);
    for (size_t i = 0; i < me_gemm_apack_floats(); i++) buf[i] = NAN;
    me_gemm_apack ap = {buf, 0};
    moedit_set_threads(1);
    for (int c = 0; c < chunks; c++) {
        me_gemm_b view;
        me_gemm_b_view(&pb, 2 * c * chunk, 2 * chunk, 0, k, &view);
        me_gemm_swiglu(m, a, (size_t)k, rows, &view, kept, (size_t)ldc, &ap);
        if (c == 0 && m == 128 && k == 384 && me_gemm_native(0) && !(pb.bf16 && me_cpu_amx()))
            cr_assert(ap.valid, "m %d k %d bf16 %d: A not kept", m, k, pb.bf16);
        me_gemm_swiglu(m, a, (size_t)k, rows, &view, fresh, (size_t)ldc, NULL);
        cr_assert(memcmp(kept, fresh, (size_t)m * ldc * sizeof *kept) == 0, "m %d k %d bf16 %d rows %d chunk %d differs",
                  m, k, pb.bf16, rows != NULL, c);
    }
    moedit_set_threads(0);
    me_free_aligned(mem), me_free_aligned(kept), me_free_aligned(fresh), me_free_aligned(buf);
    free(a), free(w);
}

Test(gemm, swiglu_keeps_packed_rows_across_chunks)
{
    int pick[200];
    for (int i = 0; i < 200; i++) pick[i] = (i * 37 + 5) % PICKED_ROWS;
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        apack_case(128, 384, 96, 3, bf16, pick);
        apack_case(128, 384, 64, 2, bf16, NULL);
        apack_case(128, 768, 64, 2, bf16, pick);
        apack_case(200, 384, 64, 2, bf16, pick);
        apack_case(13, 384, 32, 3, bf16, NULL);
    }
}

/* The tiles that read B's rows where they lie (ops/conv_gemm.c's stride-1
   convolutions) against the packed-panel tiles: rows scattered through a
   larger buffer by an offset table, some lanes masked off (the masked
   source lanes hold NaN, so a masked lane that is read would show), must
   give the packed tile's result on a panel holding those rows with the
   masked lanes zero — bit for bit, at every row count, with and without
   masks and the next-panel fetch. */
Test(gemm, tiles_reading_rows_in_place)
{
    me_tile_plan p;
    if (!me_gemm_tile_plan(0, &p) || !p.rows) {
        cr_log_info("no in-place tiles on this CPU (AVX-512 only)");
        return;
    }
    enum { KC = 75, NR = 32, STRIDE = 53 };
    float *a = rnd((size_t)KC * p.mr, 11);
    float *panel = aligned_alloc(64, sizeof(float) * KC * NR);
    int32_t off[KC];
    uint32_t mask[KC];
    for (int k = 0; k < KC; k++) {
        off[k] = (KC - 1 - k) * STRIDE + k % 3;   /* rows out of order, at odd offsets */
        mask[k] = k % 4 ? 0xffffffffu : ~(1u << (k % NR)) & ~(1u << ((5 * k + 7) % NR));
    }
    for (int pass = 0; pass < 2; pass++) {
        const uint32_t *m = pass ? mask : NULL;
        float *x = rnd((size_t)KC * STRIDE + NR + 64, 12);
        for (int k = 0; k < KC; k++)
            for (int t = 0; t < NR; t++) {
                int live = !m || (m[k] >> t & 1);
                panel[k * NR + t] = live ? x[off[k] + t] : 0.0f;
                if (!live) x[off[k] + t] = NAN;
            }
        for (int rows = 1; rows <= p.mr; rows++) {
            float want[14 * NR], got[14 * NR];
            me_tile_out ow = {.c = want, .ldc = NR, .nr = NR, .alpha = 1.0f};
            me_tile_out og = {.c = got, .ldc = NR, .nr = NR, .alpha = 1.0f};
            p.tiles[rows](KC, a, panel, &ow);
            p.rows[rows](KC, a, x, off, m, rows % 2 ? x + NR : NULL, &og);
            cr_assert(memcmp(want, got, sizeof(float) * rows * NR) == 0, "%d rows, %s: in place differs",
                      rows, m ? "masked" : "unmasked");
        }
        free(x);
    }
    free(a);
    free(panel);
}

/* A tile's store with a bias per row and the ReLU (the convolutions' tiles
   that store into the image, ops/conv_gemm.c): every live element is
   max(0, acc + (column bias + row bias)), acc being what the plain store
   writes without a bias; C's rows ldc apart and its columns past the live
   ones keep their values. At every row count, on whichever tiles this CPU
   runs (the AVX2 ones under ctest's ops_gemm_avx2). */
Test(gemm, tile_store_adds_row_bias_and_relu)
{
    me_tile_plan p;
    if (!me_gemm_tile_plan(0, &p)) {
        cr_log_info("no own tiles on this CPU");
        return;
    }
    enum { KC = 40, NR = 32, LIVE = 29, LDC = 45 };
    float *a = rnd((size_t)KC * p.mr, 21), *col = rnd(NR, 22), *row = rnd(14, 23);
    float *panel = aligned_alloc(64, sizeof(float) * KC * NR);
    float *values = rnd((size_t)KC * NR, 24);
    memcpy(panel, values, sizeof(float) * KC * NR);
    for (int rows = 1; rows <= p.mr; rows++) {
        float acc[14 * NR], got[14 * LDC];
        for (int e = 0; e < 14 * LDC; e++) got[e] = 7.0f;
        me_tile_out plain = {.c = acc, .ldc = NR, .nr = NR, .alpha = 1.0f};
        me_tile_out both = {.c = got, .ldc = LDC, .nr = LIVE, .bias = col, .alpha = 1.0f, .row_bias = row, .relu = 1};
        p.tiles[rows](KC, a, panel, &plain);
        p.tiles[rows](KC, a, panel, &both);
        int negative = 0;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < LDC; j++) {
                float v = acc[i * NR + j % NR] + (col[j % NR] + row[i]), want = j >= LIVE ? 7.0f : v < 0.0f ? 0.0f : v;
                negative += j < LIVE && v < 0.0f;
                cr_assert(memcmp(&got[i * LDC + j], &want, sizeof want) == 0, "%d rows: C[%d][%d] %g, want %g", rows,
                          i, j, got[i * LDC + j], want);
            }
        cr_assert(negative > 0 && negative < rows * LIVE, "%d rows: the ReLU saw %d negatives", rows, negative);
    }
    free(a); free(col); free(row); free(panel); free(values);
}

/* Every float32 tile this CPU runs (the AVX2 ones under ctest's
   ops_gemm_avx2) against the FMA sum written out here: acc = fma(a, b, acc)
   over k in order from 0, then fma(alpha, acc, bias) and fma(beta, C, ·),
   bit for bit, at every row count, at K lengths of every remainder of the
   tiles' unrolled steps, over panels of 1 to 32 live columns (the AVX2
   tiles take a narrow form up to 16), with the next panel's prefetch
   asked for more lines than the tile has steps (a next K block may be the
   longer); C's rows ldc apart and its columns past the live ones keep
   their values. */
Test(gemm, tiles_match_the_fma_sum)
{
    me_tile_plan p;
    if (!me_gemm_tile_plan(0, &p)) cr_skip_test("no own tiles on this CPU");
    enum { NR = 32, LDC = 37, KMAX = 203 };
    const int kcs[] = {1, 2, 3, 4, 5, 6, 7, 9, 37, 64, 190, 203}, nrs[] = {1, 7, 8, 15, 16, 17, 24, 31, 32};
    float *a = rnd((size_t)KMAX * p.mr, 31), *bias = rnd(NR, 32), *c0 = rnd(14 * LDC, 33);
    float *panel = aligned_alloc(64, sizeof(float) * KMAX * NR);
    char *next = aligned_alloc(64, 64 * (KMAX + 8));
    float *values = rnd((size_t)KMAX * NR, 34);
    memcpy(panel, values, sizeof(float) * KMAX * NR);
    memset(next, 0, 64 * (KMAX + 8));
    for (int ki = 0; ki < (int)(sizeof kcs / sizeof *kcs); ki++)
        for (int ni = 0; ni < (int)(sizeof nrs / sizeof *nrs); ni++)
            for (int form = 0; form < 3; form++)
                for (int rows = 1; rows <= p.mr; rows++) {
                    int kc = kcs[ki], nr = nrs[ni];
                    /* the packed A panel: [kc][mr], this test's rows first */
                    float *ap = malloc(sizeof(float) * kc * p.mr);
                    for (int k = 0; k < kc; k++)
                        for (int i = 0; i < p.mr; i++) ap[k * p.mr + i] = i < rows ? a[(size_t)k * p.mr + i] : 0.0f;
                    float got[14 * LDC];
                    memcpy(got, c0, sizeof got);
                    me_tile_out o = {.c = got, .ldc = LDC, .nr = nr, .alpha = form ? 0.75f : 1.0f,
                                     .beta = form == 2 ? -1.25f : 0.0f, .bias = form ? bias : NULL,
                                     .pf = next, .pf_lines = kc + 8};
                    p.tiles[rows](kc, ap, panel, &o);
                    for (int i = 0; i < 14; i++)
                        for (int j = 0; j < LDC; j++) {
                            float want = c0[i * LDC + j];
                            if (i < rows && j < nr) {
                                float acc = 0.0f;
                                for (int k = 0; k < kc; k++) acc = fmaf(ap[k * p.mr + i], values[k * NR + j], acc);
                                want = fmaf(o.alpha, acc, o.bias ? bias[j] : 0.0f);
                                if (o.beta != 0.0f) want = fmaf(o.beta, c0[i * LDC + j], want);
                            }
                            cr_assert(memcmp(&got[i * LDC + j], &want, sizeof want) == 0,
                                      "%d rows, kc %d, %d columns, form %d: C[%d][%d] %.9g, want %.9g", rows, kc, nr,
                                      form, i, j, got[i * LDC + j], want);
                        }
                    free(ap);
                }
    free(a); free(bias); free(c0); free(panel); free(next); free(values);
}

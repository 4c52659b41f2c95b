/* me_gemm_pack_b on float32 sources (whole panels go through the AVX2
   panel packer, the rest column by column) writes exactly the documented
   layout, element by element as computed here: panels of 32 columns, [k][32]
   each, zero past the last column (OpenBLAS: row-major [k][n]), wherever the
   packed range starts and ends, transposed or not, on one thread or a team;
   and the same for bfloat16 panels on AVX512-BF16 CPUs ([k/2][32] pairs,
   each value rounded to nearest even, the odd pad row zero). The A panels
   too: from row pointers (every product's) and from a source's columns
   (attention's), and a tile block written transposed with its columns
   scaled. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/gemm_tile.h"

/* Every element its own value (i + 1 + salt/8 is exact in float32 for
   i < 2^20, far above these sizes), so a value in the wrong place cannot
   pass for the right one. */
static float *distinct(size_t n, int salt)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (float)(i + 1) + (float)salt / 8.0f;
    return v;
}

/* The layout, element by element: B[kk, j] = src(kk, j); bf16: pair row
   kk/2, lane j % 32, half kk & 1, each value rounded to nearest even. */
static void expected(int k, int n, int trans, int bf16, const float *src, size_t ld, void *out)
{
    int native = me_gemm_native(0), kp = (k + 1) & ~1;
    memset(out, 0, me_gemm_b_bytes(k, n, bf16));
    for (int kk = 0; kk < k; kk++)
        for (int j = 0; j < n; j++) {
            float v = trans ? src[(size_t)j * ld + kk] : src[(size_t)kk * ld + j];
            if (bf16)
                ((uint16_t *)out)[((size_t)(j / 32) * kp + (kk & ~1)) * 32 + (j % 32) * 2 + (kk & 1)] = me_f32_to_bf16(v);
            else if (native)
                ((float *)out)[((size_t)(j / 32) * k + kk) * 32 + j % 32] = v;
            else
                ((float *)out)[(size_t)kk * n + j] = v;
        }
}

static void check_layouts(int bf16)
{
    int ks[4] = {1, 7, 64, 700}, ns[5] = {1, 31, 32, 70, 100}, cuts[4] = {0, 5, 32, 45};
    for (int threads = 1; threads <= 2; threads++) {
        moedit_set_threads(threads);
        for (int trans = 0; trans < 2; trans++)
            for (int ki = 0; ki < 4; ki++)
                for (int ni = 0; ni < 5; ni++)
                    for (int ci = 0; ci < 4; ci++) {
                        int k = ks[ki], n = ns[ni], cut = cuts[ci] < n ? cuts[ci] : n;
                        size_t ld = (size_t)(trans ? k : n) + 3;
                        float *src = distinct((size_t)(trans ? n : k) * ld, trans);
                        size_t bytes = me_gemm_b_bytes(k, n, bf16);
                        void *want = malloc(bytes), *mem = me_alloc_aligned(bytes);
                        expected(k, n, trans, bf16, src, ld, want);
                        me_gemm_b b;
                        me_gemm_b_init(&b, mem, k, n, bf16);
                        /* two column ranges, as the fused gate/up weights are packed */
                        me_gemm_pack_b(&b, 0, cut, trans, ME_GEMM_F32, src, ld);
                        me_gemm_pack_b(&b, cut, n - cut, trans, ME_GEMM_F32,
                                       src + (trans ? (size_t)cut * ld : (size_t)cut), ld);
                        cr_assert(memcmp(mem, want, bytes) == 0,
                                  "packed bytes differ: bf16 %d k %d n %d cut %d trans %d threads %d", bf16, k, n,
                                  cut, trans, threads);
                        me_free_aligned(mem);
                        free(want), free(src);
                    }
    }
    moedit_set_threads(0);
}

Test(gemm_pack, float32_panels_match_the_layout) { check_layouts(0); }

Test(gemm_pack, bf16_panels_match_the_layout)
{
    if (!me_gemm_native(1)) cr_skip_test("no AVX512-BF16: bf16 operands are packed as float32");
    check_layouts(1);
}

/* me_gemm_pack_a_cols: [kc][mr] floats, element (k, i) the source's row k,
   column i for i < live and zero past it, for every live count, odd and
   even kc, and a row stride that is no multiple of the vector width. */
Test(gemm_pack, column_panels_match_the_layout)
{
    if (!me_gemm_native(0)) cr_skip_test("OpenBLAS path: no own panels");
    int mr = me_gemm_tile_rows(), kcs[3] = {1, 7, 64};
    size_t ld = 37;
    float *src = distinct(64 * ld, 3), *out = malloc(sizeof(float) * 64 * mr + 64);
    for (int live = 1; live <= mr; live++)
        for (int ki = 0; ki < 3; ki++) {
            int kc = kcs[ki];
            float *dst = out + 1;   /* no alignment is promised */
            for (int i = 0; i < kc * mr + 8; i++) dst[i] = -1.0f;
            me_gemm_pack_a_cols(src + 5, ld, live, kc, 0, dst);
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < mr; i++) {
                    float want = i < live ? src[(size_t)k * ld + 5 + i] : 0.0f;
                    cr_assert(dst[k * mr + i] == want, "live %d kc %d: (%d, %d) is %g, want %g", live, kc, k, i,
                              dst[k * mr + i], want);
                }
            for (int i = kc * mr; i < kc * mr + 8; i++)
                cr_assert(dst[i] == -1.0f, "live %d kc %d: wrote past the panel", live, kc);
        }
    free(src), free(out);
}

/* me_gemm_pack_a (float32): the panel [kc][mr] holds row i's k-th value
   at k·mr + i for i < live and zero past it, for every live count, kc
   around the 8- and 16-step blocks, rows anywhere (a gathered product's
   row pointers); nothing written past the panel. */
Test(gemm_pack, row_panels_match_the_layout)
{
    if (!me_gemm_native(0)) cr_skip_test("OpenBLAS path: no own panels");
    int mr = me_gemm_tile_rows(), kcs[6] = {1, 7, 8, 9, 37, 192};
    size_t ld = 211;
    float *src = distinct(20 * ld, 5), *out = malloc(sizeof(float) * (192 * mr + 9));
    const float *row[16];
    for (int live = 1; live <= mr; live++)
        for (int ki = 0; ki < 6; ki++) {
            int kc = kcs[ki];
            for (int i = 0; i < live; i++) row[i] = src + (size_t)((7 * i + 3) % 20) * ld + 2;
            float *dst = out + 1;   /* no alignment is promised */
            for (int i = 0; i < kc * mr + 8; i++) dst[i] = -1.0f;
            me_gemm_pack_a(row, live, kc, 0, dst);
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < mr; i++) {
                    float want = i < live ? row[i][k] : 0.0f;
                    cr_assert(dst[k * mr + i] == want, "live %d kc %d: (%d, %d) is %g, want %g", live, kc, k, i,
                              dst[k * mr + i], want);
                }
            for (int i = kc * mr; i < kc * mr + 8; i++)
                cr_assert(dst[i] == -1.0f, "live %d kc %d: wrote past the panel", live, kc);
        }
    free(src), free(out);
}

/* me_gemm_transpose32: out[j·ldo + d] = src[d·32 + j]·scale[j] exactly
   (one rounding, as the multiply), for row counts around the 8- and 16-row
   blocks and every column count; nothing else in out written. */
Test(gemm_pack, transpose32_scales_each_column)
{
    if (!me_gemm_native(0)) cr_skip_test("OpenBLAS path: no own tiles");
    int row_counts[5] = {1, 7, 13, 64, 72};
    size_t ldo = 83;
    float *src = distinct(80 * 32, 1), scale[32], *out = malloc(sizeof(float) * 32 * ldo);
    for (int j = 0; j < 32; j++) scale[j] = 1.0f / (float)(j + 3);
    for (int ri = 0; ri < 5; ri++)
        for (int cols = 1; cols <= 32; cols++) {
            int rows = row_counts[ri];
            for (size_t i = 0; i < 32 * ldo; i++) out[i] = -1.0f;
            me_gemm_transpose32(src, rows, cols, scale, out, ldo);
            for (int j = 0; j < 32; j++)
                for (size_t d = 0; d < ldo; d++) {
                    float want = j < cols && (int)d < rows ? src[d * 32 + j] * scale[j] : -1.0f;
                    cr_assert(out[j * ldo + d] == want, "rows %d cols %d: (%d, %zu) is %g, want %g", rows, cols, j, d,
                              out[j * ldo + d], want);
                }
        }
    free(src), free(out);
}

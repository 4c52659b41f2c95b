/* bfloat16 weight products on AMX tiles (see gemm_amx.h).

   Eight tile registers hold one 32×32 block of C: four 16×16 float32
   accumulators (tmm0..3), two 16-row A blocks (tmm4, tmm5) and the two
   16-column halves of a B panel (tmm6, tmm7), each 16 rows of 64 bytes.
   Per 32 k: four loads, four TDPBF16PS. Loops: rows in chunks whose
   packed A fits the stack buffer (512 KB, in L2) → B panels (a K×32
   panel of up to 24 KB stays in L1 for K ≤ 384; the blocks fetch the
   next one into L2 meanwhile: `next_panel`) → 32-row blocks → all of K,
   so C leaves the tiles once, through a 4 KB buffer, with bias, alpha
   and beta applied as the AVX-512 tiles apply them (streamed past the
   caches where it can be: `streams`), or for a SwiGLU product with the
   block's up sums beside it, as silu(gate)·up. */
#include <immintrin.h>
#include <string.h>
#include "ops/gemm_amx.h"
#include "ops/vexp.h"

#define ABUF_HALFS 262144   /* one thread's packed A: 512 KB on its stack */
#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16")))

/* ldtilecfg's 64-byte operand: palette 1, tiles 0..7 all 16 rows × 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

AMX_TARGET static void configure_tiles(void)
{
    _Alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    /* Not _tile_loadconfig: GCC 12's tells the compiler that it reads 8
       bytes, so the stores of the rows and widths may be dropped as dead
       (ldtilecfg then faults on the stale bytes). The operand here is the
       whole 64-byte configuration. */
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

/* Row src (k floats) as row i of a 32-row block at `block`, in the order
   the tiles read it (me_amx_a_at: each tile load then walks 1 KB in order,
   where row-major rows K·2 bytes apart would be 16 separate streams).
   vcvtne2ps2bf16 rounds as the dot-product tiles' packing does. */
AMX_TARGET static void pack_row(const float *src, int k, int i, uint16_t *block)
{
    for (int kk = 0; kk < k; kk += ME_AMX_K) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + kk + 16), _mm512_loadu_ps(src + kk));
        _mm512_storeu_si512(block + me_amx_a_at(i, kk), (__m512i)v);
    }
}

/* `rows` rows of A (from row i0) in 32-row blocks; the last block's rows
   past `rows` zero. */
AMX_TARGET static void pack_rows(const me_amx_job *j, int i0, int rows, int blocks, uint16_t *dst)
{
    int k = j->k;
    if (rows % ME_AMX_ROWS)
        memset(dst + (size_t)(blocks - 1) * ME_AMX_ROWS * k, 0, (size_t)ME_AMX_ROWS * k * sizeof *dst);
    for (int i = 0; i < rows; i++) {
        int r = i0 + i;
        pack_row(j->a + (size_t)(j->rows ? j->rows[r] : r) * j->lda, k, i % ME_AMX_ROWS,
                 dst + (size_t)(i / ME_AMX_ROWS) * ME_AMX_ROWS * k);
    }
}

AMX_TARGET void me_amx_pack_block(const float *a, size_t lda, int rows, int k, uint16_t *dst)
{
    if (rows < ME_AMX_ROWS) memset(dst, 0, (size_t)ME_AMX_ROWS * k * sizeof *dst);
    for (int i = 0; i < rows; i++) pack_row(a + (size_t)i * lda, k, i, dst);
}

/* Whether a block's C rows are written past the caches: whole aligned
   lines never read (beta 0). A product's C (2.4 MB for 512×1152) written
   through the caches took each line from memory first and pushed the
   packed A and B panels out of L2: products of K 384–768 ran at 210–230
   GFLOP/s (one thread, medians) against 300–330 with C's writes left
   out and 260–290 streamed (Intel AMX host; docs/performance.md). */
static int streams(const me_amx_job *j, const float *c, int nr)
{
    return j->beta == 0.0f && nr == 32 && ((uintptr_t)c & 63) == 0 && (j->ldc * sizeof *c) % 64 == 0;
}

/* acc [32][32] (row stride 32) into C rows [0, live) of `c`, columns [0, nr). */
AMX_TARGET static void store_block(const me_amx_job *j, const float *acc, int live, float *c, const float *bias,
                                   int nr)
{
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (bias) b0 = _mm512_maskz_loadu_ps(m0, bias), b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    __m512 alpha = _mm512_set1_ps(j->alpha), beta = _mm512_set1_ps(j->beta);
    if (streams(j, c, nr)) {
        for (int i = 0; i < live; i++, c += j->ldc, acc += 32) {
            _mm512_stream_ps(c, _mm512_fmadd_ps(alpha, _mm512_load_ps(acc), b0));
            _mm512_stream_ps(c + 16, _mm512_fmadd_ps(alpha, _mm512_load_ps(acc + 16), b1));
        }
        return;
    }
    for (int i = 0; i < live; i++, c += j->ldc, acc += 32) {
        __m512 v0 = _mm512_fmadd_ps(alpha, _mm512_load_ps(acc), b0);
        __m512 v1 = _mm512_fmadd_ps(alpha, _mm512_load_ps(acc + 16), b1);
        if (j->beta != 0.0f) {
            v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, c), v0);
            v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, c + 16), v1);
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

/* A SwiGLU block: gate and up sums [32][32] each, silu(gate)·up into C's
   rows [0, live), 32 columns, through me_silu_vec, so the values are the
   ones me_gemm then me_silu_vec give, bit for bit: one call for the whole
   block (a call per 32-float row spent a tenth of a bf16 S/2 forward in
   the calls and their constants), then its rows copied out as they are,
   streamed where they can be. */
AMX_TARGET static void store_swiglu(const me_amx_job *j, float *gate, const float *up, int live, float *c)
{
    me_silu_vec((size_t)live * 32, gate, up, gate);
    int stream = streams(j, c, 32);
    for (int i = 0; i < live; i++, c += j->ldc, gate += 32) {
        __m512 v0 = _mm512_load_ps(gate), v1 = _mm512_load_ps(gate + 16);
        if (stream) {
            _mm512_stream_ps(c, v0);
            _mm512_stream_ps(c + 16, v1);
        } else {
            _mm512_storeu_ps(c, v0);
            _mm512_storeu_ps(c + 16, v1);
        }
    }
}

/* The next B panel's lines that one block fetches into L2 while it computes
   (me_amx_product): `per` lines per 32 k, from `at` up to `end`. */
typedef struct {
    const char *at, *end;
    int per;
} panel_prefetch;

AMX_TARGET static inline __attribute__((always_inline)) void prefetch_step(panel_prefetch *pf)
{
    for (int l = 0; l < pf->per && pf->at < pf->end; l++, pf->at += 64) _mm_prefetch(pf->at, _MM_HINT_T1);
}

/* tmm0..3 += the 32×32 block's products over k: A tiles a (me_amx_a_at
   order), B panel b (per 32 k, 16 pair rows of 64 halves). */
AMX_TARGET static inline __attribute__((always_inline)) void products(const uint16_t *a, const uint16_t *b, int k,
                                                                    panel_prefetch *pf)
{
    for (int kk = 0; kk < k; kk += ME_AMX_K, a += 2 * 512, b += 2 * 512) {
        _tile_loadd(4, a, 64);
        _tile_loadd(6, b, 128);
        _tile_loadd(7, b + 32, 128);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a + 512, 64);
        if (pf) prefetch_step(pf);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
}

/* One 32×32 block of C: A tiles a (pack_rows' order), panel bp; `live`
   rows. Up to 16 live rows need only the first A tile and two products. */
AMX_TARGET static void block(const uint16_t *a, const uint16_t *bp, int k, int live, float *acc, panel_prefetch *pf)
{
    _tile_zero(0);
    _tile_zero(1);
    if (live > 16) {
        _tile_zero(2);
        _tile_zero(3);
        products(a, bp, k, pf);
        _tile_stored(2, acc + 16 * 32, 128);
        _tile_stored(3, acc + 16 * 32 + 16, 128);
    } else {
        for (int kk = 0; kk < k; kk += ME_AMX_K, a += 2 * 512) {
            const uint16_t *b = bp + (size_t)kk * 32;
            _tile_loadd(4, a, 64);
            _tile_loadd(6, b, 128);
            _tile_loadd(7, b + 32, 128);
            _tile_dpbf16ps(0, 4, 6);
            prefetch_step(pf);
            _tile_dpbf16ps(1, 4, 7);
        }
    }
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
}

/* Block blk's share of the panel after bp (k lines of 64 bytes), spread
   evenly over the blocks: weights are read once per product, mostly from
   memory, and a panel's first block otherwise waited on all of it.
   Measured (one thread, a product's weights cycled through 16 copies so
   they come from memory, as in a forward): 10–50 % faster across the
   forward's shapes (docs/performance.md). The last panel fetches nothing. */
static panel_prefetch next_panel(const uint16_t *bp, int k, int last, int blk, int blocks)
{
    panel_prefetch pf = {NULL, NULL, (ME_AMX_K + blocks - 1) / blocks};   /* k lines over blocks·k/32 steps */
    if (last) return pf;
    const char *next = (const char *)(bp + (size_t)k * 32);
    size_t from = (size_t)blk * (k / ME_AMX_K) * pf.per * 64, all = (size_t)k * 64;
    pf.at = next + (from < all ? from : all);
    pf.end = next + all;
    return pf;
}

AMX_TARGET void me_amx_product(const me_amx_job *j, int i0, int i1, int p0, int p1)
{
    _Alignas(64) uint16_t abuf[ABUF_HALFS];
    _Alignas(64) float acc[32 * 32], up_acc[32 * 32];
    int k = j->k, chunk = ABUF_HALFS / k / ME_AMX_ROWS * ME_AMX_ROWS;
    size_t up = j->swiglu ? (size_t)j->n / 2 * k : 0;   /* the up panel's offset from its gate panel's */
    configure_tiles();
    for (int r0 = i0; r0 < i1; r0 += chunk) {
        int rows = i1 - r0 < chunk ? i1 - r0 : chunk, blocks = (rows + ME_AMX_ROWS - 1) / ME_AMX_ROWS;
        pack_rows(j, r0, rows, blocks, abuf);
        for (int p = p0; p < p1; p++) {
            const uint16_t *bp = j->b + (size_t)p * k * 32;
            int col = p * 32, nr = j->n - col < 32 ? j->n - col : 32;
            for (int blk = 0; blk < blocks; blk++) {
                int live = rows - blk * ME_AMX_ROWS < ME_AMX_ROWS ? rows - blk * ME_AMX_ROWS : ME_AMX_ROWS;
                const uint16_t *a = abuf + (size_t)blk * ME_AMX_ROWS * k;
                float *c = j->c + (size_t)(r0 + blk * ME_AMX_ROWS) * j->ldc + col;
                panel_prefetch pf = next_panel(bp, k, p + 1 == p1, blk, blocks);
                block(a, bp, k, live, acc, &pf);
                if (up) {
                    panel_prefetch up_pf = next_panel(bp + up, k, p + 1 == p1, blk, blocks);
                    block(a, bp + up, k, live, up_acc, &up_pf);
                    store_swiglu(j, acc, up_acc, live, c);
                } else {
                    store_block(j, acc, live, c, j->bias ? j->bias + col : NULL, nr);
                }
            }
        }
    }
    _tile_release();
    _mm_sfence();   /* the streamed rows are weakly ordered: visible before the caller's barrier */
}

AMX_TARGET void me_amx_tiles_on(void) { configure_tiles(); }

AMX_TARGET void me_amx_tiles_off(void) { _tile_release(); }

AMX_TARGET void me_amx_block(const uint16_t *a, const uint16_t *b, int k, int first, float *c, size_t ldc)
{
    size_t stride = ldc * sizeof *c;
    float *lower = c + 16 * ldc;
    if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    } else {
        _tile_loadd(0, c, stride);
        _tile_loadd(1, c + 16, stride);
        _tile_loadd(2, lower, stride);
        _tile_loadd(3, lower + 16, stride);
    }
    products(a, b, k, NULL);
    _tile_stored(0, c, stride);
    _tile_stored(1, c + 16, stride);
    _tile_stored(2, lower, stride);
    _tile_stored(3, lower + 16, stride);
}

/* The peak loop (ops/peak.c): four independent TDPBF16PS chains on tiles
   that never leave the registers; the tiles' first sum, so that it runs. */
AMX_TARGET float me_amx_dot_loop(long iters)
{
    _Alignas(64) uint16_t ones[16 * 32];
    _Alignas(64) float out[16 * 16];
    for (int i = 0; i < 16 * 32; i++) ones[i] = 0x3a83;   /* ~1e-3: no overflow over any trial */
    configure_tiles();
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long n = 0; n < iters; n++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    return out[0];
}

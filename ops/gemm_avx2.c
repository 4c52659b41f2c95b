/* Float32 tile kernels for CPUs with AVX2 and FMA but no AVX-512, compiled
   for those instructions whatever the build's -march, and called only after
   ops/gemm.c has checked the CPU (core/cpu.h).

   A 6×32 tile is two parts of three rows × all 32 columns, one after the
   other: 12 ymm accumulators, three broadcasts and one B vector fill the
   16 ymm registers (12 FMAs per 4 loads + 3 broadcasts, where a 6×16 half
   takes 6 broadcasts — those held one Zen 2 core's 6×32 tile at ~90 % of
   its FMA peak, the three-row parts reach ~96 %). Tiles of 4–5 rows are a
   three- or two-row part and a two-row one; 1–2 rows one part; a panel of
   at most 16 live columns takes one 6×16 narrow tile instead. */
#include <immintrin.h>
#include "ops/gemm_tile.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

#define MR ME_GEMM_MR_AVX2
#define NR ME_GEMM_NR

/* Mask of the first `live` of 8 lanes (live may be ≤ 0 or ≥ 8). */
static inline __m256i lanes(int live)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), idx);
}

/* C for r rows from row0 (acc[i][g]: row row0 + i, columns 8g..8g+7),
   over the live columns, with the store's extras (gemm_tile.h): bias
   plus the row's bias, and the ReLU (v unless 0 > v: NaN and -0 stay).
   The tile's settings are read once, and whole rows without extras (the
   products') take a path of their own: C's stores may alias anything, so
   read through o they were loaded and tested again after every store.
   One Zen 2 core's 6-row tile over 16 A panels, K 192: 89 % of its FMA
   peak so, 91 % from locals, 96 % with the whole-row path. */
static inline __attribute__((always_inline)) void store_rows(int r, int row0, __m256 acc[][4], const me_tile_out *o)
{
    float *c0 = o->c + (size_t)row0 * o->ldc;
    const float *bias = o->bias, *row_bias = o->row_bias ? o->row_bias + row0 : NULL;
    size_t ldc = o->ldc;
    int nr = o->nr, relu = o->relu, add_c = o->beta != 0.0f;
    __m256 alpha = _mm256_set1_ps(o->alpha), beta = _mm256_set1_ps(o->beta), zero = _mm256_setzero_ps();
    if (nr == NR && !row_bias && !relu) {   /* the products' case: whole rows, no extras */
        __m256 col_bias[4];
        #pragma GCC unroll 4
        for (int g = 0; g < 4; g++) col_bias[g] = bias ? _mm256_loadu_ps(bias + 8 * g) : zero;
        #pragma GCC unroll 3
        for (int i = 0; i < r; i++) {
            float *c = c0 + (size_t)i * ldc;
            #pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m256 v = _mm256_fmadd_ps(alpha, acc[i][g], col_bias[g]);
                if (add_c) v = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8 * g), v);
                _mm256_storeu_ps(c + 8 * g, v);
            }
        }
        return;
    }
    #pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        int live = nr - 8 * g;
        if (live <= 0) break;
        __m256i m = lanes(live);
        __m256 col_bias = bias ? _mm256_maskload_ps(bias + 8 * g, m) : zero;
        #pragma GCC unroll 3
        for (int i = 0; i < r; i++) {
            float *c = c0 + (size_t)i * ldc + 8 * g;
            __m256 add = col_bias;
            if (row_bias) add = bias ? _mm256_add_ps(col_bias, _mm256_set1_ps(row_bias[i])) : _mm256_set1_ps(row_bias[i]);
            __m256 v = _mm256_fmadd_ps(alpha, acc[i][g], add);
            if (live >= 8) {
                if (add_c) v = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), v);
                _mm256_storeu_ps(c, relu ? _mm256_max_ps(zero, v) : v);
            } else {
                if (add_c) v = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c, m), v);
                _mm256_maskstore_ps(c, m, relu ? _mm256_max_ps(zero, v) : v);
            }
        }
    }
}

/* C's rows are ldc apart, a stride the hardware prefetchers miss: fetch
   them now, a whole k loop before the store needs them. */
static inline __attribute__((always_inline)) void prefetch_c(int r, int row0, const me_tile_out *o)
{
    #pragma GCC unroll 3
    for (int i = 0; i < r; i++) {
        const float *c = o->c + (size_t)(row0 + i) * o->ldc;
        __builtin_prefetch(c, 1, 3);
        __builtin_prefetch(c + 16, 1, 3);
        __builtin_prefetch(c + 31, 1, 3);
    }
}

/* Which of the next panel's lines part `part` of a tile's `parts` fetches
   (the parts share them out in order, at most kc each: a next panel's K
   block may be the longer): their count, and *pf at the first. A part
   spreads its lines over its k loop: the three-row parts one per 1, 2, 4
   or 8 steps (the widest spacing that fits, a loop of its own each), the
   others one per kc / count steps. Issued one per step from the start of the
   first part instead, they came in bursts that filled the miss buffers:
   one Zen 2 core's 6-row tiles, K 192, the next panel from memory, 4 / 7
   / 11 tiles to a panel (an expert with few tokens) ran at 64 / 80 / 89 %
   of its FMA peak, now 88 / 92 / 93 % (22 tiles 93 % either way); the
   float32 S/2 CFG pair 0.2–0.8 % faster (medians of three sets of
   alternate processes). */
static inline long prefetch_share(int kc, int part, int parts, const me_tile_out *o, const char **pf)
{
    int lines = o->pf ? o->pf_lines : 0, per = (lines + parts - 1) / parts, first = part * per;
    int n = lines - first < per ? lines - first : per;
    *pf = n > 0 ? o->pf + (size_t)64 * first : NULL;
    return n <= 0 ? 0 : n < kc ? n : kc;
}

/* One k step of three rows: their three A values broadcast once, each of
   B's four vectors loaded once into ymm15 and multiplied into one
   accumulator of each row (row i, vector g: c[4i + g]). */
#define ROWS3_STEP(U)                                                           \
    "vbroadcastss " #U "*24(%[a]), %%ymm12\n\t"                                 \
    "vbroadcastss " #U "*24+4(%[a]), %%ymm13\n\t"                               \
    "vbroadcastss " #U "*24+8(%[a]), %%ymm14\n\t"                               \
    "vmovaps " #U "*128(%[b]), %%ymm15\n\t"                                     \
    "vfmadd231ps %%ymm15, %%ymm12, %[c0]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm13, %[c4]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm14, %[c8]\n\t"                                  \
    "vmovaps " #U "*128+32(%[b]), %%ymm15\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm12, %[c1]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm13, %[c5]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm14, %[c9]\n\t"                                  \
    "vmovaps " #U "*128+64(%[b]), %%ymm15\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm12, %[c2]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm13, %[c6]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm14, %[c10]\n\t"                                 \
    "vmovaps " #U "*128+96(%[b]), %%ymm15\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm12, %[c3]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm13, %[c7]\n\t"                                  \
    "vfmadd231ps %%ymm15, %%ymm14, %[c11]\n\t"

/* Three rows (A panel rows row0..row0+2) × all 32 columns over kc: 12
   accumulators, three broadcasts and one B vector take all 16 ymm
   registers, more than GCC allocates without spilling (it spilled an
   accumulator every step even of the 15-register 6×16 half), so the loop
   is written out: the prefetching steps first (one loop per spacing),
   then four steps a turn, then the rest. Three broadcasts per 12 FMAs
   where the 6×16 half takes six: one Zen 2 core ran a 6-row tile over 16 A panels (K 192) at 96 %
   of its FMA peak against 90 % for two 6×16 halves, and the float32 S/2
   CFG pair 5 % faster. Every element sees the FMAs of every other tile
   shape, in the same order. The loops start on a 64-byte line: an edit
   elsewhere in the file that moved them had the S/2 pair 0.8 % slower
   (five alternate processes), aligned even again. */
static inline __attribute__((always_inline)) void rows3_part(int kc, const float *a, const float *b, int row0,
                                                            int part, int parts, const me_tile_out *o)
{
    prefetch_c(3, row0, o);
    const char *pf;
    long pf_n = prefetch_share(kc, part, parts, o, &pf), spaced = 8;   /* steps per prefetched line */
    while (spaced > 1 && spaced * pf_n > kc) spaced /= 2;
    long quads = (kc - pf_n * spaced) / 4, rest = (kc - pf_n * spaced) % 4;
    a += row0;
    __m256 c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
    __asm__ volatile(
        "vxorps %[c0], %[c0], %[c0]\n\t"
        "vxorps %[c1], %[c1], %[c1]\n\t"
        "vxorps %[c2], %[c2], %[c2]\n\t"
        "vxorps %[c3], %[c3], %[c3]\n\t"
        "vxorps %[c4], %[c4], %[c4]\n\t"
        "vxorps %[c5], %[c5], %[c5]\n\t"
        "vxorps %[c6], %[c6], %[c6]\n\t"
        "vxorps %[c7], %[c7], %[c7]\n\t"
        "vxorps %[c8], %[c8], %[c8]\n\t"
        "vxorps %[c9], %[c9], %[c9]\n\t"
        "vxorps %[c10], %[c10], %[c10]\n\t"
        "vxorps %[c11], %[c11], %[c11]\n\t"
        "test %[pf_n], %[pf_n]\n\t"
        "jz 2f\n\t"
        "cmp $4, %[spaced]\n\t"
        "jb 10f\n\t"
        "je 12f\n\t"
        ".p2align 6\n\t"
        "11:\n\t"   /* a line per 8 steps */
        "prefetcht0 (%[pf])\n\t"
        ROWS3_STEP(0) ROWS3_STEP(1) ROWS3_STEP(2) ROWS3_STEP(3)
        ROWS3_STEP(4) ROWS3_STEP(5) ROWS3_STEP(6) ROWS3_STEP(7)
        "add $64, %[pf]\n\t"
        "add $192, %[a]\n\t"
        "add $1024, %[b]\n\t"
        "dec %[pf_n]\n\t"
        "jnz 11b\n\t"
        "jmp 2f\n\t"
        ".p2align 6\n\t"
        "12:\n\t"   /* per 4 steps */
        "prefetcht0 (%[pf])\n\t"
        ROWS3_STEP(0) ROWS3_STEP(1) ROWS3_STEP(2) ROWS3_STEP(3)
        "add $64, %[pf]\n\t"
        "add $96, %[a]\n\t"
        "add $512, %[b]\n\t"
        "dec %[pf_n]\n\t"
        "jnz 12b\n\t"
        "jmp 2f\n\t"
        "10:\n\t"
        "cmp $2, %[spaced]\n\t"
        "jb 1f\n\t"
        ".p2align 6\n\t"
        "13:\n\t"   /* per 2 steps */
        "prefetcht0 (%[pf])\n\t"
        ROWS3_STEP(0) ROWS3_STEP(1)
        "add $64, %[pf]\n\t"
        "add $48, %[a]\n\t"
        "add $256, %[b]\n\t"
        "dec %[pf_n]\n\t"
        "jnz 13b\n\t"
        "jmp 2f\n\t"
        ".p2align 6\n\t"
        "1:\n\t"   /* a line every step */
        "prefetcht0 (%[pf])\n\t"
        ROWS3_STEP(0)
        "add $64, %[pf]\n\t"
        "add $24, %[a]\n\t"
        "sub $-128, %[b]\n\t"
        "dec %[pf_n]\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "test %[quads], %[quads]\n\t"
        "jz 4f\n\t"
        ".p2align 6\n\t"
        "3:\n\t"
        ROWS3_STEP(0) ROWS3_STEP(1) ROWS3_STEP(2) ROWS3_STEP(3)
        "add $96, %[a]\n\t"
        "add $512, %[b]\n\t"
        "dec %[quads]\n\t"
        "jnz 3b\n\t"
        "4:\n\t"
        "test %[rest], %[rest]\n\t"
        "jz 6f\n\t"
        "5:\n\t"
        ROWS3_STEP(0)
        "add $24, %[a]\n\t"
        "sub $-128, %[b]\n\t"
        "dec %[rest]\n\t"
        "jnz 5b\n\t"
        "6:\n\t"
        : [a] "+r"(a), [b] "+r"(b), [pf] "+r"(pf), [pf_n] "+r"(pf_n), [quads] "+r"(quads), [rest] "+r"(rest),
          [c0] "=x"(c0), [c1] "=x"(c1), [c2] "=x"(c2), [c3] "=x"(c3), [c4] "=x"(c4), [c5] "=x"(c5),
          [c6] "=x"(c6), [c7] "=x"(c7), [c8] "=x"(c8), [c9] "=x"(c9), [c10] "=x"(c10), [c11] "=x"(c11)
        : [spaced] "r"(spaced)
        : "memory", "cc", "xmm12", "xmm13", "xmm14", "xmm15");
    __m256 acc[3][4] = {{c0, c1, c2, c3}, {c4, c5, c6, c7}, {c8, c9, c10, c11}};
    store_rows(3, row0, acc, o);
}
#undef ROWS3_STEP

/* One k step of rows_part. */
static inline __attribute__((always_inline)) void rows_step(int r, const float *a, const float *b, __m256 acc[][4])
{
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 b2 = _mm256_load_ps(b + 16), b3 = _mm256_load_ps(b + 24);
    #pragma GCC unroll 2
    for (int i = 0; i < r; i++) {
        __m256 ai = _mm256_broadcast_ss(a + i);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        acc[i][2] = _mm256_fmadd_ps(ai, b2, acc[i][2]);
        acc[i][3] = _mm256_fmadd_ps(ai, b3, acc[i][3]);
    }
}

/* One or two rows × all 32 columns (at most 8 accumulators): per row each
   k feeds four independent FMA chains, so the few-row products (adaLN: 2
   rows against large weights) are not held to one k per FMA latency, and
   B is read as whole 128-byte rows, in the order it lies in memory. */
static inline __attribute__((always_inline)) void rows_part(int r, int kc, const float *a, const float *b, int row0,
                                                           int part, int parts, const me_tile_out *o)
{
    __m256 acc[2][4];
    #pragma GCC unroll 2
    for (int i = 0; i < r; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm256_setzero_ps();
    prefetch_c(r, row0, o);
    const char *pf;
    int pf_n = (int)prefetch_share(kc, part, parts, o, &pf), every = pf_n ? kc / pf_n : 0, k = 0;
    a += row0;
    for (int line = 0; line < pf_n; line++) {
        __builtin_prefetch(pf + 64 * line, 0, 3);
        for (int j = 0; j < every; j++, k++, a += MR, b += NR) rows_step(r, a, b, acc);
    }
    #pragma GCC unroll 2
    for (; k < kc; k++, a += MR, b += NR) rows_step(r, a, b, acc);
    store_rows(r, row0, acc, o);
}

/* One k step of narrow_tile. */
static inline __attribute__((always_inline)) void narrow_step(int mr, const float *a, const float *b,
                                                             __m256 sum[][2])
{
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        __m256 ai = _mm256_broadcast_ss(a + i);
        sum[i][0] = _mm256_fmadd_ps(ai, b0, sum[i][0]);
        sum[i][1] = _mm256_fmadd_ps(ai, b1, sum[i][1]);
    }
}

/* Panels of at most 16 live columns (a convolution's 3 output channels,
   a matrix's last panel): up to six rows × 16 columns, 12 accumulators,
   two B vectors and a broadcast, rather than compute 32 columns. They sum
   in sum[6][2], copied into the store's [6][4] at the end: summed in that
   one, GCC kept the tile on the stack (45 % of a Zen 2 core's peak, 86 %
   now; one thread, K 192). */
static inline __attribute__((always_inline)) void narrow_tile(int mr, int kc, const float *a, const float *b,
                                                             const me_tile_out *o)
{
    __m256 sum[MR][2];
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++) sum[i][0] = sum[i][1] = _mm256_setzero_ps();
    prefetch_c(mr, 0, o);
    const char *pf;
    int pf_n = (int)prefetch_share(kc, 0, 1, o, &pf), every = pf_n ? kc / pf_n : 0, k = 0;
    for (int line = 0; line < pf_n; line++) {
        __builtin_prefetch(pf + 64 * line, 0, 3);
        for (int j = 0; j < every; j++, k++, a += MR, b += NR) narrow_step(mr, a, b, sum);
    }
    #pragma GCC unroll 4
    for (; k < kc; k++, a += MR, b += NR) narrow_step(mr, a, b, sum);
    __m256 acc[MR][4];   /* [i][2..3] never stored: nr ≤ 16 */
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        acc[i][0] = sum[i][0], acc[i][1] = sum[i][1], acc[i][2] = acc[i][3] = _mm256_setzero_ps();
    store_rows(mr, 0, acc, o);
}

/* A tile of 1–6 rows as parts of at most three rows, which share the
   fetching of the next panel's lines: 6 = 3 + 3, 5 = 3 + 2, 4 = 2 + 2 (a
   one-row part's four chains would wait on the FMA latency); of 3–6 rows
   over at most 16 live columns, one narrow tile. */
static inline __attribute__((always_inline)) void tile(int rows, int kc, const float *a, const float *b,
                                                      const me_tile_out *o)
{
    if (rows >= 3 && o->nr <= 16) {
        narrow_tile(rows, kc, a, b, o);
    } else if (rows == 6) {
        rows3_part(kc, a, b, 0, 0, 2, o);
        rows3_part(kc, a, b, 3, 1, 2, o);
    } else if (rows == 5) {
        rows3_part(kc, a, b, 0, 0, 2, o);
        rows_part(2, kc, a, b, 3, 1, 2, o);
    } else if (rows == 4) {
        rows_part(2, kc, a, b, 0, 0, 2, o);
        rows_part(2, kc, a, b, 2, 1, 2, o);
    } else if (rows == 3) {
        rows3_part(kc, a, b, 0, 0, 1, o);
    } else {
        rows_part(rows, kc, a, b, 0, 0, 1, o);
    }
}

#define TILE(R)                                                                \
    static void tile_##R(int kc, const void *a, const void *b, const me_tile_out *o) \
    {                                                                          \
        tile(R, kc, a, b, o);                                                  \
    }
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)
#undef TILE

/* An 8×8 block of floats transposed: c[j] holds column j of the rows r. */
static inline __attribute__((always_inline)) void transpose8(const __m256 r[8], __m256 c[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    /* column j: rows 0-3 in the low half of one vector, 4-7 in another */
    c[0] = _mm256_permute2f128_ps(u0, u4, 0x20), c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    c[2] = _mm256_permute2f128_ps(u2, u6, 0x20), c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    c[4] = _mm256_permute2f128_ps(u0, u4, 0x31), c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    c[6] = _mm256_permute2f128_ps(u2, u6, 0x31), c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* A panel [kc][6] from 6 row pointers (live of them real, the rest zero),
   8 k at a time: each 128-bit lane (k 0–3, k 4–7) is transposed as rows
   a–d by 4×4 and e–f interleaved, then spliced into the lane's 24
   outputs (a0 b0 c0 d0 | e0 f0 a1 b1 | c1 d1 e1 f1 | …) and stored as six
   whole vectors. The former 8×8 transpose with two stores per k (16 and 8
   bytes) packed 2.4 floats/ns on a Zen 2 core; this one 8.7–10.5 (128–512
   rows, K 190–384, the same bytes). */
_Static_assert(MR == 6, "pack_a_rows names the tile's six rows a-f");

static inline __attribute__((always_inline)) void pack_a_rows(const float *const *row, int live, int kc, float *d)
{
    const __m256 zero = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= kc; k += 8, d += 8 * MR) {
        /* named, not an array: GCC kept an array on the stack */
        __m256 a = _mm256_loadu_ps(row[0] + k), b = live > 1 ? _mm256_loadu_ps(row[1] + k) : zero;
        __m256 c = live > 2 ? _mm256_loadu_ps(row[2] + k) : zero, e = live > 4 ? _mm256_loadu_ps(row[4] + k) : zero;
        __m256 dr = live > 3 ? _mm256_loadu_ps(row[3] + k) : zero, f = live > 5 ? _mm256_loadu_ps(row[5] + k) : zero;
        __m256 ab_lo = _mm256_unpacklo_ps(a, b), ab_hi = _mm256_unpackhi_ps(a, b);   /* a0 b0 a1 b1, a2 b2 a3 b3 */
        __m256 cd_lo = _mm256_unpacklo_ps(c, dr), cd_hi = _mm256_unpackhi_ps(c, dr);
        __m256 ef_lo = _mm256_unpacklo_ps(e, f), ef_hi = _mm256_unpackhi_ps(e, f);
        /* a-d of k 0 and 1, then of k 2 and 3 */
        __m256 k0 = _mm256_shuffle_ps(ab_lo, cd_lo, 0x44), k1 = _mm256_shuffle_ps(ab_lo, cd_lo, 0xee);
        __m256 k2 = _mm256_shuffle_ps(ab_hi, cd_hi, 0x44), k3 = _mm256_shuffle_ps(ab_hi, cd_hi, 0xee);
        __m256 e0a1 = _mm256_shuffle_ps(ef_lo, k1, 0x44), c1f1 = _mm256_shuffle_ps(k1, ef_lo, 0xee);
        __m256 e2a3 = _mm256_shuffle_ps(ef_hi, k3, 0x44), c3f3 = _mm256_shuffle_ps(k3, ef_hi, 0xee);
        _mm256_storeu_ps(d, _mm256_permute2f128_ps(k0, e0a1, 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(c1f1, k2, 0x20));
        _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(e2a3, c3f3, 0x20));
        _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(k0, e0a1, 0x31));
        _mm256_storeu_ps(d + 32, _mm256_permute2f128_ps(c1f1, k2, 0x31));
        _mm256_storeu_ps(d + 40, _mm256_permute2f128_ps(e2a3, c3f3, 0x31));
    }
    for (; k < kc; k++, d += MR)
        for (int i = 0; i < MR; i++) d[i] = i < live ? row[i][k] : 0.0f;
}

/* Full tiles with the row count a constant: no test per row and step. */
void me_pack_a_avx2(const float *const *row, int live, int kc, float *d)
{
    if (live == MR) pack_a_rows(row, MR, kc, d);
    else pack_a_rows(row, live, kc, d);
}

/* A panel [kc][6] from `live` columns of a row-major source (row i, k is
   src[k·ld + i]): each k's 6 elements are contiguous there, one masked
   load (never past the live ones) and a 4 + 2 store. */
void me_pack_a_cols_avx2(const float *src, size_t ld, int live, int kc, float *d)
{
    __m256i m = lanes(live);
    for (int k = 0; k < kc; k++, src += ld, d += MR) {
        __m256 v = _mm256_maskload_ps(src, m);
        _mm_storeu_ps(d, _mm256_castps256_ps128(v));
        _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
    }
}

/* out[j·ldo + d] = src[d·32 + j] · scale[j]: 8×8 blocks transposed in
   registers, each column scaled by its own factor (the same one multiply
   per element as elementwise); rows past the last whole 8 elementwise. */
void me_transpose32_avx2(const float *src, int rows, int cols, const float *scale, float *out, size_t ldo)
{
    int d = 0;
    for (; d + 8 <= rows; d += 8)
        for (int j0 = 0; j0 < cols; j0 += 8) {
            __m256 r[8], c[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)(d + i) * NR + j0);
            transpose8(r, c);
            for (int j = 0; j < 8 && j0 + j < cols; j++)
                _mm256_storeu_ps(out + (size_t)(j0 + j) * ldo + d, _mm256_mul_ps(c[j], _mm256_set1_ps(scale[j0 + j])));
        }
    for (int j = 0; j < cols; j++)
        for (int dd = d; dd < rows; dd++) out[(size_t)j * ldo + dd] = src[(size_t)dd * NR + j] * scale[j];
}

void me_pack_b_avx2(const float *src, size_t ld, int trans, int k, float *d)
{
    if (!trans) {   /* row segments */
        for (int kk = 0; kk < k; kk++, src += ld, d += NR)
            for (int q = 0; q < NR; q += 8) _mm256_storeu_ps(d + q, _mm256_loadu_ps(src + q));
        return;
    }
    int kk = 0;
    for (; kk + 8 <= k; kk += 8)
        for (int g = 0; g < NR; g += 8) {
            __m256 r[8], c[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)(g + i) * ld + kk);
            transpose8(r, c);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(d + (size_t)(kk + j) * NR + g, c[j]);
        }
    for (; kk < k; kk++)
        for (int c = 0; c < NR; c++) d[(size_t)kk * NR + c] = src[(size_t)c * ld + kk];
}

#pragma GCC pop_options

const me_tile_fn me_tiles_avx2[MR + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

/* conv_winograd_job.h — internal to the Winograd convolutions: the block
   grid and lane groups ops/conv_winograd.c deals out, and the input and
   output transforms each vector ISA implements (ops/conv_winograd_avx512.c:
   16 blocks a vector; ops/conv_winograd_avx2.c: 8). */
#ifndef MOEDIT_OPS_CONV_WINOGRAD_JOB_H
#define MOEDIT_OPS_CONV_WINOGRAD_JOB_H

#include <stddef.h>
#include <stdint.h>

#define WINO_POS 36   /* 6×6 transformed positions of F(4×4, 3×3) */
#define WINO_POS_1D 8 /* 8 of F(2, 7) */

/* The output's 4×4 blocks: th rows of tw, lane groups of `lanes` blocks
   side by side on a block row — or, with pair, where a block row holds 8
   blocks or fewer (16-lane groups, no upsampling), of two block rows,
   lanes 0–7 the first and 8–15 the next; or, gathered, `lanes`
   consecutive blocks of the whole grid (wino_gathered); h × w the
   output's size, sh × sw the input's (half of it where a ×2 nearest
   upsampling comes first; h = sh − 2 without padding). */
typedef struct {
    int n, h, w, sh, sw, up, pad, lanes, pair, gathered, th, tw, groups_per_row;
    int bh, bw, ext_r, ext_c;   /* a block's output rows × columns, its input's (4×4 and 6×6; F(2, 7): 1×2 and 1×8, 2×1 and 8×1) */
    int pad_r, pad_c;           /* the padding above and left of the input */
    long blocks, groups, panels;
    size_t y_img;   /* floats from one image of y (and res) to the next */
} wino_grid;

/* Where a lane group's blocks read and write: the first row and column
   they see (4ty − 1, 4tx0 − 1) and where those lie in the input (halved
   where it is upsampled); which of the input's `lanes`-column vectors
   along a row lie inside the image (bit t of in[k]: column scol0 +
   lanes·k + t), the same for the output's vectors from column 4tx0
   (out[k]), and how many output rows exist (rows_next: in the second
   block row of a pair). */
typedef struct {
    int img, row0, col0, srow0, scol0, rows, rows_next;
    uint16_t in[5], out[4];
} wino_lanes;

/* A lane group of the gathered layout (ops/conv_winograd.c says where it
   runs): lane t holds block b0 + t of the blocks counted image by image,
   row by row, so one group may span block rows and images and every lane
   but the last group's tail is busy; its input is read by gathers. */
typedef struct {
    int32_t in[16];                /* its first input pixel (row bh·ty − pad_r, column bw·tx − pad_c): img·cin·sh·sw + row·sw + column */
    int32_t out[16];               /* its first output pixel in channel 0: img·y_img + bh·ty·w + bw·tx */
    uint16_t row_in[8], col_in[8]; /* lanes whose row i (column j) of the block's input lies inside the image */
    uint8_t rows[16], cols[16];    /* output rows and columns of its block inside the image (0: no block) */
    uint8_t along[16];             /* F(2, 7) along rows: which of its eight input columns lie inside */
    uint8_t runs, run_at[4];       /* F(2, 7) along columns: lanes [run_at[r], run_at[r + 1]) read consecutive
                                      input columns (runs 0: more than 4 runs) */
} wino_gathered;

/* Bᵀ of F(4, 3) on six vectors in place (input_1d) and Aᵀ, six vectors
   to four (output_1d); Bᵀ of F(2, 7) at the points 0, 1, −1, 2, −2, ½, −½
   and ∞, eight vectors to eight (input_f27), and its Aᵀ with the bias
   (output_f27). Toom–Cook: row j of Bᵀ holds the coefficients of
   ∏ (x − a_l) over the finite points but a_j, the last row of the product
   over all of them —

       −1   0  21/4     0  −21/4     0   1  0
        0   1     1 −17/4  −17/4     1   1  0
        0  −1     1  17/4  −17/4    −1   1  0
        0 1/2   1/4  −5/2   −5/4     2   1  0
        0 −1/2  1/4   5/2   −5/4    −2   1  0
        0   2     4  −5/2     −5   1/2   1  0
        0  −2     4   5/2     −5  −1/2   1  0
        0  −1     0  21/4      0 −21/4   0  1

   (rows 1–6 in pairs: even columns ± odd ones; every entry exact in
   float32); Aᵀ the points' powers 0 and 1 (∞: 0 and 1). Written once
   for the vector type V whose intrinsics begin with P (_mm512, _mm256):
   each ISA's file expands it inside its own target region. */
#define WINO_1D_TRANSFORMS(V, P)                                                              \
    static inline void input_1d(V *d)                                                         \
    {                                                                                         \
        V four = P##_set1_ps(4.0f), five = P##_set1_ps(5.0f), two = P##_set1_ps(2.0f);       \
        V t0 = P##_fnmadd_ps(four, d[2], d[4]), t1 = P##_fnmadd_ps(four, d[1], d[3]);         \
        V t2 = P##_sub_ps(d[4], d[2]), t3 = P##_mul_ps(two, P##_sub_ps(d[3], d[1]));          \
        V r0 = P##_fmadd_ps(four, d[0], P##_fnmadd_ps(five, d[2], d[4]));                     \
        V r5 = P##_fmadd_ps(four, d[1], P##_fnmadd_ps(five, d[3], d[5]));                     \
        d[0] = r0;                                                                            \
        d[1] = P##_add_ps(t0, t1);                                                            \
        d[2] = P##_sub_ps(t0, t1);                                                            \
        d[3] = P##_add_ps(t2, t3);                                                            \
        d[4] = P##_sub_ps(t2, t3);                                                            \
        d[5] = r5;                                                                            \
    }                                                                                         \
    static inline void input_f27(V *d, V *r)                                                  \
    {                                                                                         \
        V e1 = P##_fnmadd_ps(P##_set1_ps(4.25f), d[4], P##_add_ps(d[2], d[6]));              \
        V o1 = P##_fnmadd_ps(P##_set1_ps(4.25f), d[3], P##_add_ps(d[1], d[5]));              \
        V e2 = P##_fmadd_ps(P##_set1_ps(0.25f), d[2], P##_fnmadd_ps(P##_set1_ps(1.25f), d[4], d[6])); \
        V o2 = P##_fmadd_ps(P##_set1_ps(0.5f), d[1],                                          \
                            P##_fmsub_ps(P##_set1_ps(2.0f), d[5], P##_mul_ps(P##_set1_ps(2.5f), d[3]))); \
        V e3 = P##_fmadd_ps(P##_set1_ps(4.0f), d[2], P##_fnmadd_ps(P##_set1_ps(5.0f), d[4], d[6])); \
        V o3 = P##_fmadd_ps(P##_set1_ps(2.0f), d[1],                                          \
                            P##_fmsub_ps(P##_set1_ps(0.5f), d[5], P##_mul_ps(P##_set1_ps(2.5f), d[3]))); \
        r[0] = P##_fmadd_ps(P##_set1_ps(5.25f), P##_sub_ps(d[2], d[4]), P##_sub_ps(d[6], d[0])); \
        r[1] = P##_add_ps(e1, o1);                                                            \
        r[2] = P##_sub_ps(e1, o1);                                                            \
        r[3] = P##_add_ps(e2, o2);                                                            \
        r[4] = P##_sub_ps(e2, o2);                                                            \
        r[5] = P##_add_ps(e3, o3);                                                            \
        r[6] = P##_sub_ps(e3, o3);                                                            \
        r[7] = P##_fmadd_ps(P##_set1_ps(5.25f), P##_sub_ps(d[3], d[5]), P##_sub_ps(d[7], d[1])); \
    }                                                                                         \
    static inline void output_f27(const V *m, V bias, V *o)                                   \
    {                                                                                         \
        V a1 = P##_add_ps(m[1], m[2]), a2 = P##_add_ps(m[3], m[4]), a3 = P##_add_ps(m[5], m[6]); \
        V s1 = P##_sub_ps(m[1], m[2]), s2 = P##_sub_ps(m[3], m[4]), s3 = P##_sub_ps(m[5], m[6]); \
        o[0] = P##_add_ps(P##_add_ps(P##_add_ps(m[0], bias), a1), P##_add_ps(a2, a3));       \
        o[1] = P##_add_ps(P##_fmadd_ps(P##_set1_ps(2.0f), s2, s1),                            \
                          P##_fmadd_ps(P##_set1_ps(0.5f), s3, P##_add_ps(m[7], bias)));       \
    }                                                                                         \
    static inline void output_1d(const V *m, V *o)                                            \
    {                                                                                         \
        V a1 = P##_add_ps(m[1], m[2]), s1 = P##_sub_ps(m[1], m[2]);                           \
        V a2 = P##_add_ps(m[3], m[4]), s2 = P##_sub_ps(m[3], m[4]);                           \
        o[0] = P##_add_ps(P##_add_ps(m[0], a1), a2);                                          \
        o[1] = P##_fmadd_ps(P##_set1_ps(2.0f), s2, s1);                                       \
        o[2] = P##_fmadd_ps(P##_set1_ps(4.0f), a2, a1);                                       \
        o[3] = P##_add_ps(P##_fmadd_ps(P##_set1_ps(8.0f), s2, s1), m[5]);                     \
    }

/* One input channel (its plane src; next: the next channel's plane, to
   fetch ahead, or NULL) of lane group L into v: position p's vector at
   v + p·pstride (Bᵀ d B of each block's 6×6 input, zeros outside the
   image). */
void wino_input_avx512(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, float *v,
                       size_t pstride);
void wino_input_avx2(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, float *v,
                     size_t pstride);
/* The same for a gathered group: src is the input channel's plane of the
   first image (G->in counts from it), y the output channel's (G->out). */
void wino_input_gathered_avx512(const wino_grid *g, const wino_gathered *G, const float *src, float *v,
                                size_t pstride);
void wino_input_gathered_avx2(const wino_grid *g, const wino_gathered *G, const float *src, float *v,
                              size_t pstride);
/* One output channel co of lane group L from its 36 products (position
   p's at cm + p·pstride) into y (Aᵀ M A, bias, then res and ReLU where
   given; act is OP_ACT_*). */
void wino_output_avx512(const wino_grid *g, const wino_lanes *L, int cout, int co, float bias, const float *cm,
                        size_t pstride, float *y, const float *res, int act);
void wino_output_avx2(const wino_grid *g, const wino_lanes *L, int cout, int co, float bias, const float *cm,
                      size_t pstride, float *y, const float *res, int act);

/* F(2, 7) along rows (1×7) or columns (7×1), always gathered: the input
   and output transforms of one channel, as the two above. */
void wino_input_1d_avx512(const wino_grid *g, const wino_gathered *G, const float *src, float *v, size_t pstride);
void wino_input_1d_avx2(const wino_grid *g, const wino_gathered *G, const float *src, float *v, size_t pstride);
void wino_output_1d_avx512(const wino_grid *g, const wino_gathered *G, float bias, const float *cm, size_t pstride,
                           float *y, const float *res, int act);
void wino_output_1d_avx2(const wino_grid *g, const wino_gathered *G, float bias, const float *cm, size_t pstride,
                         float *y, const float *res, int act);
void wino_output_gathered_avx512(const wino_grid *g, const wino_gathered *G, float bias, const float *cm,
                                 size_t pstride, float *y, const float *res, int act);
void wino_output_gathered_avx2(const wino_grid *g, const wino_gathered *G, float bias, const float *cm,
                               size_t pstride, float *y, const float *res, int act);

#endif

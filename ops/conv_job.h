/* conv_job.h — internal to the implicit-GEMM convolution: the job its
   threads share (ops/conv_gemm.c) and the packing of the image into the
   tiles' 32-pixel B panels (ops/conv_pack.c). */
#ifndef MOEDIT_OPS_CONV_JOB_H
#define MOEDIT_OPS_CONV_JOB_H

#include <stddef.h>
#include "ops/conv.h"
#include "ops/gemm_tile.h"

typedef struct {
    const op_conv *c;
    const op_conv_shape *s;   /* the convolution the kernel runs: c's, or a 2×2 parity of a folded one */
    const void *packed;       /* its weights */
    const float *x;
    const op_conv_dst *dst;   /* where output channel ranges go, in order */
    int ndst;
    int act, h, w;            /* stored input size */
    int ih, iw, oh, ow;       /* the size the kernel sees (upsampled), output size */
    size_t plane;             /* the destination's plane: oh·ow, or 2oh·2ow for a folded parity */
    int py, px, step;         /* output pixel (oy, ox) lands at (step·oy + py, step·ox + px) */
    int flat;                 /* stride 1, no upsampling, ow ≤ w: see pack_flat (ops/conv_pack.c) */
    int avx512;               /* AVX-512 CPU: vector stores (store_row, store_pair) */
    int gw;                   /* row length of the pixel grid: ow, or w for a flat job */
    size_t gplane;            /* oh·gw */
    long pixels;              /* n·gplane */
    const me_tile_fn *tiles;
    const me_tile_rows_fn *rows;   /* NULL, or tiles reading one-image panels in place (conv_panel_rows) */
    int stream;               /* y outgrows the threads' L2s: whole aligned rows go out by streaming stores */
    int kc_run;               /* K per pass of the tiles: c->kc, or c->kc_pass over large input planes */
    int direct;               /* one K pass, not a folded parity: tiles of one-run panels store into y themselves */
    int gather;               /* strided, not upsampled, AVX-512: panels packed by gathers (pack_gather) */
} conv_job;

#define CONV_ROWS_TAPS_MAX 49   /* taps per channel of a job read in place or gathered */

/* A run of a panel's lanes on one output row of one image. */
typedef struct { int img, oy, ox, len, lane; } segment;

/* Lanes [0, 32) of panel q, split where the output row or image changes
   (and, with by_row, at every row of the pixel grid); returns the number
   of segments (lanes past the last pixel are none). */
int conv_panel_segments(const conv_job *j, long q, int by_row, segment *seg);
/* B panel [kb][32] of panel q (its segments seg[0, ns)) over K range
   [k0, k0+kb): row kk holds, for each of the panel's pixels, the input
   value tap k0+kk = (ci, ky, kx) sees (0 in the padding and past the last
   pixel). d: 64-byte aligned. */
void conv_pack_b(const conv_job *j, const segment *seg, int ns, int k0, int kb, float *d);
/* A flat job's one-image panel (seg[0] alone) read in place by the
   me_tile_rows_fn tiles: its lane 0's pixel, x + *base, and per tap
   (ky·kw + kx) the lanes it finds inside the image (bit t: lane t; 0 in
   the padding, wrapped into a neighbouring row, past the last pixel).
   Returns 1 when every tap finds all 32 lanes inside. */
int conv_panel_rows(const conv_job *j, const segment *seg, ptrdiff_t *base, uint32_t *mask);
/* The offsets from lane 0's pixel of a flat job's K range [k0, k0+kb): off[kk] for
   tap k0+kk = (ci, ky, kx) is ci·h·w + (ky − pad_h)·w + kx − pad_w. */
void conv_row_offsets(const conv_job *j, int k0, int kb, int32_t *off);

#endif

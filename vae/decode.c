/* The decoder forward, one sample at a time, in the order of diffusers'
   AutoencoderKL._decode → Decoder.forward. Buffers come from a workspace
   sized by walking the same architecture once per latent size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "vae/vae.h"

/* ---- workspace ---------------------------------------------------------------- */

typedef struct { size_t xa, b, scratch, attn; } sizes;   /* floats */

static void need(size_t *have, size_t want) { if (want > *have) *have = want; }

/* Either way a layer may be packed (vae_pack: Winograd for float32, not for bf16). */
static void need_conv(sizes *z, const vae_conv *cv, int h, int w)
{
    need(&z->scratch, op_conv_scratch(&cv->s, h, w));
    if (op_winograd_pays(&cv->s)) need(&z->scratch, op_winograd_scratch(&cv->s, 1, h, w));
}

static void need_resnet(sizes *z, const vae_resnet *r, int h, int w)
{
    size_t hw = (size_t)h * w;
    need(&z->xa, (size_t)(r->cin > r->cout ? r->cin : r->cout) * hw);
    need(&z->b, (size_t)r->cout * hw);
    need_conv(z, &r->conv1, h, w);
    need_conv(z, &r->conv2, h, w);
}

static sizes plan(const moedit_vae *v, int h, int w)
{
    const vae_config *c = &v->cfg;
    sizes z = {0};
    size_t hw = (size_t)h * w;
    int top = c->block_out_channels[c->num_blocks - 1];
    need(&z.xa, (size_t)(c->latent_channels > top ? c->latent_channels : top) * hw);
    need_conv(&z, &v->conv_in, h, w);
    for (int i = 0; i < 2; i++) need_resnet(&z, &v->mid_resnets[i], h, w);
    if (c->mid_attention) z.attn = 4 * (size_t)top * hw + op_attention_scratch(1, (int)hw, 1, top);
    for (int i = 0; i < c->num_blocks; i++) {
        const vae_up_block *u = &v->up[i];
        for (int j = 0; j <= c->layers_per_block; j++) need_resnet(&z, &u->resnets[j], h, w);
        if (u->upsample.w) {
            need_conv(&z, &u->upsample, h, w);
            h *= 2;
            w *= 2;
            need(&z.xa, (size_t)u->cout * h * w);
        }
    }
    need_conv(&z, &v->conv_out, h, w);
    return z;
}

void vae_workspace_free(vae_workspace *ws)
{
    me_free_aligned(ws->x);
    me_free_aligned(ws->a);
    me_free_aligned(ws->b);
    me_free_aligned(ws->scratch);
    me_free_aligned(ws->attn);
    memset(ws, 0, sizeof *ws);
}

static float *alloc_floats(size_t n) { return me_alloc_aligned((n ? n : 1) * sizeof(float)); }

static int workspace_for(moedit_vae *v, int h, int w)
{
    vae_workspace *ws = &v->ws;
    if (ws->x && ws->h == h && ws->w == w && ws->threads == me_threads_max()) return MOEDIT_OK;
    vae_workspace_free(ws);
    sizes z = plan(v, h, w);
    char what[64];
    snprintf(what, sizeof what, "the VAE decode of %dx%d latents", h, w);
    int rc = me_memory_check(sizeof(float) * (2.0 * z.xa + z.b + z.scratch + z.attn), what);
    if (rc) return rc;
    ws->x = alloc_floats(z.xa);
    ws->a = alloc_floats(z.xa);
    ws->b = alloc_floats(z.b);
    ws->scratch = alloc_floats(z.scratch);
    ws->attn = alloc_floats(z.attn);
    if (!ws->x || !ws->a || !ws->b || !ws->scratch || !ws->attn) {
        vae_workspace_free(ws);
        return me_fail(MOEDIT_EINTERNAL, "VAE decode of %dx%d latents: out of memory", h, w);
    }
    ws->h = h;
    ws->w = w;
    ws->threads = me_threads_max();
    return MOEDIT_OK;
}

/* Smallest element count worth a parallel region. */
#define PAR_MIN (1 << 16)

/* ---- layers ----------------------------------------------------------------------- */

static void swap(float **p, float **q)
{
    float *t = *p;
    *p = *q;
    *q = t;
}

static void add(size_t n, const float *src, float *dst)
{
    #pragma omp parallel for simd schedule(static) num_threads(me_threads()) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* y = conv(x) + res (res may be NULL): the layer as vae_pack packed it. */
static void conv(moedit_vae *v, const vae_conv *cv, int h, int w, const float *x, float *y, const float *res)
{
    if (cv->wino.a)
        op_winograd_run(&cv->wino, 1, h, w, x, y, res, OP_ACT_NONE, v->ws.scratch);
    else
        op_conv_run(&cv->op, 1, h, w, x, y, res, OP_ACT_NONE, v->ws.scratch);
}

/* ResnetBlock2D without a time embedding: x ← shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x)))))). */
static void resnet(moedit_vae *v, const vae_resnet *r, int h, int w)
{
    vae_workspace *ws = &v->ws;
    int g = v->cfg.norm_num_groups, hw = h * w;
    op_groupnorm(1, r->cin, hw, g, ws->x, r->norm1.w, r->norm1.b, VAE_EPS, 1, ws->a);
    conv(v, &r->conv1, h, w, ws->a, ws->b, NULL);
    op_groupnorm(1, r->cout, hw, g, ws->b, r->norm2.w, r->norm2.b, VAE_EPS, 1, ws->b);
    if (r->shortcut.w) {
        conv(v, &r->conv2, h, w, ws->b, ws->a, NULL);
        conv(v, &r->shortcut, h, w, ws->x, ws->b, NULL);
        add((size_t)r->cout * hw, ws->b, ws->a);
    } else {   /* the residual is added as conv2's output is stored */
        conv(v, &r->conv2, h, w, ws->b, ws->a, ws->x);
    }
    swap(&ws->x, &ws->a);
}

/* Dense [rows, cols] → [cols, rows], in cache-sized tiles. */
static void transpose(int rows, int cols, const float *src, float *dst)
{
    size_t n = (size_t)rows * cols;
    #pragma omp parallel for collapse(2) schedule(static) num_threads(me_threads()) if (n >= PAR_MIN)
    for (int i0 = 0; i0 < rows; i0 += 32)
        for (int j0 = 0; j0 < cols; j0 += 32)
            for (int i = i0; i < i0 + 32 && i < rows; i++)
                for (int j = j0; j < j0 + 32 && j < cols; j++)
                    dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
}

/* Mid-block Attention: one head over the h·w positions, GroupNorm first,
   residual added. Tokens are rows for the projections, so the channel-major
   activation is transposed in and the result transposed back out. */
static void attention(moedit_vae *v, const vae_attention *at, int h, int w)
{
    vae_workspace *ws = &v->ws;
    int c = at->c, hw = h * w;
    size_t n = (size_t)c * hw;
    float *t = ws->attn, *q = t + n, *k = q + n, *val = k + n, *scratch = val + n;
    op_groupnorm(1, c, hw, v->cfg.norm_num_groups, ws->x, at->norm.w, at->norm.b, VAE_EPS, 0, ws->a);
    transpose(c, hw, ws->a, t);
    op_linear(hw, c, c, t, at->wq, at->bq, q);
    op_linear(hw, c, c, t, at->wk, at->bk, k);
    op_linear(hw, c, c, t, at->wv, at->bv, val);
    op_attention(1, hw, 1, c, q, k, val, c, 0, t, scratch);
    op_linear(hw, c, c, t, at->wo, at->bo, q);
    transpose(hw, c, q, ws->a);
    add(n, ws->a, ws->x);
}

/* One sample: z [latent_channels, h, w] → img [out_channels, h·up, w·up]. */
static void decode_one(moedit_vae *v, int h, int w, const float *z, float *img)
{
    const vae_config *c = &v->cfg;
    vae_workspace *ws = &v->ws;
    const float *in = z;
    if (c->post_quant_conv) {
        conv(v, &v->post_quant_conv, h, w, z, ws->a, NULL);
        in = ws->a;
    }
    conv(v, &v->conv_in, h, w, in, ws->x, NULL);

    resnet(v, &v->mid_resnets[0], h, w);
    if (c->mid_attention) attention(v, &v->mid_attn, h, w);
    resnet(v, &v->mid_resnets[1], h, w);

    for (int i = 0; i < c->num_blocks; i++) {
        const vae_up_block *u = &v->up[i];
        for (int j = 0; j <= c->layers_per_block; j++) resnet(v, &u->resnets[j], h, w);
        if (u->upsample.w) {
            conv(v, &u->upsample, h, w, ws->x, ws->a, NULL);   /* nearest ×2 and conv, upsampling folded in */
            swap(&ws->x, &ws->a);
            h *= 2;
            w *= 2;
        }
    }

    op_groupnorm(1, c->block_out_channels[0], h * w, c->norm_num_groups, ws->x, v->norm_out.w,
                 v->norm_out.b, VAE_EPS, 1, ws->a);
    conv(v, &v->conv_out, h, w, ws->a, img, NULL);
}

int moedit_vae_reserve(moedit_vae *v, int h, int w)
{
    int up = v ? moedit_vae_upscale(v) : 0;
    if (!v || h < 1 || w < 1 || (long)h * up > 16384 || (long)w * up > 16384)
        return me_fail(MOEDIT_EINPUT, "VAE decode: cannot decode latents of %dx%d", h, w);
    return workspace_for(v, h, w);
}

int moedit_vae_decode(moedit_vae *v, int n, int h, int w, const float *z, float *img)
{
    int up = moedit_vae_upscale(v);
    if (n < 1) return me_fail(MOEDIT_EINPUT, "VAE decode: cannot decode %d latents of %dx%d", n, h, w);
    int rc = moedit_vae_reserve(v, h, w);
    if (rc) return rc;
    size_t zs = (size_t)v->cfg.latent_channels * h * w;
    size_t is = (size_t)v->cfg.out_channels * h * up * w * up;
    for (int i = 0; i < n; i++) decode_one(v, h, w, z + i * zs, img + i * is);
    char bad[96];
    int nbad = me_non_finite_rows(img, n, is, bad, sizeof bad);
    if (nbad)
        return me_fail(MOEDIT_EINPUT, "VAE decode: non-finite values in %d of %d decoded images: %s", nbad, n, bad);
    return MOEDIT_OK;
}

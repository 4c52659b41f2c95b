/* The forward pass shared by DiT, DiT-MoE and Switch-DiT, in the order of
   upstream DiT.forward: patch + position embedding, timestep and label
   conditioning, the blocks (Switch-DiT: each behind its router's channel
   mask), the final adaLN layer and unpatchify. All n rows go through every
   matmul together. */
#include <math.h>
#include <string.h>
#include "core/core.h"
#include "dit/model.h"
#include "ops/gemm.h"
#include "ops/ops.h"

#define PAR_MIN 32768

/* x [n, C, H, W] → a.patches [n·T, C·p·p], each patch flattened (c, i, j)
   like the conv weight, then one GEMM plus the position table. */
static void embed_patches(moedit_model *m, int n, const float *x)
{
    const moedit_config *cf = &m->cfg;
    dit_acts *a = &m->a;
    int C = cf->in_channels, p = cf->patch, g = m->grid, S = cf->input_size, T = m->tokens, D = cf->hidden;
    int pp = C * p * p;
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * T * pp >= PAR_MIN)
    for (long tok = 0; tok < (long)n * T; tok++) {
        int b = (int)(tok / T), r = (int)(tok % T) / g, q = (int)(tok % T) % g;
        float *dst = a->patches + tok * pp;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < p; i++)
                memcpy(dst + (c * p + i) * p, x + (((size_t)b * C + c) * S + r * p + i) * S + q * p,
                       (size_t)p * sizeof *dst);
    }
    dit_linear(n * T, a->patches, &m->xemb, m->xemb_b, a->x);
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * T * D >= PAR_MIN)
    for (long tok = 0; tok < (long)n * T; tok++) {
        const float *pe = m->pos + (tok % T) * D;
        for (int d = 0; d < D; d++) a->x[tok * D + d] += pe[d];
    }
}

/* c = t_embedder(t) + embedding_table[y], and SiLU(c) for every adaLN. */
static void embed_condition(moedit_model *m, int n, const float *t, const int64_t *y)
{
    dit_acts *a = &m->a;
    int D = m->cfg.hidden, half = DIT_FREQ_DIM / 2;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < half; i++) {
            /* float32 steps as torch takes them: (−ln 10⁴ · i) / 128, exp, × t */
            float f = expf(-9.21034037f * (float)i / (float)half);
            float arg = t[b] * f;
            a->tfreq[b * DIT_FREQ_DIM + i] = cosf(arg);
            a->tfreq[b * DIT_FREQ_DIM + half + i] = sinf(arg);
        }
    dit_linear(n, a->tfreq, &m->t0, m->t0_b, a->th);
    op_silu((size_t)n * D, a->th, a->th);
    dit_linear(n, a->th, &m->t2, m->t2_b, a->temb);
    for (int b = 0; b < n; b++)
        for (int d = 0; d < D; d++) a->c[b * D + d] = a->temb[b * D + d] + m->ytab[y[b] * D + d];
    op_silu((size_t)n * D, a->c, a->sc);
    if (m->cfg.routing == MOEDIT_ROUTING_DMOE) op_silu((size_t)n * D, a->temb, a->st);
}

/* a.xm = LN(h)·(1 + scale) + shift, with shift and scale chunks of a.mod
   (row stride `chunks`·D), in one pass. */
static void ln_modulate(moedit_model *m, int n, const float *h, int shift, int scale, int chunks)
{
    int D = m->cfg.hidden;
    size_t stride = (size_t)chunks * D;
    op_layernorm_modulate(n * m->tokens, D, h, m->a.mod + shift * D, m->a.mod + scale * D, m->tokens, stride,
                          DIT_LN_EPS, m->a.xm);
}

/* h += gate · a.ff, then a.xm = LN(h)·(1 + scale) + shift, in one pass
   (chunks of a.mod, 6 per row). */
static void gated_add_ln_modulate(moedit_model *m, int n, float *h, int gate, int shift, int scale)
{
    int D = m->cfg.hidden;
    size_t stride = (size_t)6 * D;
    op_gated_add_layernorm_modulate(n * m->tokens, D, h, m->a.mod + gate * D, m->a.ff, m->a.mod + shift * D,
                                    m->a.mod + scale * D, m->tokens, stride, DIT_LN_EPS, m->a.xm);
}

/* h += gate · a.ff, gate being chunk `gate` of a.mod (6 chunks). */
static void gated_add(moedit_model *m, int n, float *h, int gate)
{
    dit_acts *a = &m->a;
    int T = m->tokens, D = m->cfg.hidden;
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * T * D >= PAR_MIN)
    for (long tok = 0; tok < (long)n * T; tok++) {
        const float *g = a->mod + (tok / T) * 6 * D + gate * D;
        for (int d = 0; d < D; d++) h[tok * D + d] += g[d] * a->ff[tok * D + d];
    }
}

/* a.ff = attn(a.xm): timm Attention, or DiT-MoE's qk-norm variant, which
   LayerNorms every head's q and k (affine) before the softmax. */
static void attention(moedit_model *m, const dit_block *b, int n)
{
    const moedit_config *cf = &m->cfg;
    dit_acts *a = &m->a;
    int T = m->tokens, D = cf->hidden, hd = m->head_dim;
    dit_linear(n * T, a->xm, &b->qkv, b->qkv_b, a->qkv);
    if (cf->attention == MOEDIT_ATTN_QKNORM) {
        #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * T * D >= PAR_MIN)
        for (long tok = 0; tok < (long)n * T; tok++) {
            float *q = a->qkv + tok * 3 * D, *k = q + D;
            op_layernorm(cf->heads, hd, q, b->qn_w, b->qn_b, DIT_LN_EPS, q);
            op_layernorm(cf->heads, hd, k, b->kn_w, b->kn_b, DIT_LN_EPS, k);
        }
    }
    op_attention(n, T, cf->heads, hd, a->qkv, a->qkv + D, a->qkv + 2 * D, 3 * D, m->bf16, a->att, a->att_scratch);
    dit_linear(n * T, a->att, &b->proj, b->proj_b, a->ff);
}

/* a.ff = fc2(GELU_tanh(fc1(a.xm))). */
static void mlp(moedit_model *m, const dit_block *b, int n)
{
    dit_acts *a = &m->a;
    int NT = n * m->tokens, H = m->cfg.mlp_hidden;
    dit_linear(NT, a->xm, &b->fc1, b->fc1_b, a->mid);
    op_gelu_tanh((size_t)NT * H, a->mid, a->mid);
    dit_linear(NT, a->mid, &b->fc2, b->fc2_b, a->ff);
}

/* One adaLN-Zero block on the stream h (a.x, or x⊙m for Switch-DiT). */
static void block(moedit_model *m, int l, int n, float *h)
{
    const dit_block *b = &m->blocks[l];
    dit_acts *a = &m->a;
    /* shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp */
    dit_linear(n, a->sc, &b->ada, b->ada_b, a->mod);
    ln_modulate(m, n, h, 0, 1, 6);
    attention(m, b, n);
    gated_add_ln_modulate(m, n, h, 2, 3, 4);
    if (m->cfg.family == MOEDIT_FAMILY_DIT_MOE) dit_moe_ffn(m, l, n);
    else mlp(m, b, n);
    gated_add(m, n, h, 5);
}

/* Switch-DiT: the block runs on x⊙m and x = y + (1 − m)⊙x. The arrays
   are read through locals: loaded through a-> in the loop, GCC 12 left
   both loops scalar, `omp simd` or not. */
static void routed_block(moedit_model *m, int l, int n, const float *t)
{
    dit_acts *a = &m->a;
    float *x = a->x, *h = a->h;
    const float *mask = a->mask;
    size_t len = (size_t)n * m->tokens * m->cfg.hidden;
    dit_switch_mask(m, l, n, t);
    #pragma omp parallel for simd num_threads(me_threads()) if (len >= PAR_MIN)
    for (size_t i = 0; i < len; i++) h[i] = x[i] * mask[i];
    block(m, l, n, h);
    #pragma omp parallel for simd num_threads(me_threads()) if (len >= PAR_MIN)
    for (size_t i = 0; i < len; i++) x[i] = h[i] + (1.0f - mask[i]) * x[i];
}

/* Final adaLN layer, then tokens [n, g, g, p, p, outC] → out [n, outC, g·p, g·p]. */
static void final_layer(moedit_model *m, int n, float *out)
{
    const moedit_config *cf = &m->cfg;
    dit_acts *a = &m->a;
    int T = m->tokens, p = cf->patch, g = m->grid, oc = cf->out_channels, S = cf->input_size;
    dit_linear(n, a->sc, &m->fa, m->fa_b, a->mod);
    ln_modulate(m, n, a->x, 0, 1, 2);
    dit_linear(n * T, a->xm, &m->fl, m->fl_b, a->out_tok);
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * T * p * p * oc >= PAR_MIN)
    for (long tok = 0; tok < (long)n * T; tok++) {
        int b = (int)(tok / T), r = (int)(tok % T) / g, q = (int)(tok % T) % g;
        const float *src = a->out_tok + tok * p * p * oc;
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
                for (int c = 0; c < oc; c++)
                    out[(((size_t)b * oc + c) * S + r * p + i) * S + q * p + j] = src[(i * p + j) * oc + c];
    }
}

static int check_inputs(const moedit_model *m, int n, const float *x, const float *t, const int64_t *y,
                        const float *out)
{
    if (n <= 0 || !x || !t || !y || !out) return me_fail(MOEDIT_EINPUT, "forward: empty batch or NULL input");
    int routed = m->cfg.family == MOEDIT_FAMILY_SWITCH_DIT;
    for (int b = 0; b < n; b++) {
        if (!isfinite(t[b])) return me_fail(MOEDIT_EINPUT, "forward: timestep %g (row %d) is not finite", t[b], b);
        /* Switch-DiT routers are tables indexed by the training timestep. */
        if (routed && (t[b] != floorf(t[b]) || t[b] < 0 || t[b] >= m->tasks))
            return me_fail(MOEDIT_EINPUT, "forward: Switch-DiT timestep %g (row %d) is not an integer in [0,%d]",
                           t[b], b, m->tasks - 1);
        if (y[b] < 0 || y[b] >= m->table_rows)
            return me_fail(MOEDIT_EINPUT, "forward: label %lld (row %d) outside [0,%d]", (long long)y[b], b,
                           m->table_rows - 1);
    }
    return MOEDIT_OK;
}

int moedit_model_reserve(moedit_model *m, int n)
{
    if (!m || n < 1) return me_fail(MOEDIT_EINPUT, "reserve: no model or %d rows", n);
    return m->gpu ? MOEDIT_OK : dit_reserve(m, n);
}

int moedit_model_forward(moedit_model *m, int n, const float *x, const float *t, const int64_t *y, float *out)
{
    int rc = check_inputs(m, n, x, t, y, out);
    if (!rc && m->gpu) return dit_gpu_forward(m, n, x, t, y, out);
    if (rc || (rc = dit_reserve(m, n))) return rc;
    m->cur_t = t, m->cur_y = y;
    /* After dit_reserve: the buffers stay sized for every thread. The count
       also holds for this thread's work between forwards (the sampler's
       updates, a VAE decode) until the next forward looks again. Only the
       own kernels' results do not depend on it: on OpenBLAS a sample would
       change with the machine's load, so there the count stays. */
    if (me_gemm_native(0)) me_threads_limit(me_adapt_threads(&m->adapt));

    embed_patches(m, n, x);
    embed_condition(m, n, t, y);
    for (int l = 0; l < m->cfg.depth; l++) {
        if (m->cfg.family == MOEDIT_FAMILY_SWITCH_DIT) routed_block(m, l, n, t);
        else block(m, l, n, m->a.x);
    }
    final_layer(m, n, out);
    return MOEDIT_OK;
}

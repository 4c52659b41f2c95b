/* Loading a transformer: config detection, then every weight fetched by
   name with its exact expected shape (so a wrong checkpoint fails naming
   the tensor), plus the activation arena, FLOP count and tracer hooks. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "dit/config.h"
#include "dit/model.h"
#include "ops/ops.h"

/* Float32 data of the tensor named by fmt, which must have shape dims. */
static int tensor(me_tensors *ts, const float **out, int ndim, const int64_t *dims, const char *fmt, ...)
    ME_PRINTF(5, 6);
static int tensor(me_tensors *ts, const float **out, int ndim, const int64_t *dims, const char *fmt, ...)
{
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return me_tensors_f32(ts, name, ndim, dims, out);
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

/* The fixed 2-D sin-cos table upstream initialises pos_embed with
   (MAE's get_2d_sincos_pos_embed): per token, sin/cos of the column
   coordinate in the first half, of the row coordinate in the second. */
static float *sincos_pos_embed(int grid, int D)
{
    float *pe = me_alloc((size_t)grid * grid * D * sizeof *pe);
    if (!pe) return NULL;
    int q = D / 4;
    for (int r = 0; r < grid; r++)
        for (int c = 0; c < grid; c++) {
            float *e = pe + ((size_t)r * grid + c) * D;
            for (int i = 0; i < q; i++) {
                double omega = 1.0 / pow(10000.0, (double)i / q);
                e[i] = (float)sin(c * omega), e[q + i] = (float)cos(c * omega);
                e[2 * q + i] = (float)sin(r * omega), e[3 * q + i] = (float)cos(r * omega);
            }
        }
    return pe;
}

static int load_block(moedit_model *m, int l)
{
    const moedit_config *cf = &m->cfg;
    me_tensors *ts = m->ts;
    dit_block *b = &m->blocks[l];
    int64_t D = cf->hidden, H = cf->mlp_hidden, E = cf->num_experts;
    int rc;
    if ((rc = tensor(ts, &b->ada_w, SHAPE(6 * D, D), "blocks.%d.adaLN_modulation.1.weight", l)) ||
        (rc = tensor(ts, &b->ada_b, SHAPE(6 * D), "blocks.%d.adaLN_modulation.1.bias", l)))
        return rc;

    if (cf->attention == MOEDIT_ATTN_QKNORM) {
        int64_t hd = m->head_dim;
        if ((rc = tensor(ts, &b->qkv_w, SHAPE(3 * D, D), "blocks.%d.attn.Wqkv.weight", l)) ||
            (rc = tensor(ts, &b->qkv_b, SHAPE(3 * D), "blocks.%d.attn.Wqkv.bias", l)) ||
            (rc = tensor(ts, &b->qn_w, SHAPE(hd), "blocks.%d.attn.q_norm.weight", l)) ||
            (rc = tensor(ts, &b->qn_b, SHAPE(hd), "blocks.%d.attn.q_norm.bias", l)) ||
            (rc = tensor(ts, &b->kn_w, SHAPE(hd), "blocks.%d.attn.k_norm.weight", l)) ||
            (rc = tensor(ts, &b->kn_b, SHAPE(hd), "blocks.%d.attn.k_norm.bias", l)) ||
            (rc = tensor(ts, &b->proj_w, SHAPE(D, D), "blocks.%d.attn.out_proj.weight", l)) ||
            (rc = tensor(ts, &b->proj_b, SHAPE(D), "blocks.%d.attn.out_proj.bias", l)))
            return rc;
    } else {
        if ((rc = tensor(ts, &b->qkv_w, SHAPE(3 * D, D), "blocks.%d.attn.qkv.weight", l)) ||
            (rc = tensor(ts, &b->qkv_b, SHAPE(3 * D), "blocks.%d.attn.qkv.bias", l)) ||
            (rc = tensor(ts, &b->proj_w, SHAPE(D, D), "blocks.%d.attn.proj.weight", l)) ||
            (rc = tensor(ts, &b->proj_b, SHAPE(D), "blocks.%d.attn.proj.bias", l)))
            return rc;
    }

    if (cf->family == MOEDIT_FAMILY_DIT_MOE) {
        if ((rc = tensor(ts, &b->gate_w, SHAPE(E, D), "blocks.%d.moe.gate.weight", l))) return rc;
        b->experts = m->expert_store + (size_t)l * E;
        for (int e = 0; e < E; e++) {
            dit_swiglu *x = &b->experts[e];
            if ((rc = tensor(ts, &x->gate, SHAPE(H, D), "blocks.%d.moe.experts.%d.gate_proj.weight", l, e)) ||
                (rc = tensor(ts, &x->up, SHAPE(H, D), "blocks.%d.moe.experts.%d.up_proj.weight", l, e)) ||
                (rc = tensor(ts, &x->down, SHAPE(D, H), "blocks.%d.moe.experts.%d.down_proj.weight", l, e)))
                return rc;
        }
        if (cf->shared_hidden) {
            int64_t S = cf->shared_hidden;
            if ((rc = tensor(ts, &b->shared.gate, SHAPE(S, D), "blocks.%d.moe.shared_experts.gate_proj.weight", l)) ||
                (rc = tensor(ts, &b->shared.up, SHAPE(S, D), "blocks.%d.moe.shared_experts.up_proj.weight", l)) ||
                (rc = tensor(ts, &b->shared.down, SHAPE(D, S), "blocks.%d.moe.shared_experts.down_proj.weight", l)))
                return rc;
        }
        return MOEDIT_OK;
    }

    if ((rc = tensor(ts, &b->fc1_w, SHAPE(H, D), "blocks.%d.mlp.fc1.weight", l)) ||
        (rc = tensor(ts, &b->fc1_b, SHAPE(H), "blocks.%d.mlp.fc1.bias", l)) ||
        (rc = tensor(ts, &b->fc2_w, SHAPE(D, H), "blocks.%d.mlp.fc2.weight", l)) ||
        (rc = tensor(ts, &b->fc2_b, SHAPE(D), "blocks.%d.mlp.fc2.bias", l)))
        return rc;
    if (cf->routing == MOEDIT_ROUTING_DMOE) {
        const float *w;
        if ((rc = tensor(ts, &b->rg_w, SHAPE(E, D), "routers.%d.f_gate.1.weight", l)) ||
            (rc = tensor(ts, &b->rg_b, SHAPE(E), "routers.%d.f_gate.1.bias", l)) ||
            (rc = tensor(ts, &w, SHAPE(E, D, D), "routers.%d.experts.w", l)) ||
            (rc = tensor(ts, &b->re_b, SHAPE(E, D), "routers.%d.experts.b", l)))
            return rc;
        if (!(b->re_wt = me_alloc((size_t)(E * D * D) * sizeof *b->re_wt))) return MOEDIT_EINTERNAL;
        for (int64_t e = 0; e < E; e++)
            for (int64_t i = 0; i < D; i++)
                for (int64_t o = 0; o < D; o++) b->re_wt[(e * D + o) * D + i] = w[(e * D + i) * D + o];
    } else if (cf->routing == MOEDIT_ROUTING_DTR) {
        if ((rc = tensor(ts, &b->unit_map, SHAPE(m->tasks, D), "routers.%d._unit_mapping", l))) return rc;
    }
    return MOEDIT_OK;
}

static int load_weights(moedit_model *m)
{
    const moedit_config *cf = &m->cfg;
    me_tensors *ts = m->ts;
    int64_t D = cf->hidden, C = cf->in_channels, p = cf->patch, T = m->tokens;
    int rc;
    if ((rc = tensor(ts, &m->xemb_w, SHAPE(D, C, p, p), "x_embedder.proj.weight")) ||
        (rc = tensor(ts, &m->xemb_b, SHAPE(D), "x_embedder.proj.bias")) ||
        (rc = me_tensors_f32_opt(ts, "pos_embed", SHAPE(1, T, D), &m->pos)) ||
        (rc = tensor(ts, &m->t0_w, SHAPE(D, DIT_FREQ_DIM), "t_embedder.mlp.0.weight")) ||
        (rc = tensor(ts, &m->t0_b, SHAPE(D), "t_embedder.mlp.0.bias")) ||
        (rc = tensor(ts, &m->t2_w, SHAPE(D, D), "t_embedder.mlp.2.weight")) ||
        (rc = tensor(ts, &m->t2_b, SHAPE(D), "t_embedder.mlp.2.bias")) ||
        (rc = tensor(ts, &m->ytab, SHAPE(m->table_rows, D), "y_embedder.embedding_table.weight")) ||
        (rc = tensor(ts, &m->fa_w, SHAPE(2 * D, D), "final_layer.adaLN_modulation.1.weight")) ||
        (rc = tensor(ts, &m->fa_b, SHAPE(2 * D), "final_layer.adaLN_modulation.1.bias")) ||
        (rc = tensor(ts, &m->fl_w, SHAPE(p * p * cf->out_channels, D), "final_layer.linear.weight")) ||
        (rc = tensor(ts, &m->fl_b, SHAPE(p * p * cf->out_channels), "final_layer.linear.bias")))
        return rc;
    if (!m->pos) {
        if (!(m->pos = m->pos_own = sincos_pos_embed(m->grid, cf->hidden))) return MOEDIT_EINTERNAL;
    }
    m->blocks = me_calloc((size_t)cf->depth, sizeof *m->blocks);
    if (!m->blocks) return MOEDIT_EINTERNAL;
    if (cf->family == MOEDIT_FAMILY_DIT_MOE) {
        m->expert_store = me_calloc((size_t)cf->depth * cf->num_experts, sizeof *m->expert_store);
        if (!m->expert_store) return MOEDIT_EINTERNAL;
    }
    for (int l = 0; l < cf->depth; l++)
        if ((rc = load_block(m, l))) return rc;
    return MOEDIT_OK;
}

int moedit_model_load(const char *path, const moedit_load_options *opt, moedit_model **out)
{
    *out = NULL;
    moedit_model *m = me_calloc(1, sizeof *m);
    if (!m) return MOEDIT_EINTERNAL;
    m->null_from = -1;
    int rc = me_tensors_open(path, &m->ts);
    if (!rc) rc = me_detect_config(m->ts, opt, &m->cfg);
    if (!rc) {
        const moedit_config *cf = &m->cfg;
        m->grid = cf->input_size / cf->patch;
        m->tokens = m->grid * m->grid;
        m->head_dim = cf->hidden / cf->heads;
        m->table_rows = (int)me_tensors_find(m->ts, "y_embedder.embedding_table.weight")->shape[0];
        /* Switch-DiT routers are tables over the training timesteps. */
        m->tasks = 1000;
        const me_tensor *tt = me_tensors_find(m->ts, cf->routing == MOEDIT_ROUTING_DTR
                                                         ? "routers.0._unit_mapping" : "full_time");
        if (tt && tt->ndim >= 1 && tt->shape[0] > 0 && tt->shape[0] < (1 << 24)) m->tasks = (int)tt->shape[0];
        rc = load_weights(m);
    }
    if (rc) {
        moedit_model_free(m);
        return rc;
    }
    *out = m;
    return MOEDIT_OK;
}

void moedit_model_free(moedit_model *m)
{
    if (!m) return;
    me_free_aligned(m->arena);
    for (int l = 0; m->blocks && l < m->cfg.depth; l++) free(m->blocks[l].re_wt);
    free(m->blocks);
    free(m->expert_store);
    free(m->pos_own);
    me_tensors_free(m->ts);
    free(m);
}

const moedit_config *moedit_model_config(const moedit_model *m) { return &m->cfg; }

void moedit_model_set_tracer(moedit_model *m, moedit_route_fn fn, void *user)
{
    m->trace = fn;
    m->trace_user = user;
}

void moedit_model_set_step(moedit_model *m, int step, int null_rows_from)
{
    m->step = step;
    m->null_from = null_rows_from;
}

/* Carves the arena: a first pass with base NULL only measures. */
static size_t carve(moedit_model *m, int n, char *base)
{
    const moedit_config *cf = &m->cfg;
    size_t nt = (size_t)n * m->tokens, D = cf->hidden, E = cf->num_experts > 0 ? cf->num_experts : 1;
    size_t k = cf->top_k > 0 ? cf->top_k : 1, ppc = (size_t)cf->patch * cf->patch;
    size_t wide = (size_t)(cf->mlp_hidden > cf->shared_hidden ? cf->mlp_hidden : cf->shared_hidden);
    size_t at = 0;
    dit_acts *a = &m->a;
#define TAKE(field, count)                                                       \
    do {                                                                         \
        if (base) a->field = (void *)(base + at);                                \
        at += ((count) * sizeof *a->field + 63) / 64 * 64;                       \
    } while (0)
    TAKE(patches, nt * ppc * cf->in_channels);
    TAKE(x, nt * D);
    TAKE(h, nt * D);
    TAKE(mask, cf->family == MOEDIT_FAMILY_SWITCH_DIT ? nt * D : 0);
    TAKE(xm, nt * D);
    TAKE(qkv, nt * 3 * D);
    TAKE(att, nt * D);
    TAKE(ff, nt * D);
    TAKE(mid, nt * 2 * wide);
    TAKE(gather, cf->num_experts ? nt * D : 0);
    TAKE(eout, cf->num_experts ? nt * D : 0);
    TAKE(probs, nt * E);
    TAKE(top_idx, nt * k);
    TAKE(top_w, nt * k);
    TAKE(order, nt * k);
    TAKE(count, E + 1);
    TAKE(tfreq, (size_t)n * DIT_FREQ_DIM);
    TAKE(temb, (size_t)n * D);
    TAKE(th, (size_t)n * D);
    TAKE(c, (size_t)n * D);
    TAKE(sc, (size_t)n * D);
    TAKE(st, (size_t)n * D);
    TAKE(mod, (size_t)n * 6 * D);
    TAKE(rprobs, (size_t)n * E);
    TAKE(out_tok, nt * ppc * cf->out_channels);
    TAKE(att_scratch, op_attention_scratch(m->tokens));
#undef TAKE
    return at;
}

int dit_reserve(moedit_model *m, int n)
{
    /* The attention scratch is per thread: a raised thread count regrows it. */
    if (n <= m->cap && m->a.att_scratch_floats >= op_attention_scratch(m->tokens)) return MOEDIT_OK;
    if (n < m->cap) n = m->cap;
    size_t bytes = carve(m, n, NULL);
    void *arena = me_alloc_aligned(bytes);
    if (!arena) return MOEDIT_EINTERNAL;
    me_free_aligned(m->arena);
    m->arena = arena;
    carve(m, n, arena);
    m->a.att_scratch_floats = op_attention_scratch(m->tokens);
    m->cap = n;
    return MOEDIT_OK;
}

double moedit_model_flops(const moedit_model *m, int n)
{
    const moedit_config *cf = &m->cfg;
    double N = n, T = m->tokens, NT = N * T, D = cf->hidden, ppc = (double)cf->patch * cf->patch;
    double f = 2 * NT * ppc * cf->in_channels * D;                   /* patch embedding */
    f += 2 * N * (DIT_FREQ_DIM * D + D * D);                          /* timestep MLP */
    f += 2 * NT * D * ppc * cf->out_channels + 2 * N * D * 2 * D;     /* final layer */
    double block = 2 * N * D * 6 * D                                  /* adaLN */
                 + 2 * NT * D * 4 * D                                 /* qkv + proj */
                 + 4 * N * T * T * D;                                 /* scores + weighted sum */
    if (cf->family == MOEDIT_FAMILY_DIT_MOE)
        block += 2 * NT * D * cf->num_experts                         /* gate */
               + cf->top_k * 2 * NT * 3 * D * cf->mlp_hidden          /* routed experts that run */
               + 2 * NT * 3 * D * cf->shared_hidden;                  /* shared expert */
    else
        block += 2 * NT * 2 * D * cf->mlp_hidden;
    if (cf->routing == MOEDIT_ROUTING_DMOE)
        block += 2 * N * D * cf->num_experts + cf->top_k * 2 * NT * D * D;
    return f + cf->depth * block;
}

/* Loading a transformer: config detection, then every weight fetched by
   name with its exact expected shape (so a wrong checkpoint fails naming
   the tensor), plus the activation arena, FLOP count and tracer hooks. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* The raw data of the tensor named name with shape dims, as a type
   me_gemm_pack_b reads: F32/BF16/F16 in place (no float32 copy of a
   half-precision checkpoint), anything else converted. */
static int raw_tensor(me_tensors *ts, const char *name, int ndim, const int64_t *dims, int *type, const void **data)
{
    const me_tensor *t = me_tensors_find(ts, name);
    int half = t && (t->dtype == ME_BF16 || t->dtype == ME_F16);
    if (!t || !(t->dtype == ME_F32 || half) || ((uintptr_t)t->data & (me_dtype_size(t->dtype) - 1))) {
        const float *f = NULL;
        int rc = me_tensors_f32(ts, name, ndim, dims, &f);   /* also names a missing tensor */
        *type = ME_GEMM_F32, *data = f;
        return rc;
    }
    if (t->ndim != ndim || memcmp(t->shape, dims, (size_t)ndim * sizeof *dims)) {
        char want[160], got[160];
        return me_fail(MOEDIT_EINPUT, "%s: expected %s, got %s", name, me_shape_str(ndim, dims, want, sizeof want),
                       me_shape_str(t->ndim, t->shape, got, sizeof got));
    }
    int rc = me_tensor_check_finite((me_tensor *)t, me_tensors_source(ts));
    if (rc) return rc;
    *type = t->dtype == ME_F32 ? ME_GEMM_F32 : t->dtype == ME_BF16 ? ME_GEMM_BF16 : ME_GEMM_F16;
    *data = t->data;
    return MOEDIT_OK;
}

/* Lets the kernel drop the pages of a tensor that now lives packed: clean
   file pages of the mapping are simply released (re-read if ever touched
   again), so the weights are resident once. */
static void release_pages(const void *data, size_t bytes)
{
#ifdef MADV_PAGEOUT
    uintptr_t lo = ((uintptr_t)data + 4095) & ~(uintptr_t)4095, hi = ((uintptr_t)data + bytes) & ~(uintptr_t)4095;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_PAGEOUT);
#else
    (void)data, (void)bytes;
#endif
}

/* A k×n packed matrix in the model's weight arena. */
static int new_pack(moedit_model *m, me_gemm_b *b, int k, int n, int bf16)
{
    void *mem = me_arena_alloc(&m->packs, me_gemm_b_bytes(k, n, bf16));
    if (!mem) return MOEDIT_EINTERNAL;
    me_gemm_b_init(b, mem, k, n, bf16);
    b->batch_invariant = &m->batch_invariant;
    return MOEDIT_OK;
}

/* Columns [col, col+cols) of b from the tensor name (shape dims): a PyTorch
   weight [cols, k] (trans 1) or, trans 0, a matrix [k, cols] starting
   `offset` elements in. */
static int pack_tensor(me_tensors *ts, me_gemm_b *b, int col, int cols, int trans, size_t offset, const char *name,
                       int ndim, const int64_t *dims)
{
    int type;
    const void *data;
    int rc = raw_tensor(ts, name, ndim, dims, &type, &data);
    if (rc) return rc;
    size_t esz = type == ME_GEMM_F32 ? 4 : 2, bytes = (size_t)cols * b->k * esz;
    const void *src = (const char *)data + offset * esz;
    me_gemm_pack_b(b, col, cols, trans, type, src, trans ? (size_t)b->k : (size_t)cols);
    release_pages(src, bytes);
    return MOEDIT_OK;
}

/* A PyTorch linear weight [out, in] named by fmt, packed as in → out. */
static int linear(moedit_model *m, me_gemm_b *b, int bf16, int64_t out, int64_t in, const char *fmt, ...)
    ME_PRINTF(6, 7);
static int linear(moedit_model *m, me_gemm_b *b, int bf16, int64_t out, int64_t in, const char *fmt, ...)
{
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int rc = new_pack(m, b, (int)in, (int)out, bf16);
    return rc ? rc : pack_tensor(m->ts, b, 0, (int)out, 1, 0, name, SHAPE(out, in));
}

/* A SwiGLU MLP of hidden width H under prefix ("blocks.3.moe.experts.5"). */
static int swiglu(moedit_model *m, dit_swiglu *x, int64_t H, int64_t D, const char *prefix)
{
    char name[160];
    int rc;
    x->hid = (int)H;
    x->chunk = me_gemm_k_chunk((int)H, m->bf16);
    if ((rc = new_pack(m, &x->gate_up, (int)D, (int)(2 * H), m->bf16))) return rc;
    for (int64_t c0 = 0; c0 < H; c0 += x->chunk) {
        snprintf(name, sizeof name, "%s.gate_proj.weight", prefix);
        if ((rc = pack_tensor(m->ts, &x->gate_up, (int)(2 * c0), x->chunk, 1, (size_t)(c0 * D), name, SHAPE(H, D))))
            return rc;
        snprintf(name, sizeof name, "%s.up_proj.weight", prefix);
        if ((rc = pack_tensor(m->ts, &x->gate_up, (int)(2 * c0 + x->chunk), x->chunk, 1, (size_t)(c0 * D), name,
                              SHAPE(H, D))))
            return rc;
    }
    return linear(m, &x->down, m->bf16, D, H, "%s.down_proj.weight", prefix);
}

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
    int bf = m->bf16, rc;
    char name[160];
    if ((rc = linear(m, &b->ada, bf, 6 * D, D, "blocks.%d.adaLN_modulation.1.weight", l)) ||
        (rc = tensor(ts, &b->ada_b, SHAPE(6 * D), "blocks.%d.adaLN_modulation.1.bias", l)))
        return rc;

    if (cf->attention == MOEDIT_ATTN_QKNORM) {
        int64_t hd = m->head_dim;
        if ((rc = linear(m, &b->qkv, bf, 3 * D, D, "blocks.%d.attn.Wqkv.weight", l)) ||
            (rc = tensor(ts, &b->qkv_b, SHAPE(3 * D), "blocks.%d.attn.Wqkv.bias", l)) ||
            (rc = tensor(ts, &b->qn_w, SHAPE(hd), "blocks.%d.attn.q_norm.weight", l)) ||
            (rc = tensor(ts, &b->qn_b, SHAPE(hd), "blocks.%d.attn.q_norm.bias", l)) ||
            (rc = tensor(ts, &b->kn_w, SHAPE(hd), "blocks.%d.attn.k_norm.weight", l)) ||
            (rc = tensor(ts, &b->kn_b, SHAPE(hd), "blocks.%d.attn.k_norm.bias", l)) ||
            (rc = linear(m, &b->proj, bf, D, D, "blocks.%d.attn.out_proj.weight", l)) ||
            (rc = tensor(ts, &b->proj_b, SHAPE(D), "blocks.%d.attn.out_proj.bias", l)))
            return rc;
    } else {
        if ((rc = linear(m, &b->qkv, bf, 3 * D, D, "blocks.%d.attn.qkv.weight", l)) ||
            (rc = tensor(ts, &b->qkv_b, SHAPE(3 * D), "blocks.%d.attn.qkv.bias", l)) ||
            (rc = linear(m, &b->proj, bf, D, D, "blocks.%d.attn.proj.weight", l)) ||
            (rc = tensor(ts, &b->proj_b, SHAPE(D), "blocks.%d.attn.proj.bias", l)))
            return rc;
    }

    if (cf->family == MOEDIT_FAMILY_DIT_MOE) {
        if ((rc = linear(m, &b->gate, 0, E, D, "blocks.%d.moe.gate.weight", l))) return rc;
        b->experts = m->expert_store + (size_t)l * E;
        for (int e = 0; e < E; e++) {
            snprintf(name, sizeof name, "blocks.%d.moe.experts.%d", l, e);
            if ((rc = swiglu(m, &b->experts[e], H, D, name))) return rc;
        }
        if (cf->shared_hidden) {
            snprintf(name, sizeof name, "blocks.%d.moe.shared_experts", l);
            if ((rc = swiglu(m, &b->shared, cf->shared_hidden, D, name))) return rc;
        }
        return MOEDIT_OK;
    }

    if ((rc = linear(m, &b->fc1, bf, H, D, "blocks.%d.mlp.fc1.weight", l)) ||
        (rc = tensor(ts, &b->fc1_b, SHAPE(H), "blocks.%d.mlp.fc1.bias", l)) ||
        (rc = linear(m, &b->fc2, bf, D, H, "blocks.%d.mlp.fc2.weight", l)) ||
        (rc = tensor(ts, &b->fc2_b, SHAPE(D), "blocks.%d.mlp.fc2.bias", l)))
        return rc;
    if (cf->routing == MOEDIT_ROUTING_DMOE) {
        if ((rc = linear(m, &b->rg, 0, E, D, "routers.%d.f_gate.1.weight", l)) ||
            (rc = tensor(ts, &b->rg_b, SHAPE(E), "routers.%d.f_gate.1.bias", l)) ||
            (rc = tensor(ts, &b->re_b, SHAPE(E, D), "routers.%d.experts.b", l)))
            return rc;
        if (!(b->re = me_calloc((size_t)E, sizeof *b->re))) return MOEDIT_EINTERNAL;
        snprintf(name, sizeof name, "routers.%d.experts.w", l);
        for (int64_t e = 0; e < E; e++)
            if ((rc = new_pack(m, &b->re[e], (int)D, (int)D, bf)) ||
                (rc = pack_tensor(ts, &b->re[e], 0, (int)D, 0, (size_t)(e * D * D), name, SHAPE(E, D, D))))
                return rc;
    } else if (cf->routing == MOEDIT_ROUTING_DTR) {
        if ((rc = tensor(ts, &b->unit_map, SHAPE(m->tasks, D), "routers.%d._unit_mapping", l))) return rc;
    }
    return MOEDIT_OK;
}

/* pos_embed [1, T, D], or the sin-cos table when the checkpoint has none. */
static int load_pos(moedit_model *m)
{
    int64_t D = m->cfg.hidden, T = m->tokens;
    int rc = me_tensors_f32_opt(m->ts, "pos_embed", SHAPE(1, T, D), &m->pos);
    if (!rc && !m->pos && !(m->pos = m->pos_own = sincos_pos_embed(m->grid, m->cfg.hidden))) return MOEDIT_EINTERNAL;
    return rc;
}

static int load_weights(moedit_model *m)
{
    const moedit_config *cf = &m->cfg;
    me_tensors *ts = m->ts;
    int64_t D = cf->hidden, C = cf->in_channels, p = cf->patch;
    int rc;
    if ((rc = new_pack(m, &m->xemb, (int)(C * p * p), (int)D, 0)) ||
        (rc = pack_tensor(ts, &m->xemb, 0, (int)D, 1, 0, "x_embedder.proj.weight", SHAPE(D, C, p, p))) ||
        (rc = tensor(ts, &m->xemb_b, SHAPE(D), "x_embedder.proj.bias")) ||
        (rc = linear(m, &m->t0, 0, D, DIT_FREQ_DIM, "t_embedder.mlp.0.weight")) ||
        (rc = tensor(ts, &m->t0_b, SHAPE(D), "t_embedder.mlp.0.bias")) ||
        (rc = linear(m, &m->t2, 0, D, D, "t_embedder.mlp.2.weight")) ||
        (rc = tensor(ts, &m->t2_b, SHAPE(D), "t_embedder.mlp.2.bias")) ||
        (rc = tensor(ts, &m->ytab, SHAPE(m->table_rows, D), "y_embedder.embedding_table.weight")) ||
        (rc = linear(m, &m->fa, m->bf16, 2 * D, D, "final_layer.adaLN_modulation.1.weight")) ||
        (rc = tensor(ts, &m->fa_b, SHAPE(2 * D), "final_layer.adaLN_modulation.1.bias")) ||
        (rc = linear(m, &m->fl, 0, p * p * cf->out_channels, D, "final_layer.linear.weight")) ||
        (rc = tensor(ts, &m->fl_b, SHAPE(p * p * cf->out_channels), "final_layer.linear.bias")))
        return rc;
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
    int rc = opt ? moedit_device_check(opt->device) : MOEDIT_OK;   /* before any file is read */
    if (rc) return rc;
    char resolved[4096];
    if (moedit_model_path(path, resolved, sizeof resolved)) return MOEDIT_EINPUT;
    path = resolved;
    moedit_model *m = me_calloc(1, sizeof *m);
    if (!m) return MOEDIT_EINTERNAL;
    m->null_from = -1;
    m->bf16 = opt && opt->bf16;
    int was = me_verify_suspend(opt && opt->no_verify);
    rc = me_tensors_open(path, &m->ts);
    me_verify_suspend(was);
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
        rc = load_pos(m);
        if (!rc && opt && opt->device.kind != MOEDIT_DEVICE_CPU) {
            rc = dit_gpu_load(m, opt);
        } else if (!rc) {
            /* the packed weights are a copy of every parameter (the mapping's pages are dropped) */
            rc = me_memory_check((double)me_tensors_param_count(m->ts) * (m->bf16 ? 2 : 4), "the model's weights");
            if (!rc) rc = load_weights(m);
        }
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
    dit_gpu_free(m);
    me_free_aligned(m->arena);
    for (int l = 0; m->blocks && l < m->cfg.depth; l++) free(m->blocks[l].re);
    me_arena_free(&m->packs);
    free(m->blocks);
    free(m->expert_store);
    free(m->pos_own);
    me_tensors_free(m->ts);
    free(m);
}

const moedit_config *moedit_model_config(const moedit_model *m) { return &m->cfg; }

int moedit_model_digest(moedit_model *m, uint32_t *crc)
{
    if (m->ts) return me_tensors_digest(m->ts, crc);
    *crc = m->gpu_digest;
    return MOEDIT_OK;
}

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
    int moe = cf->family == MOEDIT_FAMILY_DIT_MOE;
    TAKE(mid, moe ? dit_moe_mid_floats(cf, nt) : nt * 2 * wide);
    TAKE(eout, moe ? nt * k * D : 0);
    TAKE(shared_out, moe ? nt * D : 0);
    TAKE(probs, nt * E);
    TAKE(top_idx, nt * k);
    TAKE(top_w, nt * k);
    TAKE(slot_pos, nt * k);
    TAKE(slot_token, nt * k);
    TAKE(items, moe ? DIT_ITEM_INTS * ((nt * k + nt) / DIT_ITEM_ROWS + E + 1) : 0);
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
    TAKE(att_scratch, op_attention_scratch(n, m->tokens, cf->heads, m->head_dim));
#undef TAKE
    return at;
}

int dit_reserve(moedit_model *m, int n)
{
    /* Some buffers are per thread: a raised thread count regrows them. */
    if (n <= m->cap && m->a.threads >= me_threads_max()) return MOEDIT_OK;
    if (n < m->cap) n = m->cap;
    /* the arena's big terms in double first: crafted shapes must not wrap carve's size_t sums */
    const moedit_config *cf = &m->cfg;
    double nt = (double)n * m->tokens, k = cf->top_k > 0 ? cf->top_k : 1, E = cf->num_experts > 0 ? cf->num_experts : 1;
    int moe = cf->family == MOEDIT_FAMILY_DIT_MOE;
    double wide = cf->mlp_hidden > cf->shared_hidden ? cf->mlp_hidden : cf->shared_hidden;
    double rough = 4 * nt * (10.0 * cf->hidden + (moe ? 0 : 2 * wide) + 4 * E + 6 * k +
                             (double)cf->patch * cf->patch * (cf->in_channels + cf->out_channels)) +
                   (moe ? 4.0 * dit_moe_mid_floats(cf, (size_t)nt) : 0);
    char what[96];
    snprintf(what, sizeof what, "the activations of %d rows", n);
    int rc = me_memory_check(rough, what);
    if (rc) return rc;
    size_t bytes = carve(m, n, NULL);
    if ((rc = me_memory_check((double)bytes, what))) return rc;
    void *arena = me_alloc_aligned(bytes);
    if (!arena) return MOEDIT_EINTERNAL;
    me_free_aligned(m->arena);
    m->arena = arena;
    carve(m, n, arena);
    m->a.threads = me_threads_max();
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

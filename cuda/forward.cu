/* The transformer forward on the GPU, step for step dit/forward.c (and the
   routing of dit/moe.c): patch + position embedding, timestep and label
   conditioning, the blocks (Switch-DiT: each behind its router's channel
   mask), the final adaLN layer and unpatchify. All matrix products are
   cuBLAS; DiT-MoE's experts are two grouped GEMMs over the tokens sorted
   by expert, the shared expert one more group of the same launch. The
   activations live in one device allocation, grown before a forward and
   never inside it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cuda/internal.cuh"

static const float one = 1.0f, zero = 0.0f;

/* Carves the arena for n rows: a first pass with base NULL only measures. */
static size_t carve(mc_model *g, int n, char *base)
{
    const moedit_config *cf = &g->cfg;
    size_t nt = (size_t)n * g->tokens, D = cf->hidden, E = cf->num_experts > 0 ? cf->num_experts : 1;
    size_t k = cf->top_k > 0 ? cf->top_k : 1, ppc = (size_t)cf->patch * cf->patch, S = cf->input_size;
    size_t H = cf->mlp_hidden, SH = cf->shared_hidden, act = mc_act_size(g);
    int moe = cf->family == MOEDIT_FAMILY_DIT_MOE, sw = cf->family == MOEDIT_FAMILY_SWITCH_DIT;
    int dmoe = cf->routing == MOEDIT_ROUTING_DMOE;
    size_t at = 0;
    mc_acts *a = &g->a;
#define TAKE(field, bytes)                                                   \
    do {                                                                     \
        if (base) a->field = (decltype(a->field))(base + at);                \
        at += ((bytes) + 255) / 256 * 256;                                   \
    } while (0)
    TAKE(xin, (size_t)n * cf->in_channels * S * S * 4);
    TAKE(out, (size_t)n * cf->out_channels * S * S * 4);
    TAKE(t, (size_t)n * 4);
    TAKE(y, (size_t)n * 8);
    TAKE(patches, nt * ppc * cf->in_channels * 4);
    TAKE(x, nt * D * 4);
    TAKE(h, sw ? nt * D * 4 : 0);
    TAKE(mask, sw ? nt * D * 4 : 0);
    TAKE(xm, nt * D * 4);
    TAKE(qkv, nt * 3 * D * 4);
    TAKE(att, nt * D * 4);
    TAKE(ff, nt * D * 4);
    size_t T = g->tokens, pairs = (size_t)n * cf->heads, per = g->score_bytes / (T * T * 4);
    size_t att_pairs = pairs < per ? pairs : per > 0 ? per : 1;
    if (base) g->att_pairs = (int)att_pairs;   /* only with the arena it sizes */
    TAKE(qh, g->fp32 ? 0 : nt * 3 * D * 2);
    TAKE(scores, g->fp32 ? 0 : att_pairs * T * T * 4);
    TAKE(probs16, g->fp32 ? 0 : att_pairs * T * T * 2);
    TAKE(mid, moe ? 0 : nt * H * 4);
    TAKE(xact, g->fp32 ? 0 : nt * (D > H ? D : H) * 2);
    TAKE(probs, moe ? nt * E * 4 : 0);
    TAKE(top_idx, moe ? nt * k * 4 : 0);
    TAKE(top_w, moe ? nt * k * 4 : 0);
    TAKE(slot_pos, moe ? nt * k * 4 : 0);
    TAKE(slot_token, moe ? nt * k * 4 : 0);
    TAKE(count, E * 4);
    TAKE(start, E * 4);
    TAKE(xg, moe ? nt * k * D * act : 0);
    TAKE(emid, moe ? nt * k * 2 * H * act : 0);
    TAKE(eout, moe ? nt * k * D * act : 0);
    TAKE(smid, moe ? nt * 2 * SH * act : 0);
    TAKE(sout, moe ? nt * D * act : 0);
    size_t nptr = 6 * (E + 1) > 3 * (size_t)n * k ? 6 * (E + 1) : 3 * (size_t)n * k;
    TAKE(ptrs, nptr * sizeof(void *));
    TAKE(tfreq, (size_t)n * MC_FREQ_DIM * 4);
    TAKE(temb, (size_t)n * D * 4);
    TAKE(th, (size_t)n * D * 4);
    TAKE(c, (size_t)n * D * 4);
    TAKE(sc, (size_t)n * D * 4);
    TAKE(st, (size_t)n * D * 4);
    TAKE(mod, (size_t)n * 6 * D * 4);
    TAKE(rprobs, dmoe ? (size_t)n * E * 4 : 0);
    TAKE(ridx, dmoe ? (size_t)n * k * 4 : 0);
    TAKE(rw, dmoe ? (size_t)n * k * 4 : 0);
    TAKE(ry, dmoe ? (size_t)n * k * g->tokens * D * 4 : 0);
    TAKE(out_tok, nt * ppc * cf->out_channels * 4);
#undef TAKE
    return at;
}

static int reserve(mc_model *g, int n)
{
    if (n <= g->cap) return MOEDIT_OK;
    size_t bytes = carve(g, n, NULL), E = g->cfg.num_experts > 0 ? g->cfg.num_experts : 1;
    size_t k = g->cfg.top_k > 0 ? g->cfg.top_k : 1, rows = (size_t)n * g->tokens;
    void *arena, *routes;
    MC_CHECK(cudaStreamSynchronize(g->stream));
    MC_CHECK(cudaMallocHost(&routes, rows * k * (sizeof(int) + sizeof(float)) + (size_t)n * E * sizeof(float)));
    cudaFreeHost(g->host_routes);
    g->host_routes = routes;
    MC_CHECK(cudaMalloc(&arena, bytes));
    cudaFree(g->arena);
    g->arena = arena;
    carve(g, n, (char *)arena);
    g->cap = n;
    return MOEDIT_OK;
}

static cudaDataType act_type(const mc_model *g) { return g->fp32 ? CUDA_R_32F : CUDA_R_16BF; }

/* y[rows, out] = x[rows, in]·Wᵀ + b: x float32; a bfloat16 weight gets x
   rounded to bfloat16 first (a.xact), products accumulate in float32. */
static int linear(mc_model *g, long rows, const float *x, const mc_linear *L, float *y)
{
    const void *a = x;
    cudaDataType t = CUDA_R_32F;
    if (L->bf16) {
        mc_to_bf16(g->stream, (size_t)rows * L->in, x, g->a.xact);
        a = g->a.xact, t = CUDA_R_16BF;
    }
    MC_BLAS(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, L->out, (int)rows, L->in, &one, L->w, t, L->in, a, t,
                         L->in, &zero, y, CUDA_R_32F, L->out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (L->b) mc_add_bias(g->stream, rows, L->out, L->b, y);
    return MOEDIT_OK;
}

/* x [n, C, H, W] → patches → a.x = patches·W + b + pos. */
static int embed_patches(mc_model *g, int n)
{
    const moedit_config *cf = &g->cfg;
    mc_acts *a = &g->a;
    long NT = (long)n * g->tokens;
    mc_patchify(g->stream, n, cf->in_channels, cf->input_size, cf->patch, a->xin, a->patches);
    int rc = linear(g, NT, a->patches, &g->xemb, a->x);
    if (!rc) mc_add_pos(g->stream, NT, g->tokens, cf->hidden, g->pos, a->x);
    return rc;
}

/* c = t_embedder(t) + embedding_table[y], and SiLU(c) for every adaLN. */
static int embed_condition(mc_model *g, int n)
{
    mc_acts *a = &g->a;
    int D = g->cfg.hidden, rc;
    mc_timestep_embedding(g->stream, n, a->t, a->tfreq);
    if ((rc = linear(g, n, a->tfreq, &g->t0, a->th))) return rc;
    mc_silu(g->stream, (size_t)n * D, a->th, a->th);
    if ((rc = linear(g, n, a->th, &g->t2, a->temb))) return rc;
    mc_add_label(g->stream, n, D, a->temb, g->ytab, a->y, a->c);
    mc_silu(g->stream, (size_t)n * D, a->c, a->sc);
    if (g->cfg.routing == MOEDIT_ROUTING_DMOE) mc_silu(g->stream, (size_t)n * D, a->temb, a->st);
    return MOEDIT_OK;
}

/* a.att = softmax(q·kᵀ/√hd)·v on the tensor cores, bf16 operands and
   float32 sums: per batch of (row, head) pairs, the scores as one strided
   batched product (cuBLAS's column-major Kᵀ·Q, whose columns are the
   queries' rows of S), each row's softmax (float32, stored as bf16), then
   O = P·V (column-major V·P), head-major into a.ff (free until the output
   projection), merged into a.att. */
static int attention_tensor_cores(mc_model *g, int n)
{
    mc_acts *a = &g->a;
    int T = g->tokens, hd = g->head_dim, heads = g->cfg.heads;
    long NT = (long)n * T, pairs = (long)n * heads;
    size_t D = g->cfg.hidden, head = (size_t)T * hd, tt = (size_t)T * T;
    const bf16 *q = (const bf16 *)a->qh, *k = q + NT * D, *v = k + NT * D;
    float scale = 1.0f / sqrtf((float)hd);
    mc_split_heads(g->stream, n, T, heads, hd, a->qkv, a->qh);
    for (long p0 = 0; p0 < pairs; p0 += g->att_pairs) {
        int cnt = (int)(pairs - p0 < g->att_pairs ? pairs - p0 : g->att_pairs);
        MC_BLAS(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &scale, k + p0 * head, CUDA_R_16BF,
                                           hd, head, q + p0 * head, CUDA_R_16BF, hd, head, &zero, a->scores, CUDA_R_32F,
                                           T, tt, cnt, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        mc_softmax_rows(g->stream, (long)cnt * T, T, a->scores, a->probs16);
        MC_BLAS(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &one, v + p0 * head, CUDA_R_16BF,
                                           hd, head, a->probs16, CUDA_R_16BF, T, tt, &zero, a->ff + p0 * head,
                                           CUDA_R_32F, hd, head, cnt, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    mc_merge_heads(g->stream, n, T, heads, hd, a->ff, a->att);
    return MOEDIT_OK;
}

/* a.ff = attn(a.xm): timm Attention, or the qk-norm variant. float32
   (TF32 off) keeps the CUDA-core kernel, whose sums follow the CPU's. */
static int attention(mc_model *g, const mc_block *b, int n)
{
    const moedit_config *cf = &g->cfg;
    mc_acts *a = &g->a;
    long NT = (long)n * g->tokens;
    int rc = linear(g, NT, a->xm, &b->qkv, a->qkv);
    if (rc) return rc;
    if (cf->attention == MOEDIT_ATTN_QKNORM)
        mc_qk_layernorm(g->stream, NT, cf->heads, g->head_dim, cf->hidden, a->qkv, b->qn_w, b->qn_b, b->kn_w, b->kn_b);
    if (g->fp32)
        mc_attention(g->stream, n, g->tokens, cf->heads, g->head_dim, a->qkv, a->att);
    else if ((rc = attention_tensor_cores(g, n)))
        return rc;
    return linear(g, NT, a->att, &b->proj, a->ff);
}

/* a.ff = fc2(GELU_tanh(fc1(a.xm))). */
static int mlp(mc_model *g, const mc_block *b, int n)
{
    mc_acts *a = &g->a;
    long NT = (long)n * g->tokens;
    int rc = linear(g, NT, a->xm, &b->fc1, a->mid);
    if (rc) return rc;
    mc_gelu_tanh(g->stream, (size_t)NT * g->cfg.mlp_hidden, a->mid);
    return linear(g, NT, a->mid, &b->fc2, a->ff);
}

/* One grouped GEMM over `groups` problems C = op(A)·B with A a weight
   [m, k] (PyTorch layout, so op T) and B rows of k: the pointer arrays go
   from pinned host memory slice `slot` to the device in one copy. */
static int grouped_gemm(mc_model *g, int slot, int groups, const int *m, const int *nn, const int *k, const void **A,
                        const int *lda, const void **B, const int *ldb, void **C, const int *ldc)
{
    int E1 = (g->cfg.num_experts > 0 ? g->cfg.num_experts : 1) + 1;
    const void **host = g->host_ptrs + (size_t)slot * 3 * E1, **dev = g->a.ptrs + (size_t)slot * 3 * E1;
    memcpy(host, A, groups * sizeof *A);
    memcpy(host + E1, B, groups * sizeof *B);
    memcpy(host + 2 * E1, C, groups * sizeof *C);
    MC_CHECK(cudaMemcpyAsync(dev, host, 3 * E1 * sizeof *host, cudaMemcpyHostToDevice, g->stream));
    cublasOperation_t ta[64], tb[64];
    float al[64], be[64];
    int sizes[64];
    for (int i = 0; i < groups; i++) ta[i] = CUBLAS_OP_T, tb[i] = CUBLAS_OP_N, al[i] = 1.0f, be[i] = 0.0f, sizes[i] = 1;
    cudaDataType t = act_type(g);
    if (!g->ungrouped) {
        cublasStatus_t st = cublasGemmGroupedBatchedEx(g->blas, ta, tb, m, nn, k, al, dev, t, lda, dev + E1, t, ldb, be,
                                                       (void *const *)(dev + 2 * E1), t, ldc, groups, sizes,
                                                       CUBLAS_COMPUTE_32F);
        if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
            MC_BLAS(st);
            return MOEDIT_OK;
        }
        /* This cuBLAS or GPU lacks the grouped GEMM for these types: one
           product per group from now on (same results, more launches). */
        g->ungrouped = 1;
    }
    for (int i = 0; i < groups; i++)
        MC_BLAS(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, m[i], nn[i], k[i], &one, A[i], t, lda[i], B[i], t,
                             ldb[i], &zero, C[i], t, ldc[i], CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return MOEDIT_OK;
}

/* Enqueues the copies of one layer's decisions (rows × k, plus probs
   [rows, E] when given) into the pinned route buffer; the caller
   synchronises, then calls report_routes. */
static int copy_routes(mc_model *g, long rows, int k, const int *idx, const float *w, const float *probs, int E)
{
    int *hi = (int *)g->host_routes;
    float *hw = (float *)(hi + rows * k), *hp = hw + rows * k;
    MC_CHECK(cudaMemcpyAsync(hi, idx, (size_t)rows * k * sizeof *hi, cudaMemcpyDeviceToHost, g->stream));
    MC_CHECK(cudaMemcpyAsync(hw, w, (size_t)rows * k * sizeof *hw, cudaMemcpyDeviceToHost, g->stream));
    if (probs) MC_CHECK(cudaMemcpyAsync(hp, probs, (size_t)rows * E * sizeof *hp, cudaMemcpyDeviceToHost, g->stream));
    return MOEDIT_OK;
}

static void report_routes(mc_model *g, int l, long rows, int k, int with_probs)
{
    const int *hi = (const int *)g->host_routes;
    const float *hw = (const float *)(hi + rows * k);
    g->route(g->route_user, l, hi, hw, with_probs ? hw + rows * k : NULL);
}

/* DiT-MoE feed-forward (dit/moe.c dit_moe_ffn): gate, softmax, top-k, a
   counting sort of the (token, choice) slots by expert, the gathered rows
   through gate_up then down as two grouped GEMMs (each expert one group
   over its own rows; the shared expert one more group over all tokens),
   SwiGLU in between, and the weighted sum in ascending expert order. The
   group sizes come to the host: one synchronisation per MoE layer. */
static int moe_ffn(mc_model *g, int l, int n)
{
    const mc_block *b = &g->blocks[l];
    const moedit_config *cf = &g->cfg;
    mc_acts *a = &g->a;
    cudaStream_t s = g->stream;
    long NT = (long)n * g->tokens;
    int E = cf->num_experts, k = cf->top_k, D = cf->hidden, H = cf->mlp_hidden, SH = cf->shared_hidden;
    size_t esz = mc_act_size(g);
    if (E + 1 > 64) return me_fail(MOEDIT_EINPUT, "CUDA: at most 63 experts per layer, not %d", E);
    int rc = linear(g, NT, a->xm, &b->gate, a->probs);
    if (rc) return rc;
    mc_softmax_top_k(s, NT, E, k, a->probs, a->top_idx, a->top_w);
    mc_moe_count(s, NT * k, E, a->top_idx, a->count);
    MC_CHECK(cudaMemcpyAsync(g->host_count, a->count, (size_t)E * sizeof(int), cudaMemcpyDeviceToHost, s));
    if (g->route && (rc = copy_routes(g, NT, k, a->top_idx, a->top_w, NULL, E))) return rc;
    MC_CHECK(cudaStreamSynchronize(s));
    if (g->route) report_routes(g, l, NT, k, 0);
    int *cnt = g->host_count, *start = g->host_count + E;
    for (int e = 0, at = 0; e < E; e++) start[e] = at, at += cnt[e];
    MC_CHECK(cudaMemcpyAsync(a->start, start, (size_t)E * sizeof(int), cudaMemcpyHostToDevice, s));
    mc_moe_place(s, NT * k, E, k, a->top_idx, a->start, a->slot_pos, a->slot_token);
    mc_moe_gather(s, NT * k, D, a->xm, a->slot_token, a->xg, g->fp32);
    const void *xs = a->xm;   /* the shared expert reads every token */
    if (SH && !g->fp32) {
        mc_to_bf16(s, (size_t)NT * D, a->xm, a->xact);
        xs = a->xact;
    }

    int m1[64], n1[64], k1[64], lda1[64], ldb1[64], ldc1[64], m2[64], k2[64], lda2[64], ldb2[64], ldc2[64];
    const void *A1[64], *B1[64], *A2[64], *B2[64];
    void *C1[64], *C2[64];
    int groups = 0;
    for (int e = 0; e < E + (SH ? 1 : 0); e++) {
        int shared = e == E, rows = shared ? (int)NT : cnt[e], hid = shared ? SH : H;
        if (!rows) continue;
        size_t r0 = shared ? 0 : (size_t)start[e];
        int i = groups++;
        m1[i] = 2 * hid, n1[i] = rows, k1[i] = D, lda1[i] = D, ldb1[i] = D, ldc1[i] = 2 * hid;
        A1[i] = shared ? b->sh_gate_up : (const char *)b->gate_up + (size_t)e * 2 * H * D * esz;
        B1[i] = shared ? xs : (const char *)a->xg + r0 * D * esz;
        C1[i] = shared ? a->smid : (char *)a->emid + r0 * 2 * H * esz;
        m2[i] = D, k2[i] = hid, lda2[i] = hid, ldb2[i] = 2 * hid, ldc2[i] = D;
        A2[i] = shared ? b->sh_down : (const char *)b->down + (size_t)e * D * H * esz;
        B2[i] = C1[i];   /* the SwiGLU result sits in the gate half, row stride 2·hid */
        C2[i] = shared ? a->sout : (char *)a->eout + r0 * D * esz;
    }
    if ((rc = grouped_gemm(g, 0, groups, m1, n1, k1, A1, lda1, B1, ldb1, C1, ldc1))) return rc;
    mc_swiglu(s, NT * k, H, a->emid, g->fp32);
    if (SH) mc_swiglu(s, NT, SH, a->smid, g->fp32);
    if ((rc = grouped_gemm(g, 1, groups, m2, n1, k2, A2, lda2, B2, ldb2, C2, ldc2))) return rc;
    mc_moe_combine(s, NT, D, k, a->top_idx, a->top_w, a->slot_pos, a->eout, SH ? a->sout : NULL, a->ff, g->fp32);
    return MOEDIT_OK;
}

/* Switch-DiT router of block l (dit/moe.c dit_switch_mask) into a.mask. */
static int switch_mask(mc_model *g, int l, int n)
{
    const mc_block *b = &g->blocks[l];
    const moedit_config *cf = &g->cfg;
    mc_acts *a = &g->a;
    cudaStream_t s = g->stream;
    int T = g->tokens, D = cf->hidden, E = cf->num_experts, k = cf->top_k;
    if (cf->routing == MOEDIT_ROUTING_DTR) {
        mc_switch_dtr_mask(s, n, T, D, b->unit_map, a->t, a->mask);
        return MOEDIT_OK;
    }
    /* DMoE: the gate sees only SiLU(t_emb); the chosen experts' affine maps
       of each row's tokens, weighted by their probabilities, plus 1. */
    int rc = linear(g, n, a->st, &b->rg, a->rprobs);
    if (rc) return rc;
    mc_softmax_top_k(s, n, E, k, a->rprobs, a->ridx, a->rw);
    if (g->route) {
        if ((rc = copy_routes(g, n, k, a->ridx, a->rw, a->rprobs, E))) return rc;
        MC_CHECK(cudaStreamSynchronize(s));
        report_routes(g, l, n, k, 1);
    }
    const void *xs = a->x;
    if (!g->fp32) {
        mc_to_bf16(s, (size_t)n * T * D, a->x, a->xact);
        xs = a->xact;
    }
    mc_switch_pointers(s, n, k, T, D, a->ridx, b->re, xs, a->ry, a->ptrs, g->fp32);
    cudaDataType t = act_type(g);
    MC_BLAS(cublasGemmBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, D, T, D, &one, a->ptrs, t, D, a->ptrs + n * k, t, D,
                                &zero, (void *const *)(a->ptrs + 2 * n * k), CUDA_R_32F, D, n * k, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
    mc_switch_dmoe_mask(s, n, k, T, D, a->ridx, a->rw, a->ry, b->re_b, a->mask);
    return MOEDIT_OK;
}

/* One adaLN-Zero block on the stream h (a.x, or x⊙m for Switch-DiT). */
static int block(mc_model *g, int l, int n, float *h)
{
    const mc_block *b = &g->blocks[l];
    mc_acts *a = &g->a;
    long NT = (long)n * g->tokens;
    int D = g->cfg.hidden, T = g->tokens, rc;
    /* shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp */
    if ((rc = linear(g, n, a->sc, &b->ada, a->mod))) return rc;
    mc_layernorm_modulate(g->stream, NT, D, h, a->mod, 0, 1, T, 6, a->xm);
    if ((rc = attention(g, b, n))) return rc;
    mc_gated_residual_layernorm_modulate(g->stream, NT, D, h, a->mod, 2, a->ff, 3, 4, T, a->xm);
    rc = g->cfg.family == MOEDIT_FAMILY_DIT_MOE ? moe_ffn(g, l, n) : mlp(g, b, n);
    if (rc) return rc;
    mc_gated_residual(g->stream, NT, D, h, a->mod, 5, T, a->ff);
    return MOEDIT_OK;
}

/* Switch-DiT: the block runs on x⊙m and x = y + (1 − m)⊙x. */
static int routed_block(mc_model *g, int l, int n)
{
    mc_acts *a = &g->a;
    size_t len = (size_t)n * g->tokens * g->cfg.hidden;
    int rc = switch_mask(g, l, n);
    if (rc) return rc;
    mc_switch_enter(g->stream, len, a->x, a->mask, a->h);
    if ((rc = block(g, l, n, a->h))) return rc;
    mc_switch_leave(g->stream, len, a->h, a->mask, a->x);
    return MOEDIT_OK;
}

/* Final adaLN layer, then tokens → a.out [n, outC, S, S]. */
static int final_layer(mc_model *g, int n)
{
    const moedit_config *cf = &g->cfg;
    mc_acts *a = &g->a;
    long NT = (long)n * g->tokens;
    int rc = linear(g, n, a->sc, &g->fa, a->mod);
    if (rc) return rc;
    mc_layernorm_modulate(g->stream, NT, cf->hidden, a->x, a->mod, 0, 1, g->tokens, 2, a->xm);
    if ((rc = linear(g, NT, a->xm, &g->fl, a->out_tok))) return rc;
    mc_unpatchify(g->stream, n, cf->out_channels, cf->input_size, cf->patch, a->out_tok, a->out);
    return MOEDIT_OK;
}

extern "C" int mc_model_forward(mc_model *g, int n, const float *x, const float *t, const int64_t *y, float *out,
                                mc_route_fn route, void *user)
{
    g->route = route, g->route_user = user;
    const moedit_config *cf = &g->cfg;
    size_t S2 = (size_t)cf->input_size * cf->input_size;
    MC_CHECK(cudaSetDevice(g->device));
    int rc = reserve(g, n);
    if (rc) return rc;
    mc_acts *a = &g->a;
    cudaStream_t s = g->stream;
    MC_CHECK(cudaMemcpyAsync(a->xin, x, (size_t)n * cf->in_channels * S2 * sizeof *x, cudaMemcpyHostToDevice, s));
    MC_CHECK(cudaMemcpyAsync(a->t, t, (size_t)n * sizeof *t, cudaMemcpyHostToDevice, s));
    MC_CHECK(cudaMemcpyAsync(a->y, y, (size_t)n * sizeof *y, cudaMemcpyHostToDevice, s));

    if ((rc = embed_patches(g, n)) || (rc = embed_condition(g, n))) return rc;
    for (int l = 0; l < cf->depth; l++) {
        rc = cf->family == MOEDIT_FAMILY_SWITCH_DIT ? routed_block(g, l, n) : block(g, l, n, a->x);
        if (rc) return rc;
    }
    if ((rc = final_layer(g, n))) return rc;

    MC_CHECK(cudaMemcpyAsync(out, a->out, (size_t)n * cf->out_channels * S2 * sizeof *out, cudaMemcpyDeviceToHost, s));
    MC_CHECK(cudaStreamSynchronize(s));
    MC_CHECK(cudaGetLastError());
    return MOEDIT_OK;
}

/* internal.cuh — what the files of cuda/ share: the device model (weights
   and activation arena), error checks, and the kernels of ops.cu, each named
   after the CPU op (ops/, dit/) it replaces. model.cu uploads, forward.cu
   runs the forward. */
#ifndef MOEDIT_CUDA_INTERNAL_CUH
#define MOEDIT_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include "core/core.h"
#include "cuda/cuda.h"
}

typedef __nv_bfloat16 bf16;

#define MC_FREQ_DIM 256      /* sinusoidal timestep features (DIT_FREQ_DIM) */
#define MC_LN_EPS 1e-6f
#define MC_MAX_HEAD_DIM 128  /* attention keeps a query row in 4 registers per lane */

/* Returns MOEDIT_EINTERNAL from the calling function on a CUDA error. */
#define MC_CHECK(call)                                                                              \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess)                                                                      \
            return me_fail(MOEDIT_EINTERNAL, "CUDA: %s (%s:%d)", cudaGetErrorString(e_), __FILE__, __LINE__); \
    } while (0)
#define MC_BLAS(call)                                                                               \
    do {                                                                                            \
        cublasStatus_t s_ = (call);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                            \
            return me_fail(MOEDIT_EINTERNAL, "cuBLAS: %s (%s:%d)", cublasGetStatusString(s_), __FILE__, __LINE__); \
    } while (0)

/* A linear layer: weight in PyTorch's layout [out, in], float32 or
   bfloat16; bias float32 (NULL: none). */
typedef struct {
    void *w;
    const float *b;
    int in, out, bf16;
} mc_linear;

typedef struct {
    mc_linear ada, qkv, proj;
    const float *qn_w, *qn_b, *kn_w, *kn_b;   /* qk-norm: [head_dim] */
    mc_linear fc1, fc2;                       /* dense DiT, Switch-DiT */
    mc_linear gate;                           /* DiT-MoE router, float32 */
    void *gate_up;      /* [E, 2H, D]: gate_proj rows then up_proj rows per expert */
    void *down;         /* [E, D, H] */
    void *sh_gate_up;   /* [2S, D] shared expert (S = shared_hidden), NULL if none */
    void *sh_down;      /* [D, S] */
    mc_linear rg;                             /* Switch-DiT DMoE gate, float32 */
    void *re;           /* experts.w [E, D, D], applied as x·w */
    const float *re_b;  /* [E, D] */
    const float *unit_map;   /* DTR [tasks, D] */
} mc_block;

/* Device activations for cap rows, slices of one allocation. "act" buffers
   hold GEMM operands in the weights' type (bf16, or float32 with fp32). */
typedef struct {
    float *xin, *out;            /* [n, C, S, S] in, [n, outC, S, S] out */
    float *t;                    /* [n] */
    int64_t *y;                  /* [n] */
    float *patches;              /* [nT, C·p·p] */
    float *x, *h, *mask, *xm;    /* [nT, D] */
    float *qkv;                  /* [nT, 3D] */
    float *att, *ff;             /* [nT, D] */
    void *qh;                    /* bf16 [3][n·heads][T][hd]: q, k, v head-major (bf16 forward) */
    float *scores;               /* [att_pairs, T, T] one batch of (row, head) pairs' scores */
    void *probs16;               /* bf16 [att_pairs, T, T] their softmax */
    float *mid;                  /* [nT, H] dense hidden */
    void *xact;                  /* [nT, max(D, H)] act: a GEMM input rounded to bf16 */
    float *probs;                /* [nT, E] */
    int *top_idx;                /* [nT, k] */
    float *top_w;                /* [nT, k] */
    int *slot_pos, *slot_token;  /* [nT·k] */
    int *count, *start;          /* [E] */
    void *xg;                    /* [nT·k, D] act: routed rows in expert order */
    void *emid;                  /* [nT·k, 2H] act */
    void *eout;                  /* [nT·k, D] act */
    void *smid;                  /* [nT, 2S] act */
    void *sout;                  /* [nT, D] act */
    const void **ptrs;           /* grouped / batched GEMM pointer arrays (device) */
    float *tfreq;                /* [n, 256] */
    float *temb, *th, *c, *sc, *st;   /* [n, D] */
    float *mod;                  /* [n, 6D] */
    float *rprobs;               /* [n, E] */
    int *ridx;                   /* [n, k] */
    float *rw;                   /* [n, k] */
    float *ry;                   /* [n·k, T, D] Switch-DiT router experts' outputs */
    float *out_tok;              /* [nT, p·p·outC] */
} mc_acts;

struct mc_model {
    moedit_config cfg;
    int tokens, grid, head_dim, table_rows, tasks;
    int device, fp32;
    int ungrouped;                /* cuBLAS refused the grouped GEMM: one product per expert */
    cudaStream_t stream;
    cublasHandle_t blas;

    mc_linear xemb, t0, t2, fa, fl;
    const float *pos, *ytab;
    mc_block *blocks;
    void **allocs;                /* every device weight allocation */
    int nallocs, allocs_cap;

    mc_acts a;
    int cap;
    size_t score_bytes;           /* bound on one batch of the bf16 attention's float32 scores */
    int att_pairs;                /* (row, head) pairs per batch of the tensor-core attention */
    void *arena;
    int *host_count;              /* pinned [2E]: expert counts, then starts */
    void *host_routes;            /* pinned, for a tracer: idx [rows, k], w [rows, k], probs [n, E] */
    mc_route_fn route;            /* this forward's tracer, or NULL */
    void *route_user;
    const void **host_ptrs;       /* pinned pointer arrays, mirrored to a.ptrs */
};

/* Bytes of one act element. */
static inline size_t mc_act_size(const mc_model *g) { return g->fp32 ? 4 : 2; }

/* ---- kernels (ops.cu); every launcher enqueues on stream s ---------------- */

void mc_patchify(cudaStream_t s, int n, int C, int S, int p, const float *x, float *patches);
void mc_add_pos(cudaStream_t s, long rows, int T, int D, const float *pos, float *x);
void mc_timestep_embedding(cudaStream_t s, int n, const float *t, float *freq);
void mc_add_label(cudaStream_t s, int n, int D, const float *temb, const float *ytab, const int64_t *y, float *c);
void mc_silu(cudaStream_t s, size_t len, const float *x, float *y);
void mc_add_bias(cudaStream_t s, long rows, int cols, const float *b, float *y);
void mc_to_bf16(cudaStream_t s, size_t len, const float *x, void *y);
void mc_layernorm_modulate(cudaStream_t s, long rows, int D, const float *h, const float *mod, int shift, int scale,
                           int T, int chunks, float *out);
void mc_gated_residual(cudaStream_t s, long rows, int D, float *h, const float *mod, int gate, int T, const float *ff);
void mc_gated_residual_layernorm_modulate(cudaStream_t s, long rows, int D, float *h, const float *mod, int gate,
                                          const float *ff, int shift, int scale, int T, float *out);
void mc_qk_layernorm(cudaStream_t s, long rows, int heads, int hd, int D, float *qkv, const float *qw, const float *qb,
                     const float *kw, const float *kb);
void mc_attention(cudaStream_t s, int n, int T, int heads, int hd, const float *qkv, float *out);
void mc_split_heads(cudaStream_t s, int n, int T, int heads, int hd, const float *qkv, void *qh);
void mc_softmax_rows(cudaStream_t s, long rows, int T, const float *scores, void *p);
void mc_merge_heads(cudaStream_t s, int n, int T, int heads, int hd, const float *oh, float *out);
void mc_gelu_tanh(cudaStream_t s, size_t len, float *x);
void mc_softmax_top_k(cudaStream_t s, long rows, int E, int k, float *probs, int *idx, float *w);
void mc_moe_count(cudaStream_t s, long slots, int E, const int *idx, int *count);
void mc_moe_place(cudaStream_t s, long slots, int E, int k, const int *idx, const int *start, int *slot_pos,
                  int *slot_token);
void mc_moe_gather(cudaStream_t s, long slots, int D, const float *xm, const int *slot_token, void *xg, int fp32);
void mc_swiglu(cudaStream_t s, long rows, int H, void *mid, int fp32);
void mc_moe_combine(cudaStream_t s, long tokens, int D, int k, const int *idx, const float *w, const int *slot_pos,
                    const void *eout, const void *sout, float *ff, int fp32);
void mc_switch_pointers(cudaStream_t s, int n, int k, int T, int D, const int *idx, const void *re, const void *xs,
                        float *ry, const void **ptrs, int fp32);
void mc_switch_dmoe_mask(cudaStream_t s, int n, int k, int T, int D, const int *idx, const float *w, const float *ry,
                         const float *re_b, float *mask);
void mc_switch_dtr_mask(cudaStream_t s, int n, int T, int D, const float *unit_map, const float *t, float *mask);
void mc_switch_enter(cudaStream_t s, size_t len, const float *x, const float *mask, float *h);
void mc_switch_leave(cudaStream_t s, size_t len, const float *h, const float *mask, float *x);
void mc_unpatchify(cudaStream_t s, int n, int oc, int S, int p, const float *tok, float *out);

#endif

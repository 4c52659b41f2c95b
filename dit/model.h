/* model.h — the inside of moedit_model, shared by the files of dit/:
   weights (pointers into the tensor registry, filled by name at load),
   the activation arena (one allocation, sized for the largest batch seen)
   and the tracer state. model.c loads, forward.c runs the skeleton, moe.c
   the DiT-MoE feed-forward and the Switch-DiT routers. */
#ifndef MOEDIT_DIT_MODEL_H
#define MOEDIT_DIT_MODEL_H

#include "core/core.h"
#include "moedit.h"
#include "ops/gemm.h"
#include "weights/tensors.h"

#define DIT_FREQ_DIM 256   /* sinusoidal timestep features */
#define DIT_LN_EPS 1e-6f
#define DIT_ITEM_INTS 4   /* per DiT-MoE work item: expert, first row, rows, tail state (dit/moe.c) */
#define DIT_ITEM_ROWS 168  /* at most this many rows per DiT-MoE feed-forward work item (12 AVX-512, 28 AVX2 tiles) */

/* A SwiGLU feed-forward: gate_proj and up_proj packed side by side, so one
   product makes both halves of [rows, 2·chunk], chunk by chunk of the
   hidden units (dit/moe.c). */
typedef struct {
    me_gemm_b gate_up;               /* D → 2H: per chunk c, gate units [c·chunk, +chunk), then their up twins */
    me_gemm_b down;                  /* H → D */
    int hid;                         /* H; 0 when absent */
    int chunk;                       /* hidden units per chunk: me_gemm_k_chunk(H), or H */
} dit_swiglu;

/* Matrices are packed for me_gemm at load (bfloat16 in bf16 mode, except
   the routers, whose decisions must not move); vectors stay float32. */
typedef struct {
    me_gemm_b ada;  const float *ada_b;     /* adaLN_modulation.1: D → 6D */
    me_gemm_b qkv;  const float *qkv_b;     /* attn.qkv or attn.Wqkv: D → 3D */
    const float *qn_w, *qn_b;               /* attn.q_norm / k_norm: [head_dim] (qk-norm only) */
    const float *kn_w, *kn_b;
    me_gemm_b proj; const float *proj_b;    /* attn.proj or attn.out_proj: D → D */
    /* dense DiT and Switch-DiT */
    me_gemm_b fc1;  const float *fc1_b;     /* D → H */
    me_gemm_b fc2;  const float *fc2_b;     /* H → D */
    /* DiT-MoE */
    me_gemm_b gate;                         /* moe.gate: D → E, float32 */
    dit_swiglu *experts;                    /* [E] */
    dit_swiglu shared;                      /* hid 0: no shared expert */
    /* Switch-DiT router in front of this block */
    me_gemm_b rg;   const float *rg_b;      /* f_gate.1: D → E (DMoE), float32 */
    me_gemm_b *re;                          /* experts.w [E, D, D], used as x·w: [E] of D → D */
    const float *re_b;                      /* experts.b [E, D] */
    const float *unit_map;                  /* DTR _unit_mapping [tasks, D] */
} dit_block;

/* Activations for cap rows; every buffer is a slice of one arena. */
typedef struct {
    float *patches;    /* [n·T, C·p·p] */
    float *x;          /* [n·T, D] residual stream */
    float *h;          /* [n·T, D] the stream a Switch-DiT block runs on (x⊙m) */
    float *mask;       /* [n·T, D] Switch-DiT channel mask m */
    float *xm;         /* [n·T, D] modulated LayerNorm output */
    float *qkv;        /* [n·T, 3D] */
    float *att;        /* [n·T, D] */
    float *ff;         /* [n·T, D] attention / feed-forward output */
    float *mid;        /* feed-forward hidden (gate, up halves): [n·T, 2·H] dense; DiT-MoE
                          dit_moe_mid_floats' per-thread and tail buffers (dit/moe.c) */
    float *eout;       /* [n·T·k, D] routed experts' outputs, slots in expert order */
    float *shared_out; /* [n·T, D] the shared expert's output */
    float *probs;      /* [n·T, E] gate probabilities */
    int *top_idx;      /* [n·T, k] */
    float *top_w;      /* [n·T, k] */
    int *slot_pos;     /* [n·T·k] position of slot token·k + j in expert order */
    int *slot_token;   /* [n·T·k] the token at each position in expert order */
    int *items;        /* [max items, DIT_ITEM_INTS] the FFN's work (dit/moe.c) */
    int *count;        /* [E + 1] */
    float *tfreq;      /* [n, 256] */
    float *temb;       /* [n, D] t_embedder output (Switch-DiT routers read it) */
    float *th;         /* [n, D] */
    float *c;          /* [n, D] conditioning */
    float *sc;         /* [n, D] SiLU(c) */
    float *st;         /* [n, D] SiLU(t_emb) */
    float *mod;        /* [n, 6D] */
    float *rprobs;     /* [n, E] router probabilities */
    float *out_tok;    /* [n·T, p·p·out_C] */
    float *att_scratch;
    int threads;       /* me_threads_max() the per-thread buffers (mid, att_scratch) are sized for */
} dit_acts;

struct moedit_model {
    moedit_config cfg;
    me_tensors *ts;
    int tokens, grid, head_dim, table_rows, tasks;
    int bf16;                       /* block matrices packed as bfloat16 */
    int batch_invariant;            /* every packed matrix's switch (ops/gemm.h): set while
                                       moedit_sample draws with the native RNG */
    me_gemm_b xemb; const float *xemb_b;   /* x_embedder.proj [D, C, p, p] as C·p·p → D */
    const float *pos;               /* [T, D] */
    float *pos_own;                 /* computed when the checkpoint has none */
    me_gemm_b t0, t2; const float *t0_b, *t2_b;   /* t_embedder.mlp.0 / .2 */
    const float *ytab;              /* [table_rows, D] */
    me_gemm_b fa; const float *fa_b;      /* final_layer.adaLN_modulation.1: D → 2D */
    me_gemm_b fl; const float *fl_b;      /* final_layer.linear: D → p·p·out_C */
    dit_block *blocks;
    dit_swiglu *expert_store;       /* depth × E */
    me_arena packs;                 /* every packed matrix's memory, freed with the model */

    dit_acts a;
    int cap;                        /* rows the arena holds */
    void *arena;

    void *gpu;                      /* cuda/ mc_model when loaded for a CUDA device, else NULL */
    uint32_t gpu_digest;            /* moedit_model_digest, taken before the GPU load drops ts */

    moedit_route_fn trace;
    void *trace_user;
    int step, null_from;
    me_adapt adapt;                 /* adaptive thread count (core/busy.c) */
    const float *cur_t;             /* this forward's inputs, for the tracer */
    const int64_t *cur_y;
    int cur_n;                      /* this forward's rows (the GPU tracer's bound) */
};

/* y[n, w.n] = x[n, w.k]·W (+ b): a packed linear layer. */
static inline void dit_linear(int n, const float *x, const me_gemm_b *w, const float *b, float *y)
{
    me_gemm(n, x, (size_t)w->k, w, 1.0f, b, 0.0f, y, (size_t)w->n);
}

/* Makes room for n rows (grows once, never shrinks). */
int dit_reserve(moedit_model *m, int n);

/* DiT-MoE feed-forward of layer l: a.ff = Σ_k w_k·expert_k(a.xm) + shared(a.xm). */
void dit_moe_ffn(moedit_model *m, int l, int n);
/* Floats of its hidden-activation buffers for nt token rows (a.mid):
   two per thread of me_threads_max(), whatever the batch. */
size_t dit_moe_mid_floats(const moedit_config *cf, size_t nt);

/* Switch-DiT router in front of block l: fills a.mask [n·T, D]. */
void dit_switch_mask(moedit_model *m, int l, int n, const float *t);

/* dit/device.c: the weights uploaded to opt->device (CPU packing skipped),
   the forward there, and the device copy freed. */
int dit_gpu_load(moedit_model *m, const moedit_load_options *opt);
int dit_gpu_forward(moedit_model *m, int n, const float *x, const float *t, const int64_t *y, float *out);
void dit_gpu_free(moedit_model *m);

#endif

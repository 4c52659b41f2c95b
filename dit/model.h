/* model.h — the inside of moedit_model, shared by the files of dit/:
   weights (pointers into the tensor registry, filled by name at load),
   the activation arena (one allocation, sized for the largest batch seen)
   and the tracer state. model.c loads, forward.c runs the skeleton, moe.c
   the DiT-MoE feed-forward and the Switch-DiT routers. */
#ifndef MOEDIT_DIT_MODEL_H
#define MOEDIT_DIT_MODEL_H

#include "moedit.h"
#include "weights/tensors.h"

#define DIT_FREQ_DIM 256   /* sinusoidal timestep features */
#define DIT_LN_EPS 1e-6f

typedef struct {
    const float *gate, *up, *down;   /* [H, D], [H, D], [D, H]; no biases */
} dit_swiglu;

typedef struct {
    const float *ada_w, *ada_b;      /* adaLN_modulation.1: [6D, D], [6D] */
    const float *qkv_w, *qkv_b;      /* attn.qkv or attn.Wqkv: [3D, D], [3D] */
    const float *qn_w, *qn_b;        /* attn.q_norm / k_norm: [head_dim] (qk-norm only) */
    const float *kn_w, *kn_b;
    const float *proj_w, *proj_b;    /* attn.proj or attn.out_proj: [D, D], [D] */
    /* dense DiT and Switch-DiT */
    const float *fc1_w, *fc1_b;      /* [H, D], [H] */
    const float *fc2_w, *fc2_b;      /* [D, H], [D] */
    /* DiT-MoE */
    const float *gate_w;             /* moe.gate.weight [E, D] */
    dit_swiglu *experts;             /* [E] */
    dit_swiglu shared;               /* gate == NULL: no shared expert */
    /* Switch-DiT router in front of this block */
    const float *rg_w, *rg_b;        /* f_gate.1: [E, D], [E] (DMoE) */
    float *re_wt;                    /* experts.w [E, D, D] (used as x·w) transposed to [E, out, in] */
    const float *re_b;               /* experts.b [E, D] */
    const float *unit_map;           /* DTR _unit_mapping [tasks, D] */
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
    float *mid;        /* [n·T, 2·max(H, S)] feed-forward hidden (gate, up halves) */
    float *gather;     /* [n·T, D] tokens routed to one expert */
    float *eout;       /* [n·T, D] that expert's output */
    float *probs;      /* [n·T, E] gate probabilities */
    int *top_idx;      /* [n·T, k] */
    float *top_w;      /* [n·T, k] */
    int *order;        /* [n·T·k] token·k + j, grouped by expert */
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
    size_t att_scratch_floats;
} dit_acts;

struct moedit_model {
    moedit_config cfg;
    me_tensors *ts;
    int tokens, grid, head_dim, table_rows, tasks;
    const float *xemb_w, *xemb_b;   /* [D, C·p·p], [D] */
    const float *pos;               /* [T, D] */
    float *pos_own;                 /* computed when the checkpoint has none */
    const float *t0_w, *t0_b, *t2_w, *t2_b;
    const float *ytab;              /* [table_rows, D] */
    const float *fa_w, *fa_b;       /* final_layer.adaLN_modulation.1 [2D, D] */
    const float *fl_w, *fl_b;       /* final_layer.linear [p·p·out_C, D] */
    dit_block *blocks;
    dit_swiglu *expert_store;       /* depth × E */

    dit_acts a;
    int cap;                        /* rows the arena holds */
    void *arena;

    moedit_route_fn trace;
    void *trace_user;
    int step, null_from;
    const float *cur_t;             /* this forward's inputs, for the tracer */
    const int64_t *cur_y;
};

/* Makes room for n rows (grows once, never shrinks). */
int dit_reserve(moedit_model *m, int n);

/* DiT-MoE feed-forward of layer l: a.ff = Σ_k w_k·expert_k(a.xm) + shared(a.xm). */
void dit_moe_ffn(moedit_model *m, int l, int n);

/* Switch-DiT router in front of block l: fills a.mask [n·T, D]. */
void dit_switch_mask(moedit_model *m, int l, int n, const float *t);

#endif

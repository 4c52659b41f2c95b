/* vae.h — inside the AutoencoderKL decoder (moedit_vae in moedit.h): the
   config, the weights as plain structs filled by name, and the workspace.

   Loading (load.c) finds the decoder under any prefix ("", "vae.",
   "first_stage_model.", …) in diffusers naming (decoder.up_blocks.0.…,
   attention to_q/… or query/…) or CompVis LDM naming (decoder.up.3.block.0.…,
   mid.attn_1.q as 1×1 convs); it takes the config from the registry's
   "config.json" metadata or, without one, infers it from tensor shapes.
   Decoding (decode.c) runs one sample at a time through buffers sized once
   per latent size, so memory does not grow with the batch. */
#ifndef MOEDIT_VAE_H
#define MOEDIT_VAE_H

#include "moedit.h"
#include "ops/conv.h"
#include "ops/conv_winograd.h"
#include "ops/ops.h"
#include "weights/tensors.h"

#define VAE_MAX_BLOCKS 8
#define VAE_MAX_RESNETS 8    /* layers_per_block + 1 */
#define VAE_EPS 1e-6f        /* every GroupNorm in the decoder */

typedef struct {
    int num_blocks;
    int block_out_channels[VAE_MAX_BLOCKS];
    int layers_per_block;
    int latent_channels, out_channels;
    int norm_num_groups;
    int mid_attention;       /* mid_block_add_attention */
    int post_quant_conv;     /* use_post_quant_conv */
    float scaling_factor;
} vae_config;

typedef struct { const float *w, *b; } vae_norm;
typedef struct {
    const float *w, *b;
    op_conv_shape s;
    op_conv op;              /* w packed for the tile kernels (vae/pack.c), in moedit_vae.packs */
    op_winograd wino;        /* or where it pays (float32 3×3, 64+ channels) transformed: wino.a set, op unused */
} vae_conv;

typedef struct {
    int cin, cout;
    vae_norm norm1, norm2;
    vae_conv conv1, conv2;
    vae_conv shortcut;       /* 1×1, only when cin != cout (w NULL otherwise) */
} vae_resnet;

typedef struct {
    int c;
    vae_norm norm;
    const float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;   /* [c, c] as Linear */
} vae_attention;

typedef struct {
    int cin, cout;
    vae_resnet resnets[VAE_MAX_RESNETS];
    vae_conv upsample;       /* ×2 nearest then 3×3; w NULL in the last block */
} vae_up_block;

/* Activations of one sample: x is the running tensor; a, b are temporaries
   of one resnet (b only ever holds its output channels). */
typedef struct {
    int h, w;                /* latent size the buffers were sized for */
    int threads;             /* thread count then: the attention scratch is per thread */
    float *x, *a, *b;
    float *scratch;          /* im2col bands */
    float *attn;             /* transposed input, q, k, v, attention scratch */
} vae_workspace;

struct moedit_vae {
    vae_config cfg;
    me_tensors *ts;          /* owns the weight memory the pointers below use */
    vae_conv post_quant_conv, conv_in, conv_out;
    vae_resnet mid_resnets[2];
    vae_attention mid_attn;
    vae_up_block up[VAE_MAX_BLOCKS];   /* in execution order, as diffusers' up_blocks */
    vae_norm norm_out;
    int bf16;                /* convolutions packed as bfloat16 (moedit_vae_set_bf16) */
    me_arena packs;          /* the packed convolution weights */
    vae_workspace ws;
};

/* Builds a decoder over ts, taking ownership of it (freed on failure too). */
int vae_from_tensors(me_tensors *ts, moedit_vae **out);

/* Parses a diffusers AutoencoderKL config.json; what names the file in messages. */
int vae_config_parse(const char *json, const char *what, vae_config *cfg);

void vae_workspace_free(vae_workspace *ws);

/* (Re)packs every convolution's weights, bfloat16 or float32 (pack.c);
   vae_unpack frees them. */
int vae_pack(moedit_vae *v, int bf16);
void vae_unpack(moedit_vae *v);

#endif

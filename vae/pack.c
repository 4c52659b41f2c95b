/* The decoder's convolution weights packed for the tile kernels
   (ops/conv.h), once at load and again when the precision changes. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "vae/vae.h"

/* Every convolution of the decoder that has weights; returns the count. */
static int all_convs(moedit_vae *v, vae_conv **out)
{
    int k = 0;
    vae_conv *fixed[] = {&v->post_quant_conv, &v->conv_in, &v->conv_out};
    for (int i = 0; i < 3; i++) out[k++] = fixed[i];
    for (int i = 0; i < 2; i++) {
        vae_resnet *r = &v->mid_resnets[i];
        out[k++] = &r->conv1, out[k++] = &r->conv2, out[k++] = &r->shortcut;
    }
    for (int i = 0; i < v->cfg.num_blocks; i++) {
        vae_up_block *u = &v->up[i];
        for (int j = 0; j <= v->cfg.layers_per_block; j++) {
            vae_resnet *r = &u->resnets[j];
            out[k++] = &r->conv1, out[k++] = &r->conv2, out[k++] = &r->shortcut;
        }
        out[k++] = &u->upsample;
    }
    int live = 0;
    for (int i = 0; i < k; i++)
        if (out[i]->w) out[live++] = out[i];
    return live;
}

#define MAX_CONVS (3 + 2 * 3 + VAE_MAX_BLOCKS * (3 * VAE_MAX_RESNETS + 1))

void vae_unpack(moedit_vae *v) { me_arena_free(&v->packs); }

int vae_pack(moedit_vae *v, int bf16)
{
    vae_conv *cs[MAX_CONVS];
    int n = all_convs(v, cs), wino[MAX_CONVS];
    size_t bytes[MAX_CONVS];
    double total = 0;
    vae_unpack(v);
    for (int i = 0; i < n; i++) {
        /* float32 3×3 layers of 64+ channels by Winograd's F(4×4, 3×3) (ops/conv_winograd.h): 4× the floats */
        wino[i] = !bf16 && op_winograd_pays(&cs[i]->s);
        bytes[i] = wino[i] ? op_winograd_bytes(&cs[i]->s) : op_conv_bytes(&cs[i]->s, bf16);
        total += (double)bytes[i];
    }
    int rc = me_memory_check(total, "the VAE's packed convolution weights");
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        vae_conv *c = cs[i];
        void *packed = me_arena_alloc(&v->packs, bytes[i]);
        if (!packed) {
            vae_unpack(v);
            return me_fail(MOEDIT_EINTERNAL, "VAE: out of memory packing the convolution weights");
        }
        memset(&c->wino, 0, sizeof c->wino);
        memset(&c->op, 0, sizeof c->op);
        if (wino[i])
            op_winograd_init(&c->wino, &c->s, c->w, c->b, packed);
        else
            op_conv_init(&c->op, &c->s, c->w, c->b, bf16, packed);
    }
    v->bf16 = bf16;
    return MOEDIT_OK;
}

int moedit_vae_set_bf16(moedit_vae *v, int on)
{
    if (on && !op_conv_bf16_ok())
        return me_fail(MOEDIT_EINPUT, "VAE bf16: needs a CPU with AVX2+FMA or AVX-512 (own kernels); this one runs OpenBLAS");
    if ((on != 0) == v->bf16) return MOEDIT_OK;
    return vae_pack(v, on != 0);
}

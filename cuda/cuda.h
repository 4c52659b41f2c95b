/* cuda.h — the CUDA backend as the C code sees it (built with
   -DMOEDIT_CUDA=ON only). dit/device.c is its one caller: a model loaded
   with a CUDA device gets an mc_model, whose weights are uploaded once and
   whose forward mirrors dit/forward.c on the GPU.

   The backend knows tensor names (like dit/model.c) but not the registry:
   it asks the caller for each float32 tensor with its exact shape. */
#ifndef MOEDIT_CUDA_H
#define MOEDIT_CUDA_H

#include <stdint.h>
#include "moedit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mc_model mc_model;

/* The float32 host data of tensor `name` with shape dims, or NULL after
   me_fail (missing or mis-shaped). */
typedef const float *(*mc_tensor_fn)(void *user, const char *name, int ndim, const int64_t *dims);

typedef struct {
    moedit_config cfg;
    int tokens, grid, head_dim, table_rows, tasks;
    const float *pos;   /* [tokens, hidden] position table, host */
} mc_dims;

/* CUDA devices present (0 when there is no driver or no GPU). */
int mc_device_count(void);

/* Uploads every weight to `device`: bfloat16 block matrices (routers,
   embeddings and the final linear stay float32, as on the CPU), or all
   float32 with fp32 = 1 (cuBLAS in pedantic mode: no TF32). */
int mc_model_upload(const mc_dims *d, mc_tensor_fn tensor, void *user, int device, int fp32, mc_model **out);

/* The routing decisions of one layer, copied to the host for a tracer:
   DiT-MoE: idx, w [n·T, k] per token, probs NULL; Switch-DiT DMoE: idx, w
   [n, k] and probs [n, E] per row. */
typedef void (*mc_route_fn)(void *user, int layer, const int *idx, const float *w, const float *probs);

/* moedit_model_forward on the GPU: host arrays in, host array out. With
   route non-NULL every routing layer also waits for its decisions to reach
   the host and reports them. */
int mc_model_forward(mc_model *g, int n, const float *x, const float *t, const int64_t *y, float *out,
                     mc_route_fn route, void *user);

void mc_model_free(mc_model *g);

#ifdef __cplusplus
}
#endif
#endif

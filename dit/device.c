/* Where a transformer runs: the device check behind --device, and the
   hand-over of a model loaded with a CUDA device to cuda/ (built with
   -DMOEDIT_CUDA=ON only; without it every CUDA request fails the check). */
#include <stdlib.h>
#include "core/core.h"
#include "dit/model.h"
#ifdef MOEDIT_CUDA
#include "cuda/cuda.h"
#endif

int moedit_device_check(moedit_device d)
{
    if (d.kind == MOEDIT_DEVICE_CPU) return MOEDIT_OK;
    if (d.kind != MOEDIT_DEVICE_CUDA || d.index < 0) return me_fail(MOEDIT_EINPUT, "unknown device");
#ifdef MOEDIT_CUDA
    int count = mc_device_count();
    if (count <= 0) return me_fail(MOEDIT_EINPUT, "no CUDA device");
    if (d.index >= count) return me_fail(MOEDIT_EINPUT, "no CUDA device %d (%d present)", d.index, count);
    return MOEDIT_OK;
#else
    return me_fail(MOEDIT_EINPUT, "moedit was built without CUDA (-DMOEDIT_CUDA=ON)");
#endif
}

#ifdef MOEDIT_CUDA
static const float *gpu_tensor(void *user, const char *name, int ndim, const int64_t *dims)
{
    const float *f = NULL;
    return me_tensors_f32(user, name, ndim, dims, &f) ? NULL : f;
}
#endif

int dit_gpu_load(moedit_model *m, const moedit_load_options *opt)
{
#ifdef MOEDIT_CUDA
    mc_dims d = {m->cfg, m->tokens, m->grid, m->head_dim, m->table_rows, m->tasks, m->pos};
    mc_model *g = NULL;
    int rc = mc_model_upload(&d, gpu_tensor, m->ts, opt->device.index, opt->fp32, &g);
    m->gpu = g;
    if (!rc) rc = me_tensors_digest(m->ts, &m->gpu_digest);   /* the last chance: the weights are at hand */
    if (!rc) {   /* the weights live on the GPU now: drop the host copies and mappings */
        me_tensors_free(m->ts);
        m->ts = NULL, m->pos = NULL;
    }
    return rc;
#else
    return moedit_device_check(opt->device);
#endif
}

#ifdef MOEDIT_CUDA
/* One layer's decisions from the GPU to the tracer, in the CPU's order:
   DiT-MoE per token, Switch-DiT per row with all its gate probabilities. */
static void gpu_routes(void *user, int layer, const int *idx, const float *w, const float *probs)
{
    moedit_model *m = user;
    int k = m->cfg.top_k, T = m->tokens, per_token = !probs;
    long rows = per_token ? (long)m->cur_n * T : m->cur_n;
    for (long r = 0; r < rows; r++) {
        int row = per_token ? (int)(r / T) : (int)r;
        moedit_route rt = {
            .layer = layer, .step = m->step, .row = row, .token = per_token ? (int)(r % T) : -1,
            .timestep = m->cur_t[row], .label = m->cur_y[row], .is_null = m->null_from >= 0 && row >= m->null_from,
            .k = k, .experts = idx + r * k, .weights = w + r * k,
            .num_probs = per_token ? 0 : m->cfg.num_experts, .probs = per_token ? NULL : probs + r * m->cfg.num_experts,
        };
        m->trace(m->trace_user, &rt);
    }
}
#endif

int dit_gpu_forward(moedit_model *m, int n, const float *x, const float *t, const int64_t *y, float *out)
{
#ifdef MOEDIT_CUDA
    m->cur_t = t, m->cur_y = y, m->cur_n = n;
    return mc_model_forward(m->gpu, n, x, t, y, out, m->trace ? gpu_routes : NULL, m);
#else
    return me_fail(MOEDIT_EINTERNAL, "moedit was built without CUDA (-DMOEDIT_CUDA=ON)");
#endif
}

void dit_gpu_free(moedit_model *m)
{
#ifdef MOEDIT_CUDA
    mc_model_free(m->gpu);
#endif
    m->gpu = NULL;
}

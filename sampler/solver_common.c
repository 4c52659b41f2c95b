/* One guided model evaluation and the noise streams, for the multistep and
   flow solvers. Guidance as in loop.c (upstream forward_with_cfg): the
   model sees [x, x] with labels [y, null] and the first k channels of the
   conditional rows become u + s·(c − u). Outside the guidance interval only
   the conditional rows are run, so those evaluations cost half. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "sampler/solver.h"

int me_guided_init(me_guided *g, const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn,
                   void *ctx, int n, const int64_t *labels, int total)
{
    memset(g, 0, sizeof *g);
    g->o = o;
    g->fn = fn;
    g->ctx = ctx;
    g->n = n;
    g->total = total;
    g->hw = (size_t)s->size * s->size;
    g->chw = (size_t)s->channels * g->hw;
    g->row = (size_t)s->out_channels * g->hw;
    /* only the ε / velocity channels are used: guide at most those */
    int k = o->cfg_channels == 0 ? s->channels : o->cfg_channels;
    g->gk = k < s->channels ? k : s->channels;
    g->xin = me_alloc(sizeof(float) * 2 * n * g->chw);
    g->out = me_alloc(sizeof(float) * 2 * n * g->row);
    g->t = me_alloc(sizeof(float) * 2 * n);
    g->y = me_alloc(sizeof(int64_t) * 2 * n);
    if (!g->xin || !g->out || !g->t || !g->y) {
        me_guided_free(g);
        return MOEDIT_EINTERNAL;
    }
    for (int r = 0; r < 2 * n; r++) g->y[r] = r < n ? labels[r] : s->num_classes;
    return MOEDIT_OK;
}

void me_guided_free(me_guided *g)
{
    free(g->xin);
    free(g->out);
    free(g->t);
    free(g->y);
    g->xin = g->out = g->t = NULL;
    g->y = NULL;
}

int me_guided_eval(me_guided *g, const float *x, float t, const float **pred)
{
    const int n = g->n, guided = g->o->cfg > 1 && me_cfg_active(g->o, t), rows = guided ? 2 * n : n;
    for (int r = 0; r < rows; r++) g->t[r] = t;
    memcpy(g->xin, x, sizeof(float) * n * g->chw);
    if (guided) memcpy(g->xin + n * g->chw, x, sizeof(float) * n * g->chw);
    int rc = g->fn(g->ctx, g->evals, rows, guided ? n : rows, g->xin, g->t, g->y, g->out);
    if (rc) return rc;
    if (guided) {
        const float s = g->o->cfg;
        for (int r = 0; r < n; r++) {
            float *c = g->out + r * g->row;
            const float *u = g->out + (size_t)(r + n) * g->row;
            for (size_t i = 0; i < (size_t)g->gk * g->hw; i++) c[i] = u[i] + s * (c[i] - u[i]);
        }
    }
    g->evals++;
    if (g->o->progress) g->o->progress(g->o->progress_user, g->evals, g->total);
    *pred = g->out;
    return MOEDIT_OK;
}

int me_noise_init(me_noise *z, const moedit_sample_options *o, int n, size_t chw)
{
    memset(z, 0, sizeof *z);
    z->o = o;
    z->n = n;
    z->chw = chw;
    if (o->rng == MOEDIT_RNG_TORCH) {
        me_torch_rng_seed(&z->torch, o->seed);
        return MOEDIT_OK;
    }
    if (!(z->seeds = me_alloc(sizeof(uint64_t) * n))) return MOEDIT_EINTERNAL;
    for (int r = 0; r < n; r++) z->seeds[r] = o->row_seeds ? o->row_seeds[r] : me_native_row_seed(o->seed, (uint64_t)r);
    return MOEDIT_OK;
}

void me_noise_free(me_noise *z)
{
    free(z->seeds);
    z->seeds = NULL;
}

void me_noise_draw(me_noise *z, uint32_t draw, float *buf)
{
    if (z->o->rng == MOEDIT_RNG_TORCH) {
        me_torch_randn(&z->torch, buf, (size_t)z->n * z->chw);
        return;
    }
    for (int r = 0; r < z->n; r++) me_native_randn(z->seeds[r], draw, buf + r * z->chw, z->chw);
}

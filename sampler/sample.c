/* moedit_sample(): the public sampling API over a loaded model — resolves the
   family defaults and runs the loop (loop.c) with the transformer as the
   denoiser, telling the model the step index for the expert tracer. */
#include <string.h>
#include "core/core.h"
#include "dit/model.h"
#include "sampler/sampler.h"

/* DDPM with 250 respaced steps and cfg 1.5 as upstream's sample_ddp.py (FID
   settings; sample.py's demo uses cfg 4.0); the rectified-flow models
   (DiT-MoE XL/G) sample with 50 Euler steps as DiT-MoE's sample.py. The
   guided channels and the schedule are left to the family (-1): three raw
   channels for DiT/DiT-MoE, all for Switch-DiT and flow; cosine for
   Switch-DiT, whose DDPM steps default to the ddim250 spacing (t ≤ 996). */
void moedit_sample_defaults(const moedit_model *m, moedit_sample_options *o)
{
    const moedit_config *c = m ? moedit_model_config(m) : NULL;
    memset(o, 0, sizeof *o);
    o->sampler = c && c->flow ? MOEDIT_SAMPLER_FLOW : MOEDIT_SAMPLER_DDPM;
    o->steps = me_default_steps(o->sampler, c && c->family == MOEDIT_FAMILY_SWITCH_DIT);
    o->cfg = 1.5f;
    o->cfg_channels = -1;
    o->eta = 0;
    o->cosine_schedule = -1;
    o->seed = 0;
    o->rng = MOEDIT_RNG_TORCH;
}

static int model_denoise(void *ctx, int step, int rows, int null_from, const float *x,
                         const float *t, const int64_t *y, float *out)
{
    moedit_model *m = ctx;
    moedit_model_set_step(m, step, null_from);
    return moedit_model_forward(m, rows, x, t, y, out);
}

int moedit_sample(moedit_model *m, const moedit_sample_options *o, int n,
                  const int64_t *labels, float *latents)
{
    if (!m || !o || !labels || !latents) return me_fail(MOEDIT_EINPUT, "sample: missing argument");
    const moedit_config *c = moedit_model_config(m);
    moedit_sample_options r = *o;
    int switch_dit = c->family == MOEDIT_FAMILY_SWITCH_DIT;
    if (r.cfg_channels < 0) r.cfg_channels = switch_dit || me_sampler_is_flow(r.sampler) ? 0 : 3;
    if (r.cosine_schedule < 0) r.cosine_schedule = switch_dit;
    if (!r.steps) r.steps = me_default_steps(r.sampler, r.cosine_schedule > 0);
    if (me_sampler_is_flow(r.sampler) != (c->flow != 0) && r.sampler > MOEDIT_SAMPLER_FLOW)
        return me_fail(MOEDIT_EINPUT, "sampler: %s is for %s models, and this one is %s", me_sampler_name(r.sampler),
                       c->flow ? "DDPM-trained" : "rectified-flow", c->flow ? "rectified flow" : "DDPM-trained");
    me_sample_shape s = {c->in_channels, c->input_size, c->out_channels, c->num_classes};
    /* native-RNG samples depend on their own seed only: the products too */
    int was = m->batch_invariant;
    if (r.rng == MOEDIT_RNG_NATIVE) m->batch_invariant = 1;
    int rc = me_sample_run(&r, &s, model_denoise, m, n, labels, latents);
    m->batch_invariant = was;
    return rc;
}

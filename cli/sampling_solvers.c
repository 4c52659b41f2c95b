/* The solver flags of `moedit sample` and `moedit fid-sample`: --spacing,
   --karras, --order and --cfg-interval, checked against the sampler and the
   model (a solver on a model it does not fit is a usage error), and their
   description for the repeat line and fid-sample's resume fingerprint. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "sampler/sampler.h"

static const char *const spacings[] = {"linspace", "leading", "trailing"};

static int is_multistep(moedit_sampler s)
{
    return s >= MOEDIT_SAMPLER_DPM2M && s <= MOEDIT_SAMPLER_DPM2M_SDE;
}

/* "LO,HI" as two finite numbers. */
static int parse_interval(const char *v, float *lo, float *hi)
{
    char *end;
    errno = 0;
    double a = strtod(v, &end);
    if (end == v || *end != ',' || errno || !isfinite(a)) return -1;
    const char *p = end + 1;
    double b = strtod(p, &end);
    if (end == p || *end || errno || !isfinite(b)) return -1;
    *lo = (float)a;
    *hi = (float)b;
    return 0;
}

int cli_solver_options(const char *cmd, const cli_sampling *s, const moedit_model *m, moedit_sample_options *o)
{
    const moedit_config *c = moedit_model_config(m);
    const int multistep = is_multistep(o->sampler), flow_model = c->flow != 0;
    const char *name = me_sampler_name(o->sampler);
    if (o->sampler > MOEDIT_SAMPLER_FLOW && me_sampler_is_flow(o->sampler) != flow_model)
        return cli_usage_error(cmd, "--sampler: %s is for %s models; this one is %s (use %s)", name,
                               flow_model ? "DDPM-trained" : "rectified-flow",
                               flow_model ? "rectified flow" : "DDPM-trained",
                               flow_model ? "flow, heun or midpoint" : "ddpm, ddim, dpm++2m, dpm++3m, unipc or dpm++2m-sde");

    /* defaults.json's solver settings apply only to the samplers they fit */
    const int spacing_flag = s->spacing && s->spacing != s->owned_solver[0];
    const char *spacing = spacing_flag || multistep ? s->spacing : NULL;
    if (spacing) {
        if (!multistep) return cli_usage_error(cmd, "--spacing applies to the dpm++ and unipc samplers (ddpm and ddim "
                                                    "take a respacing in --steps)");
        int k = 0;
        while (k < 3 && strcmp(spacings[k], spacing)) k++;
        char src[4300];
        if (k == 3)
            return cli_usage_error(cmd, "%s: '%s' is not linspace, leading or trailing",
                                   cli_sampling_source(s, spacing, s->owned_solver[0], "--spacing", "spacing", src, sizeof src),
                                   spacing);
        o->spacing = (moedit_spacing)k;
    }
    if (s->karras && !multistep) return cli_usage_error(cmd, "--karras applies to the dpm++ and unipc samplers");
    o->karras = multistep && (s->karras || s->json_karras);
    if (s->order != INT_MIN && o->sampler != MOEDIT_SAMPLER_UNIPC)
        return cli_usage_error(cmd, "--order applies to --sampler unipc (dpm++2m and dpm++3m name their order)");
    int order = s->order != INT_MIN ? s->order : o->sampler == MOEDIT_SAMPLER_UNIPC ? s->json_order : 0;
    if (s->order != INT_MIN && (order < 1 || order > 3))
        return cli_usage_error(cmd, "--order: %d is not 1, 2 or 3", order);
    o->order = order >= 1 && order <= 3 ? order : 0;
    if (multistep) {
        int N;
        me_solver_schedule sc;
        if (me_sample_evaluations(o, &N) || me_solver_schedule_init(&sc, o->cosine_schedule > 0, N, o->spacing, o->karras))
            return cli_usage_error(cmd, "--%s", moedit_last_error());
        me_solver_schedule_free(&sc);
    }

    /* defaults.json's interval belongs to its guidance: --cfg 1 turns both off */
    const int interval_flag = s->cfg_interval && s->cfg_interval != s->owned_solver[1];
    if (s->cfg_interval && (interval_flag || o->cfg > 1)) {
        float lo, hi;
        const float tmax = me_sampler_is_flow(o->sampler) ? 1 : 999;   /* what the sampler's steps count in */
        char src[4300];
        const char *name = cli_sampling_source(s, s->cfg_interval, s->owned_solver[1], "--cfg-interval", "cfg_interval",
                                               src, sizeof src);
        if (parse_interval(s->cfg_interval, &lo, &hi))
            return cli_usage_error(cmd, "%s: '%s' is not LO,HI (e.g. 82,579)", name, s->cfg_interval);
        if (!(lo < hi))
            return cli_usage_error(cmd, "%s: [%g, %g] is empty or inverted (need LO < HI)", name, lo, hi);
        /* an interval reaching past the timesteps is cut to them; one beside them guides nothing */
        if (hi < 0 || lo > tmax)
            return cli_usage_error(cmd, "%s: [%g, %g] holds none of the timesteps 0..%g", name, lo, hi, tmax);
        if (!(o->cfg > 1)) return cli_usage_error(cmd, "--cfg-interval needs guidance (--cfg > 1)");
        o->cfg_interval = 1;
        o->cfg_lo = lo;
        o->cfg_hi = hi;
        /* within the timesteps, it may still miss every step this run takes */
        if (me_cfg_interval_check(o)) return cli_usage_error(cmd, "%s: %s", name, moedit_last_error());
    }
    return 0;
}

void cli_solver_describe(const moedit_sample_options *o, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    if (is_multistep(o->sampler)) {
        n += (size_t)snprintf(buf + n, cap - n, " --spacing %s", spacings[o->spacing]);
        if (o->karras && n < cap) n += (size_t)snprintf(buf + n, cap - n, " --karras");
    }
    if (o->sampler == MOEDIT_SAMPLER_UNIPC && n < cap) n += (size_t)snprintf(buf + n, cap - n, " --order %d", o->order ? o->order : 2);
    char lo[CLI_FLOAT_STR], hi[CLI_FLOAT_STR];
    if (o->cfg_interval && n < cap)
        snprintf(buf + n, cap - n, " --cfg-interval %s,%s", cli_float_str(o->cfg_lo, lo), cli_float_str(o->cfg_hi, hi));
}

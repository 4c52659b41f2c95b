/* The sampling flags `moedit sample` and `moedit fid-sample` share
   (see cli.h): the flag table entries, defaults.json beside the checkpoint,
   and their resolution into moedit_sample_options. Precedence: flag, then
   defaults.json, then the model's own defaults (moedit_sample_defaults). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/core.h"
#include "sampler/sampler.h"

void cli_sampling_init(cli_sampling *s)
{
    memset(s, 0, sizeof *s);
    s->cfg = s->eta = NAN;
    s->order = INT_MIN;
    cli_model_opts_init(&s->load);
}

void cli_sampling_free(cli_sampling *s)
{
    for (size_t i = 0; i < sizeof s->owned / sizeof s->owned[0]; i++) free(s->owned[i]);
    memset(s->owned, 0, sizeof s->owned);
    for (size_t i = 0; i < sizeof s->owned_solver / sizeof s->owned_solver[0]; i++) free(s->owned_solver[i]);
    memset(s->owned_solver, 0, sizeof s->owned_solver);
    free(s->json_path);
    s->json_path = NULL;
}

const char *cli_sampling_source(const cli_sampling *s, const char *value, const char *json_value, const char *flag,
                                const char *key, char *buf, size_t cap)
{
    if (!value || value != json_value || !s->json_path) return flag;
    snprintf(buf, cap, "%s \"%s\"", s->json_path, key);
    return buf;
}

/* The types and ranges defaults.json's values must have; the values naming a
   sampler, steps, schedule, spacing or interval are checked with the flags'. */
static int check_json_types(const char *cmd, const char *path, cJSON *j)
{
    static const char *strings[] = {"sampler", "spacing", "cfg_interval", "schedule", "vae"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(j, strings[i]);
        if (v && !cJSON_IsString(v)) return cli_usage_error(cmd, "%s: \"%s\" is not a string", path, strings[i]);
    }
    static const struct { const char *key; double lo, hi; } ints[] = {
        {"heads", 1, 4096}, {"top_k", 1, 4096}, {"order", 1, 3}, {"steps", 1, 1000}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(j, ints[i].key);
        if (!v || (cJSON_IsString(v) && !strcmp(ints[i].key, "steps"))) continue;
        double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!(x >= ints[i].lo && x <= ints[i].hi && x == floor(x)))
            return cli_usage_error(cmd, "%s: \"%s\" is not an integer from %g to %g", path, ints[i].key, ints[i].lo,
                                   ints[i].hi);
    }
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "cfg");
    if (v && !(cJSON_IsNumber(v) && isfinite((float)v->valuedouble) && v->valuedouble >= 1))
        return cli_usage_error(cmd, "%s: \"cfg\" is not a number >= 1", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "karras");
    if (v && !cJSON_IsBool(v)) return cli_usage_error(cmd, "%s: \"karras\" is not true or false", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "cfg_channels");
    if (v && !cJSON_IsString(v) && !(cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble)))
        return cli_usage_error(cmd, "%s: \"cfg_channels\" is not 3 or \"all\"", path);
    return 0;
}

int cli_sampling_flags(cli_sampling *s, cli_flag *f)
{
    const cli_flag table[] = {
        {"--model", CLI_STR, &s->model, "CKPT|ALIAS", CLI_MODEL_HELP},
        {"--vae", CLI_STR, &s->vae, "DIR|FILE", "VAE decoder (default: from defaults.json beside the model)"},
        {"--vae-bf16", CLI_BOOL, &s->vae_bf16, NULL, CLI_VAE_BF16_HELP},
        {"--sampler", CLI_STR, &s->sampler, "NAME", "ddpm|ddim|dpm++2m|dpm++3m|unipc|dpm++2m-sde (DDPM-trained models), "
                "flow|heun|midpoint (rectified flow); default ddpm, flow for qk-norm models"},
        {"--steps", CLI_STR, &s->steps, "N|SPEC", "model evaluations, or a respacing for ddpm/ddim: 250, ddim25, 10,10,10 "
                "(default 250; flow, heun, midpoint 50; dpm++/unipc 20)"},
        {"--spacing", CLI_STR, &s->spacing, "linspace|leading|trailing", "dpm++/unipc timestep spacing (default linspace)"},
        {"--karras", CLI_BOOL, &s->karras, NULL, "dpm++/unipc: Karras sigmas"},
        {"--order", CLI_INT, &s->order, "1|2|3", "unipc order (default 2)"},
        {"--cfg-interval", CLI_STR, &s->cfg_interval, "LO,HI", "guidance only for timesteps in [LO,HI] (flow: t in [0,1])"},
        {"--cfg", CLI_FLOAT, &s->cfg, "S", "guidance scale, 1 = none (default 1.5)"},
        {"--cfg-channels", CLI_STR, &s->cfg_channels, "3|all", "guided channels (default: DiT/DiT-MoE 3, Switch-DiT and flow all)"},
        {"--eta", CLI_FLOAT, &s->eta, "E", "DDIM eta, 0 to 1 (default 0)"},
        {"--schedule", CLI_STR, &s->schedule, "linear|cosine", "default: cosine for Switch-DiT, else linear"},
        {"--seed", CLI_STR, &s->seed, "S", "seed (default 0)"},
    };
    _Static_assert(sizeof table / sizeof table[0] + CLI_MODEL_FLAGS == CLI_SAMPLING_FLAGS,
                   "update CLI_SAMPLING_FLAGS in cli.h");
    memcpy(f, table, sizeof table);
    return (int)(sizeof table / sizeof table[0]) + cli_model_flags(&s->load, f + sizeof table / sizeof table[0]);
}

/* A string value, or a number printed as one (for "steps": 250). */
static char *json_str(cJSON *j, const char *key)
{
    char buf[64];
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        return strdup(buf);
    }
    return NULL;
}

int cli_sampling_defaults(const char *cmd, cli_sampling *s, const char *model_path)
{
    char dir[4096], path[4200];
    struct stat st;
    snprintf(dir, sizeof dir, "%s", model_path);
    if (stat(model_path, &st) || !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    snprintf(path, sizeof path, "%s/defaults.json", dir);
    if (access(path, F_OK)) return 0;
    me_file f;
    if (me_file_open(path, &f)) return cli_fail(MOEDIT_EINPUT);
    int rc = cli_sampling_defaults_json(cmd, s, dir, path, (const char *)f.data, f.size);
    me_file_close(&f);
    return rc;
}

int cli_defaults_hints(const char *cmd, const char *model_path, int *heads, int *top_k)
{
    cli_sampling s;
    cli_sampling_init(&s);
    s.load.heads = *heads;
    s.load.top_k = *top_k;
    int rc = cli_sampling_defaults(cmd, &s, model_path);
    if (!rc) *heads = s.load.heads, *top_k = s.load.top_k;
    cli_sampling_free(&s);
    return rc;
}

int cli_sampling_defaults_json(const char *cmd, cli_sampling *s, const char *dir, const char *path,
                               const char *text, size_t size)
{
    cJSON *j = cJSON_ParseWithLength(text, size);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cli_usage_error(cmd, "%s: not a JSON object", path);
    }
    if (check_json_types(cmd, path, j)) {
        cJSON_Delete(j);
        return 2;
    }
    free(s->json_path);
    s->json_path = strdup(path);
    const char **slots[] = {&s->sampler, &s->steps, &s->cfg_channels, &s->schedule};
    static const char *keys[] = {"sampler", "steps", "cfg_channels", "schedule"};
    /* the file's steps belong to the file's sampler (20 for dpm++2m would be
       a poor DDPM run): another --sampler takes its own default steps */
    cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "sampler");
    const int steps_apply = !s->sampler || (cJSON_IsString(js) && !strcmp(js->valuestring, s->sampler));
    for (int i = 0; i < 4; i++)
        if (!*slots[i] && (i != 1 || steps_apply)) *slots[i] = s->owned[i] = json_str(j, keys[i]);
    if (!s->spacing) s->spacing = s->owned_solver[0] = json_str(j, "spacing");
    if (!s->cfg_interval) s->cfg_interval = s->owned_solver[1] = json_str(j, "cfg_interval");
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "karras");
    s->json_karras = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(j, "order");
    if (cJSON_IsNumber(v)) s->json_order = v->valueint;
    v = cJSON_GetObjectItemCaseSensitive(j, "cfg");
    if (isnan(s->cfg) && cJSON_IsNumber(v)) s->cfg = (float)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(j, "heads");
    if (s->load.heads == INT_MIN && cJSON_IsNumber(v)) s->load.heads = v->valueint;
    v = cJSON_GetObjectItemCaseSensitive(j, "top_k");
    if (s->load.top_k == INT_MIN && cJSON_IsNumber(v)) s->load.top_k = v->valueint;
    v = cJSON_GetObjectItemCaseSensitive(j, "vae");
    if (!s->vae && cJSON_IsString(v)) {
        size_t len = strlen(dir) + strlen(v->valuestring) + 2;
        if ((s->owned[4] = malloc(len))) {
            if (v->valuestring[0] == '/') snprintf(s->owned[4], len, "%s", v->valuestring);
            else snprintf(s->owned[4], len, "%s/%s", dir, v->valuestring);
        }
        s->vae = s->owned[4];
    }
    cJSON_Delete(j);
    return 0;
}

int cli_sampling_resolve(const char *cmd, const cli_sampling *s, const moedit_model *m,
                         moedit_sample_options *o)
{
    moedit_sample_defaults(m, o);
    const moedit_config *c = moedit_model_config(m);
    char src[4300];
    if (s->sampler) {
        int k = 0;
        while (me_sampler_name((moedit_sampler)k) && strcmp(me_sampler_name((moedit_sampler)k), s->sampler)) k++;
        if (!me_sampler_name((moedit_sampler)k))
            return cli_usage_error(cmd, "%s: '%s' is not ddpm, ddim, dpm++2m, dpm++3m, unipc, dpm++2m-sde, "
                                   "flow, heun or midpoint",
                                   cli_sampling_source(s, s->sampler, s->owned[0], "--sampler", "sampler", src, sizeof src),
                                   s->sampler);
        o->sampler = (moedit_sampler)k;
        if (!s->steps) o->steps = me_default_steps(o->sampler, c->family == MOEDIT_FAMILY_SWITCH_DIT);
    }
    if (s->steps) o->steps = s->steps;
    int tmp;
    if (me_sample_evaluations(o, &tmp)) {
        if (s->steps && s->steps == s->owned[1])
            return cli_usage_error(cmd, "%s \"steps\": %s", s->json_path, moedit_last_error());
        /* --steps refused by a sampler the user did not name: say where it came from */
        if (s->sampler && s->sampler == s->owned[0])
            return cli_usage_error(cmd, "--%s (the sampler from %s; --sampler picks another)", moedit_last_error(),
                                   cli_sampling_source(s, s->sampler, s->owned[0], "--sampler", "sampler", src, sizeof src));
        return cli_usage_error(cmd, "--%s", moedit_last_error());
    }
    if (!isnan(s->cfg)) o->cfg = s->cfg;
    if (!(o->cfg >= 1) || !isfinite(o->cfg)) return cli_usage_error(cmd, "--cfg: %g must be >= 1 (1 = no guidance)", o->cfg);
    if (s->cfg_channels) {
        long long k;
        if (!strcmp(s->cfg_channels, "all")) o->cfg_channels = 0;
        else if (cli_parse_int(s->cfg_channels, 1, 64, &k))
            return cli_usage_error(cmd, "%s: '%s' is not 3 or all",
                                   cli_sampling_source(s, s->cfg_channels, s->owned[2], "--cfg-channels", "cfg_channels",
                                                       src, sizeof src),
                                   s->cfg_channels);
        else o->cfg_channels = (int)k;
    }
    if (!isnan(s->eta)) {
        if (!(s->eta >= 0 && s->eta <= 1)) return cli_usage_error(cmd, "--eta: %g is not in [0, 1]", s->eta);
        if (o->sampler != MOEDIT_SAMPLER_DDIM) return cli_usage_error(cmd, "--eta applies to --sampler ddim only");
        o->eta = s->eta;
    }
    if (s->schedule) {
        if (!strcmp(s->schedule, "linear")) o->cosine_schedule = 0;
        else if (!strcmp(s->schedule, "cosine")) o->cosine_schedule = 1;
        else return cli_usage_error(cmd, "%s: '%s' is not linear or cosine",
                                    cli_sampling_source(s, s->schedule, s->owned[3], "--schedule", "schedule", src,
                                                        sizeof src),
                                    s->schedule);
    }
    if (s->seed) {
        uint64_t v;
        if (cli_parse_u64(s->seed, &v))
            return cli_usage_error(cmd, "--seed: '%s' is not a non-negative integer", s->seed);
        o->seed = v;
    }
    /* settle the family defaults here, so the run can be reported and repeated */
    if (!s->steps && s->schedule && (o->sampler == MOEDIT_SAMPLER_DDPM || o->sampler == MOEDIT_SAMPLER_DDIM))
        o->steps = me_default_steps(o->sampler, o->cosine_schedule > 0);
    if (o->cfg_channels < 0) o->cfg_channels = c->family == MOEDIT_FAMILY_SWITCH_DIT || me_sampler_is_flow(o->sampler) ? 0 : 3;
    if (o->cosine_schedule < 0) o->cosine_schedule = c->family == MOEDIT_FAMILY_SWITCH_DIT;
    return cli_solver_options(cmd, s, m, o);
}

float cli_latents_peak(size_t count, const float *z)
{
    float peak = 0;
    for (size_t i = 0; i < count; i++) {
        float v = fabsf(z[i]);
        if (isnan(v)) return v;
        if (v > peak) peak = v;
    }
    return peak;
}

void cli_warn_blown_up(const char *cmd, const moedit_sample_options *o, float peak)
{
    if (peak <= CLI_LATENT_PEAK) return;
    if (o && o->cosine_schedule > 0 && !me_sampler_is_flow(o->sampler))
        fprintf(stderr, "moedit %s: warning: the latents reach %g (a model's stay within a few units): the cosine "
                "schedule's step at t=999 (alpha_bar 2.4e-9) multiplies the model's noise error by 2e4 — take "
                "--steps ddimN with ddpm/ddim, or --spacing leading (docs/sampling.md)\n", cmd, peak);
    else
        fprintf(stderr, "moedit %s: warning: the latents reach %g (a model's stay within a few units): the images "
                "are likely noise\n", cmd, peak);
}

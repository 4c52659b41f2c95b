/* Loading the AutoencoderKL decoder: config (config.json or inferred from
   shapes), then every weight by name with its shape checked. Names are
   written diffusers-first; ldm_* variants give CompVis latent-diffusion's. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/core.h"
#include "vae/vae.h"

/* ---- config --------------------------------------------------------------- */

/* diffusers' AutoencoderKL defaults for keys a config.json leaves out. */
static void config_defaults(vae_config *c)
{
    memset(c, 0, sizeof *c);
    c->num_blocks = 1;
    c->block_out_channels[0] = 64;
    c->layers_per_block = 1;
    c->latent_channels = 4;
    c->out_channels = 3;
    c->norm_num_groups = 32;
    c->mid_attention = 1;
    c->post_quant_conv = 1;
    c->scaling_factor = 0.18215f;
}

static int json_int(const cJSON *root, const char *key, int lo, int hi, int *out, const char *what)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return MOEDIT_OK;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo ||
        j->valuedouble > hi)
        return me_fail(MOEDIT_EINPUT, "%s: %s must be an integer in [%d, %d]", what, key, lo, hi);
    *out = (int)j->valuedouble;
    return MOEDIT_OK;
}

static int json_bool(const cJSON *root, const char *key, int *out, const char *what)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return MOEDIT_OK;
    if (!cJSON_IsBool(j)) return me_fail(MOEDIT_EINPUT, "%s: %s must be true or false", what, key);
    *out = cJSON_IsTrue(j);
    return MOEDIT_OK;
}

/* A string key that, when present, must have the one value moedit implements. */
static int json_expect(const cJSON *root, const char *key, const char *want, const char *what)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return MOEDIT_OK;
    if (!cJSON_IsString(j) || strcmp(j->valuestring, want))
        return me_fail(MOEDIT_EINPUT, "%s: %s %s is not supported (only \"%s\")", what, key,
                       cJSON_IsString(j) ? j->valuestring : "(not a string)", want);
    return MOEDIT_OK;
}

static int check_groups(const vae_config *c, const char *what)
{
    for (int i = 0; i < c->num_blocks; i++)
        if (c->block_out_channels[i] % c->norm_num_groups)
            return me_fail(MOEDIT_EINPUT, "%s: norm_num_groups %d does not divide %d channels", what,
                           c->norm_num_groups, c->block_out_channels[i]);
    return MOEDIT_OK;
}

int vae_config_parse(const char *json, const char *what, vae_config *c)
{
    config_defaults(c);
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return me_fail(MOEDIT_EINPUT, "%s: not a JSON object", what);
    }
    int rc = json_expect(root, "_class_name", "AutoencoderKL", what);
    if (!rc) rc = json_expect(root, "act_fn", "silu", what);
    if (!rc) rc = json_expect(root, "norm_type", "group", what);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    if (!rc && ch) {
        int n = cJSON_GetArraySize(ch);
        if (!cJSON_IsArray(ch) || n < 1 || n > VAE_MAX_BLOCKS)
            rc = me_fail(MOEDIT_EINPUT, "%s: block_out_channels must be a list of 1 to %d integers",
                         what, VAE_MAX_BLOCKS);
        for (int i = 0; !rc && i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(ch, i);
            if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 8192 ||
                e->valuedouble != floor(e->valuedouble))
                rc = me_fail(MOEDIT_EINPUT, "%s: block_out_channels[%d] is not a channel count", what, i);
            else
                c->block_out_channels[i] = (int)e->valuedouble;
        }
        if (!rc) c->num_blocks = n;
    }
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "up_block_types");
    for (int i = 0; !rc && cJSON_IsArray(types) && i < cJSON_GetArraySize(types); i++) {
        const cJSON *e = cJSON_GetArrayItem(types, i);
        if (!cJSON_IsString(e) || strcmp(e->valuestring, "UpDecoderBlock2D"))
            rc = me_fail(MOEDIT_EINPUT, "%s: up_block_types[%d] is not UpDecoderBlock2D", what, i);
    }
    if (!rc) rc = json_int(root, "layers_per_block", 0, VAE_MAX_RESNETS - 1, &c->layers_per_block, what);
    if (!rc) rc = json_int(root, "latent_channels", 1, 1024, &c->latent_channels, what);
    if (!rc) rc = json_int(root, "out_channels", 1, 1024, &c->out_channels, what);
    if (!rc) rc = json_int(root, "norm_num_groups", 1, 8192, &c->norm_num_groups, what);
    if (!rc) rc = json_bool(root, "mid_block_add_attention", &c->mid_attention, what);
    if (!rc) rc = json_bool(root, "use_post_quant_conv", &c->post_quant_conv, what);
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(root, "scaling_factor");
    if (!rc && sf && !cJSON_IsNull(sf)) {
        /* checked as the float it is used as: 1e39 becomes inf, which
           scales every latent to 0, and a subnormal one to inf */
        float f = cJSON_IsNumber(sf) ? (float)sf->valuedouble : NAN;
        if (!(f > 0) || !isnormal(f))
            rc = me_fail(MOEDIT_EINPUT, "%s: scaling_factor must be a positive number in float range (%g to %g)",
                         what, FLT_MIN, FLT_MAX);
        else
            c->scaling_factor = f;
    }
    cJSON_Delete(root);
    return rc ? rc : check_groups(c, what);
}

/* ---- names ---------------------------------------------------------------- */

typedef struct {
    me_tensors *ts;
    const char *src;
    char prefix[256];
    int ldm;               /* CompVis naming */
    char name[512];
} loader;

static const char *nm(loader *L, const char *fmt, ...) ME_PRINTF(2, 3);
static const char *nm(loader *L, const char *fmt, ...)
{
    size_t p = strlen(L->prefix);
    memcpy(L->name, L->prefix, p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->name + p, sizeof L->name - p, fmt, ap);
    va_end(ap);
    return L->name;
}

static const me_tensor *find(loader *L, const char *name) { return me_tensors_find(L->ts, name); }

/* Finds where the decoder lives: the prefix in front of decoder.conv_in.weight
   (a whole LDM checkpoint has it under first_stage_model.) and the naming. */
static int locate(loader *L)
{
    static const char key[] = "decoder.conv_in.weight";
    for (int i = 0; i < me_tensors_count(L->ts); i++) {
        const char *name = me_tensors_at(L->ts, i)->name;
        size_t n = strlen(name), k = sizeof key - 1;
        if (n < k || strcmp(name + n - k, key) || (n > k && name[n - k - 1] != '.')) continue;
        if (n - k >= sizeof L->prefix) continue;
        memcpy(L->prefix, name, n - k);
        L->prefix[n - k] = 0;
        L->ldm = find(L, nm(L, "decoder.mid.block_1.conv1.weight")) != NULL;
        return MOEDIT_OK;
    }
    return me_fail(MOEDIT_EINPUT, "%s: no VAE decoder in it (no decoder.conv_in.weight)", L->src);
}

/* Without config.json: read the architecture off the shapes. */
static int infer_config(loader *L, vae_config *c)
{
    config_defaults(c);
    const me_tensor *in = find(L, nm(L, "decoder.conv_in.weight"));
    if (in->ndim != 4 || in->shape[1] < 1 || in->shape[1] > 8192)
        return me_fail(MOEDIT_EINPUT, "%s: %s is not a convolution", L->src, L->name);
    c->latent_channels = (int)in->shape[1];
    const me_tensor *out = find(L, nm(L, "decoder.conv_out.weight"));
    if (!out || out->ndim != 4 || out->shape[0] < 1 || out->shape[0] > 8192)
        return me_fail(MOEDIT_EINPUT, "%s: missing or misshapen tensor %s", L->src, L->name);
    c->out_channels = (int)out->shape[0];
    int n = 0;
    while (n <= VAE_MAX_BLOCKS && find(L, L->ldm ? nm(L, "decoder.up.%d.block.0.conv1.weight", n)
                                                 : nm(L, "decoder.up_blocks.%d.resnets.0.conv1.weight", n)))
        n++;
    if (n == 0 || n > VAE_MAX_BLOCKS)
        return me_fail(MOEDIT_EINPUT, "%s: %d decoder up blocks (1 to %d supported)", L->src, n, VAE_MAX_BLOCKS);
    c->num_blocks = n;
    for (int i = 0; i < n; i++) {
        /* Diffusers' up_blocks.i makes block_out_channels[n-1-i]; LDM's up.i makes [i]. */
        const me_tensor *t = find(L, L->ldm ? nm(L, "decoder.up.%d.block.0.conv1.weight", i)
                                            : nm(L, "decoder.up_blocks.%d.resnets.0.conv1.weight", i));
        if (t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 8192)
            return me_fail(MOEDIT_EINPUT, "%s: %s is not a convolution", L->src, L->name);
        c->block_out_channels[L->ldm ? i : n - 1 - i] = (int)t->shape[0];
    }
    int r = 0;
    while (r <= VAE_MAX_RESNETS && find(L, L->ldm ? nm(L, "decoder.up.%d.block.%d.conv1.weight", n - 1, r)
                                                  : nm(L, "decoder.up_blocks.0.resnets.%d.conv1.weight", r)))
        r++;
    if (r < 1 || r > VAE_MAX_RESNETS)
        return me_fail(MOEDIT_EINPUT, "%s: %d resnets per up block (1 to %d supported)", L->src, r, VAE_MAX_RESNETS);
    c->layers_per_block = r - 1;
    c->mid_attention = find(L, nm(L, "decoder.mid.attn_1.q.weight")) ||
                       find(L, nm(L, "decoder.mid_block.attentions.0.to_q.weight")) ||
                       find(L, nm(L, "decoder.mid_block.attentions.0.query.weight"));
    c->post_quant_conv = find(L, nm(L, "post_quant_conv.weight")) != NULL;
    for (int i = 0; i < n; i++)
        if (c->block_out_channels[i] % c->norm_num_groups)
            return me_fail(MOEDIT_EINPUT, "%s: %d channels do not split into 32 groups "
                           "(the default without a config.json)", L->src, c->block_out_channels[i]);
    return MOEDIT_OK;
}

/* A config.json that describes less than the weights hold (fewer blocks or
   resnets, no mid attention, no post_quant_conv) would decode with some of
   them silently unused: each such tensor is an error. */
static int check_config_covers(loader *L, const vae_config *c)
{
    const char *extra = NULL;
    int n = c->num_blocks;
    if (find(L, L->ldm ? nm(L, "decoder.up.%d.block.0.conv1.weight", n)
                       : nm(L, "decoder.up_blocks.%d.resnets.0.conv1.weight", n)))
        extra = "block_out_channels";
    for (int i = 0; i < n && !extra; i++)
        if (find(L, L->ldm ? nm(L, "decoder.up.%d.block.%d.conv1.weight", i, c->layers_per_block + 1)
                           : nm(L, "decoder.up_blocks.%d.resnets.%d.conv1.weight", i, c->layers_per_block + 1)))
            extra = "layers_per_block";
    if (!extra && !c->mid_attention &&
        (find(L, nm(L, "decoder.mid.attn_1.q.weight")) || find(L, nm(L, "decoder.mid_block.attentions.0.to_q.weight")) ||
         find(L, nm(L, "decoder.mid_block.attentions.0.query.weight"))))
        extra = "mid_block_add_attention";
    if (!extra && !c->post_quant_conv && find(L, nm(L, "post_quant_conv.weight"))) extra = "use_post_quant_conv";
    return extra ? me_fail(MOEDIT_EINPUT, "%s: config.json's %s leaves tensor %s unused", L->src, extra, L->name)
                 : MOEDIT_OK;
}

/* ---- weights ------------------------------------------------------------------ */

static int load_norm(loader *L, vae_norm *n, const char *base, int c)
{
    int rc = me_tensors_f32(L->ts, nm(L, "%s.weight", base), 1, (int64_t[]){c}, &n->w);
    if (!rc) rc = me_tensors_f32(L->ts, nm(L, "%s.bias", base), 1, (int64_t[]){c}, &n->b);
    return rc;
}

static int load_conv(loader *L, vae_conv *cv, const char *base, int cin, int cout, int k, int up)
{
    cv->s = (op_conv_shape){.cin = cin, .cout = cout, .kh = k, .kw = k, .stride = 1,
                            .pad_h = k / 2, .pad_w = k / 2, .upsample2x = up};
    int rc = me_tensors_f32(L->ts, nm(L, "%s.weight", base), 4, (int64_t[]){cout, cin, k, k}, &cv->w);
    if (!rc) rc = me_tensors_f32(L->ts, nm(L, "%s.bias", base), 1, (int64_t[]){cout}, &cv->b);
    return rc;
}

/* base without the prefix, e.g. "decoder.mid_block.resnets.0". */
static int load_resnet(loader *L, vae_resnet *r, const char *base, int cin, int cout)
{
    char s[600];
    r->cin = cin;
    r->cout = cout;
    int rc;
    snprintf(s, sizeof s, "%s.norm1", base);
    if ((rc = load_norm(L, &r->norm1, s, cin))) return rc;
    snprintf(s, sizeof s, "%s.conv1", base);
    if ((rc = load_conv(L, &r->conv1, s, cin, cout, 3, 0))) return rc;
    snprintf(s, sizeof s, "%s.norm2", base);
    if ((rc = load_norm(L, &r->norm2, s, cout))) return rc;
    snprintf(s, sizeof s, "%s.conv2", base);
    if ((rc = load_conv(L, &r->conv2, s, cout, cout, 3, 0))) return rc;
    if (cin == cout) return MOEDIT_OK;
    snprintf(s, sizeof s, "%s.%s", base, L->ldm ? "nin_shortcut" : "conv_shortcut");
    return load_conv(L, &r->shortcut, s, cin, cout, 1, 0);
}

/* A [c, c] projection stored as a Linear or (LDM) as a 1×1 convolution. */
static int load_proj(loader *L, const char *base, const char *proj, int c, const float **w, const float **b)
{
    const me_tensor *t = find(L, nm(L, "%s.%s.weight", base, proj));
    int nd = t && t->ndim == 4 ? 4 : 2;
    int rc = me_tensors_f32(L->ts, L->name, nd, (int64_t[]){c, c, 1, 1}, w);
    if (!rc) rc = me_tensors_f32(L->ts, nm(L, "%s.%s.bias", base, proj), 1, (int64_t[]){c}, b);
    return rc;
}

static int load_attention(loader *L, vae_attention *a, int c)
{
    const char *base = L->ldm ? "decoder.mid.attn_1" : "decoder.mid_block.attentions.0";
    /* Three generations of names for the same four projections. */
    static const char *names[3][5] = {
        {"group_norm", "to_q", "to_k", "to_v", "to_out.0"},
        {"group_norm", "query", "key", "value", "proj_attn"},
        {"norm", "q", "k", "v", "proj_out"},
    };
    int g = L->ldm ? 2 : find(L, nm(L, "%s.query.weight", base)) ? 1 : 0;
    char norm[128];
    snprintf(norm, sizeof norm, "%s.%s", base, names[g][0]);
    a->c = c;
    int rc = load_norm(L, &a->norm, norm, c);
    if (!rc) rc = load_proj(L, base, names[g][1], c, &a->wq, &a->bq);
    if (!rc) rc = load_proj(L, base, names[g][2], c, &a->wk, &a->bk);
    if (!rc) rc = load_proj(L, base, names[g][3], c, &a->wv, &a->bv);
    if (!rc) rc = load_proj(L, base, names[g][4], c, &a->wo, &a->bo);
    return rc;
}

static int load_weights(loader *L, moedit_vae *v)
{
    const vae_config *c = &v->cfg;
    int n = c->num_blocks, top = c->block_out_channels[n - 1], lat = c->latent_channels, rc;
    char base[128];
    if (c->post_quant_conv && (rc = load_conv(L, &v->post_quant_conv, "post_quant_conv", lat, lat, 1, 0)))
        return rc;
    if ((rc = load_conv(L, &v->conv_in, "decoder.conv_in", lat, top, 3, 0))) return rc;
    for (int i = 0; i < 2; i++) {
        if (L->ldm) snprintf(base, sizeof base, "decoder.mid.block_%d", i + 1);
        else snprintf(base, sizeof base, "decoder.mid_block.resnets.%d", i);
        if ((rc = load_resnet(L, &v->mid_resnets[i], base, top, top))) return rc;
    }
    if (c->mid_attention && (rc = load_attention(L, &v->mid_attn, top))) return rc;
    int prev = top;
    for (int i = 0; i < n; i++) {
        vae_up_block *u = &v->up[i];
        u->cin = prev;
        u->cout = c->block_out_channels[n - 1 - i];
        int level = n - 1 - i;   /* LDM: up.0 is the full-resolution block, run last */
        for (int j = 0; j <= c->layers_per_block; j++) {
            if (L->ldm) snprintf(base, sizeof base, "decoder.up.%d.block.%d", level, j);
            else snprintf(base, sizeof base, "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((rc = load_resnet(L, &u->resnets[j], base, j ? u->cout : u->cin, u->cout))) return rc;
        }
        if (i < n - 1) {
            if (L->ldm) snprintf(base, sizeof base, "decoder.up.%d.upsample.conv", level);
            else snprintf(base, sizeof base, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if ((rc = load_conv(L, &u->upsample, base, u->cout, u->cout, 3, 1))) return rc;
        }
        prev = u->cout;
    }
    int c0 = c->block_out_channels[0];
    if ((rc = load_norm(L, &v->norm_out, L->ldm ? "decoder.norm_out" : "decoder.conv_norm_out", c0))) return rc;
    return load_conv(L, &v->conv_out, "decoder.conv_out", c0, c->out_channels, 3, 0);
}

/* Where the config.json metadata came from, for messages: a diffusers
   folder's own file (the tensors' source is then the folder, if sharded,
   or its diffusion_pytorch_model.* weights file), else the metadata entry
   of the one file (as convert writes it). */
static void config_json_name(const char *src, char *buf, size_t cap)
{
    static const char weights[] = "diffusion_pytorch_model";
    const char *slash = strrchr(src, '/'), *base = slash ? slash + 1 : src;
    struct stat st;
    if (!stat(src, &st) && S_ISDIR(st.st_mode)) snprintf(buf, cap, "%s/config.json", src);
    else if (!strncmp(base, weights, sizeof weights - 1)) snprintf(buf, cap, "%.*sconfig.json", (int)(base - src), src);
    else snprintf(buf, cap, "%s (its config.json metadata)", src);
}

int vae_from_tensors(me_tensors *ts, moedit_vae **out)
{
    *out = NULL;
    moedit_vae *v = calloc(1, sizeof *v);
    if (!v) {
        me_tensors_free(ts);
        return me_fail(MOEDIT_EINTERNAL, "out of memory");
    }
    v->ts = ts;
    loader L = {.ts = ts, .src = me_tensors_source(ts)};
    int rc = locate(&L);
    const char *json = me_tensors_meta(ts, "config.json");
    if (!rc) {
        if (json) {
            char what[600];
            config_json_name(L.src, what, sizeof what);
            rc = vae_config_parse(json, what, &v->cfg);
            if (!rc) rc = check_config_covers(&L, &v->cfg);
        } else {
            rc = infer_config(&L, &v->cfg);
        }
    }
    if (!rc) rc = load_weights(&L, v);
    if (!rc) rc = vae_pack(v, 0);
    if (rc) {
        moedit_vae_free(v);
        return rc;
    }
    *out = v;
    return MOEDIT_OK;
}

int moedit_vae_load(const char *path, moedit_vae **out)
{
    *out = NULL;
    char resolved[4096];
    if (moedit_model_path(path, resolved, sizeof resolved)) return MOEDIT_EINPUT;
    path = resolved;
    /* A whole pipeline folder (stable-diffusion layout) keeps the VAE in vae/. */
    char sub[4096 + 32];   /* room for a resolved path plus "/vae/config.json" */
    struct stat st;
    snprintf(sub, sizeof sub, "%s/vae/config.json", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && stat(sub, &st) == 0) {
        snprintf(sub, sizeof sub, "%s/vae", path);
        path = sub;
    }
    me_tensors *ts;
    int rc = me_tensors_open(path, &ts);
    if (rc) return rc;
    return vae_from_tensors(ts, out);
}

void moedit_vae_free(moedit_vae *v)
{
    if (!v) return;
    vae_workspace_free(&v->ws);
    vae_unpack(v);
    me_tensors_free(v->ts);
    free(v);
}

float moedit_vae_scaling_factor(const moedit_vae *v) { return v->cfg.scaling_factor; }
int moedit_vae_latent_channels(const moedit_vae *v) { return v->cfg.latent_channels; }
int moedit_vae_out_channels(const moedit_vae *v) { return v->cfg.out_channels; }
int moedit_vae_upscale(const moedit_vae *v) { return 1 << (v->cfg.num_blocks - 1); }

int moedit_vae_digest(moedit_vae *v, uint32_t *crc) { return me_tensors_digest(v->ts, crc); }

/* moedit inspect / moedit convert: what a checkpoint holds (tensors, dtypes,
   parameters, detected family and config) and its rewrite as safetensors
   with that config in __metadata__, so later loads need no --heads/--top-k. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "dit/config.h"
#include "weights/formats.h"

/* ---- what the tensors are --------------------------------------------- */

/* An AutoencoderKL decoder, in diffusers or original LDM naming, possibly
   inside a bigger checkpoint (prefix "first_stage_model.", "vae.", …). */
typedef struct {
    char prefix[128];
    int ldm;                    /* decoder.up.N.block.M vs decoder.up_blocks.N.resnets.M */
    int latent_channels, out_channels, num_blocks, layers_per_block;
    int block_out_channels[8];  /* encoder order, as in diffusers' config */
    double scaling_factor;      /* from config.json; 0 when unknown */
} vae_info;

static int detect_vae(const me_tensors *ts, vae_info *v)
{
    static const char key[] = "decoder.conv_in.weight";
    const size_t klen = sizeof key - 1;
    memset(v, 0, sizeof *v);
    char name[256];
    const me_tensor *in = NULL, *out = NULL;
    for (int i = 0; i < me_tensors_count(ts) && !in; i++) {
        const me_tensor *t = me_tensors_at(ts, i);
        size_t n = strlen(t->name);
        if (n < klen || strcmp(t->name + n - klen, key) || n - klen >= sizeof v->prefix) continue;
        if (n > klen && t->name[n - klen - 1] != '.') continue;
        memcpy(v->prefix, t->name, n - klen);
        v->prefix[n - klen] = 0;
        in = t;
    }
    if (!in || in->ndim != 4) return 0;
    snprintf(name, sizeof name, "%sdecoder.conv_out.weight", v->prefix);
    out = me_tensors_find(ts, name);
    v->latent_channels = (int)in->shape[1];
    v->out_channels = out && out->ndim == 4 ? (int)out->shape[0] : 0;

    /* Block and resnet counts from the names; channels from each block's first conv. */
    size_t plen = strlen(v->prefix);
    int max_block = -1, max_resnet = -1;
    for (int i = 0; i < me_tensors_count(ts); i++) {
        const char *n = me_tensors_at(ts, i)->name;
        int b, r, used = 0;
        if (strncmp(n, v->prefix, plen)) continue;
        n += plen;
        if (sscanf(n, "decoder.up_blocks.%d.resnets.%d.%n", &b, &r, &used) == 2 && used) v->ldm = 0;
        else if (sscanf(n, "decoder.up.%d.block.%d.%n", &b, &r, &used) == 2 && used) v->ldm = 1;
        else continue;
        if (b < 0 || b >= 8 || r < 0 || r > 64) continue;
        if (b > max_block) max_block = b;
        if (b == 0 && r > max_resnet) max_resnet = r;
    }
    v->num_blocks = max_block + 1;
    v->layers_per_block = max_resnet;   /* diffusers' up blocks hold layers_per_block + 1 resnets */
    for (int b = 0; b < v->num_blocks; b++) {
        snprintf(name, sizeof name, v->ldm ? "%sdecoder.up.%d.block.0.conv1.weight"
                                           : "%sdecoder.up_blocks.%d.resnets.0.conv1.weight", v->prefix, b);
        const me_tensor *t = me_tensors_find(ts, name);
        int slot = v->ldm ? b : v->num_blocks - 1 - b;   /* diffusers counts up blocks from the bottom */
        v->block_out_channels[slot] = t && t->ndim == 4 ? (int)t->shape[0] : 0;
    }
    const char *cfg = me_tensors_meta(ts, "config.json");
    cJSON *j = cfg ? cJSON_Parse(cfg) : NULL;
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(j, "scaling_factor");
    if (cJSON_IsNumber(sf)) v->scaling_factor = sf->valuedouble;
    cJSON_Delete(j);
    return 1;
}

typedef struct {
    int is_vae, is_model;
    vae_info vae;
    moedit_config cfg;
    char why[512];              /* detection message when neither */
} detected;

static void detect(const me_tensors *ts, const moedit_load_options *opt, detected *d)
{
    memset(d, 0, sizeof *d);
    if (detect_vae(ts, &d->vae)) { d->is_vae = 1; return; }
    if (me_detect_config(ts, opt, &d->cfg) == MOEDIT_OK) { d->is_model = 1; return; }
    snprintf(d->why, sizeof d->why, "%s", moedit_last_error());
}

static const char *attention_name(moedit_attention a) { return a == MOEDIT_ATTN_QKNORM ? "qknorm" : "timm"; }

static const char *routing_name(moedit_routing r)
{
    return r == MOEDIT_ROUTING_DMOE ? "dmoe" : r == MOEDIT_ROUTING_DTR ? "dtr" : NULL;
}

/* --heads/--top-k given (flagged, not from a defaults.json beside the
   file), yet no transformer detected: the hints describe one this file is
   not, or one they do not fit (3 heads of a hidden size 16); an error then,
   not "family unknown". 1 after one line, else 0. */
static int hints_misfit(const detected *d, int flagged)
{
    if (d->is_model || d->is_vae || !flagged) return 0;
    fprintf(stderr, "moedit: %s\n", d->why);
    return 1;
}

/* ---- inspect ------------------------------------------------------------ */

static void dtype_counts(const me_tensors *ts, int counts[ME_DTYPE_COUNT])
{
    memset(counts, 0, ME_DTYPE_COUNT * sizeof *counts);
    for (int i = 0; i < me_tensors_count(ts); i++) counts[me_tensors_at(ts, i)->dtype]++;
}

static int print_json(const me_tensors *ts, const detected *d)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return 1;
    const moedit_config *c = &d->cfg;
    const char *family = d->is_vae ? "vae" : d->is_model ? me_family_name(c->family) : NULL;
    if (family) cJSON_AddStringToObject(o, "family", family);
    else cJSON_AddNullToObject(o, "family");
    if (!family) cJSON_AddStringToObject(o, "detect_error", d->why);
    cJSON_AddNumberToObject(o, "params", (double)me_tensors_param_count(ts));
    cJSON_AddNumberToObject(o, "tensors", me_tensors_count(ts));
    int counts[ME_DTYPE_COUNT];
    dtype_counts(ts, counts);
    cJSON *dt = cJSON_AddObjectToObject(o, "dtypes");
    for (int i = 0; i < ME_DTYPE_COUNT; i++)
        if (counts[i]) cJSON_AddNumberToObject(dt, me_dtype_name((me_dtype)i), counts[i]);

    /* Transformer keys are always present (null when not a transformer), so
       scripts can read them without checking the family first. */
    struct { const char *key; int value; } ints[] = {
        {"depth", c->depth}, {"hidden", c->hidden}, {"heads", c->heads}, {"patch", c->patch},
        {"input_size", c->input_size}, {"in_channels", c->in_channels},
        {"out_channels", d->is_vae ? d->vae.out_channels : c->out_channels},
        {"num_classes", c->num_classes}, {"num_experts", c->num_experts}, {"top_k", c->top_k},
        {"mlp_hidden", c->mlp_hidden}, {"shared_hidden", c->shared_hidden},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int known = d->is_model || (d->is_vae && !strcmp(ints[i].key, "out_channels"));
        if (known) cJSON_AddNumberToObject(o, ints[i].key, ints[i].value);
        else cJSON_AddNullToObject(o, ints[i].key);
    }
    if (d->is_model) {
        cJSON_AddBoolToObject(o, "learn_sigma", c->learn_sigma);
        cJSON_AddBoolToObject(o, "flow", c->flow);
        cJSON_AddStringToObject(o, "attention", attention_name(c->attention));
    } else {
        cJSON_AddNullToObject(o, "learn_sigma");
        cJSON_AddNullToObject(o, "flow");
        cJSON_AddNullToObject(o, "attention");
    }
    const char *routing = d->is_model ? routing_name(c->routing) : NULL;
    if (routing) cJSON_AddStringToObject(o, "routing", routing);
    else cJSON_AddNullToObject(o, "routing");
    if (d->is_vae) {
        const vae_info *v = &d->vae;
        cJSON_AddNumberToObject(o, "latent_channels", v->latent_channels);
        cJSON_AddNumberToObject(o, "layers_per_block", v->layers_per_block);
        cJSON_AddItemToObject(o, "block_out_channels", cJSON_CreateIntArray(v->block_out_channels, v->num_blocks));
        cJSON_AddNumberToObject(o, "upscale", v->num_blocks > 0 ? 1 << (v->num_blocks - 1) : 1);
        cJSON_AddStringToObject(o, "naming", v->ldm ? "ldm" : "diffusers");
        cJSON_AddStringToObject(o, "prefix", v->prefix);
        if (v->scaling_factor > 0) cJSON_AddNumberToObject(o, "scaling_factor", v->scaling_factor);
        else cJSON_AddNullToObject(o, "scaling_factor");
    }
    cJSON *meta = cJSON_AddObjectToObject(o, "metadata");
    for (int i = 0; i < me_tensors_meta_count(ts); i++) {
        const char *k, *v;
        me_tensors_meta_at(ts, i, &k, &v);
        cJSON_AddStringToObject(meta, k, v);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return 1;
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

/* "51,680" */
static const char *grouped(int64_t n, char *buf, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < size; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

/* One line of a metadata value: config.json is multi-line, any value may be long. */
static void print_meta_value(const char *v)
{
    size_t n = strcspn(v, "\r\n");
    int cut = v[n] != 0 || n > 70;
    printf("%.*s%s\n", (int)(n > 70 ? 70 : n), v, cut ? " …" : "");
}

static void print_human(const char *path, const me_tensors *ts, const detected *d, int all)
{
    char buf[64];
    int64_t params = me_tensors_param_count(ts);
    printf("%s\n", path);
    printf("  tensors      %d\n", me_tensors_count(ts));
    double p = (double)params;
    const char *unit = p >= 1e9 ? "B" : p >= 1e6 ? "M" : "K";
    printf("  parameters   %s (%.1f%s)\n", grouped(params, buf, sizeof buf),
           p / (p >= 1e9 ? 1e9 : p >= 1e6 ? 1e6 : 1e3), unit);
    int counts[ME_DTYPE_COUNT];
    dtype_counts(ts, counts);
    printf("  dtypes      ");
    for (int i = 0; i < ME_DTYPE_COUNT; i++)
        if (counts[i]) printf(" %s×%d", me_dtype_name((me_dtype)i), counts[i]);
    printf("\n");
    const moedit_config *c = &d->cfg;
    if (d->is_model) {
        printf("  family       %s\n", me_family_name(c->family));
        printf("  config       depth %d, hidden %d, heads %d, patch %d, input_size %d, in_channels %d, "
               "out_channels %d, num_classes %d, learn_sigma %s, attention %s%s\n",
               c->depth, c->hidden, c->heads, c->patch, c->input_size, c->in_channels, c->out_channels,
               c->num_classes, c->learn_sigma ? "yes" : "no", attention_name(c->attention),
               c->flow ? ", rectified flow" : "");
        if (c->num_experts)
            printf("  experts      %d, top_k %d%s%s, expert width %d%s\n", c->num_experts, c->top_k,
                   routing_name(c->routing) ? ", routing " : "",
                   routing_name(c->routing) ? routing_name(c->routing) : "", c->mlp_hidden,
                   c->shared_hidden ? ", shared expert" : "");
        else if (c->routing == MOEDIT_ROUTING_DTR)
            printf("  routing      dtr\n");
    } else if (d->is_vae) {
        const vae_info *v = &d->vae;
        printf("  family       vae (AutoencoderKL decoder, %s names%s%s)\n", v->ldm ? "LDM" : "diffusers",
               *v->prefix ? ", under " : "", v->prefix);
        printf("  config       latent_channels %d, out_channels %d, layers_per_block %d, upscale %d, "
               "block_out_channels [", v->latent_channels, v->out_channels, v->layers_per_block,
               v->num_blocks > 0 ? 1 << (v->num_blocks - 1) : 1);
        for (int i = 0; i < v->num_blocks; i++) printf(i ? ",%d" : "%d", v->block_out_channels[i]);
        printf("]");
        if (v->scaling_factor > 0) printf(", scaling_factor %g", v->scaling_factor);
        printf("\n");
    } else {
        printf("  family       unknown (%s)\n", d->why);
    }
    for (int i = 0; i < me_tensors_meta_count(ts); i++) {
        const char *k, *v;
        me_tensors_meta_at(ts, i, &k, &v);
        printf("  %-12s %s = ", i ? "" : "metadata", k);
        print_meta_value(v);
    }

    int n = me_tensors_count(ts), shown = all || n <= 60 ? n : 40, width = 0;
    for (int i = 0; i < shown; i++) {
        int len = (int)strlen(me_tensors_at(ts, i)->name);
        if (len > width) width = len < 72 ? len : 72;
    }
    printf("\n");
    for (int i = 0; i < shown; i++) {
        const me_tensor *t = me_tensors_at(ts, i);
        char shape[160];
        printf("  %-*s %-5s %s\n", width, t->name, me_dtype_name(t->dtype),
               me_shape_str(t->ndim, t->shape, shape, sizeof shape));
    }
    if (shown < n) printf("  … %d more (--all lists every tensor)\n", n - shown);
}

int cmd_inspect(int argc, char **argv)
{
    int json = 0, all = 0, help = 0, heads = INT_MIN, top_k = INT_MIN;
    moedit_load_options opt = {0};
    const cli_flag flags[] = {
        {"--json", CLI_BOOL, &json, NULL, "print one JSON object"},
        {"--all", CLI_BOOL, &all, NULL, "list every tensor (default: the first 40 of large models)"},
        {"--heads", CLI_INT, &heads, "H", CLI_HEADS_HELP},
        {"--top-k", CLI_INT, &top_k, "K", CLI_TOP_K_HELP},
        {"--no-verify", CLI_BOOL, &opt.no_verify, NULL, CLI_NO_VERIFY_HELP},
        {"--help", CLI_BOOL, &help, NULL, "this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse("inspect", argc, argv, flags, pos, 1, &npos)) return 2;
    if (help) { cli_usage("inspect", "PATH|ALIAS [--json] [--all]", flags); return 0; }
    if (npos != 1)
        return cli_usage_error("inspect", "expected one checkpoint file, folder or alias (fmnist-moe, fmnist-switch, "
                               "fmnist-vae)");
    const char *path = cli_model_path(pos[0]);
    const int flagged = heads != INT_MIN || top_k != INT_MIN;
    if (cli_defaults_hints("inspect", path, &heads, &top_k) || cli_model_hints("inspect", heads, top_k, &opt)) return 2;

    me_tensors *ts;
    int rc = me_tensors_open(path, &ts);
    if (rc) return cli_fail(rc);
    detected d;
    detect(ts, &opt, &d);
    if (hints_misfit(&d, flagged)) {
        me_tensors_free(ts);
        return 2;
    }
    rc = 0;
    if (json) rc = print_json(ts, &d);
    else print_human(path, ts, &d, all);
    me_tensors_free(ts);
    if (rc) fprintf(stderr, "moedit inspect: out of memory\n");
    return rc;
}

/* ---- convert ------------------------------------------------------------ */

static int set_int(me_tensors *ts, const char *key, int v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", v);
    return me_tensors_set_meta(ts, key, buf);
}

/* The config as strings in __metadata__ (dit/config.c reads heads, top_k,
   input_size, num_classes and flow back). */
static int record_config(me_tensors *ts, const detected *d)
{
    int rc = me_tensors_set_meta(ts, "format", "moedit");
    if (d->is_vae) {
        const vae_info *v = &d->vae;
        rc = rc ? rc : me_tensors_set_meta(ts, "family", "vae");
        rc = rc ? rc : set_int(ts, "latent_channels", v->latent_channels);
        rc = rc ? rc : set_int(ts, "out_channels", v->out_channels);
        return rc;
    }
    if (!d->is_model) return rc;
    const moedit_config *c = &d->cfg;
    const char *routing = routing_name(c->routing);
    rc = rc ? rc : me_tensors_set_meta(ts, "family", me_family_name(c->family));
    rc = rc ? rc : set_int(ts, "depth", c->depth);
    rc = rc ? rc : set_int(ts, "hidden", c->hidden);
    rc = rc ? rc : set_int(ts, "heads", c->heads);
    rc = rc ? rc : set_int(ts, "patch", c->patch);
    rc = rc ? rc : set_int(ts, "input_size", c->input_size);
    rc = rc ? rc : set_int(ts, "in_channels", c->in_channels);
    rc = rc ? rc : set_int(ts, "out_channels", c->out_channels);
    rc = rc ? rc : set_int(ts, "num_classes", c->num_classes);
    rc = rc ? rc : me_tensors_set_meta(ts, "learn_sigma", c->learn_sigma ? "true" : "false");
    rc = rc ? rc : set_int(ts, "num_experts", c->num_experts);
    rc = rc ? rc : set_int(ts, "top_k", c->top_k);
    rc = rc ? rc : me_tensors_set_meta(ts, "attention", attention_name(c->attention));
    rc = rc ? rc : me_tensors_set_meta(ts, "routing", routing ? routing : "none");
    rc = rc ? rc : me_tensors_set_meta(ts, "flow", c->flow ? "true" : "false");
    return rc;
}

/* A diffusers folder is read through its config.json and
   diffusion_pytorch_model* files, which cli_check_files (comparing the
   folder with --out) does not see: --out naming one of them would replace
   the weights being converted (or shadow them, a .safetensors beside a
   .bin). 1 when it does, 0 otherwise, including when in is not a folder. */
static int out_in_input_folder(const char *in, const char *out)
{
    static const char weights[] = "diffusion_pytorch_model";
    struct stat st;
    if (stat(in, &st) || !S_ISDIR(st.st_mode)) return 0;
    const char *slash = strrchr(out, '/'), *base = slash ? slash + 1 : out;
    if (strncmp(base, weights, sizeof weights - 1) && strcmp(base, "config.json")) return 0;
    char out_dir[PATH_MAX], real_in[PATH_MAX], real_out[PATH_MAX];
    snprintf(out_dir, sizeof out_dir, "%.*s", slash ? (int)(slash - out) + 1 : 1, slash ? out : ".");
    return realpath(in, real_in) && realpath(out_dir, real_out) && !strcmp(real_in, real_out);
}

int cmd_convert(int argc, char **argv)
{
    const char *out = NULL, *dtype_s = "f32";
    int help = 0, heads = INT_MIN, top_k = INT_MIN;
    moedit_load_options opt = {0};
    const cli_flag flags[] = {
        {"--out", CLI_STR, &out, "OUT.safetensors", "output file (names of other formats, .pt .bin .npz …, refused)"},
        {"--dtype", CLI_STR, &dtype_s, "f32|f16|bf16", "float tensors are converted (default f32); a value beyond its range (f16: 65504) is refused"},
        {"--heads", CLI_INT, &heads, "H", CLI_HEADS_HELP},
        {"--top-k", CLI_INT, &top_k, "K", CLI_TOP_K_HELP},
        {"--no-verify", CLI_BOOL, &opt.no_verify, NULL, CLI_NO_VERIFY_HELP},
        {"--help", CLI_BOOL, &help, NULL, "this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse("convert", argc, argv, flags, pos, 1, &npos)) return 2;
    if (help) { cli_usage("convert", "IN|ALIAS --out OUT.safetensors [--dtype f32|f16|bf16]", flags); return 0; }
    if (npos != 1) return cli_usage_error("convert", "expected one input checkpoint or alias");
    if (!out) return cli_usage_error("convert", "--out is required");
    const char *in = cli_model_path(pos[0]);
    const cli_file files[] = {{"IN", in, CLI_IN}, {"--out", out, CLI_OUT}};
    if (cli_check_files("convert", files, 2)) return 2;
    if (out_in_input_folder(in, out))
        return cli_usage_error("convert", "--out %s: would replace or shadow a file the folder %s is read from "
                               "(config.json, diffusion_pytorch_model*)", out, in);
    /* moedit reads a file by its contents, but PyTorch, diffusers and numpy go by the name */
    static const char *const other_formats[] = {".pt", ".pth", ".bin", ".ckpt", ".npz", ".npy", ".json"};
    for (size_t i = 0; i < sizeof other_formats / sizeof other_formats[0]; i++)
        if (cli_has_ext(out, other_formats[i]))
            return cli_usage_error("convert", "--out %s: convert writes safetensors, not the format a %s name "
                                   "promises (name it .safetensors)", out, other_formats[i]);
    const int flagged = heads != INT_MIN || top_k != INT_MIN;
    if (cli_defaults_hints("convert", in, &heads, &top_k) || cli_model_hints("convert", heads, top_k, &opt)) return 2;
    me_dtype dtype;
    if (!strcmp(dtype_s, "f32")) dtype = ME_F32;
    else if (!strcmp(dtype_s, "f16")) dtype = ME_F16;
    else if (!strcmp(dtype_s, "bf16")) dtype = ME_BF16;
    else return cli_usage_error("convert", "--dtype: '%s' is not f32, f16 or bf16", dtype_s);

    me_tensors *ts;
    int rc = me_tensors_open(in, &ts);
    if (rc) return cli_fail(rc);
    detected d;
    detect(ts, &opt, &d);
    if (hints_misfit(&d, flagged)) {
        me_tensors_free(ts);
        return 2;
    }
    rc = record_config(ts, &d);
    if (!rc) rc = me_write_safetensors(ts, out, dtype);
    if (rc) {
        me_tensors_free(ts);
        return cli_fail(rc);
    }
    char buf[64];
    printf("%s: %d tensors, %s parameters, %s floats, family %s\n", out, me_tensors_count(ts),
           grouped(me_tensors_param_count(ts), buf, sizeof buf), me_dtype_name(dtype),
           d.is_vae ? "vae" : d.is_model ? me_family_name(d.cfg.family) : "unknown (no config recorded)");
    me_tensors_free(ts);
    return 0;
}

/* Config detection: every hyper-parameter the weights carry is read from the
   shape of one characteristic tensor; heads and top_k, which no shape
   reveals, come from the options, the safetensors metadata or defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dit/config.h"

const char *me_family_name(moedit_family f)
{
    switch (f) {
    case MOEDIT_FAMILY_DIT: return "dit";
    case MOEDIT_FAMILY_DIT_MOE: return "dit-moe";
    case MOEDIT_FAMILY_SWITCH_DIT: return "switch-dit";
    }
    return "?";
}

/* The tensor `name` with ndim dimensions, or NULL after a message naming it. */
static const me_tensor *need(const me_tensors *ts, const char *name, int ndim)
{
    const me_tensor *t = me_tensors_find(ts, name);
    if (!t) {
        me_fail(MOEDIT_EINPUT, "%s: missing tensor %s", me_tensors_source(ts), name);
        return NULL;
    }
    if (t->ndim != ndim) {
        char got[160];
        me_fail(MOEDIT_EINPUT, "%s: %s: expected %d dimensions, got %s", me_tensors_source(ts),
                name, ndim, me_shape_str(t->ndim, t->shape, got, sizeof got));
        return NULL;
    }
    return t;
}

static int bad_shape(const me_tensors *ts, const me_tensor *t, const char *why)
{
    char got[160];
    return me_fail(MOEDIT_EINPUT, "%s: %s: shape %s %s", me_tensors_source(ts), t->name,
                   me_shape_str(t->ndim, t->shape, got, sizeof got), why);
}

static int has(const me_tensors *ts, const char *name) { return me_tensors_find(ts, name) != NULL; }

/* A positive integer from the metadata into *v (0 when absent); a value that
   is there but not one is an error, not the default it would silently become. */
static int meta_int(const me_tensors *ts, const char *key, int *v)
{
    *v = 0;
    const char *s = me_tensors_meta(ts, key);
    if (!s) return MOEDIT_OK;
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end || x <= 0 || x >= (1 << 24))
        return me_fail(MOEDIT_EINPUT, "%s: metadata %s '%s' is not a positive integer", me_tensors_source(ts), key, s);
    *v = (int)x;
    return MOEDIT_OK;
}

/* Blocks are counted up to the first missing one; a later block present, or
   metadata naming another depth, means the file lost blocks in the middle. */
static int check_depth(const me_tensors *ts, int depth)
{
    int meta;
    if (meta_int(ts, "depth", &meta)) return MOEDIT_EINPUT;
    if (meta && meta != depth)
        return me_fail(MOEDIT_EINPUT, "%s: metadata depth %d, but blocks.%d.adaLN_modulation.1.weight is missing",
                       me_tensors_source(ts), meta, depth);
    for (int i = 0, n = me_tensors_count(ts); i < n; i++) {
        const char *name = me_tensors_at(ts, i)->name;
        char *end;
        if (strncmp(name, "blocks.", 7)) continue;
        long b = strtol(name + 7, &end, 10);
        if (end != name + 7 && *end == '.' && b >= depth)
            return me_fail(MOEDIT_EINPUT, "%s: %s present, but blocks.%d.adaLN_modulation.1.weight is missing",
                           me_tensors_source(ts), name, depth);
    }
    return MOEDIT_OK;
}

/* SPEC §1: the heads upstream's model tables use for each width. */
static int default_heads(int hidden)
{
    switch (hidden) {
    case 384: return 6;
    case 768: return 12;
    case 1024: case 1152: case 1408: return 16;
    }
    return hidden % 64 == 0 ? hidden / 64 : 1;
}

int me_detect_config(const me_tensors *ts, const moedit_load_options *opt, moedit_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const char *src = me_tensors_source(ts);
    const me_tensor *t;

    if (!(t = need(ts, "x_embedder.proj.weight", 4))) return MOEDIT_EINPUT;
    int D = (int)t->shape[0], C = (int)t->shape[1], p = (int)t->shape[2];
    if (D <= 0 || C <= 0 || p <= 0 || t->shape[3] != p) return bad_shape(ts, t, "is not [D,C,p,p]");
    cfg->hidden = D, cfg->in_channels = C, cfg->patch = p;

    if (has(ts, "blocks.0.moe.gate.weight")) cfg->family = MOEDIT_FAMILY_DIT_MOE;
    else if (has(ts, "routers.0.f_gate.1.weight") || has(ts, "routers.0._unit_mapping"))
        cfg->family = MOEDIT_FAMILY_SWITCH_DIT;
    else if (has(ts, "blocks.0.mlp.fc1.weight")) cfg->family = MOEDIT_FAMILY_DIT;
    else
        return me_fail(MOEDIT_EINPUT, "%s: not a DiT, DiT-MoE or Switch-DiT checkpoint: missing "
                       "tensor blocks.0.mlp.fc1.weight (or blocks.0.moe.gate.weight, routers.0.*)", src);

    char name[128];
    while (snprintf(name, sizeof name, "blocks.%d.adaLN_modulation.1.weight", cfg->depth),
           has(ts, name))
        cfg->depth++;
    if (cfg->depth == 0) { need(ts, "blocks.0.adaLN_modulation.1.weight", 2); return MOEDIT_EINPUT; }
    if (check_depth(ts, cfg->depth)) return MOEDIT_EINPUT;

    /* pos_embed [1, T, D] fixes the grid; without it only metadata can. */
    if ((t = me_tensors_find(ts, "pos_embed"))) {
        if (t->ndim != 3 || t->shape[0] != 1 || t->shape[2] != D) return bad_shape(ts, t, "is not [1,T,D]");
        int g = 0;
        while ((int64_t)(g + 1) * (g + 1) <= t->shape[1]) g++;
        if ((int64_t)g * g != t->shape[1]) return bad_shape(ts, t, "has a non-square token count");
        cfg->input_size = g * p;
    } else if (meta_int(ts, "input_size", &cfg->input_size)) {
        return MOEDIT_EINPUT;
    } else if (!cfg->input_size) {
        return me_fail(MOEDIT_EINPUT, "%s: missing tensor pos_embed (and no input_size metadata)", src);
    }
    if (cfg->input_size % p) return me_fail(MOEDIT_EINPUT, "%s: input size %d is not a multiple of patch %d",
                                            src, cfg->input_size, p);

    if (!(t = need(ts, "final_layer.linear.weight", 2))) return MOEDIT_EINPUT;
    if (t->shape[1] != D || t->shape[0] % (p * p)) return bad_shape(ts, t, "is not [p*p*out_channels, D]");
    cfg->out_channels = (int)(t->shape[0] / (p * p));
    if (cfg->out_channels != C && cfg->out_channels != 2 * C)
        return bad_shape(ts, t, "gives neither C nor 2C output channels");
    cfg->learn_sigma = cfg->out_channels == 2 * C;

    /* Upstream adds the null-class row only when class_dropout_prob > 0; a
       one-row table is the num_classes == 1 Switch-DiT case without it. */
    if (!(t = need(ts, "y_embedder.embedding_table.weight", 2))) return MOEDIT_EINPUT;
    if (t->shape[1] != D || t->shape[0] < 1) return bad_shape(ts, t, "is not [num_classes+1, D]");
    if (meta_int(ts, "num_classes", &cfg->num_classes)) return MOEDIT_EINPUT;
    const int rows = (int)t->shape[0];
    if (cfg->num_classes && cfg->num_classes != rows - 1 && !(rows == 1 && cfg->num_classes == 1))
        return me_fail(MOEDIT_EINPUT, "%s: metadata num_classes %d, but the class table has %d rows (classes and the "
                       "null class)", src, cfg->num_classes, rows);
    cfg->num_classes = rows > 1 ? rows - 1 : 1;

    if (has(ts, "blocks.0.attn.Wqkv.weight")) {
        if (!need(ts, "blocks.0.attn.q_norm.weight", 1)) return MOEDIT_EINPUT;
        cfg->attention = MOEDIT_ATTN_QKNORM;
    } else if (!need(ts, "blocks.0.attn.qkv.weight", 2)) {
        return MOEDIT_EINPUT;
    }

    switch (cfg->family) {
    case MOEDIT_FAMILY_DIT:
        if (!(t = need(ts, "blocks.0.mlp.fc1.weight", 2))) return MOEDIT_EINPUT;
        if (t->shape[1] != D) return bad_shape(ts, t, "is not [mlp_hidden, D]");
        cfg->mlp_hidden = (int)t->shape[0];
        break;
    case MOEDIT_FAMILY_DIT_MOE:
        if (!(t = need(ts, "blocks.0.moe.gate.weight", 2))) return MOEDIT_EINPUT;
        if (t->shape[1] != D || t->shape[0] < 1) return bad_shape(ts, t, "is not [num_experts, D]");
        cfg->num_experts = (int)t->shape[0];
        if (!(t = need(ts, "blocks.0.moe.experts.0.gate_proj.weight", 2))) return MOEDIT_EINPUT;
        if (t->shape[1] != D) return bad_shape(ts, t, "is not [mlp_hidden, D]");
        cfg->mlp_hidden = (int)t->shape[0];
        if ((t = me_tensors_find(ts, "blocks.0.moe.shared_experts.gate_proj.weight"))) {
            if (t->ndim != 2 || t->shape[1] != D) return bad_shape(ts, t, "is not [shared_hidden, D]");
            cfg->shared_hidden = (int)t->shape[0];
        }
        break;
    case MOEDIT_FAMILY_SWITCH_DIT:
        if (!(t = need(ts, "blocks.0.mlp.fc1.weight", 2))) return MOEDIT_EINPUT;
        if (t->shape[1] != D) return bad_shape(ts, t, "is not [mlp_hidden, D]");
        cfg->mlp_hidden = (int)t->shape[0];
        if (has(ts, "routers.0.f_gate.1.weight")) {
            cfg->routing = MOEDIT_ROUTING_DMOE;
            t = me_tensors_find(ts, "routers.0.f_gate.1.weight");
            if (t->ndim != 2 || t->shape[1] != D || t->shape[0] < 1)
                return bad_shape(ts, t, "is not [num_experts, D]");
            cfg->num_experts = (int)t->shape[0];
        } else {
            cfg->routing = MOEDIT_ROUTING_DTR;
        }
        break;
    }

    int meta_heads, meta_top_k;
    if (meta_int(ts, "heads", &meta_heads) || meta_int(ts, "top_k", &meta_top_k)) return MOEDIT_EINPUT;
    cfg->heads = opt && opt->heads > 0 ? opt->heads : meta_heads;
    if (!cfg->heads) cfg->heads = default_heads(D);
    if (D % cfg->heads)   /* asked for, or the file's metadata (the default always divides) */
        return opt && opt->heads > 0
                   ? me_fail(MOEDIT_EINPUT, "%s: %d heads do not divide hidden size %d", src, cfg->heads, D)
                   : me_fail(MOEDIT_EINPUT, "%s: the file's %d heads do not divide hidden size %d (give a head count "
                             "that does: --heads, heads= in Python)", src, cfg->heads, D);
    cfg->top_k = opt && opt->top_k > 0 ? opt->top_k : meta_top_k;
    if (!cfg->top_k) cfg->top_k = 2;
    if (cfg->num_experts && cfg->top_k > cfg->num_experts)
        return me_fail(MOEDIT_EINPUT, "%s: top-k %d exceeds the %d experts", src, cfg->top_k, cfg->num_experts);
    /* The released qk-norm models (XL/G) are the rectified-flow ones. */
    cfg->flow = cfg->attention == MOEDIT_ATTN_QKNORM;
    const char *fl = me_tensors_meta(ts, "flow");
    if (fl && !strcmp(fl, "1")) fl = "true";
    if (fl && !strcmp(fl, "0")) fl = "false";
    if (fl && strcmp(fl, "true") && strcmp(fl, "false"))
        return me_fail(MOEDIT_EINPUT, "%s: metadata flow '%s' is not true or false", src, fl);
    if (fl) cfg->flow = !strcmp(fl, "true");
    return MOEDIT_OK;
}

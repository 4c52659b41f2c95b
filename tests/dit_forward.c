/* The transformer forward pass against PyTorch: for every fixture variant
   (tools/make_dit_fixtures.py runs the upstream module definitions) the
   output, the routing decisions and the detected config must match; bad
   checkpoints and inputs must fail with clear messages. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/core.h"
#include "dit/config.h"
#include "dit/model.h"
#include "ops/gemm.h"
#include "weights/formats.h"
#include "weights/npy.h"
#include "tests/testutil.h"

#define DIR FIXTURES "/dit/"

static char *path_of(const char *variant, const char *suffix)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, DIR "%s%s", variant, suffix);
    return p;
}

static cJSON *read_json(const char *variant) { return tu_json_file(path_of(variant, ".json")); }

static int json_int(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsNumber(v) || cJSON_IsBool(v), "json key %s", key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valueint;
}

static const char *json_str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A fixture array as float32 or int64, with its shape. */
typedef struct {
    int ndim;
    int64_t shape[ME_MAX_DIMS], numel;
    float *f;
    int64_t *i;
} arr;

static arr load(const char *variant, const char *suffix)
{
    me_array a;
    int rc = me_npy_read(path_of(variant, suffix), &a);
    cr_assert_eq(rc, MOEDIT_OK, "%s", moedit_last_error());
    arr r = {.ndim = a.ndim, .numel = a.numel};
    memcpy(r.shape, a.shape, sizeof r.shape);
    r.f = malloc((size_t)a.numel * sizeof *r.f + 1);
    r.i = malloc((size_t)a.numel * sizeof *r.i + 1);
    me_array_to_f32(&a, r.f);
    me_array_to_i64(&a, r.i);
    me_array_free(&a);
    return r;
}

static void arr_free(arr *a) { free(a->f), free(a->i); }

static int fixture_heads(const char *variant)
{
    cJSON *j = read_json(variant);
    int h = json_int(j, "heads");
    cJSON_Delete(j);
    return h;
}

static moedit_model *load_model(const char *variant, const char *file)
{
    cJSON *j = read_json(variant);
    moedit_load_options o = {.heads = json_int(j, "heads"), .top_k = json_int(j, "top_k")};
    cJSON_Delete(j);
    moedit_model *m;
    int rc = moedit_model_load(path_of(file, ".pt"), &o, &m);
    cr_assert_eq(rc, MOEDIT_OK, "%s: %s", file, moedit_last_error());
    return m;
}

/* Runs the fixture inputs through m; returns the relative error. */
static double forward_error(moedit_model *m, const char *variant, const char *out_suffix, arr *out_keep)
{
    arr x = load(variant, "_x.npy"), t = load(variant, "_t.npy"), y = load(variant, "_y.npy");
    arr want = load(variant, out_suffix);
    int n = (int)x.shape[0];
    float *got = malloc((size_t)want.numel * sizeof *got);
    int rc = moedit_model_forward(m, n, x.f, t.f, y.i, got);
    cr_assert_eq(rc, MOEDIT_OK, "%s", moedit_last_error());
    double maxref, maxdiff = tu_max_error(got, want.f, (size_t)want.numel, &maxref);
    if (out_keep) {
        *out_keep = want;
        free(out_keep->f);
        out_keep->f = got;
    } else {
        free(got);
        arr_free(&want);
    }
    arr_free(&x), arr_free(&t), arr_free(&y);
    return maxdiff / maxref;
}

static void check_variant(const char *variant, const char *file, const char *out_suffix)
{
    moedit_model *m = load_model(variant, file);
    double err = forward_error(m, variant, out_suffix, NULL);
    cr_log_info("%s: max|moedit - torch| / max|torch| = %.3g", file, err);
    fprintf(stderr, "%s: relative error %.3g\n", file, err);
    cr_expect(err <= 1e-4, "%s: relative error %g", file, err);
    moedit_model_free(m);
}

Test(dit_forward, dense) { check_variant("dit", "dit", "_out.npy"); }
Test(dit_forward, moe_top2) { check_variant("moe_top2", "moe_top2", "_out.npy"); }
Test(dit_forward, moe_top1) { check_variant("moe_top1", "moe_top1", "_out.npy"); }
Test(dit_forward, moe_qknorm) { check_variant("moe_qknorm", "moe_qknorm", "_out.npy"); }
Test(dit_forward, switch_dmoe) { check_variant("switch_dmoe", "switch_dmoe", "_out.npy"); }
Test(dit_forward, switch_dtr) { check_variant("switch_dtr", "switch_dtr", "_out.npy"); }
/* Experts of 768 hidden units: the own kernels run them chunk by chunk of
   the down product's K block (dit/moe.c). */
Test(dit_forward, moe_wide)
{
    moedit_model *m = load_model("moe_wide", "moe_wide");
    const dit_swiglu *ex = &m->blocks[0].experts[0];
    if (me_gemm_native(0)) cr_expect_lt(ex->chunk, ex->hid, "experts of %d units ran unchunked", ex->hid);
    moedit_model_free(m);
    check_variant("moe_wide", "moe_wide", "_out.npy");
}
/* train.py checkpoint {model, ema, opt, args}: the ema weights are used. */
Test(dit_forward, train_checkpoint_uses_ema) { check_variant("moe_top2", "moe_top2_train", "_out.npy"); }
/* Half-precision storage, float32 compute. */
Test(dit_forward, bf16_weights) { check_variant("dit", "dit_bf16", "_bf16_out.npy"); }
Test(dit_forward, f16_weights) { check_variant("moe_qknorm", "moe_qknorm_f16", "_f16_out.npy"); }

/* ---- config detection ---------------------------------------------------- */

static void check_config(const char *variant)
{
    cJSON *j = read_json(variant);
    moedit_model *m = load_model(variant, variant);
    const moedit_config *c = moedit_model_config(m);
    cr_expect_str_eq(me_family_name(c->family), json_str(j, "family"), "%s family", variant);
    cr_expect_eq(c->depth, json_int(j, "depth"), "%s depth", variant);
    cr_expect_eq(c->hidden, json_int(j, "hidden"), "%s hidden", variant);
    cr_expect_eq(c->patch, json_int(j, "patch"), "%s patch", variant);
    cr_expect_eq(c->input_size, json_int(j, "input_size"), "%s input_size", variant);
    cr_expect_eq(c->in_channels, json_int(j, "in_channels"), "%s in_channels", variant);
    cr_expect_eq(c->out_channels, json_int(j, "out_channels"), "%s out_channels", variant);
    cr_expect_eq(c->num_classes, json_int(j, "num_classes"), "%s num_classes", variant);
    cr_expect_eq(c->learn_sigma, json_int(j, "learn_sigma"), "%s learn_sigma", variant);
    cr_expect_eq(c->num_experts, json_int(j, "num_experts"), "%s num_experts", variant);
    cr_expect_eq(c->mlp_hidden, json_int(j, "mlp_hidden"), "%s mlp_hidden", variant);
    cr_expect_eq(c->shared_hidden, json_int(j, "shared_hidden"), "%s shared_hidden", variant);
    cr_expect_eq(c->attention == MOEDIT_ATTN_QKNORM, strcmp(json_str(j, "attention"), "qknorm") == 0, "%s", variant);
    const char *routing = json_str(j, "routing");
    int want = !strcmp(routing, "dmoe") ? MOEDIT_ROUTING_DMOE : !strcmp(routing, "dtr") ? MOEDIT_ROUTING_DTR
                                                                                        : MOEDIT_ROUTING_NONE;
    cr_expect_eq((int)c->routing, want, "%s routing", variant);
    cr_expect_eq(c->flow, c->attention == MOEDIT_ATTN_QKNORM);
    moedit_model_free(m);
    cJSON_Delete(j);
}

Test(dit_config, all_variants)
{
    const char *v[] = {"dit", "moe_top2", "moe_top1", "moe_qknorm", "switch_dmoe", "switch_dtr", "moe_wide"};
    for (int i = 0; i < 7; i++) check_config(v[i]);
}

Test(dit_config, default_heads_and_top_k)
{
    me_tensors *ts;
    cr_assert_eq(me_tensors_open(path_of("moe_top2", ".pt"), &ts), MOEDIT_OK);
    moedit_config c;
    cr_assert_eq(me_detect_config(ts, NULL, &c), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_eq(c.top_k, 2);
    cr_expect_eq(c.heads, c.hidden % 64 ? 1 : c.hidden / 64);
    moedit_load_options o = {.heads = 3};
    cr_expect_eq(me_detect_config(ts, &o, &c), MOEDIT_EINPUT, "3 heads cannot divide 16");
    cr_expect_not_null(strstr(moedit_last_error(), "heads"));
    o = (moedit_load_options){.top_k = 99};
    cr_expect_eq(me_detect_config(ts, &o, &c), MOEDIT_EINPUT);
    me_tensors_free(ts);
}

/* metadata that contradicts the weights, or is not a value at all, is refused
   rather than replaced by a default or a guess */
Test(dit_config, bad_metadata_is_refused)
{
    const char *cases[][3] = {
        {"heads", "abc", "heads 'abc'"},     {"top_k", "-2", "top_k '-2'"},
        {"num_classes", "5", "num_classes 5"}, {"depth", "4", "depth 4"},
        {"flow", "yes", "flow 'yes'"},
    };
    for (int i = 0; i < 5; i++) {
        me_tensors *ts;
        cr_assert_eq(me_tensors_open(path_of("moe_top2", ".pt"), &ts), MOEDIT_OK);
        moedit_config c;
        cr_assert_eq(me_detect_config(ts, NULL, &c), MOEDIT_OK, "%s", moedit_last_error());
        char good[16];
        snprintf(good, sizeof good, "%d", c.num_classes);
        me_tensors_set_meta(ts, "num_classes", good);
        cr_expect_eq(me_detect_config(ts, NULL, &c), MOEDIT_OK, "the table's own count: %s", moedit_last_error());
        me_tensors_set_meta(ts, cases[i][0], cases[i][1]);
        cr_expect_eq(me_detect_config(ts, NULL, &c), MOEDIT_EINPUT, "%s %s", cases[i][0], cases[i][1]);
        cr_expect_not_null(strstr(moedit_last_error(), cases[i][2]), "%s", moedit_last_error());
        me_tensors_free(ts);
    }
}


/* ---- routing decisions --------------------------------------------------- */

typedef struct {
    int count, bad;
    const arr *idx, *w, *probs;
    int T, k;
    char first[256];
} route_check;

static void on_route(void *user, const moedit_route *r)
{
    route_check *c = user;
    c->count++;
    /* fixture routes: [depth, N, T, k] (DiT-MoE) or [depth, N, k] (Switch-DiT) */
    int64_t base = r->token >= 0 ? (((int64_t)r->layer * c->idx->shape[1] + r->row) * c->T + r->token) * c->k
                                 : ((int64_t)r->layer * c->idx->shape[1] + r->row) * c->k;
    for (int j = 0; j < r->k; j++) {
        if (r->experts[j] != c->idx->i[base + j] || fabsf(r->weights[j] - c->w->f[base + j]) > 1e-5f) {
            if (!c->bad++)
                snprintf(c->first, sizeof c->first, "layer %d row %d token %d choice %d: expert %d (%g), want %d (%g)",
                         r->layer, r->row, r->token, j, r->experts[j], r->weights[j], (int)c->idx->i[base + j],
                         c->w->f[base + j]);
        }
    }
    if (c->probs) {
        int E = r->num_probs;
        for (int e = 0; e < E; e++)
            if (fabsf(r->probs[e] - c->probs->f[((int64_t)r->layer * c->probs->shape[1] + r->row) * E + e]) > 1e-5f)
                c->bad++;
    }
    if (r->step != 7 || r->is_null != (r->row >= 2)) c->bad++;
}

static void check_routes(const char *variant, int switch_dit)
{
    moedit_model *m = load_model(variant, variant);
    arr idx = load(variant, "_routes.npy"), w = load(variant, "_route_weights.npy"), probs = {0};
    if (switch_dit) probs = load(variant, "_gate_probs.npy");
    route_check c = {.idx = &idx, .w = &w, .probs = switch_dit ? &probs : NULL,
                     .T = switch_dit ? 1 : (int)idx.shape[2], .k = (int)idx.shape[idx.ndim - 1]};
    moedit_model_set_tracer(m, on_route, &c);
    moedit_model_set_step(m, 7, 2);
    forward_error(m, variant, "_out.npy", NULL);
    int64_t expect = idx.numel / c.k;
    cr_expect_eq(c.count, expect, "%s: %d routing calls, want %lld", variant, c.count, (long long)expect);
    cr_expect_eq(c.bad, 0, "%s: %d mismatches, first: %s", variant, c.bad, c.first);
    arr_free(&idx), arr_free(&w);
    if (switch_dit) arr_free(&probs);
    moedit_model_free(m);
}

Test(dit_routes, moe_top2) { check_routes("moe_top2", 0); }
Test(dit_routes, moe_top1) { check_routes("moe_top1", 0); }
Test(dit_routes, moe_qknorm) { check_routes("moe_qknorm", 0); }
Test(dit_routes, switch_dmoe) { check_routes("switch_dmoe", 1); }
Test(dit_routes, moe_wide) { check_routes("moe_wide", 0); }

/* ---- batch invariance ---------------------------------------------------- */

static void check_batch_invariance(const char *variant)
{
    moedit_model *m = load_model(variant, variant);
    arr x = load(variant, "_x.npy"), t = load(variant, "_t.npy"), y = load(variant, "_y.npy");
    int n = (int)x.shape[0];
    size_t in_row = (size_t)(x.numel / n);
    const moedit_config *c = moedit_model_config(m);
    size_t out_row = (size_t)c->out_channels * c->input_size * c->input_size;
    float *all = malloc(n * out_row * sizeof *all), *one = malloc(n * out_row * sizeof *one);
    /* Rows alone first, so the batch afterwards also exercises the arena growing. */
    for (int r = 0; r < n; r++)
        cr_assert_eq(moedit_model_forward(m, 1, x.f + r * in_row, t.f + r, y.i + r, one + r * out_row), MOEDIT_OK);
    cr_assert_eq(moedit_model_forward(m, n, x.f, t.f, y.i, all), MOEDIT_OK);
    double maxref, maxdiff = tu_max_error(one, all, n * out_row, &maxref);
    cr_expect(maxdiff <= 1e-5 * maxref, "%s: rows alone differ by %g (max %g)", variant, maxdiff, maxref);
    free(all), free(one);
    arr_free(&x), arr_free(&t), arr_free(&y);
    moedit_model_free(m);
}

Test(dit_batch, row_alone_equals_row_in_batch)
{
    const char *v[] = {"dit", "moe_top2", "moe_qknorm", "switch_dmoe", "switch_dtr"};
    for (int i = 0; i < 5; i++) check_batch_invariance(v[i]);
}

Test(dit_batch, thread_count_does_not_matter)
{
    moedit_model *m = load_model("moe_top2", "moe_top2");
    moedit_set_threads(1);
    double e1 = forward_error(m, "moe_top2", "_out.npy", NULL);
    moedit_set_threads(2);
    double e2 = forward_error(m, "moe_top2", "_out.npy", NULL);
    moedit_set_threads(0);
    cr_expect(e1 <= 1e-4 && e2 <= 1e-4, "1 thread %g, 2 threads %g", e1, e2);
    moedit_model_free(m);
}

/* On OpenBLAS (no AVX2) results depend on the thread count, so a forward
   there must not take the adaptive count (core/busy.c) from the machine's
   load: beside a busy process the count stays at the full one (on the own
   kernels it would drop; their results do not depend on it). */
Test(dit_batch, openblas_keeps_the_thread_count_beside_a_busy_process)
{
    setenv("MOEDIT_NO_AVX512", "1", 1);
    setenv("MOEDIT_NO_AVX2", "1", 1);
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN), max = cpus > 2 ? cpus : 2;
    moedit_set_threads(max);
    moedit_set_adaptive_threads(1);
    cr_assert(me_threads_adaptive());
    moedit_model *m = load_model("moe_top2", "moe_top2");
    pid_t hog = fork();
    cr_assert_geq(hog, 0);
    if (hog == 0) {   /* bounded: a failed assertion below must not leave it spinning */
        alarm(30);
        for (;;) {}
    }
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++, usleep(10000)) seen = me_others_running() > 0;
    forward_error(m, "moe_top2", "_out.npy", NULL);
    int threads = me_threads();
    kill(hog, SIGKILL);
    waitpid(hog, NULL, 0);
    cr_assert(seen, "the spinning child is seen");
    cr_assert(!me_gemm_native(0));
    cr_assert_eq(threads, max, "OpenBLAS forward beside a busy process ran on %d of %d threads", threads, max);
    moedit_set_adaptive_threads(0);
    moedit_set_threads(0);
    moedit_model_free(m);
}

/* ---- bad inputs and checkpoints ------------------------------------------ */

Test(dit_errors, switch_timestep_must_be_integer)
{
    moedit_model *m = load_model("switch_dmoe", "switch_dmoe");
    arr x = load("switch_dmoe", "_x.npy"), t = load("switch_dmoe", "_t.npy"), y = load("switch_dmoe", "_y.npy");
    const moedit_config *c = moedit_model_config(m);
    float *out = malloc(sizeof *out * (size_t)x.shape[0] * c->out_channels * c->input_size * c->input_size);
    t.f[1] = 640.5f;
    cr_expect_eq(moedit_model_forward(m, (int)x.shape[0], x.f, t.f, y.i, out), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "640.5"), "%s", moedit_last_error());
    t.f[1] = 1000.0f;
    cr_expect_eq(moedit_model_forward(m, (int)x.shape[0], x.f, t.f, y.i, out), MOEDIT_EINPUT);
    t.f[1] = 5.0f;
    y.i[0] = c->num_classes + 1;   /* the table has num_classes + 1 rows (null last) */
    cr_expect_eq(moedit_model_forward(m, (int)x.shape[0], x.f, t.f, y.i, out), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "label"), "%s", moedit_last_error());
    free(out);
    arr_free(&x), arr_free(&t), arr_free(&y);
    moedit_model_free(m);
}

/* Copies a fixture to safetensors with one tensor dropped or reshaped. */
static const char *doctored(const char *variant, const char *drop, const char *reshape)
{
    me_tensors *src, *dst = me_tensors_new("doctored");
    cr_assert_eq(me_tensors_open(path_of(variant, ".pt"), &src), MOEDIT_OK);
    for (int i = 0; i < me_tensors_count(src); i++) {
        const me_tensor *t = me_tensors_at(src, i);
        if (drop && !strcmp(t->name, drop)) continue;
        int64_t shape[ME_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int ndim = t->ndim;
        if (reshape && !strcmp(t->name, reshape)) shape[0] /= 2, shape[ndim] = 2, ndim++;
        cr_assert_eq(me_tensors_add(dst, t->name, t->dtype, ndim, shape, t->data), MOEDIT_OK);
    }
    static char path[64];
    snprintf(path, sizeof path, "/tmp/moedit_dit_test_%d.safetensors", (int)getpid());
    cr_assert_eq(me_write_safetensors(dst, path, ME_F32), MOEDIT_OK, "%s", moedit_last_error());
    me_tensors_free(dst), me_tensors_free(src);
    return path;
}

Test(dit_errors, missing_tensor_is_named)
{
    const char *p = doctored("moe_top2", "blocks.1.moe.experts.3.up_proj.weight", NULL);
    moedit_model *m;
    moedit_load_options o = {.heads = fixture_heads("moe_top2")};
    cr_expect_eq(moedit_model_load(p, &o, &m), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "blocks.1.moe.experts.3.up_proj.weight"), "%s",
                       moedit_last_error());
    unlink(p);
}

Test(dit_errors, misshaped_tensor_is_named)
{
    const char *p = doctored("dit", NULL, "blocks.1.attn.qkv.weight");
    moedit_model *m;
    moedit_load_options o = {.heads = fixture_heads("dit")};
    cr_expect_eq(moedit_model_load(p, &o, &m), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "blocks.1.attn.qkv.weight: expected ["), "%s", moedit_last_error());
    cr_expect_not_null(strstr(moedit_last_error(), ",2]"), "%s", moedit_last_error());
    unlink(p);
}

Test(dit_errors, not_a_transformer)
{
    const char *p = doctored("dit", "blocks.0.mlp.fc1.weight", NULL);
    moedit_model *m;
    cr_expect_eq(moedit_model_load(p, NULL, &m), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "blocks.0.mlp.fc1.weight"), "%s", moedit_last_error());
    unlink(p);
}

/* blocks are counted up to the first missing one: a later block left over
   means the file lost one in the middle, not that the model is shallower */
Test(dit_config, missing_middle_block_is_refused)
{
    const char *p = doctored("moe_top2", "blocks.1.adaLN_modulation.1.weight", NULL);
    me_tensors *ts;
    cr_assert_eq(me_tensors_open(p, &ts), MOEDIT_OK);
    moedit_config c;
    cr_expect_eq(me_detect_config(ts, NULL, &c), MOEDIT_EINPUT);
    cr_expect_not_null(strstr(moedit_last_error(), "blocks.1.adaLN_modulation.1.weight is missing"), "%s",
                       moedit_last_error());
    me_tensors_free(ts);
    unlink(p);
}

/* A head count that does not divide the hidden size names where it came
   from: the caller's own count is refused as it stands, the file's
   metadata's with the way round it (the library's callers pass heads). */
Test(dit_config, heads_not_dividing_the_hidden_size_refused)
{
    me_tensors *ts;
    cr_assert_eq(me_tensors_open(path_of("moe_top2", ".pt"), &ts), MOEDIT_OK);
    moedit_config c;
    moedit_load_options asked = {.heads = 7};
    cr_assert_eq(me_detect_config(ts, &asked, &c), MOEDIT_EINPUT);
    cr_expect(strstr(moedit_last_error(), ": 7 heads do not divide hidden size") &&
                  !strstr(moedit_last_error(), "--heads"), "%s", moedit_last_error());
    me_tensors_set_meta(ts, "heads", "7");
    cr_assert_eq(me_detect_config(ts, NULL, &c), MOEDIT_EINPUT);
    cr_expect(strstr(moedit_last_error(), "the file's 7 heads do not divide hidden size") &&
                  strstr(moedit_last_error(), "--heads, heads= in Python"), "%s", moedit_last_error());
    me_tensors_free(ts);
}

/* pos_embed absent: the computed 2-D sin-cos table must equal upstream's. */
Test(dit_forward, computed_pos_embed_matches_upstream_table)
{
    const char *p = doctored("dit", "pos_embed", NULL);
    me_tensors *ts;
    cr_assert_eq(me_tensors_open(p, &ts), MOEDIT_OK);
    moedit_config c;
    cr_expect_eq(me_detect_config(ts, NULL, &c), MOEDIT_EINPUT, "no pos_embed and no input_size metadata");
    me_tensors_set_meta(ts, "input_size", "8");
    char h[16];
    snprintf(h, sizeof h, "%d", fixture_heads("dit"));
    me_tensors_set_meta(ts, "heads", h);
    cr_assert_eq(me_write_safetensors(ts, p, ME_F32), MOEDIT_OK);
    me_tensors_free(ts);
    moedit_model *m;
    cr_assert_eq(moedit_model_load(p, NULL, &m), MOEDIT_OK, "%s", moedit_last_error());
    arr want = load("dit", "_pos_embed_sincos.npy");
    const float *got = m->pos;
    for (int64_t i = 0; i < want.numel; i++)
        cr_assert(fabsf(got[i] - want.f[i]) <= 1e-6f, "pos_embed[%lld]: %g, want %g", (long long)i, got[i], want.f[i]);
    arr_free(&want);
    moedit_model_free(m);
    unlink(p);
}

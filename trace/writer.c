/* Streams routing decisions to a trace file (see trace.h). Records are
   encoded into a 1 MiB buffer and written with fwrite when it fills; the
   header, whose record count is known only at the end, is written last. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "trace/format.h"
#include "trace/trace.h"

#define BUFFER_SIZE (1u << 20)

struct me_trace {
    me_atomic_file file;
    me_trace_info info;
    uint8_t *buf;
    size_t used;
    int max_step;        /* checked against the step count at close */
    int failed;          /* a MOEDIT_E* code, with its message in error[] */
    char error[256];
};

/* Keeps the first error for me_trace_close; later routes are dropped. */
static void remember(me_trace *tr, int code, const char *fmt, ...) ME_PRINTF(3, 4);
static void remember(me_trace *tr, int code, const char *fmt, ...)
{
    if (tr->failed) return;
    tr->failed = code;
    int n = snprintf(tr->error, sizeof tr->error, "%s: ", tr->file.path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tr->error + n, sizeof tr->error - (size_t)n, fmt, ap);
    va_end(ap);
}

static void encode_header(const me_trace_info *in, uint8_t h[TRACE_HEADER_SIZE])
{
    memset(h, 0, TRACE_HEADER_SIZE);
    memcpy(h + H_MAGIC, TRACE_MAGIC, 8);
    put_u32(h + H_VERSION, ME_TRACE_VERSION);
    put_u32(h + H_HEADER_SIZE, TRACE_HEADER_SIZE);
    put_u32(h + H_RECORD_SIZE, (uint32_t)in->record_size);
    put_u32(h + H_FAMILY, (uint32_t)in->family);
    put_u32(h + H_DEPTH, (uint32_t)in->depth);
    put_u32(h + H_EXPERTS, (uint32_t)in->num_experts);
    put_u32(h + H_TOP_K, (uint32_t)in->top_k);
    put_u32(h + H_TOKENS, (uint32_t)in->tokens);
    put_u32(h + H_GRID_H, (uint32_t)in->grid_h);
    put_u32(h + H_GRID_W, (uint32_t)in->grid_w);
    put_u32(h + H_CLASSES, (uint32_t)in->num_classes);
    put_u32(h + H_PROBS, (uint32_t)in->num_probs);
    put_u64(h + H_COUNT, in->count);
    put_u32(h + H_STEPS, (uint32_t)in->steps);
    put_f32(h + H_CFG, in->cfg);
    memcpy(h + H_SAMPLER, in->sampler, H_SAMPLER_LEN);
}

static int flush(me_trace *tr)
{
    if (tr->used && !tr->failed && me_atomic_write(&tr->file, tr->buf, tr->used) != MOEDIT_OK) {
        tr->failed = MOEDIT_EINPUT;
        snprintf(tr->error, sizeof tr->error, "%s", moedit_last_error());
    }
    tr->used = 0;
    return tr->failed;
}

int me_trace_open(me_trace **out, const char *path, const moedit_config *cfg)
{
    *out = NULL;
    if (cfg->family == MOEDIT_FAMILY_DIT || cfg->num_experts <= 0)
        return me_fail(MOEDIT_EINPUT, "%s: a dense DiT has no experts to trace", path);
    if (cfg->num_experts > ME_TRACE_MAX_EXPERTS || cfg->top_k < 1 || cfg->top_k > cfg->num_experts)
        return me_fail(MOEDIT_EINPUT, "%s: cannot trace %d experts with top-%d (at most %d experts)",
                       path, cfg->num_experts, cfg->top_k, ME_TRACE_MAX_EXPERTS);
    if (cfg->patch <= 0 || cfg->input_size <= 0 || cfg->input_size % cfg->patch)
        return me_fail(MOEDIT_EINTERNAL, "%s: bad model config (input %d, patch %d)", path,
                       cfg->input_size, cfg->patch);
    long grid = cfg->input_size / cfg->patch;
    if (cfg->depth < 1 || cfg->depth > TRACE_MAX_DEPTH || grid * grid > TRACE_MAX_TOKENS ||
        cfg->num_classes < 1 || cfg->num_classes > TRACE_MAX_CLASSES)
        return me_fail(MOEDIT_EINPUT, "%s: cannot trace a model of depth %d, %ld tokens, %d classes", path,
                       cfg->depth, grid * grid, cfg->num_classes);
    me_trace *tr = me_calloc(1, sizeof *tr);
    if (!tr) return MOEDIT_EINTERNAL;
    me_trace_info *in = &tr->info;
    in->version = ME_TRACE_VERSION;
    in->family = cfg->family;
    in->depth = cfg->depth;
    in->num_experts = cfg->num_experts;
    in->top_k = cfg->top_k;
    in->grid_h = in->grid_w = cfg->input_size / cfg->patch;
    in->tokens = in->grid_h * in->grid_w;
    in->num_classes = cfg->num_classes;
    in->num_probs = cfg->family == MOEDIT_FAMILY_SWITCH_DIT ? cfg->num_experts : 0;
    in->record_size = trace_record_size(in->top_k, in->num_probs);
    tr->buf = me_alloc(BUFFER_SIZE);
    int rc = tr->buf ? me_atomic_open(&tr->file, path) : MOEDIT_EINTERNAL;
    if (rc) {
        free(tr->buf);
        free(tr);
        return rc;
    }
    /* A placeholder header, rewritten with the final count at close. */
    uint8_t h[TRACE_HEADER_SIZE];
    encode_header(in, h);
    memcpy(tr->buf, h, sizeof h);
    tr->used = sizeof h;
    *out = tr;
    return MOEDIT_OK;
}

void me_trace_set_info(me_trace *tr, const char *sampler, int steps, float cfg)
{
    memset(tr->info.sampler, 0, sizeof tr->info.sampler);
    if (sampler) snprintf(tr->info.sampler, sizeof tr->info.sampler, "%s", sampler);
    tr->info.steps = steps > 0 && steps <= ME_TRACE_MAX_STEPS ? steps : 0;
    tr->info.cfg = isfinite(cfg) ? cfg : 0;
}

/* A route that does not fit the header is a bug in the caller: say which. */
static int bad_route(me_trace *tr, const moedit_route *r)
{
    const me_trace_info *in = &tr->info;
    const int code = MOEDIT_EINTERNAL;
    if (r->layer < 0 || r->layer >= in->depth)
        remember(tr, code, "route from layer %d of a %d-layer model", r->layer, in->depth);
    else if (r->k != in->top_k)
        remember(tr, code, "route with %d experts, the model's top-k is %d", r->k, in->top_k);
    else if (r->num_probs != in->num_probs)
        remember(tr, code, "route with %d probabilities, expected %d", r->num_probs, in->num_probs);
    else if (r->step < 0 || r->step >= ME_TRACE_MAX_STEPS)
        remember(tr, code, "step %d out of range (at most %d steps)", r->step, ME_TRACE_MAX_STEPS);
    else if (r->token < -1 || r->token >= in->tokens)
        remember(tr, code, "token %d out of range (%d tokens)", r->token, in->tokens);
    else if (r->row < 0)
        remember(tr, code, "negative row %d", r->row);
    else if (r->label < 0 || r->label > in->num_classes)
        remember(tr, code, "label %lld out of range (%d classes + null)", (long long)r->label, in->num_classes);
    for (int i = 0; !tr->failed && i < r->k; i++)
        if (r->experts[i] < 0 || r->experts[i] >= in->num_experts)
            remember(tr, code, "expert %d out of range (%d experts)", r->experts[i], in->num_experts);
    return tr->failed;
}

void me_trace_route(void *trace, const moedit_route *r)
{
    me_trace *tr = trace;
    const me_trace_info *in = &tr->info;
    if (tr->failed || bad_route(tr, r)) return;
    if (tr->used + in->record_size > BUFFER_SIZE && flush(tr)) return;
    uint8_t *p = tr->buf + tr->used;
    put_u32(p + R_STEP, (uint32_t)r->step);
    put_f32(p + R_TIMESTEP, r->timestep);
    put_u16(p + R_LAYER, (uint16_t)r->layer);
    p[R_IS_NULL] = r->is_null ? 1 : 0;
    p[R_K] = (uint8_t)r->k;
    put_u32(p + R_ROW, (uint32_t)r->row);
    put_u32(p + R_TOKEN, (uint32_t)r->token);
    put_u32(p + R_LABEL, (uint32_t)r->label);
    uint8_t *e = p + R_EXPERTS;
    size_t pad = trace_pad4((size_t)r->k);
    memset(e, 0, pad);
    for (int i = 0; i < r->k; i++) e[i] = (uint8_t)r->experts[i];
    uint8_t *w = e + pad;
    for (int i = 0; i < r->k; i++) put_f32(w + 4 * i, r->weights[i]);
    for (int i = 0; i < r->num_probs; i++) put_f32(w + 4 * (r->k + i), r->probs[i]);
    if (r->step > tr->max_step) tr->max_step = r->step;
    tr->used += in->record_size;
    tr->info.count++;
}

int me_trace_close(me_trace *tr)
{
    if (!tr) return MOEDIT_OK;
    int rc = MOEDIT_OK;
    uint8_t h[TRACE_HEADER_SIZE];
    encode_header(&tr->info, h);
    FILE *fp = tr->file.fp;
    if (tr->info.steps && tr->max_step >= tr->info.steps)
        remember(tr, MOEDIT_EINTERNAL, "step %d recorded in a run of %d steps", tr->max_step, tr->info.steps);
    if (!flush(tr) && (fseek(fp, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, fp) != sizeof h))
        remember(tr, MOEDIT_EINPUT, "write failed: %s", strerror(errno));
    if (tr->failed) {
        rc = me_fail(tr->failed, "%s", tr->error);
        me_atomic_abort(&tr->file);
    } else {
        rc = me_atomic_commit(&tr->file);
    }
    free(tr->buf);
    free(tr);
    return rc;
}

void me_trace_abort(me_trace *tr)
{
    if (!tr) return;
    me_atomic_abort(&tr->file);
    free(tr->buf);
    free(tr);
}

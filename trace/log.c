/* The in-memory expert trace (moedit_route_log in moedit.h): one growing
   array per column, so bindings can hand each to numpy as it is; filled by
   the tracer callback or from a trace file. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "trace/trace.h"

struct moedit_route_log {
    size_t count, cap;
    int k, num_probs;      /* fixed by the first decision; -1 before it */
    int failed;            /* MOEDIT_E* of the first problem while recording */
    int32_t *step, *layer, *row, *token, *is_null, *experts;
    int64_t *label;
    float *timestep, *weights, *probs;
};

int moedit_route_log_new(moedit_route_log **out)
{
    if (!out) return me_fail(MOEDIT_EINPUT, "route log: missing argument");
    *out = me_calloc(1, sizeof **out);
    if (!*out) return MOEDIT_EINTERNAL;
    (*out)->k = (*out)->num_probs = -1;
    return MOEDIT_OK;
}

static void free_columns(moedit_route_log *l)
{
    free(l->step), free(l->layer), free(l->row), free(l->token), free(l->is_null);
    free(l->experts), free(l->label), free(l->timestep), free(l->weights), free(l->probs);
}

void moedit_route_log_free(moedit_route_log *log)
{
    if (!log) return;
    free_columns(log);
    free(log);
}

void moedit_route_log_clear(moedit_route_log *log)
{
    if (!log) return;
    free_columns(log);
    memset(log, 0, sizeof *log);
    log->k = log->num_probs = -1;
}

/* realloc of *p to n elements of size bytes; leaves *p alone on failure. */
static int grow(void *p, size_t n, size_t size)
{
    size_t bytes;
    if (!me_mul_size(n ? n : 1, size, &bytes)) return 0;
    void *q = realloc(*(void **)p, bytes);
    if (!q) return 0;
    *(void **)p = q;
    return 1;
}

static int reserve(moedit_route_log *l, size_t need)
{
    if (need <= l->cap) return 1;
    size_t cap = l->cap ? l->cap : 4096;
    while (cap < need) cap *= 2;
    size_t k = (size_t)l->k, p = (size_t)l->num_probs;
    int ok = grow(&l->step, cap, 4) && grow(&l->layer, cap, 4) && grow(&l->row, cap, 4) &&
             grow(&l->token, cap, 4) && grow(&l->is_null, cap, 4) && grow(&l->label, cap, 8) &&
             grow(&l->timestep, cap, 4) && grow(&l->experts, cap * k, 4) && grow(&l->weights, cap * k, 4) &&
             (!p || grow(&l->probs, cap * p, 4));
    if (ok) l->cap = cap;
    return ok;
}

void moedit_route_log_add(void *log, const moedit_route *r)
{
    moedit_route_log *l = log;
    if (l->failed) return;
    if (l->k < 0) {
        l->k = r->k;
        l->num_probs = r->num_probs;
    }
    if (r->k != l->k || r->num_probs != l->num_probs) {
        l->failed = MOEDIT_EINPUT;
        return;
    }
    if (!reserve(l, l->count + 1)) {
        l->failed = MOEDIT_EINTERNAL;
        return;
    }
    size_t i = l->count++, k = (size_t)l->k, p = (size_t)l->num_probs;
    l->step[i] = r->step, l->layer[i] = r->layer, l->row[i] = r->row, l->token[i] = r->token;
    l->is_null[i] = r->is_null, l->label[i] = r->label, l->timestep[i] = r->timestep;
    for (size_t j = 0; j < k; j++) {
        l->experts[i * k + j] = r->experts[j];
        l->weights[i * k + j] = r->weights[j];
    }
    if (p) memcpy(l->probs + i * p, r->probs, p * sizeof(float));
}

int moedit_route_log_table(const moedit_route_log *log, moedit_route_table *out)
{
    if (!log || !out) return me_fail(MOEDIT_EINPUT, "route log: missing argument");
    memset(out, 0, sizeof *out);
    if (log->failed == MOEDIT_EINTERNAL) return me_fail(MOEDIT_EINTERNAL, "route log: out of memory while recording");
    if (log->failed) return me_fail(MOEDIT_EINPUT, "route log: decisions of different models were mixed");
    out->count = log->count;
    out->k = log->k < 0 ? 0 : log->k;
    out->num_probs = log->num_probs < 0 ? 0 : log->num_probs;
    out->step = log->step, out->layer = log->layer, out->row = log->row, out->token = log->token;
    out->is_null = log->is_null, out->label = log->label, out->timestep = log->timestep;
    out->experts = log->experts, out->weights = log->weights;
    out->probs = out->num_probs ? log->probs : NULL;
    return MOEDIT_OK;
}

int moedit_route_log_read(moedit_route_log *log, const char *path, moedit_trace_header *header)
{
    if (!log || !path) return me_fail(MOEDIT_EINPUT, "route log: missing argument");
    moedit_route_log_clear(log);
    me_trace_reader *rd;
    int rc = me_trace_read_open(&rd, path);
    if (rc) return rc;
    const me_trace_info *in = me_trace_reader_info(rd);
    log->k = in->top_k;
    log->num_probs = in->num_probs;
    if (in->count > SIZE_MAX || !reserve(log, (size_t)in->count))
        rc = me_fail(MOEDIT_EINTERNAL, "%s: out of memory for %llu decisions", path, (unsigned long long)in->count);
    me_trace_record rec;
    for (uint64_t i = 0; !rc && i < in->count; i++) {
        if ((rc = me_trace_read(rd, i, &rec))) break;
        const moedit_route r = {.layer = rec.layer, .step = rec.step, .row = rec.row, .token = rec.token,
                                .timestep = rec.timestep, .label = rec.label, .is_null = rec.is_null, .k = rec.k,
                                .experts = rec.experts, .weights = rec.weights, .num_probs = in->num_probs,
                                .probs = rec.probs};
        moedit_route_log_add(log, &r);
    }
    if (!rc && header) {
        *header = (moedit_trace_header){.family = in->family, .depth = in->depth, .num_experts = in->num_experts,
                                        .top_k = in->top_k, .grid_h = in->grid_h, .grid_w = in->grid_w,
                                        .num_classes = in->num_classes, .steps = in->steps, .cfg = in->cfg};
        memcpy(header->sampler, in->sampler, sizeof header->sampler);
    }
    me_trace_read_close(rd);
    if (rc) moedit_route_log_clear(log);
    return rc;
}

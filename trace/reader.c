/* Reads and validates trace files (see trace.h, docs/trace-format.md). The
   header is checked once; each record is checked as it is decoded, so the
   callers can trust every index they get back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "trace/format.h"
#include "trace/trace.h"

struct me_trace_reader {
    me_file file;          /* mapped file, or data == NULL for memory input */
    const uint8_t *data;
    size_t header_size;
    char name[256];
    me_trace_info info;
};

#define BAD(...) me_fail(MOEDIT_EINPUT, __VA_ARGS__)

static int parse_header(me_trace_reader *rd, size_t size)
{
    const uint8_t *h = rd->data;
    const char *n = rd->name;
    me_trace_info *in = &rd->info;
    if (size < TRACE_HEADER_SIZE) return BAD("%s: truncated trace header (%zu of %d bytes)", n, size, TRACE_HEADER_SIZE);
    if (memcmp(h + H_MAGIC, TRACE_MAGIC, 8)) return BAD("%s: not a moedit trace (bad magic)", n);
    in->version = get_u32(h + H_VERSION);
    if (in->version != ME_TRACE_VERSION)
        return BAD("%s: trace format version %u not supported (this moedit reads version %d)", n, in->version, ME_TRACE_VERSION);
    uint32_t hs = get_u32(h + H_HEADER_SIZE);
    if (hs < TRACE_HEADER_SIZE || hs > size || hs % 4) return BAD("%s: bad header size %u", n, hs);
    rd->header_size = hs;
    uint32_t family = get_u32(h + H_FAMILY), depth = get_u32(h + H_DEPTH), experts = get_u32(h + H_EXPERTS);
    uint32_t top_k = get_u32(h + H_TOP_K), tokens = get_u32(h + H_TOKENS), gh = get_u32(h + H_GRID_H);
    uint32_t gw = get_u32(h + H_GRID_W), classes = get_u32(h + H_CLASSES), probs = get_u32(h + H_PROBS);
    uint32_t steps = get_u32(h + H_STEPS), record_size = get_u32(h + H_RECORD_SIZE);
    if (family != MOEDIT_FAMILY_DIT_MOE && family != MOEDIT_FAMILY_SWITCH_DIT) return BAD("%s: unknown model family %u", n, family);
    if (depth < 1 || depth > TRACE_MAX_DEPTH) return BAD("%s: bad depth %u", n, depth);
    if (experts < 1 || experts > ME_TRACE_MAX_EXPERTS) return BAD("%s: bad number of experts %u", n, experts);
    if (top_k < 1 || top_k > experts) return BAD("%s: bad top-k %u (%u experts)", n, top_k, experts);
    if (tokens < 1 || tokens > TRACE_MAX_TOKENS || gh < 1 || gw < 1 || (uint64_t)gh * gw != tokens)
        return BAD("%s: bad token grid %u x %u for %u tokens", n, gh, gw, tokens);
    if (classes < 1 || classes > TRACE_MAX_CLASSES) return BAD("%s: bad number of classes %u", n, classes);
    if (probs != 0 && probs != experts) return BAD("%s: bad number of probabilities %u (%u experts)", n, probs, experts);
    if (steps > ME_TRACE_MAX_STEPS) return BAD("%s: bad number of steps %u", n, steps);
    size_t want = trace_record_size((int)top_k, (int)probs);
    if (record_size != want) return BAD("%s: record size %u, expected %zu for top-%u", n, record_size, want, top_k);
    const char *sampler = (const char *)h + H_SAMPLER;
    if (!memchr(sampler, 0, H_SAMPLER_LEN)) return BAD("%s: sampler name not terminated", n);
    for (const char *c = sampler; *c; c++)
        if (*c < 0x20 || *c > 0x7e) return BAD("%s: sampler name is not printable", n);
    in->cfg = get_f32(h + H_CFG);
    if (!isfinite(in->cfg)) return BAD("%s: guidance scale is not finite", n);
    in->family = (moedit_family)family;
    in->depth = (int)depth;
    in->num_experts = (int)experts;
    in->top_k = (int)top_k;
    in->tokens = (int)tokens;
    in->grid_h = (int)gh;
    in->grid_w = (int)gw;
    in->num_classes = (int)classes;
    in->num_probs = (int)probs;
    in->steps = (int)steps;
    memcpy(in->sampler, sampler, H_SAMPLER_LEN);
    in->record_size = want;
    in->count = get_u64(h + H_COUNT);
    size_t body = size - hs;
    if (in->count > body / want || in->count * want != body)
        return BAD("%s: truncated or padded trace: header says %llu records of %zu bytes, file holds %zu bytes of records",
                   n, (unsigned long long)in->count, want, body);
    return MOEDIT_OK;
}

int me_trace_read_mem(me_trace_reader **out, const uint8_t *data, size_t size, const char *name)
{
    *out = NULL;
    me_trace_reader *rd = me_calloc(1, sizeof *rd);
    if (!rd) return MOEDIT_EINTERNAL;
    rd->data = data;
    snprintf(rd->name, sizeof rd->name, "%s", name ? name : "trace");
    int rc = parse_header(rd, size);
    if (rc) {
        free(rd);
        return rc;
    }
    *out = rd;
    return MOEDIT_OK;
}

int me_trace_read_open(me_trace_reader **out, const char *path)
{
    *out = NULL;
    me_file f;
    int rc = me_file_open(path, &f);
    if (rc) return rc;
    rc = me_trace_read_mem(out, f.data, f.size, path);
    if (rc) {
        me_file_close(&f);
        return rc;
    }
    (*out)->file = f;
    return MOEDIT_OK;
}

const me_trace_info *me_trace_reader_info(const me_trace_reader *rd) { return &rd->info; }

static int bad_prob(float p) { return !(p >= 0.0f && p <= 1.001f); }   /* NaN fails too */

int me_trace_read(const me_trace_reader *rd, uint64_t index, me_trace_record *rec)
{
    const me_trace_info *in = &rd->info;
    const char *n = rd->name;
    unsigned long long i = (unsigned long long)index;
    if (index >= in->count) return BAD("%s: record %llu past the end (%llu records)", n, i, (unsigned long long)in->count);
    const uint8_t *p = rd->data + rd->header_size + index * in->record_size;
    uint32_t step = get_u32(p + R_STEP), row = get_u32(p + R_ROW);
    int32_t token = (int32_t)get_u32(p + R_TOKEN), label = (int32_t)get_u32(p + R_LABEL);
    int layer = get_u16(p + R_LAYER), is_null = p[R_IS_NULL], k = p[R_K];
    float t = get_f32(p + R_TIMESTEP);
    uint32_t max_steps = in->steps ? (uint32_t)in->steps : ME_TRACE_MAX_STEPS;
    if (step >= max_steps) return BAD("%s: record %llu: step %u out of range (%u steps)", n, i, step, max_steps);
    if (!isfinite(t)) return BAD("%s: record %llu: timestep is not finite", n, i);
    if (layer >= in->depth) return BAD("%s: record %llu: layer %d out of range (depth %d)", n, i, layer, in->depth);
    if (is_null > 1) return BAD("%s: record %llu: bad null flag %d", n, i, is_null);
    if (k != in->top_k) return BAD("%s: record %llu: %d experts, the header says top-%d", n, i, k, in->top_k);
    if (row > INT32_MAX) return BAD("%s: record %llu: bad row %u", n, i, row);
    if (token < -1 || token >= in->tokens) return BAD("%s: record %llu: token %d out of range (%d tokens)", n, i, (int)token, in->tokens);
    if (label < 0 || label > in->num_classes)
        return BAD("%s: record %llu: label %d out of range (%d classes + null)", n, i, (int)label, in->num_classes);
    rec->step = (int)step;
    rec->timestep = t;
    rec->layer = layer;
    rec->row = (int)row;
    rec->token = token;
    rec->label = label;
    rec->is_null = is_null;
    rec->k = k;
    const uint8_t *w = p + R_EXPERTS + trace_pad4((size_t)k);
    for (int j = 0; j < k; j++) {
        int e = p[R_EXPERTS + j];
        if (e >= in->num_experts) return BAD("%s: record %llu: expert %d out of range (%d experts)", n, i, e, in->num_experts);
        for (int q = 0; q < j; q++)
            if (rec->experts[q] == e) return BAD("%s: record %llu: expert %d chosen twice", n, i, e);
        rec->experts[j] = e;
        rec->weights[j] = get_f32(w + 4 * j);
        if (bad_prob(rec->weights[j])) return BAD("%s: record %llu: weight %g is not a probability", n, i, rec->weights[j]);
    }
    for (int j = 0; j < in->num_probs; j++) {
        rec->probs[j] = get_f32(w + 4 * (k + j));
        if (bad_prob(rec->probs[j])) return BAD("%s: record %llu: probability %g is not a probability", n, i, rec->probs[j]);
    }
    return MOEDIT_OK;
}

void me_trace_read_close(me_trace_reader *rd)
{
    if (!rd) return;
    me_file_close(&rd->file);
    free(rd);
}

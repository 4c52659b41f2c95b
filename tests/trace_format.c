/* The trace file format: round trips through the writer and reader, and
   refusal of truncated or corrupt files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/core.h"
#include "trace/trace.h"

static moedit_config moe_config(void)
{
    /* input 8, patch 2: 4 x 4 tokens */
    moedit_config c = {.family = MOEDIT_FAMILY_DIT_MOE, .depth = 3, .input_size = 8,
                       .patch = 2, .num_classes = 5, .num_experts = 8, .top_k = 2};
    return c;
}

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 512, "/tmp/moedit_trace_%d_%s", (int)getpid(), name);
    return p;
}

/* A reproducible route for index i of a synthetic run. */
typedef struct {
    moedit_route r;
    int experts[8];
    float weights[8], probs[8];
} route_buf;

static void make_route(route_buf *b, long i, const moedit_config *c, int switch_rows)
{
    memset(b, 0, sizeof *b);
    int tokens = (c->input_size / c->patch) * (c->input_size / c->patch);
    b->r.layer = (int)(i % c->depth);
    b->r.row = (int)((i / c->depth) % 4);
    b->r.token = switch_rows ? -1 : (int)((i / (4 * c->depth)) % tokens);
    b->r.step = (int)(i / 997);
    b->r.timestep = 999.0f - (float)b->r.step * 4;
    b->r.is_null = b->r.row >= 2;
    b->r.label = b->r.is_null ? c->num_classes : (int)(i % c->num_classes);
    b->r.k = c->top_k;
    int first = (int)((i * 7) % c->num_experts);
    for (int j = 0; j < c->top_k; j++) {
        b->experts[j] = (first + j * 3) % c->num_experts;
        b->weights[j] = 0.5f / (float)(j + 1) + (float)(i % 11) * 1e-3f;
    }
    b->r.experts = b->experts;
    b->r.weights = b->weights;
    if (switch_rows) {
        b->r.num_probs = c->num_experts;
        for (int e = 0; e < c->num_experts; e++) b->probs[e] = (float)((e + i) % c->num_experts) / 28.0f;
        b->r.probs = b->probs;
    }
}

static void write_trace(const char *path, const moedit_config *c, long n, int switch_rows)
{
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, c), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_set_info(tr, "ddpm", 250, 1.5f);
    for (long i = 0; i < n; i++) {
        route_buf b;
        make_route(&b, i, c, switch_rows);
        me_trace_route(tr, &b.r);
    }
    cr_assert_eq(access(path, F_OK), -1, "no file at the final name before close");
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
}

static void check_round_trip(const moedit_config *c, long n, int switch_rows)
{
    const char *path = tmp_path(switch_rows ? "switch.trace" : "moe.trace");
    write_trace(path, c, n, switch_rows);
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK, "%s", moedit_last_error());
    const me_trace_info *in = me_trace_reader_info(rd);
    cr_assert_eq(in->count, (uint64_t)n);
    cr_assert_eq(in->family, c->family);
    cr_assert_eq(in->depth, 3);
    cr_assert_eq(in->num_experts, 8);
    cr_assert_eq(in->top_k, c->top_k);
    cr_assert_eq(in->tokens, 16);
    cr_assert_eq(in->grid_h, 4);
    cr_assert_eq(in->grid_w, 4);
    cr_assert_eq(in->num_classes, 5);
    cr_assert_eq(in->num_probs, switch_rows ? 8 : 0);
    cr_assert_str_eq(in->sampler, "ddpm");
    cr_assert_eq(in->steps, 250);
    cr_assert_eq(in->cfg, 1.5f);
    me_trace_record *rec = malloc(sizeof *rec);
    for (long i = 0; i < n; i++) {
        route_buf b;
        make_route(&b, i, c, switch_rows);
        cr_assert_eq(me_trace_read(rd, (uint64_t)i, rec), MOEDIT_OK, "%s", moedit_last_error());
        cr_assert_eq(rec->layer, b.r.layer);
        cr_assert_eq(rec->row, b.r.row);
        cr_assert_eq(rec->token, b.r.token);
        cr_assert_eq(rec->step, b.r.step);
        cr_assert_eq(rec->timestep, b.r.timestep);
        cr_assert_eq(rec->is_null, b.r.is_null);
        cr_assert_eq(rec->label, (int)b.r.label);
        cr_assert_eq(rec->k, b.r.k);
        for (int j = 0; j < b.r.k; j++) {
            cr_assert_eq(rec->experts[j], b.experts[j]);
            cr_assert_eq(rec->weights[j], b.weights[j]);
        }
        for (int e = 0; e < b.r.num_probs; e++) cr_assert_eq(rec->probs[e], b.probs[e]);
    }
    cr_assert_neq(me_trace_read(rd, (uint64_t)n, rec), MOEDIT_OK, "reading past the end fails");
    free(rec);
    me_trace_read_close(rd);
    remove(path);
}

/* 60k records of 36 bytes: more than the 1 MiB write buffer. */
Test(trace_format, dit_moe_round_trip) {
    moedit_config c = moe_config();
    check_round_trip(&c, 60000, 0);
}

Test(trace_format, switch_dit_round_trip_keeps_all_probabilities) {
    moedit_config c = moe_config();
    c.family = MOEDIT_FAMILY_SWITCH_DIT;
    c.top_k = 3;
    check_round_trip(&c, 5000, 1);
}

Test(trace_format, record_layout_is_little_endian_and_documented) {
    moedit_config c = moe_config();
    const char *path = tmp_path("layout.trace");
    write_trace(path, &c, 1, 0);
    me_file f;
    cr_assert_eq(me_file_open(path, &f), MOEDIT_OK);
    cr_assert_eq(f.size, 128 + 36);
    const uint8_t *h = f.data, *r = f.data + 128;
    cr_assert(!memcmp(h, "MOETRACE", 8));
    cr_assert_eq(h[8], 1);                     /* version */
    cr_assert_eq(h[16], 36);                   /* record size */
    cr_assert_eq(h[56], 1);                    /* record count */
    cr_assert_str_eq((const char *)h + 72, "ddpm");
    /* route 0: step 0, t 999, layer 0, row 0, token 0, label 0, experts 0 and 3 */
    const uint8_t t999[4] = {0x00, 0xc0, 0x79, 0x44};
    cr_assert(!memcmp(r + 4, t999, 4));
    cr_assert_eq(r[24], 0);
    cr_assert_eq(r[25], 3);
    cr_assert_eq(r[26], 0);
    cr_assert_eq(r[27], 0);
    me_file_close(&f);
    remove(path);
}

Test(trace_format, bad_route_is_reported_at_close_and_leaves_no_file) {
    moedit_config c = moe_config();
    const char *path = tmp_path("bad.trace");
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK);
    route_buf b;
    make_route(&b, 0, &c, 0);
    b.experts[1] = 8;   /* only 8 experts */
    me_trace_route(tr, &b.r);
    cr_assert_eq(me_trace_close(tr), MOEDIT_EINTERNAL);
    cr_assert(strstr(moedit_last_error(), "expert 8 out of range"), "%s", moedit_last_error());
    cr_assert_eq(access(path, F_OK), -1);
}

Test(trace_format, abort_leaves_no_file) {
    moedit_config c = moe_config();
    const char *path = tmp_path("abort.trace");
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK);
    route_buf b;
    make_route(&b, 0, &c, 0);
    me_trace_route(tr, &b.r);
    me_trace_abort(tr);
    cr_assert_eq(access(path, F_OK), -1);
}

Test(trace_format, dense_model_and_unwritable_path_are_refused) {
    moedit_config c = moe_config();
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, "/nonexistent-dir/x.trace", &c), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "/nonexistent-dir/x.trace"));
    c.family = MOEDIT_FAMILY_DIT;
    c.num_experts = 0;
    cr_assert_eq(me_trace_open(&tr, tmp_path("dense.trace"), &c), MOEDIT_EINPUT);
}

/* ---- corrupt input ---- */

static uint8_t *good_trace(size_t *size)
{
    moedit_config c = moe_config();
    const char *path = tmp_path("good.trace");
    write_trace(path, &c, 40, 0);
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(4096);
    *size = fread(buf, 1, 4096, f);
    fclose(f);
    remove(path);
    cr_assert_eq(*size, 128 + 40 * 36);
    return buf;
}

/* Opens from memory, and if that works reads every record; returns the first error. */
static int read_all(const uint8_t *data, size_t size)
{
    me_trace_reader *rd;
    int rc = me_trace_read_mem(&rd, data, size, "t.trace");
    if (rc) return rc;
    me_trace_record rec;
    for (uint64_t i = 0; !rc && i < me_trace_reader_info(rd)->count; i++) rc = me_trace_read(rd, i, &rec);
    me_trace_read_close(rd);
    return rc;
}

static void expect_refused(const uint8_t *data, size_t size, const char *needle)
{
    cr_assert_eq(read_all(data, size), MOEDIT_EINPUT, "expected refusal (%s)", needle);
    cr_assert(strstr(moedit_last_error(), needle), "message '%s' lacks '%s'", moedit_last_error(), needle);
    cr_assert(strstr(moedit_last_error(), "t.trace"), "message names the file");
}

Test(trace_format, good_trace_reads) {
    size_t n;
    uint8_t *buf = good_trace(&n);
    cr_assert_eq(read_all(buf, n), MOEDIT_OK, "%s", moedit_last_error());
    free(buf);
}

Test(trace_format, truncated_traces_are_refused) {
    size_t n;
    uint8_t *buf = good_trace(&n);
    const size_t cuts[] = {0, 7, 8, 100, 127};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) expect_refused(buf, cuts[i], "truncated trace header");
    const size_t body_cuts[] = {128, 129, 128 + 36, 128 + 20 * 36 + 5, n - 1};
    for (size_t i = 0; i < sizeof body_cuts / sizeof body_cuts[0]; i++) expect_refused(buf, body_cuts[i], "truncated");
    free(buf);
}

static void expect_corrupt(size_t offset, uint8_t value, const char *needle)
{
    size_t n;
    uint8_t *buf = good_trace(&n);
    buf[offset] = value;
    expect_refused(buf, n, needle);
    free(buf);
}

static void expect_corrupt32(size_t offset, uint32_t value, const char *needle)
{
    size_t n;
    uint8_t *buf = good_trace(&n);
    for (int i = 0; i < 4; i++) buf[offset + i] = (uint8_t)(value >> (8 * i));
    expect_refused(buf, n, needle);
    free(buf);
}

Test(trace_format, corrupt_headers_are_refused) {
    expect_corrupt(0, 'X', "bad magic");
    expect_corrupt(8, 2, "version 2 not supported");
    expect_corrupt(16, 40, "record size");
    expect_corrupt(20, 7, "family");
    expect_corrupt(24, 0, "depth");
    expect_corrupt(28, 0, "experts");
    expect_corrupt(32, 9, "top-k");
    expect_corrupt(40, 3, "token grid");
    expect_corrupt(52, 3, "probabilities");
    expect_corrupt(56, 41, "truncated");
    expect_corrupt32(60, 1, "truncated");   /* a count beyond 2^32 */
    expect_corrupt32(68, 0x7f800000u, "guidance scale");
    expect_corrupt(72, 0x01, "sampler name is not printable");
}

Test(trace_format, corrupt_records_are_refused) {
    size_t rec5 = 128 + 5 * 36;
    expect_corrupt(rec5 + 24, 8, "expert 8 out of range");
    expect_corrupt(rec5 + 25, 255, "expert 255 out of range");
    expect_corrupt(rec5 + 8, 3, "layer 3 out of range");
    expect_corrupt(rec5 + 10, 2, "null flag");
    expect_corrupt(rec5 + 11, 3, "3 experts");
    expect_corrupt(rec5 + 16, 16, "token 16 out of range");
    expect_corrupt(rec5 + 20, 6, "label 6 out of range");
    expect_corrupt(rec5 + 1, 1, "step 256 out of range");
    expect_corrupt32(rec5 + 4, 0x7fc00000u, "timestep is not finite");   /* NaN */
    expect_corrupt32(rec5 + 12, 0x80000000u, "bad row");
    expect_corrupt32(rec5 + 16, 0xfffffffeu, "token -2 out of range");
    expect_corrupt(rec5 + 31, 0x40, "not a probability");
}

Test(trace_format, duplicate_expert_is_refused) {
    size_t n;
    uint8_t *buf = good_trace(&n);
    size_t rec = 128 + 3 * 36;
    buf[rec + 25] = buf[rec + 24];
    expect_refused(buf, n, "chosen twice");
    free(buf);
}

/* Files written from the documentation by tests/fixtures/trace/make_trace_fixtures.py. */
Test(trace_format, documented_v1_files_read) {
    me_trace_reader *rd;
    me_trace_record rec;
    cr_assert_eq(me_trace_read_open(&rd, FIXTURES "/trace/v1_moe.trace"), MOEDIT_OK, "%s", moedit_last_error());
    const me_trace_info *in = me_trace_reader_info(rd);
    cr_assert(in->family == MOEDIT_FAMILY_DIT_MOE && in->depth == 2 && in->num_experts == 4 && in->top_k == 2);
    cr_assert(in->tokens == 4 && in->grid_h == 2 && in->num_classes == 3 && in->count == 4);
    cr_assert(in->steps == 2 && in->cfg == 1.5f && !strcmp(in->sampler, "ddpm"));
    cr_assert_eq(me_trace_read(rd, 2, &rec), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert(rec.step == 0 && rec.timestep == 999.0f && rec.layer == 1 && rec.is_null == 1);
    cr_assert(rec.row == 1 && rec.token == 3 && rec.label == 3 && rec.k == 2);
    cr_assert(rec.experts[0] == 3 && rec.experts[1] == 1 && rec.weights[0] == 0.7f && rec.weights[1] == 0.1f);
    me_trace_read_close(rd);

    cr_assert_eq(me_trace_read_open(&rd, FIXTURES "/trace/v1_switch.trace"), MOEDIT_OK, "%s", moedit_last_error());
    in = me_trace_reader_info(rd);
    cr_assert(in->family == MOEDIT_FAMILY_SWITCH_DIT && in->num_probs == 3 && in->steps == 0 && in->sampler[0] == 0);
    cr_assert_eq(me_trace_read(rd, 1, &rec), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert(rec.token == -1 && rec.label == 5 && rec.is_null == 1 && rec.timestep == 0.75f);
    cr_assert(rec.experts[0] == 1 && rec.experts[1] == 2 && rec.weights[0] == 0.6f);
    cr_assert(rec.probs[0] == 0.1f && rec.probs[1] == 0.6f && rec.probs[2] == 0.3f);
    me_trace_read_close(rd);
}

Test(trace_format, step_beyond_the_run_is_reported_at_close) {
    moedit_config c = moe_config();
    const char *path = tmp_path("steps.trace");
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK);
    route_buf b;
    make_route(&b, 0, &c, 0);
    b.r.step = 10;
    me_trace_route(tr, &b.r);
    me_trace_set_info(tr, "ddim", 10, 0.0f / 0.0f);   /* after the records is fine; NaN cfg dropped */
    cr_assert_eq(me_trace_close(tr), MOEDIT_EINTERNAL);
    cr_assert(strstr(moedit_last_error(), "step 10 recorded in a run of 10 steps"), "%s", moedit_last_error());
    cr_assert_eq(access(path, F_OK), -1);
}

Test(trace_format, configs_the_reader_would_refuse_are_refused) {
    moedit_config c = moe_config();
    me_trace *tr;
    c.depth = 300;
    cr_assert_eq(me_trace_open(&tr, tmp_path("deep.trace"), &c), MOEDIT_EINPUT);
    c = moe_config();
    c.num_experts = 300;
    cr_assert_eq(me_trace_open(&tr, tmp_path("wide.trace"), &c), MOEDIT_EINPUT);
    c = moe_config();
    c.top_k = 9;
    cr_assert_eq(me_trace_open(&tr, tmp_path("topk.trace"), &c), MOEDIT_EINPUT);
}

/* The in-memory route log (moedit_route_log): columns hold exactly what the
   tracer was given, across growth; mixed shapes and misuse are errors; a
   trace file reads into it with the file reader's checks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "moedit.h"

/* Decision i of a synthetic run with k experts and np all-expert probabilities. */
static void feed(moedit_route_log *log, int i, int k, int np)
{
    int experts[4];
    float weights[4], probs[8];
    for (int j = 0; j < k; j++) experts[j] = (i + 3 * j) % 8, weights[j] = 1.0f / (float)(i + j + 2);
    for (int j = 0; j < np; j++) probs[j] = (float)j / (float)(i + 8);
    moedit_route r = {.layer = i % 3, .step = i / 100, .row = i % 7, .token = np ? -1 : i % 16,
                      .timestep = 999.0f - (float)i, .label = 1000 + i, .is_null = i & 1, .k = k,
                      .experts = experts, .weights = weights, .num_probs = np, .probs = probs};
    moedit_route_log_add(log, &r);
}

Test(route_log, columns_across_growth)
{
    moedit_route_log *log;
    cr_assert_eq(moedit_route_log_new(&log), MOEDIT_OK);
    enum { N = 10000, K = 2 };   /* past the first reservation of 4096 */
    for (int i = 0; i < N; i++) feed(log, i, K, 0);
    moedit_route_table t;
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert_eq(t.count, N);
    cr_assert_eq(t.k, K);
    cr_assert_eq(t.num_probs, 0);
    cr_assert_null(t.probs);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t.layer[i], i % 3);
        cr_assert_eq(t.step[i], i / 100);
        cr_assert_eq(t.row[i], i % 7);
        cr_assert_eq(t.token[i], i % 16);
        cr_assert_eq(t.is_null[i], i & 1);
        cr_assert_eq(t.label[i], 1000 + i);
        cr_assert_eq(t.timestep[i], 999.0f - (float)i);
        for (int j = 0; j < K; j++) {
            cr_assert_eq(t.experts[i * K + j], (i + 3 * j) % 8);
            cr_assert_eq(t.weights[i * K + j], 1.0f / (float)(i + j + 2));
        }
    }
    moedit_route_log_clear(log);
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert_eq(t.count, 0);
    moedit_route_log_free(log);
}

Test(route_log, switch_probabilities)
{
    moedit_route_log *log;
    cr_assert_eq(moedit_route_log_new(&log), MOEDIT_OK);
    for (int i = 0; i < 5; i++) feed(log, i, 2, 8);
    moedit_route_table t;
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert_eq(t.num_probs, 8);
    cr_assert_eq(t.token[4], -1);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 8; j++) cr_assert_eq(t.probs[i * 8 + j], (float)j / (float)(i + 8));
    moedit_route_log_free(log);
}

Test(route_log, mixed_shapes_are_refused)
{
    moedit_route_log *log;
    cr_assert_eq(moedit_route_log_new(&log), MOEDIT_OK);
    feed(log, 0, 2, 0);
    feed(log, 1, 3, 0);
    moedit_route_table t;
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_EINPUT);
    cr_assert_str_eq(moedit_last_error(), "route log: decisions of different models were mixed");
    moedit_route_log_clear(log);   /* a cleared log records again */
    feed(log, 0, 3, 0);
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert_eq(t.count, 1);
    cr_assert_eq(t.k, 3);
    moedit_route_log_free(log);
    moedit_route_log_free(NULL);
    cr_assert_eq(moedit_route_log_table(NULL, &t), MOEDIT_EINPUT);
}

/* The documented v1 files (tests/fixtures/trace/make_trace_fixtures.py):
   header and columns as written there. */
Test(route_log, trace_files_read_into_the_log)
{
    moedit_route_log *log;
    cr_assert_eq(moedit_route_log_new(&log), MOEDIT_OK);
    feed(log, 0, 3, 0);   /* cleared by the read */
    moedit_trace_header h;
    cr_assert_eq(moedit_route_log_read(log, FIXTURES "/trace/v1_moe.trace", &h), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert(h.family == MOEDIT_FAMILY_DIT_MOE && h.depth == 2 && h.num_experts == 4 && h.top_k == 2);
    cr_assert(h.grid_h == 2 && h.grid_w == 2 && h.num_classes == 3 && h.steps == 2 && h.cfg == 1.5f);
    cr_assert_str_eq(h.sampler, "ddpm");
    moedit_route_table t;
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert(t.count == 4 && t.k == 2 && t.num_probs == 0 && !t.probs);
    cr_assert(t.step[2] == 0 && t.timestep[2] == 999.0f && t.layer[2] == 1 && t.is_null[2] == 1);
    cr_assert(t.row[2] == 1 && t.token[2] == 3 && t.label[2] == 3);
    cr_assert(t.experts[4] == 3 && t.experts[5] == 1 && t.weights[4] == 0.7f && t.weights[5] == 0.1f);

    cr_assert_eq(moedit_route_log_read(log, FIXTURES "/trace/v1_switch.trace", NULL), MOEDIT_OK, "%s",
                 moedit_last_error());
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert(t.num_probs == 3 && t.token[1] == -1 && t.label[1] == 5 && t.is_null[1] == 1 && t.timestep[1] == 0.75f);
    cr_assert(t.experts[2] == 1 && t.experts[3] == 2 && t.weights[2] == 0.6f);
    cr_assert(t.probs[3] == 0.1f && t.probs[4] == 0.6f && t.probs[5] == 0.3f);
    moedit_route_log_free(log);
}

/* A record the file reader refuses fails the read naming it, and leaves
   the log empty rather than holding the records before it. */
Test(route_log, a_bad_record_leaves_the_log_empty)
{
    FILE *f = fopen(FIXTURES "/trace/v1_moe.trace", "rb");
    cr_assert_not_null(f);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const size_t record_size = 24 + 4 + 2 * 4;   /* top-2, no probabilities (docs/trace-format.md) */
    buf[128 + 3 * record_size + 24] = 9;            /* the last record's first expert: 4 experts */
    char path[] = "/tmp/route_log_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    f = fdopen(fd, "wb");
    cr_assert_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
    moedit_route_log *log;
    cr_assert_eq(moedit_route_log_new(&log), MOEDIT_OK);
    int rc = moedit_route_log_read(log, path, NULL);
    remove(path);
    cr_assert_eq(rc, MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "record 3: expert 9 out of range (4 experts)"), "%s", moedit_last_error());
    moedit_route_table t;
    cr_assert_eq(moedit_route_log_table(log, &t), MOEDIT_OK);
    cr_assert_eq(t.count, 0);
    cr_assert_eq(moedit_route_log_read(log, "/nonexistent/x.trace", NULL), MOEDIT_EINPUT);
    moedit_route_log_free(log);
}

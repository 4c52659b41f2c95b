/* The in-memory route log (moedit_route_log): columns hold exactly what the
   tracer was given, across growth; mixed shapes and misuse are errors. */
#include <criterion/criterion.h>
#include <stdlib.h>
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

/* Heatmap tables, statistics and figures from small hand-made traces whose
   counts are worked out by hand below. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trace/heatmap.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
/* Static stb functions this test does not call would warn at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>
#include "tests/testutil.h"

typedef struct {
    int layer, step, row, token, label, is_null, e0, e1;
    float t;
} hand_route;

/* 2 layers, 4 experts, top-2, 2 x 2 tokens, 3 classes (3 = null), 2 steps. */
static const hand_route routes[] = {
    {0, 0, 0, 0, 1, 0, 0, 1, 999}, {0, 0, 0, 1, 1, 0, 0, 2, 999}, {0, 0, 1, 0, 3, 1, 3, 0, 999},
    {1, 0, 0, 0, 1, 0, 1, 2, 999}, {0, 1, 0, 3, 2, 0, 2, 3, 500}, {1, 1, 1, 3, 3, 1, 3, 1, 500},
};

static char dir[64];

static void make_dir(void) { tu_tmpdir(dir, sizeof dir, "heatmap"); }
static void remove_dir(void) { tu_rmtree(dir); }

TestSuite(trace_heatmap, .init = make_dir, .fini = remove_dir);

static me_trace_reader *hand_trace(const char *path)
{
    moedit_config c = {.family = MOEDIT_FAMILY_DIT_MOE, .depth = 2, .input_size = 4,
                       .patch = 2, .num_classes = 3, .num_experts = 4, .top_k = 2};
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_set_info(tr, "ddim", 2, 4.0f);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const hand_route *h = &routes[i];
        int experts[2] = {h->e0, h->e1};
        float weights[2] = {0.6f, 0.3f};
        moedit_route r = {.layer = h->layer, .step = h->step, .row = h->row, .token = h->token,
                          .timestep = h->t, .label = h->label, .is_null = h->is_null, .k = 2,
                          .experts = experts, .weights = weights};
        me_trace_route(tr, &r);
    }
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK, "%s", moedit_last_error());
    return rd;
}

static char *slurp(const char *name)
{
    char *text = tu_slurp(tu_join(dir, name), NULL);
    cr_assert(text, "%s missing", tu_join(dir, name));
    return text;
}

static void count_hand_trace(me_trace_counts *c, int cond_only)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hand.trace", dir);
    me_trace_reader *rd = hand_trace(path);
    cr_assert_eq(me_trace_count(c, rd, cond_only), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_read_close(rd);
    remove(path);
}

Test(trace_heatmap, tables_equal_hand_counts) {
    me_trace_counts c;
    count_hand_trace(&c, 0);
    cr_assert_eq(c.records, 6);
    cr_assert_eq(me_trace_write_tables(&c, dir), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);

    char *s = slurp("step_counts.csv");
    cr_assert_str_eq(s, "layer,step,timestep,expert,count\n"
                        "0,0,999,0,3\n0,0,999,1,1\n0,0,999,2,1\n0,0,999,3,1\n"
                        "0,1,500,0,0\n0,1,500,1,0\n0,1,500,2,1\n0,1,500,3,1\n"
                        "1,0,999,0,0\n1,0,999,1,1\n1,0,999,2,1\n1,0,999,3,0\n"
                        "1,1,500,0,0\n1,1,500,1,1\n1,1,500,2,0\n1,1,500,3,1\n");
    free(s);
    s = slurp("class_counts.csv");
    cr_assert_str_eq(s, "layer,class,expert,count\n"
                        "0,1,0,2\n0,1,1,1\n0,1,2,1\n0,1,3,0\n"
                        "0,2,0,0\n0,2,1,0\n0,2,2,1\n0,2,3,1\n"
                        "0,3,0,1\n0,3,1,0\n0,3,2,0\n0,3,3,1\n"
                        "1,1,0,0\n1,1,1,1\n1,1,2,1\n1,1,3,0\n"
                        "1,3,0,0\n1,3,1,1\n1,3,2,0\n1,3,3,1\n");
    free(s);
    s = slurp("position_counts.csv");
    cr_assert(!strncmp(s, "layer,position,expert,count\n"
                          "0,0,0,2\n0,0,1,1\n0,0,2,0\n0,0,3,1\n"
                          "0,1,0,1\n0,1,1,0\n0,1,2,1\n0,1,3,0\n"
                          "0,2,0,0\n0,2,1,0\n0,2,2,0\n0,2,3,0\n"
                          "0,3,0,0\n0,3,1,0\n0,3,2,1\n0,3,3,1\n"
                          "1,0,0,0\n1,0,1,1\n1,0,2,1\n1,0,3,0\n", 28 + 20 * 8), "%s", s);
    cr_assert(strstr(s, "1,3,1,1\n1,3,2,0\n1,3,3,1\n"));
    free(s);
    s = slurp("step_entropy.csv");
    /* layer 0 step 1: two experts, one each: entropy ln2/ln4 = 0.5, max share 0.5 */
    cr_assert(strstr(s, "0,1,500,0.500000,0.500000\n"), "%s", s);
    free(s);
}

Test(trace_heatmap, cond_only_skips_null_rows) {
    me_trace_counts c;
    count_hand_trace(&c, 1);
    cr_assert_eq(c.records, 4);
    cr_assert_eq(me_trace_write_tables(&c, dir), MOEDIT_OK);
    me_trace_counts_free(&c);
    char *s = slurp("step_counts.csv");
    cr_assert(strstr(s, "\n0,0,999,0,2\n0,0,999,1,1\n0,0,999,2,1\n0,0,999,3,0\n"), "%s", s);
    cr_assert(strstr(s, "\n1,1,500,0,0\n1,1,500,1,0\n1,1,500,2,0\n1,1,500,3,0\n"), "%s", s);
    free(s);
    s = slurp("class_counts.csv");
    cr_assert_null(strstr(s, "\n0,3,"), "no null class rows: %s", s);
    free(s);
}

Test(trace_heatmap, switch_dit_rows_count_at_every_position) {
    /* input 6, patch 2: 3 x 3 tokens */
    moedit_config c = {.family = MOEDIT_FAMILY_SWITCH_DIT, .depth = 1, .input_size = 6,
                       .patch = 2, .num_classes = 2, .num_experts = 2, .top_k = 1};
    char path[600];
    snprintf(path, sizeof path, "%s/switch.trace", dir);
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &c), MOEDIT_OK);
    int expert = 1;
    float w = 0.7f, probs[2] = {0.3f, 0.7f};
    moedit_route r = {.layer = 0, .step = 0, .row = 0, .token = -1, .timestep = 0.5f, .label = 0,
                      .k = 1, .experts = &expert, .weights = &w, .num_probs = 2, .probs = probs};
    me_trace_route(tr, &r);
    for (r.step = 1; r.step <= 2; r.step++) {   /* later steps pick expert 0 */
        expert = 0;
        me_trace_route(tr, &r);
    }
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK);
    me_trace_counts cnt;
    cr_assert_eq(me_trace_count(&cnt, rd, 0), MOEDIT_OK);
    me_trace_read_close(rd);
    cr_assert_eq(cnt.steps, 3, "the step count comes from the records when the header has none");
    const uint64_t steps[6] = {0, 1, 1, 0, 1, 0};   /* [step][expert]: one row, counted once per step */
    for (int i = 0; i < 6; i++) cr_assert_eq(cnt.step_counts[i], steps[i], "step %d expert %d", i / 2, i % 2);
    for (int t = 0; t < 9; t++) {
        cr_assert_eq(cnt.position_counts[t * 2 + 0], 2);
        cr_assert_eq(cnt.position_counts[t * 2 + 1], 1);
    }
    me_trace_counts_free(&cnt);
}

Test(trace_heatmap, concentration) {
    double h, mx;
    const uint64_t uniform[4] = {5, 5, 5, 5}, one[4] = {0, 9, 0, 0}, skew[2] = {3, 1}, none[2] = {0, 0};
    me_trace_concentration(uniform, 4, &h, &mx);
    cr_assert_float_eq(h, 1.0, 1e-12);
    cr_assert_float_eq(mx, 0.25, 1e-12);
    me_trace_concentration(one, 4, &h, &mx);
    cr_assert_float_eq(h, 0.0, 1e-12);
    cr_assert_float_eq(mx, 1.0, 1e-12);
    me_trace_concentration(skew, 2, &h, &mx);
    cr_assert_float_eq(h, 0.8112781244591328, 1e-12);
    cr_assert_float_eq(mx, 0.75, 1e-12);
    me_trace_concentration(none, 2, &h, &mx);
    cr_assert_eq(h, 0);
    cr_assert_eq(mx, 0);
}

Test(trace_heatmap, summary_reports_load_and_early_late) {
    me_trace_counts c;
    count_hand_trace(&c, 0);
    cr_assert_eq(me_trace_write_summary(&c, dir, NULL), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    char *s = slurp("summary.txt");
    cr_assert(strstr(s, "sampler: ddim, 2 steps, cfg 4"), "%s", s);
    /* layer 0 load: e0 3, e1 1, e2 2, e3 2 of 8 assignments */
    cr_assert(strstr(s, "\n0      0.3750  0.1250  0.2500  0.2500  1.500\n"), "%s", s);
    cr_assert(strstr(s, "early vs late"), "%s", s);
    free(s);
}

static void expect_png(const char *name, int w, int h)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int x, y, n;
    unsigned char *img = stbi_load(p, &x, &y, &n, 3);
    cr_assert(img, "%s does not decode", p);
    cr_assert_eq(x, w, "%s width", name);
    cr_assert_eq(y, h, "%s height", name);
    /* Something was drawn: a fair share of the pixels are not white, and
       the colour scale reaches both ends of viridis. */
    long ink = 0, dark = 0, yellow = 0;
    for (long i = 0; i < (long)x * y; i++) {
        const unsigned char *q = img + 3 * i;
        ink += q[0] < 250 || q[1] < 250 || q[2] < 250;
        dark += q[0] == 0x44 && q[1] == 0x01 && q[2] == 0x54;
        yellow += q[0] == 0xfd && q[1] == 0xe7 && q[2] == 0x25;
    }
    stbi_image_free(img);
    cr_assert_gt(ink, (long)x * y / 10, "%s is mostly blank", name);
    cr_assert_gt(dark, 0, "%s has no minimum colour", name);
    cr_assert_gt(yellow, 0, "%s has no maximum colour", name);
}

Test(trace_heatmap, figures_decode_with_expected_sizes) {
    me_trace_counts c;
    count_hand_trace(&c, 0);
    cr_assert_eq(me_trace_write_figures(&c, dir, ME_FIG_PNG), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    expect_png("layer_00.png", 1160, 710);
    expect_png("layer_01.png", 1160, 710);
    expect_png("overview.png", 760, 260);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) cr_assert_null(strstr(e->d_name, ".tmp"), "temporary %s left", e->d_name);
    closedir(d);
}

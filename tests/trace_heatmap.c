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
#include "image/colormap.h"
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
    cr_assert_str_eq(s, "layer,class,class_name,expert,count\n"
                        "0,1,,0,2\n0,1,,1,1\n0,1,,2,1\n0,1,,3,0\n"
                        "0,2,,0,0\n0,2,,1,0\n0,2,,2,1\n0,2,,3,1\n"
                        "0,3,(unconditional),0,1\n0,3,(unconditional),1,0\n0,3,(unconditional),2,0\n"
                        "0,3,(unconditional),3,1\n"
                        "1,1,,0,0\n1,1,,1,1\n1,1,,2,1\n1,1,,3,0\n"
                        "1,3,(unconditional),0,0\n1,3,(unconditional),1,1\n1,3,(unconditional),2,0\n"
                        "1,3,(unconditional),3,1\n");
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

/* With --cond-only, layer 1 routes nothing at step 1 (its one record there is
   a null row): step 1's concentration is layer 0's (e2 1, e3 1: entropy 0.5,
   max share 0.5), not halved by an empty layer read as entropy 0, and
   step_entropy.csv has no row for layer 1 at step 1. */
Test(trace_heatmap, layers_without_assignments_are_not_averaged_in) {
    me_trace_counts c;
    count_hand_trace(&c, 1);
    cr_assert_eq(me_trace_write_tables(&c, dir), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_trace_write_summary(&c, dir, NULL), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    char *s = slurp("step_entropy.csv");
    cr_assert(strstr(s, "\n0,1,500,0.500000,0.500000\n"), "%s", s);
    cr_assert_null(strstr(s, "\n1,1,"), "a row for a layer with nothing routed: %s", s);
    /* step 0: layer 0 e0 2, e1 1, e2 1 (entropy 0.75, max 0.5), layer 1 e1 1, e2 1 (0.5, 0.5) */
    cr_assert(strstr(s, "\n1,0,999,0.500000,0.500000\n"), "%s", s);
    free(s);
    s = slurp("summary.txt");
    cr_assert(strstr(s, "\n0     999           0.6250   0.5000\n"), "%s", s);
    cr_assert(strstr(s, "\n1     500           0.5000   0.5000\n"), "%s", s);
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
    /* pages of 600 x 402 and 420 x 162 points, 2 pixels a point */
    expect_png("layer_00.png", 1200, 804);
    expect_png("layer_01.png", 1200, 804);
    expect_png("overview.png", 840, 324);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) cr_assert_null(strstr(e->d_name, ".tmp"), "temporary %s left", e->d_name);
    closedir(d);
}

/* Class names of the hand trace; one needs CSV quoting. */
static char *hand_names[3] = {"cat", "dog", "bird, \"small\""};
static const me_class_names names3 = {.count = 3, .names = hand_names};

Test(trace_heatmap, class_names_in_tables_and_summary) {
    me_trace_counts c;
    count_hand_trace(&c, 0);
    c.names = &names3;
    cr_assert_eq(me_trace_write_tables(&c, dir), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_trace_write_summary(&c, dir, NULL), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    char *s = slurp("class_counts.csv");
    cr_assert(strstr(s, "\n0,1,dog,0,2\n"), "%s", s);
    cr_assert(strstr(s, "\n0,2,\"bird, \"\"small\"\"\",3,1\n"), "RFC 4180 quoting: %s", s);
    free(s);
    s = slurp("summary.txt");
    /* class 2 (layer 0 only: e2 1, e3 1; layer 1 none): entropy 0.5, max share 0.5 from layer 0
       alone; the layer without the class is not averaged in as entropy 0 */
    cr_assert(strstr(s, "\n1      dog "), "%s", s);
    cr_assert(strstr(s, "\n2      bird, \"small\"             0.5000   0.5000\n"), "%s", s);
    cr_assert(strstr(s, "\n3      (unconditional) "), "%s", s);
    free(s);
}

/* A non-ASCII name is cut to the summary's column after 25 characters, not
   25 bytes (which would end inside a character), and padded by characters. */
Test(trace_heatmap, summary_cuts_names_at_characters) {
    me_trace_counts c;
    count_hand_trace(&c, 0);
    /* "д" is two bytes: 30 of them, and "ü" once */
    char long_name[64] = "", *names[3] = {"cat", long_name, "\xc3\xbc"};
    for (int i = 0; i < 30; i++) strcat(long_name, "\xd0\xb4");
    const me_class_names cn = {.count = 3, .names = names};
    c.names = &cn;
    cr_assert_eq(me_trace_write_summary(&c, dir, NULL), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    char *s = slurp("summary.txt"), want[128] = "\n1      ";
    for (int i = 0; i < 25; i++) strcat(want, "\xd0\xb4");
    strcat(want, " 0.");
    cr_assert(strstr(s, want), "%s", s);
    /* one character, 24 spaces of padding and the separator */
    cr_assert(strstr(s, "\n2      \xc3\xbc                         0."), "%s", s);
    free(s);
}

/* Where the cells are along a line of n pixels from p, stride apart: from
   the start of the first run of one colour (not white) at least min_len
   long to the end of the last such run. Returns the number of runs. */
static int cell_span(const unsigned char *p, int n, int stride, int min_len, int *lo, int *hi)
{
    int found = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && !memcmp(p + (size_t)j * stride, p + (size_t)i * stride, 3)) j++;
        const unsigned char *q = p + (size_t)i * stride;
        if (j - i >= min_len && !(q[0] == 255 && q[1] == 255 && q[2] == 255)) {
            if (!found++) *lo = i;
            *hi = j;
        }
        i = j;
    }
    return found;
}

/* The step view of layer 0 as a PNG: 2 steps × 4 experts of flat cells
   whose colours are viridis of share / largest share (0.5), from the hand
   counts: step 0 has e0 3, e1 1, e2 1, e3 1 of 6; step 1 has e2 1, e3 1. */
Test(trace_heatmap, paper_png_cells_have_the_expected_colours) {
    me_trace_counts c;
    count_hand_trace(&c, 0);
    cr_assert_eq(me_trace_write_paper(&c, dir, ME_FIG_PNG), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    int w, h, n;
    unsigned char *img = stbi_load(tu_join(dir, "layer_00_step.png"), &w, &h, &n, 3);
    cr_assert(img, "layer_00_step.png does not decode");
    const double share[4][2] = {{3 / 6.0, 0}, {1 / 6.0, 0}, {1 / 6.0, 0.5}, {1 / 6.0, 0.5}};
    /* Across the middle: cells in runs of at least 40 pixels (the colour
       bar's rows are narrower); down a step's centre, at least 20. */
    int x0, x1, y0, y1;
    cr_assert_geq(cell_span(img + (size_t)(h / 2) * w * 3, w, 3, 40, &x0, &x1), 1, "no cells across the middle");
    for (int s = 0; s < 2; s++) {
        int x = x0 + (int)((s + 0.5) * (x1 - x0) / 2);
        cr_assert_geq(cell_span(img + (size_t)x * 3, h, w * 3, 20, &y0, &y1), 1, "no cells down step %d", s);
        for (int e = 0; e < 4; e++) {
            const unsigned char *got = img + ((size_t)(y0 + (e + 0.5) * (y1 - y0) / 4) * w + x) * 3;
            uint8_t want[3];
            me_viridis((float)(share[e][s] / 0.5), want);
            for (int k = 0; k < 3; k++)
                cr_assert(abs(got[k] - want[k]) <= 1, "step %d expert %d: got %02x%02x%02x, want %02x%02x%02x", s, e,
                          got[0], got[1], got[2], want[0], want[1], want[2]);
        }
    }
    stbi_image_free(img);
}

static int shell(const char *fmt, const char *name)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, fmt, tu_join(dir, name));
    return tu_system("%s >'%s/out.txt' 2>&1", cmd, dir);
}

/* The paper's views for both layers, each view one file per format, and
   paper_all with 2 layers × 3 views = 6 panels, as SVG and PDF. */
Test(trace_heatmap, paper_views_as_svg_and_pdf) {
    me_trace_counts c;
    count_hand_trace(&c, 1);
    c.names = &names3;
    cr_assert_eq(me_trace_write_paper(&c, dir, ME_FIG_SVG | ME_FIG_PDF), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    const char *views[] = {"step", "class", "position"};
    for (int l = 0; l < 2; l++)
        for (int v = 0; v < 3; v++) {
            char name[64];
            snprintf(name, sizeof name, "layer_%02d_%s.svg", l, views[v]);
            cr_assert_eq(shell("xmllint --noout '%s'", name), 0, "%s", slurp("out.txt"));
            snprintf(name, sizeof name, "layer_%02d_%s.pdf", l, views[v]);
            cr_assert_eq(shell("pdfinfo '%s'", name), 0, "%s", slurp("out.txt"));
        }
    cr_assert(!tu_exists(tu_join(dir, "layer_00_gate.svg")), "no gate view without gate probabilities");
    cr_assert(!tu_exists(tu_join(dir, "layer_00_step.png")));
    cr_assert_eq(shell("xmllint --xpath \"count(//*[local-name()='image'])\" '%s'", "paper_all.svg"), 0);
    char *out = slurp("out.txt");
    cr_assert_eq(atoi(out), 6, "panels: %s", out);
    free(out);
    cr_assert_eq(shell("xmllint --xpath \"count(//*[local-name()='linearGradient'])\" '%s'", "paper_all.svg"), 0);
    out = slurp("out.txt");
    cr_assert_eq(atoi(out), 6, "colour bars: %s", out);
    free(out);
    cr_assert_eq(shell("pdftotext -raw '%s' -", "paper_all.pdf"), 0);
    out = slurp("out.txt");
    const char *want[] = {"expert specialization", "layer 0, by denoising step", "layer 0, by class",
                          "layer 1, by token position", "cat", "dog", "bird", "token position (row-major)"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(out, want[i]), "'%s' not in paper_all.pdf:\n%s", want[i], out);
    free(out);
}

/* A page holds 96 layers of paper views (a figure is at most 16384 points
   tall): a 100-layer trace gets paper_all_1 with layers 0-95 and paper_all_2
   with 96-99, rather than failing after the per-layer views. */
Test(trace_heatmap, paper_all_pages_for_deep_traces) {
    moedit_config cfg = {.family = MOEDIT_FAMILY_DIT_MOE, .depth = 100, .input_size = 4,
                         .patch = 2, .num_classes = 3, .num_experts = 4, .top_k = 2};
    char path[600];
    snprintf(path, sizeof path, "%s/deep.trace", dir);
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &cfg), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_set_info(tr, "ddim", 1, 1.0f);
    for (int l = 0; l < 100; l++) {
        int experts[2] = {l % 4, (l + 1) % 4};
        float weights[2] = {0.6f, 0.3f};
        moedit_route r = {.layer = l, .step = 0, .row = 0, .token = l % 4, .timestep = 999, .label = 1,
                          .k = 2, .experts = experts, .weights = weights};
        me_trace_route(tr, &r);
    }
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts c;
    cr_assert_eq(me_trace_count(&c, rd, 0), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_read_close(rd);
    cr_assert_eq(me_trace_paper_pages(&c), 2);
    cr_assert_eq(me_trace_write_paper(&c, dir, ME_FIG_SVG), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    cr_assert(tu_exists(tu_join(dir, "layer_99_position.svg")));
    cr_assert(!tu_exists(tu_join(dir, "paper_all.svg")), "one page cannot hold 100 layers");
    const char *page[2] = {"paper_all_1.svg", "paper_all_2.svg"};
    const int panels[2] = {96 * 3, 4 * 3};
    for (int p = 0; p < 2; p++) {
        cr_assert_eq(shell("xmllint --xpath \"count(//*[local-name()='image'])\" '%s'", page[p]), 0, "%s",
                     page[p]);
        char *out = slurp("out.txt");
        cr_assert_eq(atoi(out), panels[p], "%s panels: %s", page[p], out);
        free(out);
    }
}

/* Switch-DiT: gate probabilities averaged per layer and step, as a table
   and a fourth paper view. */
Test(trace_heatmap, switch_dit_gate_probabilities) {
    moedit_config cfg = {.family = MOEDIT_FAMILY_SWITCH_DIT, .depth = 1, .input_size = 4,
                         .patch = 2, .num_classes = 2, .num_experts = 2, .top_k = 1};
    char path[600];
    snprintf(path, sizeof path, "%s/gate.trace", dir);
    me_trace *tr;
    cr_assert_eq(me_trace_open(&tr, path, &cfg), MOEDIT_OK);
    /* step 0: rows (0.2, 0.8) and (0.4, 0.6), mean (0.3, 0.7); step 1: (0.9, 0.1) */
    const float probs[3][2] = {{0.2f, 0.8f}, {0.4f, 0.6f}, {0.9f, 0.1f}};
    for (int i = 0; i < 3; i++) {
        int expert = probs[i][0] > probs[i][1] ? 0 : 1;
        float w = probs[i][expert];
        moedit_route r = {.layer = 0, .step = i / 2, .row = i % 2, .token = -1, .timestep = i < 2 ? 900.0f : 400.0f,
                          .label = i % 2, .k = 1, .experts = &expert, .weights = &w, .num_probs = 2,
                          .probs = (float *)probs[i]};
        me_trace_route(tr, &r);
    }
    cr_assert_eq(me_trace_close(tr), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, path), MOEDIT_OK);
    me_trace_counts c;
    cr_assert_eq(me_trace_count(&c, rd, 0), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_read_close(rd);
    cr_assert_eq(me_trace_write_tables(&c, dir), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_trace_write_paper(&c, dir, ME_FIG_SVG), MOEDIT_OK, "%s", moedit_last_error());
    me_trace_counts_free(&c);
    char *s = slurp("gate_probs.csv");
    cr_assert_str_eq(s, "layer,step,timestep,expert,mean_prob\n"
                        "0,0,900,0,0.300000\n0,0,900,1,0.700000\n"
                        "0,1,400,0,0.900000\n0,1,400,1,0.100000\n");
    free(s);
    cr_assert(tu_exists(tu_join(dir, "layer_00_gate.svg")));
    cr_assert_eq(shell("xmllint --xpath \"count(//*[local-name()='image'])\" '%s'", "paper_all.svg"), 0);
    s = slurp("out.txt");
    cr_assert_eq(atoi(s), 4, "step, class, position and gate panels: %s", s);
    free(s);
}

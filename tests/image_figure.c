/* cairo figures: one heatmap saved as PNG, SVG and PDF, checked with the
   tools a reader would use — xmllint (libxml2-utils) parses the SVG and
   counts its panels, colour bars and text labels; pdfinfo and pdftotext
   (poppler-utils) validate the PDF and read its labels back — and the
   viridis colour scale the cells are painted with. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "moedit.h"
#include "image/colormap.h"
#include "image/figure.h"
#include "tests/testutil.h"

static char dir[64];
static void make_dir(void) { tu_tmpdir(dir, sizeof dir, "figure"); }
static void remove_dir(void) { cr_assert_eq(tu_rmtree(dir), 0); }

TestSuite(figure, .init = make_dir, .fini = remove_dir);

/* Output of a shell command (stdout), NUL-terminated; its exit status in *st. */
static char *capture(int *st, const char *fmt, const char *arg)
{
    char cmd[1024], path[128];
    snprintf(path, sizeof path, "%s/capture.txt", dir);
    snprintf(cmd, sizeof cmd, fmt, arg);
    *st = tu_system("%s >'%s' 2>&1", cmd, path);
    char *s = tu_slurp(path, NULL);
    cr_assert_not_null(s);
    return s;
}

static long xpath_count(const char *svg, const char *expr)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "xmllint --xpath \"count(%s)\" '%%s'", expr);
    int st;
    char *out = capture(&st, cmd, svg);
    cr_assert_eq(st, 0, "xmllint: %s", out);
    long n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* 3 columns × 2 rows, named columns: the texts are the title, the axis
   titles, the colour bar's title, 2 expert ticks, 3 class names and the
   colour bar's ticks 0, 0.2, …, 1 (6): 15 labels. */
static const char *const names[3] = {"tench", "golden retriever", "otter"};
static const double values[6] = {0, 0.2, 0.4, 0.6, 0.8, 1.0};
#define LABELS 15

static void draw(const char *base, unsigned formats)
{
    me_figure *f;
    cr_assert_eq(me_figure_new(&f, 260, 200), MOEDIT_OK, "%s", moedit_last_error());
    me_plot p = {.title = "share per class", .xlabel = "class", .ylabel = "expert", .cbar_label = "share",
                 .cols = 3, .rows = 2, .values = values, .vmin = 0, .vmax = 1, .xnames = names};
    me_figure_heatmap(f, 0, 0, 260, 200, &p);
    cr_assert_eq(me_figure_save(f, base, formats), MOEDIT_OK, "%s", moedit_last_error());
    me_figure_free(f);
}

Test(figure, svg_parses_with_one_panel_and_every_label)
{
    char base[128], svg[160];
    snprintf(base, sizeof base, "%s/plot", dir);
    draw(base, ME_FIG_SVG);
    snprintf(svg, sizeof svg, "%s.svg", base);
    cr_assert(!tu_exists(tu_join(dir, "plot.png")) && !tu_exists(tu_join(dir, "plot.pdf")), "only the asked format");
    int st;
    char *out = capture(&st, "xmllint --noout '%s'", svg);
    cr_assert_eq(st, 0, "not well-formed XML: %s", out);
    free(out);
    cr_assert_eq(xpath_count(svg, "/*[local-name()='svg']"), 1);
    cr_assert_eq(xpath_count(svg, "//*[local-name()='image']"), 1, "one heatmap panel");
    cr_assert_eq(xpath_count(svg, "//*[local-name()='linearGradient']"), 1, "one colour bar");
    /* cairo writes each text as one group of glyph references */
    cr_assert_eq(xpath_count(svg, "//*[local-name()='g'][starts-with(@style,'fill')][*[local-name()='use']]"),
                 LABELS);
}

Test(figure, pdf_is_valid_and_holds_the_labels)
{
    char base[128], pdf[160];
    snprintf(base, sizeof base, "%s/plot", dir);
    draw(base, ME_FIG_PDF | ME_FIG_PNG);
    snprintf(pdf, sizeof pdf, "%s.pdf", base);
    int st;
    char *info = capture(&st, "pdfinfo '%s'", pdf);
    cr_assert_eq(st, 0, "pdfinfo: %s", info);
    cr_assert(strstr(info, "Pages:           1"), "%s", info);
    cr_assert(strstr(info, "Creator:         moedit"), "%s", info);
    cr_assert(strstr(info, "Page size:       260 x 200 pts"), "%s", info);
    free(info);
    char *text = capture(&st, "pdftotext -raw '%s' -", pdf);
    cr_assert_eq(st, 0);
    const char *want[] = {"share per class", "expert", "class", "share", "tench", "golden", "retriever", "otter", "0.6"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(text, want[i]), "'%s' not in the PDF's text:\n%s", want[i], text);
    free(text);
    cr_assert(tu_exists(tu_join(dir, "plot.png")));
    cr_assert(!tu_exists(tu_join(dir, "plot.svg")));
}

Test(figure, formats_and_failures)
{
    unsigned f;
    cr_assert_eq(me_figure_formats("png", &f), MOEDIT_OK);
    cr_assert_eq(f, ME_FIG_PNG);
    cr_assert_eq(me_figure_formats("pdf,svg,png", &f), MOEDIT_OK);
    cr_assert_eq(f, ME_FIG_PNG | ME_FIG_SVG | ME_FIG_PDF);
    cr_assert_eq(me_figure_formats("png,jpg", &f), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "'jpg'"), "%s", moedit_last_error());
    cr_assert_eq(me_figure_formats("png,", &f), MOEDIT_EINPUT);

    me_figure *fig;
    cr_assert_eq(me_figure_new(&fig, 0, 100), MOEDIT_EINPUT);
    cr_assert_eq(me_figure_new(&fig, 100, 100), MOEDIT_OK);
    cr_assert_eq(me_figure_save(fig, "/nonexistent-dir/fig", ME_FIG_PDF), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "/nonexistent-dir/fig.pdf"), "%s", moedit_last_error());
    me_figure_free(fig);
}

Test(figure, viridis_endpoints_and_rising_lightness)
{
    uint8_t c[3];
    me_viridis(0, c);
    cr_assert(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54);
    me_viridis(1, c);
    cr_assert(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25);
    me_viridis(0.5f, c);
    cr_assert(c[0] == 0x21 && c[1] == 0x91 && c[2] == 0x8c);
    me_viridis(-3, c);
    cr_assert_eq(c[0], 0x44);
    me_viridis(7, c);
    cr_assert_eq(c[0], 0xfd);
    me_viridis(0.0f / 0.0f, c);
    cr_assert_eq(c[0], 0x44, "NaN maps to the minimum");
    double prev = -1;
    for (int i = 0; i <= 100; i++) {
        me_viridis(i / 100.0f, c);
        double luma = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        cr_assert_gt(luma, prev, "lightness rises at %d", i);
        prev = luma;
    }
}

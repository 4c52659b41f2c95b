/* Heatmap figures of a counted trace, drawn with image/figure.h (see
   heatmap.h). Colours show shares, not raw counts: each column (a step,
   position or class) is normalised by its own total, so columns with more
   traced rows do not dominate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "trace/heatmap.h"

/* Page geometry in points. */
#define HEADER 22.0
#define PANEL_W 300.0
#define PANEL_H 190.0
#define SMALL_W 210.0
#define SMALL_H 140.0
#define MAX_CLASS_COLS 50   /* class columns at most (see pick_classes) */

/* values[e][i] = counts[i][e] / Σ_e counts[i][e] for n columns; NaN (drawn
   as "no data") for a column nothing was traced in. */
static double *shares(const uint64_t *counts, int n, int E)
{
    double *v = me_calloc((size_t)n * E, sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < n; i++) {
        double total = 0;
        for (int e = 0; e < E; e++) total += (double)counts[(size_t)i * E + e];
        for (int e = 0; e < E; e++)
            v[(size_t)e * n + i] = total > 0 ? (double)counts[(size_t)i * E + e] / total : NAN;
    }
    return v;
}

/* Colour range [0, largest value]: shares start at zero, and the top of the
   scale is what the data reaches, so small differences stay visible. */
static double top_of(const double *v, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;   /* NaN compares false */
    return mx > 0 ? mx : 1;
}

static int step_panel(me_figure *f, double x, double y, double w, double h, const me_trace_counts *c, int l,
                      const char *title)
{
    int E = c->info.num_experts;
    double *v = shares(c->step_counts + (size_t)l * c->steps * E, c->steps, E);
    if (!v) return MOEDIT_EINTERNAL;
    me_plot p = {.title = title, .xlabel = "denoising step (0 = noisiest)", .ylabel = "expert",
                 .cbar_label = "expert share", .cols = c->steps, .rows = E, .values = v,
                 .vmax = top_of(v, (size_t)c->steps * E)};
    me_figure_heatmap(f, x, y, w, h, &p);
    free(v);
    return MOEDIT_OK;
}

static int position_panel(me_figure *f, double x, double y, double w, double h, const me_trace_counts *c,
                          int l, const char *title)
{
    int E = c->info.num_experts, T = c->info.tokens;
    double *v = shares(c->position_counts + (size_t)l * T * E, T, E);
    if (!v) return MOEDIT_EINTERNAL;
    me_plot p = {.title = title, .xlabel = "token position (row-major)", .ylabel = "expert",
                 .cbar_label = "expert share", .cols = T, .rows = E, .values = v, .vmax = top_of(v, (size_t)T * E)};
    me_figure_heatmap(f, x, y, w, h, &p);
    free(v);
    return MOEDIT_OK;
}

/* Whether class id was traced at any layer. */
static int traced(const me_trace_counts *c, int id)
{
    int E = c->info.num_experts;
    for (int l = 0; l < c->info.depth; l++)
        for (int e = 0; e < E; e++)
            if (c->class_counts[((size_t)l * c->classes + id) * E + e]) return 1;
    return 0;
}

/* The class columns: all classes up to MAX_CLASS_COLS; beyond, the traced
   ones when they are few enough, else every k-th class. Returns the count
   (ids[] has room for MAX_CLASS_COLS) and describes the choice in xlabel. */
static int pick_classes(const me_trace_counts *c, int *ids, char *xlabel, size_t n)
{
    int C = c->info.num_classes, count = 0;
    snprintf(xlabel, n, "class");
    if (C <= MAX_CLASS_COLS) {
        for (int i = 0; i < C; i++) ids[count++] = i;
        return count;
    }
    for (int i = 0; i < C && count <= MAX_CLASS_COLS; i++)
        if (traced(c, i)) {
            if (count < MAX_CLASS_COLS) ids[count] = i;
            count++;
        }
    if (count && count <= MAX_CLASS_COLS) {
        snprintf(xlabel, n, "class (the %d traced of %d)", count, C);
        return count;
    }
    int k = (C + MAX_CLASS_COLS - 1) / MAX_CLASS_COLS;
    count = 0;
    for (int i = 0; i < C; i += k) ids[count++] = i;
    snprintf(xlabel, n, "class (every %d%s of %d)", k, k == 2 ? "nd" : k == 3 ? "rd" : "th", C);
    return count;
}

/* Expert share per class, named; with_null adds the null class as a last
   column when it was traced. */
static int class_panel(me_figure *f, double x, double y, double w, double h, const me_trace_counts *c, int l,
                       const char *title, int with_null)
{
    int E = c->info.num_experts, C = c->info.num_classes, ids[MAX_CLASS_COLS + 1];
    char xlabel[64];
    int shown = pick_classes(c, ids, xlabel, sizeof xlabel);
    if (with_null && traced(c, C)) ids[shown++] = C;
    const uint64_t *counts = c->class_counts + (size_t)l * c->classes * E;
    uint64_t *picked = me_calloc((size_t)shown * E, sizeof *picked);
    char (*labels)[48] = me_calloc((size_t)shown, sizeof *labels);
    const char **names = me_calloc((size_t)shown, sizeof *names);
    double *v = NULL;
    int rc = MOEDIT_EINTERNAL;
    if (!picked || !labels || !names) goto done;
    for (int i = 0; i < shown; i++) {
        memcpy(picked + (size_t)i * E, counts + (size_t)ids[i] * E, (size_t)E * sizeof *picked);
        if (ids[i] == C) snprintf(labels[i], sizeof labels[i], "(null)");
        else me_class_label(c->names, ids[i], labels[i], sizeof labels[i]);
        names[i] = labels[i];
    }
    if (!(v = shares(picked, shown, E))) goto done;
    me_plot p = {.title = title, .xlabel = xlabel, .ylabel = "expert", .cbar_label = "expert share", .cols = shown,
                 .rows = E, .values = v, .vmax = top_of(v, (size_t)shown * E), .xnames = names};
    me_figure_heatmap(f, x, y, w, h, &p);
    rc = MOEDIT_OK;
done:
    free(picked);
    free(labels);
    free(names);
    free(v);
    return rc;
}

/* Switch-DiT: the mean gate probability of each expert at each step. */
static int gate_panel(me_figure *f, double x, double y, double w, double h, const me_trace_counts *c, int l,
                      const char *title)
{
    int P = c->info.num_probs, S = c->steps;
    double *v = me_calloc((size_t)P * S, sizeof *v);
    if (!v) return MOEDIT_EINTERNAL;
    for (int s = 0; s < S; s++) {
        size_t at = (size_t)l * S + s;
        for (int e = 0; e < P; e++)
            v[(size_t)e * S + s] = c->gate_rows[at] ? c->gate_sums[at * P + e] / (double)c->gate_rows[at] : NAN;
    }
    me_plot p = {.title = title, .xlabel = "denoising step (0 = noisiest)", .ylabel = "expert",
                 .cbar_label = "gate probability", .cols = S, .rows = P, .values = v, .vmax = top_of(v, (size_t)P * S)};
    me_figure_heatmap(f, x, y, w, h, &p);
    free(v);
    return MOEDIT_OK;
}

/* One grid_h × grid_w map per expert, on one shared colour scale. */
static int spatial_panel(me_figure *f, double x, double y, double w, double h, const me_trace_counts *c, int l)
{
    const me_trace_info *in = &c->info;
    int E = in->num_experts, T = in->tokens;
    double *v = shares(c->position_counts + (size_t)l * T * E, T, E);
    if (!v) return MOEDIT_EINTERNAL;
    double vmax = top_of(v, (size_t)T * E), bar = 58;
    me_figure_text(f, x + (w - bar) / 2, y + 10, 10, 0.5, 0, "spatial share per expert");
    int cols = (int)ceil(sqrt((double)E)), rows = (E + cols - 1) / cols;
    double top = y + 16, cw = (w - bar) / cols, ch = (h - 16) / rows;
    /* Keep the token grid's aspect ratio inside each cell (below its title). */
    double mw = cw - 4, mh = ch - 22;
    if (mw / in->grid_w > mh / in->grid_h) mw = mh * in->grid_w / in->grid_h;
    else mh = mw * in->grid_h / in->grid_w;
    for (int e = 0; e < E && mw >= 2 && mh >= 2; e++) {
        char title[32];
        snprintf(title, sizeof title, "expert %d", e);
        me_plot p = {.title = title, .cols = in->grid_w, .rows = in->grid_h, .values = v + (size_t)e * T,
                     .vmin = 0, .vmax = vmax, .no_cbar = 1, .no_ticks = 1};
        me_figure_heatmap(f, x + (e % cols) * cw, top + (e / cols) * ch, mw + 4, mh + 20, &p);
    }
    me_figure_colorbar(f, x + w - bar + 8, top + 14, 9, rows * ch - 20, 0, vmax, "expert share");
    free(v);
    return MOEDIT_OK;
}

static const char *family_title(moedit_family f)
{
    return f == MOEDIT_FAMILY_SWITCH_DIT ? "Switch-DiT" : "DiT-MoE";
}

static void header_text(const me_trace_counts *c, const char *what, char *buf, size_t n)
{
    const me_trace_info *in = &c->info;
    int k = snprintf(buf, n, "%s — %s, %d experts, top-%d", what, family_title(in->family), in->num_experts, in->top_k);
    if (in->sampler[0] && k > 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", %s %d steps, cfg %g", in->sampler, in->steps, in->cfg);
    if (c->cond_only && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, ", conditional rows only");
}

/* The figures' file names, without the extension: shared by the writers
   and me_trace_each_output, which lists them before any is written. */
static void layer_name(char *buf, size_t n, int l) { snprintf(buf, n, "layer_%02d", l); }

/* Saves f as dir/name in the formats, and frees it. */
static int save(me_figure *f, int rc, const char *dir, const char *name, unsigned formats)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *base = rc ? NULL : me_alloc(n);
    if (base) {
        snprintf(base, n, "%s/%s", dir, name);
        rc = me_figure_save(f, base, formats);
    } else if (!rc) {
        rc = MOEDIT_EINTERNAL;
    }
    free(base);
    me_figure_free(f);
    return rc;
}

static int layer_figure(const me_trace_counts *c, int l, const char *dir, unsigned formats)
{
    me_figure *f;
    int rc = me_figure_new(&f, 2 * PANEL_W, HEADER + 2 * PANEL_H);
    if (rc) return rc;
    char buf[64], head[320];
    snprintf(buf, sizeof buf, "layer %d", l);
    header_text(c, buf, head, sizeof head);
    me_figure_text(f, 8, 15, 11, 0, 0, head);
    rc = step_panel(f, 0, HEADER, PANEL_W, PANEL_H, c, l, "expert share per denoising step");
    if (!rc) rc = class_panel(f, PANEL_W, HEADER, PANEL_W, PANEL_H, c, l, "expert share per class", 1);
    if (!rc) rc = position_panel(f, 0, HEADER + PANEL_H, PANEL_W, PANEL_H, c, l, "expert share per token position");
    if (!rc) rc = spatial_panel(f, PANEL_W + 6, HEADER + PANEL_H, PANEL_W - 6, PANEL_H, c, l);
    layer_name(buf, sizeof buf, l);
    return save(f, rc, dir, buf, formats);
}

/* Step × expert for every layer, as small multiples. */
static int overview_figure(const me_trace_counts *c, const char *dir, unsigned formats)
{
    int depth = c->info.depth, cols = depth < 4 ? depth : 4, rows = (depth + cols - 1) / cols;
    me_figure *f;
    int rc = me_figure_new(&f, cols * SMALL_W, HEADER + rows * SMALL_H);
    if (rc) return rc;
    char head[320];
    header_text(c, "expert share per denoising step, all layers", head, sizeof head);
    me_figure_text(f, 8, 15, 11, 0, 0, head);
    for (int l = 0; l < depth && !rc; l++) {
        char title[32];
        snprintf(title, sizeof title, "layer %d", l);
        rc = step_panel(f, (l % cols) * SMALL_W, HEADER + (l / cols) * SMALL_H, SMALL_W, SMALL_H, c, l, title);
    }
    return save(f, rc, dir, "overview", formats);
}

int me_trace_write_figures(const me_trace_counts *c, const char *dir, unsigned formats)
{
    int rc = MOEDIT_OK;
    for (int l = 0; l < c->info.depth && !rc; l++) rc = layer_figure(c, l, dir, formats);
    return rc ? rc : overview_figure(c, dir, formats);
}

/* ---- the paper's views ------------------------------------------------- */

typedef int (*view_fn)(me_figure *, double, double, double, double, const me_trace_counts *, int, const char *);

static int class_view(me_figure *f, double x, double y, double w, double h, const me_trace_counts *c, int l,
                      const char *title)
{
    return class_panel(f, x, y, w, h, c, l, title, 0);
}

static const struct {
    const char *file, *title;
    view_fn draw;
    int gate;   /* needs gate probabilities */
} views[] = {
    {"step", "by denoising step", step_panel, 0},
    {"class", "by class", class_view, 0},
    {"position", "by token position", position_panel, 0},
    {"gate", "gate probability by step", gate_panel, 1},
};
#define NVIEWS (int)(sizeof views / sizeof views[0])
#define VIEW_W 250.0
#define VIEW_H 170.0

/* Layers on one paper_all page: the tallest page a figure may have (16384
   points, image/figure.c) holds 96 rows of views. */
#define PAPER_PAGE_LAYERS 96

static int paper_pages(int depth) { return (depth + PAPER_PAGE_LAYERS - 1) / PAPER_PAGE_LAYERS; }

int me_trace_paper_pages(const me_trace_counts *c) { return paper_pages(c->info.depth); }

/* A paper view's and a paper_all page's names, after prefix. */
static void view_name(char *buf, size_t n, const char *prefix, int l, int v)
{
    snprintf(buf, n, "%slayer_%02d_%s", prefix, l, views[v].file);
}

static void page_name(char *buf, size_t n, const char *prefix, int pages, int p)
{
    if (pages == 1) snprintf(buf, n, "%spaper_all", prefix);
    else snprintf(buf, n, "%spaper_all_%d", prefix, p + 1);
}

/* paper_all's layers [first, first + count) as one page, named name. */
static int paper_page(const me_trace_counts *c, int nv, int first, int count, const char *dir, const char *name,
                      unsigned formats)
{
    me_figure *f;
    int rc = me_figure_new(&f, nv * VIEW_W, HEADER + count * VIEW_H);
    if (rc) return rc;
    char what[64], head[320];
    if (count == c->info.depth) snprintf(what, sizeof what, "expert specialization");
    else snprintf(what, sizeof what, "expert specialization, layers %d-%d", first, first + count - 1);
    header_text(c, what, head, sizeof head);
    me_figure_text(f, 8, 15, 11, 0, 0, head);
    for (int i = 0; i < count && !rc; i++)
        for (int v = 0; v < nv && !rc; v++) {
            char title[96];
            snprintf(title, sizeof title, "layer %d, %s", first + i, views[v].title);
            rc = views[v].draw(f, v * VIEW_W, HEADER + i * VIEW_H, VIEW_W, VIEW_H, c, first + i, title);
        }
    return save(f, rc, dir, name, formats);
}

int me_trace_write_paper(const me_trace_counts *c, const char *dir, unsigned formats)
{
    int depth = c->info.depth, nv = c->gate_sums ? NVIEWS : NVIEWS - 1, rc = MOEDIT_OK;
    for (int l = 0; l < depth && !rc; l++)
        for (int v = 0; v < nv && !rc; v++) {
            me_figure *f;
            if ((rc = me_figure_new(&f, VIEW_W, VIEW_H))) break;
            char title[96], name[64];
            snprintf(title, sizeof title, "layer %d, expert share %s", l, views[v].title);
            if (views[v].gate) snprintf(title, sizeof title, "layer %d, %s", l, views[v].title);
            rc = views[v].draw(f, 0, 0, VIEW_W, VIEW_H, c, l, title);
            view_name(name, sizeof name, "", l, v);
            rc = save(f, rc, dir, name, formats);
        }
    int pages = me_trace_paper_pages(c);
    for (int p = 0; p < pages && !rc; p++) {
        int first = p * PAPER_PAGE_LAYERS, count = depth - first < PAPER_PAGE_LAYERS ? depth - first : PAPER_PAGE_LAYERS;
        char name[32];
        page_name(name, sizeof name, "", pages, p);
        rc = paper_page(c, nv, first, count, dir, name, formats);
    }
    return rc;
}

int me_trace_check_figures(const me_trace_counts *c, int paper)
{
    const me_trace_info *in = &c->info;
    const struct {
        const char *what;
        int rows, cols, used;
    } panels[] = {
        {"the step view (experts x denoising steps)", in->num_experts, c->steps, 1},
        {"the position view (experts x token positions)", in->num_experts, in->tokens, 1},
        {"the spatial map (token rows x columns)", in->grid_h, in->grid_w, 1},
        {"the gate view (experts x denoising steps)", in->num_probs, c->steps, paper && c->gate_sums},
    };
    for (size_t i = 0; i < sizeof panels / sizeof panels[0]; i++)
        if (panels[i].used && !me_plot_fits(panels[i].rows, panels[i].cols))
            return me_fail(MOEDIT_EINPUT,
                           "%s would be a %d x %d heatmap, more than a figure can draw (32767 rows or columns, "
                           "2^24 cells)",
                           panels[i].what, panels[i].rows, panels[i].cols);
    return MOEDIT_OK;
}

/* fn(ctx, base.EXT) for each format in formats, as me_figure_save names
   the files. */
static int each_format(const char *base, unsigned formats, int (*fn)(void *, const char *), void *ctx)
{
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++)
        if (formats & (1u << i)) {
            char name[96];
            snprintf(name, sizeof name, "%s.%s", base, me_figure_ext[i]);
            rc = fn(ctx, name);
        }
    return rc;
}

int me_trace_each_output(const me_trace_info *in, int paper, unsigned formats,
                         int (*fn)(void *ctx, const char *name), void *ctx)
{
    /* me_trace_write_tables and me_trace_write_summary; gate_probs.csv last,
       written only for traces with gate probabilities */
    static const char *const files[] = {"step_counts.csv",  "position_counts.csv", "class_counts.csv",
                                        "step_entropy.csv", "summary.txt",         "gate_probs.csv"};
    int gate = in->num_probs > 0, rc = 0;
    for (int i = 0; i < 5 + gate && !rc; i++) rc = fn(ctx, files[i]);
    char base[64];
    for (int l = 0; l < in->depth && !rc; l++) {
        layer_name(base, sizeof base, l);
        rc = each_format(base, formats, fn, ctx);
    }
    if (!rc) rc = each_format("overview", formats, fn, ctx);
    if (!paper) return rc;
    int nv = gate ? NVIEWS : NVIEWS - 1, pages = paper_pages(in->depth);
    for (int l = 0; l < in->depth && !rc; l++)
        for (int v = 0; v < nv && !rc; v++) {
            view_name(base, sizeof base, "paper/", l, v);
            rc = each_format(base, formats, fn, ctx);
        }
    for (int p = 0; p < pages && !rc; p++) {
        page_name(base, sizeof base, "paper/", pages, p);
        rc = each_format(base, formats, fn, ctx);
    }
    return rc;
}

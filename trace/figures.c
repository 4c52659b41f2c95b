/* Heatmap figures of a counted trace (see heatmap.h). Colours show shares,
   not raw counts: each column (a step, position or class) is normalised by
   its own total, so columns with more traced rows do not dominate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/plot.h"
#include "image/text.h"
#include "trace/heatmap.h"

enum { HEADER = 30, PANEL_W = 580, PANEL_H = 340, SMALL_W = 380, SMALL_H = 230, CBAR_BOX = 64 };

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

static int step_panel(me_canvas *cv, int x, int y, int w, int h, const me_trace_counts *c, int l,
                      const char *title)
{
    int E = c->info.num_experts;
    double *v = shares(c->step_counts + (size_t)l * c->steps * E, c->steps, E);
    if (!v) return MOEDIT_EINTERNAL;
    me_heatmap hm = {.title = title, .xlabel = "sampling step (0 = noisiest)", .ylabel = "expert",
                     .cols = c->steps, .rows = E, .values = v};
    int rc = me_plot_heatmap(cv, x, y, w, h, &hm);
    free(v);
    return rc;
}

static int position_panel(me_canvas *cv, int x, int y, int w, int h, const me_trace_counts *c, int l)
{
    int E = c->info.num_experts, T = c->info.tokens;
    double *v = shares(c->position_counts + (size_t)l * T * E, T, E);
    if (!v) return MOEDIT_EINTERNAL;
    me_heatmap hm = {.title = "expert share per token position", .xlabel = "token position (row-major)",
                     .ylabel = "expert", .cols = T, .rows = E, .values = v};
    int rc = me_plot_heatmap(cv, x, y, w, h, &hm);
    free(v);
    return rc;
}

static int class_panel(me_canvas *cv, int x, int y, int w, int h, const me_trace_counts *c, int l)
{
    int E = c->info.num_experts, C = c->info.num_classes;
    const uint64_t *counts = c->class_counts + (size_t)l * c->classes * E;
    uint64_t null_total = 0;
    for (int e = 0; e < E; e++) null_total += counts[(size_t)C * E + e];
    int cols = null_total ? C + 1 : C;
    double *v = shares(counts, cols, E);
    if (!v) return MOEDIT_EINTERNAL;
    me_heatmap hm = {.title = null_total ? "expert share per class (last: null class)" : "expert share per class",
                     .xlabel = "class label", .ylabel = "expert", .cols = cols, .rows = E, .values = v};
    int rc = me_plot_heatmap(cv, x, y, w, h, &hm);
    free(v);
    return rc;
}

/* One grid_h × grid_w map per expert, on one shared colour scale. */
static int spatial_panel(me_canvas *cv, int x, int y, int w, int h, const me_trace_counts *c, int l)
{
    const me_trace_info *in = &c->info;
    int E = in->num_experts, T = in->tokens;
    double *v = shares(c->position_counts + (size_t)l * T * E, T, E);
    if (!v) return MOEDIT_EINTERNAL;
    double vmax = 0;
    for (size_t i = 0; i < (size_t)T * E; i++) vmax = v[i] > vmax ? v[i] : vmax;   /* NaN compares false */
    if (vmax <= 0) vmax = 1;
    int rc = me_canvas_text(cv, x + (w - CBAR_BOX) / 2, y, 15, 1, "spatial share per expert");
    int cols = (int)ceil(sqrt((double)E)), rows = (E + cols - 1) / cols;
    int top = y + 22, cw = (w - CBAR_BOX) / cols, ch = (h - 22) / rows;
    /* Keep the token grid's aspect ratio inside each cell (below its title). */
    int mw = cw - 6, mh = ch - 22;
    if ((double)mw / in->grid_w > (double)mh / in->grid_h) mw = mh * in->grid_w / in->grid_h;
    else mh = mw * in->grid_h / in->grid_w;
    for (int e = 0; e < E && !rc && mw >= 2 && mh >= 2; e++) {
        char title[32];
        snprintf(title, sizeof title, "expert %d", e);
        me_heatmap hm = {.title = title, .cols = in->grid_w, .rows = in->grid_h, .values = v + (size_t)e * T,
                         .vmin = 0, .vmax = vmax, .no_ticks = 1, .no_cbar = 1};
        rc = me_plot_heatmap(cv, x + (e % cols) * cw, top + (e / cols) * ch, mw + 8, mh + 23, &hm);
    }
    if (!rc) rc = me_plot_colorbar(cv, x + w - CBAR_BOX + 8, top, rows * ch - 6, 0, vmax);
    free(v);
    return rc;
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

static int save(me_canvas *cv, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = me_alloc(n);
    if (!path) return MOEDIT_EINTERNAL;
    snprintf(path, n, "%s/%s", dir, name);
    int rc = me_canvas_write_png(cv, path);
    free(path);
    return rc;
}

static int layer_figure(const me_trace_counts *c, int l, const char *dir)
{
    me_canvas cv;
    int rc = me_canvas_init(&cv, 2 * PANEL_W, HEADER + 2 * PANEL_H);
    if (rc) return rc;
    char buf[256];
    snprintf(buf, sizeof buf, "layer %d", l);
    char head[320];
    header_text(c, buf, head, sizeof head);
    rc = me_canvas_text(&cv, 10, 6, 17, 0, head);
    if (!rc) rc = step_panel(&cv, 0, HEADER, PANEL_W, PANEL_H, c, l, "expert share per sampling step");
    if (!rc) rc = class_panel(&cv, PANEL_W, HEADER, PANEL_W, PANEL_H, c, l);
    if (!rc) rc = position_panel(&cv, 0, HEADER + PANEL_H, PANEL_W, PANEL_H, c, l);
    if (!rc) rc = spatial_panel(&cv, PANEL_W + 10, HEADER + PANEL_H, PANEL_W - 10, PANEL_H, c, l);
    snprintf(buf, sizeof buf, "layer_%02d.png", l);
    if (!rc) rc = save(&cv, dir, buf);
    me_canvas_free(&cv);
    return rc;
}

/* Step × expert for every layer, as small multiples. */
static int overview_figure(const me_trace_counts *c, const char *dir)
{
    int depth = c->info.depth, cols = depth < 4 ? depth : 4, rows = (depth + cols - 1) / cols;
    me_canvas cv;
    int rc = me_canvas_init(&cv, cols * SMALL_W, HEADER + rows * SMALL_H);
    if (rc) return rc;
    char head[320];
    header_text(c, "expert share per sampling step, all layers", head, sizeof head);
    rc = me_canvas_text(&cv, 10, 6, 17, 0, head);
    for (int l = 0; l < depth && !rc; l++) {
        char title[32];
        snprintf(title, sizeof title, "layer %d", l);
        rc = step_panel(&cv, (l % cols) * SMALL_W, HEADER + (l / cols) * SMALL_H, SMALL_W, SMALL_H, c, l, title);
    }
    if (!rc) rc = save(&cv, dir, "overview.png");
    me_canvas_free(&cv);
    return rc;
}

int me_trace_write_figures(const me_trace_counts *c, const char *dir)
{
    if (!me_font_default()) return MOEDIT_EINPUT;
    int rc = MOEDIT_OK;
    for (int l = 0; l < c->info.depth && !rc; l++) rc = layer_figure(c, l, dir);
    return rc ? rc : overview_figure(c, dir);
}

/* Figures on an RGB canvas (see plot.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/colormap.h"
#include "image/image.h"
#include "image/plot.h"
#include "image/text.h"

enum { TITLE_PX = 15, LABEL_PX = 13, TICK_PX = 11, TICK_LEN = 4, CBAR_W = 12 };
static const uint8_t GRAY[3] = {96, 96, 96}, MISSING[3] = {225, 225, 225};

int me_canvas_init(me_canvas *c, int w, int h)
{
    memset(c, 0, sizeof *c);
    size_t n;
    if (w <= 0 || h <= 0 || !me_mul_size((size_t)w * 3, (size_t)h, &n))
        return me_fail(MOEDIT_EINTERNAL, "canvas %dx%d: bad size", w, h);
    c->rgb = me_alloc(n);
    if (!c->rgb) return MOEDIT_EINTERNAL;
    memset(c->rgb, 255, n);
    c->w = w;
    c->h = h;
    return MOEDIT_OK;
}

void me_canvas_free(me_canvas *c)
{
    free(c->rgb);
    memset(c, 0, sizeof *c);
}

void me_canvas_fill(me_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3])
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++) memcpy(c->rgb + ((size_t)j * c->w + i) * 3, rgb, 3);
}

int me_canvas_text(me_canvas *c, int x, int y, float px, int align, const char *text)
{
    const me_font *f = me_font_default();
    if (!f) return MOEDIT_EINPUT;
    if (align) x -= me_text_width(f, px, text) / (align == 1 ? 2 : 1);
    return me_draw_text(f, c->rgb, c->w, c->h, 3, x, y, px, text, ME_BLACK);
}

int me_canvas_write_png(const me_canvas *c, const char *path)
{
    return me_png_write(path, c->rgb, c->w, c->h, 3);
}

/* A 1-2-5 tick spacing that puts at most max_ticks ticks on n cells. */
static int tick_step(int n, int max_ticks)
{
    if (max_ticks < 1) max_ticks = 1;
    for (int p = 1;; p *= 10) {
        if (n / p <= max_ticks) return p;
        if (n / (2 * p) <= max_ticks) return 2 * p;
        if (n / (5 * p) <= max_ticks) return 5 * p;
        if (p > 100000000) return n;
    }
}

static void fmt_value(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.3g", v);
}

int me_plot_colorbar(me_canvas *c, int x, int y, int h, double vmin, double vmax)
{
    int top = y + TICK_PX / 2, bar_h = h - TICK_PX;
    if (bar_h < 2) return MOEDIT_OK;
    for (int j = 0; j < bar_h; j++) {
        uint8_t rgb[3];
        me_viridis(1.0f - (float)j / (float)(bar_h - 1), rgb);
        me_canvas_fill(c, x, top + j, CBAR_W, 1, rgb);
    }
    int rc = MOEDIT_OK;
    for (int i = 0; i < 3; i++) {
        char buf[32];
        fmt_value(buf, sizeof buf, vmax - (vmax - vmin) * i / 2.0);
        int ty = top + (bar_h - 1) * i / 2;
        me_canvas_fill(c, x + CBAR_W, ty, TICK_LEN, 1, GRAY);
        rc |= me_canvas_text(c, x + CBAR_W + TICK_LEN + 2, ty - TICK_PX / 2, TICK_PX, 0, buf);
    }
    return rc ? MOEDIT_EINTERNAL : MOEDIT_OK;
}

/* The mean of the cells that pixel (px, py) of a pw × ph area covers. */
static double cell_mean(const me_heatmap *hm, int px, int py, int pw, int ph)
{
    long c0 = (long)px * hm->cols / pw, c1 = (long)(px + 1) * hm->cols / pw;
    long r0 = (long)py * hm->rows / ph, r1 = (long)(py + 1) * hm->rows / ph;
    if (c1 <= c0) c1 = c0 + 1;
    if (r1 <= r0) r1 = r0 + 1;
    double s = 0;
    for (long r = r0; r < r1; r++)
        for (long q = c0; q < c1; q++) s += hm->values[r * hm->cols + q];
    return s / (double)((c1 - c0) * (r1 - r0));
}

int me_plot_heatmap(me_canvas *c, int x, int y, int w, int h, const me_heatmap *hm)
{
    const me_font *f = me_font_default();
    if (!f) return MOEDIT_EINPUT;
    if (hm->cols <= 0 || hm->rows <= 0) return me_fail(MOEDIT_EINTERNAL, "heatmap: no cells");
    double vmin = hm->vmin, vmax = hm->vmax;
    if (!(vmax > vmin)) {
        vmin = INFINITY;
        vmax = -INFINITY;
        for (long i = 0; i < (long)hm->rows * hm->cols; i++) {
            if (hm->values[i] < vmin) vmin = hm->values[i];   /* NaN compares false */
            if (hm->values[i] > vmax) vmax = hm->values[i];
        }
        if (vmin > vmax) vmin = vmax = 0;   /* no data at all */
    }
    char buf[32];
    /* Margins: title above; y label, tick labels left; x ticks, x label
       below; colour bar right. */
    int top = y + (hm->title ? TITLE_PX + 6 : 2);
    int left = x + (hm->ylabel ? LABEL_PX + 4 : 0);
    if (!hm->no_ticks) {
        snprintf(buf, sizeof buf, "%d", hm->y_first + hm->rows - 1);
        left += me_text_width(f, TICK_PX, buf) + TICK_LEN + 4;
    }
    int bottom = y + h - (hm->xlabel ? LABEL_PX + 4 : 0) - (hm->no_ticks ? 2 : TICK_PX + TICK_LEN + 4);
    int right = x + w - 4;
    if (!hm->no_cbar) {
        int lw = 0;
        for (int i = 0; i < 3; i++) {   /* the colour bar's three labels */
            fmt_value(buf, sizeof buf, vmax - (vmax - vmin) * i / 2.0);
            int tw = me_text_width(f, TICK_PX, buf);
            if (tw > lw) lw = tw;
        }
        right -= CBAR_W + TICK_LEN + 2 + lw + 10;
    }
    int pw = right - left, ph = bottom - top;
    if (pw < 2 || ph < 2) return me_fail(MOEDIT_EINTERNAL, "heatmap: box %dx%d too small", w, h);

    int rc = MOEDIT_OK;
    if (hm->title) rc |= me_canvas_text(c, left + pw / 2, y, TITLE_PX, 1, hm->title);
    double range = vmax > vmin ? vmax - vmin : 1;
    for (int j = 0; j < ph; j++)
        for (int i = 0; i < pw; i++) {
            uint8_t rgb[3];
            double v = cell_mean(hm, i, j, pw, ph);
            if (isnan(v)) memcpy(rgb, MISSING, 3);
            else me_viridis((float)((v - vmin) / range), rgb);
            memcpy(c->rgb + ((size_t)(top + j) * c->w + left + i) * 3, rgb, 3);
        }
    if (!hm->no_ticks) {
        int step = tick_step(hm->cols, pw / 36);
        for (int q = 0; q < hm->cols; q += step) {
            int tx = left + (int)(((double)q + 0.5) * pw / hm->cols);
            me_canvas_fill(c, tx, bottom, 1, TICK_LEN, GRAY);
            snprintf(buf, sizeof buf, "%d", hm->x_first + q);
            rc |= me_canvas_text(c, tx, bottom + TICK_LEN + 1, TICK_PX, 1, buf);
        }
        step = tick_step(hm->rows, ph / (TICK_PX + 3));
        for (int r = 0; r < hm->rows; r += step) {
            int ty = top + (int)(((double)r + 0.5) * ph / hm->rows);
            me_canvas_fill(c, left - TICK_LEN, ty, TICK_LEN, 1, GRAY);
            snprintf(buf, sizeof buf, "%d", hm->y_first + r);
            rc |= me_canvas_text(c, left - TICK_LEN - 2, ty - TICK_PX / 2, TICK_PX, 2, buf);
        }
    }
    if (hm->xlabel) rc |= me_canvas_text(c, left + pw / 2, y + h - LABEL_PX - 2, LABEL_PX, 1, hm->xlabel);
    if (hm->ylabel) {
        int tw = me_text_width(f, LABEL_PX, hm->ylabel);
        rc |= me_draw_text_vertical(f, c->rgb, c->w, c->h, 3, x, top + (ph - tw) / 2, LABEL_PX,
                                    hm->ylabel, ME_BLACK);
    }
    if (!hm->no_cbar)
        rc |= me_plot_colorbar(c, right + 10, top - TICK_PX / 2, ph + TICK_PX, vmin, vmax);
    return rc ? MOEDIT_EINTERNAL : MOEDIT_OK;
}

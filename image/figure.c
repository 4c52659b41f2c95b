/* Heatmap figures with cairo (see figure.h). The page is drawn once into a
   recording surface and replayed onto a PNG, SVG or PDF surface per format,
   so the three files show the same figure. */
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/colormap.h"
#include "image/figure.h"

#define FONT "DejaVu Sans"
enum { TITLE_PT = 10, LABEL_PT = 9, TICK_PT = 7 };
#define TICK_LEN 3.0
#define CBAR_BOX 58.0     /* room right of a heatmap for its colour bar */
#define NAME_MAX_PT 80.0  /* longest rotated tick name before it is cut */
#define NO_DATA 0.86      /* gray of cells with no data */

struct me_figure {
    cairo_surface_t *rec;
    cairo_t *cr;
    double w, h;
    int failed;   /* a drawing step ran out of memory */
};

int me_figure_new(me_figure **out, double width, double height)
{
    *out = NULL;
    if (!(width >= 1 && height >= 1 && width <= 16384 && height <= 16384))
        return me_fail(MOEDIT_EINPUT, "figure: %gx%g points is not a usable page", width, height);
    me_figure *f = me_calloc(1, sizeof *f);
    if (!f) return MOEDIT_EINTERNAL;
    f->w = width;
    f->h = height;
    f->rec = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &(cairo_rectangle_t){0, 0, width, height});
    f->cr = cairo_create(f->rec);
    if (cairo_status(f->cr)) {
        me_figure_free(f);
        return me_fail(MOEDIT_EINTERNAL, "figure: cannot start a cairo drawing");
    }
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    cairo_select_font_face(f->cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    *out = f;
    return MOEDIT_OK;
}

void me_figure_free(me_figure *f)
{
    if (!f) return;
    cairo_destroy(f->cr);
    cairo_surface_destroy(f->rec);
    free(f);
}

static double text_width(cairo_t *cr, double size, const char *s)
{
    cairo_text_extents_t te;
    cairo_set_font_size(cr, size);
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

void me_figure_text(me_figure *f, double x, double y, double size, double align, double angle,
                    const char *utf8)
{
    cairo_t *cr = f->cr;
    double w = text_width(cr, size, utf8);
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -angle * M_PI / 180);
    cairo_move_to(cr, -align * w, 0);
    cairo_show_text(cr, utf8);
    cairo_restore(cr);
}

const char *me_fit_text(cairo_t *cr, const char *s, double maxw, char *buf, size_t n)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    if (te.x_advance <= maxw) return s;
    size_t len = strlen(s);
    if (len > n - 4) len = n - 4;
    for (;;) {
        while (len && ((unsigned char)s[len] & 0xC0) == 0x80) len--;   /* not inside a character */
        memcpy(buf, s, len);
        memcpy(buf + len, "\xe2\x80\xa6", 4);
        cairo_text_extents(cr, buf, &te);
        if (!len || te.x_advance <= maxw) return buf;
        len--;
    }
}

/* me_fit_text at size points. */
static const char *fit(cairo_t *cr, double size, const char *s, double maxw, char *buf, size_t n)
{
    cairo_set_font_size(cr, size);
    return me_fit_text(cr, s, maxw, buf, n);
}

/* The smallest 1, 2 or 5 × 10^k at least span / max_ticks. */
static double nice_step(double span, int max_ticks)
{
    if (max_ticks < 1) max_ticks = 1;
    double raw = span / max_ticks, p = pow(10, floor(log10(raw > 0 ? raw : 1)));
    for (int i = 0; i < 4; i++) {
        static const double m[4] = {1, 2, 5, 10};
        if (m[i] * p >= raw) return m[i] * p;
    }
    return 10 * p;
}

static void data_range(const me_plot *p, double *lo, double *hi)
{
    *lo = p->vmin;
    *hi = p->vmax;
    if (p->vmax > p->vmin) return;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < (size_t)p->rows * p->cols; i++)
        if (!isnan(p->values[i])) {
            *lo = fmin(*lo, p->values[i]);
            *hi = fmax(*hi, p->values[i]);
        }
    if (!(*hi > *lo)) {   /* empty or constant: a unit range around it */
        *lo = isfinite(*lo) ? *lo : 0;
        *hi = *lo + 1;
    }
}

/* Image pixels per cell along a side of n cells: a block rather than one
   pixel, because SVG viewers smooth scaled images (cairo's SVG cannot ask
   them not to) and would blur one-pixel cells into each other; a block
   keeps the blur to the cell edges. PDF and PNG draw blocks sharp anyway. */
static int block(int n, int want)
{
    int k = (want + n - 1) / n;
    return k < 1 ? 1 : k > 16 ? 16 : k;
}

/* The cells as kx × ky pixel blocks, coloured by viridis over [lo, hi]. */
static cairo_surface_t *cell_image(const me_plot *p, double lo, double hi, int kx, int ky)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, p->cols * kx, p->rows * ky);
    if (cairo_surface_status(img)) return img;
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (int y = 0; y < p->rows * ky; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)y * stride);
        for (int c = 0; c < p->cols; c++) {
            double v = p->values[(size_t)(y / ky) * p->cols + c];
            uint8_t rgb[3];
            if (isnan(v)) rgb[0] = rgb[1] = rgb[2] = (uint8_t)(255 * NO_DATA);
            else me_viridis((float)((v - lo) / (hi - lo)), rgb);
            for (int i = 0; i < kx; i++)
                row[c * kx + i] = 0xFF000000u | (uint32_t)rgb[0] << 16 | (uint32_t)rgb[1] << 8 | rgb[2];
        }
    }
    cairo_surface_mark_dirty(img);
    return img;
}

static void tick_label(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.3g", fabs(v) < 1e-12 ? 0.0 : v);
}

void me_figure_colorbar(me_figure *f, double x, double y, double w, double h, double vmin, double vmax,
                        const char *label)
{
    cairo_t *cr = f->cr;
    if (!(vmax > vmin) || h < 4) return;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, y + h, 0, y);
    for (int i = 0; i <= 10; i++) {   /* viridis is linear between these stops (colormap.c) */
        uint8_t rgb[3];
        me_viridis(i / 10.0f, rgb);
        cairo_pattern_add_color_stop_rgb(g, i / 10.0, rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0);
    }
    cairo_rectangle(cr, x, y, w, h);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 0.6);
    cairo_rectangle(cr, x, y, w, h);
    cairo_stroke(cr);
    double step = nice_step(vmax - vmin, (int)(h / (2.5 * TICK_PT)) < 6 ? (int)(h / (2.5 * TICK_PT)) : 6);
    double widest = 0;
    for (double v = ceil(vmin / step - 1e-9) * step; v <= vmax + 1e-9 * step; v += step) {
        double ty = y + h - (v - vmin) / (vmax - vmin) * h;
        char buf[32];
        tick_label(buf, sizeof buf, v);
        cairo_move_to(cr, x + w, ty);
        cairo_rel_line_to(cr, TICK_LEN, 0);
        cairo_stroke(cr);
        me_figure_text(f, x + w + TICK_LEN + 2, ty + 0.35 * TICK_PT, TICK_PT, 0, 0, buf);
        widest = fmax(widest, text_width(cr, TICK_PT, buf));
    }
    if (label) me_figure_text(f, x + w + TICK_LEN + 6 + widest + LABEL_PT, y + h / 2, LABEL_PT, 0.5, 90, label);
}

/* Numeric tick positions: every step-th value of first, first+1, …, first+n-1. */
static int numeric_step(int n, double room, double label_w)
{
    int max_ticks = (int)(room / (label_w + 8));
    int step = (int)nice_step(n > 1 ? n - 1 : 1, max_ticks > 0 ? max_ticks : 1);
    return step < 1 ? 1 : step;
}

static void y_ticks(me_figure *f, const me_plot *p, double px, double py, double ph)
{
    cairo_t *cr = f->cr;
    char buf[32];
    int step = (int)nice_step(p->rows, (int)(ph / (1.3 * TICK_PT)));
    if (step < 1) step = 1;
    for (int r = 0; r < p->rows; r++) {
        if ((p->y_first + r) % step) continue;
        double ty = py + (r + 0.5) * ph / p->rows;
        cairo_move_to(cr, px, ty);
        cairo_rel_line_to(cr, -TICK_LEN, 0);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d", p->y_first + r);
        me_figure_text(f, px - TICK_LEN - 2, ty + 0.35 * TICK_PT, TICK_PT, 1, 0, buf);
    }
}

static void x_ticks(me_figure *f, const me_plot *p, double px, double py, double pw)
{
    cairo_t *cr = f->cr;
    char buf[128];
    double cw = pw / p->cols;
    if (p->xnames) {
        int every = (int)ceil(1.25 * TICK_PT / cw);
        for (int c = 0; c < p->cols; c += every > 0 ? every : 1) {
            if (!p->xnames[c]) continue;
            double tx = px + (c + 0.5) * cw;
            cairo_move_to(cr, tx, py);
            cairo_rel_line_to(cr, 0, TICK_LEN);
            cairo_stroke(cr);
            const char *s = fit(cr, TICK_PT, p->xnames[c], NAME_MAX_PT, buf, sizeof buf);
            me_figure_text(f, tx + 0.35 * TICK_PT, py + TICK_LEN + 2, TICK_PT, 1, 90, s);
        }
        return;
    }
    snprintf(buf, sizeof buf, "%d", p->x_first + p->cols - 1);
    int step = numeric_step(p->cols, pw, text_width(cr, TICK_PT, buf));
    for (int c = 0; c < p->cols; c++) {
        if ((p->x_first + c) % step) continue;
        double tx = px + (c + 0.5) * cw;
        cairo_move_to(cr, tx, py);
        cairo_rel_line_to(cr, 0, TICK_LEN);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d", p->x_first + c);
        me_figure_text(f, tx, py + TICK_LEN + 2 + TICK_PT, TICK_PT, 0.5, 0, buf);
    }
}

/* Height of the rotated x tick names (the longest, after cutting). */
static double names_height(cairo_t *cr, const me_plot *p)
{
    double h = 0;
    char buf[128];
    for (int c = 0; c < p->cols; c++)
        if (p->xnames[c]) h = fmax(h, text_width(cr, TICK_PT, fit(cr, TICK_PT, p->xnames[c], NAME_MAX_PT, buf, sizeof buf)));
    return h;
}

int me_plot_fits(int rows, int cols)
{
    return cols <= 32767 && rows <= 32767 && (double)cols * rows <= 1 << 24;
}

void me_figure_heatmap(me_figure *f, double x, double y, double w, double h, const me_plot *p)
{
    cairo_t *cr = f->cr;
    if (p->cols < 1 || p->rows < 1) return;
    if (!me_plot_fits(p->rows, p->cols)) {
        f->failed = me_fail(MOEDIT_EINPUT, "figure: a %d x %d heatmap is too large", p->rows, p->cols);
        return;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%d", p->y_first + p->rows - 1);
    double top = p->title ? TITLE_PT + 9 : 2;
    double left = (p->ylabel ? LABEL_PT + 6 : 2) + (p->no_ticks ? 0 : text_width(cr, TICK_PT, buf) + TICK_LEN + 4);
    double bottom = (p->no_ticks ? 2 : TICK_LEN + 4 + (p->xnames ? names_height(cr, p) : TICK_PT + 2)) +
                    (p->xlabel ? LABEL_PT + 9 : 0);   /* a gap to the panel below */
    double right = p->no_cbar ? 4 : CBAR_BOX;
    double px = x + left, py = y + top, pw = w - left - right, ph = h - top - bottom;
    if (p->title) me_figure_text(f, px + pw / 2, y + TITLE_PT, TITLE_PT, 0.5, 0, p->title);
    if (pw < 4 || ph < 4) return;   /* no room for cells: the title alone */

    double lo, hi;
    data_range(p, &lo, &hi);
    int kx = block(p->cols, 320), ky = block(p->rows, 160);
    cairo_surface_t *img = cell_image(p, lo, hi, kx, ky);
    if (cairo_surface_status(img)) {
        f->failed = me_fail(MOEDIT_EINTERNAL, "figure: out of memory for a %d x %d heatmap", p->rows, p->cols);
        cairo_surface_destroy(img);
        return;
    }
    cairo_save(cr);
    cairo_translate(cr, px, py);
    cairo_scale(cr, pw / (p->cols * kx), ph / (p->rows * ky));
    cairo_set_source_surface(cr, img, 0, 0);
    /* Cells stay sharp squares; smoothing would blend neighbouring experts. */
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);

    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 0.6);
    cairo_rectangle(cr, px, py, pw, ph);
    cairo_stroke(cr);
    if (!p->no_ticks) {
        y_ticks(f, p, px, py, ph);
        x_ticks(f, p, px, py + ph, pw);
    }
    if (p->ylabel) me_figure_text(f, x + LABEL_PT, py + ph / 2, LABEL_PT, 0.5, 90, p->ylabel);
    if (p->xlabel) me_figure_text(f, px + pw / 2, y + h - 7, LABEL_PT, 0.5, 0, p->xlabel);
    if (!p->no_cbar) me_figure_colorbar(f, px + pw + 8, py, 9, ph, lo, hi, p->cbar_label);
}

/* cairo's output callback into an atomically written file. */
static cairo_status_t sink(void *closure, const unsigned char *data, unsigned int length)
{
    return me_atomic_write(closure, data, length) ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

static int save_one(me_figure *f, const char *base, const char *ext)
{
    size_t n = strlen(base) + 5;
    char *path = me_alloc(n);
    if (!path) return MOEDIT_EINTERNAL;
    snprintf(path, n, "%s.%s", base, ext);
    me_atomic_file af;
    int rc = me_atomic_open(&af, path);
    if (rc) {
        free(path);
        return rc;
    }
    cairo_surface_t *s;
    double scale = 1;
    if (!strcmp(ext, "png")) {
        scale = ME_FIG_PNG_SCALE;
        s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)ceil(f->w * scale), (int)ceil(f->h * scale));
    } else if (!strcmp(ext, "svg")) {
        s = cairo_svg_surface_create_for_stream(sink, &af, f->w, f->h);
    } else {
        s = cairo_pdf_surface_create_for_stream(sink, &af, f->w, f->h);
        cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "moedit");
    }
    cairo_t *cr = cairo_create(s);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, f->rec, 0, 0);
    cairo_paint(cr);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (!st && scale != 1) st = cairo_surface_write_to_png_stream(s, sink, &af);
    cairo_surface_finish(s);
    if (!st) st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st) {
        rc = me_fail(st == CAIRO_STATUS_WRITE_ERROR ? MOEDIT_EINPUT : MOEDIT_EINTERNAL, "%s: %s", path,
                     cairo_status_to_string(st));
        me_atomic_abort(&af);
    } else {
        rc = me_atomic_commit(&af);
    }
    free(path);
    return rc;
}

const char *const me_figure_ext[3] = {"png", "svg", "pdf"};

int me_figure_save(me_figure *f, const char *base, unsigned formats)
{
    if (f->failed) return f->failed;
    if (cairo_status(f->cr))
        return me_fail(MOEDIT_EINTERNAL, "figure %s: %s", base, cairo_status_to_string(cairo_status(f->cr)));
    int rc = MOEDIT_OK;
    for (int i = 0; i < 3 && !rc; i++)
        if (formats & (1u << i)) rc = save_one(f, base, me_figure_ext[i]);
    return rc;
}

int me_figure_formats(const char *list, unsigned *formats)
{
    const char *const *ext = me_figure_ext;
    *formats = 0;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        int i = 0;
        while (i < 3 && !(strlen(ext[i]) == len && !strncmp(p, ext[i], len))) i++;
        if (i == 3) return me_fail(MOEDIT_EINPUT, "'%.*s' is not png, svg or pdf", (int)len, p);
        *formats |= 1u << i;
        if (!p[len]) return MOEDIT_OK;
        p += len + 1;
    }
}

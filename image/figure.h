/* figure.h — figures for people and papers, drawn with cairo: annotated
   heatmaps (title, axis titles, ticks, a viridis colour bar with its own
   ticks) on a page measured in points, saved as PNG, SVG and PDF from one
   drawing. Text is DejaVu Sans through fontconfig (fonts-dejavu-core; any
   sans-serif face stands in when it is missing).

     me_figure *f;
     if (me_figure_new(&f, 480, 300)) ...                 // points
     me_figure_text(f, 8, 14, 11, 0, 0, "layer 0");       // size 11 pt, left-aligned
     me_plot p = {.title = "expert share per step", .xlabel = "step", .ylabel = "expert",
                  .cols = steps, .rows = experts, .values = share, .vmin = 0, .vmax = 1,
                  .cbar_label = "share"};
     me_figure_heatmap(f, 0, 20, 480, 280, &p);          // the panel fills that box
     if (me_figure_save(f, "out/layer_00", ME_FIG_PNG | ME_FIG_PDF)) ...
       // out/layer_00.png (2 pixels a point), out/layer_00.pdf, each written atomically
     me_figure_free(f);

   Heatmap cells are one image pixel each, scaled without smoothing, so a PDF
   or SVG keeps them sharp at any zoom and stays small for wide tables. The
   colour bar is a gradient. Drawing errors are remembered by the figure and
   reported by me_figure_save. */
#ifndef MOEDIT_IMAGE_FIGURE_H
#define MOEDIT_IMAGE_FIGURE_H

#include <stddef.h>

enum { ME_FIG_PNG = 1, ME_FIG_SVG = 2, ME_FIG_PDF = 4 };
/* The file extension of format bit i (ME_FIG_PNG is bit 0): "png", "svg", "pdf". */
extern const char *const me_figure_ext[3];
#define ME_FIG_PNG_SCALE 2   /* PNG pixels per point */

typedef struct me_figure me_figure;

int me_figure_new(me_figure **out, double width, double height);
void me_figure_free(me_figure *f);

/* Text with its baseline at y; align 0 left of x, 0.5 centred, 1 right;
   angle in degrees counter-clockwise (90: reads bottom to top). */
void me_figure_text(me_figure *f, double x, double y, double size, double align, double angle,
                    const char *utf8);

typedef struct {
    const char *title, *xlabel, *ylabel;   /* NULL = none */
    const char *cbar_label;                /* title of the colour bar */
    int cols, rows;
    const double *values;          /* rows × cols, row-major, row 0 at the top; NaN = no data (gray) */
    double vmin, vmax;             /* colour range; vmax <= vmin: the data's range */
    int x_first, y_first;          /* numeric tick label of the first column / row */
    const char *const *xnames;     /* cols names for the x ticks instead of numbers (NULL entries unlabelled) */
    int no_cbar;                   /* small multiples share one bar (me_figure_colorbar) */
    int no_ticks;                  /* small maps: no ticks, no tick labels */
} me_plot;

/* Draws p and its annotations inside the box (x, y, w, h). */
void me_figure_heatmap(me_figure *f, double x, double y, double w, double h, const me_plot *p);
/* Whether me_figure_heatmap can draw a rows x cols panel (each at most
   32767, at most 2^24 cells); callers check before they write anything. */
int me_plot_fits(int rows, int cols);
/* A vertical colour bar w wide, h tall, with ticks at round values and
   label (may be NULL) to its right. */
void me_figure_colorbar(me_figure *f, double x, double y, double w, double h, double vmin, double vmax,
                        const char *label);

/* Writes base.png / base.svg / base.pdf for the bits in formats. */
int me_figure_save(me_figure *f, const char *base, unsigned formats);

/* Text that fits in maxw points at the cairo context's font size: s itself,
   or a copy in buf[n] cut at a character boundary and ended with "…". */
struct _cairo;
const char *me_fit_text(struct _cairo *cr, const char *s, double maxw, char *buf, size_t n);

/* "png,svg,pdf" (any order, any subset) into ME_FIG_* bits; MOEDIT_EINPUT
   naming the bad entry otherwise. */
int me_figure_formats(const char *list, unsigned *formats);

#endif

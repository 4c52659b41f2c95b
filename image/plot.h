/* plot.h — a small RGB canvas for figures: annotated heatmaps (title, axis
   labels, ticks, viridis colour bar) and atomic PNG output.

     me_canvas c;
     me_canvas_init(&c, 800, 600);                   // white
     me_heatmap hm = {.title = "layer 0", .xlabel = "step", .ylabel = "expert",
                      .cols = steps, .rows = experts, .values = share};
     me_plot_heatmap(&c, 0, 0, 400, 300, &hm);       // draws into that box
     me_canvas_write_png(&c, "layer_00.png");
     me_canvas_free(&c);

   Cells are averaged when there are more of them than pixels, so wide tables
   (1000 classes) shrink without aliasing. Text uses me_font_default(). */
#ifndef MOEDIT_IMAGE_PLOT_H
#define MOEDIT_IMAGE_PLOT_H

#include <stdint.h>

typedef struct {
    int w, h;
    uint8_t *rgb;   /* w*h*3 */
} me_canvas;

int me_canvas_init(me_canvas *c, int w, int h);
void me_canvas_free(me_canvas *c);
void me_canvas_fill(me_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Text helpers on the default font; align: 0 left, 1 centre, 2 right of x. */
int me_canvas_text(me_canvas *c, int x, int y, float px, int align, const char *text);
/* Writes a PNG atomically (temporary name, then rename). */
int me_canvas_write_png(const me_canvas *c, const char *path);

typedef struct {
    const char *title, *xlabel, *ylabel;   /* NULL = none */
    int cols, rows;           /* cells along x and y */
    const double *values;     /* rows × cols, row-major, row 0 at the top; NaN = no data (light gray) */
    double vmin, vmax;        /* colour range; vmax <= vmin: the data's range */
    int x_first, y_first;     /* tick label of the first column / row */
    int no_ticks;             /* small multiples: no ticks, no tick labels */
    int no_cbar;
} me_heatmap;

/* Draws hm with its annotations inside the box (x, y, w, h). */
int me_plot_heatmap(me_canvas *c, int x, int y, int w, int h, const me_heatmap *hm);
/* A vertical colour bar for [vmin, vmax], h tall, with three tick labels to
   its right (about 60 pixels wide in all). */
int me_plot_colorbar(me_canvas *c, int x, int y, int h, double vmin, double vmax);

#endif

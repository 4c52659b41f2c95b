/* Decoded images to uint8 pixels, grids of magnified tiles with caption
   strips drawn by cairo, and per-sample PNG files. */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/figure.h"
#include "image/image.h"

uint8_t me_to_u8(float x)
{
    /* Two float32 roundings, as torch's mul then add (no fused multiply-add). */
    float scaled = 127.5f * x;
    float v = scaled + 128.0f;
    if (!(v > 0.0f)) return 0;   /* also NaN */
    if (v >= 255.0f) return 255;
    return (uint8_t)v;           /* truncation == floor for v >= 0 */
}

void me_image_to_u8(int c, int h, int w, const float *chw, uint8_t *hwc)
{
    size_t plane = (size_t)h * w;
    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < c; ch++) hwc[p * c + ch] = me_to_u8(chw[(size_t)ch * plane + p]);
}

static int check_channels(int c)
{
    if (c == 1 || c == 3) return MOEDIT_OK;
    return me_fail(MOEDIT_EINPUT, "cannot make a picture of %d-channel images (1 or 3 needed)", c);
}

int me_grid_auto_scale(int px)
{
    return px >= 128 || px <= 0 ? 1 : (128 + px - 1) / px;
}

/* Caption text height in pixels for tiles h pixels tall: legible, never
   dwarfing the tile. */
static int caption_px(size_t h)
{
    size_t px = h / 9;
    return px < 10 ? 10 : px > 18 ? 18 : (int)px;
}

/* White captions on the black strips: cairo renders the text as coverage
   into an alpha-only surface the size of the canvas, which then lights the
   canvas pixels (every channel, so gray and RGB grids alike). */
static int draw_captions(uint8_t *canvas, int W, int H, int c, int n, int cols, int tile_w, int tile_h,
                         int strip, int pad, int px, const char *const *captions)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_A8, W, H);
    cairo_t *cr = cairo_create(s);
    if (cairo_status(cr)) {
        cairo_destroy(cr);
        cairo_surface_destroy(s);
        return me_fail(MOEDIT_EINTERNAL, "grid: out of memory for captions");
    }
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, px);
    for (int i = 0; i < n; i++) {
        if (!captions[i]) continue;
        char buf[256];
        const char *text = me_fit_text(cr, captions[i], tile_w - 4, buf, sizeof buf);
        cairo_text_extents_t te;
        cairo_text_extents(cr, text, &te);
        double x0 = pad + (double)(i % cols) * (tile_w + pad), y0 = pad + (double)(i / cols) * (tile_h + strip + pad);
        cairo_move_to(cr, x0 + (tile_w - te.x_advance) / 2, y0 + tile_h + 2 + 0.8 * px);
        cairo_show_text(cr, text);
    }
    cairo_surface_flush(s);
    int rc = cairo_status(cr) ? me_fail(MOEDIT_EINTERNAL, "grid captions: %s", cairo_status_to_string(cairo_status(cr)))
                              : MOEDIT_OK;
    const uint8_t *a = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < H && !rc; y++)
        for (int x = 0; x < W; x++) {
            uint8_t v = a[(size_t)y * stride + x];
            for (int ch = 0; ch < c && v; ch++) {
                uint8_t *p = canvas + ((size_t)y * W + x) * c + ch;
                if (v > *p) *p = v;
            }
        }
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    return rc;
}

/* The layout me_grid_build draws, shared with me_grid_size so that the
   size a caller checks up front is the size that is built. */
typedef struct {
    int pad, cols, rows, k, tw, th, px, strip;
    size_t W, H;
} grid_layout;

static int grid_layout_of(int n, int h, int w, const me_grid_style *style, grid_layout *g)
{
    if (n <= 0 || h <= 0 || w <= 0) return me_fail(MOEDIT_EINPUT, "grid: no images");
    me_grid_style st = style ? *style : (me_grid_style){.pad = -1};
    g->pad = st.pad < 0 ? 2 : st.pad;
    g->cols = st.cols > 0 ? st.cols : (int)ceil(sqrt((double)n));
    if (g->cols > n) g->cols = n;
    g->rows = (n + g->cols - 1) / g->cols;
    g->k = st.scale > 1 ? st.scale : 1;
    if (g->k > 64) return me_fail(MOEDIT_EINPUT, "grid: magnification %d is above 64", g->k);
    /* in size_t: a tile side times the magnification can pass INT_MAX; a
       tile is never wider than the canvas, so once W and H pass the check
       below tw and th fit in int */
    size_t tw = (size_t)w * g->k, th = (size_t)h * g->k;
    g->px = caption_px(th);
    g->strip = st.captions ? g->px + 6 : 0;
    g->W = (size_t)g->cols * (tw + g->pad) + g->pad;
    g->H = (size_t)g->rows * (th + g->strip + g->pad) + g->pad;
    if (g->W > ME_GRID_MAX_PX || g->H > ME_GRID_MAX_PX)
        return me_fail(MOEDIT_EINPUT, "grid: %zux%zu pixels (%d columns, %d rows) is more than %d a side",
                       g->W, g->H, g->cols, g->rows, ME_GRID_MAX_PX);
    g->tw = (int)tw;
    g->th = (int)th;
    return MOEDIT_OK;
}

int me_grid_size(int n, int h, int w, const me_grid_style *style, int *gw, int *gh)
{
    grid_layout g = {0};
    int rc = grid_layout_of(n, h, w, style, &g);
    if (rc) return rc;
    *gw = (int)g.W;
    *gh = (int)g.H;
    return MOEDIT_OK;
}

int me_grid_build(int n, int c, int h, int w, const float *img, const me_grid_style *style,
                  uint8_t **out, int *gw, int *gh)
{
    *out = NULL;
    if (n <= 0 || h <= 0 || w <= 0) return me_fail(MOEDIT_EINPUT, "grid: no images");
    int rc = check_channels(c);
    if (rc) return rc;
    grid_layout g = {0};
    if ((rc = grid_layout_of(n, h, w, style, &g))) return rc;
    me_grid_style st = style ? *style : (me_grid_style){.pad = -1};
    int pad = g.pad, cols = g.cols, k = g.k, tw = g.tw, th = g.th, px = g.px, strip = g.strip;
    size_t W = g.W, H = g.H;
    uint8_t *canvas = calloc(W * H * c, 1);
    uint8_t *tile = malloc((size_t)h * w * c);
    if (!canvas || !tile) {
        free(canvas);
        free(tile);
        return me_fail(MOEDIT_EINTERNAL, "grid: out of memory");
    }
    for (int i = 0; i < n; i++) {
        size_t x0 = pad + (size_t)(i % cols) * (tw + pad), y0 = pad + (size_t)(i / cols) * (th + strip + pad);
        me_image_to_u8(c, h, w, img + (size_t)i * c * h * w, tile);
        for (int y = 0; y < th; y++) {
            uint8_t *dst = canvas + ((y0 + y) * W + x0) * c;
            const uint8_t *src = tile + (size_t)(y / k) * w * c;
            for (int x = 0; x < tw; x++) memcpy(dst + (size_t)x * c, src + (size_t)(x / k) * c, (size_t)c);
        }
    }
    free(tile);
    if (st.captions) rc = draw_captions(canvas, (int)W, (int)H, c, n, cols, tw, th, strip, pad, px, st.captions);
    if (rc) {
        free(canvas);
        return rc;
    }
    *out = canvas;
    *gw = (int)W;
    *gh = (int)H;
    return MOEDIT_OK;
}

int me_grid_write_png(const char *path, int n, int c, int h, int w, const float *img,
                      const me_grid_style *style)
{
    uint8_t *pix;
    int gw, gh;
    int rc = me_grid_build(n, c, h, w, img, style, &pix, &gw, &gh);
    if (rc) return me_fail_prefix(rc, path);
    rc = me_png_write(path, pix, gw, gh, c);
    free(pix);
    return rc;
}

int me_sample_png_name(char *buf, size_t cap, int index, const int64_t *label)
{
    return label ? snprintf(buf, cap, "%04d_class%lld.png", index, (long long)*label)
                 : snprintf(buf, cap, "%04d.png", index);
}

int me_write_sample_pngs(const char *dir, int first, int n, int c, int h, int w,
                         const float *img, const int64_t *labels)
{
    int rc = check_channels(c);
    if (rc) return me_fail_prefix(rc, dir);
    uint8_t *pix = malloc((size_t)h * w * c);
    if (!pix) return me_fail(MOEDIT_EINTERNAL, "%s: out of memory", dir);
    size_t len = strlen(dir);
    const char *sep = len && dir[len - 1] == '/' ? "" : "/";
    for (int i = 0; i < n && rc == MOEDIT_OK; i++) {
        char path[4096];
        int k = snprintf(path, sizeof path, "%s%s", dir, sep);
        if (k > 0 && (size_t)k < sizeof path)
            k += me_sample_png_name(path + k, sizeof path - (size_t)k, first + i, labels ? labels + i : NULL);
        if (k < 0 || (size_t)k >= sizeof path) {
            rc = me_fail(MOEDIT_EINPUT, "%s: path too long", dir);
            break;
        }
        me_image_to_u8(c, h, w, img + (size_t)i * c * h * w, pix);
        rc = me_png_write(path, pix, w, h, c);
    }
    free(pix);
    return rc;
}

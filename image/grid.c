/* Decoded images to uint8 pixels, grids of tiles with caption strips, and
   per-sample PNG files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "image/image.h"
#include "image/text.h"

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

/* Caption text height for tiles h pixels tall: legible, never dwarfing the tile. */
static int caption_px(int h)
{
    int px = h / 8;
    return px < 10 ? 10 : px > 20 ? 20 : px;
}

int me_grid_build(int n, int c, int h, int w, const float *img, const me_grid_style *style,
                  uint8_t **out, int *gw, int *gh)
{
    *out = NULL;
    if (n <= 0 || h <= 0 || w <= 0) return me_fail(MOEDIT_EINPUT, "grid: no images");
    int rc = check_channels(c);
    if (rc) return rc;
    me_grid_style st = style ? *style : (me_grid_style){.pad = -1};
    int pad = st.pad < 0 ? 2 : st.pad;
    int cols = st.cols > 0 ? st.cols : (int)ceil(sqrt((double)n));
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    /* Without a font the grid is still worth having: captions are dropped. */
    const me_font *font = st.captions ? me_font_default() : NULL;
    int px = caption_px(h), strip = font ? px + 4 : 0;
    size_t W = (size_t)cols * (w + pad) + pad, H = (size_t)rows * (h + strip + pad) + pad;
    if (W > 65535 || H > 65535) return me_fail(MOEDIT_EINPUT, "grid: %zux%zu pixels is too large", W, H);
    uint8_t *canvas = calloc(W * H * c, 1);
    uint8_t *tile = malloc((size_t)h * w * c);
    if (!canvas || !tile) {
        free(canvas);
        free(tile);
        return me_fail(MOEDIT_EINTERNAL, "grid: out of memory");
    }
    for (int i = 0; i < n; i++) {
        size_t x0 = pad + (size_t)(i % cols) * (w + pad), y0 = pad + (size_t)(i / cols) * (h + strip + pad);
        me_image_to_u8(c, h, w, img + (size_t)i * c * h * w, tile);
        for (int y = 0; y < h; y++)
            memcpy(canvas + ((y0 + y) * W + x0) * c, tile + (size_t)y * w * c, (size_t)w * c);
        if (font && st.captions[i]) {
            int tw = me_text_width(font, (float)px, st.captions[i]);
            int tx = (int)x0 + (tw < w ? (w - tw) / 2 : 0);
            rc = me_draw_text(font, canvas, (int)W, (int)H, c, tx, (int)(y0 + h + 2), (float)px,
                              st.captions[i], ME_WHITE);
            if (rc) break;
        }
    }
    free(tile);
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
        int k = labels ? snprintf(path, sizeof path, "%s%s%04d_class%lld.png", dir, sep, first + i,
                                  (long long)labels[i])
                       : snprintf(path, sizeof path, "%s%s%04d.png", dir, sep, first + i);
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

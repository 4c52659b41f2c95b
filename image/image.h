/* image.h — decoder output to pictures: the uint8 conversion of DiT's
   sample_ddp.py, tile grids with optional caption strips (text by cairo),
   PNG files written atomically (never a partial file) with stb_image_write,
   one PNG per sample.

     // img: n decoded images, float32 NCHW in about [-1, 1]
     const char *caps[2] = {"Sneaker", "Dress"};
     me_grid_style st = {.cols = 2, .pad = 2, .captions = caps, .scale = me_grid_auto_scale(32)};
     if (me_grid_write_png("grid.png", 2, 1, 256, 256, img, &st)) ...
     if (me_write_sample_pngs("out/", 0, 2, 1, 256, 256, img, labels)) ...
       // out/0000_class7.png, out/0001_class3.png

   1-channel images become grayscale PNGs, 3-channel ones RGB; other channel
   counts are MOEDIT_EINPUT. */
#ifndef MOEDIT_IMAGE_H
#define MOEDIT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* floor(clamp(127.5·x + 128, 0, 255)), i.e. torch.clamp(127.5 * x + 128.0,
   0, 255).to(torch.uint8); NaN becomes 0. */
uint8_t me_to_u8(float x);

/* One image, CHW float → HWC uint8. */
void me_image_to_u8(int c, int h, int w, const float *chw, uint8_t *hwc);

/* Encodes HWC uint8 pixels (channels 1, 2, 3 or 4) as PNG and writes them
   through a temporary file renamed into place. */
int me_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels);

typedef struct {
    int cols;                      /* tiles per row; 0 = ceil(sqrt(n)) */
    int pad;                       /* black pixels around and between tiles; < 0 = 2 */
    const char *const *captions;   /* n strings drawn under the tiles (cut to the tile's width), or NULL */
    int scale;                     /* tiles magnified this many times (nearest); <= 1: as they are */
} me_grid_style;

/* The smallest magnification that makes tiles of side px at least 128
   pixels, so that small images and their captions are readable. */
int me_grid_auto_scale(int px);

/* The widest and tallest grid: cairo, which draws the captions, makes no
   image surface larger than this, and grids keep one limit with or without
   captions. */
#define ME_GRID_MAX_PX 32767

/* The *gw × *gh pixels me_grid_build would make of n h × w tiles, without
   any pixels: callers check a grid before the work that makes its images.
   MOEDIT_EINPUT (message says the size and the limit) for no images, a
   magnification above 64, or a grid past ME_GRID_MAX_PX either way. */
int me_grid_size(int n, int h, int w, const me_grid_style *style, int *gw, int *gh);

/* Assembles n CHW float images into one HWC uint8 canvas (*out, free()),
   *gw × *gh pixels with c channels. style NULL = defaults. */
int me_grid_build(int n, int c, int h, int w, const float *img, const me_grid_style *style,
                  uint8_t **out, int *gw, int *gh);
/* me_grid_build + me_png_write. */
int me_grid_write_png(const char *path, int n, int c, int h, int w, const float *img,
                      const me_grid_style *style);

/* The file name of sample index with *label (NULL: no label), as
   me_write_sample_pngs writes it; snprintf's return. */
int me_sample_png_name(char *buf, size_t cap, int index, const int64_t *label);
/* dir/NNNN_classL.png for sample first+i with label labels[i] (NULL: dir/NNNN.png). */
int me_write_sample_pngs(const char *dir, int first, int n, int c, int h, int w,
                         const float *img, const int64_t *labels);

#endif

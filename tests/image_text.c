/* Text rendering, the viridis colour map and the plotting canvas. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "moedit.h"
#include "image/colormap.h"
#include "image/plot.h"
#include "image/text.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
/* Static stb functions this test does not call would warn at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>

/* Bounding box of the pixels that differ from bg; returns their count. */
static long ink_box(const uint8_t *img, int w, int h, int ch, uint8_t bg, int box[4])
{
    long n = 0;
    box[0] = w; box[1] = h; box[2] = -1; box[3] = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++)
                if (img[((size_t)y * w + x) * ch + c] != bg) {
                    if (x < box[0]) box[0] = x;
                    if (y < box[1]) box[1] = y;
                    if (x > box[2]) box[2] = x;
                    if (y > box[3]) box[3] = y;
                    n++;
                    break;
                }
    return n;
}

Test(image_text, default_font_loads_and_measures) {
    const me_font *f = me_font_default();
    cr_assert(f, "%s", moedit_last_error());
    cr_assert_eq(me_font_default(), f, "loaded once");
    int a = me_text_width(f, 16, "i"), b = me_text_width(f, 16, "WWWW"), c = me_text_width(f, 32, "WWWW");
    cr_assert_gt(a, 0);
    cr_assert_gt(b, 4 * a);
    cr_assert(c >= 2 * b - 2 && c <= 2 * b + 2, "width scales with size: %d vs %d", c, b);
    cr_assert_eq(me_text_width(f, 16, ""), 0);
}

Test(image_text, missing_font_is_an_input_error) {
    me_font *f;
    cr_assert_eq(me_font_load(&f, "/nonexistent/font.ttf"), MOEDIT_EINPUT);
    cr_assert_null(f);
    cr_assert(strstr(moedit_last_error(), "/nonexistent/font.ttf"));
    cr_assert(strstr(moedit_last_error(), "fonts-dejavu-core"));
    cr_assert_eq(me_font_load(&f, "/etc/hostname"), MOEDIT_EINPUT, "not a font");
}

Test(image_text, text_stays_in_its_box) {
    const me_font *f = me_font_default();
    enum { W = 200, H = 60 };
    uint8_t *img = malloc(W * H * 3);
    memset(img, 255, W * H * 3);
    const uint8_t red[3] = {255, 0, 0};
    int tw = me_text_width(f, 20, "Hyg 207");
    cr_assert_eq(me_draw_text(f, img, W, H, 3, 30, 10, 20, "Hyg 207", red), MOEDIT_OK);
    int box[4];
    cr_assert_gt(ink_box(img, W, H, 3, 255, box), 50);
    cr_assert_geq(box[0], 30);
    cr_assert_leq(box[2], 30 + tw);
    cr_assert_geq(box[1], 10);
    cr_assert_leq(box[3], 10 + 20);
    cr_assert_gt(box[2] - box[0], tw / 2, "the text spans most of its width");
    /* colour: red channel untouched, green/blue darkened */
    for (int i = 0; i < W * H; i++) cr_assert_eq(img[3 * i], 255);
    free(img);
}

Test(image_text, vertical_text_reads_bottom_to_top) {
    const me_font *f = me_font_default();
    enum { W = 60, H = 200 };
    uint8_t *img = malloc(W * H);
    memset(img, 255, W * H);
    int tw = me_text_width(f, 16, "expert id");
    cr_assert_eq(me_draw_text_vertical(f, img, W, H, 1, 10, 20, 16, "expert id", ME_BLACK), MOEDIT_OK);
    int box[4];
    cr_assert_gt(ink_box(img, W, H, 1, 255, box), 30);
    cr_assert_geq(box[0], 10);
    cr_assert_leq(box[2], 10 + 16);
    cr_assert_geq(box[1], 19);
    cr_assert_leq(box[3], 20 + tw);
    cr_assert_gt(box[3] - box[1], 3 * (box[2] - box[0]), "tall, not wide");
    /* The first character lands at the bottom: "W" then spaces inks only the lower part. */
    memset(img, 255, W * H);
    int ww = me_text_width(f, 16, "W        ");
    cr_assert_eq(me_draw_text_vertical(f, img, W, H, 1, 10, 20, 16, "W        ", ME_BLACK), MOEDIT_OK);
    cr_assert_gt(ink_box(img, W, H, 1, 255, box), 10);
    cr_assert_gt(box[1], 20 + ww / 2, "ink at rows %d..%d of %d..%d", box[1], box[3], 20, 20 + ww);
    free(img);
}

Test(image_text, clipping_and_bad_utf8_are_safe) {
    const me_font *f = me_font_default();
    enum { W = 16, H = 8 };
    uint8_t img[W * H * 4];
    memset(img, 255, sizeof img);
    cr_assert_eq(me_draw_text(f, img, W, H, 4, -5, -7, 24, "clipped \xff\xc3(\xe2\x82 \xf0\x9f\x98\x80", ME_BLACK), MOEDIT_OK);
    cr_assert_eq(me_draw_text(f, img, W, H, 4, 500, 500, 12, "off canvas", ME_BLACK), MOEDIT_OK);
    cr_assert_eq(me_draw_text_vertical(f, img, W, H, 4, -3, -40, 12, "vertical", ME_BLACK), MOEDIT_OK);
    for (int i = 0; i < W * H; i++) cr_assert_eq(img[4 * i + 3], 255, "alpha untouched");
    int box[4];
    cr_assert_gt(ink_box(img, W, H, 4, 255, box), 0);
}

Test(image_text, viridis_endpoints_and_rising_lightness) {
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

Test(image_text, heatmap_png_round_trip) {
    me_canvas cv;
    cr_assert_eq(me_canvas_init(&cv, 300, 200), MOEDIT_OK);
    const double v[6] = {0, 1, 2, 3, 4, 0.0 / 0.0};   /* the last cell has no data */
    me_heatmap hm = {.title = "t", .xlabel = "x", .ylabel = "y", .cols = 3, .rows = 2, .values = v};
    cr_assert_eq(me_plot_heatmap(&cv, 0, 0, 300, 200, &hm), MOEDIT_OK, "%s", moedit_last_error());
    long lo = 0, hi = 0, missing = 0;
    for (int i = 0; i < 300 * 200; i++) {
        const uint8_t *q = cv.rgb + 3 * i;
        lo += q[0] == 0x44 && q[1] == 0x01 && q[2] == 0x54;
        hi += q[0] == 0xfd && q[1] == 0xe7 && q[2] == 0x25;
        missing += q[0] == 225 && q[1] == 225 && q[2] == 225;
    }
    cr_assert_gt(lo, 500, "the 0 cell has the minimum colour");
    cr_assert_gt(hi, 500, "the 4 cell has the maximum colour");
    cr_assert_gt(missing, 500, "the NaN cell is light gray");
    char path[256];
    snprintf(path, sizeof path, "/tmp/moedit_plot_%d.png", (int)getpid());
    cr_assert_eq(me_canvas_write_png(&cv, path), MOEDIT_OK, "%s", moedit_last_error());
    int w, h, n;
    uint8_t *img = stbi_load(path, &w, &h, &n, 3);
    cr_assert(img);
    cr_assert_eq(w, 300);
    cr_assert_eq(h, 200);
    cr_assert(!memcmp(img, cv.rgb, 300 * 200 * 3), "PNG holds the canvas");
    stbi_image_free(img);
    remove(path);
    cr_assert_eq(me_canvas_write_png(&cv, "/nonexistent-dir/p.png"), MOEDIT_EINPUT);
    me_canvas_free(&cv);
}

/* uint8 conversion (against torch, fixtures from tools/make_vae_fixtures.py),
   grids and PNG files read back with stb_image. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "moedit.h"
#include "image/image.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#include "stb_image.h"
#include "tests/testutil.h"

static void *load_raw(const char *name, size_t bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/vae/%s", FIXTURES, name);
    return tu_read_exact(path, bytes);
}

Test(image, u8_matches_dit_sample_ddp)
{
    enum { N = 257 };
    float *x = load_raw("u8_in.f32", N * sizeof(float));
    uint8_t *want = load_raw("u8_expected.u8", N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(me_to_u8(x[i]), want[i], "x=%.9g: got %d, torch %d", x[i], me_to_u8(x[i]), want[i]);
    cr_assert_eq(me_to_u8(-1.0f), 0);
    cr_assert_eq(me_to_u8(0.0f), 128);
    cr_assert_eq(me_to_u8(1.0f), 255);
    cr_assert_eq(me_to_u8(0.0f / 0.0f), 0);
    free(x);
    free(want);
}

static char tmpdir[64];

static void make_tmp(void) { tu_tmpdir(tmpdir, sizeof tmpdir, "image"); }
static void remove_tmp(void) { cr_assert_eq(tu_rmtree(tmpdir), 0); }

/* Two 2×3 RGB images with distinct pixel values. */
static float *two_images(int c)
{
    float *img = malloc(2 * c * 6 * sizeof *img);
    for (int i = 0; i < 2 * c * 6; i++) img[i] = -1.0f + 2.0f * i / (2 * c * 6 - 1);
    return img;
}

Test(image, png_roundtrip_rgb_grid, .init = make_tmp, .fini = remove_tmp)
{
    float *img = two_images(3);
    char path[128];
    snprintf(path, sizeof path, "%s/grid.png", tmpdir);
    me_grid_style st = {.cols = 2, .pad = 1};
    cr_assert_eq(me_grid_write_png(path, 2, 3, 2, 3, img, &st), MOEDIT_OK, "%s", moedit_last_error());
    int w, h, c;
    uint8_t *pix = stbi_load(path, &w, &h, &c, 0);
    cr_assert_not_null(pix);
    cr_assert_eq(w, 2 * 3 + 3);
    cr_assert_eq(h, 2 + 2);
    cr_assert_eq(c, 3);
    for (int k = 0; k < 2; k++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++)
                for (int ch = 0; ch < 3; ch++) {
                    uint8_t got = pix[((1 + y) * w + 1 + k * 4 + x) * 3 + ch];
                    cr_assert_eq(got, me_to_u8(img[((k * 3 + ch) * 2 + y) * 3 + x]));
                }
    cr_assert_eq(pix[0], 0);   /* padding is black */
    stbi_image_free(pix);
    free(img);
}

Test(image, grayscale_samples_with_class_names, .init = make_tmp, .fini = remove_tmp)
{
    float *img = two_images(1);
    int64_t labels[2] = {7, 3};
    cr_assert_eq(me_write_sample_pngs(tmpdir, 5, 2, 1, 2, 3, img, labels), MOEDIT_OK, "%s", moedit_last_error());
    char path[128];
    snprintf(path, sizeof path, "%s/0006_class3.png", tmpdir);
    int w, h, c;
    uint8_t *pix = stbi_load(path, &w, &h, &c, 0);
    cr_assert_not_null(pix, "%s missing", path);
    cr_assert_eq(w, 3);
    cr_assert_eq(h, 2);
    cr_assert_eq(c, 1);
    for (int i = 0; i < 6; i++) cr_assert_eq(pix[i], me_to_u8(img[6 + i]));
    stbi_image_free(pix);
    snprintf(path, sizeof path, "%s/0005_class7.png", tmpdir);
    cr_assert_eq(access(path, F_OK), 0);
    free(img);
}

Test(image, captions_make_room_under_tiles)
{
    float img[64 * 64];
    for (int i = 0; i < 64 * 64; i++) img[i] = -1.0f;   /* black tile: any light pixel is text */
    const char *caps[1] = {"Sneaker"};
    me_grid_style st = {.pad = 2, .captions = caps};
    uint8_t *pix;
    int w, h;
    cr_assert_eq(me_grid_build(1, 1, 64, 64, img, &st, &pix, &w, &h), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(w, 68);
    cr_assert_gt(h, 68, "a caption strip");
    int lit = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) lit += pix[y * w + x] > 128;
    cr_assert_gt(lit, 10, "caption strip has no text");
    for (int y = 0; y < 66; y++)
        for (int x = 0; x < w; x++) cr_assert_eq(pix[y * w + x], 0, "text above the strip at %d,%d", x, y);
    free(pix);
}

/* Tiles magnified 4 times, nearest neighbour, captions cut to the tile's
   width: no caption pixel outside its own tile's columns. */
Test(image, magnified_tiles_and_cut_captions)
{
    float *img = two_images(1);   /* two 2 x 3 gray images */
    const char *caps[2] = {"a very long class name that cannot fit", "Bag"};
    me_grid_style st = {.cols = 2, .pad = 2, .captions = caps, .scale = 4};
    uint8_t *pix;
    int w, h;
    cr_assert_eq(me_grid_build(2, 1, 2, 3, img, &st, &pix, &w, &h), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(w, 2 + 2 * (12 + 2), "two 12-pixel tiles");
    for (int k = 0; k < 2; k++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 12; x++)
                cr_assert_eq(pix[(2 + y) * w + 2 + k * 14 + x], me_to_u8(img[k * 6 + (y / 4) * 3 + x / 4]),
                             "tile %d pixel %d,%d", k, x, y);
    for (int y = 10; y < h; y++)
        for (int x = 0; x < w; x++) {
            int in_tile = (x >= 2 && x < 14) || (x >= 16 && x < 28);
            cr_assert(in_tile || pix[y * w + x] == 0, "caption spills to %d,%d", x, y);
        }
    free(pix);
    free(img);
    cr_assert_eq(me_grid_auto_scale(32), 4);
    cr_assert_eq(me_grid_auto_scale(100), 2);
    cr_assert_eq(me_grid_auto_scale(128), 1);
    cr_assert_eq(me_grid_auto_scale(256), 1);
}

Test(image, bad_channel_counts_and_paths)
{
    float img[2 * 4] = {0};
    cr_assert_eq(me_grid_write_png("/tmp/never.png", 1, 2, 2, 2, img, NULL), MOEDIT_EINPUT);
    cr_assert_eq(access("/tmp/never.png", F_OK), -1);
    cr_assert_eq(me_grid_write_png("/nonexistent-dir/x.png", 1, 1, 2, 2, img, NULL), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "/nonexistent-dir/x.png"));
}

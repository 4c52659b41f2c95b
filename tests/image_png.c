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
    const char *caps[1] = {"7 sneaker"};
    me_grid_style st = {.pad = 2, .captions = caps};
    uint8_t *pix;
    int w, h;
    cr_assert_eq(me_grid_build(1, 1, 64, 64, img, &st, &pix, &w, &h), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(w, 68);
    if (h == 68) {
        cr_log_warn("no font installed: captions were dropped");
    } else {
        int lit = 0;
        for (int y = 66; y < h; y++)
            for (int x = 0; x < w; x++) lit += pix[y * w + x] > 128;
        cr_assert_gt(lit, 10, "caption strip has no text");
    }
    free(pix);
}

Test(image, bad_channel_counts_and_paths)
{
    float img[2 * 4] = {0};
    cr_assert_eq(me_grid_write_png("/tmp/never.png", 1, 2, 2, 2, img, NULL), MOEDIT_EINPUT);
    cr_assert_eq(access("/tmp/never.png", F_OK), -1);
    cr_assert_eq(me_grid_write_png("/nonexistent-dir/x.png", 1, 1, 2, 2, img, NULL), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "/nonexistent-dir/x.png"));
}

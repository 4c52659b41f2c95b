/* images.h — an .npz batch of images as the Inception commands read it
   (fid, bench --inception; cli/images.c): arr_0 uint8 [N, H, W, C] with
   C 1 or 3, or [N, H, W], at least two images, sides up to 8192. */
#ifndef MOEDIT_CLI_IMAGES_H
#define MOEDIT_CLI_IMAGES_H

#include "weights/npy.h"

typedef struct {
    me_npz z;
    me_array img;
    int n, h, w, c;
} cli_images;

/* Whether arr_0 of `path` is laid out as such images, of any count: uint8,
   [N, H, W, C] with C 1 or 3, or [N, H, W], sides 1 to 8192 — the one rule
   for every command that reads or merges image batches. MOEDIT_OK with
   *channels set (channels may be NULL), or MOEDIT_EINPUT with the reason
   recorded. */
int cli_images_layout(const char *path, const me_array *a, int *channels);

/* MOEDIT_OK, or an error code with the reason recorded (me_fail);
   cli_images_close releases what was opened either way. */
int cli_images_open(const char *path, cli_images *b);
void cli_images_close(cli_images *b);

#endif

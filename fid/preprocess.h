/* preprocess.h — the pieces of the ADM evaluator's Inception graph that
   pytorch-fid's port does not have: TF1's legacy bilinear resize and the
   sFID tap's layout. Internal to the fid module. */
#ifndef MOEDIT_FID_PREPROCESS_H
#define MOEDIT_FID_PREPROCESS_H

/* tf.compat.v1.image.resize_bilinear(align_corners=False) before TF 2's
   half_pixel_centers: output pixel (y, x) samples the input at
   (y · h/oh, x · w/ow), in float32 as TensorFlow computes it, with the
   lower/upper neighbours clamped to the image. c planes [c, h, w] →
   [c, oh, ow]. */
void me_resize_bilinear_tf1(int c, int h, int w, int oh, int ow, const float *x, float *y);

/* The first `keep` channels of a CHW activation [*, plane] as (h, w, c)
   rows: out[p · keep + ch] = x[ch · plane + p] (TF tensors are NHWC). */
void me_spatial_tap(const float *x, int plane, int keep, float *out);

#endif

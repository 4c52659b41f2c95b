/* inception.h — the FID Inception network of pytorch-fid (InceptionV3 with
   FIDInceptionA/C/E_1/E_2, the TensorFlow 2015-12-05 graph), in float32.

     me_inception *net;
     if (me_inception_load("pt_inception-2015-12-05-6726825d.pth", &net)) ...
     me_inception_forward_u8(net, n, 64, 64, 3, pixels, feats, logits);
     me_inception_free(net);

   Images are resized to 299×299 (bilinear, align_corners=False) from
   [0, 1], scaled to [-1, 1], run through Conv2d_1a_3x3 … Mixed_7c and
   averaged into 2048 pool3 features; logits are fc(features), 1008 classes.
   Every BatchNorm (eps 1e-3) is folded into its convolution at load, so the
   network holds its own float32 copy of the weights (~95 MB) and the
   registry may be freed afterwards. Working buffers (~25 MB per thread) are
   allocated at load. A batch runs one image per thread; a single image runs
   on all threads (its features may then differ in the last float bit or so).
   A network is used by one caller at a time. */
#ifndef MOEDIT_INCEPTION_H
#define MOEDIT_INCEPTION_H

#include <stdint.h>
#include "weights/tensors.h"

#define ME_INCEPTION_DIM 2048
#define ME_INCEPTION_CLASSES 1008
#define ME_INCEPTION_SIZE 299
/* sFID's features: the first 7 channels of Mixed_6d.branch1x1 (TF
   mixed_6/conv) at 17×17, in (h, w, c) order. */
#define ME_INCEPTION_SPATIAL (17 * 17 * 7)

/* How uint8 pixels become the network's 299×299 input.
   PYTORCH_FID: ToTensor (/255), bilinear with half-pixel centres
     (F.interpolate, align_corners=False), 2x − 1 — pytorch-fid.
   ADM: TF1's legacy ResizeBilinear of the raw 0…255 values (source =
     dst · in/out, no half-pixel centres), then (x − 128)/128 — the TF
     2015-12-05 graph that guided-diffusion's evaluator runs. */
typedef enum { ME_PREPROCESS_PYTORCH_FID = 0, ME_PREPROCESS_ADM = 1 } me_preprocess;

typedef struct me_inception me_inception;

/* Any file me_tensors_open reads, with pt_inception's key names
   (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_mean, …, fc.weight). */
int me_inception_load(const char *path, me_inception **out);
/* The same from a registry the caller keeps ownership of. */
int me_inception_from_tensors(me_tensors *ts, me_inception **out);
void me_inception_free(me_inception *net);
/* The weights by content (me_tensors_digest of the registry it was made
   from): feature files carry it, so features of two networks never mix. */
uint32_t me_inception_digest(const me_inception *net);

/* n images, uint8 HWC [n, h, w, c] with c = 1 (replicated to RGB) or 3.
   features [n, 2048]; logits [n, 1008] or NULL. */
int me_inception_forward_u8(me_inception *net, int n, int h, int w, int c, const uint8_t *hwc,
                            float *features, float *logits);
/* The same with a choice of preprocessing and the sFID tap: pool3 [n, 2048],
   spatial [n, ME_INCEPTION_SPATIAL] (or NULL), logits [n, 1008] with the fc
   bias (or NULL). */
int me_inception_forward_u8_taps(me_inception *net, me_preprocess prep, int n, int h, int w, int c,
                                 const uint8_t *hwc, float *features, float *spatial, float *logits);
/* fc.weight [1008, 2048], for logits without the bias (ADM's Inception Score). */
const float *me_inception_fc_weight(const me_inception *net);
/* FLOPs of one image's features and logits (the convolutions' and fc's
   multiply-adds ×2, at 299×299 whatever the input size; the resize, pools,
   biases and ReLUs are not counted): ~11.4 GFLOP, as PyTorch's module hooks
   count it (tools/bench_inception_torch.py). */
double me_inception_flops(const me_inception *net);
/* The same, counting what is multiplied: the Winograd layers' products
   (op_winograd_flops) instead of their direct count. */
double me_inception_flops_multiplied(const me_inception *net);
/* n images, float NCHW [n, 3, h, w] in [0, 1]. */
int me_inception_forward_f32(me_inception *net, int n, int h, int w, const float *chw,
                             float *features, float *logits);

#endif

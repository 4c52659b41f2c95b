/* The FID Inception against PyTorch (tools/inception_reference.py, fixtures
   from tools/make_fid_fixtures.py).

   The real pt_inception weights are 95 MB, so the network is filled with the
   counter-based weights both sides compute from the tensor names of
   manifest.txt (the state-dict keys and shapes of the reference module,
   which mirrors pytorch-fid's key layout); the registry is built in memory.
   The .pth path itself (me_inception_load → torch zip reader → key names) is
   checked on conv1a_only.pth, a real torch.save file holding only
   Conv2d_1a_3x3: its tensors must load under the manifest's names and
   shapes, and the load must then stop at the first missing key. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fid/inception.h"
#include "ops/conv_winograd.h"
#include "tests/fid_weights.h"
#include "tests/testutil.h"
#include "weights/npy.h"

static float *npy_f32(const char *name, int64_t *numel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fid/%s", FIXTURES, name);
    return tu_npy_f32(path, NULL, NULL, numel);
}

/* max |got - want| over max |want|: the relative error of the whole vector. */
static double rel_error(const float *got, const float *want, int64_t n)
{
    double ref, err = tu_max_error(got, want, (size_t)n, &ref);
    return err / ref;
}

/* arr_0 of a fixture npz through the network. */
static void features_of(me_inception *net, const char *npz, float *feats, float *logits, int *count)
{
    char path[512];
    me_npz z;
    me_array a;
    snprintf(path, sizeof path, "%s/fid/%s", FIXTURES, npz);
    cr_assert_eq(me_npz_open(path, &z), 0, "%s", moedit_last_error());
    cr_assert_eq(me_npz_get(&z, "arr_0", &a), 0, "%s", moedit_last_error());
    cr_assert_eq(a.dtype, ME_U8);
    cr_assert_eq(a.ndim, 4);
    *count = (int)a.shape[0];
    cr_assert_eq(me_inception_forward_u8(net, (int)a.shape[0], (int)a.shape[1], (int)a.shape[2],
                                         (int)a.shape[3], a.data, feats, logits), 0, "%s", moedit_last_error());
    me_array_free(&a);
    me_npz_close(&z);
}

Test(fid_inception, features_and_logits_match_pytorch, .timeout = 600)
{
    me_tensors *ts = random_weights(0);
    me_inception *net;
    cr_assert_eq(me_inception_from_tensors(ts, &net), 0, "%s", moedit_last_error());
    me_tensors_free(ts);   /* the network keeps its own (folded) copy */

    float feats[4 * ME_INCEPTION_DIM], logits[4 * ME_INCEPTION_CLASSES];
    int n;
    int64_t len;
    features_of(net, "images_a.npz", feats, logits, &n);
    cr_assert_eq(n, 4);
    float *want = npy_f32("features_a.npy", &len);
    cr_assert_eq(len, 4 * ME_INCEPTION_DIM);
    double e = rel_error(feats, want, len);
    cr_log_info("features_a: relative error %.3g", e);
    cr_expect_lt(e, 1e-3, "features_a: relative error %g", e);
    free(want);
    want = npy_f32("logits_a.npy", &len);
    e = rel_error(logits, want, len);
    cr_log_info("logits_a: relative error %.3g", e);
    cr_expect_lt(e, 1e-3, "logits_a: relative error %g", e);
    free(want);

    /* grayscale [3, 20, 28, 1]: replicated to RGB, non-square resize */
    features_of(net, "images_b.npz", feats, NULL, &n);
    cr_assert_eq(n, 3);
    want = npy_f32("features_b.npy", &len);
    e = rel_error(feats, want, len);
    cr_log_info("features_b: relative error %.3g", e);
    cr_expect_lt(e, 1e-3, "features_b: relative error %g", e);
    free(want);
    me_inception_free(net);
}

Test(fid_inception, pth_keys_load_until_the_first_missing_one)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fid/conv1a_only.pth", FIXTURES);
    me_tensors *ts;
    cr_assert_eq(me_tensors_open(path, &ts), 0, "%s", moedit_last_error());
    static manifest_row rows[600];
    read_manifest(rows, 600);
    for (int t = 0; t < 5; t++) {   /* Conv2d_1a_3x3: conv.weight + 4 bn tensors */
        const float *v;
        cr_assert_eq(me_tensors_f32(ts, rows[t].name, rows[t].ndim, rows[t].shape, &v), 0, "%s",
                     moedit_last_error());
    }
    me_tensors_free(ts);
    me_inception *net = (me_inception *)1;
    cr_assert_eq(me_inception_load(path, &net), MOEDIT_EINPUT);
    cr_assert_null(net);
    cr_assert(strstr(moedit_last_error(), "Conv2d_2a_3x3.conv.weight"), "message: %s", moedit_last_error());
    const char *named = strstr(moedit_last_error(), "conv1a_only.pth");
    cr_assert(named, "message: %s", moedit_last_error());
    cr_expect_null(strstr(named + 1, "conv1a_only.pth"), "the file named twice: %s", moedit_last_error());
}

Test(fid_inception, bad_channel_count_is_refused)
{
    me_tensors *ts = random_weights(1);
    me_inception *net;
    cr_assert_eq(me_inception_from_tensors(ts, &net), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    uint8_t px[2 * 2 * 4] = {0};
    float f[ME_INCEPTION_DIM];
    cr_assert_eq(me_inception_forward_u8(net, 1, 2, 2, 4, px, f, NULL), MOEDIT_EINPUT);
    me_inception_free(net);
}

/* A value of a tensor of the in-memory registry. */
static float *value(me_tensors *ts, const char *name)
{
    const me_tensor *t = me_tensors_find(ts, name);
    cr_assert_not_null(t, "no %s", name);
    return (float *)t->data;
}

/* Corrupt but finite batch norms (the reader refuses NaN and inf itself):
   a negative running_var, which made every feature after it NaN, and a
   scale that folds the convolution past float's range. */
Test(fid_inception, corrupt_batch_norms_are_refused_at_load)
{
    me_tensors *ts = random_weights(1);
    me_inception *net;
    value(ts, "Mixed_6b.branch7x7_2.bn.running_var")[5] = -0.5f;
    cr_assert_eq(me_inception_from_tensors(ts, &net), MOEDIT_EINPUT);
    cr_assert_null(net);
    const char *e = moedit_last_error();
    cr_expect(strstr(e, "random-inception") && strstr(e, "Mixed_6b.branch7x7_2.bn.running_var") &&
              strstr(e, "negative"), "%s", e);
    me_tensors_free(ts);

    ts = random_weights(1);
    value(ts, "Conv2d_2a_3x3.bn.weight")[3] = 1e10f;
    value(ts, "Conv2d_2a_3x3.conv.weight")[3 * 32 * 9] = 1e30f;
    cr_assert_eq(me_inception_from_tensors(ts, &net), MOEDIT_EINPUT);
    cr_expect(strstr(moedit_last_error(), "Conv2d_2a_3x3") && strstr(moedit_last_error(), "overflows"), "%s",
              moedit_last_error());
    me_tensors_free(ts);
}

/* `moedit bench --inception` divides by this count; PyTorch's, set beside it
   in scripts/bench.sh, comes from forward hooks on every Conv2d and Linear
   (tools/bench_inception_torch.py count_gflop, summed as an integer:
   11426464960 for one 256² image, resized to 299² like any other size).
   The branch heads loaded as one convolution and the branch_pool
   convolution moved before its pool must count as PyTorch's modules do. */
Test(fid_inception, flops_are_pytorchs_count)
{
    me_tensors *ts = random_weights(1);
    me_inception *net;
    cr_assert_eq(me_inception_from_tensors(ts, &net), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    cr_expect_eq(me_inception_flops(net), 11426464960.0, "%.0f", me_inception_flops(net));
    me_inception_free(net);
}

/* What is multiplied where the own kernels run Winograd (fid/inception.c):
   from PyTorch's count, Conv2d_4a (71², 80 → 192) and the 35² 3×3 layers
   (64 → 96 in Mixed_5b–5d and 6a, 96 → 96 in 5b–5d) at 36 products per
   4×4 block (18² and 9² blocks) instead of 9 per pixel, and the 17² 1×7
   and 7×1 layers (Σ cin·cout = 737 280 over Mixed_6b–7a) at 8 per 2-pixel
   block (17 × 9 blocks) instead of 7 per pixel:
   11 426 464 960 − (1 393 735 680 − 358 318 080) − 4 (135 475 200 − 35 831 808)
   − 3 (203 212 800 − 53 747 712) − 737 280 · (2 · 7 · 289 − 2 · 8 · 153)
   = 8 365 905 088. Elsewhere (OpenBLAS) PyTorch's count. */
Test(fid_inception, multiplied_flops_count_the_winograd_products)
{
    me_tensors *ts = random_weights(1);
    me_inception *net;
    cr_assert_eq(me_inception_from_tensors(ts, &net), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    op_conv_shape s = {64, 96, 3, 3, 1, 1, 1, 0};
    double want = op_winograd_ok(&s) ? 8365905088.0 : 11426464960.0;
    cr_expect_eq(me_inception_flops_multiplied(net), want, "%.0f", me_inception_flops_multiplied(net));
    me_inception_free(net);
}

/* The batch path runs the mixed blocks on chunks of images per thread; one
   image per call runs each convolution on all threads instead. Both must
   match PyTorch, and a chunk must not mix its images: each image alone
   against its row of the fixture. */
Test(fid_inception, one_image_per_call_matches_pytorch, .timeout = 600)
{
    me_tensors *ts = random_weights(0);
    me_inception *net;
    cr_assert_eq(me_inception_from_tensors(ts, &net), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    char path[512];
    me_npz z;
    me_array a;
    snprintf(path, sizeof path, "%s/fid/images_a.npz", FIXTURES);
    cr_assert_eq(me_npz_open(path, &z), 0, "%s", moedit_last_error());
    cr_assert_eq(me_npz_get(&z, "arr_0", &a), 0, "%s", moedit_last_error());
    int64_t len;
    float *want = npy_f32("features_a.npy", &len);
    int n = (int)a.shape[0], h = (int)a.shape[1], w = (int)a.shape[2], c = (int)a.shape[3];
    cr_assert_eq(len, (int64_t)n * ME_INCEPTION_DIM);
    float feat[ME_INCEPTION_DIM];
    for (int i = 0; i < n; i++) {
        cr_assert_eq(me_inception_forward_u8(net, 1, h, w, c, (const uint8_t *)a.data + (size_t)i * h * w * c, feat,
                                             NULL), 0, "%s", moedit_last_error());
        double e = rel_error(feat, want + (size_t)i * ME_INCEPTION_DIM, ME_INCEPTION_DIM);
        cr_expect_lt(e, 1e-3, "image %d alone: relative error %g", i, e);
    }
    free(want);
    me_array_free(&a);
    me_npz_close(&z);
    me_inception_free(net);
}

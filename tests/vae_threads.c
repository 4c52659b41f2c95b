/* A VAE decoder used again after the thread count was raised must resize
   its per-thread working buffers (the sanitizer build catches an overrun),
   and decode the same images. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include "moedit.h"

Test(vae, more_threads_after_first_decode)
{
    moedit_vae *v;
    cr_assert_eq(moedit_vae_load(MOEDIT_SOURCE_DIR "/models/fmnist-vae", &v), MOEDIT_OK, "%s", moedit_last_error());
    enum { N = 1, C = 4, S = 8 };
    float z[N * C * S * S], a[N * 32 * 32], b[N * 32 * 32];
    for (int i = 0; i < N * C * S * S; i++) z[i] = sinf(0.37f * (float)i);
    moedit_set_threads(1);
    cr_assert_eq(moedit_vae_decode(v, N, S, S, z, a), MOEDIT_OK);
    moedit_set_threads(8);
    cr_assert_eq(moedit_vae_decode(v, N, S, S, z, b), MOEDIT_OK);
    moedit_set_threads(0);
    /* one image on more threads: the same sums, split differently */
    for (int i = 0; i < N * 32 * 32; i++) cr_assert_float_eq(a[i], b[i], 1e-5f, "pixel %d: %g vs %g", i, a[i], b[i]);
    moedit_vae_free(v);
}

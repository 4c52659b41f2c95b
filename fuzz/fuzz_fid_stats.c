/* Fuzzes the reading of FID references as ADM's evaluator ships them
   (VIRTUAL_imagenet256_labeled.npz: arr_0 uint8 images, mu/sigma and the
   spatial mu_s/sigma_s) through the npz reader: statistics of any claimed
   dimension, image arrays of any shape, stored or deflated, CRC-32 checked
   on even-sized inputs. Seeds: fuzz/corpus/fid_stats/. */
#include <stdint.h>
#include <stdlib.h>
#include "core/core.h"
#include "fid/fid.h"
#include "weights/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int was = me_verify_suspend((int)(size & 1));
    me_npz z;
    if (me_npz_open_memory(data, size, "fuzz.npz", &z) == MOEDIT_OK) {
        me_fid_stats s;
        if (me_fid_stats_from_npz(&z, "fuzz.npz", "mu", "sigma", &s) == MOEDIT_OK) {
            if (s.dim < 1 || !s.mu || !s.sigma) abort();
            volatile double sum = s.mu[s.dim - 1] + s.sigma[(size_t)s.dim * s.dim - 1];
            (void)sum;
            me_fid_stats_free(&s);
        }
        if (me_fid_stats_from_npz(&z, "fuzz.npz", "mu_s", "sigma_s", &s) == MOEDIT_OK) me_fid_stats_free(&s);
        me_array a;
        if (me_npz_get(&z, "arr_0", &a) == MOEDIT_OK) {
            if (a.dtype == ME_U8 && a.ndim == 4 && a.numel > 0) {
                volatile uint8_t last = ((const uint8_t *)a.data)[a.numel - 1];
                (void)last;
            }
            me_array_free(&a);
        }
        me_npz_close(&z);
    }
    me_verify_suspend(was);
    return 0;
}

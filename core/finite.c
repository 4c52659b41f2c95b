/* Finding NaN and infinities in float rows (see core.h): the check the
   sampler runs after every step and the VAE after every decode, so garbage
   is reported where it starts instead of written out as an image. */
#include <stdio.h>
#include <string.h>
#include "core.h"

/* Exponent bits all ones: NaN or ±inf. Integer bit tests, so the loop
   vectorises and is not affected by floating-point flags. */
static int row_bad(const float *x, size_t len)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}

int me_non_finite_rows(const float *x, int n, size_t len, char *list, size_t cap)
{
    int count = 0;
    size_t used = 0;
    if (cap) list[0] = 0;
    for (int r = 0; r < n; r++) {
        if (!row_bad(x + (size_t)r * len, len)) continue;
        if (used < cap) {
            int k = count < 8 ? snprintf(list + used, cap - used, "%s%d", count ? ", " : "", r)
                              : count == 8 ? snprintf(list + used, cap - used, ", …") : 0;
            if (k > 0) used += (size_t)k;
        }
        count++;
    }
    return count;
}

int me_check_step_finite(const float *x, int n, size_t len, int step, int steps, double t)
{
    char bad[96];
    int nbad = me_non_finite_rows(x, n, len, bad, sizeof bad);
    if (!nbad) return MOEDIT_OK;
    return me_fail(MOEDIT_EINPUT, "sample: non-finite values after step %d of %d (t = %g) in %d of %d rows: %s",
                   step + 1, steps, t, nbad, n, bad);
}

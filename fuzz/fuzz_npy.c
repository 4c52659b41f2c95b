/* Fuzzes the .npy parser and the .npz reader on bytes in memory.
   Seeds: fuzz/corpus/npy/. */
#include <stdint.h>
#include <stdlib.h>
#include "weights/npy.h"

static void touch(const me_array *a)
{
    if (a->numel > (1 << 20)) return;
    float *f = malloc((size_t)a->numel * sizeof *f + 1);
    if (f) me_array_to_f32(a, f);   /* reads every element */
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_array a;
    if (me_npy_parse(data, size, "fuzz.npy", &a) == MOEDIT_OK) touch(&a);
    me_npz z;
    if (me_npz_open_memory(data, size, "fuzz.npz", &z) == MOEDIT_OK) {
        for (int i = 0; i < me_npz_count(&z); i++) {
            if (me_npz_get(&z, me_npz_name(&z, i), &a) == MOEDIT_OK) {
                touch(&a);
                me_array_free(&a);
            }
        }
        me_npz_close(&z);
    }
    return 0;
}

/* libFuzzer harness for the safetensors parser: any byte string must either
   parse into tensors that lie inside the input, or fail cleanly. Every
   accepted tensor is read in full so ASan sees any out-of-bounds view. */
#include <stdint.h>
#include "weights/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_tensors *ts = me_tensors_new("fuzz");
    if (!ts) return 0;
    if (me_parse_safetensors(ts, data, size, "fuzz") == MOEDIT_OK) {
        for (int i = 0; i < me_tensors_count(ts); i++) {
            const float *f;
            me_tensors_f32(ts, me_tensors_at(ts, i)->name, -1, NULL, &f);
        }
        for (int i = 0; i < me_tensors_meta_count(ts); i++) {
            const char *k, *v;
            me_tensors_meta_at(ts, i, &k, &v);
        }
    }
    me_tensors_free(ts);
    return 0;
}

/* libFuzzer harness for the safetensors reader and writer: any byte string
   must either parse into tensors that lie inside the input, or fail cleanly.
   Every accepted tensor is read in full (so ASan sees any out-of-bounds
   view), and whatever was accepted must survive a write + re-read with the
   same tensors and metadata: the writer never produces a file the reader
   refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "weights/formats.h"

static void round_trip(const me_tensors *ts)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_safetensors_%ld.safetensors", (long)getpid());
    if (me_write_safetensors(ts, path, ME_F16) != MOEDIT_OK) {
        /* only names/metadata the reader itself would refuse, or finite
           values beyond f16's range, may fail */
        const char *e = moedit_last_error();
        if (!strstr(e, "UTF-8") && !strstr(e, "name") && !strstr(e, "does not fit in F16")) abort();
        return;
    }
    me_tensors *back;
    if (me_read_safetensors(path, &back) != MOEDIT_OK) abort();
    if (me_tensors_count(back) != me_tensors_count(ts) || me_tensors_meta_count(back) != me_tensors_meta_count(ts))
        abort();
    for (int i = 0; i < me_tensors_count(ts); i++) {
        const me_tensor *a = me_tensors_at(ts, i), *b = me_tensors_find(back, a->name);
        if (!b || b->numel != a->numel || b->ndim != a->ndim) abort();
    }
    me_tensors_free(back);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_tensors *ts = me_tensors_new("fuzz");
    if (!ts) return 0;
    if (me_parse_safetensors(ts, data, size, "fuzz") == MOEDIT_OK) {
        for (int i = 0; i < me_tensors_count(ts); i++) {
            const float *f;
            me_tensors_f32(ts, me_tensors_at(ts, i)->name, -1, NULL, &f);
        }
        round_trip(ts);
    }
    me_tensors_free(ts);
    return 0;
}

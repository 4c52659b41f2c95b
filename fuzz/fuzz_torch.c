/* Fuzzes the whole torch checkpoint loader as a user meets it: the bytes
   become a file that moedit_model_load opens (ZIP with CRC-32 verification,
   pickle, storage views → tensors, config detection, weight checks and
   packing), so every path from a .pt to a ready model is covered. Odd-sized
   inputs load with verification off, so mutations also reach the pickle and
   the model past a CRC mismatch. Seeds: fuzz/corpus/torch/ (tiny DiT,
   DiT-MoE and Switch-DiT checkpoints). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "moedit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_torch_%ld.pt", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t put = fwrite(data, 1, size, f);
    fclose(f);
    if (put != size) return 0;
    moedit_load_options opt = {.heads = 2, .no_verify = (int)(size & 1)};
    moedit_model *m;
    if (moedit_model_load(path, &opt, &m) == MOEDIT_OK) {
        const moedit_config *c = moedit_model_config(m);
        if (c->hidden <= 0 || c->depth <= 0 || c->patch <= 0 || c->input_size % c->patch) abort();
        moedit_model_free(m);
    }
    unlink(path);
    return 0;
}

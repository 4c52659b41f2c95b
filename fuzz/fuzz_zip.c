/* Fuzzes the ZIP reader and, through it, the whole torch.save loader (zip +
   pickle + tensor views) on an archive in memory. Seeds: fuzz/corpus/zip/. */
#include <stdint.h>
#include <stdlib.h>
#include "weights/formats.h"
#include "weights/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_zip z;
    if (me_zip_open_memory(&z, data, size, "fuzz.zip") == MOEDIT_OK) {
        for (int i = 0; i < z.count; i++) {
            const me_zip_entry *e = &z.entries[i];
            const uint8_t *p;
            uint64_t n;
            if (me_zip_find(&z, e->name) == NULL) abort();   /* every entry is findable */
            if (me_zip_data(&z, e, &p, &n) == MOEDIT_OK && (p < data || n > size || p + n > data + size))
                abort();
            if (e->size <= (1u << 20) && e->comp_size <= size) {
                void *buf = malloc(e->size ? e->size : 1);
                if (buf) me_zip_extract(&z, e, buf);
                free(buf);
            }
        }
        me_zip_find_suffix(&z, "data.pkl");
        me_zip_close(&z);
    }
    me_tensors *ts = me_tensors_new("fuzz.pt");
    if (ts && me_parse_torch(ts, data, size, "fuzz.pt") == MOEDIT_OK) {
        for (int i = 0; i < me_tensors_count(ts); i++) {
            const float *f;
            me_tensors_f32(ts, me_tensors_at(ts, i)->name, -1, NULL, &f);   /* touches every byte */
        }
    }
    me_tensors_free(ts);
    return 0;
}

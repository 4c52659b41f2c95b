/* Fuzzes the reading of eval's feature files (eval --features-out and
   --stats-out: pool, spatial and logits rows, range, source, inception,
   preprocess, and statistics beside them) through the npz reader, and the
   join of a file's features with themselves as two parts of one batch:
   rows of any claimed count and width, members of any dtype and shape,
   stored or deflated, CRC-32 checked on even-sized inputs. Seeds:
   fuzz/corpus/features/ (tools/make_feature_fuzz_seeds.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "fid/eval.h"
#include "weights/npy.h"

/* A copy of f's feature rows as a part of a batch of 2n (rows n… of it). */
static int second_half(const me_adm_file *f, me_adm_file *part)
{
    *part = (me_adm_file){.n = f->n, .first = f->n, .total = 2 * f->n, .prep = f->prep, .source = f->source,
                          .inception = f->inception};
    size_t rows = (size_t)(f->n ? f->n : 1);
    part->pool = me_alloc(sizeof(float) * rows * ME_INCEPTION_DIM);
    part->spatial = me_alloc(sizeof(float) * rows * ME_INCEPTION_SPATIAL);
    part->logits = me_alloc(sizeof(float) * rows * ME_INCEPTION_CLASSES);
    if (!part->pool || !part->spatial || !part->logits) return 1;
    memcpy(part->pool, f->pool, sizeof(float) * (size_t)f->n * ME_INCEPTION_DIM);
    memcpy(part->spatial, f->spatial, sizeof(float) * (size_t)f->n * ME_INCEPTION_SPATIAL);
    memcpy(part->logits, f->logits, sizeof(float) * (size_t)f->n * ME_INCEPTION_CLASSES);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int was = me_verify_suspend((int)(size & 1));
    me_npz z;
    if (me_npz_open_memory(data, size, "fuzz.npz", &z) == MOEDIT_OK) {
        me_adm_file parts[2];
        if (me_adm_file_read(&z, "fuzz.npz", &parts[0]) == MOEDIT_OK) {
            const me_adm_file *f = &parts[0];
            if (f->n < 0 || f->first < 0 || f->total < f->first + f->n) abort();
            if (f->pool && f->n > 0) {
                volatile float last = f->pool[(size_t)f->n * ME_INCEPTION_DIM - 1];
                (void)last;
            }
            if (f->pool && f->spatial && f->logits && f->first == 0 && f->n == f->total) {
                const int64_t n = f->n;   /* the join consumes the parts */
                parts[0].total = 2 * n;
                char *names[2] = {"a.npz", "b.npz"};
                me_adm_file joined;
                if (second_half(f, &parts[1])) abort();
                if (me_adm_file_join(2, parts, names, &joined) == MOEDIT_OK) {
                    if (joined.n != 2 * n) abort();
                    me_adm_file_free(&joined);
                }
            } else {
                me_adm_file_free(&parts[0]);
            }
        }
        me_npz_close(&z);
    }
    me_verify_suspend(was);
    return 0;
}

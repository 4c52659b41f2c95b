/* Fuzzes the safe pickle machine on raw bytes and walks what it returns
   (bounded: results may be cyclic). Seeds: fuzz/corpus/pickle/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "weights/pickle.h"

static size_t walk(const me_pk_value *v, int depth)
{
    if (depth > 8) return 0;
    size_t n = 1;
    switch (v->kind) {
    case ME_PK_TUPLE: case ME_PK_LIST: case ME_PK_DICT:
        for (size_t i = 0; i < v->u.seq.n; i++) n += walk(v->u.seq.items[i], depth + 1);
        break;
    case ME_PK_STR: case ME_PK_BYTES:
        if (strlen(v->u.str.s) > v->u.str.len) abort();   /* NUL-terminated within len */
        break;
    case ME_PK_TENSOR: {
        const me_pk_tensor *t = v->u.tensor;
        if (t->ndim < 0 || t->ndim > ME_MAX_DIMS || t->offset < 0 || t->storage->numel < 0) abort();
        break;
    }
    default:
        break;
    }
    if (v->state) n += walk(v->state, depth + 1);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_pickle *p;
    if (me_pickle_run(data, size, "fuzz.pkl", &p) == MOEDIT_OK) {
        walk(me_pickle_result(p), 0);
        me_pk_dict_get(me_pickle_result(p), "ema");
        me_pickle_free(p);
    }
    return 0;
}

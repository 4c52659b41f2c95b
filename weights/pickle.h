/* pickle.h — a safe interpreter for the pickles inside torch.save archives.

   A stack machine for the opcodes Python's pickler emits up to protocol 5
   (torch writes protocol 2) that never imports or calls anything. The only
   globals it gives meaning to are torch's storage types, the tensor rebuild
   functions (torch._utils._rebuild_tensor_v2, _rebuild_parameter,
   _rebuild_parameter_with_state, torch._tensor._rebuild_from_type_v2) and
   collections.OrderedDict. Any other global (argparse.Namespace, optimizer
   classes, os.system …) is an inert placeholder: calling, building or
   filling it gives another placeholder, so training checkpoints load while
   nothing from the file is ever executed.

   Persistent ids ('storage', StorageType, key, location, numel) (BINPERSID)
   become storage values; _rebuild_tensor_v2 calls become tensor values with
   their dtype, storage key, offset, shape and strides, checked to lie
   inside the storage's numel. Resolving keys to bytes is the caller's job.

   Memory is bounded by a multiple of the input size; malformed input fails
   with MOEDIT_EINPUT: "<what>: pickle: unknown opcode 0x.. at offset N". */
#ifndef MOEDIT_PICKLE_H
#define MOEDIT_PICKLE_H

#include <stddef.h>
#include <stdint.h>
#include "weights/tensors.h"

typedef enum {
    ME_PK_NONE, ME_PK_BOOL, ME_PK_INT, ME_PK_FLOAT, ME_PK_STR, ME_PK_BYTES,
    ME_PK_TUPLE, ME_PK_LIST, ME_PK_DICT,
    ME_PK_GLOBAL,     /* a class or function reference (not called) */
    ME_PK_OBJECT,     /* inert placeholder for anything that would need code */
    ME_PK_STORAGE, ME_PK_TENSOR,
} me_pk_kind;

typedef struct me_pk_value me_pk_value;

typedef struct {
    me_dtype dtype;
    const char *key;        /* entry "data/<key>" of the archive */
    const char *location;   /* "cpu", "cuda:0", … */
    int64_t numel;          /* elements (bytes for untyped storages) */
} me_pk_storage;

typedef struct {
    const me_pk_storage *storage;
    int64_t offset;         /* in elements */
    int ndim;
    int64_t shape[ME_MAX_DIMS], stride[ME_MAX_DIMS];
    int64_t numel;
} me_pk_tensor;

struct me_pk_value {
    me_pk_kind kind;
    const me_pk_value *state;   /* OBJECT: what BUILD gave it (argparse.Namespace's dict), or NULL */
    union {
        int64_t i;                                          /* BOOL, INT */
        double f;                                           /* FLOAT */
        struct { const char *s; size_t len; } str;          /* STR, BYTES (NUL-terminated copy) */
        struct { me_pk_value **items; size_t n, cap; } seq; /* TUPLE, LIST; DICT: key, value, key, … */
        struct { const char *module, *name; int known; } global;  /* GLOBAL, OBJECT (its origin) */
        const me_pk_storage *storage;
        const me_pk_tensor *tensor;
    } u;
};

typedef struct me_pickle me_pickle;

/* Runs the pickle in data (kept alive by the caller only during the call);
   what names it in messages. On success *out holds the result and every
   value it references until me_pickle_free. */
int me_pickle_run(const uint8_t *data, size_t size, const char *what, me_pickle **out);
const me_pk_value *me_pickle_result(const me_pickle *p);
void me_pickle_free(me_pickle *p);

/* Number of key/value pairs of a DICT, and the value of a string key (the
   last one when repeated), NULL if absent or not a dict. */
size_t me_pk_dict_len(const me_pk_value *d);
const me_pk_value *me_pk_dict_get(const me_pk_value *d, const char *key);

#endif

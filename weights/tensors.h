/* tensors.h — the tensor registry every checkpoint reader fills and every
   model reads its weights from, by name.

     me_tensors *ts;
     if (me_tensors_open("model.pt", &ts)) ...          // any supported format
     const float *w;
     if (me_tensors_f32(ts, "blocks.3.attn.qkv.weight", 2, (int64_t[]){1152, 384}, &w)) ...
       // fails with "blocks.3.attn.qkv.weight: expected [1152,384], got [1152,768]"
     me_tensors_free(ts);                                // releases mappings and copies

   Tensor data is contiguous, row-major, little-endian; it points into an
   mmap of the file when the file's layout allows, else into a buffer the
   registry owns. Float32 views of F16/BF16/F64 tensors are converted on first
   request and kept. */
#ifndef MOEDIT_TENSORS_H
#define MOEDIT_TENSORS_H

#include <stdint.h>
#include "core/core.h"

typedef enum {
    ME_F32 = 0, ME_F16, ME_BF16, ME_F64, ME_I64, ME_I32, ME_I16, ME_I8, ME_U8, ME_BOOL,
    ME_DTYPE_COUNT
} me_dtype;

size_t me_dtype_size(me_dtype t);
const char *me_dtype_name(me_dtype t);          /* safetensors spelling: "F32", "BF16", … */
int me_dtype_from_name(const char *name, me_dtype *t);

#define ME_MAX_DIMS 8

typedef struct {
    char *name;
    me_dtype dtype;
    int ndim;
    int64_t shape[ME_MAX_DIMS];
    int64_t numel;
    const void *data;
    float *f32;          /* converted copy, made by me_tensors_f32 when needed */
    int finite;          /* 1: checked to hold no NaN or infinity */
} me_tensor;

typedef struct me_tensors me_tensors;

/* Opens a torch zip checkpoint, a safetensors file or a diffusers folder. */
int me_tensors_open(const char *path, me_tensors **out);
void me_tensors_free(me_tensors *ts);

/* For readers: an empty registry, tensors added by reference to memory the
   registry owns (me_tensors_own*, kept until me_tensors_free). */
me_tensors *me_tensors_new(const char *source);
int me_tensors_add(me_tensors *ts, const char *name, me_dtype dtype, int ndim,
                   const int64_t *shape, const void *data);
void *me_tensors_own_alloc(me_tensors *ts, size_t bytes);      /* NULL + error on failure */
int me_tensors_own_file(me_tensors *ts, me_file *f);           /* takes the mapping */
int me_tensors_set_meta(me_tensors *ts, const char *key, const char *value);

const char *me_tensors_source(const me_tensors *ts);           /* path, for messages */
int me_tensors_count(const me_tensors *ts);
const me_tensor *me_tensors_at(const me_tensors *ts, int i);   /* in insertion order */
const me_tensor *me_tensors_find(const me_tensors *ts, const char *name);
int64_t me_tensors_param_count(const me_tensors *ts);
const char *me_tensors_meta(const me_tensors *ts, const char *key);  /* NULL if absent */
int me_tensors_meta_count(const me_tensors *ts);
void me_tensors_meta_at(const me_tensors *ts, int i, const char **key, const char **value);

/* CRC-32 over every tensor's name, type, shape and bytes as stored, in
   insertion order: the weights' identity, the same on any machine. Reads
   all the data once (on me_threads() threads) and keeps the value. */
int me_tensors_digest(me_tensors *ts, uint32_t *out);

/* Float32 data of a tensor after checking its shape; a -1 in shape matches
   any size. ndim < 0 skips the shape check. Missing tensor or wrong shape:
   MOEDIT_EINPUT naming the tensor. */
int me_tensors_f32(me_tensors *ts, const char *name, int ndim, const int64_t *shape,
                   const float **out);
/* The same for an optional tensor: *out = NULL and MOEDIT_OK when absent. */
int me_tensors_f32_opt(me_tensors *ts, const char *name, int ndim, const int64_t *shape,
                       const float **out);

/* Fails with MOEDIT_EINPUT ("<source>: tensor <name> holds nan at index i")
   when a float tensor holds a NaN or an infinity: a model never runs on
   weights that can only produce garbage. me_tensors_f32 checks every tensor
   it returns; the result is remembered in t->finite. */
int me_tensor_check_finite(me_tensor *t, const char *source);

/* Converts any dtype to float32 (integers by value). */
void me_tensor_to_f32(const me_tensor *t, float *dst);

/* "[1152,384]" into buf. */
const char *me_shape_str(int ndim, const int64_t *shape, char *buf, size_t size);

#endif

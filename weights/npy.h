/* npy.h — NumPy .npy arrays and .npz archives, read and written.

   An me_array is a dtype, a shape and contiguous row-major little-endian
   data, either a view (into a mapping or another buffer) or owned:

     me_array x;
     if (me_npy_read("x.npy", &x)) ...               // maps the file
     float *f = malloc(x.numel * sizeof *f);  me_array_to_f32(&x, f);
     me_array_free(&x);

     me_npz z;                                        // np.savez / savez_compressed
     me_npz_open("samples.npz", &z);
     me_npz_get(&z, "arr_0", &imgs);                  // valid until me_npz_close
     me_npz_close(&z);

   Writing a 10 GB sample batch without holding it: the npz member's size
   follows from its shape, so it streams through the zip writer:

     me_zip_writer w;
     me_zip_writer_open(&w, "out.npz");
     me_npz_begin(&w, "arr_0", ME_U8, 4, (int64_t[]){n, 256, 256, 3});
     for (…) me_zip_writer_write(&w, batch, bytes);
     me_zip_writer_end(&w);
     me_npz_add(&w, "arr_1", ME_I64, 1, (int64_t[]){n}, labels);
     me_zip_writer_finish(&w);

   Headers: format 1.0/2.0/3.0; dtypes <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1;
   fortran_order must be False. Bad files fail with MOEDIT_EINPUT naming the
   file and the problem. */
#ifndef MOEDIT_NPY_H
#define MOEDIT_NPY_H

#include <stdint.h>
#include "weights/tensors.h"
#include "weights/zip.h"

typedef struct {
    me_dtype dtype;
    int ndim;
    int64_t shape[ME_MAX_DIMS];
    int64_t numel;
    const void *data;     /* aligned to the element size */
    void *owned;          /* heap buffer data lives in, or NULL */
    me_file file;         /* mapping data lives in (me_npy_read), or empty */
} me_array;

void me_array_free(me_array *a);
/* Converts to float32 / int64 (floats truncated toward zero). */
void me_array_to_f32(const me_array *a, float *dst);
void me_array_to_i64(const me_array *a, int64_t *dst);

/* Parses an .npy image in memory; out->data points into buf (possibly
   unaligned: me_npy_read and me_npz_get realign). */
int me_npy_parse(const uint8_t *buf, size_t size, const char *what, me_array *out);
/* Only the header of buf (which may hold just the start of the array): dtype,
   shape, numel and the offset of the data; out->data stays NULL. */
int me_npy_parse_header(const uint8_t *buf, size_t size, const char *what, me_array *out, size_t *data_offset);
int me_npy_read(const char *path, me_array *out);
/* Atomic write (temporary file + rename). */
int me_npy_write(const char *path, me_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* The header (magic to '\n', a multiple of 64 bytes) into buf; its length,
   or 0 with an error when the dtype cannot be written or buf is too small. */
size_t me_npy_header(me_dtype dtype, int ndim, const int64_t *shape, char *buf, size_t cap);

typedef struct {
    me_file file;
    me_zip zip;
} me_npz;

int me_npz_open(const char *path, me_npz *z);
int me_npz_open_memory(const uint8_t *data, size_t size, const char *what, me_npz *z);
void me_npz_close(me_npz *z);
int me_npz_count(const me_npz *z);
const char *me_npz_name(const me_npz *z, int i);   /* "arr_0.npy" */
/* Member "name" or "name.npy" (stored or deflated). The array is a view into
   the archive when possible; free it with me_array_free before me_npz_close. */
int me_npz_get(me_npz *z, const char *name, me_array *out);

/* Starts member name (".npy" appended when missing) and writes its header;
   then exactly numel * element-size bytes via me_zip_writer_write, then
   me_zip_writer_end. */
int me_npz_begin(me_zip_writer *w, const char *name, me_dtype dtype, int ndim, const int64_t *shape);
int me_npz_add(me_zip_writer *w, const char *name, me_dtype dtype, int ndim, const int64_t *shape,
               const void *data);

#endif

/* zip.h — the ZIP container under torch.save checkpoints and .npz files.

   Reading works on memory the caller keeps alive (usually an me_file
   mapping): the central directory is parsed once (ZIP64 included) and an
   entry's data is a pointer into that memory, so a 20 GB checkpoint is never
   copied. Only stored (method 0) entries can be mapped; me_zip_extract also
   inflates deflated ones (np.savez_compressed). Every offset and size is
   checked against the buffer; bad archives fail with MOEDIT_EINPUT and a
   message starting with the archive's name.

     me_zip z;
     if (me_zip_open_memory(&z, f.data, f.size, "model.pt")) ...
     const me_zip_entry *e = me_zip_find_suffix(&z, "data.pkl");   // "archive/data.pkl"
     const uint8_t *p; uint64_t n;
     if (!e || me_zip_data(&z, e, &p, &n)) ...
     me_zip_close(&z);

   Writing streams stored entries into a temporary file renamed on success
   (me_atomic_file). An entry's size is declared up front so its local
   header is final before the data; ZIP64 records are used whenever a size,
   an offset or the entry count needs them (or always, with force_zip64):

     me_zip_writer w;
     me_zip_writer_open(&w, "out.npz");
     me_zip_writer_begin(&w, "arr_0.npy", total_bytes);
     me_zip_writer_write(&w, chunk, n);  ...  me_zip_writer_end(&w);
     me_zip_writer_finish(&w);           // or me_zip_writer_abort(&w)
   After any failure the writer only accepts abort (finish aborts too). */
#ifndef MOEDIT_ZIP_H
#define MOEDIT_ZIP_H

#include <stdint.h>
#include "core/core.h"

typedef struct {
    const char *name;        /* NUL-terminated copy */
    uint64_t size;           /* uncompressed bytes */
    uint64_t comp_size;      /* bytes stored in the archive */
    uint64_t local_offset;   /* of the local file header */
    uint32_t crc32;
    uint16_t method;         /* 0 stored, 8 deflate */
} me_zip_entry;

typedef struct {
    const uint8_t *data;
    size_t size;
    char *what;              /* name for messages */
    me_zip_entry *entries;   /* in central-directory order */
    int count;
    const me_zip_entry **sorted;   /* entries sorted by name, for lookup */
    char *names;             /* storage of every entry name */
} me_zip;

int me_zip_open_memory(me_zip *z, const uint8_t *data, size_t size, const char *what);
void me_zip_close(me_zip *z);

/* Exact name, or NULL. */
const me_zip_entry *me_zip_find(const me_zip *z, const char *name);
/* The entry named `suffix` or ending in "/suffix"; NULL when none or when
   several match (ambiguous). */
const me_zip_entry *me_zip_find_suffix(const me_zip *z, const char *suffix);

/* Pointer to a stored entry's bytes inside the archive memory (validates its
   local header). Compressed entries fail with MOEDIT_EINPUT. */
int me_zip_data(const me_zip *z, const me_zip_entry *e, const uint8_t **data, uint64_t *size);
/* Checks the CRC-32 of the stored entries list[0..n) (deflated ones are
   checked by me_zip_extract), chunks spread over threads; a mismatch fails
   with MOEDIT_EINPUT naming the archive and the entry. */
int me_zip_verify(const me_zip *z, const me_zip_entry *const *list, int n);
/* Copies (stored) or inflates (deflate) an entry into dst, which holds
   e->size bytes, and checks its CRC-32. */
int me_zip_extract(const me_zip *z, const me_zip_entry *e, void *dst);

typedef struct {
    char *name;
    uint64_t offset, size;
    uint32_t crc32;
} me_zip_written;

typedef struct {
    me_atomic_file af;
    int force_zip64;          /* set before the first entry: ZIP64 for everything */
    int failed;
    uint64_t offset;          /* bytes written so far */
    me_zip_written *entries;
    int count, cap;
    int open_entry;           /* 1 between begin and end */
    uint64_t remaining;       /* bytes the open entry still expects */
    uint32_t crc;
} me_zip_writer;

int me_zip_writer_open(me_zip_writer *w, const char *path);
int me_zip_writer_begin(me_zip_writer *w, const char *name, uint64_t size);
int me_zip_writer_write(me_zip_writer *w, const void *data, size_t n);
int me_zip_writer_end(me_zip_writer *w);
/* begin + write + end. */
int me_zip_writer_add(me_zip_writer *w, const char *name, const void *data, uint64_t size);
/* Central directory, then the rename. Aborts on any earlier failure. */
int me_zip_writer_finish(me_zip_writer *w);
void me_zip_writer_abort(me_zip_writer *w);

#endif

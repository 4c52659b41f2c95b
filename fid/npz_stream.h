/* npz_stream.h — one member of an .npz read front to back in pieces, so a
   50K × 256² sample batch (10 GB) never sits in memory: stored members are
   read with pread, deflated ones (np.savez_compressed) inflated as they go.
   The CRC-32 is checked when a member has been read whole from its start.

     me_npz_stream s;
     if (me_npz_stream_open("samples.npz", "arr_0", &s)) ...
     // s.array: dtype, ndim, shape, numel (no data)
     me_npz_stream_skip(&s, first * bytes_per_image);
     me_npz_stream_read(&s, buf, k * bytes_per_image);
     me_npz_stream_close(&s); */
#ifndef MOEDIT_NPZ_STREAM_H
#define MOEDIT_NPZ_STREAM_H

#include <stdint.h>
#include <zlib.h>
#include "weights/npy.h"

typedef struct {
    me_npz z;            /* the archive's directory (mapped, the data is not touched) */
    int fd;
    char *what;          /* "path:name" for messages */
    me_array array;      /* dtype and shape; data NULL */
    const me_zip_entry *entry;
    uint64_t pos;        /* file offset of the next stored / compressed byte */
    uint64_t comp_left;  /* compressed bytes not yet fed to zlib */
    uint64_t left;       /* data bytes not yet delivered */
    int deflate, inflating, whole;   /* whole: read from the start, nothing skipped */
    z_stream zs;
    uint8_t *in;         /* compressed input buffer */
    uint32_t crc;
} me_npz_stream;

/* Member name ("arr_0" or "arr_0.npy") of path; fails with MOEDIT_EINPUT on
   a missing member or a malformed archive or header. */
int me_npz_stream_open(const char *path, const char *name, me_npz_stream *s);
int me_npz_stream_read(me_npz_stream *s, void *dst, uint64_t bytes);
int me_npz_stream_skip(me_npz_stream *s, uint64_t bytes);
void me_npz_stream_close(me_npz_stream *s);

#endif

/* Streaming reads of one .npz member (see npz_stream.h). The zip directory
   comes from me_npz_open's mapping; the bytes themselves are read with
   pread into small buffers, so only what is being processed is resident. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/core.h"
#include "fid/npz_stream.h"

#define IN_CHUNK ((size_t)1 << 20)
#define MAX_HEADER ((size_t)1 << 16)

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static int read_at(me_npz_stream *s, void *dst, size_t n, uint64_t off)
{
    uint8_t *p = dst;
    while (n) {
        ssize_t k = pread(s->fd, p, n, (off_t)off);
        if (k <= 0) return me_fail(MOEDIT_EINPUT, "%s: read failed (%s)", s->what, k ? strerror(errno) : "truncated");
        p += k;
        off += (uint64_t)k;
        n -= (size_t)k;
    }
    return MOEDIT_OK;
}

/* Exactly n bytes of the member's uncompressed stream (header or data). */
static int pull(me_npz_stream *s, uint8_t *dst, uint64_t n)
{
    if (!s->deflate) {
        while (n) {
            size_t k = n > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)n;
            int rc = read_at(s, dst, k, s->pos);
            if (rc) return rc;
            if (s->whole) s->crc = (uint32_t)crc32(s->crc, dst, (uInt)k);
            s->pos += k;
            dst += k;
            n -= k;
        }
        return MOEDIT_OK;
    }
    while (n) {
        if (s->zs.avail_in == 0 && s->comp_left) {
            size_t k = s->comp_left < IN_CHUNK ? (size_t)s->comp_left : IN_CHUNK;
            int rc = read_at(s, s->in, k, s->pos);
            if (rc) return rc;
            s->pos += k;
            s->comp_left -= k;
            s->zs.next_in = s->in;
            s->zs.avail_in = (uInt)k;
        }
        uInt want = n > (1u << 30) ? 1u << 30 : (uInt)n;
        s->zs.next_out = dst;
        s->zs.avail_out = want;
        int ret = inflate(&s->zs, Z_NO_FLUSH);
        uInt got = want - s->zs.avail_out;
        if (s->whole) s->crc = (uint32_t)crc32(s->crc, dst, got);
        dst += got;
        n -= got;
        if (n && (ret == Z_STREAM_END || (ret != Z_OK && ret != Z_BUF_ERROR) || (got == 0 && !s->comp_left)))
            return me_fail(MOEDIT_EINPUT, "%s: corrupt or truncated deflate data", s->what);
    }
    return MOEDIT_OK;
}

void me_npz_stream_close(me_npz_stream *s)
{
    if (s->inflating) inflateEnd(&s->zs);
    if (s->fd >= 0) close(s->fd);
    me_npz_close(&s->z);
    free(s->in);
    free(s->what);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

int me_npz_stream_open(const char *path, const char *name, me_npz_stream *s)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    int rc = me_npz_open(path, &s->z);
    if (rc) return rc;
    char member[256];
    snprintf(member, sizeof member, "%s.npy", name);
    size_t wl = strlen(path) + strlen(name) + 2;
    if (!(s->what = me_alloc(wl))) {
        me_npz_stream_close(s);
        return MOEDIT_EINTERNAL;
    }
    snprintf(s->what, wl, "%s:%s", path, name);
    const me_zip_entry *e = me_zip_find(&s->z.zip, member);
    if (!e) e = me_zip_find(&s->z.zip, name);
    if (!e) {
        rc = me_fail(MOEDIT_EINPUT, "%s: no array '%s'", path, name);
        goto fail;
    }
    s->entry = e;
    /* local header: 30 bytes, then the name and extra field */
    const uint8_t *base = s->z.file.data;
    uint64_t size = s->z.file.size, lo = e->local_offset;
    if (lo > size || size - lo < 30 || rd16(base + lo) != 0x4b50 || rd16(base + lo + 2) != 0x0403) {
        rc = me_fail(MOEDIT_EINPUT, "%s: bad local zip header", s->what);
        goto fail;
    }
    uint64_t start = lo + 30 + rd16(base + lo + 26) + rd16(base + lo + 28);
    if (start > size || e->comp_size > size - start || (e->method != 0 && e->method != 8) ||
        (e->method == 0 && e->comp_size != e->size)) {
        rc = me_fail(MOEDIT_EINPUT, "%s: truncated or unsupported zip entry", s->what);
        goto fail;
    }
    if ((s->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = me_fail(MOEDIT_EINPUT, "%s: %s", path, strerror(errno));
        goto fail;
    }
    s->pos = start;
    s->whole = 1;
    if ((s->deflate = e->method == 8)) {
        s->comp_left = e->comp_size;
        if (!(s->in = me_alloc(IN_CHUNK))) {
            rc = MOEDIT_EINTERNAL;
            goto fail;
        }
        if (inflateInit2(&s->zs, -MAX_WBITS) != Z_OK) {
            rc = me_fail(MOEDIT_EINTERNAL, "%s: zlib init failed", s->what);
            goto fail;
        }
        s->inflating = 1;
    }
    /* the npy header: magic, version, its length, then the dict */
    uint8_t head[12 + MAX_HEADER];
    size_t hl = 12, data_off;
    if (e->size < 12) {
        rc = me_fail(MOEDIT_EINPUT, "%s: not an .npy array", s->what);
        goto fail;
    }
    if ((rc = pull(s, head, 12))) goto fail;
    size_t dict = head[6] == 1 ? rd16(head + 8) - 2u : (size_t)rd16(head + 8) | (size_t)rd16(head + 10) << 16;
    if (memcmp(head, "\x93NUMPY", 6) || dict > MAX_HEADER || 12 + dict > e->size) {
        rc = me_fail(MOEDIT_EINPUT, "%s: not an .npy array (or a header over 64 KB)", s->what);
        goto fail;
    }
    if ((rc = pull(s, head + 12, dict))) goto fail;
    hl += dict;
    if ((rc = me_npy_parse_header(head, hl, s->what, &s->array, &data_off))) goto fail;
    uint64_t bytes = (uint64_t)s->array.numel * me_dtype_size(s->array.dtype);
    if (data_off != hl || bytes != e->size - hl) {
        rc = me_fail(MOEDIT_EINPUT, "%s: the array's size does not match its header", s->what);
        goto fail;
    }
    s->left = bytes;
    return MOEDIT_OK;
fail:
    me_npz_stream_close(s);
    return rc;
}

int me_npz_stream_read(me_npz_stream *s, void *dst, uint64_t bytes)
{
    if (bytes > s->left) return me_fail(MOEDIT_EINPUT, "%s: read past the end of the array", s->what);
    int rc = pull(s, dst, bytes);
    if (rc) return rc;
    s->left -= bytes;
    if (!s->left && s->whole && s->crc != s->entry->crc32)
        return me_fail(MOEDIT_EINPUT, "%s: CRC mismatch (the file is corrupt)", s->what);
    return MOEDIT_OK;
}

int me_npz_stream_skip(me_npz_stream *s, uint64_t bytes)
{
    if (bytes > s->left) return me_fail(MOEDIT_EINPUT, "%s: skip past the end of the array", s->what);
    if (!bytes) return MOEDIT_OK;
    s->whole = 0;
    s->left -= bytes;
    if (!s->deflate) {
        s->pos += bytes;
        return MOEDIT_OK;
    }
    /* deflate has no random access: inflate into a scratch buffer */
    uint8_t *tmp = me_alloc(IN_CHUNK);
    if (!tmp) return MOEDIT_EINTERNAL;
    int rc = MOEDIT_OK;
    while (bytes && !rc) {
        size_t k = bytes < IN_CHUNK ? (size_t)bytes : IN_CHUNK;
        rc = pull(s, tmp, k);
        bytes -= k;
    }
    free(tmp);
    return rc;
}

/* ZIP reading (central directory, ZIP64) and streamed stored writing; see zip.h.
   Reference: PKWARE APPNOTE.TXT 6.3 (sections 4.3 and 4.5.3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zlib.h>
#include "weights/zip.h"

enum {
    SIG_LOCAL = 0x04034b50, SIG_CENTRAL = 0x02014b50, SIG_EOCD = 0x06054b50,
    SIG_EOCD64 = 0x06064b50, SIG_LOCATOR64 = 0x07064b50,
    LOCAL_SIZE = 30, CENTRAL_SIZE = 46, EOCD_SIZE = 22, EOCD64_SIZE = 56, LOCATOR64_SIZE = 20,
    EXTRA_ZIP64 = 0x0001, EXTRA_PAD = 0xd935,   /* zipalign's padding field */
    ALIGN = 64,                                /* entry data alignment when writing */
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* off + len <= size, without overflow */
static int fits(uint64_t off, uint64_t len, size_t size)
{
    return off <= size && len <= size - off;
}

static int bad(const me_zip *z, const char *what)
{
    return me_fail(MOEDIT_EINPUT, "%s: %s", z->what, what);
}

/* The EOCD is the last 22 bytes unless the archive has a comment (at most
   65535 bytes); scan backwards for a signature whose comment ends the file. */
static int find_eocd(const me_zip *z, size_t *pos)
{
    if (z->size < EOCD_SIZE) return bad(z, "not a zip archive (too short)");
    size_t last = z->size - EOCD_SIZE;
    size_t first = last > 65535 ? last - 65535 : 0;
    for (size_t i = last + 1; i-- > first;) {
        const uint8_t *p = z->data + i;
        if (rd32(p) == SIG_EOCD && i + EOCD_SIZE + rd16(p + 20) == z->size) {
            *pos = i;
            return MOEDIT_OK;
        }
    }
    return bad(z, "not a zip archive (no end of central directory record)");
}

/* Reads the ZIP64 EOCD through its locator, overriding the 32-bit fields. */
static int read_eocd64(const me_zip *z, size_t eocd, uint64_t *count, uint64_t *cd_size,
                       uint64_t *cd_off)
{
    if (eocd < LOCATOR64_SIZE || rd32(z->data + eocd - LOCATOR64_SIZE) != SIG_LOCATOR64)
        return bad(z, "ZIP64 sizes without a ZIP64 end of central directory locator");
    uint64_t off = rd64(z->data + eocd - LOCATOR64_SIZE + 8);
    if (!fits(off, EOCD64_SIZE, z->size) || rd32(z->data + off) != SIG_EOCD64)
        return bad(z, "ZIP64 end of central directory record out of range");
    const uint8_t *p = z->data + off;
    *count = rd64(p + 32);
    *cd_size = rd64(p + 40);
    *cd_off = rd64(p + 48);
    return MOEDIT_OK;
}

/* ZIP64 extended information: 64-bit values for exactly those fields whose
   32-bit value is 0xFFFFFFFF, in the order size, compressed size, offset. */
static int apply_zip64_extra(const me_zip *z, const uint8_t *ex, size_t len, me_zip_entry *e,
                             int need_size, int need_csize, int need_off)
{
    while (len >= 4) {
        uint16_t id = rd16(ex), n = rd16(ex + 2);
        if ((size_t)n + 4 > len) return bad(z, "zip extra field runs past its entry");
        if (id == EXTRA_ZIP64) {
            const uint8_t *q = ex + 4;
            size_t left = n;
            uint64_t *want[3] = {need_size ? &e->size : NULL, need_csize ? &e->comp_size : NULL,
                                 need_off ? &e->local_offset : NULL};
            for (int i = 0; i < 3; i++) {
                if (!want[i]) continue;
                if (left < 8) return bad(z, "ZIP64 extra field too short");
                *want[i] = rd64(q);
                q += 8;
                left -= 8;
            }
            return MOEDIT_OK;
        }
        ex += 4 + n;
        len -= 4 + (size_t)n;
    }
    if (need_size || need_csize || need_off) return bad(z, "ZIP64 entry without a ZIP64 extra field");
    return MOEDIT_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(const me_zip_entry *const *)a)->name, (*(const me_zip_entry *const *)b)->name);
}

static int parse_central(me_zip *z, uint64_t count, uint64_t cd_size, uint64_t cd_off)
{
    if (!fits(cd_off, cd_size, z->size)) return bad(z, "central directory out of range (truncated file?)");
    if (count > cd_size / CENTRAL_SIZE || count > INT32_MAX / 2)
        return bad(z, "entry count does not fit the central directory");
    z->entries = me_calloc((size_t)count, sizeof *z->entries);
    z->sorted = me_calloc((size_t)count, sizeof *z->sorted);
    z->names = me_alloc((size_t)cd_size + 1);   /* names are shorter than their records */
    if (!z->entries || !z->sorted || !z->names) return MOEDIT_EINTERNAL;
    const uint8_t *p = z->data + cd_off, *end = p + cd_size;
    char *names = z->names;
    for (uint64_t i = 0; i < count; i++) {
        if ((size_t)(end - p) < CENTRAL_SIZE || rd32(p) != SIG_CENTRAL)
            return bad(z, "corrupt central directory entry");
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) - CENTRAL_SIZE < nlen + xlen + clen)
            return bad(z, "central directory entry runs past the directory");
        me_zip_entry *e = &z->entries[i];
        e->method = rd16(p + 10);
        e->crc32 = rd32(p + 16);
        e->comp_size = rd32(p + 20);
        e->size = rd32(p + 24);
        e->local_offset = rd32(p + 42);
        if (memchr(p + CENTRAL_SIZE, 0, nlen)) return bad(z, "entry name contains a NUL byte");
        memcpy(names, p + CENTRAL_SIZE, nlen);
        names[nlen] = 0;
        e->name = names;
        names += nlen + 1;
        int rc = apply_zip64_extra(z, p + CENTRAL_SIZE + nlen, xlen, e, e->size == 0xffffffffu,
                                   e->comp_size == 0xffffffffu, e->local_offset == 0xffffffffu);
        if (rc) return rc;
        if (e->method == 0 && e->size != e->comp_size)
            return me_fail(MOEDIT_EINPUT, "%s: entry %s: stored sizes disagree", z->what, e->name);
        z->sorted[i] = e;
        p += CENTRAL_SIZE + nlen + xlen + clen;
    }
    z->count = (int)count;
    qsort(z->sorted, (size_t)z->count, sizeof *z->sorted, cmp_entry);
    return MOEDIT_OK;
}

int me_zip_open_memory(me_zip *z, const uint8_t *data, size_t size, const char *what)
{
    memset(z, 0, sizeof *z);
    z->data = data;
    z->size = size;
    z->what = me_strdup(what ? what : "zip");
    if (!z->what) return MOEDIT_EINTERNAL;
    size_t eocd = 0;
    int rc = find_eocd(z, &eocd);
    if (rc) { me_zip_close(z); return rc; }
    const uint8_t *p = z->data + eocd;
    uint64_t count = rd16(p + 10), cd_size = rd32(p + 12), cd_off = rd32(p + 16);
    if (rd16(p + 4) != 0 || rd16(p + 6) != 0) {
        if (rd16(p + 4) != 0xffff || rd16(p + 6) != 0xffff) {
            me_zip_close(z);
            return me_fail(MOEDIT_EINPUT, "%s: multi-disk zip archives are not supported", what);
        }
    }
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)
        rc = read_eocd64(z, eocd, &count, &cd_size, &cd_off);
    if (!rc) rc = parse_central(z, count, cd_size, cd_off);
    if (rc) me_zip_close(z);
    return rc;
}

void me_zip_close(me_zip *z)
{
    free(z->what); free(z->entries); free(z->sorted); free(z->names);
    memset(z, 0, sizeof *z);
}

const me_zip_entry *me_zip_find(const me_zip *z, const char *name)
{
    int lo = 0, hi = z->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const me_zip_entry *e = z->sorted[mid];
        int c = strcmp(e->name, name);
        if (c == 0) return e;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

const me_zip_entry *me_zip_find_suffix(const me_zip *z, const char *suffix)
{
    const me_zip_entry *found = NULL;
    size_t sl = strlen(suffix);
    for (int i = 0; i < z->count; i++) {
        const char *n = z->entries[i].name;
        size_t nl = strlen(n);
        if (nl < sl || strcmp(n + nl - sl, suffix) != 0) continue;
        if (nl > sl && n[nl - sl - 1] != '/') continue;
        if (found) return NULL;
        found = &z->entries[i];
    }
    return found;
}

/* Start of an entry's data: after its local header, whose name and extra
   lengths may differ from the central directory's. torch sets flag bit 3 and
   leaves the local sizes zero, so only the central sizes are used. */
static int entry_start(const me_zip *z, const me_zip_entry *e, uint64_t *start)
{
    if (!fits(e->local_offset, LOCAL_SIZE, z->size) || rd32(z->data + e->local_offset) != SIG_LOCAL)
        return me_fail(MOEDIT_EINPUT, "%s: entry %s: bad local header offset", z->what, e->name);
    const uint8_t *p = z->data + e->local_offset;
    uint64_t s = e->local_offset + LOCAL_SIZE + rd16(p + 26) + rd16(p + 28);
    if (!fits(s, e->comp_size, z->size))
        return me_fail(MOEDIT_EINPUT, "%s: entry %s: data runs past the end of the file (truncated?)",
                       z->what, e->name);
    *start = s;
    return MOEDIT_OK;
}

int me_zip_data(const me_zip *z, const me_zip_entry *e, const uint8_t **data, uint64_t *size)
{
    if (e->method != 0)
        return me_fail(MOEDIT_EINPUT, "%s: entry %s is compressed (method %d); only stored entries are supported",
                       z->what, e->name, e->method);
    uint64_t start = 0;
    int rc = entry_start(z, e, &start);
    if (rc) return rc;
    *data = z->data + start;
    *size = e->size;
    return MOEDIT_OK;
}

/* zlib takes uInt lengths: feed it in pieces. */
static uint32_t crc_bytes(uint32_t crc, const uint8_t *p, uint64_t n)
{
    while (n > 0) {
        uInt k = n > (1u << 30) ? 1u << 30 : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

enum { CRC_CHUNK = 16 << 20 };   /* bytes per thread task when verifying */

/* CRC-32s of the stored entries list[0..n) over the mapped archive, in chunks
   spread over threads and joined with crc32_combine; deflated entries are
   checked by me_zip_extract as they inflate. */
int me_zip_verify(const me_zip *z, const me_zip_entry *const *list, int n)
{
    size_t chunks = 0;
    uint64_t *start = me_calloc((size_t)n + 1, sizeof *start);
    if (!start) return MOEDIT_EINTERNAL;
    int rc = MOEDIT_OK;
    for (int i = 0; i < n && !rc; i++) {
        if (list[i]->method != 0) continue;
        rc = entry_start(z, list[i], &start[i]);
        chunks += (size_t)((list[i]->size + CRC_CHUNK - 1) / CRC_CHUNK);
    }
    typedef struct { const uint8_t *p; uint64_t len; int entry; uint32_t crc; } piece;
    piece *pc = rc ? NULL : me_calloc(chunks ? chunks : 1, sizeof *pc);
    if (!rc && !pc) rc = MOEDIT_EINTERNAL;
    if (rc) { free(start); return rc; }
    size_t k = 0;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (list[i]->method != 0) continue;
        for (uint64_t off = 0; off < list[i]->size; off += CRC_CHUNK) {
            uint64_t len = list[i]->size - off < CRC_CHUNK ? list[i]->size - off : CRC_CHUNK;
            pc[k++] = (piece){z->data + start[i] + off, len, i, 0};
            total += len;
        }
    }
    #pragma omp parallel for schedule(dynamic, 1) if (total > 2 * (uint64_t)CRC_CHUNK)
    for (long c = 0; c < (long)chunks; c++) pc[c].crc = crc_bytes(0, pc[c].p, pc[c].len);
    k = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (list[i]->method != 0) continue;
        uint32_t crc = 0;
        for (; k < chunks && pc[k].entry == i; k++) crc = (uint32_t)crc32_combine(crc, pc[k].crc, (z_off_t)pc[k].len);
        if (crc != list[i]->crc32)
            rc = me_fail(MOEDIT_EINPUT, "%s: entry %s: CRC-32 mismatch (stored %08x, data %08x): the file is corrupt",
                         z->what, list[i]->name, (unsigned)list[i]->crc32, (unsigned)crc);
    }
    free(pc);
    free(start);
    return rc;
}

static int inflate_entry(const me_zip *z, const me_zip_entry *e, const uint8_t *src, uint8_t *dst)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK) return me_fail(MOEDIT_EINTERNAL, "%s: zlib init failed", z->what);
    uint64_t in_left = e->comp_size, out_left = e->size;
    int ret = Z_OK;
    while (ret == Z_OK) {
        if (s.avail_in == 0 && in_left) {
            s.next_in = (Bytef *)(uintptr_t)src;
            s.avail_in = in_left > (1u << 30) ? 1u << 30 : (uInt)in_left;
            src += s.avail_in;
            in_left -= s.avail_in;
        }
        if (s.avail_out == 0 && out_left) {
            s.next_out = dst;
            s.avail_out = out_left > (1u << 30) ? 1u << 30 : (uInt)out_left;
            dst += s.avail_out;
            out_left -= s.avail_out;
        }
        ret = inflate(&s, Z_NO_FLUSH);
        if (ret == Z_BUF_ERROR && (in_left || out_left)) ret = Z_OK;
    }
    int ok = ret == Z_STREAM_END && s.avail_out == 0 && out_left == 0;
    inflateEnd(&s);
    if (!ok) return me_fail(MOEDIT_EINPUT, "%s: entry %s: corrupt deflate data", z->what, e->name);
    return MOEDIT_OK;
}

int me_zip_extract(const me_zip *z, const me_zip_entry *e, void *dst)
{
    uint64_t start = 0;
    int rc = entry_start(z, e, &start);
    if (rc) return rc;
    if (e->method == 0) {
        memcpy(dst, z->data + start, (size_t)e->size);
    } else if (e->method == 8) {
        if ((rc = inflate_entry(z, e, z->data + start, dst))) return rc;
    } else {
        return me_fail(MOEDIT_EINPUT, "%s: entry %s: unsupported compression method %d",
                       z->what, e->name, e->method);
    }
    if (crc_bytes(0, dst, e->size) != e->crc32)
        return me_fail(MOEDIT_EINPUT, "%s: entry %s: CRC mismatch", z->what, e->name);
    return MOEDIT_OK;
}

/* ---- writing ---- */

static void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, v & 0xffff); wr16(p + 2, v >> 16); }
static void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

static int wfail(me_zip_writer *w, int rc)
{
    w->failed = 1;
    return rc;
}

static int emit(me_zip_writer *w, const void *data, size_t n)
{
    if (w->failed) return MOEDIT_EINTERNAL;
    int rc = me_atomic_write(&w->af, data, n);
    if (rc) return wfail(w, rc);
    w->offset += n;
    return MOEDIT_OK;
}

int me_zip_writer_open(me_zip_writer *w, const char *path)
{
    memset(w, 0, sizeof *w);
    return me_atomic_open(&w->af, path);
}

int me_zip_writer_begin(me_zip_writer *w, const char *name, uint64_t size)
{
    if (w->failed) return me_fail(MOEDIT_EINTERNAL, "zip writer used after a failure");
    if (w->open_entry) return wfail(w, me_fail(MOEDIT_EINTERNAL, "%s: zip entry %s begun inside another",
                                                 w->af.path, name));
    size_t nlen = strlen(name);
    if (nlen > 0xffff) return wfail(w, me_fail(MOEDIT_EINPUT, "%s: zip entry name too long", w->af.path));
    if (w->count == w->cap) {
        int ncap = w->cap ? 2 * w->cap : 8;
        me_zip_written *p = realloc(w->entries, (size_t)ncap * sizeof *p);
        if (!p) return wfail(w, me_fail(MOEDIT_EINTERNAL, "out of memory"));
        w->entries = p;
        w->cap = ncap;
    }
    char *copy = me_strdup(name);
    if (!copy) return wfail(w, MOEDIT_EINTERNAL);
    me_zip_written *e = &w->entries[w->count++];
    e->name = copy;
    e->offset = w->offset;
    e->size = size;
    e->crc32 = 0;

    int z64 = w->force_zip64 || size >= 0xffffffffu || w->offset >= 0xffffffffu;
    uint8_t h[LOCAL_SIZE + 20 + 4 + ALIGN];
    size_t xlen = z64 ? 20 : 0;
    size_t pad = (ALIGN - (w->offset + LOCAL_SIZE + nlen + xlen + 4) % ALIGN) % ALIGN;
    xlen += 4 + pad;
    memset(h, 0, sizeof h);
    wr32(h, SIG_LOCAL);
    wr16(h + 4, z64 ? 45 : 20);             /* version needed */
    wr16(h + 6, 0);                         /* flags */
    wr16(h + 8, 0);                         /* stored */
    wr16(h + 10, 0);                        /* time 00:00 */
    wr16(h + 12, (1 << 5) | 1);             /* date 1980-01-01 */
    wr32(h + 18, z64 ? 0xffffffffu : (uint32_t)size);
    wr32(h + 22, z64 ? 0xffffffffu : (uint32_t)size);
    wr16(h + 26, (uint32_t)nlen);
    wr16(h + 28, (uint32_t)xlen);
    uint8_t *x = h + LOCAL_SIZE;
    if (z64) {
        wr16(x, EXTRA_ZIP64); wr16(x + 2, 16); wr64(x + 4, size); wr64(x + 12, size);
        x += 20;
    }
    wr16(x, EXTRA_PAD); wr16(x + 2, (uint32_t)pad);
    int rc = emit(w, h, LOCAL_SIZE);
    if (!rc) rc = emit(w, name, nlen);
    if (!rc) rc = emit(w, h + LOCAL_SIZE, xlen);
    if (rc) return rc;
    w->open_entry = 1;
    w->remaining = size;
    w->crc = 0;
    return MOEDIT_OK;
}

int me_zip_writer_write(me_zip_writer *w, const void *data, size_t n)
{
    if (w->failed) return me_fail(MOEDIT_EINTERNAL, "zip writer used after a failure");
    if (!w->open_entry || n > w->remaining)
        return wfail(w, me_fail(MOEDIT_EINTERNAL, "%s: more data than the zip entry declared", w->af.path));
    w->crc = crc_bytes(w->crc, data, n);
    w->remaining -= n;
    return emit(w, data, n);
}

/* The CRC is known only now: patch it into the local header, then return to the end. */
int me_zip_writer_end(me_zip_writer *w)
{
    if (w->failed) return me_fail(MOEDIT_EINTERNAL, "zip writer used after a failure");
    if (!w->open_entry) return wfail(w, me_fail(MOEDIT_EINTERNAL, "%s: no zip entry to end", w->af.path));
    me_zip_written *e = &w->entries[w->count - 1];
    if (w->remaining)
        return wfail(w, me_fail(MOEDIT_EINTERNAL, "%s: zip entry %s ended %llu bytes short", w->af.path,
                                e->name, (unsigned long long)w->remaining));
    w->open_entry = 0;
    e->crc32 = w->crc;
    uint8_t b[4];
    wr32(b, e->crc32);
    FILE *fp = w->af.fp;
    if (fseeko(fp, (off_t)(e->offset + 14), SEEK_SET) != 0 || fwrite(b, 1, 4, fp) != 4 ||
        fseeko(fp, 0, SEEK_END) != 0)
        return wfail(w, me_fail(MOEDIT_EINPUT, "%s: write failed", w->af.path));
    return MOEDIT_OK;
}

int me_zip_writer_add(me_zip_writer *w, const char *name, const void *data, uint64_t size)
{
    int rc = me_zip_writer_begin(w, name, size);
    if (!rc) rc = me_zip_writer_write(w, data, (size_t)size);
    if (!rc) rc = me_zip_writer_end(w);
    return rc;
}

static int write_central(me_zip_writer *w, const me_zip_written *e)
{
    int big_size = w->force_zip64 || e->size >= 0xffffffffu;
    int big_off = w->force_zip64 || e->offset >= 0xffffffffu;
    size_t nlen = strlen(e->name), xlen = (big_size ? 16 : 0) + (big_off ? 8 : 0);
    uint8_t h[CENTRAL_SIZE], x[4 + 24];
    memset(h, 0, sizeof h);
    wr32(h, SIG_CENTRAL);
    wr16(h + 4, (3 << 8) | 45);              /* made by Unix, spec 4.5 */
    wr16(h + 6, xlen ? 45 : 20);
    wr16(h + 14, (1 << 5) | 1);
    wr32(h + 16, e->crc32);
    wr32(h + 20, big_size ? 0xffffffffu : (uint32_t)e->size);
    wr32(h + 24, big_size ? 0xffffffffu : (uint32_t)e->size);
    wr16(h + 28, (uint32_t)nlen);
    wr16(h + 30, (uint32_t)(xlen ? xlen + 4 : 0));
    wr32(h + 38, 0644u << 16);               /* external attributes: rw-r--r-- */
    wr32(h + 42, big_off ? 0xffffffffu : (uint32_t)e->offset);
    uint8_t *q = x + 4;
    wr16(x, EXTRA_ZIP64);
    wr16(x + 2, (uint32_t)xlen);
    if (big_size) { wr64(q, e->size); wr64(q + 8, e->size); q += 16; }
    if (big_off) wr64(q, e->offset);
    int rc = emit(w, h, sizeof h);
    if (!rc) rc = emit(w, e->name, nlen);
    if (!rc && xlen) rc = emit(w, x, xlen + 4);
    return rc;
}

int me_zip_writer_finish(me_zip_writer *w)
{
    int rc = MOEDIT_OK;
    if (w->failed) rc = me_fail(MOEDIT_EINTERNAL, "zip writer used after a failure");
    else if (w->open_entry) rc = me_fail(MOEDIT_EINTERNAL, "%s: zip entry left open", w->af.path);
    uint64_t cd_off = w->offset;
    for (int i = 0; !rc && i < w->count; i++) rc = write_central(w, &w->entries[i]);
    uint64_t cd_size = w->offset - cd_off, eocd64_off = w->offset;
    int z64 = w->force_zip64 || w->count >= 0xffff || cd_off >= 0xffffffffu || cd_size >= 0xffffffffu;
    if (!rc && z64) {
        uint8_t r[EOCD64_SIZE + LOCATOR64_SIZE];
        memset(r, 0, sizeof r);
        wr32(r, SIG_EOCD64);
        wr64(r + 4, EOCD64_SIZE - 12);
        wr16(r + 12, (3 << 8) | 45);
        wr16(r + 14, 45);
        wr64(r + 24, (uint64_t)w->count);
        wr64(r + 32, (uint64_t)w->count);
        wr64(r + 40, cd_size);
        wr64(r + 48, cd_off);
        wr32(r + EOCD64_SIZE, SIG_LOCATOR64);
        wr64(r + EOCD64_SIZE + 8, eocd64_off);
        wr32(r + EOCD64_SIZE + 16, 1);
        rc = emit(w, r, sizeof r);
    }
    if (!rc) {
        uint8_t r[EOCD_SIZE];
        memset(r, 0, sizeof r);
        wr32(r, SIG_EOCD);
        uint32_t n16 = z64 ? 0xffff : (uint32_t)w->count;
        wr16(r + 8, n16);
        wr16(r + 10, n16);
        wr32(r + 12, z64 ? 0xffffffffu : (uint32_t)cd_size);
        wr32(r + 16, z64 ? 0xffffffffu : (uint32_t)cd_off);
        rc = emit(w, r, sizeof r);
    }
    if (rc) {
        me_zip_writer_abort(w);
        return rc;
    }
    rc = me_atomic_commit(&w->af);
    for (int i = 0; i < w->count; i++) free(w->entries[i].name);
    free(w->entries);
    memset(w, 0, sizeof *w);
    return rc;
}

void me_zip_writer_abort(me_zip_writer *w)
{
    me_atomic_abort(&w->af);
    for (int i = 0; i < w->count; i++) free(w->entries[i].name);
    free(w->entries);
    memset(w, 0, sizeof *w);
}

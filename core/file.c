/* Read-only file mappings and atomic (temporary + rename) output files.

   What an output path names decides how it is written:
   - nothing yet, or a regular file: PATH.tmpPID is written and renamed over
     PATH, so readers see the old file or the complete new one;
   - a symbolic link: what it resolves to is treated as above, the regular
     file's temporary beside it, so the link stays a link and its target gets
     the output; a link to a missing file is refused rather than guessing
     where a chain of links would have the file created;
   - a character device (/dev/null, a terminal): written straight, since it
     cannot be renamed over and replacing it would break the system; its
     write errors (/dev/full) fail the commit like any other;
   - anything else (FIFO, socket, block device, folder): refused with "PATH:
     not a regular file", decided from stat alone so a FIFO without a reader
     never blocks the refusal. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core.h"

int me_read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return (int)n;
}

int me_file_open(const char *path, me_file *f)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return me_fail(MOEDIT_EINPUT, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return me_fail(MOEDIT_EINPUT, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size == 0) {
        close(fd);
        f->data = (const uint8_t *)"";
        return MOEDIT_OK;
    }
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return me_fail(MOEDIT_EINPUT, "%s: cannot map: %s", path, strerror(errno));
    f->data = p;
    f->mapped = 1;
    return MOEDIT_OK;
}

void me_file_close(me_file *f)
{
    if (f->mapped) munmap((void *)f->data, f->size);
    memset(f, 0, sizeof *f);
}

/* A character device, opened as it is (no temporary, nothing to rename). */
static int open_device(me_atomic_file *af, const char *path)
{
    /* O_NONBLOCK: a serial line waiting for carrier must not hang the open */
    int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return me_fail(MOEDIT_EINPUT, "%s: cannot write: %s", path, strerror(errno));
    struct stat st;
    /* fstat again: the path may have been replaced since it was checked */
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
        close(fd);
        return me_fail(MOEDIT_EINPUT, "%s: not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 || !(af->path = me_strdup(path)) ||
        !(af->fp = fdopen(fd, "wb"))) {
        int rc = me_fail(MOEDIT_EINPUT, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
        free(af->path);
        memset(af, 0, sizeof *af);
        return rc;
    }
    return MOEDIT_OK;
}

int me_atomic_open(me_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    struct stat st;
    int link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) return me_fail(MOEDIT_EINPUT, "%s: cannot write: %s", path, strerror(errno));
        if (link) return me_fail(MOEDIT_EINPUT, "%s: symbolic link to a missing file", path);
    } else if (S_ISCHR(st.st_mode)) {
        return open_device(af, path);
    } else if (!S_ISREG(st.st_mode)) {
        return me_fail(MOEDIT_EINPUT, "%s: not a regular file", path);
    }
    if (!(af->path = me_strdup(path))) return MOEDIT_EINTERNAL;
    if (!(af->dest = link ? realpath(path, NULL) : me_strdup(path))) {
        int rc = link ? me_fail(MOEDIT_EINPUT, "%s: cannot write: %s", path, strerror(errno)) : MOEDIT_EINTERNAL;
        me_atomic_abort(af);
        return rc;
    }
    size_t n = strlen(af->dest) + 32;
    if (!(af->tmp_path = me_alloc(n))) { me_atomic_abort(af); return MOEDIT_EINTERNAL; }
    snprintf(af->tmp_path, n, "%s.tmp%ld", af->dest, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        int rc = me_fail(MOEDIT_EINPUT, "%s: cannot write: %s", path, strerror(errno));
        free(af->path); free(af->dest); free(af->tmp_path);
        memset(af, 0, sizeof *af);
        return rc;
    }
    return MOEDIT_OK;
}

int me_atomic_write(me_atomic_file *af, const void *data, size_t n)
{
    if (n && fwrite(data, 1, n, (FILE *)af->fp) != n)
        return me_fail(MOEDIT_EINPUT, "%s: write failed: %s", af->path, strerror(errno));
    return MOEDIT_OK;
}

int me_atomic_commit(me_atomic_file *af)
{
    int rc = MOEDIT_OK;
    if (fclose((FILE *)af->fp) != 0)
        rc = me_fail(MOEDIT_EINPUT, "%s: write failed: %s", af->path, strerror(errno));
    af->fp = NULL;
    if (rc == MOEDIT_OK && af->tmp_path && rename(af->tmp_path, af->dest) != 0)
        rc = me_fail(MOEDIT_EINPUT, "%s: cannot rename: %s", af->path, strerror(errno));
    if (rc != MOEDIT_OK && af->tmp_path) remove(af->tmp_path);
    free(af->path); free(af->dest); free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return rc;
}

void me_atomic_abort(me_atomic_file *af)
{
    if (af->fp) fclose((FILE *)af->fp);
    if (af->tmp_path) remove(af->tmp_path);
    free(af->path); free(af->dest); free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

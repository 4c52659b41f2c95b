/* Read-only file mappings and atomic (temporary + rename) output files. */
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

int me_atomic_open(me_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = me_strdup(path);
    af->tmp_path = me_alloc(n);
    if (!af->path || !af->tmp_path) { me_atomic_abort(af); return MOEDIT_EINTERNAL; }
    snprintf(af->tmp_path, n, "%s.tmp%ld", path, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        int rc = me_fail(MOEDIT_EINPUT, "%s: cannot write: %s", path, strerror(errno));
        free(af->path); free(af->tmp_path);
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
    if (rc == MOEDIT_OK && rename(af->tmp_path, af->path) != 0)
        rc = me_fail(MOEDIT_EINPUT, "%s: cannot rename: %s", af->path, strerror(errno));
    if (rc != MOEDIT_OK) remove(af->tmp_path);
    free(af->path); free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return rc;
}

void me_atomic_abort(me_atomic_file *af)
{
    if (af->fp) fclose((FILE *)af->fp);
    if (af->tmp_path) remove(af->tmp_path);
    free(af->path); free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

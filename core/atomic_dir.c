/* Output folders that appear whole or not at all (see core.h): a new folder
   is filled under a temporary name beside it and renamed at the end; on
   failure the temporary folder and the files written into it are removed. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core.h"

int me_atomic_dir_open(me_atomic_dir *d, const char *path)
{
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return me_fail(MOEDIT_EINPUT, "%s: exists and is not a folder", path);
        /* an existing folder is the user's: files go in one by one, each atomic */
        d->path = me_strdup(path);
        d->work = d->path;
        return d->path ? MOEDIT_OK : MOEDIT_EINTERNAL;
    }
    size_t n = strlen(path) + 32;
    d->path = me_strdup(path);
    d->tmp = me_alloc(n);
    if (!d->path || !d->tmp) {
        me_atomic_dir_abort(d);
        return MOEDIT_EINTERNAL;
    }
    /* a trailing slash would make the temporary name a folder inside path */
    size_t len = strlen(d->path);
    while (len > 1 && d->path[len - 1] == '/') d->path[--len] = 0;
    snprintf(d->tmp, n, "%s.tmp%ld", d->path, (long)getpid());
    if (mkdir(d->tmp, 0777) != 0) {
        int rc = me_fail(MOEDIT_EINPUT, "%s: cannot create folder: %s", path, strerror(errno));
        free(d->tmp);
        d->tmp = NULL;
        me_atomic_dir_abort(d);
        return rc;
    }
    d->work = d->tmp;
    return MOEDIT_OK;
}

int me_atomic_dir_commit(me_atomic_dir *d)
{
    int rc = MOEDIT_OK;
    if (d->tmp && rename(d->tmp, d->path) != 0) {
        rc = me_fail(MOEDIT_EINPUT, "%s: cannot rename the finished folder into place: %s", d->path, strerror(errno));
        me_atomic_dir_abort(d);
        return rc;
    }
    free(d->tmp);
    free(d->path);
    memset(d, 0, sizeof *d);
    return rc;
}

/* Removes folder path and what is in it. Only what this process wrote is
   there (files, and folders such as heatmap's paper/), so links are removed,
   never followed; depth bounds the recursion. */
static void remove_tree(const char *path, int depth)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) {
            if (depth > 0) remove_tree(p, depth - 1);
        } else {
            unlink(p);
        }
    }
    if (dir) closedir(dir);
    rmdir(path);
}

void me_atomic_dir_abort(me_atomic_dir *d)
{
    if (d->tmp) remove_tree(d->tmp, 4);
    free(d->tmp);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* Finding what moedit ships (models, class-name lists) wherever it was built or
   installed. MOEDIT_SOURCE_DIR and
   MOEDIT_DATADIR are compiled into this file only (CMakeLists.txt). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/core.h"

#ifndef MOEDIT_SOURCE_DIR
#define MOEDIT_SOURCE_DIR ""
#endif
#ifndef MOEDIT_DATADIR
#define MOEDIT_DATADIR ""
#endif

static const struct { const char *alias, *file; } aliases[] = {
    {"fmnist-moe", "fmnist-moe/model.pt"},
    {"fmnist-switch", "fmnist-switch/model.pt"},
    {"fmnist-vae", "fmnist-vae"},
};

/* The folder of the file this code was loaded from: libmoedit.so, or the
   program that linked libmoedit.a. */
static int own_dir(char *dir, size_t size)
{
    Dl_info info;
    if (!dladdr((void *)own_dir, &info) || !info.dli_fname) return 0;
    char real[PATH_MAX];
    if (!realpath(info.dli_fname, real)) return 0;
    char *slash = strrchr(real, '/');
    if (!slash) return 0;
    *slash = 0;
    return snprintf(dir, size, "%s", real) < (int)size;
}

static int readable(const char *path) { return access(path, R_OK) == 0; }

/* Writes base/rel into out, without ".." steps, and says whether it exists. */
static int try_path(char *out, size_t size, const char *base, const char *rel)
{
    char joined[PATH_MAX * 2], real[PATH_MAX];
    if (!base || !*base || snprintf(joined, sizeof joined, "%s/%s", base, rel) >= (int)sizeof joined) return 0;
    if (!readable(joined) || !realpath(joined, real)) return 0;
    return snprintf(out, size, "%s", real) < (int)size;
}

int me_find_shipped(const char *models_rel, const char *data_rel, char *out, size_t size)
{
    char dir[PATH_MAX], base[PATH_MAX + 64];
    if (models_rel && try_path(out, size, getenv("MOEDIT_MODELS"), models_rel)) return 1;
    if (own_dir(dir, sizeof dir)) {
        /* bin/ or lib/ → share/moedit; lib/<multiarch>/ → ../../share/moedit */
        static const char *ups[] = {"/../share/moedit", "/../../share/moedit"};
        for (int i = 0; i < 2; i++) {
            snprintf(base, sizeof base, "%s%s%s", dir, ups[i], models_rel ? "/models" : "");
            if (try_path(out, size, base, models_rel ? models_rel : data_rel)) return 1;
        }
    }
    if (*MOEDIT_SOURCE_DIR) {
        snprintf(base, sizeof base, "%s/%s", MOEDIT_SOURCE_DIR, models_rel ? "models" : "data");
        if (try_path(out, size, base, models_rel ? models_rel : data_rel)) return 1;
    }
    snprintf(base, sizeof base, "%s%s", MOEDIT_DATADIR, models_rel ? "/models" : "");
    return *MOEDIT_DATADIR && try_path(out, size, base, models_rel ? models_rel : data_rel);
}

int moedit_model_path(const char *name, char *path, size_t size)
{
    if (!name || !path || !size) return me_fail(MOEDIT_EINPUT, "model path: missing argument");
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(name, aliases[i].alias)) continue;
        if (me_find_shipped(aliases[i].file, NULL, path, size)) return MOEDIT_OK;
        return me_fail(MOEDIT_EINPUT,
                       "%s: shipped model not found (looked in $MOEDIT_MODELS, ../share/moedit/models beside "
                       "the program or library, %s/models, %s/models)",
                       name, MOEDIT_SOURCE_DIR, MOEDIT_DATADIR);
    }
    if (snprintf(path, size, "%s", name) >= (int)size) return me_fail(MOEDIT_EINPUT, "%s: path too long", name);
    return MOEDIT_OK;
}

int moedit_data_path(const char *file, char *path, size_t size)
{
    if (!file || !path || !size) return me_fail(MOEDIT_EINPUT, "data path: missing argument");
    if (!*file || strchr(file, '/')) return me_fail(MOEDIT_EINPUT, "data path: '%s' is not a file name", file);
    if (me_find_shipped(NULL, file, path, size)) return MOEDIT_OK;
    return me_fail(MOEDIT_EINPUT, "%s: shipped data file not found (looked in ../share/moedit beside the program or "
                   "library, %s/data, %s)", file, MOEDIT_SOURCE_DIR, MOEDIT_DATADIR);
}

/* Class-name sources for the CLI (see class_names.h). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/class_names.h"
#include "core/core.h"
#include "cli/cli.h"
#include "moedit.h"

#define IMAGENET_FILE "imagenet_classes.txt"

/* The folder holding the checkpoint (the checkpoint itself when it is one). */
static void model_dir(const char *model_path, char *dir, size_t n)
{
    struct stat st;
    snprintf(dir, n, "%s", model_path);
    if (!stat(model_path, &st) && S_ISDIR(st.st_mode)) return;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, n, ".");
}

int cli_class_names(const char *cmd, const char *file, const char *model_path, int num_classes,
                    me_class_names *cn)
{
    memset(cn, 0, sizeof *cn);
    char path[PATH_MAX + 64];
    const char *from = path;
    if (file) {
        from = file;
        if (me_class_names_read(cn, file)) return cli_usage_error(cmd, "--class-names %s", moedit_last_error());
    } else {
        int found = 0;
        if (model_path) {
            char dir[PATH_MAX];
            model_dir(model_path, dir, sizeof dir);
            snprintf(path, sizeof path, "%s/defaults.json", dir);
            if (!access(path, F_OK) && me_class_names_read_json(cn, path, &found)) return cli_fail(MOEDIT_EINPUT);
        }
        if (!found && num_classes == 1000 && me_find_shipped(NULL, IMAGENET_FILE, path, sizeof path) && me_class_names_read(cn, path))
            return cli_fail(MOEDIT_EINPUT);
    }
    if (cn->count && cn->count != num_classes) {
        int n = cn->count;
        me_class_names_free(cn);
        return cli_usage_error(cmd, "%s: %d class names for a model with %d classes", from, n, num_classes);
    }
    return 0;
}

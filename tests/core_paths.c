/* Shipped-model aliases: $MOEDIT_MODELS first, the source tree otherwise,
   other names unchanged; version and struct sizes for bindings. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "moedit.h"

Test(paths, alias_from_source_tree)
{
    char path[4096], want[4096];
    unsetenv("MOEDIT_MODELS");
    cr_assert_eq(moedit_model_path("fmnist-switch", path, sizeof path), MOEDIT_OK);
    cr_assert_not_null(realpath(MOEDIT_SOURCE_DIR "/models/fmnist-switch/model.pt", want));
    cr_assert_str_eq(path, want);
    cr_assert_eq(moedit_model_path("fmnist-vae", path, sizeof path), MOEDIT_OK);
    cr_assert_not_null(realpath(MOEDIT_SOURCE_DIR "/models/fmnist-vae", want));
    cr_assert_str_eq(path, want);
}

Test(paths, moedit_models_env_first)
{
    char dir[PATH_MAX], file[PATH_MAX + 64], path[4096], real[PATH_MAX];
    snprintf(dir, sizeof dir, "/tmp/moedit_paths_%d", (int)getpid());
    snprintf(file, sizeof file, "%s/fmnist-moe", dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(mkdir(file, 0700), 0);
    snprintf(file, sizeof file, "%s/fmnist-moe/model.pt", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    setenv("MOEDIT_MODELS", dir, 1);
    cr_assert_eq(moedit_model_path("fmnist-moe", path, sizeof path), MOEDIT_OK);
    cr_assert_not_null(realpath(file, real));
    cr_assert_str_eq(path, real);
    /* an alias missing there is still found in the source tree */
    cr_assert_eq(moedit_model_path("fmnist-switch", path, sizeof path), MOEDIT_OK);
    cr_assert(strstr(path, "/models/fmnist-switch/model.pt") != NULL);
    unsetenv("MOEDIT_MODELS");
    remove(file);
    snprintf(file, sizeof file, "%s/fmnist-moe", dir);
    rmdir(file);
    rmdir(dir);
}

Test(paths, other_names_unchanged)
{
    char path[16];
    cr_assert_eq(moedit_model_path("my.pt", path, sizeof path), MOEDIT_OK);
    cr_assert_str_eq(path, "my.pt");
    cr_assert_eq(moedit_model_path("a-name-longer-than-16.pt", path, sizeof path), MOEDIT_EINPUT);
    cr_assert_str_eq(moedit_last_error(), "a-name-longer-than-16.pt: path too long");
    cr_assert_eq(moedit_model_path(NULL, path, sizeof path), MOEDIT_EINPUT);
}

Test(paths, version_and_sizes)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", MOEDIT_VERSION_MAJOR, MOEDIT_VERSION_MINOR, MOEDIT_VERSION_PATCH);
    cr_assert_str_eq(moedit_version(), want);
    cr_assert_str_eq(MOEDIT_VERSION, want);
    cr_assert_eq(moedit_sizeof("moedit_sample_options"), sizeof(moedit_sample_options));
    cr_assert_eq(moedit_sizeof("moedit_route_table"), sizeof(moedit_route_table));
    cr_assert_eq(moedit_sizeof("moedit_trace_header"), sizeof(moedit_trace_header));
    cr_assert_eq(moedit_sizeof("nothing"), 0);
}

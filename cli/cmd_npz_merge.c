/* moedit npz-merge: concatenates the arr_0 (images) and arr_1 (labels) of
   shard files in the given order. Inputs are mapped and streamed straight
   into the output (ZIP64 when large), so merging 10 GB needs no 10 GB of
   memory; the output appears only when complete. With shards made by
   fid-sample --shard k/n, the result is byte for byte the unsharded file:
   their moedit_shard/moedit_settings members (cli/shard.h) put them in
   shard order, whatever the order given, and a set with a missing,
   duplicated or foreign shard is refused. Files without those members are
   concatenated in the order given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/images.h"
#include "cli/shard.h"
#include "core/core.h"
#include "weights/npy.h"

#define CMD "npz-merge"
#define MAX_INPUTS 4096

/* One input's arrays; arr_1 is optional but must be in all inputs or none. */
typedef struct {
    me_npz z;
    me_array img, lab;
    int has_lab, has_meta;
} input;

/* Two inputs naming one file, *first < *second, for files without shard
   records (shard sets refuse a repeated shard themselves, cli/shard.h):
   merged, its images would count twice. Returns 1 when found, 0 when not,
   -1 out of memory. */
static int find_repeated_file(char **paths, int n, int *first, int *second)
{
    if (n < 2) return 0;
    struct stat *st = calloc((size_t)n, sizeof *st);
    if (!st) return -1;
    int found = 0;
    for (int i = 0; i < n; i++)
        if (stat(paths[i], &st[i])) st[i].st_ino = 0;   /* opened already: vanished since, nothing to compare */
    for (int i = 0; i < n && !found; i++)
        for (int j = i + 1; j < n && !found; j++)
            if (st[i].st_ino && st[i].st_dev == st[j].st_dev && st[i].st_ino == st[j].st_ino) {
                *first = i;
                *second = j;
                found = 1;
            }
    free(st);
    return found;
}

static int same_tail(const me_array *a, const me_array *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int i = 1; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* The first negative label of arr_1 (any integer or float dtype, read as
   me_array_to_i64 reads it) into *at and *value: 1; 0 when there is none;
   -1 out of memory. A negative class id would index outside every class
   table that reads the merged file. */
static int first_negative(const me_array *a, int64_t *at, int64_t *value)
{
    int64_t *v = me_alloc(sizeof *v * (size_t)(a->numel ? a->numel : 1));
    if (!v) return -1;
    me_array_to_i64(a, v);
    int found = 0;
    for (int64_t i = 0; i < a->numel && !found; i++)
        if (v[i] < 0) *at = i, *value = v[i], found = 1;
    free(v);
    return found;
}

static int open_input(const char *path, input *in, cli_shard_meta *meta)
{
    memset(in, 0, sizeof *in);
    int rc = me_npz_open(path, &in->z);
    if (rc) return rc;
    if ((rc = me_npz_get(&in->z, "arr_0", &in->img))) return rc;
    /* fid and eval read arr_0 as uint8 pixels [N, H, W, 3]; merged, a bool,
       float or misshapen array would only fail there, in a later job */
    if ((rc = cli_images_layout(path, &in->img, NULL))) return rc;
    if (me_zip_find(&in->z.zip, "arr_1.npy")) {
        if ((rc = me_npz_get(&in->z, "arr_1", &in->lab))) return rc;
        if (in->lab.ndim != 1)
            return me_fail(MOEDIT_EINPUT, "%s: arr_1 has %d dimensions, not one label per image", path, in->lab.ndim);
        if (in->lab.shape[0] != in->img.shape[0])
            return me_fail(MOEDIT_EINPUT, "%s: arr_1 has %lld labels for %lld images", path,
                           (long long)in->lab.shape[0], (long long)in->img.shape[0]);
        int64_t at, value;
        int neg = first_negative(&in->lab, &at, &value);
        if (neg < 0) return MOEDIT_EINTERNAL;
        if (neg)
            return me_fail(MOEDIT_EINPUT, "%s: arr_1[%lld] is %lld, not a class label", path, (long long)at,
                           (long long)value);
        in->has_lab = 1;
    }
    rc = cli_shard_read_meta(&in->z, path, meta);
    if (rc < 0) return -rc;
    in->has_meta = rc;
    return MOEDIT_OK;
}

static void close_input(input *in)
{
    me_array_free(&in->img);
    me_array_free(&in->lab);
    me_npz_close(&in->z);
}

/* Streams member `name` of every input (which = 0: arr_0, 1: arr_1). */
static int write_member(me_zip_writer *w, input *ins, int n, int which)
{
    const me_array *first = which ? &ins[0].lab : &ins[0].img;
    int64_t shape[ME_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[0] = 0;
    for (int i = 0; i < n; i++) shape[0] += (which ? &ins[i].lab : &ins[i].img)->shape[0];
    int rc = me_npz_begin(w, which ? "arr_1" : "arr_0", first->dtype, first->ndim, shape);
    for (int i = 0; i < n && !rc; i++) {
        const me_array *a = which ? &ins[i].lab : &ins[i].img;
        rc = me_zip_writer_write(w, a->data, (size_t)a->numel * me_dtype_size(a->dtype));
    }
    return rc ? rc : me_zip_writer_end(w);
}

/* Reorders ins and names to shard order (input k = order[k]); inputs hold
   no pointers to themselves, so they move by copy. */
static int put_in_order(input *ins, char **names, const int *order, int n)
{
    input *sorted = calloc((size_t)n, sizeof *sorted);
    char **sorted_names = calloc((size_t)n, sizeof *sorted_names);
    if (!sorted || !sorted_names) {
        free(sorted);
        free(sorted_names);
        return 1;
    }
    for (int k = 0; k < n; k++) {
        sorted[k] = ins[order[k]];
        sorted_names[k] = names[order[k]];
    }
    memcpy(ins, sorted, (size_t)n * sizeof *ins);
    memcpy(names, sorted_names, (size_t)n * sizeof *names);
    free(sorted);
    free(sorted_names);
    return 0;
}

int cmd_npz_merge(int argc, char **argv)
{
    const char *out = NULL;
    int help = 0, no_verify = 0;
    const cli_flag flags[] = {
        {"--out", CLI_STR, &out, "OUT.npz", "merged file (shards in order; a missing, duplicated or mismatched shard is refused)"},
        {"--no-verify", CLI_BOOL, &no_verify, NULL, CLI_NO_VERIFY_HELP},
        {"--help", CLI_BOOL, &help, NULL, "this help"},
        {0},
    };
    char *pos[MAX_INPUTS];
    int n;
    if (cli_parse(CMD, argc, argv, flags, pos, MAX_INPUTS, &n)) return 2;
    if (help) {
        cli_usage(CMD, "--out OUT.npz A.npz B.npz …", flags);
        return 0;
    }
    if (!out) return cli_usage_error(CMD, "--out OUT.npz is required");
    if (n < 1) return cli_usage_error(CMD, "no input files");
    cli_file files[MAX_INPUTS + 1] = {{"--out", out, CLI_OUT}};
    for (int i = 0; i < n; i++) files[i + 1] = (cli_file){"an input", pos[i], CLI_IN};
    if (cli_check_files(CMD, files, n + 1)) return 2;
    input *ins = calloc((size_t)n, sizeof *ins);
    if (!ins) return 1;
    cli_shard_meta *metas = calloc((size_t)n, sizeof *metas), merged;
    int64_t *images = calloc((size_t)n, sizeof *images);
    int *order = calloc((size_t)n, sizeof *order);
    if (!metas || !images || !order) {
        free(ins);
        free(metas);
        free(images);
        free(order);
        return 1;
    }
    int rc = 0, r = 0, opened = 0;
    for (; opened < n && !r; opened++) r = open_input(pos[opened], &ins[opened], &metas[opened]);
    if (r) rc = cli_fail(r);
    for (int i = 1; i < n && !rc; i++)
        if (ins[i].has_meta != ins[0].has_meta)
            rc = cli_usage_error(CMD, "%s is %sa fid-sample shard, unlike %s", pos[i], ins[i].has_meta ? "" : "not ",
                                 pos[0]);
    int first, second, repeated = rc || ins[0].has_meta ? 0 : find_repeated_file(pos, n, &first, &second);
    if (repeated < 0) rc = cli_fail(me_fail(MOEDIT_EINTERNAL, "npz-merge: out of memory"));
    else if (repeated)
        rc = cli_usage_error(CMD, "%s and %s are the same file (its images would be merged twice)", pos[first],
                             pos[second]);
    if (!rc && ins[0].has_meta) {
        for (int i = 0; i < n; i++) images[i] = ins[i].img.shape[0];
        rc = cli_shard_check_set(CMD, metas, images, pos, n, order, &merged);
        if (!rc) rc = put_in_order(ins, pos, order, n);
    }
    for (int i = 1; i < n && !rc; i++) {
        if (!same_tail(&ins[0].img, &ins[i].img))
            rc = cli_usage_error(CMD, "%s: arr_0 is not of the same dtype and image shape as in %s", pos[i], pos[0]);
        else if (ins[i].has_lab != ins[0].has_lab || (ins[0].has_lab && ins[i].lab.dtype != ins[0].lab.dtype))
            rc = cli_usage_error(CMD, "%s: arr_1 differs from %s (missing or another dtype)", pos[i], pos[0]);
    }
    if (!rc) {
        me_zip_writer w;
        if (!(r = me_zip_writer_open(&w, out))) {
            r = write_member(&w, ins, n, 0);
            if (!r && ins[0].has_lab) r = write_member(&w, ins, n, 1);
            if (!r && ins[0].has_meta) r = cli_shard_write_meta(&w, &merged);
            if (r) me_zip_writer_abort(&w);
            else r = me_zip_writer_finish(&w);
        }
        if (r) rc = cli_fail(r);
    }
    if (!rc) {
        int64_t total = 0;
        for (int i = 0; i < n; i++) total += ins[i].img.shape[0];
        fprintf(stderr, "wrote %s: %lld sample%s from %d file%s\n", out, (long long)total, total == 1 ? "" : "s", n,
                n == 1 ? "" : "s");
    }
    for (int i = 0; i < opened; i++) close_input(&ins[i]);
    free(ins);
    free(metas);
    free(images);
    free(order);
    return rc;
}

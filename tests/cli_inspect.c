/* moedit inspect / convert, run as a separate process: JSON output on the
   fixtures (tiny models from tools/make_safetensors_fixtures.py, torch
   checkpoints from tools/make_weights_fixtures.py), and hostile files, which
   must give exit status 2 (not a signal) and one stderr line naming the file. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "tests/testutil.h"
#include "weights/formats.h"

#define ST FIXTURES "/safetensors/"

static char tmp[64];
static char out_text[1 << 16], err_text[4096];

static void setup(void) { tu_tmpdir(tmp, sizeof tmp, "cli"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(tmp), 0); }

TestSuite(inspect, .init = setup, .fini = teardown);

/* Runs MOEDIT_BIN with args (NULL-terminated); returns the exit status,
   failing the test if the process died from a signal. */
static int run(const char *const *args)
{
    char out_path[128], err_path[128];
    snprintf(out_path, sizeof out_path, "%s/stdout", tmp);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmp);
    int rc = tu_run(args, out_path, err_path);
    tu_read_text(out_path, out_text, sizeof out_text);
    tu_read_text(err_path, err_text, sizeof err_text);
    unlink(out_path);
    unlink(err_path);
    return rc;
}

static cJSON *inspect_json(const char *path, const char *flag, const char *value)
{
    const char *args[] = {"inspect", "--json", path, flag, value, NULL};
    int rc = run(args);
    cr_assert_eq(rc, 0, "inspect %s: exit %d: %s", path, rc, err_text);
    cr_assert_str_empty(err_text);
    cJSON *j = cJSON_Parse(out_text);
    cr_assert_not_null(j, "not JSON: %s", out_text);
    return j;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsString(v), "%s is not a string", key);
    return v->valuestring;
}

static void check_tiny_dit(const cJSON *j)
{
    cr_assert_str_eq(str(j, "family"), "dit");
    cr_assert_eq(num(j, "params"), 51680);   /* printed by the fixture script */
    cr_assert_eq(num(j, "tensors"), 32);
    cr_assert_eq(num(j, "depth"), 2);
    cr_assert_eq(num(j, "hidden"), 32);
    cr_assert_eq(num(j, "patch"), 2);
    cr_assert_eq(num(j, "input_size"), 8);
    cr_assert_eq(num(j, "in_channels"), 4);
    cr_assert_eq(num(j, "out_channels"), 8);
    cr_assert_eq(num(j, "num_classes"), 10);
    cr_assert_eq(num(j, "num_experts"), 0);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "learn_sigma")));
    cr_assert_str_eq(str(j, "attention"), "timm");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "routing")));
}

Test(inspect, json_dit_safetensors)
{
    cJSON *j = inspect_json(ST "tiny_dit.safetensors", "--heads", "4");
    check_tiny_dit(j);
    cr_assert_eq(num(j, "heads"), 4);
    cr_assert_eq(num(cJSON_GetObjectItem(j, "dtypes"), "F32"), 32);
    cJSON_Delete(j);
}

Test(inspect, json_dit_torch_zip)
{
    cJSON *j = inspect_json(ST "tiny_dit.pt", NULL, NULL);
    check_tiny_dit(j);
    cJSON_Delete(j);
}

Test(inspect, json_dit_moe_f16)
{
    cJSON *j = inspect_json(ST "tiny_moe.safetensors", "--top-k", "3");
    cr_assert_str_eq(str(j, "family"), "dit-moe");
    cr_assert_eq(num(j, "params"), 79840);
    cr_assert_eq(num(j, "tensors"), 34);
    cr_assert_eq(num(j, "num_experts"), 4);
    cr_assert_eq(num(j, "top_k"), 3);
    cr_assert_eq(num(j, "depth"), 1);
    cr_assert_eq(num(cJSON_GetObjectItem(j, "dtypes"), "F16"), 34);
    cJSON_Delete(j);
}

Test(inspect, json_vae_folder)
{
    cJSON *j = inspect_json(ST "diffusers_vae", NULL, NULL);
    cr_assert_str_eq(str(j, "family"), "vae");
    cr_assert_eq(num(j, "latent_channels"), 4);
    cr_assert_eq(num(j, "out_channels"), 3);
    cr_assert_eq(num(j, "upscale"), 2);
    cr_assert_float_eq(num(j, "scaling_factor"), 0.18215, 1e-9);
    const cJSON *b = cJSON_GetObjectItem(j, "block_out_channels");
    cr_assert_eq(cJSON_GetArraySize(b), 2);
    cr_assert_eq(cJSON_GetArrayItem(b, 0)->valueint, 8);
    cr_assert_eq(cJSON_GetArrayItem(b, 1)->valueint, 16);
    cJSON_Delete(j);
}

Test(inspect, json_ldm_vae_under_prefix)
{
    /* original LDM names inside a whole-model checkpoint: up.0 is the top
       (widest image, fewest channels), unlike diffusers' up_blocks.0 */
    static const float zeros[8 * 8 * 9];
    static const struct { const char *name; int64_t shape[4]; } t[] = {
        {"first_stage_model.decoder.conv_in.weight", {8, 4, 3, 3}},
        {"first_stage_model.decoder.up.0.block.0.conv1.weight", {2, 4, 3, 3}},
        {"first_stage_model.decoder.up.0.block.2.conv1.weight", {2, 2, 3, 3}},
        {"first_stage_model.decoder.up.1.block.0.conv1.weight", {4, 8, 3, 3}},
        {"first_stage_model.decoder.up.2.block.0.conv1.weight", {8, 8, 3, 3}},
        {"first_stage_model.decoder.conv_out.weight", {1, 2, 3, 3}},
        {"model.diffusion_model.out.2.weight", {4, 8, 3, 3}},
    };
    me_tensors *ts = me_tensors_new("mem");
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_assert_eq(me_tensors_add(ts, t[i].name, ME_F32, 4, t[i].shape, zeros), MOEDIT_OK);
    char path[160];
    snprintf(path, sizeof path, "%s/ldm.safetensors", tmp);
    cr_assert_eq(me_write_safetensors(ts, path, ME_F16), MOEDIT_OK, "%s", moedit_last_error());
    me_tensors_free(ts);

    cJSON *j = inspect_json(path, NULL, NULL);
    cr_assert_str_eq(str(j, "family"), "vae");
    cr_assert_str_eq(str(j, "naming"), "ldm");
    cr_assert_str_eq(str(j, "prefix"), "first_stage_model.");
    cr_assert_eq(num(j, "latent_channels"), 4);
    cr_assert_eq(num(j, "out_channels"), 1);
    cr_assert_eq(num(j, "layers_per_block"), 2);
    cr_assert_eq(num(j, "upscale"), 4);
    const cJSON *b = cJSON_GetObjectItem(j, "block_out_channels");
    cr_assert_eq(cJSON_GetArraySize(b), 3);
    cr_assert(cJSON_GetArrayItem(b, 0)->valueint == 2 && cJSON_GetArrayItem(b, 2)->valueint == 8);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "scaling_factor")));
    cJSON_Delete(j);
}

Test(inspect, json_unknown_torch_checkpoint)
{
    /* tests/fixtures/weights/plain.pt: a two-layer state_dict, no DiT */
    cJSON *j = inspect_json(FIXTURES "/weights/plain.pt", NULL, NULL);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "family")));
    cr_assert_eq(num(j, "tensors"), 4);
    cr_assert_eq(num(j, "params"), 12);
    cr_assert_not_null(strstr(str(j, "detect_error"), "x_embedder"));
    cJSON_Delete(j);
}

Test(inspect, human_output)
{
    const char *args[] = {"inspect", ST "tiny_moe.safetensors", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(out_text, "family       dit-moe"), "%s", out_text);
    cr_assert_not_null(strstr(out_text, "parameters   79,840 (79.8K)"), "%s", out_text);
    const char *line = strstr(out_text, "  blocks.0.moe.experts.3.down_proj.weight ");
    cr_assert_not_null(line, "%s", out_text);
    char row[160];
    snprintf(row, sizeof row, "%.*s", (int)strcspn(line, "\n"), line);
    cr_assert(strstr(row, " F16 ") && strstr(row, " [32,128]"), "%s", row);
    const char *train[] = {"inspect", FIXTURES "/weights/train.pt", NULL};
    cr_assert_eq(run(train), 0, "%s", err_text);
    cr_assert_not_null(strstr(out_text, "family       unknown"), "%s", out_text);
}

Test(inspect, long_listing_needs_all)
{
    static const float one = 1;
    me_tensors *ts = me_tensors_new("mem");
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "t%03d", i);
        me_tensors_add(ts, name, ME_F32, 0, NULL, &one);
    }
    char path[160];
    snprintf(path, sizeof path, "%s/many.safetensors", tmp);
    cr_assert_eq(me_write_safetensors(ts, path, ME_F32), MOEDIT_OK, "%s", moedit_last_error());
    me_tensors_free(ts);
    const char *brief[] = {"inspect", path, NULL};
    cr_assert_eq(run(brief), 0, "%s", err_text);
    cr_assert_not_null(strstr(out_text, "  t039 "));
    cr_assert_null(strstr(out_text, "  t040 "));
    cr_assert_not_null(strstr(out_text, "60 more"), "%s", out_text);
    const char *all[] = {"inspect", path, "--all", NULL};
    cr_assert_eq(run(all), 0, "%s", err_text);
    cr_assert_not_null(strstr(out_text, "  t099 "));
    cr_assert_null(strstr(out_text, "more"));
}

/* ---- hostile files and usage errors -------------------------------------- */

static void expect_one_line_error(const char *const *args, const char *names)
{
    int rc = run(args);
    cr_assert_eq(rc, 2, "moedit %s %s: exit %d (want 2): %s", args[0], args[1], rc, err_text);
    cr_assert(tu_one_line(err_text), "stderr is not one line: '%s'", err_text);
    if (names) cr_assert_not_null(strstr(err_text, names), "'%s' does not name %s", err_text, names);
}

static const char *write_bad(const char *name, const void *bytes, size_t n)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    tu_write_file(path, bytes, n);
    return path;
}

static const char *bad_header(const char *name, const char *hdr, size_t body)
{
    size_t n;
    uint8_t *buf = tu_safetensors(hdr, body, &n);
    const char *path = write_bad(name, buf, n);
    free(buf);
    return path;
}

Test(inspect, hostile_files)
{
    const char *files[] = {
        write_bad("empty.safetensors", "", 0),
        write_bad("trunc.safetensors", "\x40\0\0\0", 4),
        write_bad("past_eof.safetensors", "\x40\0\0\0\0\0\0\0{}", 10),
        write_bad("huge.safetensors", "\0\0\0\0\0\0\0\x80{}", 10),
        write_bad("garbage.pt", "PK\x03\x04garbage", 11),
        write_bad("random.bin", "\x13\x37\x00\xff", 4),
        bad_header("json.safetensors", "{\"a\":{", 0),
        bad_header("utf8.safetensors", "{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
        bad_header("newline.safetensors", "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
        bad_header("dtype.safetensors", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
        bad_header("shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,4]}}", 4),
        bad_header("offsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 4),
    };
    char out[160];
    snprintf(out, sizeof out, "%s/out.safetensors", tmp);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s", files[i]);
        const char *inspect[] = {"inspect", path, NULL};
        expect_one_line_error(inspect, path);
        const char *json[] = {"inspect", "--json", path, NULL};
        expect_one_line_error(json, path);
        cr_assert_str_empty(out_text, "partial output: %s", out_text);
        const char *convert[] = {"convert", path, "--out", out, NULL};
        expect_one_line_error(convert, path);
        cr_assert_eq(access(out, F_OK), -1, "convert left %s behind", out);
    }
    const char *missing[] = {"inspect", "/no/such/file.pt", NULL};
    expect_one_line_error(missing, "/no/such/file.pt");
    const char *folder[] = {"inspect", tmp, NULL};   /* a folder without config.json */
    expect_one_line_error(folder, tmp);
}

Test(inspect, usage_errors)
{
    const char *none[] = {"inspect", NULL};
    expect_one_line_error(none, NULL);
    const char *flag[] = {"inspect", ST "tiny_dit.pt", "--frobnicate", NULL};
    expect_one_line_error(flag, "--frobnicate");
    const char *heads[] = {"inspect", ST "tiny_dit.pt", "--heads", "many", NULL};
    expect_one_line_error(heads, "--heads");
    const char *no_out[] = {"convert", ST "tiny_dit.pt", NULL};
    expect_one_line_error(no_out, "--out");
    const char *dtype[] = {"convert", ST "tiny_dit.pt", "--out", "/tmp/x.safetensors", "--dtype", "f8", NULL};
    expect_one_line_error(dtype, "f8");
}

/* ---- convert ------------------------------------------------------------ */

/* A safetensors file named .pt (or .bin, .npz, …) loads in moedit, which
   reads contents, and fails in torch.load, diffusers and numpy, which go
   by the name: refused before anything is written. */
Test(inspect, convert_refuses_names_of_other_formats)
{
    char out[160];
    const char *names[] = {"x.pt", "x.PTH", "diffusion_pytorch_model.bin", "x.ckpt", "x.npz"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(out, sizeof out, "%s/%s", tmp, names[i]);
        const char *args[] = {"convert", ST "tiny_dit.pt", "--out", out, NULL};
        expect_one_line_error(args, "convert writes safetensors");
        cr_assert_eq(access(out, F_OK), -1, "convert wrote %s", out);
    }
    snprintf(out, sizeof out, "%s/x.safetensors", tmp);
    const char *args[] = {"convert", ST "tiny_dit.pt", "--out", out, NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
}

Test(inspect, convert_torch_to_f16_safetensors)
{
    char out[160];
    snprintf(out, sizeof out, "%s/tiny.safetensors", tmp);
    const char *args[] = {"convert", ST "tiny_dit.pt", "--out", out, "--dtype", "f16", "--heads", "4", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);

    me_tensors *conv, *ref;
    cr_assert_eq(me_read_safetensors(out, &conv), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_read_safetensors(ST "tiny_dit.safetensors", &ref), MOEDIT_OK);
    cr_assert_eq(me_tensors_count(conv), 32);
    cr_assert_str_eq(me_tensors_meta(conv, "format"), "moedit");
    cr_assert_str_eq(me_tensors_meta(conv, "family"), "dit");
    cr_assert_str_eq(me_tensors_meta(conv, "heads"), "4");
    cr_assert_str_eq(me_tensors_meta(conv, "top_k"), "2");
    cr_assert_str_eq(me_tensors_meta(conv, "depth"), "2");
    cr_assert_str_eq(me_tensors_meta(conv, "input_size"), "8");
    cr_assert_str_eq(me_tensors_meta(conv, "learn_sigma"), "true");
    cr_assert_str_eq(me_tensors_meta(conv, "attention"), "timm");
    cr_assert_str_eq(me_tensors_meta(conv, "routing"), "none");
    /* every tensor is the f16 rounding of the same state_dict's f32 values */
    for (int i = 0; i < me_tensors_count(ref); i++) {
        const me_tensor *r = me_tensors_at(ref, i), *c = me_tensors_find(conv, r->name);
        cr_assert_not_null(c, "%s missing", r->name);
        cr_assert_eq(c->dtype, ME_F16);
        cr_assert_eq(c->numel, r->numel);
        for (int64_t k = 0; k < r->numel; k++) {
            float v;
            uint16_t h;
            memcpy(&v, (const uint8_t *)r->data + 4 * k, 4);
            memcpy(&h, (const uint8_t *)c->data + 2 * k, 2);
            cr_assert_eq(h, me_f32_to_f16(v), "%s[%lld]", r->name, (long long)k);
        }
    }
    me_tensors_free(ref);
    me_tensors_free(conv);

    /* the recorded heads are honoured without --heads */
    cJSON *j = inspect_json(out, NULL, NULL);
    cr_assert_eq(num(j, "heads"), 4);
    cr_assert_eq(num(cJSON_GetObjectItem(j, "dtypes"), "F16"), 32);
    cJSON_Delete(j);
}

Test(inspect, convert_refuses_hints_for_unknown_model)
{
    char out[160];
    snprintf(out, sizeof out, "%s/x.safetensors", tmp);
    const char *args[] = {"convert", ST "mixed.safetensors", "--out", out, "--heads", "2", NULL};
    expect_one_line_error(args, "mixed.safetensors");
    cr_assert_eq(access(out, F_OK), -1);
    const char *nodir[] = {"convert", ST "tiny_dit.pt", "--out", "/no/such/dir/x.safetensors", NULL};
    expect_one_line_error(nodir, "/no/such/dir/x.safetensors");
}

/* Hints that do not fit the transformer (3 heads of hidden 16), or an
   explicit 0 (once read as "not given"): inspect exits 2 with one line as
   convert does, rather than printing "family unknown" or the defaults. */
Test(inspect, hints_that_do_not_fit_exit_2)
{
    const char *misfit[] = {"inspect", FIXTURES "/dit/moe_top2.pt", "--heads", "3", NULL};
    expect_one_line_error(misfit, "3 heads");
    const char *misfit_json[] = {"inspect", "--json", FIXTURES "/dit/moe_top2.pt", "--top-k", "9", NULL};
    expect_one_line_error(misfit_json, "top-k 9");
    cr_assert_str_empty(out_text, "partial output: %s", out_text);
    const char *zero_heads[] = {"inspect", FIXTURES "/dit/moe_top2.pt", "--heads", "0", NULL};
    expect_one_line_error(zero_heads, "--heads");
    char out[160];
    snprintf(out, sizeof out, "%s/zero.safetensors", tmp);
    const char *zero_top_k[] = {"convert", FIXTURES "/dit/moe_top2.pt", "--top-k", "0", "--out", out, NULL};
    expect_one_line_error(zero_top_k, "--top-k");
    cr_assert_eq(access(out, F_OK), -1, "convert wrote %s", out);
    const char *fits[] = {"inspect", FIXTURES "/dit/moe_top2.pt", "--heads", "2", NULL};
    cr_assert_eq(run(fits), 0, "%s", err_text);
}

/* A diffusers folder's --out onto its own weights file: cli_check_files
   compares the folder, not the files it is read from, and the convert
   replaced the .bin with safetensors bytes (exit 0, the folder unloadable). */
Test(inspect, convert_onto_the_input_folders_weights)
{
    cr_assert_eq(tu_system("cp -r " ST "diffusers_vae %s/vae", tmp), 0);
    char in[160], weights[200], before[200], out[200];
    snprintf(in, sizeof in, "%s/vae", tmp);
    snprintf(weights, sizeof weights, "%s/diffusion_pytorch_model.safetensors", in);
    snprintf(before, sizeof before, "%s/before", tmp);
    cr_assert_eq(tu_system("cp %s %s", weights, before), 0);
    const char *names[] = {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "config.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(out, sizeof out, "%s/%s", in, names[i]);
        const char *args[] = {"convert", in, "--out", out, "--dtype", "f16", NULL};
        expect_one_line_error(args, "--out");
    }
    cr_assert_eq(tu_system("cmp -s %s %s && test ! -e %s/diffusion_pytorch_model.bin", weights, before, in), 0,
                 "the input folder changed");
    snprintf(out, sizeof out, "%s/beside.safetensors", in);
    const char *beside[] = {"convert", in, "--out", out, NULL};
    cr_assert_eq(run(beside), 0, "%s", err_text);
}

/* A device whose every write fails with ENOSPC: one made in tmp where this
   runs as root (not trusting /dev's), else /dev/full if it is one; the test
   is skipped otherwise. */
static const char *full_device(void)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/full", tmp);
    struct stat st;
    if (geteuid() == 0 && mknod(path, S_IFCHR | 0600, makedev(1, 7)) == 0) {
        int fd = open(path, O_WRONLY);   /* fails on a nodev mount */
        if (fd >= 0) {
            close(fd);
            return path;
        }
        unlink(path);
    }
    if (stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 7)) return "/dev/full";
    cr_skip_test("no full device");
}

Test(inspect, stdout_write_error_reported)
{
    const char *full = full_device();
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/stderr", tmp);
    const char *args[] = {"inspect", "--json", ST "tiny_dit.safetensors", NULL};
    cr_assert_eq(tu_run(args, full, err_path), 1);
    tu_read_text(err_path, err_text, sizeof err_text);
    cr_assert_str_eq(err_text, "moedit: writing standard output: No space left on device\n");
    const char *help[] = {"--help", NULL};
    cr_assert_eq(tu_run(help, full, err_path), 1);
}

/* --out through a symbolic link writes the link's target; a FIFO is refused
   without waiting for a reader; a device is written, not replaced. */
Test(inspect, convert_out_link_fifo_device)
{
    char target[160], link[160], fifo[160];
    snprintf(target, sizeof target, "%s/target.safetensors", tmp);
    snprintf(link, sizeof link, "%s/link.safetensors", tmp);
    snprintf(fifo, sizeof fifo, "%s/fifo.safetensors", tmp);
    tu_write_file(target, "old", 3);
    cr_assert_eq(symlink("target.safetensors", link), 0);
    const char *to_link[] = {"convert", ST "tiny_dit.pt", "--out", link, NULL};
    cr_assert_eq(run(to_link), 0, "%s", err_text);
    struct stat st;
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
    me_tensors *t;
    cr_assert_eq(me_read_safetensors(target, &t), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_tensors_count(t), 32);
    me_tensors_free(t);

    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *to_fifo[] = {"convert", ST "tiny_dit.pt", "--out", fifo, NULL};
    expect_one_line_error(to_fifo, "fifo.safetensors: not a regular file");
    cr_assert(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));

    const char *full = full_device();
    const char *to_full[] = {"convert", ST "tiny_dit.pt", "--out", full, NULL};
    expect_one_line_error(to_full, "No space left on device");
    cr_assert(stat(full, &st) == 0 && S_ISCHR(st.st_mode), "the device was replaced");
}

/* The shipped-model aliases that sample, bench and fid-sample take: once
   "no such file" for inspect and convert, now the same models. */
Test(inspect, model_aliases)
{
    cJSON *j = inspect_json("fmnist-moe", NULL, NULL);
    cr_assert_str_eq(str(j, "family"), "dit-moe");
    cJSON_Delete(j);
    j = inspect_json("fmnist-vae", NULL, NULL);
    cr_assert_str_eq(str(j, "family"), "vae");
    cJSON_Delete(j);
    char out[160];
    snprintf(out, sizeof out, "%s/switch.safetensors", tmp);
    const char *args[] = {"convert", "fmnist-switch", "--out", out, NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(out_text, "family switch-dit"), "%s", out_text);
}

/* `moedit forward` of model on the inputs in tmp, with an optional --heads,
   to out (an .npy in tmp); the output's floats (the caller frees). */
static float *forward_of(const char *model, const char *heads, const char *out, int64_t *n)
{
    char x[192], t[192], y[192], o[192];
    snprintf(x, sizeof x, "%s/x.npy", tmp);
    snprintf(t, sizeof t, "%s/t.npy", tmp);
    snprintf(y, sizeof y, "%s/y.npy", tmp);
    snprintf(o, sizeof o, "%s/%s", tmp, out);
    const char *args[] = {"forward", "--model", model, "--x", x, "--t", t, "--y", y, "--out", o,
                          heads ? "--heads" : NULL, heads, NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    return tu_npy_f32(o, NULL, NULL, n);
}

/* A defaults.json beside a checkpoint names the heads its weights cannot
   tell; inspect, convert and forward take them as sample does (convert
   recorded the hidden size's default, 1 head for this fixture, and the
   converted file then ran another model than the original, silently). A
   flag still wins. */
Test(inspect, heads_from_the_defaults_json_beside_the_checkpoint)
{
    char model[192], json[192], conv[192];
    tu_model_copy(tmp, FIXTURES "/sampler/model_moe_top2.pt", model, sizeof model, json, sizeof json);
    tu_write_file(json, "{\"heads\": 2}", 12);
    cJSON *j = inspect_json(model, NULL, NULL);
    cr_assert_eq(num(j, "heads"), 2);
    cJSON_Delete(j);
    j = inspect_json(model, "--heads", "1");
    cr_assert_eq(num(j, "heads"), 1);
    cJSON_Delete(j);

    snprintf(conv, sizeof conv, "%s/c.safetensors", tmp);
    const char *convert[] = {"convert", model, "--out", conv, NULL};
    cr_assert_eq(run(convert), 0, "%s", err_text);
    j = inspect_json(conv, NULL, NULL);
    cr_assert_eq(num(j, "heads"), 2, "the converted file records other heads than its source ran with");
    cJSON_Delete(j);

    float x[2 * 4 * 8 * 8], t[2] = {10, 500};
    int64_t y[2] = {3, 10};
    for (int i = 0; i < 2 * 4 * 8 * 8; i++) x[i] = tu_counter_uniform(5, (uint64_t)i) * 2 - 1;
    cr_assert_eq(me_npy_write(tu_join(tmp, "x.npy"), ME_F32, 4, (int64_t[]){2, 4, 8, 8}, x), MOEDIT_OK);
    cr_assert_eq(me_npy_write(tu_join(tmp, "t.npy"), ME_F32, 1, (int64_t[]){2}, t), MOEDIT_OK);
    cr_assert_eq(me_npy_write(tu_join(tmp, "y.npy"), ME_I64, 1, (int64_t[]){2}, y), MOEDIT_OK);
    int64_t na, nb, nc;
    float *beside = forward_of(model, NULL, "a.npy", &na);
    float *flagged = forward_of(FIXTURES "/sampler/model_moe_top2.pt", "2", "b.npy", &nb);
    float *plain = forward_of(FIXTURES "/sampler/model_moe_top2.pt", NULL, "c.npy", &nc);
    cr_assert(na == nb && nb == nc);
    cr_assert(!memcmp(beside, flagged, sizeof(float) * (size_t)na), "forward did not take the file's heads");
    cr_assert(memcmp(beside, plain, sizeof(float) * (size_t)na), "one head and two gave the same output");
    free(beside);
    free(flagged);
    free(plain);
}

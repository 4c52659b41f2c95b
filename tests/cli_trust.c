/* Trust in what moedit reads and writes, as a user meets it (issue 16):
   corrupt checkpoints are refused naming the entry (--no-verify skips the
   check), NaN/inf weights naming the tensor, a diverging sampler or VAE stops
   instead of writing an image, malformed numbers in flags are refused, and a
   failed command leaves no file or folder: a full disk (ulimit -f), a
   missing trace, a held lock, a memory estimate over the limit. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/file.h>
#include "tests/testutil.h"
#include "weights/zip.h"

#define MODEL MOEDIT_SOURCE_DIR "/models/fmnist-moe/model.pt"
#define VAE MOEDIT_SOURCE_DIR "/models/fmnist-vae"

static char tmp[64], err[16384];
static void setup(void) { tu_tmpdir(tmp, sizeof tmp, "trust"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(tmp), 0); }
TestSuite(trust, .init = setup, .fini = teardown);

/* moedit with args (a shell word list); stderr into err; the exit status. */
static int moedit(const char *args)
{
    return tu_shell(err, sizeof err, "cd '%s' && '%s' %s", tmp, MOEDIT_BIN, args);
}

/* The same under `ulimit -f blocks` (1 KiB blocks): the disk fills up.
   stderr goes through a pipe (the limit would stop a file) and the status
   through a file outside tmp, written by the unlimited shell. */
static int moedit_limited(int blocks, const char *args)
{
    char status[] = "/tmp/moedit_status_XXXXXX";
    int fd = mkstemp(status);
    cr_assert_neq(fd, -1);
    close(fd);
    tu_shell(err, sizeof err, "(cd '%s' && { (ulimit -f %d; exec '%s' %s); echo $? > '%s'; } 2>&1 | cat >&2)", tmp,
             blocks, MOEDIT_BIN, args, status);
    char text[16];
    tu_read_text(status, text, sizeof text);
    unlink(status);
    return atoi(text);
}

/* The last line of err (the error after any progress lines). */
static const char *last_line(void)
{
    size_t n = strlen(err);
    while (n && err[n - 1] == '\n') n--;
    while (n && err[n - 1] != '\n') n--;
    return err + n;
}

/* Files and folders in tmp besides the ones the test made itself. */
static int leftovers(int own) { return tu_count_files(tmp) - own; }

/* A copy of the fmnist-moe checkpoint with one byte of model/data/3 flipped
   in its lowest mantissa bit (the value stays finite). */
static void corrupt_model(const char *name)
{
    size_t n;
    uint8_t *buf = (uint8_t *)tu_slurp(MODEL, &n);
    me_zip z;
    cr_assert_eq(me_zip_open_memory(&z, buf, n, "model.pt"), MOEDIT_OK);
    const uint8_t *p;
    uint64_t size;
    cr_assert_eq(me_zip_data(&z, me_zip_find_suffix(&z, "data/3"), &p, &size), MOEDIT_OK);
    buf[(p - buf) + 8] ^= 0x01;
    me_zip_close(&z);
    tu_write_file(tu_join(tmp, name), buf, n);
    free(buf);
}

Test(trust, corrupt_checkpoint_refused_naming_the_entry)
{
    corrupt_model("bad.pt");
    cr_assert_eq(moedit("sample --model bad.pt --vae " VAE " --class 1 --steps 2 --out o.png"), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "bad.pt: entry") && strstr(err, "data/3: CRC-32 mismatch"), "%s", err);
    cr_assert_eq(moedit("inspect bad.pt"), 2, "%s", err);
    cr_assert_eq(leftovers(1), 0);
    cr_assert_eq(moedit("sample --model bad.pt --no-verify --class 1 --steps 2 --no-vae --latents-out l.npy"), 0,
                 "%s", err);
    cr_assert(tu_exists(tu_join(tmp, "l.npy")));
}

/* convert to safetensors (no checksum), then set every element of tensor
   `name` to v: the finiteness checks are what stands between it and a PNG. */
static void patched_copy(const char *src, const char *out, const char *name, float v)
{
    char args[1024];
    snprintf(args, sizeof args, "convert '%s' --out %s", src, out);
    cr_assert_eq(moedit(args), 0, "%s", err);
    const char *path = tu_join(tmp, out);
    size_t n;
    uint8_t *buf = (uint8_t *)tu_slurp(path, &n);
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    char *header = strndup((const char *)buf + 8, hlen);
    cJSON *h = cJSON_Parse(header), *t = cJSON_GetObjectItem(h, name);
    cr_assert_not_null(t, "%s has no %s", out, name);
    cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
    size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, b = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    for (size_t i = a; i < b; i += 4) memcpy(buf + 8 + hlen + i, &v, 4);
    tu_write_file(path, buf, n);
    cJSON_Delete(h);
    free(header);
    free(buf);
}

Test(trust, nan_weight_refused_naming_the_tensor)
{
    patched_copy(MODEL, "nan.safetensors", "t_embedder.mlp.0.bias", NAN);
    cr_assert_eq(moedit("sample --model nan.safetensors --vae " VAE " --class 1 --steps 2 --out o.png"), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "tensor t_embedder.mlp.0.bias holds nan at index 0"), "%s", err);
    cr_assert_eq(leftovers(1), 0);
}

Test(trust, diverging_sampler_stops_naming_step_and_rows)
{
    patched_copy(MODEL, "huge.safetensors", "final_layer.linear.bias", 3e38f);
    cr_assert_eq(moedit("sample --model huge.safetensors --vae " VAE " --class 1,2,3 --steps 4 --out o.png"), 2,
                 "%s", err);
    cr_assert(strstr(last_line(), "non-finite values after step 1 of 4 (t = 999) in 3 of 3 rows: 0, 1, 2"), "%s", err);
    cr_assert_eq(leftovers(1), 0);
}

Test(trust, non_finite_vae_output_writes_no_image)
{
    patched_copy(VAE, "vae.safetensors", "decoder.conv_out.weight", 3e38f);
    cr_assert_eq(moedit("sample --class 1,2 --steps 2 --no-vae --latents-out z.npy"), 0, "%s", err);
    cr_assert_eq(moedit("decode --vae vae.safetensors --latent z.npy --out o.png"), 2, "%s", err);
    cr_assert(strstr(last_line(), "VAE decode: non-finite values in 2 of 2 decoded images: 0, 1"), "%s", err);
    cr_assert_eq(leftovers(2), 0);
}

Test(trust, numbers_in_flags)
{
    static const char *bad[] = {
        "sample --class 3 --cfg nan", "sample --class 3 --cfg inf", "sample --class 3 --cfg -inf",
        "sample --class 3 --cfg 3x", "sample --class 3 --cfg ''", "sample --class 3 --cfg 1e39",
        "sample --sampler ddim --eta nan", "sample --threads 4294967297", "sample --threads 100000",
        "decode --vae x --latent y --out z.png --threads 100000",
        "eval --ref r --features-out f.npz --samples s --threads 5000", "sample --top-k 99999999999",
        "sample --seed 18446744073709551616", "sample --seed -1", "sample --cfg-channels 3.5",
        "decode --vae x --latent y --out z.png --scaling-factor nan", "bench --batch 1e3",
        "fid-sample --npz a.npz --num 9999999999", "fid --inception i --samples s --ref r --batch 0x10",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(moedit(bad[i]), 2, "moedit %s: %s", bad[i], err);
        cr_assert(tu_one_line(err), "moedit %s: %s", bad[i], err);
    }
    cr_assert(strstr(err, "--batch: '0x10' is not an integer"), "%s", err);
    cr_assert_eq(leftovers(0), 0);
}

/* A mistyped flag or command is named with the one it is near (a letter
   off, two letters swapped, '_' for '-'); one near none, or near two alike,
   gets the pointer to --help instead. */
Test(trust, typos_named_with_the_nearest_flag_or_command)
{
    static const char *typo[][2] = {
        {"decode --latents z.npy", "unknown flag '--latents' (did you mean --latent?)"},
        {"sample --step 5", "unknown flag '--step' (did you mean --steps?)"},
        {"sample --cfg_interval 1,2", "unknown flag '--cfg_interval' (did you mean --cfg-interval?)"},
        {"sample --Class 1", "unknown flag '--Class' (did you mean --class?)"},
        {"heatmap t.bin --outt x", "unknown flag '--outt' (did you mean --out?)"},
        {"smaple", "unknown command 'smaple' (did you mean sample?)"},
        {"fid_sample", "unknown command 'fid_sample' (did you mean fid-sample?)"},
        {"sample --se 1", "unknown flag '--se' (see moedit sample --help)"},
        {"fid-sample --num-samples 5", "unknown flag '--num-samples' (see moedit fid-sample --help)"},
        {"merge", "unknown command 'merge' (moedit --help lists them)"},
        {"sample --theads 2", "unknown flag '--theads' (see moedit sample --help)"},   /* --heads or --threads */
    };
    for (size_t i = 0; i < sizeof typo / sizeof typo[0]; i++) {
        cr_assert_eq(moedit(typo[i][0]), 2, "moedit %s: %s", typo[i][0], err);
        cr_assert(tu_one_line(err), "moedit %s: %s", typo[i][0], err);
        cr_assert(strstr(err, typo[i][1]), "moedit %s: %s", typo[i][0], err);
    }
    cr_assert_eq(leftovers(0), 0);
}

/* No output may overwrite an input or another output, however the path is
   spelled; checked before any work, so nothing is written. */
Test(trust, outputs_never_name_inputs_or_each_other)
{
    cr_assert_eq(tu_system("cp '%s' '%s/m.pt'", MODEL, tmp), 0);
    static const char *own[] = {"z.npy", "a.npz", "s.npz", "r.npz", "t.trace"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) tu_write_file(tu_join(tmp, own[i]), "x", 1);
    static const char *bad[][2] = {
        {"fid-sample --npz a.npz --trace a.npz --num 4 --batch 2 --steps 2", "--npz and --trace"},
        {"fid-sample --model m.pt --npz m.npz --trace m.pt --num 4 --batch 2 --steps 2", "--model and --trace"},
        {"sample --model m.pt --class 1 --steps 2 --no-vae --latents-out l.npy --trace m.pt", "--model and --trace"},
        {"sample --vae " VAE " --class 1 --steps 2 --out o.png --trace ./o.png", "--out and --trace"},
        {"sample --vae " VAE " --class 1 --steps 2 --out o.png --trace ../$(basename $PWD)/o.png", "--out and --trace"},
        {"decode --vae " VAE " --latent z.npy --out z.npy", "--latent and --out"},
        {"convert m.pt --out ./m.pt", "IN and --out"},
        {"npz-merge --out a.npz s.npz a.npz", "--out and an input"},
        {"eval --samples s.npz --ref r.npz --json r.npz", "--json and --ref"},
        {"eval --samples s.npz,a.npz --features-out a.npz", "--features-out and --samples"},
        {"eval --samples s.npz --ref r.npz --json j.json --stats-out j.json", "--json and --stats-out"},
        {"eval --samples s.npz --ref r.npz --json f.npz.partial --features-out f.npz", "--json and --features-out's"},
        {"heatmap t.trace --out nodir/h", "nodir"},
        {"heatmap t.trace --out t.trace", "a file, not a folder"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(moedit(bad[i][0]), 2, "moedit %s: %s", bad[i][0], err);
        cr_assert(tu_one_line(err) && strstr(err, bad[i][1]), "moedit %s: %s", bad[i][0], err);
        cr_assert_eq(leftovers(6), 0, "moedit %s left a file behind", bad[i][0]);
    }
    size_t lm, lo;
    char *model = tu_slurp(tu_join(tmp, "m.pt"), &lm), *orig = tu_slurp(MODEL, &lo);
    cr_assert(model && orig && lm == lo && !memcmp(model, orig, lo), "the checkpoint was changed");
    free(model);
    free(orig);
}

Test(trust, failed_heatmap_leaves_no_folder)
{
    tu_write_file(tu_join(tmp, "empty.trace"), "", 0);
    cr_assert_eq(moedit("heatmap empty.trace --out h"), 2, "%s", err);
    cr_assert(!tu_exists(tu_join(tmp, "h")));
    cr_assert_eq(leftovers(1), 0);
}

Test(trust, full_disk_leaves_no_file)
{
    static const char *writes[] = {
        "sample --class 1,2 --steps 2 --no-vae --latents-out l.npy",
        "sample --class 1,2 --steps 2 --outdir d",
        "sample --class 1,2 --steps 2 --out g.png",
        "sample --class 1,2 --steps 2 --no-vae --latents-out l.npy --trace t.bin",
        "convert " MODEL " --out m.safetensors",
        "fid-sample --npz f.npz --num 4 --batch 2 --steps 2",
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        int st = moedit_limited(0, writes[i]);
        cr_assert_neq(st, 0, "moedit %s succeeded on a full disk", writes[i]);
        cr_assert(strstr(err, "File too large"), "moedit %s: %s", writes[i], err);
        cr_assert_eq(leftovers(0), 0, "moedit %s left a file behind", writes[i]);
    }
}

Test(trust, second_fid_sample_on_one_npz_refused)
{
    int fd = open(tu_join(tmp, "f.npz.lock"), O_RDWR | O_CREAT, 0644);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);
    cr_assert_eq(moedit("fid-sample --npz f.npz --num 4 --batch 2 --steps 2"), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "another run is writing the same output (f.npz.lock is locked)"), "%s",
              err);
    cr_assert_eq(leftovers(1), 0);
    close(fd);
    cr_assert_eq(moedit("fid-sample --npz f.npz --num 4 --batch 2 --steps 2"), 0, "%s", err);
    cr_assert(tu_exists(tu_join(tmp, "f.npz")) && !tu_exists(tu_join(tmp, "f.npz.lock")));
}

/* The budget less the weights the run has loaded: under 0.06 GiB. */
Test(trust, memory_estimate_over_the_limit)
{
    cr_assert_eq(tu_shell(err, sizeof err, "cd '%s' && MOEDIT_MEMORY_LIMIT=60000000 '%s' fid-sample --npz f.npz "
                                           "--num 8192 --batch 4096 --steps 2", tmp, MOEDIT_BIN), 2, "%s", err);
    const char *line = last_line(), *avail = strstr(line, "more than the ");
    cr_assert(strstr(line, "the activations of 8192 rows would need") && avail &&
              strstr(avail, " GiB of memory available"), "%s", err);
    double gib = atof(avail + strlen("more than the "));
    cr_assert(gib > 0.0 && gib < 0.055, "%s", err);
    cr_assert_eq(leftovers(0), 0);
}

/* moedit decode: latents from a .npy file through the VAE decoder, written
   as the raw decoder output (.npy) or as a picture grid (.png). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "image/image.h"
#include "weights/npy.h"

static int scaling_set(float f) { return !isnan(f); }

int cmd_decode(int argc, char **argv)
{
    const char *vae_path = NULL, *latent = NULL, *out = NULL, *device = NULL;
    float scaling = NAN;   /* unset */
    int threads = INT_MIN, cols = 0, help = 0, timed = 0, repeat = 1, no_verify = 0, vae_bf16 = 0;
    const cli_flag flags[] = {
        {"--vae", CLI_STR, &vae_path, "DIR|FILE", "diffusers AutoencoderKL folder or weights file"},
        {"--latent", CLI_STR, &latent, "Z.npy", "float [N,C,h,w] latents as sampled (not yet scaled)"},
        {"--out", CLI_STR, &out, "OUT.npy|OUT.png", "raw float32 [N,C,H,W], or a PNG grid"},
        {"--scaling-factor", CLI_FLOAT, &scaling, "F", "divide latents by F (default: config.json, else 0.18215)"},
        {"--cols", CLI_INT, &cols, "N", "grid columns (default: ceil(sqrt(N)))"},
        {"--vae-bf16", CLI_BOOL, &vae_bf16, NULL, CLI_VAE_BF16_HELP},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP},
        {"--time", CLI_BOOL, &timed, NULL, "print decode_ms (the decode alone, loading excluded) on stderr"},
        {"--repeat", CLI_INT, &repeat, "N", "decode N times in this process, the output written once (timing: with --time, one decode_ms per pass)"},
        {"--device", CLI_STR, &device, "cpu", "(the VAE has no CUDA path yet)"},
        {"--no-verify", CLI_BOOL, &no_verify, NULL, CLI_NO_VERIFY_HELP},
        {"--help", CLI_BOOL, &help, NULL, "this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse("decode", argc, argv, flags, pos, 0, &npos)) return 2;
    if (help) {
        cli_usage("decode", "--vae DIR|FILE --latent Z.npy --out OUT.png|OUT.npy [--scaling-factor F]", flags);
        return 0;
    }
    if (!vae_path || !latent || !out) return cli_usage_error("decode", "--vae, --latent and --out are required");
    int png = cli_has_ext(out, ".png");
    if (!png && !cli_has_ext(out, ".npy")) return cli_usage_error("decode", "--out %s: must end in .png or .npy", out);
    if (scaling_set(scaling) && !(scaling > 0 && isfinite(scaling)))
        return cli_usage_error("decode", "--scaling-factor must be a positive number");
    if (cols < 0) return cli_usage_error("decode", "--cols must not be negative");
    if (repeat < 1 || repeat > 1000) return cli_usage_error("decode", "--repeat must be 1 to 1000");
    if (cli_cpu_only("decode", device, "the VAE")) return 2;
    const cli_file files[] = {{"--vae", vae_path, CLI_IN}, {"--latent", latent, CLI_IN}, {"--out", out, CLI_OUT}};
    if (cli_check_files("decode", files, 3)) return 2;
    if (cli_threads("decode", threads)) return 2;

    moedit_vae *v = NULL;
    me_array z = {0};
    float *zf = NULL, *img = NULL;
    int rc = me_npy_read(latent, &z);
    if (!rc) rc = moedit_vae_load(vae_path, &v);
    if (!rc && vae_bf16) rc = moedit_vae_set_bf16(v, 1);
    if (rc) {
        rc = cli_fail(rc);
        goto done;
    }
    int lc = moedit_vae_latent_channels(v), oc = moedit_vae_out_channels(v), up = moedit_vae_upscale(v);
    int is_float = z.dtype == ME_F32 || z.dtype == ME_F64 || z.dtype == ME_F16 || z.dtype == ME_BF16;
    /* One latent may come without its batch dimension. */
    int64_t n = z.ndim == 4 ? z.shape[0] : 1, off = z.ndim == 4 ? 1 : 0;
    if (!is_float || (z.ndim != 3 && z.ndim != 4) || n < 1 || z.shape[off] != lc || z.shape[off + 1] < 1 ||
        z.shape[off + 2] < 1 || z.shape[off + 1] > 4096 || z.shape[off + 2] > 4096 || n > (1 << 20)) {
        char got[160];
        rc = cli_usage_error("decode", "%s: expected float latents [N,%d,h,w], got %s %s", latent, lc,
                             me_dtype_name(z.dtype), me_shape_str(z.ndim, z.shape, got, sizeof got));
        goto done;
    }
    if (png && oc != 1 && oc != 3) {
        rc = cli_usage_error("decode", "%s: the VAE makes %d-channel images; write .npy instead", out, oc);
        goto done;
    }
    int h = (int)z.shape[off + 1], w = (int)z.shape[off + 2];
    me_grid_style style = {.cols = cols, .pad = -1};
    int gw, gh;
    /* the grid's size follows from the shapes alone: one past
       ME_GRID_MAX_PX is refused here, not after the decode */
    if (png && me_grid_size((int)n, h * up, w * up, &style, &gw, &gh)) {
        rc = cli_usage_error("decode", "--out %s: %s (change --cols, decode fewer latents, or write .npy)", out,
                             moedit_last_error());
        goto done;
    }
    float s = scaling_set(scaling) ? scaling : moedit_vae_scaling_factor(v);
    size_t zn = (size_t)z.numel, in = (size_t)n * oc * h * up * w * up;
    if ((rc = me_memory_check(sizeof(float) * ((double)zn + (double)in), "the latents and decoded images"))) {
        rc = cli_fail(rc);
        goto done;
    }
    zf = malloc(zn * sizeof *zf);
    img = malloc(in * sizeof *img);
    if (!zf || !img) {
        fprintf(stderr, "moedit: out of memory for %lld decoded images\n", (long long)n);
        rc = 1;
        goto done;
    }
    me_array_to_f32(&z, zf);
    float peak = cli_latents_peak(zn, zf);
    if (!isfinite(peak)) {
        rc = cli_usage_error("decode", "%s: the latents hold NaN or inf", latent);
        goto done;
    }
    for (size_t i = 0; i < zn; i++) zf[i] /= s;
    for (int pass = 0; pass < repeat && !rc; pass++) {
        double t0 = cli_now();
        rc = moedit_vae_decode(v, (int)n, h, w, zf, img);
        if (!rc && timed) fprintf(stderr, "decode_ms: %.1f\n", (cli_now() - t0) * 1e3);
    }
    if (!rc) {
        int64_t shape[4] = {n, oc, (int64_t)h * up, (int64_t)w * up};
        if (png) rc = me_grid_write_png(out, (int)n, oc, h * up, w * up, img, &style);
        else rc = me_npy_write(out, ME_F32, 4, shape, img);
    }
    if (!rc) cli_warn_blown_up("decode", NULL, peak);   /* with the output, not before a failure */
    if (rc) rc = cli_fail(rc);
done:
    free(zf);
    free(img);
    me_array_free(&z);
    moedit_vae_free(v);
    return rc;
}

/* The AutoencoderKL decoder against PyTorch (tools/make_vae_fixtures.py):
   a diffusers folder, an LDM-named float16 checkpoint without config, and
   the full sd-vae-ft-mse architecture with counter-generated weights. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moedit.h"
#include "vae/vae.h"
#include "weights/npy.h"
#include "tests/testutil.h"

static float *load_npy(const char *name, int ndim_want, int64_t *shape)
{
    char path[512];
    int ndim;
    snprintf(path, sizeof path, "%s/vae/%s", FIXTURES, name);
    float *v = tu_npy_f32(path, &ndim, shape, NULL);
    cr_assert_eq(ndim, ndim_want);
    return v;
}

/* The task's criterion: max |moedit - torch| <= 1e-3 · max |torch|. */
static void expect_close(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++) cr_assert(isfinite(got[i]), "%s: non-finite output at %zu", what, i);
    double maxref, maxerr = tu_max_error(got, want, n, &maxref);
    cr_log_info("%s: max error %.3g, max |ref| %.3g", what, maxerr, maxref);
    cr_assert(maxerr <= 1e-3 * maxref, "%s: max error %g vs max |ref| %g", what, maxerr, maxref);
}

/* Decodes latent file / scaling factor and compares with the expected file. */
static void decode_case(moedit_vae *v, const char *latent, const char *expected, float scale)
{
    int64_t zs[4], es[4];
    float *z = load_npy(latent, 4, zs);
    float *want = load_npy(expected, 4, es);
    int up = moedit_vae_upscale(v);
    cr_assert_eq(es[0], zs[0]);
    cr_assert_eq(es[1], moedit_vae_out_channels(v));
    cr_assert_eq(es[2], zs[2] * up);
    cr_assert_eq(es[3], zs[3] * up);
    size_t zn = (size_t)(zs[0] * zs[1] * zs[2] * zs[3]), en = (size_t)(es[0] * es[1] * es[2] * es[3]);
    for (size_t i = 0; i < zn; i++) z[i] /= scale;
    float *img = malloc(en * sizeof *img);
    cr_assert_eq(moedit_vae_decode(v, (int)zs[0], (int)zs[2], (int)zs[3], z, img), MOEDIT_OK, "%s",
                 moedit_last_error());
    expect_close(expected, img, want, en);
    /* Again with the workspace already there, and one sample alone. */
    memset(img, 0, en * sizeof *img);
    cr_assert_eq(moedit_vae_decode(v, 1, (int)zs[2], (int)zs[3], z, img), MOEDIT_OK);
    expect_close(expected, img, want, en / (size_t)zs[0]);
    free(z); free(want); free(img);
}

Test(vae, diffusers_folder)
{
    moedit_vae *v;
    cr_assert_eq(moedit_vae_load(FIXTURES "/vae/small", &v), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_float_eq(moedit_vae_scaling_factor(v), 0.5f, 0);
    cr_assert_eq(moedit_vae_latent_channels(v), 4);
    cr_assert_eq(moedit_vae_out_channels(v), 1);
    cr_assert_eq(moedit_vae_upscale(v), 4);
    cr_assert_eq(v->cfg.norm_num_groups, 8);
    decode_case(v, "small_latent.npy", "small_expected.npy", moedit_vae_scaling_factor(v));
    moedit_vae_free(v);
}

Test(vae, ldm_checkpoint_float16_no_config)
{
    moedit_vae *v;
    cr_assert_eq(moedit_vae_load(FIXTURES "/vae/ldm_small.pt", &v), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_float_eq(moedit_vae_scaling_factor(v), 0.18215f, 0);
    cr_assert_eq(moedit_vae_out_channels(v), 3);
    cr_assert_eq(moedit_vae_upscale(v), 2);
    cr_assert_eq(v->cfg.block_out_channels[0], 32);
    cr_assert_eq(v->cfg.layers_per_block, 1);
    decode_case(v, "ldm_latent.npy", "ldm_expected.npy", moedit_vae_scaling_factor(v));
    moedit_vae_free(v);
}

/* ---- sd-vae-ft-mse with counter weights (mirrors tools/vae_reference.py) ---- */

/* Norm weights 1 + 0.1·r, biases 0.1·r, other weights r / sqrt(fan_in). */
static void counter_tensor(const char *name, int ndim, const int64_t *shape, int64_t numel, float *v)
{
    uint64_t key = tu_fnv1a64(name);
    size_t len = strlen(name);
    int is_weight = len >= 6 && !strcmp(name + len - 6, "weight");
    float scale = (float)(1.0 / sqrt((double)(numel / shape[0])));
    for (int64_t i = 0; i < numel; i++) {
        float r = tu_counter_uniform(key, (uint64_t)i);
        if (ndim == 1) v[i] = is_weight ? 0.1f * r + 1.0f : 0.1f * r;
        else v[i] = r * scale;
    }
}

static me_tensors *sdvae_registry(void)
{
    FILE *f = fopen(FIXTURES "/vae/sdvae_manifest.txt", "r");
    cr_assert_not_null(f);
    me_tensors *ts = me_tensors_new("sd-vae-ft-mse (counter weights)");
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char name[256];
        int64_t shape[4] = {0};
        int off, ndim = 0;
        cr_assert_eq(sscanf(line, "%255s%n", name, &off), 1);
        for (char *p = line + off; ndim < 4;) {
            char *end;
            long long d = strtoll(p, &end, 10);
            if (end == p) break;
            shape[ndim++] = d;
            p = end;
        }
        int64_t numel = 1;
        for (int i = 0; i < ndim; i++) numel *= shape[i];
        float *data = me_tensors_own_alloc(ts, (size_t)numel * sizeof *data);
        cr_assert_not_null(data);
        counter_tensor(name, ndim, shape, numel, data);
        cr_assert_eq(me_tensors_add(ts, name, ME_F32, ndim, shape, data), MOEDIT_OK);
    }
    fclose(f);
    return ts;
}

Test(vae, sd_vae_ft_mse_architecture, .timeout = 300)
{
    moedit_vae *v;
    cr_assert_eq(vae_from_tensors(sdvae_registry(), &v), MOEDIT_OK, "%s", moedit_last_error());
    const vae_config *c = &v->cfg;
    cr_assert_eq(c->num_blocks, 4);
    cr_assert_eq(c->block_out_channels[0], 128);
    cr_assert_eq(c->block_out_channels[3], 512);
    cr_assert_eq(c->layers_per_block, 2);
    cr_assert_eq(c->norm_num_groups, 32);
    cr_assert(c->mid_attention && c->post_quant_conv);
    cr_assert_eq(moedit_vae_upscale(v), 8);
    decode_case(v, "sdvae_latent.npy", "sdvae_expected.npy", 1.0f);
    moedit_vae_free(v);
}

/* MOEDIT_MEMORY_LIMIT covers the packed weights too (4× the layer's floats
   where the 3×3 layers run by Winograd): a budget the raw weights fit but
   the packs do not is refused at load, naming them. */
Test(vae, packed_weights_within_the_memory_budget, .timeout = 300)
{
    op_conv_shape s = {512, 512, 3, 3, 1, 1, 1, 0};
    if (op_conv_bytes(&s, 0) == 0) cr_skip_test("OpenBLAS: nothing is packed");
    me_tensors *ts = sdvae_registry();
    char budget[32];
    snprintf(budget, sizeof budget, "%.0f", (double)me_memory_held() + 32e6);
    setenv("MOEDIT_MEMORY_LIMIT", budget, 1);
    moedit_vae *v = NULL;
    int rc = vae_from_tensors(ts, &v);
    unsetenv("MOEDIT_MEMORY_LIMIT");
    cr_assert_eq(rc, MOEDIT_EINPUT, "a 32 MB budget let the packs through");
    cr_assert_not_null(strstr(moedit_last_error(), "packed convolution weights"), "%s", moedit_last_error());
}

/* ---- bf16 (moedit_vae_set_bf16) ------------------------------------------------ */

/* Decodes with bf16 convolutions and returns (max error, RMS error) against
   PyTorch's float32 decode, relative to max |torch|, after checking that
   the bf16 result is not the float32 one (the setting reaches the kernels)
   and that switching back restores float32 bit for bit. */
static void bf16_case(moedit_vae *v, const char *latent, const char *expected, float scale, double max_rel,
                      double rms_rel)
{
    int64_t zs[4], es[4];
    float *z = load_npy(latent, 4, zs), *want = load_npy(expected, 4, es);
    size_t zn = (size_t)(zs[0] * zs[1] * zs[2] * zs[3]), en = (size_t)(es[0] * es[1] * es[2] * es[3]);
    for (size_t i = 0; i < zn; i++) z[i] /= scale;
    float *f32 = malloc(en * sizeof *f32), *b16 = malloc(en * sizeof *b16), *again = malloc(en * sizeof *again);
    int n = (int)zs[0], h = (int)zs[2], w = (int)zs[3];
    cr_assert_eq(moedit_vae_decode(v, n, h, w, z, f32), MOEDIT_OK);
    cr_assert_eq(moedit_vae_set_bf16(v, 1), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(moedit_vae_decode(v, n, h, w, z, b16), MOEDIT_OK, "%s", moedit_last_error());
    double maxref, maxerr = tu_max_error(b16, want, en, &maxref), sq = 0;
    size_t differ = 0;
    for (size_t i = 0; i < en; i++) {
        sq += ((double)b16[i] - want[i]) * ((double)b16[i] - want[i]);
        differ += b16[i] != f32[i];
    }
    double rms = sqrt(sq / (double)en);
    cr_log_info("%s bf16: max error %.3g, RMS %.3g, max |ref| %.3g; %zu of %zu values differ from float32", expected,
                maxerr, rms, maxref, differ, en);
    cr_assert(differ > en / 2, "%s: bf16 changed only %zu of %zu values", expected, differ, en);
    cr_assert(maxerr <= max_rel * maxref, "%s bf16: max error %g vs max |ref| %g", expected, maxerr, maxref);
    cr_assert(rms <= rms_rel * maxref, "%s bf16: RMS error %g vs max |ref| %g", expected, rms, maxref);
    cr_assert_eq(moedit_vae_set_bf16(v, 0), MOEDIT_OK);
    cr_assert_eq(moedit_vae_decode(v, n, h, w, z, again), MOEDIT_OK);
    cr_assert_eq(memcmp(again, f32, en * sizeof *f32), 0, "float32 not restored");
    free(z); free(want); free(f32); free(b16); free(again);
}

/* Where only OpenBLAS runs (MOEDIT_NO_AVX2=1: the vae_decode_openblas
   test), bf16 is refused and the decoder stays float32. */
static int bf16_refused(moedit_vae *v)
{
    if (op_conv_bf16_ok()) return 0;
    cr_assert_eq(moedit_vae_set_bf16(v, 1), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "bf16"), "%s", moedit_last_error());
    return 1;
}

/* Bounds, relative to max |torch|: bfloat16 keeps 8 significant bits
   (rounding ≤ 2^-9 ≈ 0.2 % per operand), and the errors add up through the
   decoder's convolutions. Measured (2026-11-30, AVX2 emulation): small max
   1.2 %, RMS 0.24 %; sd-vae max 1.8 %, RMS 0.34 %. The bounds (3 %, 0.6 %)
   leave room for the AVX512-BF16 kernels' different summation order. */
Test(vae, bf16_small_against_torch_float32)
{
    moedit_vae *v;
    cr_assert_eq(moedit_vae_load(FIXTURES "/vae/small", &v), MOEDIT_OK, "%s", moedit_last_error());
    if (!bf16_refused(v)) bf16_case(v, "small_latent.npy", "small_expected.npy", 0.5f, 3e-2, 6e-3);
    moedit_vae_free(v);
}

Test(vae, bf16_sd_vae_against_torch_float32, .timeout = 300)
{
    moedit_vae *v;
    cr_assert_eq(vae_from_tensors(sdvae_registry(), &v), MOEDIT_OK, "%s", moedit_last_error());
    if (!bf16_refused(v)) bf16_case(v, "sdvae_latent.npy", "sdvae_expected.npy", 1.0f, 3e-2, 6e-3);
    moedit_vae_free(v);
}

/* ---- errors ---------------------------------------------------------------------- */

Test(vae, config_errors)
{
    vae_config c;
    cr_assert_eq(vae_config_parse("{\"block_out_channels\": [16, 24], \"norm_num_groups\": 16}", "c.json", &c),
                 MOEDIT_EINPUT);
    cr_assert_str_eq(moedit_last_error(), "c.json: norm_num_groups 16 does not divide 24 channels");
    cr_assert_eq(vae_config_parse("{\"_class_name\": \"UNet2DModel\"}", "c.json", &c), MOEDIT_EINPUT);
    cr_assert_eq(vae_config_parse("{\"act_fn\": \"gelu\"}", "c.json", &c), MOEDIT_EINPUT);
    cr_assert_eq(vae_config_parse("{\"layers_per_block\": -1}", "c.json", &c), MOEDIT_EINPUT);
    cr_assert_eq(vae_config_parse("{\"scaling_factor\": 0}", "c.json", &c), MOEDIT_EINPUT);
    cr_assert_eq(vae_config_parse("[1]", "c.json", &c), MOEDIT_EINPUT);
    cr_assert_eq(vae_config_parse("{\"block_out_channels\": [64, 128], \"scaling_factor\": 0.13025}", "c.json", &c),
                 MOEDIT_OK);
    cr_assert_eq(c.num_blocks, 2);
    cr_assert_float_eq(c.scaling_factor, 0.13025f, 0);
    cr_assert_eq(c.layers_per_block, 1);   /* diffusers' default */
}

Test(vae, missing_and_misshapen_tensors)
{
    moedit_vae *v;
    me_tensors *ts = me_tensors_new("empty.pt");
    cr_assert_eq(vae_from_tensors(ts, &v), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "no VAE decoder"), "%s", moedit_last_error());

    /* Drop one tensor of the real architecture: the message names it. */
    me_tensors *full = sdvae_registry();
    ts = me_tensors_new("broken.safetensors");
    for (int i = 0; i < me_tensors_count(full); i++) {
        const me_tensor *t = me_tensors_at(full, i);
        if (!strcmp(t->name, "decoder.up_blocks.2.resnets.0.conv_shortcut.bias")) continue;
        me_tensors_add(ts, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    cr_assert_eq(vae_from_tensors(ts, &v), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "decoder.up_blocks.2.resnets.0.conv_shortcut.bias"), "%s",
                       moedit_last_error());

    /* A config that disagrees with the weights. */
    ts = me_tensors_new("mismatch");
    for (int i = 0; i < me_tensors_count(full); i++) {
        const me_tensor *t = me_tensors_at(full, i);
        me_tensors_add(ts, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    me_tensors_set_meta(ts, "config.json", "{\"block_out_channels\": [128, 256, 512, 256], \"layers_per_block\": 2}");
    cr_assert_eq(vae_from_tensors(ts, &v), MOEDIT_EINPUT);
    cr_assert_not_null(strstr(moedit_last_error(), "expected"), "%s", moedit_last_error());

    /* A config that describes less than the weights hold: the first tensor it
       would leave unused is named, for each way of leaving some out. */
#define SDVAE "\"block_out_channels\": [128, 256, 512, 512], \"layers_per_block\": "
    const char *fewer[][2] = {
        {"{" SDVAE "1}", "layers_per_block leaves tensor decoder.up_blocks.0.resnets.2.conv1.weight"},
        {"{\"block_out_channels\": [256, 512, 512], \"layers_per_block\": 2}",
         "block_out_channels leaves tensor decoder.up_blocks.3."},
        {"{" SDVAE "2, \"mid_block_add_attention\": false}",
         "mid_block_add_attention leaves tensor decoder.mid_block.attentions.0."},
        {"{" SDVAE "2, \"use_post_quant_conv\": false}", "use_post_quant_conv leaves tensor post_quant_conv.weight"},
    };
#undef SDVAE
    for (int k = 0; k < 4; k++) {
        ts = me_tensors_new("fewer");
        for (int i = 0; i < me_tensors_count(full); i++) {
            const me_tensor *t = me_tensors_at(full, i);
            me_tensors_add(ts, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
        me_tensors_set_meta(ts, "config.json", fewer[k][0]);
        cr_assert_eq(vae_from_tensors(ts, &v), MOEDIT_EINPUT, "%s", fewer[k][0]);
        cr_assert_not_null(strstr(moedit_last_error(), fewer[k][1]), "%s", moedit_last_error());
    }
    me_tensors_free(full);

    cr_assert_eq(moedit_vae_load(FIXTURES "/vae/no-such-vae", &v), MOEDIT_EINPUT);
}

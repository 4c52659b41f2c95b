/* diffusers folders: config.json kept as metadata, safetensors / torch .bin /
   sharded weights, and the messages for broken folders. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "weights/formats.h"
#include "tests/testutil.h"

#define DIR_OF(x) FIXTURES "/safetensors/" x

Test(diffusers, vae_folder)
{
    me_tensors *ts, *direct;
    cr_assert_eq(me_tensors_open(DIR_OF("diffusers_vae"), &ts), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_tensors_count(ts), 10);
    const char *cfg = me_tensors_meta(ts, "config.json");
    cr_assert_not_null(cfg);
    cJSON *j = cJSON_Parse(cfg);
    cr_assert_not_null(j);
    cr_assert_eq(cJSON_GetObjectItem(j, "latent_channels")->valueint, 4);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "scaling_factor")->valuedouble, 0.18215, 1e-12);
    cJSON_Delete(j);

    /* the same tensors as the weights file read on its own */
    cr_assert_eq(me_read_safetensors(DIR_OF("diffusers_vae/diffusion_pytorch_model.safetensors"), &direct),
                 MOEDIT_OK);
    const float *a, *b;
    cr_assert_eq(me_tensors_f32(ts, "decoder.conv_in.weight", 4, (int64_t[]){16, 4, 3, 3}, &a), MOEDIT_OK);
    cr_assert_eq(me_tensors_f32(direct, "decoder.conv_in.weight", 4, (int64_t[]){16, 4, 3, 3}, &b), MOEDIT_OK);
    cr_assert(!memcmp(a, b, 16 * 4 * 9 * sizeof(float)));
    cr_assert_null(me_tensors_meta(direct, "config.json"));
    me_tensors_free(direct);
    me_tensors_free(ts);
}

Test(diffusers, torch_bin_folder)
{
    me_tensors *ts;
    cr_assert_eq(me_read_diffusers(DIR_OF("diffusers_bin"), &ts), MOEDIT_OK, "%s", moedit_last_error());
    const float *w, *b;
    cr_assert_eq(me_tensors_f32(ts, "w", 2, (int64_t[]){2, 3}, &w), MOEDIT_OK, "%s", moedit_last_error());
    for (int i = 0; i < 6; i++) cr_assert_eq(w[i], (float)i);
    cr_assert_eq(me_tensors_f32(ts, "b", 1, (int64_t[]){2}, &b), MOEDIT_OK);
    cr_assert_eq(b[1], -0.5f);
    cr_assert_not_null(strstr(me_tensors_meta(ts, "config.json"), "\"sample_size\": 4"));
    me_tensors_free(ts);
}

Test(diffusers, sharded_folder)
{
    me_tensors *ts;
    cr_assert_eq(me_read_diffusers(DIR_OF("diffusers_sharded"), &ts), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_tensors_count(ts), 2);
    const float *x, *y;
    cr_assert_eq(me_tensors_f32(ts, "x", 1, (int64_t[]){4}, &x), MOEDIT_OK);
    cr_assert_eq(me_tensors_f32(ts, "y", 1, (int64_t[]){2}, &y), MOEDIT_OK);
    cr_assert(x[3] == 3.0f && y[0] == 7.0f);
    me_tensors_free(ts);
}

/* ---- broken folders ---------------------------------------------------- */

static char dir[64];

static void setup(void) { tu_tmpdir(dir, sizeof dir, "df"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(dir), 0); }

static void put_n(const char *name, const char *bytes, size_t n) { tu_write_file(tu_join(dir, name), bytes, n); }
static void put(const char *name, const char *text) { put_n(name, text, strlen(text)); }

static void expect_bad(const char *want)
{
    me_tensors *ts = (me_tensors *)1;
    cr_assert_eq(me_tensors_open(dir, &ts), MOEDIT_EINPUT, "accepted (want '%s')", want);
    cr_assert_null(ts);
    cr_assert_not_null(strstr(moedit_last_error(), dir), "%s", moedit_last_error());
    cr_assert_not_null(strstr(moedit_last_error(), want), "'%s' lacks '%s'", moedit_last_error(), want);
}

TestSuite(diffusers_bad, .init = setup, .fini = teardown);

Test(diffusers_bad, missing_config) { expect_bad("no config.json"); }

Test(diffusers_bad, pipeline_folder_hint)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/vae", dir);
    mkdir(sub, 0755);
    put("vae/config.json", "{}");
    expect_bad("vae/ or transformer/");
}

Test(diffusers_bad, bad_json)
{
    put("config.json", "{\"latent_channels\": 4,");
    expect_bad("config.json: invalid JSON");
    put("config.json", "[4]");
    expect_bad("not a JSON object");
}

Test(diffusers_bad, missing_weights)
{
    put("config.json", "{}");
    expect_bad("no diffusion_pytorch_model");
}

Test(diffusers_bad, broken_weights)
{
    put("config.json", "{}");
    put_n("diffusion_pytorch_model.safetensors", "\x02\0\0\0\0\0\0\0{", 9);
    expect_bad("diffusion_pytorch_model.safetensors");
}

Test(diffusers_bad, bad_shard_index)
{
    put("config.json", "{}");
    put("diffusion_pytorch_model.safetensors.index.json", "{\"weight_map\": {\"x\": \"../x.safetensors\"}}");
    expect_bad("bad shard file name");
    put("diffusion_pytorch_model.safetensors.index.json", "{\"weight_map\": {\"x\": \"s.safetensors\"}}");
    expect_bad("s.safetensors");   /* missing shard */
    put_n("s.safetensors", "\x02\0\0\0\0\0\0\0{}", 10);
    expect_bad("in no shard");
}

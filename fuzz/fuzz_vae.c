/* Fuzzes a diffusers VAE as the loader sees it: config.json text, a NUL,
   then a safetensors image of the weights. The config is parsed, the decoder
   is built over the weights (every name and shape checked against the
   config) and, when that succeeds, one 2×2 latent is decoded, so a config
   that passes the checks but mis-sizes a buffer shows up under ASan.
   Seeds: fuzz/corpus/vae/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "vae/vae.h"
#include "weights/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) {
        vae_config c;
        char *json = malloc(size + 1);
        if (!json) return 0;
        memcpy(json, data, size);
        json[size] = 0;
        vae_config_parse(json, "fuzz/config.json", &c);
        free(json);
        return 0;
    }
    me_tensors *ts = me_tensors_new("fuzz");
    if (!ts) return 0;
    size_t jlen = (size_t)(nul - data);
    if (me_parse_safetensors(ts, nul + 1, size - jlen - 1, "fuzz") != MOEDIT_OK ||
        me_tensors_set_meta(ts, "config.json", (const char *)data) != MOEDIT_OK) {
        me_tensors_free(ts);
        return 0;
    }
    moedit_vae *v;
    if (vae_from_tensors(ts, &v) != MOEDIT_OK) return 0;   /* ts freed with it */
    int c = moedit_vae_latent_channels(v), up = moedit_vae_upscale(v), oc = moedit_vae_out_channels(v);
    if (c < 1 || up < 1 || oc < 1) abort();
    size_t hw = (size_t)(2 * up) * (size_t)(2 * up);
    if ((size_t)oc * hw <= (1u << 22)) {
        float *z = calloc((size_t)c * 4, sizeof *z), *img = malloc((size_t)oc * hw * sizeof *img);
        if (z && img) moedit_vae_decode(v, 1, 2, 2, z, img);
        free(z);
        free(img);
    }
    moedit_vae_free(v);
    return 0;
}

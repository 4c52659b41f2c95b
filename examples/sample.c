/* A program that embeds moedit: samples two Fashion-MNIST latents with the
   shipped DiT-MoE model, counts which experts layer 0 chose, and decodes
   the latents with the shipped VAE. Built against an installed moedit:

     cc sample.c $(pkg-config --cflags --libs moedit) -o sample
     cmake -S . -B build -DCMAKE_PREFIX_PATH=PREFIX && cmake --build build

   Usage: sample [STEPS]   (default 10) */
#include <stdio.h>
#include <stdlib.h>
#include <moedit.h>

static int fail(const char *what)
{
    fprintf(stderr, "sample: %s: %s\n", what, moedit_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *steps = argc > 1 ? argv[1] : "10";
    moedit_model *m = NULL;
    moedit_vae *vae = NULL;
    moedit_route_log *log = NULL;
    float *latents = NULL, *images = NULL;
    int rc = 1;
    /* the shipped models' attention heads: what their defaults.json says */
    moedit_load_options lo = {.heads = 2};
    if (moedit_model_load("fmnist-moe", &lo, &m)) return fail("fmnist-moe");
    if (moedit_vae_load("fmnist-vae", &vae)) {
        rc = fail("fmnist-vae");
        goto done;
    }
    const moedit_config *c = moedit_model_config(m);
    const int64_t labels[2] = {0, 7};
    const int S = c->input_size, C = c->in_channels, up = moedit_vae_upscale(vae);
    latents = malloc(sizeof(float) * 2 * C * S * S);
    images = malloc(sizeof(float) * 2 * moedit_vae_out_channels(vae) * S * up * S * up);
    if (!latents || !images || moedit_route_log_new(&log)) goto done;

    moedit_sample_options o;
    moedit_sample_defaults(m, &o);
    o.steps = steps;
    o.cfg = 3;
    o.seed = 1;
    moedit_model_set_tracer(m, moedit_route_log_add, log);
    if (moedit_sample(m, &o, 2, labels, latents)) {
        rc = fail("sample");
        goto done;
    }
    moedit_model_set_tracer(m, NULL, NULL);
    moedit_route_table tab;
    if (moedit_route_log_table(log, &tab)) {
        rc = fail("trace");
        goto done;
    }
    long per_expert[256] = {0};
    for (size_t i = 0; i < tab.count; i++)
        if (tab.layer[i] == 0)
            for (int j = 0; j < tab.k; j++) per_expert[tab.experts[i * tab.k + j]]++;

    float sf = moedit_vae_scaling_factor(vae);
    for (int i = 0; i < 2 * C * S * S; i++) latents[i] /= sf;
    if (moedit_vae_decode(vae, 2, S, S, latents, images)) {
        rc = fail("decode");
        goto done;
    }
    printf("moedit %s: %zu routing decisions; layer 0 expert load:", moedit_version(), tab.count);
    for (int e = 0; e < c->num_experts; e++) printf(" %ld", per_expert[e]);
    printf("\nimage 0 pixel (16,16): %.4f\n", images[16 * S * up + 16]);
    rc = 0;
done:
    moedit_route_log_free(log);
    moedit_vae_free(vae);
    moedit_model_free(m);
    free(latents);
    free(images);
    return rc;
}

/* fid_weights.h — for the FID tests: the counter-based Inception weights of
   tools/inception_reference.py (random_state_dict), computed identically in
   C from the key names and shapes in tests/fixtures/fid/manifest.txt. */
#ifndef MOEDIT_TEST_FID_WEIGHTS_H
#define MOEDIT_TEST_FID_WEIGHTS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/testutil.h"
#include "weights/tensors.h"

static int ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* value_range() of the reference. */
static void range(const char *name, int ndim, const int64_t *shape, double *lo, double *hi)
{
    if (ends(name, "conv.weight") || !strcmp(name, "fc.weight")) {
        int64_t fan_in = 1;
        for (int i = 1; i < ndim; i++) fan_in *= shape[i];
        double b = sqrt((ends(name, "conv.weight") ? 6.0 : 3.0) / (double)fan_in);
        *lo = -b, *hi = b;
    } else if (ends(name, "bn.weight") || ends(name, "running_var")) {
        *lo = 0.8, *hi = 1.2;
    } else {
        *lo = -0.1, *hi = 0.1;
    }
}

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
} manifest_row;

static int read_manifest(manifest_row *rows, int cap)
{
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/fid/manifest.txt", FIXTURES);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "missing %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_lt(n, cap);
        manifest_row *r = &rows[n++];
        char *tok = strtok(line, " \n");
        snprintf(r->name, sizeof r->name, "%s", tok);
        r->ndim = 0;
        while ((tok = strtok(NULL, " \n"))) r->shape[r->ndim++] = atoll(tok);
    }
    fclose(f);
    return n;
}

/* The reference's random_state_dict(model, seed) as a registry. */
static me_tensors *random_weights(uint64_t seed)
{
    static manifest_row rows[600];
    int n = read_manifest(rows, 600);
    cr_assert_eq(n, 472, "manifest: %d tensors", n);
    me_tensors *ts = me_tensors_new("random-inception");
    for (int t = 0; t < n; t++) {
        int64_t numel = 1;
        for (int i = 0; i < rows[t].ndim; i++) numel *= rows[t].shape[i];
        float *v = me_tensors_own_alloc(ts, sizeof(float) * numel);
        cr_assert_not_null(v);
        double lo, hi;
        range(rows[t].name, rows[t].ndim, rows[t].shape, &lo, &hi);
        uint64_t stream = tu_fnv1a64(rows[t].name) ^ (seed * 0x9E3779B97F4A7C15ull);
        for (int64_t j = 0; j < numel; j++) {
            /* the reference mixes stream + (j+1)·golden; tu_splitmix64 adds one golden itself */
            double u = (double)(tu_splitmix64(stream + (uint64_t)j * 0x9E3779B97F4A7C15ull) >> 40) / 16777216.0;
            v[j] = (float)(lo + (hi - lo) * u);
        }
        cr_assert_eq(me_tensors_add(ts, rows[t].name, ME_F32, rows[t].ndim, rows[t].shape, v), 0);
    }
    return ts;
}

#endif

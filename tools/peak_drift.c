/* peak_drift — does a forward's share of the peak depend on the minute?
   Alternates, in one process, the peak measurement of `moedit bench
   --peak` (best of 40 ~3 ms register-only trials on all threads) with a
   few forwards of a model, round after round, and prints each round's
   peak, forward rate and share (bf16: of the limit `moedit bench --bf16`
   uses), then how far each moved and how much of the peak's movement the
   forward followed (least-squares slope, and its elasticity: the
   forward's relative change per relative change of the peak; 1 means the
   share stays put). Rounds whose forwards ran under 95 % of the median
   rate (preempted, mostly) are left out of the fit and the ranges. With
   --sustain S, the peak is then measured once more and the same FMA loop
   kept running for S seconds (me_peak_sustain): what it sustains against
   that best-of-trials peak. For docs/performance.md ("Measuring": what the
   VMs do).

     build/peak_drift MODEL [--batch 2] [--rounds 60] [--forwards 5] [--bf16] [--threads N] [--sustain S]

   The inputs: uniform latents in [-1, 1] at mid-trajectory (t = 500, or
   0.5 for rectified-flow models), rows alternating class 207 and the null
   class, as in a guided batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "moedit.h"
#include "ops/peak.h"
#include "tools/measure.h"

int main(int argc, char **argv)
{
    const char *path = NULL;
    int batch = 2, rounds = 60, forwards = 5, bf16 = 0, threads = 0;
    double sustain = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--forwards") && i + 1 < argc) forwards = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sustain") && i + 1 < argc) {
            char *end;
            sustain = strtod(argv[++i], &end);
            if (end == argv[i] || *end) sustain = -1;   /* not a number: the usage line below */
        }
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else path = NULL, i = argc;
    }
    if (!path || batch < 1 || rounds < 3 || forwards < 1 || threads < 0 || !(sustain >= 0 && sustain <= 600)) {
        fprintf(stderr, "usage: peak_drift MODEL [--batch N] [--rounds R>=3] [--forwards F] [--bf16] [--threads N]"
                        " [--sustain SECONDS<=600]\n");
        return 2;
    }
    if (threads) moedit_set_threads(threads);
    setvbuf(stdout, NULL, _IOLBF, 0);   /* rounds as they come, also into a file */
    moedit_load_options opt = {0};
    opt.bf16 = bf16;
    moedit_model *m;
    if (moedit_model_load(path, &opt, &m) != MOEDIT_OK) {
        fprintf(stderr, "peak_drift: %s\n", moedit_last_error());
        return 2;
    }
    const moedit_config *cf = moedit_model_config(m);
    size_t in = (size_t)cf->in_channels * cf->input_size * cf->input_size;
    size_t out_n = (size_t)cf->out_channels * cf->input_size * cf->input_size;
    float *x = malloc(sizeof *x * in * batch), *t = malloc(sizeof *t * batch);
    float *out = malloc(sizeof *out * out_n * batch);
    int64_t *y = malloc(sizeof *y * batch);
    double *peak = malloc(sizeof *peak * rounds), *rate = malloc(sizeof *rate * rounds);
    double *sorted = malloc(sizeof *sorted * rounds);
    if (!x || !t || !out || !y || !peak || !rate || !sorted) {
        fprintf(stderr, "peak_drift: out of memory for a batch of %d\n", batch);
        return 2;
    }
    srand(5);
    for (size_t i = 0; i < in * batch; i++) x[i] = 2.0f * rand() / (float)RAND_MAX - 1.0f;
    for (int i = 0; i < batch; i++) t[i] = cf->flow ? 0.5f : 500, y[i] = i % 2 ? cf->num_classes : 207 % cf->num_classes;
    if (moedit_model_forward(m, batch, x, t, y, out) != MOEDIT_OK) {
        fprintf(stderr, "peak_drift: %s\n", moedit_last_error());
        return 2;
    }
    double flop = moedit_model_flops(m, batch), t0 = now_s();
    printf("round  seconds  peak GFLOP/s  forward GFLOP/s  share\n");
    for (int r = 0; r < rounds; r++) {
        me_peak p;
        me_peak_measure(0, &p);
        peak[r] = me_peak_forward_limit(&p, bf16);
        double f0 = now_s();
        for (int i = 0; i < forwards; i++)
            if (moedit_model_forward(m, batch, x, t, y, out) != MOEDIT_OK) {
                fprintf(stderr, "peak_drift: %s\n", moedit_last_error());
                return 2;
            }
        rate[r] = flop * forwards / (now_s() - f0) * 1e-9;
        printf("%5d  %7.1f  %12.1f  %15.1f  %5.1f%%\n", r, now_s() - t0, peak[r], rate[r], 100 * rate[r] / peak[r]);
    }

    /* A round is dropped when its forwards ran slow (preempted) or when its
       peak read far low: a peak loop that lost a thread (half the rate, seen
       on a Zen 4 VM) says nothing of the forwards beside it and would put
       their share above 100 %. */
    double floor_rate = 0.95 * median(rate, rounds, sorted), floor_peak = 0.75 * median(peak, rounds, sorted);
    int kept = 0, slow = 0, low_peak = 0;   /* the kept rounds move to the front of peak and rate */
    for (int r = 0; r < rounds; r++) {
        if (rate[r] < floor_rate) slow++;
        else if (peak[r] < floor_peak) low_peak++;
        else peak[kept] = peak[r], rate[kept] = rate[r], kept++;
    }
    double sp = 0, sf = 0, spp = 0, spf = 0;
    double pmin = 1e30, pmax = 0, fmin = 1e30, fmax = 0, smin = 1e30, smax = 0;
    for (int r = 0; r < kept; r++) {
        double s = rate[r] / peak[r];
        sp += peak[r], sf += rate[r];
        pmin = peak[r] < pmin ? peak[r] : pmin, pmax = peak[r] > pmax ? peak[r] : pmax;
        fmin = rate[r] < fmin ? rate[r] : fmin, fmax = rate[r] > fmax ? rate[r] : fmax;
        smin = s < smin ? s : smin, smax = s > smax ? s : smax;
    }
    double mp = kept ? sp / kept : 0, mf = kept ? sf / kept : 1;
    for (int r = 0; r < kept; r++) spp += (peak[r] - mp) * (peak[r] - mp), spf += (peak[r] - mp) * (rate[r] - mf);
    double slope = spp > 0 ? spf / spp : 0;
    printf("rounds kept: %d of %d (%d with the forwards under 95 %% of their median rate, %d with the peak under"
           " 75 %% of its median dropped)\n", kept, rounds, slow, low_peak);
    if (kept) {
        printf("peak: %.1f–%.1f GFLOP/s; forward: %.1f–%.1f GFLOP/s; share: %.1f–%.1f %%\n", pmin, pmax, fmin, fmax,
               100 * smin, 100 * smax);
        printf("forward against peak: slope %.2f, elasticity %.2f\n", slope, slope * mp / mf);
    }
    if (sustain > 0) {
        me_peak p;
        me_peak_sustained held;
        me_peak_measure(0, &p);
        if (me_peak_sustain(0, sustain, &held))
            printf("sustained FMA loop: %.1f GFLOP/s over %.1f s, %.1f %% of the peak measured just before it (%.1f);"
                   " its %d slices %.1f–%.1f GFLOP/s\n", held.gflops, held.seconds, 100 * held.gflops / p.fp32_gflops,
                   p.fp32_gflops, held.slices, held.slice_min, held.slice_max);
    }
    moedit_model_free(m);
    free(x), free(t), free(out), free(y), free(peak), free(rate), free(sorted);
    return 0;
}

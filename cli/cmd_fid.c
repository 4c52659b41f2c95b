/* moedit fid: FID (and Inception Score) of a sample batch against a
   reference, as pytorch-fid computes it: pool3 features of the FID
   Inception, mean and covariance, Fréchet distance. The reference is an
   .npz of images (arr_0) or of statistics (mu, sigma — ADM's reference
   batches hold both; the statistics win). Inputs are checked before the
   95 MB network loads; outputs are written atomically. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/images.h"
#include "core/core.h"
#include "fid/fid.h"
#include "fid/inception.h"
#include "weights/npy.h"

#define CMD "fid"

/* Features (and logits) of every image, batch by batch, with progress. */
static int features(me_inception *net, const char *label, cli_images *b, int batch, float *feats,
                    float *logits)
{
    double t0 = cli_now();
    size_t img_bytes = (size_t)b->h * b->w * b->c;
    for (int i = 0; i < b->n; i += batch) {
        int k = b->n - i < batch ? b->n - i : batch;
        int rc = me_inception_forward_u8(net, k, b->h, b->w, b->c, (const uint8_t *)b->img.data + i * img_bytes,
                                         feats + (size_t)i * ME_INCEPTION_DIM,
                                         logits ? logits + (size_t)i * ME_INCEPTION_CLASSES : NULL);
        if (rc) return rc;
        double el = cli_now() - t0, rate = (i + k) / (el > 0 ? el : 1e-9);
        fprintf(stderr, "%s: %d/%d images  %.1f img/s  ETA %.0fs\n", label, i + k, b->n, rate,
                (b->n - i - k) / rate);
    }
    return MOEDIT_OK;
}

typedef struct {
    const char *inception, *samples, *ref, *features_out, *stats_out, *device;
    int batch, threads, help, is_split, no_verify;
} fid_args;

static int run(const fid_args *a)
{
    cli_images s = {0}, r = {0};
    me_fid_stats ss = {0}, rs = {0};
    me_inception *net = NULL;
    float *feats = NULL, *logits = NULL, *rfeats = NULL;
    int rc = 0, e, ref_is_stats = 0;
    double fid, is = 0;

    if ((e = cli_images_open(a->samples, &s))) goto fail;
    {   /* the reference: statistics when it has them, else images */
        me_npz z;
        if ((e = me_npz_open(a->ref, &z))) goto fail;
        ref_is_stats = me_zip_find(&z.zip, "mu.npy") != NULL;
        me_npz_close(&z);
    }
    if (ref_is_stats ? (e = me_fid_stats_load(a->ref, &rs)) : (e = cli_images_open(a->ref, &r))) goto fail;
    if (ref_is_stats && rs.dim != ME_INCEPTION_DIM) {
        rc = cli_usage_error(CMD, "%s: statistics of dimension %d, not %d", a->ref, rs.dim, ME_INCEPTION_DIM);
        goto done;
    }
    if ((e = me_inception_load(a->inception, &net))) goto fail;
    feats = me_alloc(sizeof(float) * s.n * ME_INCEPTION_DIM);
    logits = me_alloc(sizeof(float) * s.n * ME_INCEPTION_CLASSES);
    if (!ref_is_stats) rfeats = me_alloc(sizeof(float) * r.n * ME_INCEPTION_DIM);
    if (!feats || !logits || (!ref_is_stats && !rfeats)) {
        e = MOEDIT_EINTERNAL;
        goto fail;
    }
    if ((e = features(net, a->samples, &s, a->batch, feats, logits))) goto fail;
    if (!ref_is_stats && ((e = features(net, a->ref, &r, a->batch, rfeats, NULL)) ||
                          (e = me_fid_stats_from_features(r.n, ME_INCEPTION_DIM, rfeats, &rs))))
        goto fail;
    if ((e = me_fid_stats_from_features(s.n, ME_INCEPTION_DIM, feats, &ss)) ||
        (e = me_frechet_distance(&ss, &rs, &fid)) ||
        (e = me_inception_score(s.n, ME_INCEPTION_CLASSES, logits, a->is_split, &is)))
        goto fail;
    if (a->features_out &&
        (e = me_npy_write(a->features_out, ME_F32, 2, (int64_t[]){s.n, ME_INCEPTION_DIM}, feats)))
        goto fail;
    if (a->stats_out && (e = me_fid_stats_save(a->stats_out, &ss))) goto fail;
    printf("FID: %.6f\nIS: %.6f\n", fid, is);
    goto done;
fail:
    rc = cli_fail(e);
done:
    cli_images_close(&s);
    if (!ref_is_stats) cli_images_close(&r);
    me_fid_stats_free(&ss);
    me_fid_stats_free(&rs);
    me_inception_free(net);
    free(feats);
    free(logits);
    free(rfeats);
    return rc;
}

int cmd_fid(int argc, char **argv)
{
    fid_args a = {.batch = 32, .threads = INT_MIN, .is_split = 5000};
    const cli_flag flags[] = {
        {"--inception", CLI_STR, &a.inception, "PTH", "pt_inception-2015-12-05-6726825d.pth (pytorch-fid)"},
        {"--samples", CLI_STR, &a.samples, "A.npz", "images arr_0 uint8 [N,H,W,3]"},
        {"--ref", CLI_STR, &a.ref, "B.npz", "reference images (arr_0) or statistics (mu, sigma)"},
        {"--features-out", CLI_STR, &a.features_out, "F.npy", "the samples' pool3 features [N,2048]"},
        {"--stats-out", CLI_STR, &a.stats_out, "S.npz", "the samples' mu and sigma (a reusable --ref)"},
        {"--batch", CLI_INT, &a.batch, "B", "images per batch, in chunks of up to 4 per thread (default 32)"},
        {"--is-split", CLI_INT, &a.is_split, "K", "Inception Score over chunks of K samples, averaged (default 5000)"},
        {"--threads", CLI_INT, &a.threads, "N", CLI_THREADS_HELP},
        {"--device", CLI_STR, &a.device, "cpu", "(Inception has no CUDA path yet)"},
        {"--no-verify", CLI_BOOL, &a.no_verify, NULL, CLI_NO_VERIFY_HELP},
        {"--help", CLI_BOOL, &a.help, NULL, "this help"},
        {0},
    };
    char *pos[1];
    int npos;
    if (cli_parse(CMD, argc, argv, flags, pos, 0, &npos)) return 2;
    if (a.help) {
        cli_usage(CMD, "--inception PTH --samples A.npz --ref B.npz [--features-out F.npy] [--stats-out S.npz]", flags);
        return 0;
    }
    if (!a.inception || !a.samples || !a.ref)
        return cli_usage_error(CMD, "--inception, --samples and --ref are required");
    if (a.batch < 1) return cli_usage_error(CMD, "--batch: %d must be >= 1", a.batch);
    if (a.is_split < 1) return cli_usage_error(CMD, "--is-split: %d must be >= 1", a.is_split);
    if (cli_threads(CMD, a.threads)) return 2;
    if (cli_cpu_only(CMD, a.device, "Inception")) return 2;
    /* before the work: an output naming an input would replace it (--stats-out
       samples.npz replaced the images with their statistics) */
    const cli_file files[] = {{"--inception", a.inception, CLI_IN}, {"--samples", a.samples, CLI_IN},
                              {"--ref", a.ref, CLI_IN}, {"--features-out", a.features_out, CLI_OUT},
                              {"--stats-out", a.stats_out, CLI_OUT}};
    if (cli_check_files(CMD, files, sizeof files / sizeof files[0])) return 2;
    return run(&a);
}

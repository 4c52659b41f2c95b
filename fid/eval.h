/* eval.h — features for the ADM evaluator and the files that hold them.

   Extraction: pool3, the sFID tap and logits without the fc bias of n
   uint8 images, with either preprocessing (me_preprocess):

     me_adm_features_u8(net, ME_PREPROCESS_ADM, n, 256, 256, 3, px, pool, spatial, logits);

   Files (.npz, float32 / float64, readable with np.load):
     feature file  pool [n,2048], spatial [n,2023], logits [n,1008],
                   range int64 [first, n, total] (the rows are images
                   first … first+n−1 of a batch of total: one shard),
                   preprocess uint8 text ("adm" / "pytorch-fid");
     reference     mu, sigma, mu_s, sigma_s (ADM's reference-batch layout)
                   and pool [n,2048] for Precision/Recall, preprocess.
   An ADM reference batch (arr_0 images, mu … sigma_s) loads as well: its
   statistics, and has_images set so the caller featurises arr_0. */
#ifndef MOEDIT_FID_EVAL_H
#define MOEDIT_FID_EVAL_H

#include <stdint.h>
#include "fid/fid.h"
#include "fid/inception.h"

#define ME_ADM_ROW (ME_INCEPTION_DIM + ME_INCEPTION_SPATIAL + ME_INCEPTION_CLASSES)

int me_adm_features_u8(me_inception *net, me_preprocess prep, int n, int h, int w, int c, const uint8_t *hwc,
                       float *pool, float *spatial, float *logits);

typedef struct {
    int64_t n;                      /* feature rows (0: none) */
    int64_t first, total;           /* their place in the image batch */
    int prep;                       /* me_preprocess, or -1 when the file does not say */
    float *pool, *spatial, *logits; /* [n, …] each, or NULL when absent */
    me_fid_stats stats, stats_s;    /* dim 0 when absent */
    int has_images;                 /* the file also holds arr_0 */
    uint64_t source;                /* which images: of arr_0 (its zip entry's CRC-32 and size), or the
                                       "source" a feature file was stamped with; 0 unknown */
    uint32_t inception;             /* me_inception_digest of the network that made the features; 0 unknown */
} me_adm_file;

const char *me_preprocess_name(me_preprocess p);
/* "adm" / "pytorch-fid" → 0 and *p, else MOEDIT_EINPUT. */
int me_preprocess_parse(const char *s, me_preprocess *p);

/* Reads whichever of the members above the file has; shapes are checked. */
int me_adm_file_load(const char *path, me_adm_file *f);
/* The same from an opened npz (path names it in errors); z stays open. */
int me_adm_file_read(me_npz *z, const char *path, me_adm_file *f);
/* Writes the present members atomically. */
int me_adm_file_save(const char *path, const me_adm_file *f);
void me_adm_file_free(me_adm_file *f);
/* Joins feature files into one. Parts of one batch (--shard k/n: ranges
   first … of the same total) may come in any order and must cover 0 …
   total−1 exactly once; whole files (each range 0 … its n, e.g. one per
   sample shard) are concatenated in the given order. The preprocessing and
   the Inception weights (where both files name them) must agree. Offending
   files are named in the error. parts are consumed. */
int me_adm_file_join(int count, me_adm_file *parts, char *const *names, me_adm_file *out);

#endif

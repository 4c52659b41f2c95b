/* Softmax attention, tiled over query rows: for each (batch, head, block of
   BLOCK query rows) one sgemm makes the score tile, a vectorised pass turns
   it into unnormalised probabilities, a second sgemm multiplies by V and
   the row sums are divided out at the end. Tiles are independent, so they
   are spread over OpenMP threads, each running single-threaded sgemm on its
   own slice of the scratch. */
#include <math.h>
#include <omp.h>
#include <cblas.h>
#include "core/core.h"
#include "ops/fastmath.h"
#include "ops/ops.h"

#define BLOCK 64

size_t op_attention_scratch(int tokens)
{
    return (size_t)me_threads() * BLOCK * (size_t)(tokens > 0 ? tokens : 0);
}

/* One tile: rows query rows starting at q, against all tokens keys. */
static void tile(int rows, int tokens, int head_dim, float scale, const float *q, const float *k,
                 const float *v, int ld, float *out, int ldo, float *s)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, tokens, head_dim, scale, q, ld, k, ld,
                0.0f, s, tokens);
    float inv[BLOCK];
    for (int r = 0; r < rows; r++) {
        float *sr = s + (size_t)r * tokens;
        float mx = sr[0];
        for (int j = 1; j < tokens; j++) mx = sr[j] > mx ? sr[j] : mx;
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int j = 0; j < tokens; j++) {
            sr[j] = me_expf(sr[j] - mx);
            sum += sr[j];
        }
        inv[r] = 1.0f / sum;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, tokens, 1.0f, s, tokens, v, ld,
                0.0f, out, ldo);
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < head_dim; d++) out[(size_t)r * ldo + d] *= inv[r];
}

void op_attention(int batch, int tokens, int heads, int head_dim, const float *q, const float *k,
                  const float *v, int ld, float *out, float *scratch)
{
    if (batch <= 0 || tokens <= 0 || heads <= 0 || head_dim <= 0) return;
    int nblk = (tokens + BLOCK - 1) / BLOCK;
    long jobs = (long)batch * heads * nblk;
    int nt = me_threads();
    int ldo = heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    /* Too little work or too few tiles: one thread (or sgemm's threads). */
    double work = 2.0 * batch * heads * (double)tokens * tokens * head_dim;
    int par = nt > 1 && jobs >= nt && work >= 262144.0 && !omp_in_parallel();
    if (par) openblas_set_num_threads(1);
    #pragma omp parallel for num_threads(nt) if (par) schedule(dynamic)
    for (long j = 0; j < jobs; j++) {
        int b = (int)(j / ((long)heads * nblk)), h = (int)(j / nblk % heads), r0 = (int)(j % nblk) * BLOCK;
        int rows = tokens - r0 < BLOCK ? tokens - r0 : BLOCK;
        size_t base = (size_t)b * tokens * ld + (size_t)h * head_dim;
        float *s = scratch + (size_t)omp_get_thread_num() * BLOCK * tokens;
        tile(rows, tokens, head_dim, scale, q + base + (size_t)r0 * ld, k + base, v + base, ld,
             out + ((size_t)b * tokens + r0) * ldo + (size_t)h * head_dim, ldo, s);
    }
    if (par) openblas_set_num_threads(nt);
}

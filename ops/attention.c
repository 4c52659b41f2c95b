/* Softmax attention on the packed GEMM (ops/gemm.h), in two phases:
   1. every (batch, head) has its K (as Kᵀ, head_dim × tokens) and V
      (tokens × head_dim) packed once, into the caller's scratch (after
      the score tiles), so nothing is allocated here;
   2. jobs of BLOCK query rows of one (batch, head): one product makes the
      score tile (scaled by 1/√head_dim), a vectorised pass turns it into
      unnormalised probabilities, a second product multiplies by V, and
      the row sums are divided out. Only the BLOCK × tokens score tile of
      each thread is ever stored (the caller's scratch).
   Jobs are spread over the OpenMP pool; each product inside runs on its
   job's thread, so results do not depend on the thread count. */
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include "core/core.h"
#include "ops/vexp.h"
#include "ops/gemm.h"
#include "ops/ops.h"

#define BLOCK 64

/* Packed K and V of every (batch, head) pair, each 64-byte aligned (bf16
   ones take at most the float32 size the scratch is made for). */
static size_t pack_bytes(int batch, int tokens, int heads, int head_dim, int bf16, size_t *kbytes, size_t *vbytes)
{
    *kbytes = (me_gemm_b_bytes(head_dim, tokens, bf16) + 63) / 64 * 64;
    *vbytes = (me_gemm_b_bytes(tokens, head_dim, bf16) + 63) / 64 * 64;
    return (size_t)batch * heads * (*kbytes + *vbytes);
}

/* Score tiles per thread (for moedit_set_threads' count, which an adaptive
   forward may lower but never raise), then the packing area (plus slack to
   align it): the caller owns all memory, so the forward never allocates
   and has no failure to report. */
size_t op_attention_scratch(int batch, int tokens, int heads, int head_dim)
{
    if (batch <= 0 || tokens <= 0 || heads <= 0 || head_dim <= 0) return 0;
    size_t kb, vb, pack = pack_bytes(batch, tokens, heads, head_dim, 0, &kb, &vb);
    return (size_t)me_threads_max() * BLOCK * (size_t)tokens + pack / sizeof(float) + 64 / sizeof(float);
}

/* Rows of one score tile → exp(s − max), returning 1/Σ per row in inv. */
static void softmax_tile(int rows, int tokens, float *s, float *inv)
{
    for (int r = 0; r < rows; r++) {
        float *sr = s + (size_t)r * tokens;
        float mx = sr[0];
        #pragma omp simd reduction(max : mx)
        for (int j = 1; j < tokens; j++) mx = sr[j] > mx ? sr[j] : mx;
        inv[r] = 1.0f / me_exp_sub_sum(tokens, sr, mx);
    }
}

void op_attention(int batch, int tokens, int heads, int head_dim, const float *q, const float *k,
                  const float *v, int ld, int bf16, float *out, float *scratch)
{
    if (batch <= 0 || tokens <= 0 || heads <= 0 || head_dim <= 0) return;
    int nt = me_threads(), ldo = heads * head_dim, pairs = batch * heads;
    int nblk = (tokens + BLOCK - 1) / BLOCK;
    long jobs = (long)pairs * nblk;
    float scale = 1.0f / sqrtf((float)head_dim);
    double work = 4.0 * batch * heads * (double)tokens * tokens * head_dim;
    int par = nt > 1 && jobs >= nt && work >= 1e6 && !omp_in_parallel();

    size_t kbytes, vbytes;
    pack_bytes(batch, tokens, heads, head_dim, bf16, &kbytes, &vbytes);
    uintptr_t pack_at = (uintptr_t)(scratch + (size_t)nt * BLOCK * tokens);
    char *mem = (char *)((pack_at + 63) & ~(uintptr_t)63);
    /* Shape templates; each pair's operands sit at their own offset. */
    me_gemm_b kt, vb;
    me_gemm_b_init(&kt, mem, head_dim, tokens, bf16);
    me_gemm_b_init(&vb, mem + kbytes, tokens, head_dim, bf16);

    #pragma omp parallel num_threads(par ? nt : 1)
    {
        #pragma omp for schedule(static)
        for (int p = 0; p < pairs; p++) {
            int b = p / heads, h = p % heads;
            size_t base = (size_t)b * tokens * ld + (size_t)h * head_dim;
            me_gemm_b kp, vp;
            char *km = mem + (size_t)p * (kbytes + vbytes);
            me_gemm_b_init(&kp, km, head_dim, tokens, bf16);
            me_gemm_pack_b(&kp, 0, tokens, 1, ME_GEMM_F32, k + base, (size_t)ld);
            me_gemm_b_init(&vp, km + kbytes, tokens, head_dim, bf16);
            me_gemm_pack_b(&vp, 0, head_dim, 0, ME_GEMM_F32, v + base, (size_t)ld);
        }
        /* (the loop's barrier: everything is packed) */
        #pragma omp for schedule(dynamic)
        for (long j = 0; j < jobs; j++) {
            int p = (int)(j / nblk), b = p / heads, h = p % heads, r0 = (int)(j % nblk) * BLOCK;
            int rows = tokens - r0 < BLOCK ? tokens - r0 : BLOCK;
            size_t base = (size_t)b * tokens * ld + (size_t)h * head_dim;
            float *s = scratch + (size_t)omp_get_thread_num() * BLOCK * tokens, inv[BLOCK];
            float *o = out + ((size_t)b * tokens + r0) * ldo + (size_t)h * head_dim;
            me_gemm_b kp = kt, vp = vb;
            kp.data = mem + (size_t)p * (kbytes + vbytes), vp.data = (char *)kp.data + kbytes;
            me_gemm(rows, q + base + (size_t)r0 * ld, (size_t)ld, &kp, scale, NULL, 0.0f, s, (size_t)tokens);
            softmax_tile(rows, tokens, s, inv);
            me_gemm(rows, s, (size_t)tokens, &vp, 1.0f, NULL, 0.0f, o, (size_t)ldo);
            for (int r = 0; r < rows; r++)
                for (int d = 0; d < head_dim; d++) o[(size_t)r * ldo + d] *= inv[r];
        }
    }
}

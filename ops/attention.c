/* Softmax attention, in one of three forms, each running jobs of query
   rows on the OpenMP pool; a job's products run on its thread, so results
   do not depend on the thread count.

   Fused, on the own tiles (ops/gemm_tile.h) for heads of up to one K block
   (the transformers' 64): a job is QB = 32 queries, one B panel's columns,
   and each thread runs an equal run of consecutive jobs, packing K and V
   of each (batch, head) its run reaches as tile A panels into a buffer of
   its own. (Packed once into shared memory and read by whichever thread
   took a job, half of them had crossed between the cores: two Zen 2
   threads ran at 1.70× one thread's rate, 1.99× now.) Sᵀ = K·Qᵀ (tokens
   × 32) comes out of the tiles in exactly the layout of a packed B panel,
   so
   - the softmax runs down its columns, vector lanes being queries: no
     horizontal maximum or sum, and one pass for exp and the sums;
   - the probabilities, as they stand (bf16: rounded into pairs), are the
     B panel of Oᵀ = Vᵀ·Pᵀ, whose A panels are V's columns;
   - Oᵀ is transposed into the output with the sums divided out.
   No query block's scores are packed again. Against the blocked form, on
   alternate forwards of one process (Zen 5 host, two threads): attention
   12.5 % less time in a float32 S/2 CFG pair, 10 % in bf16, 26 % in a
   bf16 B/2 pair, 30 % at S/2 batch 16 in bf16.

   Blocked, for wide heads (the VAE's 512 channels) and on OpenBLAS: every
   (batch, head)'s keys and values packed once, then jobs of BLOCK query
   rows handed out dynamically; one me_gemm makes the BLOCK × tokens score
   tile, a vectorised pass turns it into unnormalised probabilities, a
   second me_gemm multiplies by V, and the row sums are divided out.

   AMX, for bf16 on CPUs with AMX tiles when head_dim and the token count
   are multiples of 32 (the transformers' 64 × 256): the blocked form's
   steps on AMX blocks (ops/gemm_amx.h), jobs of 32 queries: Kᵀ and V
   packed once as bf16 B panels, a job's queries as one A block, S = Q·Kᵀ
   (32 × tokens) row by row from the tiles, the rows' softmax, P packed
   as A blocks, O = P·V (32 × head_dim) scaled by 1/Σ into the output. */
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/vexp.h"
#include "ops/gemm.h"
#include "ops/gemm_amx.h"
#include "ops/gemm_tile.h"
#include "ops/ops.h"

#define BLOCK 64
#define QB ME_GEMM_NR
#define MAX_TILE_ROWS 16   /* every kernel set's tile rows fit (AVX-512 14, AVX2 6) */

static size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* ---- fused -------------------------------------------------------------- */

/* One shape's fused layout, per thread: one (batch, head)'s kt K panels
   (tiles over the tokens, [hdp][mr] elements each) and vt V panels (tiles
   over head_dim, [tp][mr]), then Sᵀ [tp][32] floats, its bf16 pairs, the
   query panel [hdp][32] and Oᵀ [vt·mr][32] floats. hdp and tp: head_dim
   and tokens rounded up to even (bfloat16 pairs; the pad is zero). */
typedef struct {
    me_tile_plan tiles;
    int bf16, hdp, tp, kt, vt;
    size_t esz, kbytes, vbytes, pair_bytes;
    size_t s_bytes, pairs_bytes, q_bytes, o_bytes, thread_bytes;
} fused_layout;

static int fused_layout_of(int tokens, int head_dim, int bf16, fused_layout *f)
{
    f->bf16 = bf16 && me_gemm_native(1);
    /* The float32 K block bound for either type: op_attention_scratch sizes
       for the form float32 takes. */
    if (!me_gemm_tile_plan(f->bf16, &f->tiles) || head_dim > (f->bf16 ? f->tiles.kc / 2 : f->tiles.kc) ||
        f->tiles.mr > MAX_TILE_ROWS)
        return 0;
    int mr = f->tiles.mr;
    f->esz = f->bf16 ? sizeof(uint16_t) : sizeof(float);
    f->hdp = (head_dim + 1) & ~1, f->tp = (tokens + 1) & ~1;
    f->kt = (tokens + mr - 1) / mr, f->vt = (head_dim + mr - 1) / mr;
    f->kbytes = align64((size_t)f->kt * mr * f->hdp * f->esz);
    f->vbytes = align64((size_t)f->vt * mr * f->tp * f->esz);
    f->pair_bytes = f->kbytes + f->vbytes;
    f->s_bytes = align64((size_t)f->tp * QB * sizeof(float));
    f->pairs_bytes = f->bf16 ? align64((size_t)f->tp * QB * sizeof(uint16_t)) : 0;
    f->q_bytes = align64((size_t)f->hdp * QB * sizeof(float));
    f->o_bytes = align64((size_t)f->vt * mr * QB * sizeof(float));
    f->thread_bytes = f->s_bytes + f->pairs_bytes + f->q_bytes + f->o_bytes;
    return 1;
}

/* Pair (b, h)'s K panels (K's rows as A) and V panels (V's columns as A,
   over the tokens) into mem. */
static void pack_pair(const fused_layout *f, int tokens, int head_dim, const float *k, const float *v, int ld,
                      char *mem)
{
    int mr = f->tiles.mr;
    for (int t = 0; t < f->kt; t++) {
        int r0, live;
        me_gemm_tile_span(tokens, f->kt, mr, t, &r0, &live);
        const float *row[MAX_TILE_ROWS];
        for (int i = 0; i < live; i++) row[i] = k + (size_t)(r0 + i) * ld;
        me_gemm_pack_a(row, live, head_dim, f->bf16, mem + (size_t)t * mr * f->hdp * f->esz);
    }
    for (int t = 0; t < f->vt; t++) {
        int d0, live;
        me_gemm_tile_span(head_dim, f->vt, mr, t, &d0, &live);
        char *panel = mem + f->kbytes + (size_t)t * mr * f->tp * f->esz;
        me_gemm_pack_a_cols(v + d0, (size_t)ld, live, tokens, f->bf16, panel);
    }
}

/* Queries [q0, q0+nq) of one pair: out rows = softmax(q·kᵀ·scale)·v. */
static void fused_job(const fused_layout *f, int tokens, int head_dim, const float *q, int ld, float scale,
                      const char *pair, char *own, float *out, int ldo, int q0, int nq)
{
    int mr = f->tiles.mr;
    float *s = (float *)own, *qp = (float *)(own + f->s_bytes + f->pairs_bytes);
    float *o = (float *)((char *)qp + f->q_bytes);
    uint16_t *pairs = (uint16_t *)(own + f->s_bytes);
    float sums[QB];

    me_gemm_b qb;   /* the block's queries as one B panel, [hdp][32] */
    me_gemm_b_init(&qb, qp, head_dim, nq, f->bf16);
    me_gemm_pack_b(&qb, 0, nq, 1, ME_GEMM_F32, q + (size_t)q0 * ld, (size_t)ld);
    for (int t = 0; t < f->kt; t++) {
        int r0, live;
        me_gemm_tile_span(tokens, f->kt, mr, t, &r0, &live);
        me_tile_out st = {.c = s + (size_t)r0 * QB, .ldc = QB, .nr = QB, .alpha = scale};
        f->tiles.tiles[live](f->bf16 ? f->hdp : head_dim, pair + (size_t)t * mr * f->hdp * f->esz, qp, &st);
    }
    me_exp_columns32(tokens, s, sums);
    const void *p = s;
    if (f->bf16) {
        me_pack_pairs_bf16(s, tokens, pairs);
        p = pairs;
    }
    for (int t = 0; t < f->vt; t++) {
        int d0, live;
        me_gemm_tile_span(head_dim, f->vt, mr, t, &d0, &live);
        me_tile_out ot = {.c = o + (size_t)d0 * QB, .ldc = QB, .nr = QB, .alpha = 1.0f};
        f->tiles.tiles[live](f->bf16 ? f->tp : tokens, pair + f->kbytes + (size_t)t * mr * f->tp * f->esz, p, &ot);
    }
    for (int j = 0; j < QB; j++) sums[j] = 1.0f / sums[j];
    me_gemm_transpose32(o, head_dim, nq, sums, out + (size_t)q0 * ldo, (size_t)ldo);
}

static void attention_fused(const fused_layout *f, int batch, int tokens, int heads, int head_dim, const float *q,
                            const float *k, const float *v, int ld, float *out, float *scratch, int par)
{
    int ldo = heads * head_dim, pairs = batch * heads, nqb = (tokens + QB - 1) / QB;
    long jobs = (long)pairs * nqb;
    float scale = 1.0f / sqrtf((float)head_dim);
    char *mem = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);

    #pragma omp parallel num_threads(par)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        char *pair = mem + (size_t)t * (f->pair_bytes + f->thread_bytes), *own = pair + f->pair_bytes;
        for (long j = jobs * t / nt, end = jobs * (t + 1) / nt, packed = -1; j < end; j++) {
            int p = (int)(j / nqb), q0 = (int)(j % nqb) * QB, nq = tokens - q0 < QB ? tokens - q0 : QB;
            size_t base = (size_t)(p / heads) * tokens * ld + (size_t)(p % heads) * head_dim;
            if (p != packed) pack_pair(f, tokens, head_dim, k + base, v + base, ld, pair), packed = p;
            float *o = out + (size_t)(p / heads) * tokens * ldo + (size_t)(p % heads) * head_dim;
            fused_job(f, tokens, head_dim, q + base, ld, scale, pair, own, o, ldo, q0, nq);
        }
    }
}

/* ---- blocked ------------------------------------------------------------ */

/* Packed K and V of every (batch, head) pair, each 64-byte aligned (bf16
   ones take at most the float32 size the scratch is made for). */
static size_t pack_bytes(int batch, int tokens, int heads, int head_dim, int bf16, size_t *kbytes, size_t *vbytes)
{
    *kbytes = align64(me_gemm_b_bytes(head_dim, tokens, bf16));
    *vbytes = align64(me_gemm_b_bytes(tokens, head_dim, bf16));
    return (size_t)batch * heads * (*kbytes + *vbytes);
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

static void attention_blocked(int batch, int tokens, int heads, int head_dim, const float *q, const float *k,
                              const float *v, int ld, int bf16, float *out, float *scratch, int par)
{
    int nt = me_threads(), ldo = heads * head_dim, pairs = batch * heads;
    int nblk = (tokens + BLOCK - 1) / BLOCK;
    long jobs = (long)pairs * nblk;
    float scale = 1.0f / sqrtf((float)head_dim);

    size_t kbytes, vbytes;
    pack_bytes(batch, tokens, heads, head_dim, bf16, &kbytes, &vbytes);
    uintptr_t pack_at = (uintptr_t)(scratch + (size_t)nt * BLOCK * tokens);
    char *mem = (char *)((pack_at + 63) & ~(uintptr_t)63);
    /* Shape templates; each pair's operands sit at their own offset. */
    me_gemm_b kt, vb;
    me_gemm_b_init(&kt, mem, head_dim, tokens, bf16);
    me_gemm_b_init(&vb, mem + kbytes, tokens, head_dim, bf16);

    #pragma omp parallel num_threads(par)
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

/* ---- AMX ---------------------------------------------------------------- */

static int amx_form(int tokens, int head_dim, int bf16)
{
    return bf16 && me_gemm_native(1) && me_cpu_amx() && tokens % ME_AMX_ROWS == 0 && head_dim % ME_AMX_K == 0;
}

/* Per (batch, head): Kᵀ's panels (k head_dim, 32 tokens each), V's (k
   tokens, 32 of head_dim each). Per thread: the queries' A block, S
   (32 × tokens floats), P's A blocks, O (32 × head_dim floats). */
typedef struct { size_t kbytes, pair_bytes, q_bytes, s_bytes, p_bytes, thread_bytes; } amx_layout;

static void amx_layout_of(int tokens, int head_dim, amx_layout *l)
{
    l->kbytes = align64(me_gemm_b_bytes(head_dim, tokens, 1));
    l->pair_bytes = l->kbytes + align64(me_gemm_b_bytes(tokens, head_dim, 1));
    l->q_bytes = align64((size_t)ME_AMX_ROWS * head_dim * sizeof(uint16_t));
    l->s_bytes = align64((size_t)ME_AMX_ROWS * tokens * sizeof(float));
    l->p_bytes = align64((size_t)ME_AMX_ROWS * tokens * sizeof(uint16_t));
    l->thread_bytes = l->q_bytes + l->s_bytes + l->p_bytes + align64((size_t)ME_AMX_ROWS * head_dim * sizeof(float));
}

/* 32 queries (rows q, ld apart) of one pair into out rows (ldo apart). */
static void amx_job(const amx_layout *l, int tokens, int head_dim, const float *q, int ld, float scale,
                    const char *pair, char *own, float *out, int ldo)
{
    uint16_t *qa = (uint16_t *)own, *pa = (uint16_t *)(own + l->q_bytes + l->s_bytes);
    float *s = (float *)(own + l->q_bytes), *o = (float *)(own + l->q_bytes + l->s_bytes + l->p_bytes);
    float inv[ME_AMX_ROWS];
    const uint16_t *kt = (const uint16_t *)pair, *vp = (const uint16_t *)(pair + l->kbytes);
    me_amx_pack_block(q, (size_t)ld, ME_AMX_ROWS, head_dim, qa);
    for (int t = 0; t < tokens; t += ME_AMX_ROWS)   /* panel t/32 of Kᵀ */
        me_amx_block(qa, kt + (size_t)t * head_dim, head_dim, 1, s + t, (size_t)tokens);
    for (size_t i = 0; i < (size_t)ME_AMX_ROWS * tokens; i++) s[i] *= scale;
    softmax_tile(ME_AMX_ROWS, tokens, s, inv);
    me_amx_pack_block(s, (size_t)tokens, ME_AMX_ROWS, tokens, pa);
    for (int d = 0; d < head_dim; d += ME_AMX_ROWS)   /* panel d/32 of V */
        me_amx_block(pa, vp + (size_t)d * tokens, tokens, 1, o + d, (size_t)head_dim);
    for (int r = 0; r < ME_AMX_ROWS; r++)
        for (int d = 0; d < head_dim; d++) out[(size_t)r * ldo + d] = o[(size_t)r * head_dim + d] * inv[r];
}

static void attention_amx(int batch, int tokens, int heads, int head_dim, const float *q, const float *k,
                          const float *v, int ld, float *out, float *scratch, int par)
{
    amx_layout l;
    amx_layout_of(tokens, head_dim, &l);
    int ldo = heads * head_dim, pairs = batch * heads, nqb = tokens / ME_AMX_ROWS;
    long jobs = (long)pairs * nqb;
    float scale = 1.0f / sqrtf((float)head_dim);
    char *mem = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    char *threads_mem = mem + (size_t)pairs * l.pair_bytes;

    #pragma omp parallel num_threads(par)
    {
        #pragma omp for schedule(static)
        for (int p = 0; p < pairs; p++) {
            size_t base = (size_t)(p / heads) * tokens * ld + (size_t)(p % heads) * head_dim;
            char *pm = mem + (size_t)p * l.pair_bytes;
            me_gemm_b kp, vp;
            me_gemm_b_init(&kp, pm, head_dim, tokens, 1);
            me_gemm_pack_b(&kp, 0, tokens, 1, ME_GEMM_F32, k + base, (size_t)ld);
            me_gemm_b_init(&vp, pm + l.kbytes, tokens, head_dim, 1);
            me_gemm_pack_b(&vp, 0, head_dim, 0, ME_GEMM_F32, v + base, (size_t)ld);
        }
        /* (the loop's barrier: everything is packed) */
        char *own = threads_mem + (size_t)omp_get_thread_num() * l.thread_bytes;
        me_amx_tiles_on();
        #pragma omp for schedule(dynamic)
        for (long j = 0; j < jobs; j++) {
            int p = (int)(j / nqb), q0 = (int)(j % nqb) * ME_AMX_ROWS;
            size_t base = (size_t)(p / heads) * tokens * ld + (size_t)(p % heads) * head_dim;
            float *o = out + ((size_t)(p / heads) * tokens + q0) * ldo + (size_t)(p % heads) * head_dim;
            amx_job(&l, tokens, head_dim, q + base + (size_t)q0 * ld, ld, scale, mem + (size_t)p * l.pair_bytes, own,
                    o, ldo);
        }
        me_amx_tiles_off();
    }
}

/* ---- entry points ------------------------------------------------------- */

/* Floats for either form at moedit_set_threads' count (which an adaptive
   forward may lower but never raise), plus slack to align: the caller owns
   all memory, so the forward never allocates and has no failure to report.
   The fused layout is sized for float32 operands, which bf16 ones never
   outgrow. */
size_t op_attention_scratch(int batch, int tokens, int heads, int head_dim)
{
    if (batch <= 0 || tokens <= 0 || heads <= 0 || head_dim <= 0) return 0;
    size_t kb, vb, pack = pack_bytes(batch, tokens, heads, head_dim, 0, &kb, &vb);
    size_t blocked = (size_t)me_threads_max() * BLOCK * (size_t)tokens * sizeof(float) + pack, need = blocked;
    fused_layout f;
    if (fused_layout_of(tokens, head_dim, 0, &f)) {
        size_t fused = (size_t)me_threads_max() * (f.pair_bytes + f.thread_bytes);
        fused += align64((size_t)f.tp * QB * sizeof(uint16_t)) * (size_t)me_threads_max();   /* bf16's pairs */
        if (fused > need) need = fused;
    }
    if (amx_form(tokens, head_dim, 1)) {
        amx_layout l;
        amx_layout_of(tokens, head_dim, &l);
        size_t amx = (size_t)batch * heads * l.pair_bytes + (size_t)me_threads_max() * l.thread_bytes;
        if (amx > need) need = amx;
    }
    return (need + 64) / sizeof(float) + 1;
}

void op_attention(int batch, int tokens, int heads, int head_dim, const float *q, const float *k,
                  const float *v, int ld, int bf16, float *out, float *scratch)
{
    if (batch <= 0 || tokens <= 0 || heads <= 0 || head_dim <= 0) return;
    int nt = me_threads();
    double work = 4.0 * batch * heads * (double)tokens * tokens * head_dim;
    fused_layout f;
    int amx = amx_form(tokens, head_dim, bf16), fused = !amx && fused_layout_of(tokens, head_dim, bf16, &f);
    long jobs = (long)batch * heads * ((tokens + (amx || fused ? QB : BLOCK) - 1) / (amx || fused ? QB : BLOCK));
    int par = nt > 1 && jobs >= nt && work >= 1e6 && !omp_in_parallel() ? nt : 1;
    if (amx) attention_amx(batch, tokens, heads, head_dim, q, k, v, ld, out, scratch, par);
    else if (fused) attention_fused(&f, batch, tokens, heads, head_dim, q, k, v, ld, out, scratch, par);
    else attention_blocked(batch, tokens, heads, head_dim, q, k, v, ld, bf16, out, scratch, par);
}

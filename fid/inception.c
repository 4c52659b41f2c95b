/* The FID InceptionV3, read top to bottom like pytorch-fid's inception.py:
   the stem (Conv2d_1a_3x3 … Conv2d_4a_3x3 with two max pools), Mixed_5b-d
   (FIDInceptionA), Mixed_6a (InceptionB), Mixed_6b-e (FIDInceptionC),
   Mixed_7a (InceptionD), Mixed_7b/7c (FIDInceptionE_1/_2), average pool, fc.

   Every BasicConv2d is conv (no bias) → BatchNorm(eps 1e-3) → ReLU; the
   BatchNorm is an affine map per output channel in eval mode, so it is
   folded into the convolution's weights and bias at load.

   The input is always 299×299, so every layer's size is known at load and
   the buffers are sized then (one set per thread). The stem runs one image
   at a time; the mixed blocks run on a chunk of up to CHUNK images at
   once, each convolution one GEMM whose columns are the pixels of all of
   them — the 17×17 and 8×8 layers alone give only 10 and 2 column panels
   per image. A batch gives each thread its own chunks (single-threaded
   kernels, no synchronisation); a single image runs on all threads. A
   block writes its branches straight into their channel slices of the
   output (torch.cat without a copy), and its 1×1 convolutions of the
   block input (branch1x1, branch5x5_1, …: "heads") run as one GEMM with
   their weights concatenated, each branch's channels sent to its place. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "fid/inception.h"
#include "fid/preprocess.h"
#include "ops/conv.h"
#include "ops/conv_winograd.h"
#include "ops/ops.h"

#define BN_EPS 1e-3

typedef struct {
    op_conv_shape s;
    int h, w, oh, ow;       /* input and output size (fixed by the 299×299 input) */
    float *weight, *bias;   /* BatchNorm folded in */
    op_conv op;             /* weight packed for the tile kernels (ops/conv.h), in me_inception.packs */
    op_winograd wino;       /* or, where wino.a is set, transformed for Winograd's F(4×4, 3×3) */
} conv;

/* heads: a block's 1×1 convolutions of its input, one GEMM (see load_heads);
   in the blocks that pool by average, branch_pool's 1×1 convolution too */
typedef struct { conv heads, b5_2, d2, d3; } block_a;          /* FIDInceptionA */
typedef struct { conv b3, d1, d2, d3; } block_b;               /* InceptionB */
typedef struct { conv heads, b7_2, b7_3, d2, d3, d4, d5; } block_c;
typedef struct { conv heads, b3_2, b7_2, b7_3, b7_4; } block_d; /* InceptionD */
typedef struct { conv heads, b3_2a, b3_2b, d2, d3a, d3b, pool; } block_e;   /* pool: max-pooling E_2's only */

/* Images per chunk of the mixed blocks. Measured on the Zen 3 host (one
   thread, CPU time of 32 images, three alternating rounds): 4 ran 3–16 %
   faster than 1 (one image per GEMM) and as fast as 8 and 16 within the
   noise of the shared machine; larger chunks only cost memory. */
#define CHUNK 4

/* One thread's buffers. The stem runs in q and t1 (BIG_FLOATS) one image
   at a time, leaving its outputs in p; the blocks then run the chunk in
   p, q (inputs and outputs), t1, t2 (a branch's). */
typedef struct {
    float *in;                  /* [3, h, w] in [0, 1] */
    size_t in_cap;
    float *x0;                  /* [3, 299, 299] */
    float *p, *q, *t1, *t2;
    float *scratch;
} work;

struct me_inception {
    conv c1a, c2a, c2b, c3b, c4a;
    block_a m5b, m5c, m5d;
    block_b m6a;
    block_c m6b, m6c, m6d, m6e;
    block_d m7a;
    block_e m7b, m7c;
    const float *fc_w, *fc_b;   /* point into fc_store */
    float *fc_store;
    me_arena packs;             /* the convolutions' packed weights */
    size_t scratch;             /* floats of conv scratch */
    double flops;               /* per image: convolutions and fc, multiply-adds ×2 */
    double flops_done;          /* … those multiplied (Winograd's layers fewer) */
    work *work;                 /* [nwork]: one per thread, each running its own chunks */
    int nwork;
    uint32_t digest;            /* me_tensors_digest of the weights it was made from */
};

/* Largest activations: the stem's 64×147×147 (in q and t1) and the
   blocks' per image, 288×35×35 (a block's input or output; every branch
   temporary is smaller). */
#define BIG_FLOATS ((size_t)64 * 147 * 147)
#define TMP_FLOATS ((size_t)288 * 35 * 35)

/* ---- loading ----------------------------------------------------------- */

typedef struct {
    me_tensors *ts;
    me_arena *packs;  /* where the packed weights go */
    int rc;
    size_t scratch;   /* largest conv scratch seen */
    double flops;     /* the convolutions' multiply-adds ×2 per image */
    double done;      /* … those multiplied (fewer where Winograd runs) */
} loader;

/* prefix.conv.weight and prefix.bn.* of `parts` BasicConv2d's of one
   shape and input into c, their output channels one after the other
   (couts[i] each), for an input of h×w. */
static void load_parts(loader *L, conv *c, int parts, char prefix[][64], const int *couts, int cin, int kh,
                       int kw, int stride, int ph, int pw, int h, int w)
{
    if (L->rc) return;
    int cout = 0;
    for (int i = 0; i < parts; i++) cout += couts[i];
    c->s = (op_conv_shape){.cin = cin, .cout = cout, .kh = kh, .kw = kw, .stride = stride,
                           .pad_h = ph, .pad_w = pw};
    c->h = h;
    c->w = w;
    c->oh = op_conv2d_out(h, kh, stride, ph);
    c->ow = op_conv2d_out(w, kw, stride, pw);
    size_t k = (size_t)cin * kh * kw;
    double direct = 2.0 * (double)k * cout * c->oh * c->ow;
    L->flops += direct;
    c->weight = me_alloc_aligned(sizeof(float) * k * cout);
    c->bias = me_alloc_aligned(sizeof(float) * cout);
    if (!c->weight || !c->bias) {
        L->rc = MOEDIT_EINTERNAL;
        return;
    }
    for (int part = 0, o0 = 0; part < parts; o0 += couts[part++]) {
        char name[256];   /* a 64-byte prefix and a key */
        const float *wt, *bn[4];
        static const char *bn_keys[4] = {"weight", "bias", "running_mean", "running_var"};
        snprintf(name, sizeof name, "%.63s.conv.weight", prefix[part]);
        if ((L->rc = me_tensors_f32(L->ts, name, 4, (int64_t[]){couts[part], cin, kh, kw}, &wt))) return;
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "%.63s.bn.%s", prefix[part], bn_keys[i]);
            if ((L->rc = me_tensors_f32(L->ts, name, 1, (int64_t[]){couts[part]}, &bn[i]))) return;
        }
        /* finite is checked by me_tensors_f32; a negative variance is
           corrupt too, and one under −eps makes the folded scale NaN: every
           feature after it NaN, and a FID of NaN */
        for (int o = 0; o < couts[part]; o++)
            if (!(bn[3][o] >= 0)) {
                L->rc = me_fail(MOEDIT_EINPUT, "tensor %.63s.bn.running_var holds %g at index %d: a variance "
                                "cannot be negative, the weights are corrupt", prefix[part], bn[3][o], o);
                return;
            }
        for (int o = 0; o < couts[part]; o++) {
            double scale = bn[0][o] / sqrt((double)bn[3][o] + BN_EPS);
            for (size_t i = 0; i < k; i++) c->weight[(o0 + o) * k + i] = (float)(wt[o * k + i] * scale);
            c->bias[o0 + o] = (float)(bn[1][o] - bn[2][o] * scale);
        }
        /* finite weights can still fold past float's range */
        if (me_non_finite_rows(c->weight + (size_t)o0 * k, 1, k * couts[part], NULL, 0) ||
            me_non_finite_rows(c->bias + o0, 1, couts[part], NULL, 0)) {
            L->rc = me_fail(MOEDIT_EINPUT, "%.63s: the convolution folded with its batch norm overflows float32: "
                            "the weights are corrupt", prefix[part]);
            return;
        }
    }
    /* By Winograd's minimal filtering (ops/conv_winograd.h): the 3×3
       stride-1 layers of 64+ channels by F(4×4, 3×3) — Conv2d_4a_3x3 and
       the 35² branch3x3dbl_2/_3 of Mixed_5b–5d and 6a —, the 17² 1×7 and
       7×1 layers of Mixed_6b–7a by F(2, 7). The features stay as close to
       PyTorch's as the direct convolution's (docs/performance.md,
       "InceptionV3"). Not Mixed_7b/c's 8² 448 → 384: 4 blocks an image, its
       25 MB of transformed weights read for a chunk's 16, no faster in
       whole passes. */
    int wino = op_winograd_pays(&c->s) && c->oh > 8;
    void *packed = me_arena_alloc(L->packs, wino ? op_winograd_bytes(&c->s) : op_conv_bytes(&c->s, 0));
    if (!packed) {
        L->rc = MOEDIT_EINTERNAL;
        return;
    }
    if (wino)
        op_winograd_init(&c->wino, &c->s, c->weight, c->bias, packed);
    else
        op_conv_init(&c->op, &c->s, c->weight, c->bias, 0, packed);
    L->done += wino ? op_winograd_flops(&c->s, h, w) : direct;
    size_t s = wino ? op_winograd_scratch(&c->s, CHUNK, h, w) : op_conv_scratch(&c->s, h, w);
    if (s > L->scratch) L->scratch = s;
}

static void load_conv(loader *L, conv *c, const char *prefix, int cin, int cout, int kh, int kw,
                      int stride, int ph, int pw, int h, int w)
{
    char p[1][64];
    snprintf(p[0], sizeof p[0], "%s", prefix);
    load_parts(L, c, 1, p, &cout, cin, kh, kw, stride, ph, pw, h, w);
}

/* The block's 1×1 convolutions of its input (branch1x1, branch5x5_1, …),
   all read x: one GEMM with their output channels concatenated, so x is
   packed once for all of them and each packed panel feeds all their tiles
   (forward: op_conv_run_split, each branch's channels to its own place).
   Where branch_pool is a 3×3 average pool (padding not counted) and a 1×1
   convolution, the two commute — both linear, and the pool's weights of
   each window sum to 1, so the folded batch-norm bias passes through too —
   so the convolution joins the heads, reading x, and the pool then runs
   on its 32–192 output channels instead of the 192–1280 input ones, with
   the ReLU after it (avgpool_relu). */
static void load_heads(loader *L, conv *c, const char *name, int parts, const char *const *branch,
                       const int *couts, int cin, int hw)
{
    char p[4][64];
    for (int i = 0; i < parts; i++) snprintf(p[i], sizeof p[i], "%s.%s", name, branch[i]);
    load_parts(L, c, parts, p, couts, cin, 1, 1, 1, 0, 0, hw, hw);
}

static void load_a(loader *L, block_a *m, const char *name, int cin, int pool_features)
{
    char p[64];
#define P(branch) (snprintf(p, sizeof p, "%s.%s", name, branch), p)
    load_heads(L, &m->heads, name, 4,
               (const char *[]){"branch1x1", "branch5x5_1", "branch3x3dbl_1", "branch_pool"},
               (int[]){64, 48, 64, pool_features}, cin, 35);
    load_conv(L, &m->b5_2, P("branch5x5_2"), 48, 64, 5, 5, 1, 2, 2, 35, 35);
    load_conv(L, &m->d2, P("branch3x3dbl_2"), 64, 96, 3, 3, 1, 1, 1, 35, 35);
    load_conv(L, &m->d3, P("branch3x3dbl_3"), 96, 96, 3, 3, 1, 1, 1, 35, 35);
}

static void load_b(loader *L, block_b *m, const char *name)
{
    char p[64];
    load_conv(L, &m->b3, P("branch3x3"), 288, 384, 3, 3, 2, 0, 0, 35, 35);
    load_conv(L, &m->d1, P("branch3x3dbl_1"), 288, 64, 1, 1, 1, 0, 0, 35, 35);
    load_conv(L, &m->d2, P("branch3x3dbl_2"), 64, 96, 3, 3, 1, 1, 1, 35, 35);
    load_conv(L, &m->d3, P("branch3x3dbl_3"), 96, 96, 3, 3, 2, 0, 0, 35, 35);
}

static void load_c(loader *L, block_c *m, const char *name, int c7)
{
    char p[64];
    load_heads(L, &m->heads, name, 4,
               (const char *[]){"branch1x1", "branch7x7_1", "branch7x7dbl_1", "branch_pool"},
               (int[]){192, c7, c7, 192}, 768, 17);
    load_conv(L, &m->b7_2, P("branch7x7_2"), c7, c7, 1, 7, 1, 0, 3, 17, 17);
    load_conv(L, &m->b7_3, P("branch7x7_3"), c7, 192, 7, 1, 1, 3, 0, 17, 17);
    load_conv(L, &m->d2, P("branch7x7dbl_2"), c7, c7, 7, 1, 1, 3, 0, 17, 17);
    load_conv(L, &m->d3, P("branch7x7dbl_3"), c7, c7, 1, 7, 1, 0, 3, 17, 17);
    load_conv(L, &m->d4, P("branch7x7dbl_4"), c7, c7, 7, 1, 1, 3, 0, 17, 17);
    load_conv(L, &m->d5, P("branch7x7dbl_5"), c7, 192, 1, 7, 1, 0, 3, 17, 17);
}

static void load_d(loader *L, block_d *m, const char *name)
{
    char p[64];
    load_heads(L, &m->heads, name, 2, (const char *[]){"branch3x3_1", "branch7x7x3_1"}, (int[]){192, 192}, 768, 17);
    load_conv(L, &m->b3_2, P("branch3x3_2"), 192, 320, 3, 3, 2, 0, 0, 17, 17);
    load_conv(L, &m->b7_2, P("branch7x7x3_2"), 192, 192, 1, 7, 1, 0, 3, 17, 17);
    load_conv(L, &m->b7_3, P("branch7x7x3_3"), 192, 192, 7, 1, 1, 3, 0, 17, 17);
    load_conv(L, &m->b7_4, P("branch7x7x3_4"), 192, 192, 3, 3, 2, 0, 0, 17, 17);
}

static void load_e(loader *L, block_e *m, const char *name, int cin, int max_pool)
{
    char p[64];
    load_heads(L, &m->heads, name, max_pool ? 3 : 4,
               (const char *[]){"branch1x1", "branch3x3_1", "branch3x3dbl_1", "branch_pool"},
               (int[]){320, 384, 448, 192}, cin, 8);
    load_conv(L, &m->b3_2a, P("branch3x3_2a"), 384, 384, 1, 3, 1, 0, 1, 8, 8);
    load_conv(L, &m->b3_2b, P("branch3x3_2b"), 384, 384, 3, 1, 1, 1, 0, 8, 8);
    load_conv(L, &m->d2, P("branch3x3dbl_2"), 448, 384, 3, 3, 1, 1, 1, 8, 8);
    load_conv(L, &m->d3a, P("branch3x3dbl_3a"), 384, 384, 1, 3, 1, 0, 1, 8, 8);
    load_conv(L, &m->d3b, P("branch3x3dbl_3b"), 384, 384, 3, 1, 1, 1, 0, 8, 8);
    if (max_pool) load_conv(L, &m->pool, P("branch_pool"), cin, 192, 1, 1, 1, 0, 0, 8, 8);
#undef P
}

/* Every conv of the network, for freeing. */
static int all_convs(me_inception *n, conv **out)
{
    int k = 0;
    conv *stem[] = {&n->c1a, &n->c2a, &n->c2b, &n->c3b, &n->c4a};
    for (int i = 0; i < 5; i++) out[k++] = stem[i];
    /* the blocks are structs of convs only */
    struct { void *p; size_t size; } blocks[] = {
        {&n->m5b, sizeof n->m5b}, {&n->m5c, sizeof n->m5c}, {&n->m5d, sizeof n->m5d},
        {&n->m6a, sizeof n->m6a}, {&n->m6b, sizeof n->m6b}, {&n->m6c, sizeof n->m6c},
        {&n->m6d, sizeof n->m6d}, {&n->m6e, sizeof n->m6e}, {&n->m7a, sizeof n->m7a},
        {&n->m7b, sizeof n->m7b}, {&n->m7c, sizeof n->m7c}};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
        for (size_t i = 0; i < blocks[b].size / sizeof(conv); i++) out[k++] = (conv *)blocks[b].p + i;
    return k;
}

void me_inception_free(me_inception *net)
{
    if (!net) return;
    conv *cs[128];
    int k = all_convs(net, cs);
    for (int i = 0; i < k; i++) {
        me_free_aligned(cs[i]->weight);
        me_free_aligned(cs[i]->bias);
    }
    me_arena_free(&net->packs);
    free(net->fc_store);
    for (int i = 0; i < net->nwork; i++) {
        work *w = &net->work[i];
        me_free_aligned(w->in);
        me_free_aligned(w->x0);
        me_free_aligned(w->p);
        me_free_aligned(w->q);
        me_free_aligned(w->t1);
        me_free_aligned(w->t2);
        me_free_aligned(w->scratch);
    }
    free(net->work);
    free(net);
}

int me_inception_from_tensors(me_tensors *ts, me_inception **out)
{
    *out = NULL;
    me_inception *n = me_calloc(1, sizeof *n);
    if (!n) return MOEDIT_EINTERNAL;
    loader L = {ts, &n->packs, 0, 0, 0.0, 0.0};
    load_conv(&L, &n->c1a, "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0, 299, 299);
    load_conv(&L, &n->c2a, "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0, 149, 149);
    load_conv(&L, &n->c2b, "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1, 147, 147);
    load_conv(&L, &n->c3b, "Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0, 73, 73);
    load_conv(&L, &n->c4a, "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0, 73, 73);
    load_a(&L, &n->m5b, "Mixed_5b", 192, 32);
    load_a(&L, &n->m5c, "Mixed_5c", 256, 64);
    load_a(&L, &n->m5d, "Mixed_5d", 288, 64);
    load_b(&L, &n->m6a, "Mixed_6a");
    load_c(&L, &n->m6b, "Mixed_6b", 128);
    load_c(&L, &n->m6c, "Mixed_6c", 160);
    load_c(&L, &n->m6d, "Mixed_6d", 160);
    load_c(&L, &n->m6e, "Mixed_6e", 192);
    load_d(&L, &n->m7a, "Mixed_7a");
    load_e(&L, &n->m7b, "Mixed_7b", 1280, 0);
    load_e(&L, &n->m7c, "Mixed_7c", 2048, 1);
    const float *fw = NULL, *fb = NULL;
    if (!L.rc) L.rc = me_tensors_f32(ts, "fc.weight", 2, (int64_t[]){ME_INCEPTION_CLASSES, ME_INCEPTION_DIM}, &fw);
    if (!L.rc) L.rc = me_tensors_f32(ts, "fc.bias", 1, (int64_t[]){ME_INCEPTION_CLASSES}, &fb);
    if (L.rc) {
        /* a missing tensor's message names the file already */
        const char *src = me_tensors_source(ts);
        if (strncmp(moedit_last_error(), src, strlen(src)) != 0) me_fail_prefix(L.rc, src);
        me_inception_free(n);
        return L.rc;
    }
    /* the registry may go away: keep fc too */
    size_t fwn = (size_t)ME_INCEPTION_CLASSES * ME_INCEPTION_DIM;
    if ((n->fc_store = me_alloc(sizeof(float) * (fwn + ME_INCEPTION_CLASSES)))) {
        memcpy(n->fc_store, fw, sizeof(float) * fwn);
        memcpy(n->fc_store + fwn, fb, sizeof(float) * ME_INCEPTION_CLASSES);
        n->fc_w = n->fc_store;
        n->fc_b = n->fc_store + fwn;
    }
    n->scratch = L.scratch ? L.scratch : 1;
    n->flops = L.flops + 2.0 * ME_INCEPTION_DIM * ME_INCEPTION_CLASSES;
    n->flops_done = L.done + 2.0 * ME_INCEPTION_DIM * ME_INCEPTION_CLASSES;
    const size_t chunk = CHUNK * TMP_FLOATS, shared = chunk > BIG_FLOATS ? chunk : BIG_FLOATS;
    int ok = n->fc_store != NULL && me_tensors_digest(ts, &n->digest) == MOEDIT_OK;
    if (ok && (n->work = me_calloc((size_t)me_threads_max(), sizeof *n->work))) n->nwork = me_threads_max();
    for (int i = 0; ok && i < n->nwork; i++) {
        work *w = &n->work[i];
        w->x0 = me_alloc_aligned(sizeof(float) * 3 * ME_INCEPTION_SIZE * ME_INCEPTION_SIZE);
        w->p = me_alloc_aligned(sizeof(float) * chunk);
        w->q = me_alloc_aligned(sizeof(float) * shared);
        w->t1 = me_alloc_aligned(sizeof(float) * shared);
        w->t2 = me_alloc_aligned(sizeof(float) * chunk);
        w->scratch = me_alloc_aligned(sizeof(float) * n->scratch);
        ok = w->x0 && w->p && w->q && w->t1 && w->t2 && w->scratch;
    }
    if (!ok || !n->nwork) {
        me_inception_free(n);
        return MOEDIT_EINTERNAL;
    }
    /* Each work set touched now by the thread that runs it (its memory
       then sits on that thread's node): otherwise the first images pay for
       ~50 MB of page faults, in the images/s of a short run. */
    #pragma omp parallel for schedule(static, 1) num_threads(n->nwork)
    for (int i = 0; i < n->nwork; i++) {
        work *w = &n->work[i];
        memset(w->x0, 0, sizeof(float) * 3 * ME_INCEPTION_SIZE * ME_INCEPTION_SIZE);
        memset(w->p, 0, sizeof(float) * chunk);
        memset(w->q, 0, sizeof(float) * shared);
        memset(w->t1, 0, sizeof(float) * shared);
        memset(w->t2, 0, sizeof(float) * chunk);
        memset(w->scratch, 0, sizeof(float) * n->scratch);
    }
    *out = n;
    return MOEDIT_OK;
}

int me_inception_load(const char *path, me_inception **out)
{
    me_tensors *ts;
    *out = NULL;
    int rc = me_tensors_open(path, &ts);
    if (rc) return rc;
    rc = me_inception_from_tensors(ts, out);
    me_tensors_free(ts);
    return rc;
}

uint32_t me_inception_digest(const me_inception *net) { return net->digest; }

/* ---- forward ----------------------------------------------------------- */

/* BasicConv2d: y = ReLU(conv(x)) with BN folded, the ReLU applied as the
   output is stored, on k images; y's images hold ctot channels (a torch.cat
   target), run() is the conv's own output. */
static void run_cat(const work *n, int k, const conv *c, const float *x, float *y, int ctot)
{
    if (c->wino.a)
        op_winograd_run_into(&c->wino, k, c->h, c->w, x, y, (size_t)ctot * c->oh * c->ow, NULL, OP_ACT_RELU,
                             n->scratch);
    else
        op_conv_run_into(&c->op, k, c->h, c->w, x, y, (size_t)ctot * c->oh * c->ow, NULL, OP_ACT_RELU, n->scratch);
}

static void run(const work *n, int k, const conv *c, const float *x, float *y)
{
    run_cat(n, k, c, x, y, c->s.cout);
}

/* A block's heads: each branch's channels to its destination, in order. */
static void run_heads(const work *n, int k, const conv *c, const float *x, int nd, const op_conv_dst *d)
{
    op_conv_run_split(&c->op, k, c->h, c->w, x, d, nd, OP_ACT_RELU, n->scratch);
}

/* Destination of cout channels in images of ctot channels of hw pixels. */
static op_conv_dst to(float *y, int cout, int ctot, size_t hw)
{
    return (op_conv_dst){cout, y, (size_t)ctot * hw, NULL, 0};
}

/* The same for a branch_pool convolution's sums, stored before the ReLU. */
static op_conv_dst to_pool(float *y, int cout, size_t hw)
{
    return (op_conv_dst){cout, y, (size_t)cout * hw, NULL, 1};
}

/* branch_pool's end: the 3×3 average pool (padding not counted) of k
   images of c channels side² (the convolution's sums, see load_heads),
   then the ReLU, into a slice of y whose images hold ctot channels. */
static void avgpool_relu(int k, int c, int side, const float *sums, float *y, int ctot)
{
    size_t n = (size_t)c * side * side;
    for (int i = 0; i < k; i++) {
        float *yi = y + (size_t)i * ctot * side * side;
        op_avgpool2d(1, c, side, side, 3, 1, 1, sums + i * n, yi);
        for (size_t j = 0; j < n; j++) yi[j] = yi[j] < 0.0f ? 0.0f : yi[j];
    }
}

/* Output channel slice: y + (channels so far)·plane, advancing the count. */
static float *slice(float *y, int *ch, int cout, size_t plane)
{
    float *p = y + (size_t)*ch * plane;
    *ch += cout;
    return p;
}

/* The 3×3 stride-2 max pool of k images [cin, h, w] into a slice of y,
   whose images hold ctot channels of the output size. */
static void maxpool_cat(int k, int cin, int h, int w, const float *x, float *y, int ctot)
{
    int oh = op_conv2d_out(h, 3, 2, 0), ow = op_conv2d_out(w, 3, 2, 0);
    for (int i = 0; i < k; i++)
        op_maxpool2d(1, cin, h, w, 3, 2, 0, x + (size_t)i * cin * h * w, y + (size_t)i * ctot * oh * ow);
}

static void forward_a(const work *n, int k, const block_a *m, const float *x, float *y)
{
    const size_t hw = 35 * 35;
    /* the heads' channels: 64 + 48 + 64, then branch_pool's pool_features;
       the output: 64 + 64 + 96, then branch_pool's */
    int ch = 0, pf = m->heads.s.cout - 176, out = 224 + pf;
    /* branch1x1 → y, branch5x5_1 → t1, branch3x3dbl_1 → t2, branch_pool's
       sums after branch5x5_1's in t1, pooled into y at once */
    float *sums = n->t1 + (size_t)k * 48 * hw;
    run_heads(n, k, &m->heads, x, 4,
              (op_conv_dst[]){to(slice(y, &ch, 64, hw), 64, out, hw), to(n->t1, 48, 48, hw), to(n->t2, 64, 64, hw),
                              to_pool(sums, pf, hw)});
    avgpool_relu(k, pf, 35, sums, y + (size_t)(out - pf) * hw, out);   /* TF's pool: padding not counted */
    run_cat(n, k, &m->b5_2, n->t1, slice(y, &ch, 64, hw), out);
    run(n, k, &m->d2, n->t2, n->t1);
    run_cat(n, k, &m->d3, n->t1, slice(y, &ch, 96, hw), out);
}

static void forward_b(const work *n, int k, const block_b *m, const float *x, float *y)
{
    const size_t hw = 17 * 17;
    int ch = 0;
    run_cat(n, k, &m->b3, x, slice(y, &ch, 384, hw), 768);
    run(n, k, &m->d1, x, n->t1);
    run(n, k, &m->d2, n->t1, n->t2);
    run_cat(n, k, &m->d3, n->t2, slice(y, &ch, 96, hw), 768);
    maxpool_cat(k, 288, 35, 35, x, slice(y, &ch, 288, hw), 768);
}

static void forward_c(const work *n, int k, const block_c *m, const float *x, float *y)
{
    const size_t hw = 17 * 17;
    int ch = 0, c7 = m->b7_2.s.cin;
    /* branch1x1 → y, branch7x7_1 → t1, branch7x7dbl_1 → t1's second half,
       branch_pool's sums → t2, pooled into y at once */
    float *dbl = n->t1 + (size_t)k * c7 * hw;
    run_heads(n, k, &m->heads, x, 4,
              (op_conv_dst[]){to(slice(y, &ch, 192, hw), 192, 768, hw), to(n->t1, c7, c7, hw), to(dbl, c7, c7, hw),
                              to_pool(n->t2, 192, hw)});
    avgpool_relu(k, 192, 17, n->t2, y + (size_t)(768 - 192) * hw, 768);   /* the last 192 channels */
    run(n, k, &m->b7_2, n->t1, n->t2);
    run_cat(n, k, &m->b7_3, n->t2, slice(y, &ch, 192, hw), 768);
    run(n, k, &m->d2, dbl, n->t2);
    run(n, k, &m->d3, n->t2, n->t1);
    run(n, k, &m->d4, n->t1, n->t2);
    run_cat(n, k, &m->d5, n->t2, slice(y, &ch, 192, hw), 768);
}

static void forward_d(const work *n, int k, const block_d *m, const float *x, float *y)
{
    const size_t hw = 8 * 8, in = 17 * 17;
    int ch = 0;
    /* branch3x3_1 → t1, branch7x7x3_1 → t2 (17×17) */
    run_heads(n, k, &m->heads, x, 2, (op_conv_dst[]){to(n->t1, 192, 192, in), to(n->t2, 192, 192, in)});
    run_cat(n, k, &m->b3_2, n->t1, slice(y, &ch, 320, hw), 1280);
    run(n, k, &m->b7_2, n->t2, n->t1);
    run(n, k, &m->b7_3, n->t1, n->t2);
    run_cat(n, k, &m->b7_4, n->t2, slice(y, &ch, 192, hw), 1280);
    maxpool_cat(k, 768, 17, 17, x, slice(y, &ch, 768, hw), 1280);
}

/* FIDInceptionE_1 pools by average, FIDInceptionE_2 by maximum (a quirk of
   the TensorFlow graph that FID scores depend on). */
static void forward_e(const work *n, int k, const block_e *m, int max_pool, const float *x, float *y)
{
    const size_t hw = 8 * 8;
    int ch = 0, cin = m->heads.s.cin;
    /* branch1x1 → y, branch3x3_1 → t1, branch3x3dbl_1 → t2; E_1's
       branch_pool sums after branch3x3_1's in t1, pooled into y at once */
    float *sums = n->t1 + (size_t)k * 384 * hw;
    op_conv_dst d[4] = {to(slice(y, &ch, 320, hw), 320, 2048, hw), to(n->t1, 384, 384, hw), to(n->t2, 448, 448, hw),
                        to_pool(sums, 192, hw)};
    run_heads(n, k, &m->heads, x, max_pool ? 3 : 4, d);
    if (!max_pool) avgpool_relu(k, 192, 8, sums, y + (size_t)(2048 - 192) * hw, 2048);   /* the last 192 */
    run_cat(n, k, &m->b3_2a, n->t1, slice(y, &ch, 384, hw), 2048);
    run_cat(n, k, &m->b3_2b, n->t1, slice(y, &ch, 384, hw), 2048);
    run(n, k, &m->d2, n->t2, n->t1);
    run_cat(n, k, &m->d3a, n->t1, slice(y, &ch, 384, hw), 2048);
    run_cat(n, k, &m->d3b, n->t1, slice(y, &ch, 384, hw), 2048);
    if (max_pool) {
        op_maxpool2d(k, cin, 8, 8, 3, 1, 1, x, n->t1);
        run_cat(n, k, &m->pool, n->t1, slice(y, &ch, 192, hw), 2048);
    }
}

/* One image [3, h, w] (in [0, 1] for PYTORCH_FID, 0…255 for ADM) through
   the resize and the stem → out [192, 35, 35], in q and t1 (free until the
   chunk's blocks run). */
static void stem(const me_inception *net, work *n, me_preprocess prep, int h, int w, const float *img, float *out)
{
    const int S = ME_INCEPTION_SIZE;
    if (prep == ME_PREPROCESS_ADM) {
        me_resize_bilinear_tf1(3, h, w, S, S, img, n->x0);
        for (size_t i = 0; i < (size_t)3 * S * S; i++) n->x0[i] = (n->x0[i] - 128.0f) * (1.0f / 128);
    } else {
        op_resize_bilinear(1, 3, h, w, S, S, img, n->x0);
        for (size_t i = 0; i < (size_t)3 * S * S; i++) n->x0[i] = 2 * n->x0[i] - 1;
    }
    float *a = n->q, *b = n->t1;
    run(n, 1, &net->c1a, n->x0, a);                    /* 32×149×149 */
    run(n, 1, &net->c2a, a, b);                        /* 32×147×147 */
    run(n, 1, &net->c2b, b, a);                        /* 64×147×147 */
    op_maxpool2d(1, 64, 147, 147, 3, 2, 0, a, b);    /* 64×73×73 */
    run(n, 1, &net->c3b, b, a);                        /* 80×73×73 */
    run(n, 1, &net->c4a, a, b);                        /* 192×71×71 */
    op_maxpool2d(1, 192, 71, 71, 3, 2, 0, b, out);   /* 192×35×35 */
}

/* The chunk's k stem outputs in n->p → features [k, 2048] (and the sFID
   tap [k, 2023], logits [k, 1008]). */
static void mixed(const me_inception *net, work *n, int k, float *feat, float *spatial, float *logits)
{
    float *a = n->p, *b = n->q;
    forward_a(n, k, &net->m5b, a, b);                  /* 256×35×35 */
    forward_a(n, k, &net->m5c, b, a);                  /* 288 */
    forward_a(n, k, &net->m5d, a, b);                  /* 288 */
    forward_b(n, k, &net->m6a, b, a);                  /* 768×17×17 */
    forward_c(n, k, &net->m6b, a, b);
    forward_c(n, k, &net->m6c, b, a);
    forward_c(n, k, &net->m6d, a, b);
    for (int i = 0; spatial && i < k; i++)   /* branch1x1 is channels 0…191 of b */
        me_spatial_tap(b + (size_t)i * 768 * 17 * 17, 17 * 17, 7, spatial + (size_t)i * ME_INCEPTION_SPATIAL);
    forward_c(n, k, &net->m6e, b, a);
    forward_d(n, k, &net->m7a, a, b);                  /* 1280×8×8 */
    forward_e(n, k, &net->m7b, 0, b, a);               /* 2048×8×8 */
    forward_e(n, k, &net->m7c, 1, a, b);
    op_global_avgpool(k, ME_INCEPTION_DIM, 8 * 8, b, feat);
    if (logits) op_linear(k, ME_INCEPTION_DIM, ME_INCEPTION_CLASSES, feat, net->fc_w, net->fc_b, logits);
}

/* Images [i0, i0 + k) of the batch: each through the stem into the
   thread's chunk, then the chunk through the mixed blocks. */
static void forward_chunk(const me_inception *net, work *wk, me_preprocess prep, int i0, int k, int h, int w,
                          int c, const uint8_t *u8, const float *f32, float *features, float *spatial,
                          float *logits)
{
    const size_t plane = (size_t)h * w;
    for (int i = i0; i < i0 + k; i++) {
        const float *img = f32 ? f32 + (size_t)i * 3 * plane : wk->in;
        if (u8) {
            /* ToTensor: HWC uint8 → CHW float / 255 (ADM: the raw values);
               grayscale fills all three */
            const uint8_t *px = u8 + (size_t)i * plane * c;
            const float scale = prep == ME_PREPROCESS_ADM ? 1.0f : 1 / 255.0f;
            for (int ch = 0; ch < 3; ch++)
                for (size_t p = 0; p < plane; p++) wk->in[ch * plane + p] = px[p * c + (c == 3 ? ch : 0)] * scale;
        }
        stem(net, wk, prep, h, w, img, wk->p + (size_t)(i - i0) * 192 * 35 * 35);
    }
    mixed(net, wk, k, features + (size_t)i0 * ME_INCEPTION_DIM,
          spatial ? spatial + (size_t)i0 * ME_INCEPTION_SPATIAL : NULL,
          logits ? logits + (size_t)i0 * ME_INCEPTION_CLASSES : NULL);
}

/* n images from uint8 HWC (u8) or float CHW (f32), in chunks of up to
   CHUNK images, as evenly over the threads as the count allows. */
static int forward_batch(me_inception *net, me_preprocess prep, int n, int h, int w, int c, const uint8_t *u8,
                         const float *f32, float *features, float *spatial, float *logits)
{
    if (n < 0 || h < 1 || w < 1 || h > 8192 || w > 8192)
        return me_fail(MOEDIT_EINPUT, "inception: bad image batch %d×%d×%d", n, h, w);
    if (c != 1 && c != 3) return me_fail(MOEDIT_EINPUT, "inception: images have %d channels (1 or 3 expected)", c);
    if (n == 0) return MOEDIT_OK;
    const size_t plane = (size_t)h * w;
    for (int t = 0; u8 && t < net->nwork; t++) {
        work *wk = &net->work[t];
        if (plane * 3 <= wk->in_cap) continue;
        me_free_aligned(wk->in);
        wk->in_cap = 0;
        if (!(wk->in = me_alloc_aligned(sizeof(float) * 3 * plane))) return MOEDIT_EINTERNAL;
        wk->in_cap = 3 * plane;
    }
    /* The work sets' conv scratch holds net->nwork threads' blocks; a thread
       count raised since loading must not run more. */
    const int capped = me_threads() > net->nwork;
    if (capped) me_threads_limit(net->nwork);
    const int nt = me_threads() < net->nwork ? me_threads() : net->nwork;
    int per = (n + nt - 1) / nt;
    if (per > CHUNK) per = CHUNK;
    const int chunks = (n + per - 1) / per, par = nt > 1 && chunks > 1;
    if (par) openblas_set_num_threads(1);
    /* One chunk (a single image): the kernels use all threads instead. */
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (par)
    for (int i = 0; i < chunks; i++) {
        int i0 = (int)((long)n * i / chunks), i1 = (int)((long)n * (i + 1) / chunks);
        forward_chunk(net, &net->work[omp_get_thread_num()], prep, i0, i1 - i0, h, w, c, u8, f32, features,
                      spatial, logits);
    }
    if (par) openblas_set_num_threads(me_threads());
    if (capped) me_threads_limit(0);
    return MOEDIT_OK;
}

int me_inception_forward_f32(me_inception *net, int n, int h, int w, const float *chw,
                             float *features, float *logits)
{
    return forward_batch(net, ME_PREPROCESS_PYTORCH_FID, n, h, w, 3, NULL, chw, features, NULL, logits);
}

int me_inception_forward_u8(me_inception *net, int n, int h, int w, int c, const uint8_t *hwc,
                            float *features, float *logits)
{
    return forward_batch(net, ME_PREPROCESS_PYTORCH_FID, n, h, w, c, hwc, NULL, features, NULL, logits);
}

int me_inception_forward_u8_taps(me_inception *net, me_preprocess prep, int n, int h, int w, int c,
                                 const uint8_t *hwc, float *features, float *spatial, float *logits)
{
    return forward_batch(net, prep, n, h, w, c, hwc, NULL, features, spatial, logits);
}

const float *me_inception_fc_weight(const me_inception *net) { return net->fc_w; }

double me_inception_flops(const me_inception *net) { return net->flops; }

double me_inception_flops_multiplied(const me_inception *net) { return net->flops_done; }

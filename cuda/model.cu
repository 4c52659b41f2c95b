/* Uploading a transformer to the GPU, once: every weight fetched by name
   with its exact shape (the names and shapes of dit/model.c), matrices
   kept in PyTorch's [out, in] layout for cuBLAS, bfloat16 unless fp32. */
#include <initializer_list>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda/internal.cuh"

typedef struct {
    mc_tensor_fn fn;
    void *user;
} source;

struct shape {
    int ndim;
    int64_t d[4];
};

static shape make_shape(std::initializer_list<int64_t> dims)
{
    shape s = {0, {0}};
    for (int64_t v : dims) s.d[s.ndim++] = v;
    return s;
}
#define SHAPE(...) make_shape({__VA_ARGS__})

extern "C" int mc_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();   /* no driver or no device: clear the sticky error */
        return 0;
    }
    return n;
}

static int device_alloc(mc_model *g, size_t bytes, void **out)
{
    if (g->nallocs == g->allocs_cap) {
        int cap = g->allocs_cap ? 2 * g->allocs_cap : 256;
        void **p = (void **)realloc(g->allocs, (size_t)cap * sizeof *p);
        if (!p) return me_fail(MOEDIT_EINTERNAL, "out of memory");
        g->allocs = p, g->allocs_cap = cap;
    }
    MC_CHECK(cudaMalloc(out, bytes ? bytes : 16));
    g->allocs[g->nallocs++] = *out;
    return MOEDIT_OK;
}

/* Round to nearest even, NaN kept a NaN. */
static uint16_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* count floats from host to element `at` of dst (bf16: converted on the
   way, through a bounded staging buffer). */
static int copy_in(void *dst, size_t at, const float *host, size_t count, int bf16)
{
    if (!bf16) {
        MC_CHECK(cudaMemcpy((float *)dst + at, host, count * sizeof(float), cudaMemcpyHostToDevice));
        return MOEDIT_OK;
    }
    enum { CHUNK = 1 << 20 };
    uint16_t *stage = (uint16_t *)malloc((count < CHUNK ? count : CHUNK) * sizeof *stage + 2);
    if (!stage) return me_fail(MOEDIT_EINTERNAL, "out of memory");
    for (size_t i = 0; i < count; i += CHUNK) {
        size_t len = count - i < CHUNK ? count - i : CHUNK;
        for (size_t j = 0; j < len; j++) stage[j] = bf16_bits(host[i + j]);
        cudaError_t e = cudaMemcpy((uint16_t *)dst + at + i, stage, len * sizeof *stage, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            free(stage);
            return me_fail(MOEDIT_EINTERNAL, "CUDA: %s", cudaGetErrorString(e));
        }
    }
    free(stage);
    return MOEDIT_OK;
}

static const float *fetch(const source *src, shape sh, const char *fmt, ...)
{
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return src->fn(src->user, name, sh.ndim, sh.d);
}

static size_t numel(shape sh)
{
    size_t n = 1;
    for (int i = 0; i < sh.ndim; i++) n *= (size_t)sh.d[i];
    return n;
}

/* A float32 tensor on the device. */
static int vec(mc_model *g, const source *src, const float **out, shape sh, const char *name)
{
    const float *h = fetch(src, sh, "%s", name);
    void *d;
    int rc;
    if (!h) return MOEDIT_EINPUT;
    if ((rc = device_alloc(g, numel(sh) * sizeof(float), &d)) ||
        (rc = copy_in(d, 0, h, numel(sh), 0)))
        return rc;
    *out = (const float *)d;
    return MOEDIT_OK;
}

/* prefix.weight [out, in] (and prefix.bias [out] when bias). */
static int linear(mc_model *g, const source *src, mc_linear *L, int bf16, int64_t out, int64_t in, int bias,
                  const char *prefix)
{
    char name[160];
    int rc;
    L->in = (int)in, L->out = (int)out, L->bf16 = bf16, L->b = NULL;
    snprintf(name, sizeof name, "%s.weight", prefix);
    const float *w = fetch(src, SHAPE(out, in), "%s", name);
    if (!w) return MOEDIT_EINPUT;
    if ((rc = device_alloc(g, (size_t)out * in * (bf16 ? 2 : 4), &L->w)) ||
        (rc = copy_in(L->w, 0, w, (size_t)out * in, bf16)))
        return rc;
    if (!bias) return MOEDIT_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return vec(g, src, &L->b, SHAPE(out), name);
}

/* The SwiGLU weights of `count` experts under prefix%d (or prefix alone for
   count 0: the shared expert) into gate_up [·, 2H, D] and down [·, D, H]. */
static int swiglu_set(mc_model *g, const source *src, void **gate_up, void **down, int count, int64_t H, int64_t D,
                      const char *prefix)
{
    int bf = !g->fp32, rc, n = count ? count : 1;
    size_t esz = bf ? 2 : 4;
    if ((rc = device_alloc(g, (size_t)n * 2 * H * D * esz, gate_up)) ||
        (rc = device_alloc(g, (size_t)n * D * H * esz, down)))
        return rc;
    for (int e = 0; e < n; e++) {
        char base[128];
        if (count) snprintf(base, sizeof base, "%s.%d", prefix, e);
        else snprintf(base, sizeof base, "%s", prefix);
        const float *gp = fetch(src, SHAPE(H, D), "%s.gate_proj.weight", base);
        const float *up = gp ? fetch(src, SHAPE(H, D), "%s.up_proj.weight", base) : NULL;
        const float *dn = up ? fetch(src, SHAPE(D, H), "%s.down_proj.weight", base) : NULL;
        if (!dn) return MOEDIT_EINPUT;
        size_t o = (size_t)e * 2 * H * D;
        if ((rc = copy_in(*gate_up, o, gp, (size_t)H * D, bf)) ||
            (rc = copy_in(*gate_up, o + (size_t)H * D, up, (size_t)H * D, bf)) ||
            (rc = copy_in(*down, (size_t)e * D * H, dn, (size_t)D * H, bf)))
            return rc;
    }
    return MOEDIT_OK;
}

static int upload_block(mc_model *g, const source *src, int l)
{
    const moedit_config *cf = &g->cfg;
    mc_block *b = &g->blocks[l];
    int64_t D = cf->hidden, H = cf->mlp_hidden, E = cf->num_experts, hd = g->head_dim;
    int bf = !g->fp32, rc;
    char p[128], name[160];
    snprintf(p, sizeof p, "blocks.%d.adaLN_modulation.1", l);
    if ((rc = linear(g, src, &b->ada, bf, 6 * D, D, 1, p))) return rc;
    int qk = cf->attention == MOEDIT_ATTN_QKNORM;
    snprintf(p, sizeof p, qk ? "blocks.%d.attn.Wqkv" : "blocks.%d.attn.qkv", l);
    if ((rc = linear(g, src, &b->qkv, bf, 3 * D, D, 1, p))) return rc;
    snprintf(p, sizeof p, qk ? "blocks.%d.attn.out_proj" : "blocks.%d.attn.proj", l);
    if ((rc = linear(g, src, &b->proj, bf, D, D, 1, p))) return rc;
    if (qk) {
        const float **dst[] = {&b->qn_w, &b->qn_b, &b->kn_w, &b->kn_b};
        const char *part[] = {"q_norm.weight", "q_norm.bias", "k_norm.weight", "k_norm.bias"};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blocks.%d.attn.%s", l, part[i]);
            if ((rc = vec(g, src, dst[i], SHAPE(hd), name))) return rc;
        }
    }

    if (cf->family == MOEDIT_FAMILY_DIT_MOE) {
        snprintf(p, sizeof p, "blocks.%d.moe.gate", l);
        if ((rc = linear(g, src, &b->gate, 0, E, D, 0, p))) return rc;
        snprintf(p, sizeof p, "blocks.%d.moe.experts", l);
        if ((rc = swiglu_set(g, src, &b->gate_up, &b->down, (int)E, H, D, p))) return rc;
        if (cf->shared_hidden) {
            snprintf(p, sizeof p, "blocks.%d.moe.shared_experts", l);
            if ((rc = swiglu_set(g, src, &b->sh_gate_up, &b->sh_down, 0, cf->shared_hidden, D, p))) return rc;
        }
        return MOEDIT_OK;
    }

    snprintf(p, sizeof p, "blocks.%d.mlp.fc1", l);
    if ((rc = linear(g, src, &b->fc1, bf, H, D, 1, p))) return rc;
    snprintf(p, sizeof p, "blocks.%d.mlp.fc2", l);
    if ((rc = linear(g, src, &b->fc2, bf, D, H, 1, p))) return rc;
    if (cf->routing == MOEDIT_ROUTING_DMOE) {
        snprintf(p, sizeof p, "routers.%d.f_gate.1", l);
        if ((rc = linear(g, src, &b->rg, 0, E, D, 1, p))) return rc;
        snprintf(name, sizeof name, "routers.%d.experts.b", l);
        if ((rc = vec(g, src, &b->re_b, SHAPE(E, D), name))) return rc;
        const float *w = fetch(src, SHAPE(E, D, D), "routers.%d.experts.w", l);
        if (!w) return MOEDIT_EINPUT;
        if ((rc = device_alloc(g, (size_t)E * D * D * (bf ? 2 : 4), &b->re)) ||
            (rc = copy_in(b->re, 0, w, (size_t)E * D * D, bf)))
            return rc;
    } else if (cf->routing == MOEDIT_ROUTING_DTR) {
        snprintf(name, sizeof name, "routers.%d._unit_mapping", l);
        if ((rc = vec(g, src, &b->unit_map, SHAPE(g->tasks, D), name))) return rc;
    }
    return MOEDIT_OK;
}

static int upload(mc_model *g, const mc_dims *d, const source *src)
{
    const moedit_config *cf = &g->cfg;
    int64_t D = cf->hidden, C = cf->in_channels, p = cf->patch, T = g->tokens;
    int rc;
    void *pos;
    /* x_embedder.proj.weight [D, C, p, p] is a linear C·p·p → D. */
    const float *xw = fetch(src, SHAPE(D, C, p, p), "x_embedder.proj.weight");
    if (!xw) return MOEDIT_EINPUT;
    g->xemb = (mc_linear){NULL, NULL, (int)(C * p * p), (int)D, 0};
    if ((rc = device_alloc(g, (size_t)D * C * p * p * sizeof(float), &g->xemb.w)) ||
        (rc = copy_in(g->xemb.w, 0, xw, (size_t)D * C * p * p, 0)) ||
        (rc = vec(g, src, &g->xemb.b, SHAPE(D), "x_embedder.proj.bias")) ||
        (rc = device_alloc(g, (size_t)T * D * sizeof(float), &pos)) ||
        (rc = copy_in(pos, 0, d->pos, (size_t)T * D, 0)) ||
        (rc = linear(g, src, &g->t0, 0, D, MC_FREQ_DIM, 1, "t_embedder.mlp.0")) ||
        (rc = linear(g, src, &g->t2, 0, D, D, 1, "t_embedder.mlp.2")) ||
        (rc = vec(g, src, &g->ytab, SHAPE(g->table_rows, D), "y_embedder.embedding_table.weight")) ||
        (rc = linear(g, src, &g->fa, !g->fp32, 2 * D, D, 1, "final_layer.adaLN_modulation.1")) ||
        (rc = linear(g, src, &g->fl, 0, p * p * cf->out_channels, D, 1, "final_layer.linear")))
        return rc;
    g->pos = (const float *)pos;
    if (!(g->blocks = (mc_block *)calloc((size_t)cf->depth, sizeof *g->blocks)))
        return me_fail(MOEDIT_EINTERNAL, "out of memory");
    for (int l = 0; l < cf->depth; l++)
        if ((rc = upload_block(g, src, l))) return rc;
    return MOEDIT_OK;
}

/* The bf16 attention makes its scores this many bytes of (row, head) pairs
   at a time, so that large batches or token counts bound the arena instead
   of growing it by n·heads·T² floats: 128 MB, or MOEDIT_CUDA_SCORE_BYTES (a
   smaller bound for a GPU shared with other work, and for the tests, which
   force several batches on small models). */
static size_t score_bytes(void)
{
    const char *v = getenv("MOEDIT_CUDA_SCORE_BYTES");
    if (v && *v) {
        char *end;
        double b = strtod(v, &end);
        if (*end == 0 && b >= 1) return (size_t)b;
    }
    return (size_t)128 << 20;
}

extern "C" int mc_model_upload(const mc_dims *d, mc_tensor_fn tensor, void *user, int device, int fp32, mc_model **out)
{
    *out = NULL;
    if (d->head_dim > MC_MAX_HEAD_DIM)
        return me_fail(MOEDIT_EINPUT, "CUDA attention supports head dims up to %d, not %d", MC_MAX_HEAD_DIM, d->head_dim);
    mc_model *g = (mc_model *)calloc(1, sizeof *g);
    if (!g) return me_fail(MOEDIT_EINTERNAL, "out of memory");
    g->cfg = d->cfg;
    g->tokens = d->tokens, g->grid = d->grid, g->head_dim = d->head_dim;
    g->table_rows = d->table_rows, g->tasks = d->tasks;
    g->device = device, g->fp32 = fp32;
    g->score_bytes = score_bytes();
    source src = {tensor, user};
    int rc = MOEDIT_OK, E = g->cfg.num_experts > 0 ? g->cfg.num_experts : 1;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMallocHost((void **)&g->host_count, 2 * (size_t)E * sizeof(int));
    if (e == cudaSuccess) e = cudaMallocHost((void **)&g->host_ptrs, 6 * ((size_t)E + 1) * sizeof(void *));
    if (e != cudaSuccess) rc = me_fail(MOEDIT_EINTERNAL, "CUDA: %s", cudaGetErrorString(e));
    if (!rc && cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS) rc = me_fail(MOEDIT_EINTERNAL, "cuBLAS: cannot initialise");
    if (!rc) {
        cublasSetStream(g->blas, g->stream);
        /* fp32 is the parity path: no TF32, no reduced-precision reductions. */
        cublasSetMathMode(g->blas, fp32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
        rc = upload(g, d, &src);
    }
    if (rc) {
        mc_model_free(g);
        return rc;
    }
    *out = g;
    return MOEDIT_OK;
}

extern "C" void mc_model_free(mc_model *g)
{
    if (!g) return;
    cudaSetDevice(g->device);
    for (int i = 0; i < g->nallocs; i++) cudaFree(g->allocs[i]);
    cudaFree(g->arena);
    cudaFreeHost(g->host_count);
    cudaFreeHost(g->host_ptrs);
    cudaFreeHost(g->host_routes);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g->allocs);
    free(g->blocks);
    free(g);
}

/* The GPU kernels of the transformer forward, each named after the CPU op
   it replaces (ops/norm.c, ops/attention.c, ops/activations.c, dit/moe.c,
   dit/forward.c). Reductions run in float32 whatever the GEMM type. */
#include <math.h>
#include "cuda/internal.cuh"

#define BLOCK 256

static inline unsigned blocks_for(size_t n) { return (unsigned)((n + BLOCK - 1) / BLOCK); }

/* Row passes over [rows, cols]: x over a row's columns, y striding over the
   rows, so that no thread divides an element index (64-bit divisions cost
   these passes more than their memory traffic). */
static inline dim3 row_grid(int cols, long rows)
{
    return dim3((unsigned)((cols + BLOCK - 1) / BLOCK), (unsigned)(rows < 65535 ? (rows > 0 ? rows : 1) : 65535));
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Eight floats at a 16-byte aligned p as eight bf16 (round to nearest) in
   one 16-byte word: the wide passes below move memory in 16-byte accesses,
   which these memory-bound copies need to approach the bandwidth. */
__device__ __forceinline__ uint4 bf16x8(const float *p)
{
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    uint4 r;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&r;
    h[0] = __floats2bfloat162_rn(a.x, a.y), h[1] = __floats2bfloat162_rn(a.z, a.w);
    h[2] = __floats2bfloat162_rn(b.x, b.y), h[3] = __floats2bfloat162_rn(b.z, b.w);
    return r;
}

/* The 16-byte passes' condition on the pointers they are handed (arena
   fields and cudaMalloc'ed weights are; a slice elsewhere might not be). */
static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <typename T> __device__ __forceinline__ float ld(const T *p, size_t i);
template <> __device__ __forceinline__ float ld<float>(const float *p, size_t i) { return p[i]; }
template <> __device__ __forceinline__ float ld<bf16>(const bf16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16 *p, size_t i, float v) { p[i] = __float2bfloat16_rn(v); }

/* ---- embeddings (dit/forward.c embed_patches, embed_condition) ----------- */

/* patches[b·T + tok, (c, i, j)] = x[b, c, r·p + i, q·p + j] */
__global__ void patchify_kernel(int n, int C, int S, int p, const float *x, float *patches)
{
    int g = S / p, T = g * g, pp = C * p * p;
    size_t len = (size_t)n * T * pp, e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= len) return;
    size_t tok = e / pp;
    int f = (int)(e % pp), c = f / (p * p), i = (f / p) % p, j = f % p;
    int b = (int)(tok / T), r = (int)(tok % T) / g, q = (int)(tok % T) % g;
    patches[e] = x[(((size_t)b * C + c) * S + r * p + i) * S + q * p + j];
}

void mc_patchify(cudaStream_t s, int n, int C, int S, int p, const float *x, float *patches)
{
    size_t len = (size_t)n * (S / p) * (S / p) * C * p * p;
    patchify_kernel<<<blocks_for(len), BLOCK, 0, s>>>(n, C, S, p, x, patches);
}

__global__ void add_pos_kernel(long rows, int T, int D, const float *pos, float *x)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)rows * D) return;
    x[e] += pos[(e / D % T) * D + e % D];
}

void mc_add_pos(cudaStream_t s, long rows, int T, int D, const float *pos, float *x)
{
    add_pos_kernel<<<blocks_for((size_t)rows * D), BLOCK, 0, s>>>(rows, T, D, pos, x);
}

/* The float32 steps torch takes: (−ln 10⁴ · i) / 128, exp, × t; cos then sin. */
__global__ void timestep_embedding_kernel(int n, const float *t, float *freq)
{
    int half = MC_FREQ_DIM / 2, e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * half) return;
    int b = e / half, i = e % half;
    float f = expf(-9.21034037f * (float)i / (float)half), arg = t[b] * f;
    freq[b * MC_FREQ_DIM + i] = cosf(arg);
    freq[b * MC_FREQ_DIM + half + i] = sinf(arg);
}

void mc_timestep_embedding(cudaStream_t s, int n, const float *t, float *freq)
{
    timestep_embedding_kernel<<<blocks_for((size_t)n * MC_FREQ_DIM / 2), BLOCK, 0, s>>>(n, t, freq);
}

__global__ void add_label_kernel(int n, int D, const float *temb, const float *ytab, const int64_t *y, float *c)
{
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * D) return;
    c[e] = temb[e] + ytab[y[e / D] * D + e % D];
}

void mc_add_label(cudaStream_t s, int n, int D, const float *temb, const float *ytab, const int64_t *y, float *c)
{
    add_label_kernel<<<blocks_for((size_t)n * D), BLOCK, 0, s>>>(n, D, temb, ytab, y, c);
}

/* ---- elementwise (ops/activations.c, ops/linear.c) ------------------------ */

__global__ void silu_kernel(size_t len, const float *x, float *y)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < len) y[e] = x[e] / (1.0f + expf(-x[e]));
}

void mc_silu(cudaStream_t s, size_t len, const float *x, float *y)
{
    silu_kernel<<<blocks_for(len), BLOCK, 0, s>>>(len, x, y);
}

__global__ void gelu_tanh_kernel(size_t len, float *x)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= len) return;
    float v = x[e], u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    x[e] = v / (1.0f + expf(-2.0f * u));   /* 0.5·v·(1 + tanh u), as the CPU writes it */
}

void mc_gelu_tanh(cudaStream_t s, size_t len, float *x) { gelu_tanh_kernel<<<blocks_for(len), BLOCK, 0, s>>>(len, x); }

__global__ void add_bias_kernel(long rows, int cols, const float *b, float *y)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float bc = b[c];
    for (long r = blockIdx.y; r < rows; r += gridDim.y) y[(size_t)r * cols + c] += bc;
}

/* Four columns a thread (cols % 4 == 0). */
__global__ void add_bias4_kernel(long rows, int cols, const float *b, float *y)
{
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (c >= cols) return;
    float4 bc = *(const float4 *)(b + c);
    for (long r = blockIdx.y; r < rows; r += gridDim.y) {
        float4 *p = (float4 *)(y + (size_t)r * cols + c), v = *p;
        v.x += bc.x, v.y += bc.y, v.z += bc.z, v.w += bc.w;
        *p = v;
    }
}

void mc_add_bias(cudaStream_t s, long rows, int cols, const float *b, float *y)
{
    if (cols % 4 == 0 && aligned16(b) && aligned16(y))
        add_bias4_kernel<<<row_grid(cols / 4, rows), BLOCK, 0, s>>>(rows, cols, b, y);
    else add_bias_kernel<<<row_grid(cols, rows), BLOCK, 0, s>>>(rows, cols, b, y);
}

__global__ void to_bf16_kernel(size_t len, const float *x, bf16 *y)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < len) y[e] = __float2bfloat16_rn(x[e]);
}

__global__ void to_bf16x8_kernel(size_t len, const float *x, uint4 *y)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < len / 8) y[e] = bf16x8(x + 8 * e);
}

void mc_to_bf16(cudaStream_t s, size_t len, const float *x, void *y)
{
    if (len % 8 == 0 && aligned16(x) && aligned16(y))
        to_bf16x8_kernel<<<blocks_for(len / 8), BLOCK, 0, s>>>(len, x, (uint4 *)y);
    else to_bf16_kernel<<<blocks_for(len), BLOCK, 0, s>>>(len, x, (bf16 *)y);
}

/* ---- adaLN (ops/norm.c op_layernorm_modulate and the gated residuals) ----- */

/* One warp per row: optionally h += gate·ff first, then
   out = LN(h)·(1 + scale) + shift, mean and variance in two passes. The
   chunks of mod row (row / T) have stride `chunks`·D. */
__global__ void layernorm_modulate_kernel(long rows, int D, float *h, const float *mod, int gate, const float *ff,
                                          int shift, int scale, int T, int chunks, float *out)
{
    long r = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    float *hr = h + (size_t)r * D;
    const float *mr = mod + (size_t)(r / T) * chunks * D;
    if (ff) {
        const float *fr = ff + (size_t)r * D;
        for (int i = lane; i < D; i += 32) hr[i] += mr[gate * D + i] * fr[i];
        __syncwarp();
    }
    if (!out) return;
    float sum = 0.0f;
    for (int i = lane; i < D; i += 32) sum += hr[i];
    float mean = warp_sum(sum) / D, var = 0.0f;
    for (int i = lane; i < D; i += 32) var += (hr[i] - mean) * (hr[i] - mean);
    float rstd = rsqrtf(warp_sum(var) / D + MC_LN_EPS);
    float *o = out + (size_t)r * D;
    for (int i = lane; i < D; i += 32) o[i] = (hr[i] - mean) * rstd * (1.0f + mr[scale * D + i]) + mr[shift * D + i];
}

static unsigned warp_blocks(long rows) { return (unsigned)((rows + BLOCK / 32 - 1) / (BLOCK / 32)); }

void mc_layernorm_modulate(cudaStream_t s, long rows, int D, const float *h, const float *mod, int shift, int scale,
                           int T, int chunks, float *out)
{
    layernorm_modulate_kernel<<<warp_blocks(rows), BLOCK, 0, s>>>(rows, D, (float *)h, mod, 0, NULL, shift, scale, T,
                                                                  chunks, out);
}

void mc_gated_residual(cudaStream_t s, long rows, int D, float *h, const float *mod, int gate, int T, const float *ff)
{
    layernorm_modulate_kernel<<<warp_blocks(rows), BLOCK, 0, s>>>(rows, D, h, mod, gate, ff, 0, 0, T, 6, NULL);
}

void mc_gated_residual_layernorm_modulate(cudaStream_t s, long rows, int D, float *h, const float *mod, int gate,
                                          const float *ff, int shift, int scale, int T, float *out)
{
    layernorm_modulate_kernel<<<warp_blocks(rows), BLOCK, 0, s>>>(rows, D, h, mod, gate, ff, shift, scale, T, 6, out);
}

/* DiT-MoE qk-norm: every head's q and k LayerNormed (affine) in place; one
   warp per (token, head, q|k). */
__global__ void qk_layernorm_kernel(long rows, int heads, int hd, int D, float *qkv, const float *qw, const float *qb,
                                    const float *kw, const float *kb)
{
    long wi = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (wi >= rows * heads * 2) return;
    long tok = wi / (2 * heads);
    int which = (int)(wi % 2), head = (int)(wi / 2 % heads);
    float *v = qkv + (size_t)tok * 3 * D + which * D + head * hd;
    const float *w = which ? kw : qw, *b = which ? kb : qb;
    float sum = 0.0f;
    for (int i = lane; i < hd; i += 32) sum += v[i];
    float mean = warp_sum(sum) / hd, var = 0.0f;
    for (int i = lane; i < hd; i += 32) var += (v[i] - mean) * (v[i] - mean);
    float rstd = rsqrtf(warp_sum(var) / hd + MC_LN_EPS);
    for (int i = lane; i < hd; i += 32) v[i] = (v[i] - mean) * rstd * w[i] + b[i];
}

void mc_qk_layernorm(cudaStream_t s, long rows, int heads, int hd, int D, float *qkv, const float *qw, const float *qb,
                     const float *kw, const float *kb)
{
    qk_layernorm_kernel<<<warp_blocks(rows * heads * 2), BLOCK, 0, s>>>(rows, heads, hd, D, qkv, qw, qb, kw, kb);
}

/* ---- attention (ops/attention.c) ------------------------------------------ */

#define ATT_WARPS 8   /* queries per block, one warp each */
#define ATT_KEYS 32   /* keys per shared-memory tile, one lane each */

/* softmax(q·kᵀ/√hd)·v with an online softmax over key tiles (flash-style,
   float32 on the CUDA cores): scores are never stored. Lane j scores key j
   of the tile; lane l accumulates output dims l, l+32, … */
__global__ void attention_kernel(int T, int heads, int hd, const float *qkv, float *out)
{
    extern __shared__ float sm[];
    int D = heads * hd, ldk = hd + 1;   /* +1: lanes reading key rows hit distinct banks */
    float *ks = sm, *vs = ks + ATT_KEYS * ldk, *qs = vs + ATT_KEYS * hd;
    int qblocks = (T + ATT_WARPS - 1) / ATT_WARPS;   /* x: (row, query block); y: head */
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, head = blockIdx.y, b = blockIdx.x / qblocks;
    int qi = (blockIdx.x % qblocks) * ATT_WARPS + warp;
    int valid = qi < T;
    const float *base = qkv + (size_t)b * T * 3 * D + head * hd;
    float *q = qs + warp * hd;
    float scale = rsqrtf((float)hd);
    if (valid)
        for (int d = lane; d < hd; d += 32) q[d] = base[(size_t)qi * 3 * D + d] * scale;
    float m = -INFINITY, l = 0.0f, acc[MC_MAX_HEAD_DIM / 32] = {0};
    for (int k0 = 0; k0 < T; k0 += ATT_KEYS) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_KEYS * hd; e += blockDim.x) {
            int j = e / hd, d = e % hd;
            int key = k0 + j;
            ks[j * ldk + d] = key < T ? base[(size_t)key * 3 * D + D + d] : 0.0f;
            vs[j * hd + d] = key < T ? base[(size_t)key * 3 * D + 2 * D + d] : 0.0f;
        }
        __syncthreads();
        if (!valid) continue;
        float sc = -INFINITY;
        if (k0 + lane < T) {
            sc = 0.0f;
            for (int d = 0; d < hd; d++) sc += q[d] * ks[lane * ldk + d];
        }
        float mnew = fmaxf(m, warp_max(sc));
        float p = k0 + lane < T ? expf(sc - mnew) : 0.0f, corr = expf(m - mnew);
        l = l * corr + warp_sum(p);
        #pragma unroll
        for (int i = 0; i < MC_MAX_HEAD_DIM / 32; i++) acc[i] *= corr;
        for (int j = 0; j < ATT_KEYS; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
            #pragma unroll
            for (int i = 0; i < MC_MAX_HEAD_DIM / 32; i++)
                if (lane + 32 * i < hd) acc[i] += pj * vs[j * hd + lane + 32 * i];
        }
        m = mnew;
    }
    if (!valid) return;
    float *o = out + ((size_t)b * T + qi) * D + head * hd;
    #pragma unroll
    for (int i = 0; i < MC_MAX_HEAD_DIM / 32; i++)
        if (lane + 32 * i < hd) o[lane + 32 * i] = acc[i] / l;
}

void mc_attention(cudaStream_t s, int n, int T, int heads, int hd, const float *qkv, float *out)
{
    size_t smem = (size_t)(ATT_KEYS * (hd + 1) + ATT_KEYS * hd + ATT_WARPS * hd) * sizeof(float);
    dim3 grid((unsigned)(n * ((T + ATT_WARPS - 1) / ATT_WARPS)), (unsigned)heads);
    attention_kernel<<<grid, ATT_WARPS * 32, smem, s>>>(T, heads, hd, qkv, out);
}

/* The bf16 forward's attention runs its two products on the tensor cores
   (cuBLAS, forward.cu): q, k and v regrouped head-major so that each
   (row, head) pair is one strided batch entry, the scores' softmax in
   float32 between the products, the heads merged back after. */

/* Grids of these passes: x over a token's columns, y its token, z its
   batch row (no per-element divisions: they cost more than the copy). */
static dim3 token_grid(int cols, int T, int n) { return dim3((unsigned)((cols + BLOCK - 1) / BLOCK), (unsigned)T, (unsigned)n); }

/* qkv [n, T, 3, heads, hd] float32 → qh [3][n·heads][T][hd] bfloat16. */
__global__ void split_heads_kernel(int n, int T, int heads, int hd, const float *qkv, bf16 *qh)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, D = heads * hd, i = blockIdx.y, b = blockIdx.z;
    if (c >= 3 * D) return;
    int part = c / D, h = c % D / hd, d = c % hd;
    size_t src = ((size_t)b * T + i) * 3 * D + c;
    qh[(size_t)part * n * T * D + (((size_t)b * heads + h) * T + i) * hd + d] = __float2bfloat16_rn(qkv[src]);
}

/* Eight columns a thread, all in one head (hd % 8 == 0). */
__global__ void split_heads8_kernel(int n, int T, int heads, int hd, const float *qkv, bf16 *qh)
{
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * 8, D = heads * hd, i = blockIdx.y, b = blockIdx.z;
    if (c >= 3 * D) return;
    int part = c / D, h = c % D / hd, d = c % hd;
    size_t src = ((size_t)b * T + i) * 3 * D + c;
    *(uint4 *)(qh + (size_t)part * n * T * D + (((size_t)b * heads + h) * T + i) * hd + d) = bf16x8(qkv + src);
}

void mc_split_heads(cudaStream_t s, int n, int T, int heads, int hd, const float *qkv, void *qh)
{
    if (hd % 8 == 0 && aligned16(qkv) && aligned16(qh))
        split_heads8_kernel<<<token_grid(3 * heads * hd / 8, T, n), BLOCK, 0, s>>>(n, T, heads, hd, qkv, (bf16 *)qh);
    else split_heads_kernel<<<token_grid(3 * heads * hd, T, n), BLOCK, 0, s>>>(n, T, heads, hd, qkv, (bf16 *)qh);
}

/* One warp per row of T scores: p = exp(s − max) / Σ, stored as bfloat16. */
__global__ void softmax_rows_kernel(long rows, int T, const float *scores, bf16 *p)
{
    long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float *sr = scores + (size_t)row * T;
    float m = -INFINITY, l = 0.0f;
    for (int j = lane; j < T; j += 32) m = fmaxf(m, sr[j]);
    m = warp_max(m);
    for (int j = lane; j < T; j += 32) l += expf(sr[j] - m);
    float inv = 1.0f / warp_sum(l);
    for (int j = lane; j < T; j += 32) p[(size_t)row * T + j] = __float2bfloat16_rn(expf(sr[j] - m) * inv);
}

void mc_softmax_rows(cudaStream_t s, long rows, int T, const float *scores, void *p)
{
    softmax_rows_kernel<<<warp_blocks(rows), BLOCK, 0, s>>>(rows, T, scores, (bf16 *)p);
}

/* oh [n·heads][T][hd] → out [n, T, heads·hd]. */
__global__ void merge_heads_kernel(int T, int heads, int hd, const float *oh, float *out)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, D = heads * hd, i = blockIdx.y, b = blockIdx.z;
    if (c >= D) return;
    int h = c / hd, d = c % hd;
    out[((size_t)b * T + i) * D + c] = oh[(((size_t)b * heads + h) * T + i) * hd + d];
}

void mc_merge_heads(cudaStream_t s, int n, int T, int heads, int hd, const float *oh, float *out)
{
    merge_heads_kernel<<<token_grid(heads * hd, T, n), BLOCK, 0, s>>>(T, heads, hd, oh, out);
}

/* ---- routing (dit/moe.c) --------------------------------------------------- */

/* Per row: softmax over E (full-precision expf: decisions hang on it), then
   the k largest, largest first, the lower index first among equals; the
   weights are the raw probabilities (upstream norm_topk_prob = False). */
__global__ void softmax_top_k_kernel(long rows, int E, int k, float *probs, int *idx, float *w)
{
    long r = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float *p = probs + (size_t)r * E, mx = p[0], sum = 0.0f;
    for (int i = 1; i < E; i++) mx = fmaxf(mx, p[i]);
    for (int i = 0; i < E; i++) sum += (p[i] = expf(p[i] - mx));
    for (int i = 0; i < E; i++) p[i] /= sum;
    int *ir = idx + (size_t)r * k;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < E; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++) taken |= ir[q] == i;
            if (!taken && (best < 0 || p[i] > p[best])) best = i;
        }
        ir[j] = best;
        w[(size_t)r * k + j] = p[best];
    }
}

void mc_softmax_top_k(cudaStream_t s, long rows, int E, int k, float *probs, int *idx, float *w)
{
    softmax_top_k_kernel<<<blocks_for((size_t)rows), BLOCK, 0, s>>>(rows, E, k, probs, idx, w);
}

__global__ void moe_count_kernel(long slots, const int *idx, int *count)
{
    long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < slots) atomicAdd(&count[idx[e]], 1);
}

void mc_moe_count(cudaStream_t s, long slots, int E, const int *idx, int *count)
{
    cudaMemsetAsync(count, 0, (size_t)E * sizeof *count, s);
    moe_count_kernel<<<blocks_for((size_t)slots), BLOCK, 0, s>>>(slots, idx, count);
}

/* The counting sort of dit/moe.c, deterministic: block e walks the slots in
   order and gives each one that picked e the next position of e's range
   (a block-wide prefix count per chunk of BLOCK slots). */
__global__ void moe_place_kernel(long slots, int k, const int *idx, const int *start, int *slot_pos, int *slot_token)
{
    __shared__ int flags[BLOCK];
    int e = blockIdx.x, run = start[e];
    for (long s0 = 0; s0 < slots; s0 += BLOCK) {
        long sl = s0 + threadIdx.x;
        int mine = sl < slots && idx[sl] == e;
        flags[threadIdx.x] = mine;
        __syncthreads();
        for (int o = 1; o < BLOCK; o <<= 1) {   /* inclusive Hillis–Steele scan */
            int v = threadIdx.x >= (unsigned)o ? flags[threadIdx.x - o] : 0;
            __syncthreads();
            flags[threadIdx.x] += v;
            __syncthreads();
        }
        if (mine) {
            int pos = run + flags[threadIdx.x] - 1;
            slot_pos[sl] = pos;
            slot_token[pos] = (int)(sl / k);
        }
        int total = flags[BLOCK - 1];
        __syncthreads();
        run += total;
    }
}

void mc_moe_place(cudaStream_t s, long slots, int E, int k, const int *idx, const int *start, int *slot_pos,
                  int *slot_token)
{
    moe_place_kernel<<<E, BLOCK, 0, s>>>(slots, k, idx, start, slot_pos, slot_token);
}

template <typename T> __global__ void moe_gather_kernel(long slots, int D, const float *xm, const int *slot_token, T *xg)
{
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    for (long r = blockIdx.y; r < slots; r += gridDim.y) st(xg, (size_t)r * D + d, xm[(size_t)slot_token[r] * D + d]);
}

/* bf16, eight columns a thread (D % 8 == 0). */
__global__ void moe_gather_bf16x8_kernel(long slots, int D, const float *xm, const int *slot_token, bf16 *xg)
{
    int d = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (d >= D) return;
    for (long r = blockIdx.y; r < slots; r += gridDim.y)
        *(uint4 *)(xg + (size_t)r * D + d) = bf16x8(xm + (size_t)slot_token[r] * D + d);
}

void mc_moe_gather(cudaStream_t s, long slots, int D, const float *xm, const int *slot_token, void *xg, int fp32)
{
    if (fp32) moe_gather_kernel<<<row_grid(D, slots), BLOCK, 0, s>>>(slots, D, xm, slot_token, (float *)xg);
    else if (D % 8 == 0 && aligned16(xm) && aligned16(xg))
        moe_gather_bf16x8_kernel<<<row_grid(D / 8, slots), BLOCK, 0, s>>>(slots, D, xm, slot_token, (bf16 *)xg);
    else moe_gather_kernel<<<row_grid(D, slots), BLOCK, 0, s>>>(slots, D, xm, slot_token, (bf16 *)xg);
}

/* mid rows [gate | up] of width 2H: gate ← SiLU(gate)·up, in place. */
template <typename T> __global__ void swiglu_kernel(long rows, int H, T *mid)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H) return;
    for (long r = blockIdx.y; r < rows; r += gridDim.y) {
        size_t g = (size_t)r * 2 * H + i;
        float a = ld(mid, g), u = ld(mid, g + H);
        st(mid, g, a / (1.0f + expf(-a)) * u);
    }
}

/* The same in bf16, eight columns a thread: one 16-byte load of gate, one
   of up, one store (a pass bound by memory, which 2-byte accesses left
   far from the bandwidth). The arithmetic and rounding are the kernel's
   above. Needs H % 8 == 0, so every row starts 16-byte aligned. */
__global__ void swiglu_bf16x8_kernel(long rows, int H, bf16 *mid)
{
    int i = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= H) return;
    for (long r = blockIdx.y; r < rows; r += gridDim.y) {
        bf16 *g = mid + (size_t)r * 2 * H + i;
        uint4 gate = *(const uint4 *)g, up = *(const uint4 *)(g + H);
        __nv_bfloat162 *gp = (__nv_bfloat162 *)&gate;
        const __nv_bfloat162 *upp = (const __nv_bfloat162 *)&up;
        for (int j = 0; j < 4; j++) {
            float2 a = __bfloat1622float2(gp[j]), u = __bfloat1622float2(upp[j]);
            gp[j] = __floats2bfloat162_rn(a.x / (1.0f + expf(-a.x)) * u.x, a.y / (1.0f + expf(-a.y)) * u.y);
        }
        *(uint4 *)g = gate;
    }
}

void mc_swiglu(cudaStream_t s, long rows, int H, void *mid, int fp32)
{
    if (fp32) swiglu_kernel<<<row_grid(H, rows), BLOCK, 0, s>>>(rows, H, (float *)mid);
    else if (H % 8 == 0 && aligned16(mid))
        swiglu_bf16x8_kernel<<<row_grid(H / 8, rows), BLOCK, 0, s>>>(rows, H, (bf16 *)mid);
    else swiglu_kernel<<<row_grid(H, rows), BLOCK, 0, s>>>(rows, H, (bf16 *)mid);
}

/* ff = Σ w·expert in ascending expert order (upstream's scatter-add
   order), then + shared (sout NULL: none). */
template <typename T>
__global__ void moe_combine_kernel(long tokens, int D, int k, const int *idx, const float *w, const int *slot_pos,
                                   const T *eout, const T *sout, float *ff)
{
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    for (long tok = blockIdx.y; tok < tokens; tok += gridDim.y) {
        const int *it = idx + tok * k;
        size_t e = (size_t)tok * D + d;
        float acc = 0.0f;
        for (int c = 0, prev = -1; c < k; c++) {
            int j = -1;
            for (int q = 0; q < k; q++)
                if (it[q] > prev && (j < 0 || it[q] < it[j])) j = q;
            prev = it[j];
            float v = w[tok * k + j] * ld(eout, (size_t)slot_pos[tok * k + j] * D + d);
            acc = c == 0 ? v : acc + v;
        }
        if (sout) acc += ld(sout, e);
        ff[e] = acc;
    }
}

void mc_moe_combine(cudaStream_t s, long tokens, int D, int k, const int *idx, const float *w, const int *slot_pos,
                    const void *eout, const void *sout, float *ff, int fp32)
{
    dim3 nb = row_grid(D, tokens);
    if (fp32)
        moe_combine_kernel<<<nb, BLOCK, 0, s>>>(tokens, D, k, idx, w, slot_pos, (const float *)eout,
                                                (const float *)sout, ff);
    else
        moe_combine_kernel<<<nb, BLOCK, 0, s>>>(tokens, D, k, idx, w, slot_pos, (const bf16 *)eout,
                                                (const bf16 *)sout, ff);
}

/* ---- Switch-DiT routers (dit/moe.c dit_switch_mask) ------------------------ */

/* Pointer arrays of the batched product ry[r·k + j] = xs[r]·w[idx[r, j]]
   (A, B, C blocks of n·k pointers each), built on the device so the
   chosen experts never travel to the host. */
__global__ void switch_pointers_kernel(int n, int k, int T, int D, const int *idx, const char *re, const char *xs,
                                       float *ry, const void **ptrs, int esz)
{
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * k) return;
    int r = e / k;
    ptrs[e] = re + (size_t)idx[e] * D * D * esz;
    ptrs[n * k + e] = xs + (size_t)r * T * D * esz;
    ptrs[2 * n * k + e] = ry + (size_t)e * T * D;
}

void mc_switch_pointers(cudaStream_t s, int n, int k, int T, int D, const int *idx, const void *re, const void *xs,
                        float *ry, const void **ptrs, int fp32)
{
    switch_pointers_kernel<<<blocks_for((size_t)n * k), BLOCK, 0, s>>>(n, k, T, D, idx, (const char *)re,
                                                                        (const char *)xs, ry, ptrs, fp32 ? 4 : 2);
}

/* mask = 1 + Σ_j w_j·(x·w_e + b_e); upstream routes only nonzero gates. */
__global__ void switch_dmoe_mask_kernel(int n, int k, int T, int D, const int *idx, const float *w, const float *ry,
                                        const float *re_b, float *mask)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x, row = (size_t)T * D;
    if (e >= (size_t)n * row) return;
    size_t r = e / row, i = e % row;
    float acc = 0.0f;
    for (int j = 0; j < k; j++) {
        float wj = w[r * k + j];
        if (wj != 0.0f) acc += wj * (ry[(r * k + j) * row + i] + re_b[(size_t)idx[r * k + j] * D + i % D]);
    }
    mask[e] = acc + 1.0f;
}

void mc_switch_dmoe_mask(cudaStream_t s, int n, int k, int T, int D, const int *idx, const float *w, const float *ry,
                         const float *re_b, float *mask)
{
    switch_dmoe_mask_kernel<<<blocks_for((size_t)n * T * D), BLOCK, 0, s>>>(n, k, T, D, idx, w, ry, re_b, mask);
}

/* DTR: a fixed 0/1 channel row per (integer) timestep, for every token. */
__global__ void switch_dtr_mask_kernel(int n, int T, int D, const float *unit_map, const float *t, float *mask)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * T * D) return;
    size_t r = e / ((size_t)T * D);
    mask[e] = unit_map[(size_t)t[r] * D + e % D];
}

void mc_switch_dtr_mask(cudaStream_t s, int n, int T, int D, const float *unit_map, const float *t, float *mask)
{
    switch_dtr_mask_kernel<<<blocks_for((size_t)n * T * D), BLOCK, 0, s>>>(n, T, D, unit_map, t, mask);
}

__global__ void switch_enter_kernel(size_t len, const float *x, const float *mask, float *h)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < len) h[e] = x[e] * mask[e];
}

void mc_switch_enter(cudaStream_t s, size_t len, const float *x, const float *mask, float *h)
{
    switch_enter_kernel<<<blocks_for(len), BLOCK, 0, s>>>(len, x, mask, h);
}

__global__ void switch_leave_kernel(size_t len, const float *h, const float *mask, float *x)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < len) x[e] = h[e] + (1.0f - mask[e]) * x[e];
}

void mc_switch_leave(cudaStream_t s, size_t len, const float *h, const float *mask, float *x)
{
    switch_leave_kernel<<<blocks_for(len), BLOCK, 0, s>>>(len, h, mask, x);
}

/* ---- final layer (dit/forward.c final_layer) -------------------------------- */

/* tokens [n, g, g, p, p, oc] → out [n, oc, g·p, g·p] */
__global__ void unpatchify_kernel(int n, int oc, int S, int p, const float *tok, float *out)
{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * oc * S * S) return;
    int g = S / p, col = (int)(e % S), row = (int)(e / S % S), c = (int)(e / ((size_t)S * S) % oc);
    size_t b = e / ((size_t)S * S * oc);
    size_t t = b * g * g + (size_t)(row / p) * g + col / p;
    out[e] = tok[t * p * p * oc + ((row % p) * p + col % p) * oc + c];
}

void mc_unpatchify(cudaStream_t s, int n, int oc, int S, int p, const float *tok, float *out)
{
    unpatchify_kernel<<<blocks_for((size_t)n * oc * S * S), BLOCK, 0, s>>>(n, oc, S, p, tok, out);
}

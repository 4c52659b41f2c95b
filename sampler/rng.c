/* Noise generators: a re-implementation of PyTorch's CPU torch.randn (so that
   --rng torch reproduces upstream sample.py runs) and a counter-based native
   generator whose values depend only on (seed, draw, index). */
#include <math.h>
#include "sampler/sampler.h"

/* ---- mt19937, seeded like at::mt19937 (32-bit seed, Knuth's init) -------- */

void me_torch_rng_seed(me_torch_rng *r, uint64_t seed)
{
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < 624; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->idx = 624;
    r->has_cached = 0;   /* manual_seed also drops the cached normal */
    r->cached = 0;
}

static void mt_twist(me_torch_rng *r)
{
    for (int i = 0; i < 624; i++) {
        uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % 624] & 0x7fffffffu);
        uint32_t v = r->mt[(i + 397) % 624] ^ (y >> 1);
        if (y & 1) v ^= 0x9908b0dfu;
        r->mt[i] = v;
    }
    r->idx = 0;
}

uint32_t me_torch_rng_u32(me_torch_rng *r)
{
    if (r->idx >= 624) mt_twist(r);
    uint32_t y = r->mt[r->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* uniform_real_distribution<float>: the low 24 bits of one draw. */
static float uniform_f32(me_torch_rng *r)
{
    return (float)(me_torch_rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>: random64() = first draw in the high
   word, second in the low word; the low 53 bits. */
static double uniform_f64(me_torch_rng *r)
{
    uint64_t hi = me_torch_rng_u32(r), lo = me_torch_rng_u32(r);
    uint64_t v = (hi << 32) | lo;
    return (double)(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* normal_distribution<double>: Box–Muller on two 53-bit uniforms, the sine
   half kept for the next call. */
static double normal_f64(me_torch_rng *r)
{
    if (r->has_cached) {
        r->has_cached = 0;
        return r->cached;
    }
    double u1 = uniform_f64(r), u2 = uniform_f64(r);
    double radius = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * M_PI * u1;
    r->cached = radius * sin(theta);
    r->has_cached = 1;
    return radius * cos(theta);
}

/* Box–Muller over 16 uniforms in place: the first 8 give radii, the last 8
   angles, as torch's normal_fill_16. theta is formed in float like the AVX2
   kernel; log/sin/cos are libm's, torch's are polynomials (about 1 ulp). */
static void normal_fill_16(float *d)
{
    const float two_pi = (float)(2.0 * M_PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float theta = two_pi * d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        d[j] = radius * cosf(theta);
        d[j + 8] = radius * sinf(theta);
    }
}

void me_torch_randn(me_torch_rng *r, float *out, size_t n)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_f64(r);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
    if (n % 16) {
        /* torch redraws the uniforms of the last 16 values and transforms
           them again, overwriting part of the previous block */
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
        normal_fill_16(tail);
    }
}

/* ---- native: Philox4x32-10 ---------------------------------------------- */

static void philox(uint32_t ctr[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0], p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
        uint32_t c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[0] = c0;
        ctr[1] = (uint32_t)p1;
        ctr[2] = c2;
        ctr[3] = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

/* (0, 1]: never 0, so the logarithm stays finite. */
static double unit_open(uint32_t v)
{
    return ((double)v + 1.0) * (1.0 / 4294967296.0);
}

void me_native_randn(uint64_t seed, uint32_t draw, float *out, size_t n)
{
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (size_t i = 0; i < n; i += 4) {
        uint64_t block = i / 4;
        uint32_t c[4] = {(uint32_t)block, (uint32_t)(block >> 32), draw, 0x6d6f6564u};
        philox(c, k0, k1);
        double z[4];
        for (int h = 0; h < 2; h++) {
            double radius = sqrt(-2.0 * log(unit_open(c[2 * h])));
            double theta = 2.0 * M_PI * unit_open(c[2 * h + 1]);
            z[2 * h] = radius * cos(theta);
            z[2 * h + 1] = radius * sin(theta);
        }
        for (size_t j = 0; j < 4 && i + j < n; j++) out[i + j] = (float)z[j];
    }
}

uint64_t me_native_row_seed(uint64_t seed, uint64_t row)
{
    /* splitmix64 of (seed, row): distinct rows get unrelated keys */
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + row + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

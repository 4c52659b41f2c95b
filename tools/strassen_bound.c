/* strassen_bound — what one level of Strassen's algorithm could save on the
   transformer's products on this host, measured on moedit's own kernels:

     build/strassen_bound [--bf16] [--rounds R] [M,N,K ...]

   For each product (one thread, warm operands, the weight packed once as at
   model load) it times, in alternating rounds:
     classic   me_gemm on the whole m×k by k×n product;
     strassen  the seven half-size products (B's sums packed once, like the
               weights; A's sums and the four C updates as plain passes),
               rated on the classic product's 2mnk flops;
     bare      the seven half-size products alone, no sums nor updates: the
               most any Strassen, however fused into packing and stores,
               could leave of the classic product's time.
   Rates as a share of the one-thread peak measured in the same run
   (ops/peak.h); also the largest difference from the classic result, against
   the largest element. Without shapes: the S/2 and B/2 expert chunks, qkv
   and MLP products. docs/performance.md ("Tried and not kept") holds a run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/gemm.h"
#include "ops/peak.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float *filled(size_t len, unsigned seed)
{
    float *p = me_alloc_aligned(len * sizeof *p);
    for (size_t i = 0; p && i < len; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) * 0x1.0p-24f - 0.5f;
    }
    return p;
}

/* Quarter (r, c) of the k×n weight w, plus sign times quarter (r2, c2). */
static void pack_quarter(me_gemm_b *b, const float *w, int k, int n, int r, int c, float sign, int r2, int c2, int bf16)
{
    const int k2 = k / 2, n2 = n / 2;
    float *q = malloc(sizeof(float) * k2 * n2);
    for (int i = 0; i < k2; i++)
        for (int j = 0; j < n2; j++)
            q[(size_t)i * n2 + j] = w[(size_t)(r * k2 + i) * n + c * n2 + j] +
                                    sign * w[(size_t)(r2 * k2 + i) * n + c2 * n2 + j];
    me_gemm_b_init(b, me_alloc_aligned(me_gemm_b_bytes(k2, n2, bf16)), k2, n2, bf16);
    me_gemm_pack_b(b, 0, n2, 0, ME_GEMM_F32, q, n2);
    free(q);
}

/* t = A(r, c) + sign·A(r2, c2), quarters of the m×k a. */
static void add_quarters(const float *a, int m, int k, int r, int c, float sign, int r2, int c2, float *t)
{
    const int m2 = m / 2, k2 = k / 2;
    for (int i = 0; i < m2; i++) {
        const float *x = a + (size_t)(r * m2 + i) * k + c * k2, *y = a + (size_t)(r2 * m2 + i) * k + c2 * k2;
        for (int j = 0; j < k2; j++) t[(size_t)i * k2 + j] = x[j] + sign * y[j];
    }
}

/* c ± t over an m2×n2 quarter (row strides ldc, ldt). */
static void update(float *c, size_t ldc, const float *t, size_t ldt, int m2, int n2, float sign)
{
    for (int i = 0; i < m2; i++)
        for (int j = 0; j < n2; j++) c[i * ldc + j] += sign * t[i * ldt + j];
}

typedef struct {
    int m, n, k;
    me_gemm_b whole, q[7];   /* q: B11+B22, B11, B12−B22, B21−B11, B22, B11+B12, B21+B22 */
    float *a, *c, *ta, *tc;
} product;

static void classic(product *p) { me_gemm(p->m, p->a, p->k, &p->whole, 1, NULL, 0, p->c, p->n); }

/* C11 = M1 + M4 − M5 + M7, C12 = M3 + M5, C21 = M2 + M4, C22 = M1 − M2 + M3 + M6 */
static void strassen(product *p)
{
    const int m2 = p->m / 2, n2 = p->n / 2, k2 = p->k / 2, k = p->k;
    const size_t ldc = p->n;
    float *c11 = p->c, *c12 = p->c + n2, *c21 = p->c + (size_t)m2 * ldc, *c22 = c21 + n2, *ta = p->ta, *tc = p->tc;
    add_quarters(p->a, p->m, k, 0, 0, 1, 1, 1, ta);
    me_gemm(m2, ta, k2, &p->q[0], 1, NULL, 0, c11, ldc);                   /* M1 */
    for (int i = 0; i < m2; i++) memcpy(c22 + i * ldc, c11 + i * ldc, sizeof(float) * n2);
    add_quarters(p->a, p->m, k, 1, 0, 1, 1, 1, ta);
    me_gemm(m2, ta, k2, &p->q[1], 1, NULL, 0, c21, ldc);                   /* M2 */
    update(c22, ldc, c21, ldc, m2, n2, -1);
    me_gemm(m2, p->a, k, &p->q[2], 1, NULL, 0, c12, ldc);                  /* M3 */
    update(c22, ldc, c12, ldc, m2, n2, 1);
    me_gemm(m2, p->a + (size_t)m2 * k + k2, k, &p->q[3], 1, NULL, 0, tc, n2);   /* M4 */
    update(c11, ldc, tc, n2, m2, n2, 1), update(c21, ldc, tc, n2, m2, n2, 1);
    add_quarters(p->a, p->m, k, 0, 0, 1, 0, 1, ta);
    me_gemm(m2, ta, k2, &p->q[4], 1, NULL, 0, tc, n2);                     /* M5 */
    update(c11, ldc, tc, n2, m2, n2, -1), update(c12, ldc, tc, n2, m2, n2, 1);
    add_quarters(p->a, p->m, k, 1, 0, -1, 0, 0, ta);
    me_gemm(m2, ta, k2, &p->q[5], 1, NULL, 1, c22, ldc);                   /* M6 */
    add_quarters(p->a, p->m, k, 0, 1, -1, 1, 1, ta);
    me_gemm(m2, ta, k2, &p->q[6], 1, NULL, 1, c11, ldc);                   /* M7 */
}

static void bare(product *p)
{
    for (int i = 0; i < 7; i++) me_gemm(p->m / 2, p->a, p->k, &p->q[i], 1, NULL, 0, p->tc, p->n / 2);
}

static int by_value(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int usage(void)
{
    fprintf(stderr, "usage: strassen_bound [--bf16] [--rounds R] [M,N,K ...] (M even, N and K multiples of 64)\n");
    return 2;
}

int main(int argc, char **argv)
{
    int bf16 = 0, rounds = 300, shapes[32][3], count = 0;
    static const int defaults[][3] = {{168, 768, 384}, {168, 384, 1536}, {128, 1536, 384}, {512, 1152, 384},
                                      {168, 1536, 768}, {168, 768, 3072}, {512, 3072, 768}};
    for (int i = 1; i < argc; i++) {
        int *sh = shapes[count < 32 ? count : 31];
        if (!strcmp(argv[i], "--bf16")) {
            bf16 = 1;
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            if ((rounds = atoi(argv[++i])) < 3 || rounds > 100000) return usage();
        } else if (count < 32 && sscanf(argv[i], "%d,%d,%d", &sh[0], &sh[1], &sh[2]) == 3 && sh[0] >= 2 &&
                   sh[0] <= 65536 && sh[0] % 2 == 0 && sh[1] >= 64 && sh[1] <= 65536 && sh[1] % 64 == 0 &&
                   sh[2] >= 64 && sh[2] <= 65536 && sh[2] % 64 == 0) {
            count++;
        } else {
            return usage();
        }
    }
    if (!count) memcpy(shapes, defaults, sizeof defaults), count = sizeof defaults / sizeof defaults[0];
    if (bf16 && !me_gemm_native(1)) {
        fprintf(stderr, "strassen_bound: this CPU multiplies no bfloat16\n");
        return 2;
    }
    me_threads_limit(1);
    me_peak pk;
    me_peak_measure(1, &pk);
    const double peak = bf16 ? pk.bf16_gflops : pk.fp32_gflops;
    const me_cpu *cpu = me_cpu_info();
    printf("cpu: %s (%s family %d model %d stepping %d), L1d %ld KB, L2 %ld KB; kernels %s\n",
           cpu->brand[0] ? cpu->brand : "unknown", cpu->vendor, cpu->family, cpu->model, cpu->stepping,
           cpu->l1d >> 10, cpu->l2 >> 10, me_cpu_isa_name(me_cpu_isa()));
    printf("one thread, %s, peak %.1f GFLOP/s, medians of %d alternating rounds\n\n", bf16 ? "bf16" : "float32",
           peak, rounds);
    printf("| m×n×k | classic | strassen (on 2mnk) | strassen / classic time | 7 bare products / classic time "
           "| max diff / max |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int s = 0; s < count; s++) {
        product p = {.m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2]};
        float *w = filled((size_t)p.k * p.n, 1), *ref = me_alloc_aligned(sizeof(float) * p.m * p.n);
        p.a = filled((size_t)p.m * p.k, 2), p.c = me_alloc_aligned(sizeof(float) * p.m * p.n);
        p.ta = me_alloc_aligned(sizeof(float) * p.m * p.k / 4), p.tc = me_alloc_aligned(sizeof(float) * p.m * p.n / 4);
        me_gemm_b_init(&p.whole, me_alloc_aligned(me_gemm_b_bytes(p.k, p.n, bf16)), p.k, p.n, bf16);
        me_gemm_pack_b(&p.whole, 0, p.n, 0, ME_GEMM_F32, w, p.n);
        static const int quarters[7][5] = {{0, 0, 1, 1, 1}, {0, 0, 0, 0, 0}, {0, 1, -1, 1, 1}, {1, 0, -1, 0, 0},
                                           {1, 1, 0, 0, 0}, {0, 0, 1, 0, 1}, {1, 0, 1, 1, 1}};
        for (int i = 0; i < 7; i++)
            pack_quarter(&p.q[i], w, p.k, p.n, quarters[i][0], quarters[i][1], (float)quarters[i][2], quarters[i][3],
                         quarters[i][4], bf16);
        classic(&p);
        memcpy(ref, p.c, sizeof(float) * p.m * p.n);
        strassen(&p);
        double diff = 0, big = 0;
        for (size_t i = 0; i < (size_t)p.m * p.n; i++) {
            double d = ref[i] > p.c[i] ? ref[i] - p.c[i] : p.c[i] - ref[i], r = ref[i] > 0 ? ref[i] : -ref[i];
            diff = d > diff ? d : diff, big = r > big ? r : big;
        }
        double *t[3];
        for (int v = 0; v < 3; v++) t[v] = malloc(sizeof(double) * rounds);
        void (*const variant[3])(product *) = {classic, strassen, bare};
        for (int r = 0; r < rounds; r++)
            for (int v = 0; v < 3; v++) {
                double t0 = now_s();
                variant[v](&p);
                t[v][r] = now_s() - t0;
            }
        for (int v = 0; v < 3; v++) qsort(t[v], rounds, sizeof(double), by_value);
        const double flops = 2.0 * p.m * p.n * p.k, med[3] = {t[0][rounds / 2], t[1][rounds / 2], t[2][rounds / 2]};
        printf("| %d×%d×%d | %.1f %% | %.1f %% | %.3f | %.3f | %.1e |\n", p.m, p.n, p.k,
               100 * flops / med[0] * 1e-9 / peak, 100 * flops / med[1] * 1e-9 / peak, med[1] / med[0],
               med[2] / med[0], diff / big);
        for (int v = 0; v < 3; v++) free(t[v]);
        for (int i = 0; i < 7; i++) me_free_aligned(p.q[i].data);
        me_free_aligned(p.whole.data), me_free_aligned(p.a), me_free_aligned(p.c), me_free_aligned(p.ta);
        me_free_aligned(p.tc), me_free_aligned(w), me_free_aligned(ref);
    }
    return 0;
}

/* Fully connected layers through OpenBLAS sgemm: every token of every row
   in one call, weights in PyTorch's [out, in] layout read transposed.

   Large products are split over OpenMP threads, each running sgemm on one
   thread, rather than left to OpenBLAS's own pthreads: the elementwise
   loops around every matmul already use the OpenMP pool, and two pools
   spinning on two cores starve each other (measured 20× slower). */
#include <string.h>
#include <omp.h>
#include <cblas.h>
#include "core/core.h"
#include "ops/ops.h"

/* Below this many multiply-adds one thread wins (and OpenBLAS would not
   thread either). */
#define PAR_MIN_MACS 262144.0

static void linear_slice(int n, int in, int out, const float *x, int ldx, const float *w, const float *b,
                         float *y, int ldy)
{
    float beta = 0.0f;
    if (b) {
        /* Seed y with the bias and let sgemm accumulate onto it. */
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * ldy, b, (size_t)out * sizeof *y);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, ldx, w, in, beta, y, ldy);
}

void op_linear(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    if (n <= 0 || out <= 0) return;
    if (in <= 0) {
        for (int i = 0; i < n; i++)
            if (b) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof *y);
            else memset(y + (size_t)i * out, 0, (size_t)out * sizeof *y);
        return;
    }
    int nt = me_threads();
    if (nt == 1 || omp_in_parallel() || (double)n * in * out < PAR_MIN_MACS) {
        linear_slice(n, in, out, x, in, w, b, y, out);
        return;
    }
    /* Split the tokens when there are enough of them, else the outputs, in
       multiples of 16 so the sgemm kernels stay on their fast paths. */
    int by_rows = n >= 32 * nt;
    int total = by_rows ? n : out, chunk = ((total + nt - 1) / nt + 15) / 16 * 16;
    openblas_set_num_threads(1);
    #pragma omp parallel num_threads(nt)
    {
        int lo = omp_get_thread_num() * chunk, len = total - lo < chunk ? total - lo : chunk;
        if (len > 0) {
            if (by_rows)
                linear_slice(len, in, out, x + (size_t)lo * in, in, w, b, y + (size_t)lo * out, out);
            else
                linear_slice(n, in, len, x, in, w + (size_t)lo * in, b ? b + lo : NULL, y + lo, out);
        }
    }
    openblas_set_num_threads(nt);
}

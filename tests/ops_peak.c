/* The peak loops: a positive rate for every unit the CPU has, none for the
   ones it lacks, and per-thread rates an x86 core can actually deliver
   (between 1 and 500 GFLOP/s fp32: a 5 GHz core with two 512-bit FMA ports
   makes 320; bf16 twice that); the sustained loop's mean between its
   slowest and fastest slice, over at least the time asked. */
#include <criterion/criterion.h>
#include "core/cpu.h"
#include "ops/peak.h"

Test(peak, rates_match_the_cpu)
{
    const me_cpu *c = me_cpu_info();
    me_peak p;
    me_peak_measure(1, &p);
    cr_assert_eq(p.threads, 1);
    if (c->avx512 || (c->avx2 && c->fma)) {
        cr_assert(p.fp32_gflops > 1 && p.fp32_gflops < 500, "fp32 %g GFLOP/s on one thread", p.fp32_gflops);
        cr_assert_str_eq(p.fp32_isa, c->avx512 ? "avx512" : "avx2+fma");
    } else {
        cr_assert_eq(p.fp32_gflops, 0.0);
    }
    if (c->avx512bf16) cr_assert(p.bf16_gflops > 1 && p.bf16_gflops < 1000, "bf16 %g GFLOP/s on one thread", p.bf16_gflops);
    else cr_assert_eq(p.bf16_gflops, 0.0);
}

Test(peak, sustained_loop_reports_its_slices)
{
    const me_cpu *c = me_cpu_info();
    me_peak_sustained s;
    int slices = me_peak_sustain(1, 0.25, &s);
    if (!c->avx512 && !(c->avx2 && c->fma)) {
        cr_assert_eq(slices, 0);
        cr_assert_eq(s.gflops, 0.0);
        return;
    }
    cr_assert_eq(slices, s.slices);
    cr_assert(slices >= 1);
    cr_assert(s.seconds >= 0.25, "ran %g s of the 0.25 asked", s.seconds);
    cr_assert(s.gflops > 1 && s.gflops < 500, "fp32 %g GFLOP/s on one thread", s.gflops);
    cr_assert(s.slice_min <= s.gflops * (1 + 1e-12) && s.gflops <= s.slice_max * (1 + 1e-12),
              "mean %g outside its slices %g..%g", s.gflops, s.slice_min, s.slice_max);
}

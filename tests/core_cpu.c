/* CPU detection: the fields a benchmark's host line prints are filled, the
   cache sizes are plausible, and the kernel set follows the CPU and the
   MOEDIT_NO_AVX512 / MOEDIT_NO_AVX2 switches (each Test runs in its own
   process, so each sees its own environment at the first query). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "core/cpu.h"

Test(cpu, identifies_the_host)
{
    const me_cpu *c = me_cpu_info();
    cr_assert(strlen(c->vendor) == 12, "vendor '%s'", c->vendor);
    cr_assert(c->family >= 6, "family %d", c->family);
    cr_assert(c->l1d >= 8192 && c->l1d <= (1 << 20), "L1d %ld bytes", c->l1d);
    cr_assert(c->l2 >= c->l1d && c->l2 <= (64L << 20), "L2 %ld bytes", c->l2);
    cr_assert(!c->avx512bf16 || c->avx512, "BF16 without AVX-512");
    int want = c->avx512 ? ME_ISA_AVX512 : c->avx2 && c->fma ? ME_ISA_AVX2 : ME_ISA_BLAS;
    cr_assert_eq(me_cpu_isa(), want);
    cr_assert_eq(me_cpu_bf16(), c->avx512bf16);
}

Test(cpu, no_avx512_switch)
{
    setenv("MOEDIT_NO_AVX512", "1", 1);
    const me_cpu *c = me_cpu_info();
    cr_assert_eq(me_cpu_isa(), c->avx2 && c->fma ? ME_ISA_AVX2 : ME_ISA_BLAS);
    cr_assert_not(me_cpu_bf16());
    cr_assert_str_eq(me_cpu_isa_name(me_cpu_isa()), c->avx2 && c->fma ? "avx2+fma" : "openblas");
}

Test(cpu, no_avx2_switch)
{
    setenv("MOEDIT_NO_AVX2", "1", 1);
    cr_assert_eq(me_cpu_isa(), ME_ISA_BLAS);
    cr_assert_not(me_cpu_bf16());
}

#ifdef MOEDIT_EMULATE_AVX512
/* The emulation build must really run the AVX-512 and AVX512-BF16 kernels
   (ops/simd512.h), or its whole suite would quietly test AVX2 again. It
   needs an AVX2+FMA host (the convolutions pack with AVX2 beside them). */
Test(cpu, emulation_build_runs_the_avx512_kernels)
{
    if (!(me_cpu_info()->avx2 && me_cpu_info()->fma)) cr_skip_test("no AVX2+FMA: the emulation build cannot run here");
    cr_assert_eq(me_cpu_isa(), ME_ISA_AVX512);
    cr_assert(me_cpu_bf16());
    cr_assert_str_eq(me_cpu_isa_name(me_cpu_isa()), "avx512 (emulated)");
}
#endif

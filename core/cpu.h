/* cpu.h — what this CPU is and which kernels run on it, read at run time
   (cpuid, sysconf), so one portable build (MOEDIT_NATIVE=OFF) picks the
   same kernels and block sizes as a -march=native one.

   Kernel sets, best first: AVX-512 (float32 FMA, plus AVX512-BF16 dot
   products for bf16, and AMX-BF16 tiles for bf16 weight products where
   the CPU has them), AVX2+FMA (float32 only), OpenBLAS. The environment
   can rule sets out, for testing the others on one machine:
   MOEDIT_NO_AMX=1 (AVX512-BF16 dot products for every bf16 product),
   MOEDIT_NO_AVX512=1 (AVX2+FMA at best), MOEDIT_NO_AVX2=1 (OpenBLAS). */
#ifndef MOEDIT_CORE_CPU_H
#define MOEDIT_CORE_CPU_H

enum { ME_ISA_BLAS = 0, ME_ISA_AVX2, ME_ISA_AVX512 };

typedef struct {
    char vendor[16];   /* "AuthenticAMD", "GenuineIntel", … */
    char brand[52];    /* the processor name string, trimmed */
    int family, model, stepping;   /* display family/model (extended fields applied) */
    long l1d, l2, l3;  /* data-cache bytes: L1d and L2 per core, L3 per slice that shares it; 0 unknown */
    int fma, avx2, avx512, avx512bf16;   /* usable (CPU and OS) */
    int amx;           /* AMX-TILE and AMX-BF16, tile state granted to this process */
} me_cpu;

/* This machine, detected once (thread-safe after the first call returns;
   racing first calls compute the same values). */
const me_cpu *me_cpu_info(void);

/* The kernel set in use: the best the CPU has that the environment allows. */
int me_cpu_isa(void);
/* 1 when bfloat16 products run natively (AVX512-BF16 and ME_ISA_AVX512). */
int me_cpu_bf16(void);
/* 1 when bfloat16 weight products run on AMX tiles (me_cpu_bf16 and AMX). */
int me_cpu_amx(void);
const char *me_cpu_isa_name(int isa);
/* 1 when `bytes` outgrow `threads` L2 caches (1 MB each where the size is
   unknown): a tensor that large leaves them before its next reader comes,
   so its writer streams it past the caches (ops/conv_gemm.c, ops/groupnorm.c). */
int me_cpu_outgrows_l2s(double bytes, int threads);

#endif

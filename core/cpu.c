/* CPU identification from cpuid; cache sizes from the deterministic cache
   leaves (Intel leaf 4, AMD leaf 0x8000001D), sysconf when those are
   missing (glibc's figure for L3 can be the whole package's, hence second). */
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "core/cpu.h"
#include "moedit.h"

/* Linux hands out AMX's 8 KB tile state only to processes that ask
   (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA). */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static me_cpu cpu;
static int detected, isa = -1;

/* Data and unified caches of one cpuid cache leaf, by level. */
static void cache_leaf(unsigned leaf)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned a, b, c, d;
        if (!__get_cpuid_count(leaf, i, &a, &b, &c, &d)) return;
        unsigned type = a & 31, level = (a >> 5) & 7;
        if (type == 0) return;
        if (type == 2) continue;   /* instruction cache */
        long bytes = (long)((b >> 22) + 1) * (((b >> 12) & 0x3ff) + 1) * ((b & 0xfff) + 1) * ((long)c + 1);
        if (level == 1) cpu.l1d = bytes;
        else if (level == 2) cpu.l2 = bytes;
        else if (level == 3) cpu.l3 = bytes;
    }
}

static void detect(void)
{
    unsigned a, b, c, d, max_ext = __get_cpuid_max(0x80000000, NULL);
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(cpu.vendor, &b, 4), memcpy(cpu.vendor + 4, &d, 4), memcpy(cpu.vendor + 8, &c, 4);
        cpu.vendor[12] = 0;
    }
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fam = (a >> 8) & 15, mod = (a >> 4) & 15;
        cpu.family = fam == 15 ? fam + (int)((a >> 20) & 0xff) : fam;
        cpu.model = fam == 6 || fam == 15 ? mod + (int)(((a >> 16) & 15) << 4) : mod;
        cpu.stepping = a & 15;
    }
    if (max_ext >= 0x80000004) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, r + 4 * i, r + 4 * i + 1, r + 4 * i + 2, r + 4 * i + 3);
        char s[49];
        memcpy(s, r, 48), s[48] = 0;
        char *p = s;
        while (*p == ' ') p++;
        size_t n = strlen(p);
        while (n && p[n - 1] == ' ') p[--n] = 0;
        memcpy(cpu.brand, p, n + 1);
    }
    if (!strcmp(cpu.vendor, "AuthenticAMD") || !strcmp(cpu.vendor, "HygonGenuine")) {
        if (max_ext >= 0x8000001d) cache_leaf(0x8000001d);
    } else if (__get_cpuid_max(0, NULL) >= 4) {
        cache_leaf(4);
    }
    if (cpu.l1d <= 0) cpu.l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE) > 0 ? sysconf(_SC_LEVEL1_DCACHE_SIZE) : 0;
    if (cpu.l2 <= 0) cpu.l2 = sysconf(_SC_LEVEL2_CACHE_SIZE) > 0 ? sysconf(_SC_LEVEL2_CACHE_SIZE) : 0;
    if (cpu.l3 <= 0) cpu.l3 = sysconf(_SC_LEVEL3_CACHE_SIZE) > 0 ? sysconf(_SC_LEVEL3_CACHE_SIZE) : 0;
    /* libgcc's checks include the OS enabling the register state (XCR0). */
    __builtin_cpu_init();
    cpu.fma = __builtin_cpu_supports("fma");
    cpu.avx2 = __builtin_cpu_supports("avx2");
    cpu.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    cpu.avx512bf16 = cpu.avx512 && __builtin_cpu_supports("avx512bf16");
    /* cpuid 7.0 EDX: AMX-BF16 (bit 22), AMX-TILE (bit 24) */
    if (cpu.avx512bf16 && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1))
        cpu.amx = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#ifdef MOEDIT_EMULATE_AVX512
    /* The test build that runs them through SIMDe (ops/simd512.h); the
       convolutions' packing beside them is AVX2 code, as on every AVX-512 CPU. */
    cpu.avx512 = cpu.avx512bf16 = cpu.avx2 && cpu.fma;
    cpu.amx = 0;
#endif
    detected = 1;
}

const me_cpu *me_cpu_info(void)
{
    if (!detected) detect();
    return &cpu;
}

int me_cpu_isa(void)
{
    if (isa < 0) {
        const me_cpu *c = me_cpu_info();
        int no512 = getenv("MOEDIT_NO_AVX512") != NULL, no2 = getenv("MOEDIT_NO_AVX2") != NULL;
        isa = c->avx512 && !no512 && !no2 ? ME_ISA_AVX512 : c->avx2 && c->fma && !no2 ? ME_ISA_AVX2 : ME_ISA_BLAS;
    }
    return isa;
}

int me_cpu_bf16(void)
{
    return me_cpu_isa() == ME_ISA_AVX512 && me_cpu_info()->avx512bf16;
}

int moedit_cpu_bf16(void) { return me_cpu_bf16(); }

int me_cpu_amx(void)
{
    static int amx = -1;
    if (amx < 0) amx = me_cpu_bf16() && me_cpu_info()->amx && !getenv("MOEDIT_NO_AMX");
    return amx;
}

const char *me_cpu_isa_name(int which)
{
#ifdef MOEDIT_EMULATE_AVX512
    if (which == ME_ISA_AVX512) return "avx512 (emulated)";
#endif
    return which == ME_ISA_AVX512 ? "avx512" : which == ME_ISA_AVX2 ? "avx2+fma" : "openblas";
}

int me_cpu_outgrows_l2s(double bytes, int threads)
{
    long l2 = me_cpu_info()->l2 > 0 ? me_cpu_info()->l2 : 1L << 20;
    return bytes > (double)l2 * threads;
}

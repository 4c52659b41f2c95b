/* Allocation, checked size arithmetic and half-precision conversion.

   Packed weights live on transparent huge pages (me_arena). The tile
   kernels stream weights that a forward touches once each, hundreds of
   megabytes of them, so on 4 KB pages nearly every B panel starts with a
   TLB miss, and in a virtual machine each miss walks two page tables. On
   an AMD Zen 5 VM (2 vCPUs, one thread) a DiT-MoE-S/2 CFG pair's qkv
   products ran at 125 GFLOP/s when their 1.8 MB weights sat on 4 KB pages
   and at 200 on huge pages, its MoE layers took 297 ms instead of 365
   (per-op timers, docs/performance.md "Memory"). THP is often
   "madvise" only, hence the advice.
   Activations stay on small pages: reused at every step, they keep their
   TLB entries, and a Zen 4 VM backed fresh 2 MB pages so slowly that a
   process's first VAE decode took 4.6–5.2 s instead of 3.4 (docs/performance.md). */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "core.h"

#define HUGE_PAGE ((size_t)1 << 21)
#define ARENA_CHUNK ((size_t)32 << 20)

/* Asks for huge pages over the whole ones in [p, p + bytes); p is 2 MB aligned. */
static void advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_PAGE) madvise(p, bytes & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

int me_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int me_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

void *me_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) me_fail(MOEDIT_EINTERNAL, "out of memory (%zu bytes)", bytes);
    return p;
}

void *me_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) me_fail(MOEDIT_EINTERNAL, "out of memory (%zu x %zu bytes)", count, size);
    return p;
}

/* Bytes of packed weights and aligned buffers (activations) held now:
   MOEDIT_MEMORY_LIMIT is a budget they count against (core/memlimit.c). */
static size_t held;

size_t me_memory_held(void) { return __atomic_load_n(&held, __ATOMIC_RELAXED); }

void *me_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        me_fail(MOEDIT_EINTERNAL, "out of memory (%zu bytes)", bytes);
        return NULL;
    }
    __atomic_fetch_add(&held, malloc_usable_size(p), __ATOMIC_RELAXED);
    return p;
}

void me_free_aligned(void *p)
{
    if (p) __atomic_fetch_sub(&held, malloc_usable_size(p), __ATOMIC_RELAXED);
    free(p);
}

void *me_arena_alloc(me_arena *a, size_t bytes)
{
    size_t rounded = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    if (rounded < bytes) {
        me_fail(MOEDIT_EINTERNAL, "out of memory (%zu bytes)", bytes);
        return NULL;
    }
    if (rounded > a->left) {
        if (a->nchunks == a->cap) {
            int cap = a->cap ? 2 * a->cap : 16;
            void **c = realloc(a->chunks, (size_t)cap * sizeof *c);
            if (!c) {
                me_fail(MOEDIT_EINTERNAL, "out of memory");
                return NULL;
            }
            a->chunks = c, a->cap = cap;
        }
        /* Blocks lie back to back, so only a chunk's last, partly used huge
           page costs memory it does not hold (the rest of an abandoned tail
           is never touched, never backed); chunks grow with the arena up
           to 8 × 32 MB, so there are few of them. */
        size_t size = a->total / 4 < 8 * ARENA_CHUNK ? a->total / 4 : 8 * ARENA_CHUNK;
        if (size < ARENA_CHUNK) size = ARENA_CHUNK;
        if (size < rounded) size = rounded;
        size = (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        void *chunk = NULL;
        if (size < rounded || posix_memalign(&chunk, HUGE_PAGE, size) != 0) {
            me_fail(MOEDIT_EINTERNAL, "out of memory (%zu bytes)", bytes);
            return NULL;
        }
        advise_huge(chunk, size);
        a->chunks[a->nchunks++] = chunk;
        a->next = chunk, a->left = size;
    }
    void *p = a->next;
    a->next += rounded, a->left -= rounded, a->total += rounded;
    __atomic_fetch_add(&held, rounded, __ATOMIC_RELAXED);
    return p;
}

void me_arena_free(me_arena *a)
{
    __atomic_fetch_sub(&held, a->total, __ATOMIC_RELAXED);
    for (int i = 0; i < a->nchunks; i++) free(a->chunks[i]);
    free(a->chunks);
    memset(a, 0, sizeof *a);
}

char *me_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = me_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

float me_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {                      /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t me_f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t sign = (bits >> 16) & 0x8000;
    uint32_t absbits = bits & 0x7fffffff;
    if (absbits > 0x7f800000u) return (uint16_t)(sign | 0x7e00);          /* NaN */
    if (absbits >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);         /* overflow → inf */
    if (absbits < 0x38800000u) {                                          /* subnormal or zero */
        if (absbits < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absbits >> 23, m = (absbits & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;   /* 14..24 */
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = absbits + 0xfff + ((absbits >> 13) & 1) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

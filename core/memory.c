/* Allocation, checked size arithmetic and half-precision conversion. */
#include <stdlib.h>
#include <string.h>
#include "core.h"

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

void *me_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        me_fail(MOEDIT_EINTERNAL, "out of memory (%zu bytes)", bytes);
        return NULL;
    }
    return p;
}

void me_free_aligned(void *p) { free(p); }

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

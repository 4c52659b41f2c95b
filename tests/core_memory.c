/* The weight arena (core/memory.c): alignment, blocks that never overlap
   whatever their sizes, the huge-page advice the kernels' speed relies on
   (checked in /proc/self/smaps where THP is not off), and the bytes held
   that MOEDIT_MEMORY_LIMIT's budget counts (core/memlimit.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"

#define MB ((size_t)1 << 20)

/* Fills p with a pattern of `tag`; checks it back. */
static void fill(void *p, size_t bytes, unsigned tag)
{
    for (size_t i = 0; i < bytes; i += 4096) ((unsigned char *)p)[i] = (unsigned char)(tag + i / 4096);
    ((unsigned char *)p)[bytes - 1] = (unsigned char)tag;
}

static int intact(const void *p, size_t bytes, unsigned tag)
{
    for (size_t i = 0; i < bytes; i += 4096)
        if (((const unsigned char *)p)[i] != (unsigned char)(tag + i / 4096) && i != bytes - 1) return 0;
    return ((const unsigned char *)p)[bytes - 1] == (unsigned char)tag;
}

Test(memory, arena_blocks_are_disjoint)
{
    /* small blocks, blocks that do not fit the chunk's rest, one larger than
       any chunk, and empty ones, interleaved */
    static const size_t sizes[] = {100, 0, 3 * MB, 64, 20 * MB, 1, 70 * MB, 5000, 0, 31 * MB, 2 * MB + 1, 40};
    enum { N = sizeof sizes / sizeof sizes[0] };
    me_arena a = {0};
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = me_arena_alloc(&a, sizes[i]);
        cr_assert_not_null(p[i], "block %d", i);
        cr_assert_eq((uintptr_t)p[i] % 64, 0, "block %d", i);
        if (sizes[i]) fill(p[i], sizes[i], (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        if (sizes[i]) cr_assert(intact(p[i], sizes[i], (unsigned)i), "block %d overwritten", i);
        for (int j = 0; j < N; j++) {
            if (i == j) continue;
            uintptr_t a0 = (uintptr_t)p[i], a1 = a0 + (sizes[i] ? sizes[i] : 1);
            uintptr_t b0 = (uintptr_t)p[j], b1 = b0 + (sizes[j] ? sizes[j] : 1);
            cr_assert(a1 <= b0 || b1 <= a0, "blocks %d and %d overlap", i, j);
        }
    }
    cr_assert_lt(a.nchunks, N, "small blocks share chunks");
    me_arena_free(&a);
    cr_assert_eq(a.nchunks, 0);
    cr_assert_null(a.chunks);
    cr_assert_not_null(me_arena_alloc(&a, 128), "an emptied arena is usable again");
    me_arena_free(&a);
}

/* The smaps entry of the mapping holding p: its THPeligible flag (-1: none). */
static int thp_eligible(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0, flag = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') == line + strspn(line, "0123456789abcdef"))
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && sscanf(line, "THPeligible: %d", &flag) == 1)
            break;
    }
    fclose(f);
    return flag;
}

static int thp_off(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char mode[128] = "";
    if (!f) return 1;
    int ok = fgets(mode, sizeof mode, f) != NULL;
    fclose(f);
    return !ok || strstr(mode, "[never]") != NULL;
}

Test(memory, huge_pages_asked_for)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer's allocator places the buffers");
#endif
    if (thp_off()) cr_skip_test("transparent huge pages are off on this machine");
    me_arena a = {0};
    void *small = me_arena_alloc(&a, 1000), *large = me_arena_alloc(&a, 100 * MB);
    cr_assert(small && large);
    fill(small, 1000, 1);
    fill(large, 100 * MB, 2);
    cr_assert_eq(thp_eligible(small), 1, "arena chunk not eligible for huge pages");
    cr_assert_eq(thp_eligible(large), 1, "a block larger than a chunk not eligible for huge pages");
    me_arena_free(&a);
}

/* MOEDIT_MEMORY_LIMIT is a budget: the arena's blocks and the aligned
   buffers held count against it until they are freed. */
Test(memory, held_blocks_count_against_the_budget)
{
    size_t before = me_memory_held();
    me_arena a = {0};
    void *w = me_arena_alloc(&a, 3 * MB), *act = me_alloc_aligned(5 * MB);
    cr_assert(w && act);
    cr_assert_geq(me_memory_held(), before + 8 * MB);
    char budget[32];
    snprintf(budget, sizeof budget, "%zu", before + 10 * MB);
    setenv("MOEDIT_MEMORY_LIMIT", budget, 1);
    double avail = me_memory_available();
    cr_assert(avail >= 0 && avail <= 2.0 * MB, "%.0f bytes available", avail);
    cr_assert_eq(me_memory_check(3.0 * MB, "a test block"), MOEDIT_EINPUT);
    me_free_aligned(act);
    cr_assert_eq(me_memory_check(3.0 * MB, "a test block"), MOEDIT_OK);
    me_arena_free(&a);
    cr_assert_eq(me_memory_held(), before);
    unsetenv("MOEDIT_MEMORY_LIMIT");
}

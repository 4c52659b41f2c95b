/* Fuzzes the cgroup readers (core/cgroup.c). The input is cut at NUL bytes
   into the text of /proc/self/cgroup and of the files a group holds (v2
   cpu.max, memory.max, memory.current, memory.stat; v1 cpu.cfs_quota_us,
   cpu.cfs_period_us, memory.limit_in_bytes, memory.usage_in_bytes), each
   written into a private tree at its root (which every group's walk
   upwards reaches) and under the v1 mounts "cpu", "cpu,cpuacct" and
   "memory". Whatever the text, the readers must give a thread cap ≥ 0 and
   a free-memory figure of -1 or ≥ 0. Seeds: fuzz/corpus/cgroup/. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/core.h"

static char root[64];

static void remove_root(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_cgroup: could not remove %s\n", root);
}

static void make_root(void)
{
    if (root[0]) return;
    snprintf(root, sizeof root, "/tmp/moedit-fuzz-cgroup-XXXXXX");
    if (!mkdtemp(root)) abort();
    atexit(remove_root);
    static const char *dirs[] = {"fs", "fs/cpu", "fs/cpu,cpuacct", "fs/memory"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        if (mkdir(p, 0755) && errno != EEXIST) abort();
    }
}

static void put(const char *rel, const uint8_t *text, size_t len)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (len && fwrite(text, 1, len, f) != len) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *files[] = {
        "self_cgroup",      "fs/cpu.max",         "fs/memory.max",
        "fs/memory.current", "fs/memory.stat",    "fs/cpu/cpu.cfs_quota_us",
        "fs/cpu/cpu.cfs_period_us", "fs/cpu,cpuacct/cpu.cfs_quota_us", "fs/cpu,cpuacct/cpu.cfs_period_us",
        "fs/memory/memory.limit_in_bytes", "fs/memory/memory.usage_in_bytes", "fs/memory/memory.stat",
    };
    make_root();
    size_t at = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const uint8_t *end = at < size ? memchr(data + at, 0, size - at) : NULL;
        size_t len = at < size ? (end ? (size_t)(end - (data + at)) : size - at) : 0;
        put(files[i], data + at, len);
        at += len + 1;
    }
    char self[128], fs[128];
    snprintf(self, sizeof self, "%s/self_cgroup", root);
    snprintf(fs, sizeof fs, "%s/fs", root);
    if (me_cgroup_cpus_at(self, fs) < 0) abort();
    double free_bytes = me_cgroup_memory_free_at(self, fs);
    if (!(free_bytes == -1.0 || free_bytes >= 0.0)) abort();
    return 0;
}

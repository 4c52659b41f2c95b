/* The cgroup limits (core/cgroup.c) read from made-up /proc/self/cgroup
   files and cgroup trees in a temporary directory: v2 and v1, limits in
   the process's own group and above it, none, and unreadable files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/core.h"

static char root[64];

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = strchr(path + strlen(root) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/moedit-cgroup-XXXXXX");
    cr_assert(mkdtemp(root));
}

static void remove_root(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

static int cpus(void)
{
    char self[128], fs[128];
    snprintf(self, sizeof self, "%s/self_cgroup", root);
    snprintf(fs, sizeof fs, "%s/fs", root);
    return me_cgroup_cpus_at(self, fs);
}

static double memory_free(void)
{
    char self[128], fs[128];
    snprintf(self, sizeof self, "%s/self_cgroup", root);
    snprintf(fs, sizeof fs, "%s/fs", root);
    return me_cgroup_memory_free_at(self, fs);
}

TestSuite(cgroup, .init = make_root, .fini = remove_root);

Test(cgroup, v2_quota_and_memory_in_the_own_group)
{
    put("self_cgroup", "0::/kubepods/pod1/ctr\n");
    put("fs/kubepods/pod1/ctr/cpu.max", "250000 100000\n");
    put("fs/kubepods/pod1/ctr/memory.max", "8589934592\n");
    put("fs/kubepods/pod1/ctr/memory.current", "1073741824\n");
    put("fs/kubepods/pod1/ctr/memory.stat", "anon 1000\nactive_file 5\ninactive_file_x 7\ninactive_file 1073741824\n");
    cr_assert_eq(cpus(), 3, "2.5 CPUs of quota round up to 3 threads");
    cr_assert_float_eq(memory_free(), 8.0 * 1073741824.0, 1.0, "inactive page cache does not count as used");
}

Test(cgroup, v2_tightest_limit_above_the_group)
{
    put("self_cgroup", "0::/job/step/task\n");
    put("fs/job/step/task/cpu.max", "max 100000\n");
    put("fs/job/step/cpu.max", "800000 100000\n");
    put("fs/job/cpu.max", "200000 100000\n");
    put("fs/job/step/task/memory.max", "max\n");
    put("fs/job/memory.max", "4096\n");
    put("fs/job/memory.current", "5000\n");
    cr_assert_eq(cpus(), 2);
    cr_assert_float_eq(memory_free(), 0.0, 1e-9, "usage over the limit leaves nothing");
}

Test(cgroup, v2_no_limits)
{
    put("self_cgroup", "0::/user.slice\n");
    put("fs/user.slice/cpu.max", "max 100000\n");
    put("fs/user.slice/memory.max", "max\n");
    cr_assert_eq(cpus(), 0);
    cr_assert_float_eq(memory_free(), -1.0, 1e-9);
}

Test(cgroup, container_root_found_by_walking_up)
{
    /* the host's path in /proc/self/cgroup, the container's group mounted as the root */
    put("self_cgroup", "0::/system.slice/docker-abc.scope\n");
    put("fs/cpu.max", "100000 100000\n");
    cr_assert_eq(cpus(), 1);
}

Test(cgroup, v1_cpu_cpuacct_and_memory)
{
    put("self_cgroup", "12:memory:/slurm/job7\n4:cpu,cpuacct:/slurm/job7\n1:name=systemd:/\n");
    put("fs/cpu,cpuacct/slurm/job7/cpu.cfs_quota_us", "400000\n");
    put("fs/cpu,cpuacct/slurm/job7/cpu.cfs_period_us", "100000\n");
    put("fs/memory/slurm/job7/memory.limit_in_bytes", "2147483648\n");
    put("fs/memory/slurm/job7/memory.usage_in_bytes", "1073741824\n");
    cr_assert_eq(cpus(), 4);
    cr_assert_float_eq(memory_free(), 1073741824.0, 1.0);
    /* a quarter of the usage is inactive page cache, which the kernel would reclaim */
    put("fs/memory/slurm/job7/memory.stat", "cache 400000000\ntotal_inactive_file 268435456\ntotal_rss 5\n");
    cr_assert_float_eq(memory_free(), 1342177280.0, 1.0);
}

Test(cgroup, v1_unlimited_and_cpu_mounted_alone)
{
    put("self_cgroup", "4:memory:/\n3:cpu,cpuacct:/\n");
    put("fs/cpu/cpu.cfs_quota_us", "-1\n");
    put("fs/cpu/cpu.cfs_period_us", "100000\n");
    put("fs/memory/memory.limit_in_bytes", "9223372036854771712\n");
    cr_assert_eq(cpus(), 0);
    cr_assert_float_eq(memory_free(), -1.0, 1e-9);
    put("fs/cpu/cpu.cfs_quota_us", "150000\n");
    cr_assert_eq(cpus(), 2, "\"cpu,cpuacct\" found under a mount named cpu");
}

Test(cgroup, unreadable_or_malformed)
{
    cr_assert_eq(cpus(), 0, "no /proc/self/cgroup");
    cr_assert_float_eq(memory_free(), -1.0, 1e-9);
    put("self_cgroup", "garbage without colons\n0::/g\n");
    put("fs/g/cpu.max", "lots\n");
    put("fs/g/memory.max", "\n");
    cr_assert_eq(cpus(), 0);
    cr_assert_float_eq(memory_free(), -1.0, 1e-9);
}


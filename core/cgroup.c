/* The limits a container or a batch job's cgroup puts on this process, which
   neither the CPU affinity mask nor /proc/meminfo shows: a Kubernetes pod
   or `docker run --cpus 2 --memory 8g` on a 64-core, 512 GB node still sees
   64 CPUs and 500 GB free there. Without these, the default thread count
   would run 64 spinning threads on a 2-CPU quota (throttled for most of
   every scheduling period) and a batch that fits the node but not the
   cgroup would end in its OOM killer instead of a clear refusal.

   cgroup v2: cpu.max ("max 100000" or "QUOTA PERIOD"), memory.max ("max" or
   bytes), memory.current and memory.stat's inactive_file, in the process's group (the "0::PATH" line of
   /proc/self/cgroup) or any group above it, the tightest applying. cgroup
   v1: cpu.cfs_quota_us (-1: none) / cpu.cfs_period_us and
   memory.limit_in_bytes (a huge value: none) / memory.usage_in_bytes /
   memory.stat's total_inactive_file under
   the controller's own mount. A container whose /proc/self/cgroup names
   the host's path while its cgroup is mounted as the root still finds its
   files by the walk upwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

/* The first line of a small file, without its newline; 0 if unreadable. */
static int read_line(const char *path, char *buf, size_t cap)
{
    if (me_read_small_file(path, buf, cap) < 0) return 0;
    buf[strcspn(buf, "\n")] = 0;
    return 1;
}

/* The group's path for v2 (controller NULL: the "0::" line) or for the v1
   hierarchy whose controller list holds `controller` (then *mount gets the
   list, which names the hierarchy's mount directory). 0 if none. */
static int group_path(const char *proc_cgroup, const char *controller, char *path, size_t cap, char *mount,
                      size_t mcap)
{
    char text[8192], *save = NULL;
    if (me_read_small_file(proc_cgroup, text, sizeof text) < 0) return 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *list = strchr(line, ':'), *p = list ? strchr(list + 1, ':') : NULL;
        if (!p) continue;
        *list++ = 0, *p++ = 0;   /* line: the hierarchy ID, list: its controllers, p: the path */
        int found;
        if (!controller) {
            found = line[0] == '0' && line[1] == 0 && list[0] == 0;
        } else {
            char names[256], want[64];
            snprintf(names, sizeof names, ",%s,", list);
            snprintf(want, sizeof want, ",%s,", controller);
            found = strstr(names, want) != NULL;
            if (found) snprintf(mount, mcap, "%s", list);
        }
        if (found) {
            snprintf(path, cap, "%s", p);
            return 1;
        }
    }
    return 0;
}

typedef double (*limit_fn)(const char *dir);

/* The tightest limit from dir/path up to dir (a path's groups and the
   groups above it); -1 where none applies. */
static double tightest(const char *dir, const char *path, limit_fn limit)
{
    char p[1024], at[2048];
    snprintf(p, sizeof p, "%s", path);
    double best = -1;
    for (;;) {
        size_t n = strlen(p);
        while (n > 0 && p[n - 1] == '/') p[--n] = 0;
        snprintf(at, sizeof at, "%s%s", dir, p);
        double v = limit(at);
        if (v >= 0 && (best < 0 || v < best)) best = v;
        char *slash = strrchr(p, '/');
        if (!slash) break;
        *slash = 0;
    }
    return best;
}

static double v2_cpus(const char *dir)
{
    char path[2100], buf[128];
    snprintf(path, sizeof path, "%s/cpu.max", dir);
    double quota, period;
    if (!read_line(path, buf, sizeof buf) || sscanf(buf, "%lf %lf", &quota, &period) != 2) return -1;
    return quota > 0 && period > 0 ? quota / period : -1;
}

static double v1_cpus(const char *dir)
{
    char path[2100], buf[64];
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    if (!read_line(path, buf, sizeof buf)) return -1;
    double quota = strtod(buf, NULL);
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    if (!read_line(path, buf, sizeof buf)) return -1;
    double period = strtod(buf, NULL);
    return quota > 0 && period > 0 ? quota / period : -1;
}

/* A "key value" line's value in dir/memory.stat; 0 if absent. */
static double stat_value(const char *dir, const char *key)
{
    char path[2100], text[8192], *save = NULL;
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    if (me_read_small_file(path, text, sizeof text) < 0) return 0;
    size_t n = strlen(key);
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (!strncmp(line, key, n) && line[n] == ' ') return strtod(line + n + 1, NULL);
    return 0;
}

/* limit − usage, from the two files; -1 without a limit. Usage counts the
   page cache, which the kernel reclaims before it kills: its inactive part
   is taken off (the "working set" container tools report), so a
   cache-filled group does not look full. */
static double memory_free(const char *dir, const char *limit_file, const char *usage_file, const char *inactive_key)
{
    char path[2100], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, limit_file);
    if (!read_line(path, buf, sizeof buf) || !strcmp(buf, "max")) return -1;
    double limit = strtod(buf, NULL);
    if (limit <= 0 || limit >= 0x1p62) return -1;   /* v1 writes "none" as ~2^63 */
    snprintf(path, sizeof path, "%s/%s", dir, usage_file);
    double used = read_line(path, buf, sizeof buf) ? strtod(buf, NULL) : 0;
    double inactive = stat_value(dir, inactive_key);
    used = used > inactive ? used - inactive : 0;
    return limit > used ? limit - used : 0;
}
static double v2_memory(const char *dir)
{
    return memory_free(dir, "memory.max", "memory.current", "inactive_file");
}
static double v1_memory(const char *dir)
{
    return memory_free(dir, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file");
}

/* The v2 limit if the process is in a v2 group that has one, else v1's. */
static double lookup(const char *proc_cgroup, const char *fs_root, const char *v1_controller, limit_fn v2,
                     limit_fn v1)
{
    char path[1024], mount[256], dir[1400];
    double v = -1;
    if (group_path(proc_cgroup, NULL, path, sizeof path, mount, sizeof mount)) v = tightest(fs_root, path, v2);
    if (v < 0 && group_path(proc_cgroup, v1_controller, path, sizeof path, mount, sizeof mount)) {
        snprintf(dir, sizeof dir, "%s/%s", fs_root, mount);
        v = tightest(dir, path, v1);
        if (v < 0 && strcmp(mount, v1_controller)) {   /* "cpu,cpuacct" may be mounted as "cpu" */
            snprintf(dir, sizeof dir, "%s/%s", fs_root, v1_controller);
            v = tightest(dir, path, v1);
        }
    }
    return v;
}

int me_cgroup_cpus_at(const char *proc_cgroup, const char *fs_root)
{
    double cpus = lookup(proc_cgroup, fs_root, "cpu", v2_cpus, v1_cpus);
    if (!(cpus > 0) || cpus >= 1 << 20) return 0;   /* none, or none that could bind */
    /* 1.5 CPUs: 2 threads still get 1.5 CPUs' work done per period; 1 would
       leave a third of the quota unused */
    return (int)ceil(cpus - 1e-9);
}

double me_cgroup_memory_free_at(const char *proc_cgroup, const char *fs_root)
{
    return lookup(proc_cgroup, fs_root, "memory", v2_memory, v1_memory);
}

int me_cgroup_cpus(void) { return me_cgroup_cpus_at("/proc/self/cgroup", "/sys/fs/cgroup"); }

double me_cgroup_memory_free(void) { return me_cgroup_memory_free_at("/proc/self/cgroup", "/sys/fs/cgroup"); }

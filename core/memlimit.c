/* Memory estimates checked before allocating (see core.h): a crafted shape
   or a huge --batch is refused with the numbers instead of ending in the
   kernel's OOM killer half-way through (overcommit lets the malloc pass). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include "core.h"

double me_memory_available(void)
{
    double avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (double)kb * 1024;
                break;
            }
        fclose(f);
    }
    struct sysinfo si;
    if (avail < 0 && sysinfo(&si) == 0) avail = ((double)si.freeram + (double)si.bufferram) * si.mem_unit;
    double group = me_cgroup_memory_free();
    if (group >= 0 && (avail < 0 || group < avail)) avail = group;
    /* A budget for the process (or a test): what moedit holds already counts
       against it, so that a second copy of a model is checked as the first was
       (the machine's MemAvailable sees only the pages touched so far). */
    const char *cap = getenv("MOEDIT_MEMORY_LIMIT");
    if (cap && *cap) {
        char *end;
        double v = strtod(cap, &end);
        if (*end == 0 && v > 0) {
            v -= (double)me_memory_held();
            if (v < 0) v = 0;
            if (avail < 0 || v < avail) avail = v;
        }
    }
    return avail;
}

int me_memory_check(double bytes, const char *what)
{
    double avail = me_memory_available();
    if (avail < 0 || bytes <= avail) return MOEDIT_OK;
    return me_fail(MOEDIT_EINPUT, "%s would need %.2f GiB, more than the %.2f GiB of memory available", what,
                   bytes / 1073741824.0, avail / 1073741824.0);
}

/* Shards: --shard k/n|auto, the launcher's environment, and the record a
   shard file carries for npz-merge (see shard.h). */
#include "cli/shard.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/core.h"

#define META_SHARD "moedit_shard"
#define META_SETTINGS "moedit_settings"

/* ---- --shard ----------------------------------------------------------- */

/* Environment variable name as a non-negative int: 1 and *v, 0 when unset,
   -1 when set but not plain decimal digits (launchers write nothing else;
   strtol's leading blanks and sign would let "1 " fail but " 1" pass). */
static int env_int(const char *name, long *v)
{
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || *end || x > INT_MAX) return -1;
    *v = x;
    return 1;
}

/* A launcher's rank/size pair: 1 when both are set and valid, 0 when the
   rank is unset, 2 after a usage error. */
static int env_pair(const char *cmd, const char *rank, const char *size, long *k, long *n)
{
    int a = env_int(rank, k);
    if (!a) return 0;
    int b = env_int(size, n);
    if (a < 0 || b < 0) {
        cli_usage_error(cmd, "--shard auto: %s='%s' / %s='%s' are not numbers", rank, getenv(rank), size,
                        getenv(size) ? getenv(size) : "");
        return 2;
    }
    if (!b) {
        cli_usage_error(cmd, "--shard auto: %s is set but %s is not", rank, size);
        return 2;
    }
    if (*n < 1 || *k >= *n) {
        cli_usage_error(cmd, "--shard auto: %s=%ld is not below %s=%ld", rank, *k, size, *n);
        return 2;
    }
    return 1;
}

/* The job array's task as k/n: 1, 0 when not an array task, 2 after an error. */
static int slurm_array(const char *cmd, long *k, long *n)
{
    long id, count, min = 0, step = 1;
    int a = env_int("SLURM_ARRAY_TASK_ID", &id);
    if (!a) return 0;
    if (a < 0 || env_int("SLURM_ARRAY_TASK_COUNT", &count) != 1 || env_int("SLURM_ARRAY_TASK_MIN", &min) < 0 ||
        env_int("SLURM_ARRAY_TASK_STEP", &step) < 0 || step < 1 || count < 1) {
        cli_usage_error(cmd, "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT/MIN/STEP "
                        "are missing or not numbers");
        return 2;
    }
    /* --array=A-B[:S] numbers its tasks A, A+S, …; a list such as 1,5,7 has
       no position to derive the shard from */
    if (id < min || (id - min) % step || (id - min) / step >= count) {
        cli_usage_error(cmd, "--shard auto: SLURM_ARRAY_TASK_ID=%ld is not task k of a range --array=%ld-%ld:%ld "
                        "(use a range, e.g. --array=0-%ld)", id, min, min + (count - 1) * step, step, count - 1);
        return 2;
    }
    *k = (id - min) / step;
    *n = count;
    return 1;
}

/* A launcher's variables: its processes' rank and count, and the rank on
   this machine (a bare --device cuda's GPU). */
typedef struct {
    const char *rank, *size, *local;
} launcher;

static const launcher slurm_step = {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"};
/* Launchers started inside a Slurm step (or alone), tried in this order:
   Open MPI's ranks before PMI's (an mpirun inside an srun --mpi=pmi2 step
   inherits the step's PMI_RANK), torchrun's last. */
static const launcher inner_launchers[] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    {"RANK", "WORLD_SIZE", "LOCAL_RANK"},
};

/* The first inner launcher that is set: 1 with *which, k and n; 0 when none
   is; 2 after a usage error. */
static int inner_launcher(const char *cmd, const launcher **which, long *k, long *n)
{
    for (size_t i = 0; i < sizeof inner_launchers / sizeof inner_launchers[0]; i++) {
        int r = env_pair(cmd, inner_launchers[i].rank, inner_launchers[i].size, k, n);
        if (r) {
            *which = &inner_launchers[i];
            return r;
        }
    }
    return 0;
}

/* The thread count the launcher asks for (cli_env_threads, which
   cli_threads applies), as a note for the "shard from" line; 0, or 2 after
   a usage error. */
static int auto_threads(const char *cmd, char *msg, size_t cap)
{
    msg[0] = 0;
    const char *from;
    int t;
    if (cli_env_threads(cmd, "--shard auto: ", &t, &from)) return 2;
    if (t) snprintf(msg, cap, "; %d thread%s from %s", t, t == 1 ? "" : "s", from);
    return 0;
}

static int shard_auto(const char *cmd, int threads_given, cli_shard *s)
{
    long k = 0, n = 1, ik = 0, in = 0;
    const launcher *chosen = NULL, *inner = NULL;
    char what[200];
    int r = slurm_array(cmd, &k, &n);
    if (r == 2) return 2;
    int m = inner_launcher(cmd, &inner, &ik, &in);
    if (m == 2) return 2;
    if (r) {
        /* every process of one array task would take the array's shard: a
           Slurm step's task above 0 is one of several (task 0 may be the
           batch step itself, whose SLURM_NTASKS is sbatch -n, often unset),
           an inner launcher's size counts its processes */
        long step_task = 0;
        char crowd[96] = "";
        if (m && in > 1)
            snprintf(crowd, sizeof crowd, "%s=%ld of %s=%ld", inner->rank, ik, inner->size, in);
        else if (env_int(slurm_step.rank, &step_task) == 1 && step_task > 0)
            snprintf(crowd, sizeof crowd, "%s=%ld", slurm_step.rank, step_task);
        if (crowd[0])
            return cli_usage_error(cmd, "--shard auto: array task SLURM_ARRAY_TASK_ID=%s runs several processes "
                                   "(this is %s), which would all take shard %ld/%ld; start one per array task, "
                                   "or give --shard k/n", getenv("SLURM_ARRAY_TASK_ID"), crowd, k, n);
        long min = 0;
        env_int("SLURM_ARRAY_TASK_MIN", &min);
        snprintf(what, sizeof what, "SLURM_ARRAY_TASK_ID=%s (SLURM_ARRAY_TASK_MIN=%ld) of SLURM_ARRAY_TASK_COUNT=%s",
                 getenv("SLURM_ARRAY_TASK_ID"), min, getenv("SLURM_ARRAY_TASK_COUNT"));
        chosen = &slurm_step;   /* its SLURM_LOCALID places the task's GPU */
    } else {
        int sl = env_pair(cmd, slurm_step.rank, slurm_step.size, &k, &n);
        if (sl == 2) return 2;
        /* mpirun or torchrun inside an allocation hands every process it
           starts the SLURM_PROCID of its own launcher step: its ranks win */
        if (sl && m && (k != ik || n != in)) sl = 0;
        if (sl) {
            chosen = &slurm_step;
        } else if (m) {
            chosen = inner;
            k = ik;
            n = in;
        } else if ((r = env_pair(cmd, "LOCAL_RANK", "LOCAL_WORLD_SIZE", &k, &n)) == 1) {
            static const launcher local_only = {"LOCAL_RANK", "LOCAL_WORLD_SIZE", "LOCAL_RANK"};
            chosen = &local_only;
        } else if (r == 2) {
            return 2;
        } else {
            return cli_usage_error(cmd, "--shard auto: no launcher found (none of SLURM_ARRAY_TASK_ID, "
                                   "SLURM_PROCID, OMPI_COMM_WORLD_RANK, PMI_RANK, RANK, LOCAL_RANK is set); "
                                   "give --shard k/n");
        }
        snprintf(what, sizeof what, "%s=%ld of %s=%ld%s", chosen->rank, k, chosen->size, n,
                 !strcmp(chosen->rank, "RANK") ? " (torchrun)" : "");
    }
    /* the process's position on its machine, from the launcher that placed
       it: an outer launcher's SLURM_LOCALID is the same for every process
       mpirun or torchrun starts on a node */
    long local;
    s->local = env_int(chosen->local, &local) == 1 ? (int)local : (int)k;
    s->k = (int)k;
    s->n = (int)n;
    s->from_launcher = 1;
    char threads[160] = "";
    if (!threads_given && auto_threads(cmd, threads, sizeof threads)) return 2;
    snprintf(s->source, sizeof s->source, "%s%s", what, threads);
    return 0;
}

void cli_shard_report(const char *cmd, const cli_shard *s)
{
    if (s->from_launcher) fprintf(stderr, "moedit %s: shard %d/%d from %s\n", cmd, s->k, s->n, s->source);
}

int cli_shard_parse(const char *cmd, const char *spec, int threads_given, cli_shard *s)
{
    memset(s, 0, sizeof *s);
    s->n = 1;
    if (!spec) return 0;
    if (!strcmp(spec, "auto")) return shard_auto(cmd, threads_given, s);
    char k_text[32];
    const char *slash = strchr(spec, '/');
    long long k = -1, n = 0;
    size_t kl = slash ? (size_t)(slash - spec) : 0;
    if (slash && kl < sizeof k_text) {
        memcpy(k_text, spec, kl);
        k_text[kl] = 0;
    }
    if (!slash || kl >= sizeof k_text || cli_parse_int(k_text, 0, INT_MAX, &k) ||
        cli_parse_int(slash + 1, 1, INT_MAX, &n) || k >= n)
        return cli_usage_error(cmd, "--shard: '%s' is not k/n with 0 <= k < n, nor auto", spec);
    s->k = (int)k;
    s->n = (int)n;
    return 0;
}

/* Whether path has a %k (not a "%%k", which is the text "%k"). */
static int names_k(const char *path)
{
    for (const char *p = path; *p; p++)
        if (*p == '%' && *++p == 'k') return 1;
    return 0;
}

int cli_shard_expand(const char *cmd, const char *flag, const char *path, const cli_shard *s, char *out,
                     size_t cap)
{
    /* every process of --shard auto runs this command line: without %k
       they would all write one file, each shard replacing the last */
    if (s->from_launcher && s->n > 1 && !names_k(path)) {
        const char *ext = strrchr(path, '.');
        return cli_usage_error(cmd, "%s: '%s' names one file for all %d shards of --shard auto: put %%k in it "
                               "(e.g. shard-%%k-of-%%n%s)", flag, path, s->n, ext ? ext : "");
    }
    size_t o = 0;
    for (const char *p = path; *p; p++) {
        char num[24];
        const char *add = num;
        if (*p != '%') {
            num[0] = *p;
            num[1] = 0;
        } else if (p[1] == 'k' || p[1] == 'n') {
            snprintf(num, sizeof num, "%d", *++p == 'k' ? s->k : s->n);
        } else if (p[1] == '%') {
            add = "%";
            p++;
        } else {
            return cli_usage_error(cmd, "%s: '%s' has a %% that is not %%k, %%n or %%%%", flag, path);
        }
        size_t l = strlen(add);
        if (o + l >= cap) return cli_usage_error(cmd, "%s: '%s' is too long", flag, path);
        memcpy(out + o, add, l);
        o += l;
    }
    out[o] = 0;
    return 0;
}

/* ---- the record in a shard file ---------------------------------------- */

void cli_shard_settings(const char *fp, char *out, size_t cap)
{
    const char *s = strstr(fp, " shard=");
    size_t head = s ? (size_t)(s - fp) : strlen(fp);
    const char *rest = s ? s + 1 + strcspn(s + 1, " ") : "";
    snprintf(out, cap, "%.*s%s", (int)head, fp, rest);
}

int cli_shard_write_meta(me_zip_writer *w, const cli_shard_meta *m)
{
    const int64_t rec[5] = {m->k, m->n, m->first, m->count, m->num}, len = (int64_t)strlen(m->settings);
    int rc = me_npz_add(w, META_SHARD, ME_I64, 1, (const int64_t[]){5}, rec);
    return rc ? rc : me_npz_add(w, META_SETTINGS, ME_U8, 1, &len, m->settings);
}

int cli_shard_read_meta(me_npz *z, const char *path, cli_shard_meta *m)
{
    const int has = me_zip_find(&z->zip, META_SHARD ".npy") != NULL;
    if (!has && !me_zip_find(&z->zip, META_SETTINGS ".npy")) return 0;
    me_array rec = {0}, set = {0};
    int rc = me_npz_get(z, META_SHARD, &rec);
    if (!rc) rc = me_npz_get(z, META_SETTINGS, &set);
    if (!rc && (rec.dtype != ME_I64 || rec.numel != 5 || set.dtype != ME_U8 || set.ndim != 1 ||
                set.numel >= CLI_SHARD_META_MAX))
        rc = me_fail(MOEDIT_EINPUT, "%s: malformed %s/%s members", path, META_SHARD, META_SETTINGS);
    if (!rc) {
        const int64_t *r = rec.data;
        m->k = r[0], m->n = r[1], m->first = r[2], m->count = r[3], m->num = r[4];
        memcpy(m->settings, set.data, (size_t)set.numel);
        m->settings[set.numel] = 0;
        /* first + count could overflow: compared as count against what is left */
        if (m->n < 1 || m->k < 0 || m->k >= m->n || m->first < 0 || m->count < 0 || m->first > m->num ||
            m->count > m->num - m->first)
            rc = me_fail(MOEDIT_EINPUT, "%s: %s says shard %lld/%lld, samples %lld+%lld of %lld", path, META_SHARD,
                         (long long)m->k, (long long)m->n, (long long)m->first, (long long)m->count,
                         (long long)m->num);
    }
    me_array_free(&rec);
    me_array_free(&set);
    return rc ? -rc : 1;
}

/* The first space-separated field in which settings a and b differ, as
   "field=value" of a into out. */
static void first_difference(const char *a, const char *b, char *out, size_t cap)
{
    while (*a && *b) {
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        if (la != lb || strncmp(a, b, la)) {
            snprintf(out, cap, "%.*s", (int)la, a);
            return;
        }
        a += la + (a[la] == ' ');
        b += lb + (b[lb] == ' ');
    }
    snprintf(out, cap, "%s", *a ? a : "(fewer settings)");
}

int cli_shard_check_set(const char *cmd, const cli_shard_meta *metas, const int64_t *images, char **names,
                        int n, int *order, cli_shard_meta *merged)
{
    const cli_shard_meta *m0 = &metas[0];
    if (m0->n != n) {
        /* name a duplicate or the first missing shard rather than just the counts */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                if (metas[i].k == metas[j].k && metas[i].n == metas[j].n)
                    return cli_usage_error(cmd, "%s and %s are both shard %lld/%lld", names[j], names[i],
                                           (long long)metas[i].k, (long long)metas[i].n);
    }
    for (int k = 0; k < n; k++) order[k] = -1;
    for (int i = 0; i < n; i++) {
        const cli_shard_meta *m = &metas[i];
        if (strcmp(m->settings, m0->settings)) {
            char da[256], db[256];
            first_difference(m->settings, m0->settings, da, sizeof da);
            first_difference(m0->settings, m->settings, db, sizeof db);
            return cli_usage_error(cmd, "%s was sampled with other settings than %s: %s, not %s", names[i],
                                   names[0], da, db);
        }
        if (m->n != m0->n)
            return cli_usage_error(cmd, "%s is shard %lld/%lld, but %s is one of %lld shards", names[i],
                                   (long long)m->k, (long long)m->n, names[0], (long long)m0->n);
        if (m->k < n && order[m->k] >= 0)
            return cli_usage_error(cmd, "%s and %s are both shard %lld/%lld", names[order[m->k]], names[i],
                                   (long long)m->k, (long long)m->n);
        if (m->k < n) order[m->k] = i;
        if (m->count != images[i])
            return cli_usage_error(cmd, "%s holds %lld images, but %s says %lld", names[i], (long long)images[i],
                                   META_SHARD, (long long)m->count);
    }
    for (int k = 0; k < m0->n; k++)
        if (k >= n || order[k] < 0)
            return cli_usage_error(cmd, "shard %d/%lld is missing (%d file%s given)", k, (long long)m0->n, n,
                                   n == 1 ? "" : "s");
    int64_t next = 0;
    for (int k = 0; k < n; k++) {
        const cli_shard_meta *m = &metas[order[k]];
        if (m->first != next)
            return cli_usage_error(cmd, "%s: shard %d starts at sample %lld, not %lld", names[order[k]], k,
                                   (long long)m->first, (long long)next);
        next += m->count;
    }
    if (next != m0->num)
        return cli_usage_error(cmd, "the shards hold %lld samples, not --num %lld", (long long)next,
                               (long long)m0->num);
    *merged = *m0;
    merged->k = 0;
    merged->n = 1;
    merged->first = 0;
    merged->count = next;
    return 0;
}

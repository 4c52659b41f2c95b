/* The state file beside a resumable output (fid-sample's .partial, eval's
   feature file): three lines, "<magic>", the settings fingerprint, and
   "done N" — what a killed run had finished with exactly these settings. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/core.h"

int cli_state_write(const char *path, const char *magic, const char *fp, int64_t done)
{
    char buf[8192];
    int len = snprintf(buf, sizeof buf, "%s\n%s\ndone %" PRId64 "\n", magic, fp, done);
    if (len < 0 || len >= (int)sizeof buf) return me_fail(MOEDIT_EINPUT, "%s: settings too long for a state file", path);
    me_atomic_file af;
    int rc = me_atomic_open(&af, path);
    if (rc) return rc;
    if ((rc = me_atomic_write(&af, buf, (size_t)len))) {
        me_atomic_abort(&af);
        return rc;
    }
    return me_atomic_commit(&af);
}

int64_t cli_state_read(const char *path, const char *magic, const char *fp)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char head[64] = "", line[8192] = "";
    long long done = -1;
    size_t ml = strlen(magic);
    int ok = fgets(head, sizeof head, f) && !strncmp(head, magic, ml) && head[ml] == '\n' &&
             fgets(line, sizeof line, f) && fscanf(f, "done %lld", &done) == 1;
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    return ok && !strcmp(line, fp) && done >= 0 ? done : -1;
}

int cli_partial_reopen(const char *cmd, const char *part, const char *state, int64_t bytes, FILE **out)
{
    FILE *f = fopen(part, "r+b");
    struct stat st;
    if (!f || fstat(fileno(f), &st)) {
        int err = errno;
        if (f) fclose(f);
        return cli_usage_error(cmd, "--resume: %s: %s (%s says %" PRId64 " bytes are done)", part, strerror(err),
                               state, bytes);
    }
    /* never extended: the zeros would pass for finished images or rows */
    if (st.st_size < bytes) {
        fclose(f);
        return cli_usage_error(cmd, "--resume: %s has %lld bytes, %s says %" PRId64
                               " are done (remove both to start over)", part, (long long)st.st_size, state, bytes);
    }
    /* more is the batch a killed run was writing when it died */
    if ((st.st_size > bytes && ftruncate(fileno(f), (off_t)bytes)) || fseek(f, 0, SEEK_SET)) {
        int err = errno;
        fclose(f);
        return cli_usage_error(cmd, "--resume: %s: %s", part, strerror(err));
    }
    *out = f;
    return 0;
}

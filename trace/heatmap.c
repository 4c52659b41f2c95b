/* Counting a trace into expert tables, and the CSV and summary outputs (see
   heatmap.h; the figures are in figures.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "trace/heatmap.h"

/* Refuse tables beyond this many cells each: a trace that asks for more is
   corrupt (real ones need well under a million). */
#define MAX_CELLS ((size_t)1 << 26)

static int table(uint64_t **out, int a, int b, int c, const char *what)
{
    size_t n;
    if (!me_mul_size((size_t)a, (size_t)b, &n) || !me_mul_size(n, (size_t)c, &n) || n > MAX_CELLS)
        return me_fail(MOEDIT_EINPUT, "trace too large for a %s table (%d x %d x %d)", what, a, b, c);
    *out = me_calloc(n, sizeof(uint64_t));
    return *out ? MOEDIT_OK : MOEDIT_EINTERNAL;
}

void me_trace_counts_free(me_trace_counts *c)
{
    free(c->step_counts);
    free(c->position_counts);
    free(c->class_counts);
    free(c->timestep);
    free(c->gate_sums);
    free(c->gate_rows);
    memset(c, 0, sizeof *c);
}

int me_trace_count(me_trace_counts *c, const me_trace_reader *rd, int cond_only)
{
    memset(c, 0, sizeof *c);
    c->info = *me_trace_reader_info(rd);
    c->cond_only = cond_only;
    const me_trace_info *in = &c->info;
    me_trace_record *rec = me_alloc(sizeof *rec);
    if (!rec) return MOEDIT_EINTERNAL;
    int rc = MOEDIT_OK;
    /* Without a step count in the header, a first pass finds the largest step. */
    c->steps = in->steps;
    for (uint64_t i = 0; !in->steps && i < in->count; i++) {
        if ((rc = me_trace_read(rd, i, rec))) goto done;
        if (rec->step + 1 > c->steps) c->steps = rec->step + 1;
    }
    if (c->steps == 0) c->steps = 1;
    c->classes = in->num_classes + 1;
    int depth = in->depth, E = in->num_experts, T = in->tokens;
    if ((rc = table(&c->step_counts, depth, c->steps, E, "step")) ||
        (rc = table(&c->position_counts, depth, T, E, "position")) ||
        (rc = table(&c->class_counts, depth, c->classes, E, "class")))
        goto done;
    if (!(c->timestep = me_alloc((size_t)c->steps * sizeof(float)))) {
        rc = MOEDIT_EINTERNAL;
        goto done;
    }
    int P = in->num_probs;
    if (P && (size_t)depth * c->steps * P > MAX_CELLS) {
        rc = me_fail(MOEDIT_EINPUT, "trace too large for a gate table (%d x %d x %d)", depth, c->steps, P);
        goto done;
    }
    if (P && (!(c->gate_sums = me_calloc((size_t)depth * c->steps * P, sizeof(double))) ||
              !(c->gate_rows = me_calloc((size_t)depth * c->steps, sizeof(uint64_t))))) {
        rc = MOEDIT_EINTERNAL;
        goto done;
    }
    for (int s = 0; s < c->steps; s++) c->timestep[s] = NAN;
    for (uint64_t i = 0; i < in->count; i++) {
        if ((rc = me_trace_read(rd, i, rec))) goto done;
        /* The file is mapped, not copied: guard against it changing underneath. */
        if (rec->step >= c->steps) {
            rc = me_fail(MOEDIT_EINPUT, "trace: record %llu: step %d changed between passes",
                         (unsigned long long)i, rec->step);
            goto done;
        }
        if (cond_only && rec->is_null) continue;
        if (isnan(c->timestep[rec->step])) c->timestep[rec->step] = rec->timestep;
        uint64_t *sc = c->step_counts + ((size_t)rec->layer * c->steps + rec->step) * E;
        uint64_t *cc = c->class_counts + ((size_t)rec->layer * c->classes + rec->label) * E;
        uint64_t *pc = c->position_counts + (size_t)rec->layer * T * E;
        if (P) {
            size_t at = (size_t)rec->layer * c->steps + rec->step;
            for (int e = 0; e < P; e++) c->gate_sums[at * P + e] += rec->probs[e];
            c->gate_rows[at]++;
        }
        for (int j = 0; j < rec->k; j++) {
            int e = rec->experts[j];
            sc[e]++;
            cc[e]++;
            if (rec->token >= 0) {
                pc[(size_t)rec->token * E + e]++;
            } else {
                for (int t = 0; t < T; t++) pc[(size_t)t * E + e]++;
            }
        }
        c->records++;
    }
done:
    free(rec);
    if (rc) me_trace_counts_free(c);
    return rc;
}

void me_trace_concentration(const uint64_t *counts, int num_experts, double *entropy, double *max_share)
{
    double total = 0, h = 0, mx = 0;
    for (int e = 0; e < num_experts; e++) total += (double)counts[e];
    *entropy = *max_share = 0;
    if (total <= 0) return;
    for (int e = 0; e < num_experts; e++) {
        double p = (double)counts[e] / total;
        if (p > 0) h -= p * log(p);
        if (p > mx) mx = p;
    }
    *entropy = num_experts > 1 ? h / log((double)num_experts) : 0;
    *max_share = mx;
}

static uint64_t sum(const uint64_t *v, int n)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = me_alloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* An output text file written atomically through stdio. */
static FILE *open_out(me_atomic_file *af, const char *dir, const char *name)
{
    char *path = join(dir, name);
    if (!path) return NULL;
    int rc = me_atomic_open(af, path);
    free(path);
    return rc ? NULL : (FILE *)af->fp;
}

static int close_out(me_atomic_file *af)
{
    if (ferror((FILE *)af->fp)) {
        int rc = me_fail(MOEDIT_EINPUT, "%s: write failed", af->path);
        me_atomic_abort(af);
        return rc;
    }
    return me_atomic_commit(af);
}

/* A CSV field, quoted when it holds a comma, quote or line break (RFC 4180);
   NULL writes an empty field. */
static void csv_field(FILE *f, const char *s)
{
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int me_trace_write_tables(const me_trace_counts *c, const char *dir)
{
    const me_trace_info *in = &c->info;
    int E = in->num_experts;
    me_atomic_file af;
    FILE *f;

    if (!(f = open_out(&af, dir, "step_counts.csv"))) return MOEDIT_EINPUT;
    fprintf(f, "layer,step,timestep,expert,count\n");
    for (int l = 0; l < in->depth; l++)
        for (int s = 0; s < c->steps; s++) {
            const uint64_t *v = c->step_counts + ((size_t)l * c->steps + s) * E;
            if (isnan(c->timestep[s])) continue;   /* step never traced */
            for (int e = 0; e < E; e++)
                fprintf(f, "%d,%d,%.9g,%d,%llu\n", l, s, c->timestep[s], e, (unsigned long long)v[e]);
        }
    int rc = close_out(&af);
    if (rc) return rc;

    if (!(f = open_out(&af, dir, "position_counts.csv"))) return MOEDIT_EINPUT;
    fprintf(f, "layer,position,expert,count\n");
    for (int l = 0; l < in->depth; l++)
        for (int t = 0; t < in->tokens; t++)
            for (int e = 0; e < E; e++)
                fprintf(f, "%d,%d,%d,%llu\n", l, t, e,
                        (unsigned long long)c->position_counts[((size_t)l * in->tokens + t) * E + e]);
    if ((rc = close_out(&af))) return rc;

    if (!(f = open_out(&af, dir, "class_counts.csv"))) return MOEDIT_EINPUT;
    fprintf(f, "layer,class,class_name,expert,count\n");
    for (int l = 0; l < in->depth; l++)
        for (int k = 0; k < c->classes; k++) {
            const uint64_t *v = c->class_counts + ((size_t)l * c->classes + k) * E;
            if (!sum(v, E)) continue;   /* class never traced */
            for (int e = 0; e < E; e++) {
                fprintf(f, "%d,%d,", l, k);
                csv_field(f, k == in->num_classes ? "(unconditional)" : me_class_name(c->names, k));
                fprintf(f, ",%d,%llu\n", e, (unsigned long long)v[e]);
            }
        }
    if ((rc = close_out(&af))) return rc;

    if (c->gate_sums) {
        int P = in->num_probs;
        if (!(f = open_out(&af, dir, "gate_probs.csv"))) return MOEDIT_EINPUT;
        fprintf(f, "layer,step,timestep,expert,mean_prob\n");
        for (int l = 0; l < in->depth; l++)
            for (int s = 0; s < c->steps; s++) {
                size_t at = (size_t)l * c->steps + s;
                if (!c->gate_rows[at]) continue;
                for (int e = 0; e < P; e++)
                    fprintf(f, "%d,%d,%.9g,%d,%.6f\n", l, s, c->timestep[s], e,
                            c->gate_sums[at * P + e] / (double)c->gate_rows[at]);
            }
        if ((rc = close_out(&af))) return rc;
    }

    if (!(f = open_out(&af, dir, "step_entropy.csv"))) return MOEDIT_EINPUT;
    fprintf(f, "layer,step,timestep,entropy,max_share\n");
    for (int l = 0; l < in->depth; l++)
        for (int s = 0; s < c->steps; s++) {
            const uint64_t *counts = c->step_counts + ((size_t)l * c->steps + s) * E;
            /* nothing routed at this layer and step: no distribution, not entropy 0 */
            if (isnan(c->timestep[s]) || !sum(counts, E)) continue;
            double h, mx;
            me_trace_concentration(counts, E, &h, &mx);
            fprintf(f, "%d,%d,%.9g,%.6f,%.6f\n", l, s, c->timestep[s], h, mx);
        }
    return close_out(&af);
}

static const char *family_name(moedit_family f)
{
    return f == MOEDIT_FAMILY_SWITCH_DIT ? "switch-dit" : f == MOEDIT_FAMILY_DIT_MOE ? "dit-moe" : "dit";
}

/* Mean concentration over the layers that routed anything in row `row` of
   their part of table (rows rows per layer): a layer without assignments
   there has no distribution, and averaging in its 0 would read as "one
   expert takes all". Both 0 when no layer has any. */
static void mean_concentration(const me_trace_counts *c, const uint64_t *table, int rows, int row, double *h,
                               double *mx)
{
    int E = c->info.num_experts, layers = 0;
    *h = *mx = 0;
    for (int l = 0; l < c->info.depth; l++) {
        const uint64_t *counts = table + ((size_t)l * rows + row) * E;
        if (!sum(counts, E)) continue;
        double a, b;
        me_trace_concentration(counts, E, &a, &b);
        *h += a;
        *mx += b;
        layers++;
    }
    if (layers) {
        *h /= layers;
        *mx /= layers;
    }
}

static void step_concentration(const me_trace_counts *c, int s, double *h, double *mx)
{
    mean_concentration(c, c->step_counts, c->steps, s, h, mx);
}

#define SUMMARY_CLASSES 20   /* classes listed by name; the CSV has all */
#define NAME_COLUMN 25       /* characters of a class name in the summary */

/* s in a column width characters wide, cut after width characters and
   padded with spaces: counting bytes would cut inside a character (broken
   UTF-8) and misalign the columns after a non-ASCII name. */
static void put_column(FILE *f, const char *s, int width)
{
    int chars = 0;
    for (; *s; s++) {
        int starts_char = ((unsigned char)*s & 0xc0) != 0x80;
        if (starts_char && chars == width) break;
        chars += starts_char;
        fputc(*s, f);
    }
    for (; chars < width; chars++) fputc(' ', f);
}

/* Routing concentration per traced class, mean over layers, by name. */
static void write_class_section(const me_trace_counts *c, FILE *f)
{
    const me_trace_info *in = &c->info;
    int E = in->num_experts, shown = 0, traced = 0;
    fprintf(f, "\nrouting by class (mean over layers; entropy normalised: 1 = uniform):\n"
               "class  name                      entropy  max_share\n");
    for (int k = 0; k < c->classes; k++) {
        uint64_t n = 0;
        for (int l = 0; l < in->depth; l++) n += sum(c->class_counts + ((size_t)l * c->classes + k) * E, E);
        if (!n) continue;
        traced++;
        if (shown == SUMMARY_CLASSES) continue;
        double h, mx;
        mean_concentration(c, c->class_counts, c->classes, k, &h, &mx);
        char name[4 * NAME_COLUMN + 1];   /* 25 characters of up to 4 bytes */
        if (k == in->num_classes) snprintf(name, sizeof name, "(unconditional)");
        else me_class_label(c->names, k, name, sizeof name);
        fprintf(f, "%-6d ", k);
        put_column(f, name, NAME_COLUMN);
        fprintf(f, " %.4f   %.4f\n", h, mx);
        shown++;
    }
    if (traced > shown) fprintf(f, "... %d more classes in class_counts.csv\n", traced - shown);
}

static void write_summary(const me_trace_counts *c, FILE *f)
{
    const me_trace_info *in = &c->info;
    int E = in->num_experts;
    fprintf(f, "trace: %s, depth %d, %d experts, top-%d, %d tokens (%dx%d), %d classes\n",
            family_name(in->family), in->depth, E, in->top_k, in->tokens, in->grid_h, in->grid_w, in->num_classes);
    if (in->sampler[0] || in->steps)
        fprintf(f, "sampler: %s, %d steps, cfg %g\n", in->sampler[0] ? in->sampler : "?", in->steps, in->cfg);
    fprintf(f, "records counted: %llu of %llu (%s)\n", (unsigned long long)c->records,
            (unsigned long long)in->count, c->cond_only ? "conditional rows only" : "null rows included");

    fprintf(f, "\nexpert load per layer (share of routed assignments; max/mean 1 = balanced):\nlayer");
    for (int e = 0; e < E; e++) fprintf(f, "  e%-4d", e);
    fprintf(f, "  max/mean\n");
    uint64_t *load = me_calloc((size_t)E, sizeof *load);
    for (int l = 0; load && l < in->depth; l++) {
        memset(load, 0, (size_t)E * sizeof *load);
        for (int s = 0; s < c->steps; s++)
            for (int e = 0; e < E; e++) load[e] += c->step_counts[((size_t)l * c->steps + s) * E + e];
        double total = (double)sum(load, E), mx = 0;
        fprintf(f, "%-5d", l);
        for (int e = 0; e < E; e++) {
            double p = total > 0 ? (double)load[e] / total : 0;
            if (p > mx) mx = p;
            fprintf(f, "  %.4f", p);
        }
        fprintf(f, "  %.3f\n", mx * E);
    }
    free(load);
    write_class_section(c, f);

    /* Steps that were traced, in order: the early/late split runs over them. */
    int traced = 0;
    for (int s = 0; s < c->steps; s++) traced += !isnan(c->timestep[s]);
    fprintf(f, "\nrouting concentration by step (mean over layers; entropy normalised: 1 = uniform):\n"
               "step  timestep      entropy  max_share\n");
    for (int s = 0; s < c->steps; s++) {
        if (isnan(c->timestep[s])) continue;
        double h, mx;
        step_concentration(c, s, &h, &mx);
        fprintf(f, "%-5d %-12.6g  %.4f   %.4f\n", s, c->timestep[s], h, mx);
    }
    if (!traced) return;
    int third = traced / 3 > 0 ? traced / 3 : 1;
    double eh = 0, emx = 0, lh = 0, lmx = 0;
    int seen = 0;
    for (int s = 0; s < c->steps; s++) {
        if (isnan(c->timestep[s])) continue;
        double h, mx;
        step_concentration(c, s, &h, &mx);
        if (seen < third) { eh += h / third; emx += mx / third; }
        if (seen >= traced - third) { lh += h / third; lmx += mx / third; }
        seen++;
    }
    fprintf(f, "\nearly vs late steps (first and last %d of %d traced steps, mean over layers):\n"
               "         entropy  max_share\n"
               "early    %.4f   %.4f\n"
               "late     %.4f   %.4f\n"
               "routing concentration, late vs early: %s (entropy %+.4f)\n",
            third, traced, eh, emx, lh, lmx,
            lh < eh - 1e-4 ? "higher" : lh > eh + 1e-4 ? "lower" : "unchanged", lh - eh);
}

int me_trace_write_summary(const me_trace_counts *c, const char *dir, FILE *out)
{
    me_atomic_file af;
    FILE *f = open_out(&af, dir, "summary.txt");
    if (!f) return MOEDIT_EINPUT;
    write_summary(c, f);
    int rc = close_out(&af);
    if (!rc && out) write_summary(c, out);
    return rc;
}

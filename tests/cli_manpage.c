/* The man page docs/moedit.1 against the built program: it must be what
   scripts/man_page.sh makes from the program's --help (so a flag added to a
   command without regenerating the page fails here), and every flag that
   each command's --help lists must have an entry in it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/testutil.h"

#define PAGE MOEDIT_SOURCE_DIR "/docs/moedit.1"

static char tmp[64];
static char page[1 << 17], help[1 << 14], err[4096];

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp, "man");
    tu_read_text(PAGE, page, sizeof page);
    cr_assert_gt(strlen(page), 1000, "%s: missing or short", PAGE);
}
static void teardown(void) { cr_assert_eq(tu_rmtree(tmp), 0); }

TestSuite(manpage, .init = setup, .fini = teardown);

/* MOEDIT_BIN's stdout for args into help. */
static void help_text(const char *const *args)
{
    char out_path[128];
    snprintf(out_path, sizeof out_path, "%s/help", tmp);
    cr_assert_eq(tu_run(args, out_path, NULL), 0, "moedit %s --help failed", args[0]);
    tu_read_text(out_path, help, sizeof help);
    unlink(out_path);
}

Test(manpage, regenerated_from_the_help)
{
    char fresh[128];
    snprintf(fresh, sizeof fresh, "%s/moedit.1", tmp);
    int rc = tu_shell(err, sizeof err, "bash '%s/scripts/man_page.sh' '%s' > '%s'", MOEDIT_SOURCE_DIR, MOEDIT_BIN,
                      fresh);
    cr_assert_eq(rc, 0, "scripts/man_page.sh failed: %s", err);
    rc = tu_system("cmp -s '%s' '%s'", fresh, PAGE);
    cr_assert_eq(rc, 0, "docs/moedit.1 is stale: run scripts/man_page.sh build/moedit > docs/moedit.1");
}

Test(manpage, every_flag_of_every_command)
{
    const char *top[] = {"--help", NULL};
    help_text(top);
    char commands[32][32];
    int ncmd = 0;
    for (const char *line = help; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char name[32];
        if (line[0] == ' ' && line[1] == ' ' && line[2] >= 'a' && line[2] <= 'z' &&
            sscanf(line + 2, "%31s", name) == 1 && ncmd < 32)
            strcpy(commands[ncmd++], name);
    }
    cr_assert_geq(ncmd, 10, "moedit --help lists %d commands", ncmd);
    int flags = 0;
    for (int c = 0; c < ncmd; c++) {
        char section[sizeof commands + 8];   /* (GCC cannot bound the row) */
        snprintf(section, sizeof section, ".SS %s\n", commands[c]);
        const char *at = strstr(page, section);
        cr_assert_not_null(at, "no section for '%s' in docs/moedit.1", commands[c]);
        const char *next = strstr(at + 1, ".SS ");
        const char *args[] = {commands[c], "--help", NULL};
        help_text(args);
        for (const char *line = help; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            char flag[64], entry[160] = "", *e = entry;
            if (strncmp(line, "  --", 4) || sscanf(line + 2, "%63s", flag) != 1) continue;
            for (const char *f = flag; *f && e < entry + sizeof entry - 3; f++) {
                if (*f == '-') *e++ = '\\';
                *e++ = *f;
            }
            *e = 0;
            /* ".B \-\-flag\n" or ".BI "\-\-flag " ..." inside the command's own section */
            char as_b[192], as_bi[192];
            snprintf(as_b, sizeof as_b, ".B %s\n", entry);
            snprintf(as_bi, sizeof as_bi, ".BI \"%s \"", entry);
            const char *hit = strstr(at, as_b);
            if (!hit || (next && hit > next)) hit = strstr(at, as_bi);
            cr_expect(hit && (!next || hit < next), "%s %s: not in its section of docs/moedit.1", commands[c], flag);
            flags++;
        }
    }
    cr_assert_gt(flags, 100, "only %d flags found in the commands' help", flags);
}

/* Atomic output files (core/file.c) on what an output path can name: a new
   or regular file is replaced whole, a symbolic link keeps being a link while
   its target gets the output, a character device is written straight with
   its write errors reported, and a FIFO, a folder or a dangling link are
   refused at once and left as they were. */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "core/core.h"
#include "tests/testutil.h"

static char tmp[64];

static void setup(void) { tu_tmpdir(tmp, sizeof tmp, "atomic"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(tmp), 0); }

TestSuite(atomic, .init = setup, .fini = teardown, .timeout = 20);

static int write_all(const char *path, const char *text)
{
    me_atomic_file af;
    int rc = me_atomic_open(&af, path);
    if (rc) return rc;
    if ((rc = me_atomic_write(&af, text, strlen(text)))) {
        me_atomic_abort(&af);
        return rc;
    }
    return me_atomic_commit(&af);
}

static mode_t lmode(const char *path)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & S_IFMT;
}

static void assert_text(const char *path, const char *want)
{
    char got[256];
    tu_read_text(path, got, sizeof got);
    cr_assert_str_eq(got, want, "%s", path);
}

Test(atomic, regular_file_replaced_whole)
{
    const char *f = tu_join(tmp, "out.txt");
    cr_assert_eq(write_all(f, "first"), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(write_all(f, "second"), MOEDIT_OK, "%s", moedit_last_error());
    assert_text(f, "second");
    cr_assert_eq(tu_count_files(tmp), 1, "a temporary was left behind");
}

Test(atomic, abort_leaves_the_old_file)
{
    const char *f = tu_join(tmp, "out.txt");
    cr_assert_eq(write_all(f, "old"), MOEDIT_OK);
    me_atomic_file af;
    cr_assert_eq(me_atomic_open(&af, f), MOEDIT_OK);
    cr_assert_eq(me_atomic_write(&af, "new", 3), MOEDIT_OK);
    me_atomic_abort(&af);
    assert_text(f, "old");
    cr_assert_eq(tu_count_files(tmp), 1);
}

Test(atomic, symlink_writes_its_target)
{
    cr_assert_eq(mkdir(tu_join(tmp, "real"), 0700), 0);
    const char *target = tu_join(tmp, "real/target.txt"), *link = tu_join(tmp, "link.txt");
    tu_write_file(target, "old", 3);
    cr_assert_eq(symlink("real/target.txt", link), 0);
    cr_assert_eq(write_all(link, "new"), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(lmode(link), S_IFLNK, "the link was replaced");
    assert_text(target, "new");
    /* the temporary went beside the target, and is gone */
    cr_assert_eq(tu_count_files(tmp), 2);
    cr_assert_eq(tu_count_files(tu_join(tmp, "real")), 1);
}

Test(atomic, dangling_symlink_refused)
{
    const char *link = tu_join(tmp, "link.txt");
    cr_assert_eq(symlink("missing/target.txt", link), 0);
    cr_assert_eq(write_all(link, "new"), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "link.txt: symbolic link to a missing file"), "%s",
              moedit_last_error());
    cr_assert_eq(lmode(link), S_IFLNK);
    cr_assert_eq(tu_count_files(tmp), 1);
}

/* No reader ever opens the FIFO: a refusal that opened it would block until
   the suite's timeout. */
Test(atomic, fifo_refused_without_blocking)
{
    const char *fifo = tu_join(tmp, "out.fifo"), *link = tu_join(tmp, "link");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(symlink("out.fifo", link), 0);
    cr_assert_eq(write_all(fifo, "x"), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "out.fifo: not a regular file"), "%s", moedit_last_error());
    cr_assert_eq(write_all(link, "x"), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "link: not a regular file"), "%s", moedit_last_error());
    cr_assert_eq(lmode(fifo), S_IFIFO);
    cr_assert_eq(lmode(link), S_IFLNK);
    cr_assert_eq(tu_count_files(tmp), 2);
}

Test(atomic, folder_refused)
{
    const char *d = tu_join(tmp, "dir");
    cr_assert_eq(mkdir(d, 0700), 0);
    cr_assert_eq(write_all(d, "x"), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "dir: not a regular file"), "%s", moedit_last_error());
    cr_assert_eq(lmode(d), S_IFDIR);
    cr_assert_eq(tu_count_files(tmp), 1);
}

/* A character device node of the memory driver (major 1) made in tmp; the
   test is skipped where that needs privileges this run lacks. */
static const char *char_device(const char *name, unsigned minor)
{
    const char *path = tu_join(tmp, name);
    if (geteuid() != 0 || mknod(path, S_IFCHR | 0600, makedev(1, minor)) != 0)
        cr_skip_test("mknod needs root");
    int fd = open(path, O_WRONLY);
    if (fd < 0) cr_skip_test("%s: %s (a nodev mount?)", path, strerror(errno));
    close(fd);
    return path;
}

Test(atomic, null_device_written_straight)
{
    const char *null = char_device("null", 3);
    cr_assert_eq(write_all(null, "discarded"), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(lmode(null), S_IFCHR, "the device node was replaced");
    cr_assert_eq(tu_count_files(tmp), 1);
}

Test(atomic, full_device_write_error_reported)
{
    const char *full = char_device("full", 7);
    const char *link = tu_join(tmp, "link");
    cr_assert_eq(symlink("full", link), 0);
    cr_assert_eq(write_all(full, "lost"), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "full: write failed: "), "%s", moedit_last_error());
    cr_assert_eq(write_all(link, "lost"), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "link: write failed: "), "%s", moedit_last_error());
    cr_assert_eq(lmode(full), S_IFCHR, "the device node was replaced");
    cr_assert_eq(lmode(link), S_IFLNK);
    cr_assert_eq(tu_count_files(tmp), 2);
}

/* A new output folder that is given up leaves nothing behind, subfolders
   included (heatmap --paper writes DIR/paper/ before it can fail). */
Test(atomic, folder_abort_removes_subfolders)
{
    me_atomic_dir d;
    const char *out = tu_join(tmp, "out");
    cr_assert_eq(me_atomic_dir_open(&d, out), MOEDIT_OK, "%s", moedit_last_error());
    char sub[600], deeper[700];
    snprintf(sub, sizeof sub, "%s/paper", d.work);
    snprintf(deeper, sizeof deeper, "%s/nested", sub);
    cr_assert_eq(mkdir(sub, 0777), 0);
    cr_assert_eq(mkdir(deeper, 0777), 0);
    cr_assert_eq(write_all(tu_join(d.work, "summary.txt"), "s"), MOEDIT_OK);
    cr_assert_eq(write_all(tu_join(sub, "paper_all.svg"), "p"), MOEDIT_OK);
    cr_assert_eq(write_all(tu_join(deeper, "x.svg"), "x"), MOEDIT_OK);
    cr_assert_eq(symlink(sub, tu_join(d.work, "link")), 0, "%s", strerror(errno));
    me_atomic_dir_abort(&d);
    cr_assert_eq(tu_count_files(tmp), 0, "the temporary folder or its contents were left behind");
}

/* Exclusive per-output locks (see cli.h): flock on "<output>.lock", so a
   second run writing the same output is refused instead of both appending
   to one .partial. The lock file is removed when the holder finishes. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include "cli/cli.h"

int cli_lock(const char *cmd, const char *lock_path, int *fd_out)
{
    *fd_out = -1;
    for (;;) {
        int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return cli_usage_error(cmd, "%s: cannot create lock: %s", lock_path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            close(fd);
            if (err == EWOULDBLOCK)
                return cli_usage_error(cmd, "another run is writing the same output (%s is locked)", lock_path);
            return cli_usage_error(cmd, "%s: cannot lock: %s", lock_path, strerror(err));
        }
        /* the holder before us may have removed the file after we opened it:
           then our lock is on a dead inode, and we must lock the new file */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(lock_path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            *fd_out = fd;
            return 0;
        }
        close(fd);
    }
}

void cli_unlock(const char *lock_path, int fd)
{
    if (fd < 0) return;
    unlink(lock_path);   /* while still held, so no one locks the old inode after */
    close(fd);
}

/*
 * open_regular.c - opening regular files only (open_regular.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "tools/open_regular.h"

static const char *file_type_name(mode_t mode)
{
    return S_ISFIFO(mode) ? "a FIFO" : S_ISDIR(mode) ? "a directory" : S_ISCHR(mode) ? "a character device"
           : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "not a plain file";
}

int hmm__open_regular_at(int dirfd, const char *name, int flags, struct stat *st, char *why, size_t whylen)
{
    /* O_NONBLOCK: an open of a FIFO without a writer would wait forever;
     * it is cleared once the file is known to be regular, where it means
     * nothing anyway. */
    int fd = openat(dirfd, name, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (fstat(fd, st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "not a regular file (%s)", file_type_name(st->st_mode));
        rc = -EINVAL;
    } else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        rc = -errno;
    }
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

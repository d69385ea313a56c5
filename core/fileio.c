/*
 * fileio.c - giving the map's files their space before anyone maps it
 * (FORMAT.md §1, "Space is allocated before use").
 *
 * A store into a page of a shared mapping that the filesystem cannot back
 * kills the process with SIGBUS, far from the call that caused it.  So no
 * byte of a file is mapped for writing before its blocks are allocated:
 * a full disk (or a tmpfs at its limit, or a memfd over its cgroup's
 * memory) is -ENOSPC from the open or the put that needed the space.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

int hmm__file_allocate(int fd, uint64_t size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    uint64_t have = (uint64_t)st.st_size;
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    /* Blocks below the old end may be holes too (a file made sparse by an
     * older build or by a copy): allocate from 0, which costs nothing for
     * blocks already there. */
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc == 0)
        return 0;
    /* glibc emulates filesystems without fallocate by writing; what either
     * managed to add before failing is given back, so the size the header
     * describes is the size of the file. */
    if (size > have && ftruncate(fd, (off_t)have) != 0)
        return -errno;
    return -rc;
}

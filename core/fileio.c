/*
 * fileio.c - how core opens and makes the files of a map (FORMAT.md §1).
 *
 * Three rules, in one place so that the map, metrics and log files all
 * follow them:
 *   - only regular files are opened: a FIFO planted under a map's file name
 *     would block open() (or the first read) forever, a device would be
 *     mapped or read as if it were a map;
 *   - a new file is built where nobody can see it (an unnamed O_TMPFILE
 *     where the filesystem has them, else a dot-name that every failure
 *     unlinks) and only linked into place when complete, so neither a
 *     failure nor a kill leaves a half-made or orphaned file behind;
 *   - its space is allocated before it is mapped, so a full disk is
 *     -ENOSPC from the call that needed the space, never SIGBUS on a store
 *     into a hole of a sparse file.  fallocate(2) where the filesystem has
 *     it, else zeros written past the old end (never below it: other
 *     processes store there through their mappings).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

static const char *file_type_name(mode_t mode)
{
    return S_ISFIFO(mode) ? "a FIFO" : S_ISDIR(mode) ? "a directory" : S_ISCHR(mode) ? "a character device"
           : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "not a plain file";
}

int hmm__open_regular(const char *path, int flags)
{
    /* O_NONBLOCK: an open of a FIFO without a writer returns at once
     * instead of waiting for one; on a regular file it means nothing and
     * is cleared below anyway.  O_NOCTTY: a terminal never becomes ours. */
    int fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = hmm_fail(-EINVAL, "%s: not a regular file (%s)", path, file_type_name(st.st_mode));
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        rc = -errno;
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

#define ZERO_BLOCK (1u << 20) /* bytes a pwrite of zeros: few calls, little memory */

/* Write zeros into [from, end) of fd: the blocks where the filesystem has
 * no fallocate(2).  0 or -errno (-ENOSPC, -EFBIG past RLIMIT_FSIZE). */
static int write_zeros(int fd, uint64_t from, uint64_t end)
{
    size_t block = end - from < ZERO_BLOCK ? (size_t)(end - from) : ZERO_BLOCK;
    char *zeros = calloc(1, block);
    if (!zeros)
        return -ENOMEM;
    int rc = 0;
    while (rc == 0 && from < end) {
        size_t n = end - from < block ? (size_t)(end - from) : block;
        ssize_t w = pwrite(fd, zeros, n, (off_t)from);
        if (w > 0)
            from += (uint64_t)w; /* a short write: the next one says why */
        else if (w == 0)
            rc = -ENOSPC;
        else if (errno != EINTR)
            rc = -errno;
    }
    free(zeros);
    return rc;
}

int hmm__allocate(int fd, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return -EFBIG;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    uint64_t have = (uint64_t)st.st_size, end = off + len;
    int rc;
    do
        rc = fallocate(fd, 0, (off_t)off, (off_t)len) == 0 ? 0 : -errno;
    while (rc == -EINTR);
    /* A filesystem without fallocate(2).  Not glibc's posix_fallocate
     * there: its emulation reads a byte of every 4 KiB block and writes a
     * zero back where it read one, so a store another process makes
     * through its mapping between the read and the write is lost.  Zeros
     * are written past the old end only, where no process stores yet (the
     * header counts those pages once the file is long enough, grow.c);
     * holes below it (a file made sparse by a copy) stay holes. */
    if (rc == -EOPNOTSUPP || rc == -ENOSYS)
        rc = end > have ? write_zeros(fd, have > off ? have : off, end) : 0;
    /* What either added before failing is given back, so the size the
     * header describes is the size of the file. */
    if (rc && end > have && ftruncate(fd, (off_t)have) != 0) {
        /* The file stays longer than the header says, which an open
         * accepts; the first failure is the one to tell. */
    }
    return rc;
}

/* O_TMPFILE needs a link through /proc to be named without privileges. */
static bool tmpfile_usable(void)
{
    return access("/proc/self/fd", X_OK) == 0;
}

int hmm__newfile_open(struct hmm__newfile *nf, const char *dir, const char *name)
{
    nf->tmp[0] = '\0';
    if (tmpfile_usable()) {
        nf->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (nf->fd >= 0)
            return 0;
        /* EOPNOTSUPP, EISDIR, EINVAL: this filesystem has none; a named
         * temporary file does the same job with one more way to fail. */
    }
    if (snprintf(nf->tmp, sizeof nf->tmp, "%s/.%s.XXXXXX", dir, name) >= (int)sizeof nf->tmp)
        return -ENAMETOOLONG;
    nf->fd = mkostemp(nf->tmp, O_CLOEXEC);
    if (nf->fd < 0) {
        nf->tmp[0] = '\0';
        return -errno;
    }
    return 0;
}

/* Give the unnamed file of nf the unused name dir-of-path/.name.RANDOM. */
static int name_unnamed(struct hmm__newfile *nf, const char *path)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", nf->fd);
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = hmm_now_ms() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)attempt;
        if (snprintf(nf->tmp, sizeof nf->tmp, "%s.%016llx.tmp", path, (unsigned long long)r) >=
            (int)sizeof nf->tmp)
            return -ENAMETOOLONG;
        if (linkat(AT_FDCWD, proc, AT_FDCWD, nf->tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST) {
            nf->tmp[0] = '\0';
            return -errno;
        }
    }
    nf->tmp[0] = '\0';
    return -EEXIST;
}

int hmm__newfile_publish(struct hmm__newfile *nf, const char *path, bool replace)
{
    int rc = 0;
    if (!nf->tmp[0] && !replace) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", nf->fd);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0)
            rc = -errno;
        return rc;
    }
    /* rename() is the only way to replace atomically, and it needs a name
     * to move from: a kill between the two calls leaves that name (the
     * only window in which anything can be left behind). */
    if (!nf->tmp[0] && (rc = name_unnamed(nf, path)) != 0)
        return rc;
    if ((replace ? rename(nf->tmp, path) : link(nf->tmp, path)) != 0)
        rc = -errno;
    if (replace && rc == 0)
        nf->tmp[0] = '\0'; /* moved: nothing left to unlink */
    return rc;
}

void hmm__newfile_close(struct hmm__newfile *nf)
{
    if (nf->fd >= 0)
        close(nf->fd);
    nf->fd = -1;
    if (nf->tmp[0])
        unlink(nf->tmp);
    nf->tmp[0] = '\0';
}

int hmm__sibling_access(int fd, int map_fd, unsigned fallback_mode)
{
    struct stat st;
    mode_t mode = fallback_mode;
    if (map_fd >= 0 && fstat(map_fd, &st) == 0) {
        mode = st.st_mode & 07777;
        /* Same owner and group as the map, so whoever may write the map
         * may write its siblings: root may give both, others at least the
         * group (allowed when they belong to it).  Best effort: the mode
         * below is what matters for the creator's own access. */
        if (fchown(fd, st.st_uid, st.st_gid) != 0 && fchown(fd, (uid_t)-1, st.st_gid) != 0) {
            /* not a member of the map's group: the file keeps ours */
        }
    }
    return fchmod(fd, mode) == 0 ? 0 : -errno;
}

/* Blocks below the old end may be holes too (a file made sparse by an
 * older build or by a copy): allocate from 0, which costs nothing for
 * blocks already there. */
int hmm__file_allocate(int fd, uint64_t size)
{
    return hmm__allocate(fd, 0, size);
}

int hmm__adopt_fd(hmm_t *m, int fd, const char *what, int (*map)(hmm_t *m, int fd, uint64_t arg), uint64_t arg)
{
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return hmm_fail(-errno, "dup of the %s fd: %s", what, strerror(errno));
    int rc = map(m, own, arg);
    if (rc) {
        close(own);
        return hmm_fail(rc, "mmap of the %s fd: %s", what, strerror(-rc));
    }
    return 0;
}

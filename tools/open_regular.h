/*
 * open_regular.h - the tools' one way to open a file that a user named or
 * that lies in a directory someone else may write (hashmmap-tail's logs,
 * hashmmap-replicate's --secret-file): never blocks on a FIFO, never reads
 * a device or a directory.  The library does the same for its own files
 * (core/fileio.c); tools use only the public header, hence this twin.
 */
#ifndef HMM_TOOLS_OPEN_REGULAR_H
#define HMM_TOOLS_OPEN_REGULAR_H

#include <stddef.h>
#include <sys/stat.h>

/* openat(dirfd, name, flags) with O_NONBLOCK (cleared again), O_NOCTTY and
 * O_CLOEXEC added, and refused unless it is a regular file.  Returns the
 * fd with *st filled, or -errno; on -EINVAL (not a regular file) why says
 * what it is instead.  dirfd may be AT_FDCWD. */
int hmm__open_regular_at(int dirfd, const char *name, int flags, struct stat *st, char *why, size_t whylen);

#endif

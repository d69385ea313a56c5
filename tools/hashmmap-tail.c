/*
 * hashmmap-tail - print the lines appended to log files since the last run,
 * keeping each file's position in a hashmmap map (like Debian's logtail2
 * with its offset files, but one shared, crash-safe map for many files).
 *
 *     hashmmap-tail --state /var/lib/app/tail /var/log/syslog /var/log/auth.log
 *     hashmmap-tail --state /var/lib/app/tail --follow /var/log/syslog
 *
 * Per file and run: the record (tools/tail_state.h) names the file by
 * device and inode.  Same inode: continue at the offset, or from the start
 * when the file shrank or the bytes before the offset changed (copytruncate).
 * Other inode: the file was rotated; finish the old one if it is still in
 * the directory under a rotated name (FILE.1, FILE.0, FILE-20240101, ... any
 * FILE[.-_]* with the old inode), then read the new one from its start.
 * Only whole lines are printed; the offset stays at the start of an
 * unfinished last line.  Output is flushed before the position is
 * recorded, so a crash repeats lines, never loses them (as logtail2).
 * Runs that share a map take turns per pass (run_pass), so overlapping
 * runs never print a line twice.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "tools/errtext.h"
#include "tools/open_regular.h"
#include "tools/tail_state.h"
#include "tools/units.h"

#define EXIT_NOTFOUND 1
#define EXIT_USAGE 2
#define EXIT_OTHER 3

#define READ_CHUNK (64u * 1024u)
/* A line longer than this is printed in pieces of this many bytes, each
 * ending in a newline: the carry buffer never grows past it, so a file
 * without newlines (a sparse file, a binary) cannot exhaust memory. */
#define DEFAULT_MAX_LINE (1024u * 1024u)
#define MIN_MAX_LINE 16u
#define MAX_MAX_LINE (256u * 1024u * 1024u)

static const char *progname = "hashmmap-tail";
static volatile sig_atomic_t stop_requested;

struct tail_opts {
    const char *state_dir;
    bool follow;
    bool dry_run;
    double interval_s;
    size_t max_line;
};

/* Per file, across the passes of --follow: report a missing file once. */
struct tail_file {
    const char *arg;   /* as given on the command line */
    char *key;         /* absolute path: the record's key */
    bool reported_missing;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s --state DIR [--follow [-s SECONDS] | --dry-run] FILE...\n"
            "Print the lines appended to each FILE since the previous run and record\n"
            "the new positions in the map at DIR (created if missing).\n"
            "  -S, --state DIR            map that keeps the positions (required)\n"
            "  -F, --follow               keep reading like tail -F, recording as it goes\n"
            "  -s, --sleep-interval SEC   --follow: seconds between passes (default 1)\n"
            "  -n, --dry-run              print, but do not record the positions\n"
            "  -L, --max-line SIZE        print longer lines in pieces of SIZE bytes (default 1M)\n"
            "  -h, --help                 this text\n"
            "Examples:\n"
            "  %s --state /var/lib/logcheck/tail /var/log/syslog /var/log/auth.log\n"
            "  %s --state ~/.tail --follow -s 0.2 app.log\n"
            "Exit: 0 ok, 1 a FILE does not exist, 2 usage, 3 other errors.\n",
            progname, progname, progname);
}

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The record's key: the absolute path (without resolving symlinks, so a
 * file that disappeared keeps its key). */
static char *absolute_key(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    size_t len = strlen(cwd) + 1 + strlen(path) + 1;
    char *key = malloc(len);
    if (key)
        snprintf(key, len, "%s/%s", cwd, path);
    return key;
}

static int write_all(const char *p, size_t len)
{
    if (len && fwrite(p, 1, len, stdout) != len)
        return -EIO;
    return 0;
}

/* The lines of one file in one pass: complete lines go out, an unfinished
 * one waits in carry (at most max_line bytes), a longer one is cut. */
struct line_out {
    const char *path;
    size_t max_line;
    char *carry;
    size_t carry_len;
    bool warned;
};

static void warn_long_line(struct line_out *lo, uint64_t at)
{
    if (lo->warned)
        return;
    lo->warned = true;
    fprintf(stderr, "%s: %s: the line at offset %llu is longer than %zu bytes: printed in pieces of %zu bytes\n",
            progname, lo->path, (unsigned long long)at, lo->max_line, lo->max_line);
}

/* n bytes read at file offset at.  p[run..i) are complete lines not yet
 * written (carry is only ever non-empty at the start of a chunk, so it
 * always goes out before them). */
static int feed_lines(struct line_out *lo, const char *p, size_t n, uint64_t at)
{
    size_t i = 0, run = 0;
    int rc;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t seg = nl ? (size_t)(nl - (p + i)) : n - i; /* bytes before the newline */
        if (lo->carry_len + seg <= lo->max_line) {
            if (!nl) { /* unfinished: kept until its newline comes */
                if ((rc = write_all(p + run, i - run)))
                    return rc;
                memcpy(lo->carry + lo->carry_len, p + i, seg);
                lo->carry_len += seg;
                return 0;
            }
            if (lo->carry_len && (rc = write_all(lo->carry, lo->carry_len)))
                return rc;
            lo->carry_len = 0;
            i += seg + 1;
            continue;
        }
        /* Too long: a piece of max_line bytes, ended by a newline. */
        size_t take = lo->max_line - lo->carry_len;
        if ((rc = write_all(p + run, i - run)) || (rc = write_all(lo->carry, lo->carry_len)) ||
            (rc = write_all(p + i, take)) || (rc = write_all("\n", 1)))
            return rc;
        warn_long_line(lo, at + i - lo->carry_len);
        lo->carry_len = 0;
        i += take;
        run = i;
    }
    return write_all(p + run, i - run);
}

/* Print the whole lines of fd from offset start to its end and return in
 * *end the offset after the last byte printed.  With finish (a rotated
 * file that will not grow any more) an unfinished last line is printed too,
 * with a newline added, so it is neither lost nor glued to the next file. */
static int print_lines(int fd, const char *path, size_t max_line, uint64_t start, bool finish, uint64_t *end)
{
    struct line_out lo = {.path = path, .max_line = max_line};
    char *chunk = malloc(READ_CHUNK);
    lo.carry = malloc(max_line);
    uint64_t pos = start;
    int rc = 0;
    if (!chunk || !lo.carry) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = pread(fd, chunk, READ_CHUNK, (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        if ((rc = feed_lines(&lo, chunk, (size_t)n, pos)))
            goto out;
        pos += (uint64_t)n;
    }
    if (finish && lo.carry_len) {
        if ((rc = write_all(lo.carry, lo.carry_len)) || (rc = write_all("\n", 1)))
            goto out;
        lo.carry_len = 0;
    }
    *end = pos - lo.carry_len;
out:
    free(chunk);
    free(lo.carry);
    return rc;
}

/* Open FILE under the rule of hashmmap-tail(1), SECURITY.  In a directory
 * that only the invoking user or root can change, FILE is opened as named
 * (a symlink there was put there by one of them).  In any other directory
 * (group- or world-writable, sticky or not, or owned by another user) a
 * symlink is not followed (O_NOFOLLOW, on the directory fd that was checked,
 * so the check and the open see the same directory), and a file with more
 * than one hard link is refused: those are how another user makes a file
 * they cannot read appear under a log's name, for root to print.  Either
 * way only a regular file is read (a FIFO would block the run).  Returns the
 * fd with *st filled, or -errno with why set for refusals (-EPERM, -EINVAL). */
static int open_log(const char *path, struct stat *st, char *why, size_t whylen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dirname[PATH_MAX] = ".";
    if (slash) {
        size_t dlen = slash == path ? 1 : (size_t)(slash - path); /* "/x" lives in "/" */
        if (dlen >= sizeof dirname)
            return -ENAMETOOLONG;
        memcpy(dirname, path, dlen);
        dirname[dlen] = '\0';
    }
    int dfd = open(dirname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    struct stat dst;
    int fd = fstat(dfd, &dst) != 0 ? -errno : 0;
    bool trusted = fd == 0 && (dst.st_uid == geteuid() || dst.st_uid == 0) &&
                   !(dst.st_mode & (S_IWGRP | S_IWOTH));
    if (fd == 0)
        fd = hmm__open_regular_at(dfd, *base ? base : ".", O_RDONLY | (trusted ? 0 : O_NOFOLLOW), st, why,
                                  whylen);
    close(dfd);
    if (fd == -ELOOP && !trusted) {
        snprintf(why, whylen, "a symbolic link in a directory other users can write: not followed");
        return -EPERM;
    }
    if (fd >= 0 && !trusted && st->st_nlink > 1) {
        snprintf(why, whylen, "has %lu hard links in a directory other users can write: not read",
                 (unsigned long)st->st_nlink);
        close(fd);
        return -EPERM;
    }
    return fd;
}

/* Open the rotated predecessor of path: an entry of the same directory
 * named path's base name plus '.', '-' or '_' and more, with the old device
 * and inode.  FILE.1 (logrotate) is tried first, then the directory is
 * scanned (savelog's FILE.0, dateext's FILE-YYYYMMDD, ...).  -1 if none.
 * Rotation renames real files, so a symlink is never one of them (an
 * inode match through a link planted by another user proves nothing). */
static int open_rotated(const char *path, uint64_t dev, uint64_t ino)
{
    char name[PATH_MAX], why[128];
    struct stat st;
    int fd = -1;
    if (snprintf(name, sizeof name, "%s.1", path) < (int)sizeof name &&
        (fd = hmm__open_regular_at(AT_FDCWD, name, O_RDONLY | O_NOFOLLOW, &st, why, sizeof why)) >= 0) {
        if ((uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino)
            return fd;
        close(fd);
    }

    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dirname[PATH_MAX] = ".";
    if (slash) {
        /* "/x" lives in "/", "a/b/x" in "a/b". */
        size_t dlen = slash == path ? 1 : (size_t)(slash - path);
        if (dlen >= sizeof dirname)
            return -1;
        memcpy(dirname, path, dlen);
        dirname[dlen] = '\0';
    }
    DIR *d = opendir(dirname);
    if (!d)
        return -1;
    size_t blen = strlen(base);
    fd = -1;
    struct dirent *e;
    while (fd < 0 && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, blen) != 0 || !strchr(".-_", e->d_name[blen])
            || e->d_name[blen] == '\0' || e->d_name[blen + 1] == '\0')
            continue;
        /* The inode is compared before opening (no open of unrelated
         * files, which may be FIFOs) and again on the open file. */
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || (uint64_t)st.st_dev != dev
            || (uint64_t)st.st_ino != ino || !S_ISREG(st.st_mode))
            continue;
        fd = hmm__open_regular_at(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW, &st, why, sizeof why);
        if (fd >= 0 && ((uint64_t)st.st_dev != dev || (uint64_t)st.st_ino != ino)) {
            close(fd);
            fd = -1;
        }
    }
    closedir(d);
    return fd;
}

/* Finish the file a record belongs to, found under a rotated name; updates
 * *pos to its end.  Returns true when it was found. */
static int finish_rotated(const char *path, size_t max_line, struct tail_pos *pos, bool *found)
{
    *found = false;
    int fd = open_rotated(path, pos->dev, pos->ino);
    if (fd < 0)
        return 0;
    *found = true;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    /* A rotated file that shrank was rewritten: all of it is new. */
    uint64_t from = (uint64_t)st.st_size < pos->offset ? 0 : pos->offset;
    if ((rc = print_lines(fd, path, max_line, from, true, &pos->offset)) == 0)
        rc = tail_fingerprint(fd, pos);
out:
    close(fd);
    return rc;
}

/* Where to resume in the file open at fd (stat st) given the record, or 0
 * with a warning when the file was truncated or rewritten in place. */
static uint64_t resume_offset(int fd, const struct stat *st, const struct tail_pos *old,
                              const char *path)
{
    if ((uint64_t)st->st_size < old->offset) {
        fprintf(stderr, "%s: %s: file is smaller than last time (truncated): reading it from the start\n",
                progname, path);
        return 0;
    }
    struct tail_pos now = *old;
    if (tail_fingerprint(fd, &now) != 0 || now.fp != old->fp || now.fp_len != old->fp_len) {
        fprintf(stderr, "%s: %s: bytes before the last position changed (truncated and rewritten): "
                "reading it from the start\n", progname, path);
        return 0;
    }
    return old->offset;
}

/* One pass over one file.  0, HMM_NOTFOUND when the file does not exist,
 * or another negative code (already reported on stderr). */
static int tail_one(hmm_t *m, const struct tail_opts *o, struct tail_file *f)
{
    struct tail_pos old, pos;
    bool have = false, found_rotated = false;
    int rc = tail_state_load(m, f->key, &old);
    if (rc == 0)
        have = true;
    else if (rc == HMM_CORRUPT)
        fprintf(stderr, "%s: %s: position record is unreadable: reading the file from the start\n",
                progname, f->arg);
    else if (rc != HMM_NOTFOUND)
        goto fail_map;

    struct stat st;
    char why[128] = "";
    int fd = open_log(f->arg, &st, why, sizeof why);
    if (fd < 0) {
        rc = fd;
        if (rc != -ENOENT) {
            fprintf(stderr, "%s: %s: %s\n", progname, f->arg, why[0] ? why : strerror(-rc));
            return rc;
        }
        /* Gone: rotated without a successor yet, or deleted.  Finish the
         * old file if it was renamed; keep the record either way. */
        if (have) {
            pos = old;
            if ((rc = finish_rotated(f->arg, o->max_line, &pos, &found_rotated)) != 0)
                goto fail_io;
            if (found_rotated && !o->dry_run && pos.offset != old.offset) {
                if (fflush(stdout) != 0)
                    goto fail_out;
                if ((rc = tail_state_save(m, f->key, &pos)) != 0)
                    goto fail_map;
            }
        }
        if (!f->reported_missing)
            fprintf(stderr, "%s: %s: %s\n", progname, f->arg, strerror(ENOENT));
        f->reported_missing = true;
        return HMM_NOTFOUND;
    }
    f->reported_missing = false;

    uint64_t start = 0;
    if (have && (uint64_t)st.st_dev == old.dev && (uint64_t)st.st_ino == old.ino) {
        start = resume_offset(fd, &st, &old, f->arg);
    } else if (have) {
        pos = old;
        if ((rc = finish_rotated(f->arg, o->max_line, &pos, &found_rotated)) != 0) {
            close(fd);
            goto fail_io;
        }
    }
    pos.dev = (uint64_t)st.st_dev;
    pos.ino = (uint64_t)st.st_ino;
    rc = print_lines(fd, f->arg, o->max_line, start, false, &pos.offset);
    if (rc == 0)
        rc = tail_fingerprint(fd, &pos);
    close(fd);
    if (rc)
        goto fail_io;
    if (fflush(stdout) != 0)
        goto fail_out;
    if (o->dry_run || (have && pos.dev == old.dev && pos.ino == old.ino && pos.offset == old.offset
                       && pos.fp == old.fp))
        return 0;
    if ((rc = tail_state_save(m, f->key, &pos)) != 0)
        goto fail_map;
    return 0;

fail_map:
    fprintf(stderr, "%s: %s: recording the position: %s\n", progname, f->arg, hmm_strerror(rc));
    return rc;
fail_io:
    fprintf(stderr, "%s: %s: %s\n", progname, f->arg, strerror(-rc));
    return rc;
fail_out:
    fprintf(stderr, "%s: writing the output: %s\n", progname, strerror(errno));
    return -EIO;
}

/* Worst outcome of a pass: 3 beats 1 beats 0. */
static int exit_code_for(int rc, int worst)
{
    int code = rc == 0 ? 0 : rc == HMM_NOTFOUND ? EXIT_NOTFOUND : EXIT_OTHER;
    return code > worst ? code : worst;
}

/* One pass over every file, under an exclusive flock() of the state
 * directory: two runs sharing a map (overlapping cron jobs, a --follow and
 * a manual run) take turns, and each reads the records the other left, so
 * no line is printed twice.  flock() is released by the kernel when the
 * holder dies, and is independent of the map file's own fcntl locks. */
static int run_pass(hmm_t *m, int state_fd, const struct tail_opts *o, struct tail_file *files,
                    int nfiles)
{
    int worst = 0;
    while (flock(state_fd, LOCK_EX) != 0) {
        if (errno != EINTR || stop_requested) {
            fprintf(stderr, "%s: %s: cannot lock: %s\n", progname, o->state_dir, strerror(errno));
            return EXIT_OTHER;
        }
    }
    for (int i = 0; i < nfiles; i++) {
        int rc = tail_one(m, o, &files[i]);
        worst = exit_code_for(rc, worst);
        if (rc == -EIO) /* stdout is broken: no point in going on */
            break;
    }
    flock(state_fd, LOCK_UN);
    return worst;
}

static void sleep_interval(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL); /* EINTR from SIGTERM/SIGINT ends the wait early, as wanted */
}

/* A usage error: one line on stderr, then exit status 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputs(" (try --help)\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* The options that only make sense together, checked once all are read. */
static int check_tail_options(const struct tail_opts *o, bool interval_given, bool have_files)
{
    if (!o->state_dir)
        return usage_error("--state DIR is required");
    if (!have_files)
        return usage_error("no FILE given");
    /* A dry run records no position: each pass would start where the last
     * recorded run ended and print the same lines again. */
    if (o->dry_run && o->follow)
        return usage_error("--dry-run and --follow exclude each other: a dry run records no position, "
                           "so every pass would print the same lines again");
    if (interval_given && !o->follow)
        return usage_error("--sleep-interval goes with --follow");
    return 0;
}

static int parse_args(int argc, char **argv, struct tail_opts *o)
{
    static const struct option longopts[] = {
        {"state", required_argument, NULL, 'S'},
        {"follow", no_argument, NULL, 'F'},
        {"sleep-interval", required_argument, NULL, 's'},
        {"dry-run", no_argument, NULL, 'n'},
        {"max-line", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    uint64_t interval_ms, max_line;
    bool interval_given = false;
    opterr = 0; /* its message and our usage were two lines or more */
    while ((c = getopt_long(argc, argv, ":S:Fs:nL:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'S':
            o->state_dir = optarg;
            break;
        case 'F':
            o->follow = true;
            break;
        case 's':
            if (units_parse_interval_ms(optarg, &interval_ms) != 0)
                return usage_error("--sleep-interval: '%s' is not %s", optarg, UNITS_INTERVAL_TEXT);
            o->interval_s = (double)interval_ms / 1e3;
            interval_given = true;
            break;
        case 'n':
            o->dry_run = true;
            break;
        case 'L':
            if (units_parse_size(optarg, &max_line) != 0 || max_line < MIN_MAX_LINE || max_line > MAX_MAX_LINE)
                return usage_error("--max-line: '%s' is not a size from %u bytes to %uM", optarg, MIN_MAX_LINE,
                                   MAX_MAX_LINE >> 20);
            o->max_line = (size_t)max_line;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default: {
            char text[ERRTEXT_MAX];
            fprintf(stderr, "%s: %s (try '%s --help')\n", progname,
                    errtext_option(c, argv, longopts, text, sizeof text), progname);
            return EXIT_USAGE;
        }
        }
    }
    return check_tail_options(o, interval_given, optind < argc);
}

int main(int argc, char **argv)
{
    struct tail_opts o = {.interval_s = 1.0, .max_line = DEFAULT_MAX_LINE};
    int code = parse_args(argc, argv, &o);
    if (code)
        return code;

    int nfiles = argc - optind;
    hmm_t *m = NULL;
    int state_fd = -1;
    struct tail_file *files = calloc((size_t)nfiles, sizeof *files);
    if (!files) {
        fprintf(stderr, "%s: out of memory\n", progname);
        return EXIT_OTHER;
    }
    code = EXIT_OTHER;
    for (int i = 0; i < nfiles; i++) {
        files[i].arg = argv[optind + i];
        if (!(files[i].key = absolute_key(files[i].arg))) {
            fprintf(stderr, "%s: %s: %s\n", progname, files[i].arg, strerror(errno));
            goto out;
        }
    }

    /* Small to start (a record is ~60 bytes), growing as files are added. */
    hmm_config cfg = {.size = 1u << 20, .max_size = 1ull << 30, .flags = HMM_CREATE};
    int rc = hmm_open(&m, o.state_dir, &cfg);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", progname, o.state_dir, hmm_strerror(rc));
        goto out;
    }
    state_fd = open(o.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", progname, o.state_dir, strerror(errno));
        goto out;
    }

    if (!o.follow) {
        code = run_pass(m, state_fd, &o, files, nfiles);
    } else {
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        /* Missing files are waited for, like tail -F: only errors end it. */
        code = 0;
        while (!stop_requested) {
            if (run_pass(m, state_fd, &o, files, nfiles) == EXIT_OTHER) {
                code = EXIT_OTHER;
                break;
            }
            if (!stop_requested)
                sleep_interval(o.interval_s);
        }
    }
out:
    if (state_fd >= 0)
        close(state_fd);
    hmm_close(m);
    for (int i = 0; i < nfiles; i++)
        free(files[i].key);
    free(files);
    return code;
}

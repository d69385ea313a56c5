/*
 * bus_error.c - a clear last word when a mapped file is cut short (bus_error.h).
 *
 * Everything the handler calls is async-signal-safe: open, read, stat,
 * write, sigaction, raise, _exit, and hand-written number formatting.
 * It finds the file from /proc/self/maps rather than from a list the tool
 * keeps, so it also names files the library mapped on its own (metrics,
 * log) without the tool knowing them.
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/bus_error.h"

static const char *bus_prog = "hashmmap";

/* A line of /proc/self/maps is "START-END PERMS OFFSET DEV INODE   PATH";
 * its path may be as long as PATH_MAX, so a line fits in 4096 + 128. */
#define MAPS_LINE_MAX 4352

struct mapping {
    uintptr_t start, end;
    uint64_t offset;
    char path[MAPS_LINE_MAX];
};

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void put_u64(uint64_t v)
{
    char digits[24];
    char *p = digits + sizeof digits - 1;
    *p = '\0';
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    put(p);
}

static const char *parse_hex(const char *s, uint64_t *v)
{
    *v = 0;
    for (;; s++) {
        unsigned d = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
                     : *s >= 'a' && *s <= 'f' ? (unsigned)(*s - 'a' + 10)
                                              : 16;
        if (d == 16)
            return s;
        *v = *v << 4 | d;
    }
}

/* Fill *m from one maps line if it covers addr; the path is what follows
 * the inode, blanks skipped. */
static bool line_covers(const char *line, uintptr_t addr, struct mapping *m)
{
    uint64_t start, end, offset;
    const char *p = parse_hex(line, &start);
    if (*p != '-')
        return false;
    p = parse_hex(p + 1, &end);
    if (addr < start || addr >= end)
        return false;
    p = strchr(p + 1, ' '); /* past the permissions */
    if (!p)
        return false;
    p = parse_hex(p + 1, &offset);
    for (int field = 0; field < 2 && p; field++) /* device, inode */
        p = strchr(p + 1, ' ');
    while (p && *p == ' ')
        p++;
    m->start = (uintptr_t)start;
    m->end = (uintptr_t)end;
    m->offset = offset;
    size_t n = p ? strlen(p) : 0;
    memcpy(m->path, p ? p : "", n + 1);
    return true;
}

/* The mapping of /proc/self/maps that holds addr, with a file path. */
static bool find_mapping(uintptr_t addr, struct mapping *m)
{
    static char buf[2 * MAPS_LINE_MAX];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t have = 0;
    bool found = false;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        char *line = buf, *nl;
        while (!found && (nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            found = line_covers(line, addr, m);
            line = nl + 1;
        }
        if (found)
            break;
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) /* a line longer than any path: skip it */
            have = 0;
    }
    close(fd);
    return found && m->path[0] == '/';
}

static void on_bus_error(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    static struct mapping m;
    if (!find_mapping((uintptr_t)si->si_addr, &m)) {
        /* Not a mapped file: a bug, which deserves its core dump. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    uint64_t at = m.offset + ((uintptr_t)si->si_addr - m.start);
    put(bus_prog);
    put(": ");
    put(m.path);
    put(": bus error at offset ");
    put_u64(at);
    struct stat st;
    if (stat(m.path, &st) == 0) {
        put(": the file is now ");
        put_u64((uint64_t)st.st_size);
        put(" bytes");
    }
    put(", shorter than this process had mapped (truncated by another process?); stopped here "
        "(docs/RELIABILITY.md, \"Files truncated under a mapping\", says what to do)\n");
    _exit(TOOL_EXIT_BUS_ERROR);
}

void tool_report_bus_errors(const char *prog)
{
    bus_prog = prog;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus_error;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

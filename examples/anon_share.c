/*
 * anon-share - hand an anonymous map to unrelated processes over a unix
 * socket (hmm_fd, hmm_open_fd and SCM_RIGHTS).
 *
 * A supervisor makes the map in shared memory (no file, no directory) and
 * gives its descriptors to whoever connects; a worker started by anyone
 * (exec'ed, not forked from the supervisor) joins the same map:
 *
 *   anon-share serve /tmp/cache.sock &        # prints "ready" when listening
 *   anon-share put /tmp/cache.sock colour blue
 *   anon-share get /tmp/cache.sock colour     # blue
 *   anon-share incr /tmp/cache.sock hits      # 1, 2, ... from any process
 *   kill %1                                   # prints what the supervisor sees
 *
 * The descriptors are only ever passed to a peer with the same uid (checked
 * with SO_PEERCRED): whoever holds them can read and write the whole map.
 */
#define _GNU_SOURCE /* accept4, struct ucred */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hashmmap.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int unix_address(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path) {
        fprintf(stderr, "anon-share: %s: socket path too long\n", path);
        return -1;
    }
    strcpy(a->sun_path, path);
    return 0;
}

/* One message: the number of descriptors as a byte, the descriptors as
 * SCM_RIGHTS ancillary data (-1 entries are not sent). */
static int send_map(int sock, hmm_t *m)
{
    int fds[HMM_FD_COUNT], sent[HMM_FD_COUNT];
    int rc = hmm_fd(m, fds);
    if (rc)
        return rc;
    /* Which slots travel, so the receiver puts each fd back in its place. */
    unsigned char present = 0;
    int n = 0;
    for (int i = 0; i < HMM_FD_COUNT; i++)
        if (fds[i] >= 0) {
            present |= (unsigned char)(1u << i);
            sent[n++] = fds[i];
        }
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * HMM_FD_COUNT)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = &present, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), sent, sizeof(int) * (size_t)n);
    return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

static int receive_map(int sock, hmm_t **m)
{
    unsigned char present = 0;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * HMM_FD_COUNT)];
    } ctl;
    struct iovec iov = {.iov_base = &present, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
        return -EPROTO;
    int got[HMM_FD_COUNT], n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(got, CMSG_DATA(c), sizeof(int) * (size_t)n);
        }
    int fds[HMM_FD_COUNT], k = 0;
    for (int i = 0; i < HMM_FD_COUNT; i++)
        fds[i] = (present >> i) & 1 && k < n ? got[k++] : -1;
    int rc = k == n && !(msg.msg_flags & MSG_CTRUNC) ? hmm_open_fd(m, fds, 0) : -EPROTO;
    for (int i = 0; i < n; i++)
        close(got[i]); /* hmm_open_fd keeps its own duplicates */
    return rc;
}

static int serve(const char *path)
{
    hmm_config cfg = {.size = 8u << 20, .flags = HMM_CACHE};
    hmm_t *m;
    int rc = hmm_open_anon(&m, &cfg);
    if (rc) {
        fprintf(stderr, "anon-share: anonymous map: %s\n", hmm_strerror(rc));
        return 3;
    }
    struct sockaddr_un a;
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0 || unix_address(&a, path) || (unlink(path), bind(ls, (struct sockaddr *)&a, sizeof a)) ||
        listen(ls, 16)) {
        fprintf(stderr, "anon-share: %s: %s\n", path, strerror(errno));
        return 3;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: accept returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    while (!stop) {
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid())
            send_map(c, m);
        close(c);
    }
    /* The supervisor's own view: what unrelated processes stored. */
    hmm_stats st;
    if (hmm_stat(m, &st) == 0)
        printf("items=%llu puts=%llu\n", (unsigned long long)st.items,
               (unsigned long long)st.counters[HMM_C_PUTS]);
    close(ls);
    unlink(path);
    hmm_close(m);
    return 0;
}

static int client(const char *path, const char *op, char **args, int nargs)
{
    struct sockaddr_un a;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || unix_address(&a, path) || connect(s, (struct sockaddr *)&a, sizeof a)) {
        fprintf(stderr, "anon-share: %s: %s\n", path, strerror(errno));
        return 3;
    }
    hmm_t *m;
    int rc = receive_map(s, &m);
    close(s);
    if (rc) {
        fprintf(stderr, "anon-share: receiving the map: %s\n", hmm_strerror(rc));
        return 3;
    }
    char val[4096];
    size_t vlen = sizeof val;
    int64_t n = 0;
    if (strcmp(op, "put") == 0 && nargs == 2)
        rc = hmm_put(m, args[0], strlen(args[0]), args[1], strlen(args[1]), 0, 0);
    else if (strcmp(op, "get") == 0 && nargs == 1 && (rc = hmm_get(m, args[0], strlen(args[0]), val, &vlen)) == 0)
        printf("%.*s\n", (int)vlen, val);
    else if (strcmp(op, "incr") == 0 && nargs == 1 && (rc = hmm_incr(m, args[0], strlen(args[0]), 1, &n)) == 0)
        printf("%lld\n", (long long)n);
    else if (strcmp(op, "put") && strcmp(op, "get") && strcmp(op, "incr"))
        rc = -EINVAL;
    hmm_close(m);
    if (rc)
        fprintf(stderr, "anon-share: %s: %s\n", op, hmm_strerror(rc));
    return rc == 0 ? 0 : rc == HMM_NOTFOUND ? 1 : 3;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2]);
    if (argc >= 4)
        return client(argv[2], argv[1], argv + 3, argc - 3);
    fprintf(stderr, "usage: anon-share serve SOCKET\n"
                    "       anon-share put SOCKET KEY VALUE | get SOCKET KEY | incr SOCKET KEY\n");
    return 2;
}

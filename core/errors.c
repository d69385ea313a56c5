/*
 * errors.c - one table of return codes (HMM_ERRNO_MAP in hashmmap.h) and
 * the per-thread detail of the last failure.
 *
 * One error path: every public function that can fail calls
 * hmm__error_clear() on entry (internal.h), and every failure it returns
 * goes through hmm_fail(), so hmm_last_error() always speaks of the
 * thread's latest call and never of an older one.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

static _Thread_local char last_error[512];
/* Whether last_error belongs to the thread's latest call (see internal.h). */
_Thread_local bool hmm__error_set HMM__TLS_FAST;

/* Record the detail of a failure for hmm_last_error() and return rc, so a
 * failing path reads: return hmm_fail(HMM_CORRUPT, "%s: bad magic", path); */
int hmm_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    hmm__error_set = true;
    return rc;
}

HMM_EXPORT const char *hmm_last_error(void)
{
    return hmm__error_set ? last_error : "";
}

HMM_EXPORT const char *hmm_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
#define HMM_ERR_TEXT(name, value, text) case HMM_##name: return text;
        HMM_ERRNO_MAP(HMM_ERR_TEXT)
#undef HMM_ERR_TEXT
    default:
        break;
    }
    if (rc < 0 && rc > -4096)
        return strerror(-rc);
    return "unknown error code";
}

/* The symbolic name of an errno value, or NULL.  glibc 2.32 and later name
 * every value; elsewhere the ones the library and the calls it makes return. */
static const char *errno_name(int err)
{
#ifdef HAVE_STRERRORNAME_NP
    return strerrorname_np(err);
#else
    switch (err) {
#define HMM_ERRNO_NAME(e) case e: return #e;
        HMM_ERRNO_NAME(EPERM) HMM_ERRNO_NAME(ENOENT) HMM_ERRNO_NAME(EINTR) HMM_ERRNO_NAME(EIO)
        HMM_ERRNO_NAME(EBADF) HMM_ERRNO_NAME(EAGAIN) HMM_ERRNO_NAME(ENOMEM) HMM_ERRNO_NAME(EACCES)
        HMM_ERRNO_NAME(EFAULT) HMM_ERRNO_NAME(EBUSY) HMM_ERRNO_NAME(EEXIST) HMM_ERRNO_NAME(ENODEV)
        HMM_ERRNO_NAME(ENOTDIR) HMM_ERRNO_NAME(EISDIR) HMM_ERRNO_NAME(EINVAL) HMM_ERRNO_NAME(ENFILE)
        HMM_ERRNO_NAME(EMFILE) HMM_ERRNO_NAME(EFBIG) HMM_ERRNO_NAME(ENOSPC) HMM_ERRNO_NAME(EROFS)
        HMM_ERRNO_NAME(ERANGE) HMM_ERRNO_NAME(ENAMETOOLONG) HMM_ERRNO_NAME(ENOSYS) HMM_ERRNO_NAME(ELOOP)
        HMM_ERRNO_NAME(EOVERFLOW) HMM_ERRNO_NAME(ENOTSUP) HMM_ERRNO_NAME(ESTALE) HMM_ERRNO_NAME(EDQUOT)
#undef HMM_ERRNO_NAME
    default:
        return NULL;
    }
#endif
}

HMM_EXPORT const char *hmm_errname(int rc)
{
    switch (rc) {
    case 0:
        return "OK";
#define HMM_ERR_NAME(name, value, text) case HMM_##name: return "HMM_" #name;
        HMM_ERRNO_MAP(HMM_ERR_NAME)
#undef HMM_ERR_NAME
    default:
        break;
    }
    if (rc < 0 && rc > -4096) {
        const char *name = errno_name(-rc);
        if (name)
            return name;
    }
    return "UNKNOWN";
}

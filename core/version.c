/*
 * version.c - the API version at run time (hashmmap.h, HMM_VERSION_*).
 * The ABI version is libtool's -version-info (core/local.mk), the file
 * format's is in the header of every map (docs/FORMAT.md).
 */
#include "config.h"

#include "core/internal.h"

HMM_EXPORT const char *hmm_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = HMM_VERSION_MAJOR;
    if (minor)
        *minor = HMM_VERSION_MINOR;
    if (patch)
        *patch = HMM_VERSION_PATCH;
    return PACKAGE_VERSION;
}

/*
 * module.c - the CPython module `hashmmap`: opening maps and the errors.
 *
 *     import hashmmap
 *     with hashmmap.open("/var/lib/app/cache", cache=True, ttl=60) as m:
 *         m[b"user:42"] = b"..."            # str works too (UTF-8)
 *         m.get(b"user:42")                 # b"..." or None
 *         m.incr("hits")                    # a shared, atomic counter
 *
 * Errors: hashmmap.Error and one subclass per library code (NotFoundError
 * is also a KeyError, TooBigError and NotNumberError also ValueErrors);
 * system errors (-errno) raise SysError, also an OSError with its errno.
 */
#include "bindings/python/pyhmm.h"

#include <errno.h>
#include <string.h>

/* One exception class per library code, in HMM_ERRNO_MAP order. */
static PyObject *Error, *SysError;
#define ERR_CLASS(name, value, text) static PyObject *Err_##name;
HMM_ERRNO_MAP(ERR_CLASS)
#undef ERR_CLASS

static PyObject *class_for(int rc)
{
#define ERR_CASE(name, value, text) \
    if (rc == (value))              \
        return Err_##name;
    HMM_ERRNO_MAP(ERR_CASE)
#undef ERR_CASE
    return rc < 0 && rc > -4096 ? SysError : Error;
}

PyObject *hmm__py_raise(int rc, PyObject *key)
{
    const char *detail = hmm_last_error();
    PyObject *cls = class_for(rc);
    PyObject *exc;
    if (rc == HMM_NOTFOUND && key)
        exc = PyObject_CallOneArg(cls, key); /* KeyError(key), as dict does */
    else if (cls == SysError)
        exc = PyObject_CallFunction(cls, "is", -rc, *detail ? detail : strerror(-rc));
    else
        exc = PyObject_CallFunction(cls, "s", *detail ? detail : hmm_strerror(rc));
    if (!exc)
        return NULL;
    PyObject *code = PyLong_FromLong(rc), *name = PyUnicode_FromString(hmm_errname(rc));
    int bad = !code || !name || PyObject_SetAttrString(exc, "code", code) != 0 ||
              PyObject_SetAttrString(exc, "name", name) != 0;
    Py_XDECREF(code);
    Py_XDECREF(name);
    if (bad) {
        Py_DECREF(exc);
        return NULL;
    }
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

/* Open with the GIL released: opening may wait for recovery or a lock. */
static PyObject *finish_open(int rc, hmm_t *m, int text)
{
    if (rc)
        return hmm__py_raise(rc, NULL);
    PyObject *o = hmm__py_map_new(m, text);
    if (!o)
        hmm_close(m);
    return o;
}

/* Byte counts are parsed signed ("L"): "K" took -5 as 2^64 - 5, which the
 * library then called over its limit, naming a number nobody wrote. */
static int bytes_arg(const char *name, long long v, uint64_t *out)
{
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a number of bytes, 0 or more (0: the default), not %lld", name, v);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int fill_config(hmm_config *cfg, long long size, long long max_size, int cache, PyObject *ttl, int replog,
                       long long max_value, int inline_copies)
{
    memset(cfg, 0, sizeof *cfg);
    uint64_t mv;
    if (bytes_arg("size", size, &cfg->size) || bytes_arg("max_size", max_size, &cfg->max_size) ||
        bytes_arg("max_value", max_value, &mv))
        return -1;
    if (mv > HMM_MAX_VALUE_MAX) {
        PyErr_Format(PyExc_ValueError, "max_value must be at most %llu bytes (HMM_MAX_VALUE_MAX), not %lld",
                     (unsigned long long)HMM_MAX_VALUE_MAX, max_value);
        return -1;
    }
    cfg->max_value = (uint32_t)mv;
    if (cache && inline_copies) {
        PyErr_SetString(PyExc_ValueError, "cache=True and inline=True exclude each other (a cache's gets mark the entry itself)");
        return -1;
    }
    cfg->flags = (cache ? HMM_CACHE : 0) | (replog ? 0 : HMM_NOREPLOG) | (inline_copies ? HMM_INLINE : 0);
    return hmm__py_ttl_ms(ttl, &cfg->default_ttl_ms);
}

PyDoc_STRVAR(open_doc,
"open(path, size=0, max_size=0, cache=False, ttl=None, readonly=False, create=True,\n"
"     exclusive=False, mode=0o600, replog=True, max_value=0, text=False, inline=False) -> Map\n\n"
"Open the map kept in directory path, creating it when missing (create=True).\n"
"size, max_size (bytes; 0 = 64 MiB, no growth), cache (evict instead of full),\n"
"ttl (default seconds to live of entries), replog (keep a replication log),\n"
"max_value (bytes) and inline (the index keeps a copy of entries of up to 16 +\n"
"8 bytes: a get reads one cache line; HMM_INLINE) apply at creation only.  readonly=True never writes a byte;\n"
"exclusive=True fails with ExistsError if the map exists.  text=True returns\n"
"keys and values as str (UTF-8) instead of bytes.  Raises SysError (an OSError),\n"
"CorruptError, IncompatibleError.");

static PyObject *py_open(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "size", "max_size", "cache", "ttl", "readonly", "create",
                             "exclusive", "mode", "replog", "max_value", "text", "inline", NULL};
    PyObject *path = NULL, *ttl = Py_None;
    long long size = 0, max_size = 0, max_value = 0;
    int cache = 0, readonly = 0, create = 1, exclusive = 0, replog = 1, text = 0, inline_copies = 0;
    int mode = 0600;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|$LLpOpppipLpp:open", kwlist, PyUnicode_FSConverter, &path,
                                     &size, &max_size, &cache, &ttl, &readonly, &create, &exclusive, &mode,
                                     &replog, &max_value, &text, &inline_copies))
        return NULL;
    hmm_config cfg;
    if (mode < 0 || mode > 07777) { /* "I" took -1 as 0xffffffff */
        PyErr_Format(PyExc_ValueError, "mode must be permission bits 0..0o7777, not %d", mode);
        Py_DECREF(path);
        return NULL;
    }
    if (fill_config(&cfg, size, max_size, cache, ttl, replog, max_value, inline_copies) != 0) {
        Py_DECREF(path);
        return NULL;
    }
    cfg.flags |= (readonly ? HMM_RDONLY : 0) | (create ? HMM_CREATE : 0) | (exclusive ? HMM_EXCL : 0);
    cfg.mode = mode;
    hmm_t *m = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_open(&m, PyBytes_AS_STRING(path), &cfg);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    return finish_open(rc, m, text);
}

PyDoc_STRVAR(anonymous_doc,
"anonymous(size=0, max_size=0, cache=False, ttl=None, replog=True, max_value=0, text=False,\n"
"          inline=False) -> Map\n\n"
"Make a map in shared anonymous memory (a memfd): processes forked afterwards\n"
"(os.fork, multiprocessing's fork start method, a prefork server's workers)\n"
"share it.  Map.fds() and from_fds() hand it to processes that were not forked\n"
"from this one.  It is gone when the last process closes it.");

static PyObject *py_anonymous(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"size", "max_size", "cache", "ttl", "replog", "max_value", "text", "inline", NULL};
    PyObject *ttl = Py_None;
    long long size = 0, max_size = 0, max_value = 0;
    int cache = 0, replog = 1, text = 0, inline_copies = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$LLpOpLpp:anonymous", kwlist, &size, &max_size, &cache, &ttl,
                                     &replog, &max_value, &text, &inline_copies))
        return NULL;
    hmm_config cfg;
    if (fill_config(&cfg, size, max_size, cache, ttl, replog, max_value, inline_copies) != 0)
        return NULL;
    hmm_t *m = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_open_anon(&m, &cfg);
    Py_END_ALLOW_THREADS
    return finish_open(rc, m, text);
}

PyDoc_STRVAR(from_fds_doc,
"from_fds(fds, readonly=False, text=False) -> Map\n\n"
"Open the anonymous map whose descriptors another process gave (the three\n"
"numbers of its Map.fds(), for instance through socket.send_fds/recv_fds;\n"
"-1 where it has none).  The descriptors are duplicated: close yours after.");

static PyObject *py_from_fds(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"fds", "readonly", "text", NULL};
    PyObject *seq;
    int readonly = 0, text = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$pp:from_fds", kwlist, &seq, &readonly, &text))
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "fds must be a sequence of 3 ints");
    if (!fast)
        return NULL;
    int fds[HMM_FD_COUNT];
    int ok = PySequence_Fast_GET_SIZE(fast) == HMM_FD_COUNT;
    for (int i = 0; ok && i < HMM_FD_COUNT; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        ok = !(v == -1 && PyErr_Occurred()) && v >= -1 && v <= INT32_MAX;
        fds[i] = (int)v;
    }
    Py_DECREF(fast);
    if (!ok) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "fds must be 3 descriptors (map, metrics, log; -1 for none)");
        return NULL;
    }
    hmm_t *m = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_open_fd(&m, fds, readonly ? HMM_RDONLY : 0);
    Py_END_ALLOW_THREADS
    return finish_open(rc, m, text);
}

static PyMethodDef module_methods[] = {
    {"open", (PyCFunction)(void (*)(void))py_open, METH_VARARGS | METH_KEYWORDS, open_doc},
    {"anonymous", (PyCFunction)(void (*)(void))py_anonymous, METH_VARARGS | METH_KEYWORDS, anonymous_doc},
    {"from_fds", (PyCFunction)(void (*)(void))py_from_fds, METH_VARARGS | METH_KEYWORDS, from_fds_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"A persistent, shared, crash-safe hash map in an mmap'ed file (hashmmap).\n\n"
"open(path, ...) maps the map kept in a directory: every process that opens it\n"
"shares it, and it outlives them.  anonymous(...) makes one in shared memory\n"
"for the processes forked afterwards.  A Map is a mutable mapping of bytes to\n"
"bytes (str accepted, as UTF-8).");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "hashmmap", module_doc, -1, module_methods, NULL, NULL, NULL, NULL,
};

/* hashmmap.<pyname>, subclass of Error and of extra (may be NULL). */
static PyObject *add_error(PyObject *mod, const char *pyname, PyObject *extra, const char *doc)
{
    char qual[64];
    snprintf(qual, sizeof qual, "hashmmap.%s", pyname);
    PyObject *bases = extra ? PyTuple_Pack(2, Error, extra) : PyTuple_Pack(1, Error);
    if (!bases)
        return NULL;
    PyObject *cls = PyErr_NewExceptionWithDoc(qual, doc, bases, NULL);
    Py_DECREF(bases);
    if (cls && PyModule_AddObjectRef(mod, pyname, cls) != 0)
        Py_CLEAR(cls);
    return cls;
}

static int add_errors(PyObject *mod)
{
    Error = PyErr_NewExceptionWithDoc("hashmmap.Error", "Base of every error of the hashmmap library.",
                                      PyExc_Exception, NULL);
    if (!Error || PyModule_AddObjectRef(mod, "Error", Error) != 0)
        return -1;
    SysError = add_error(mod, "SysError", PyExc_OSError, "A system error (errno): also an OSError.");
    Err_NOTFOUND = add_error(mod, "NotFoundError", PyExc_KeyError, "Key not found (absent or expired).");
    Err_EXISTS = add_error(mod, "ExistsError", NULL, "The key, or the map (exclusive=True), already exists.");
    Err_MISMATCH = add_error(mod, "MismatchError", NULL, "The entry's version is not the expected one.");
    Err_FULL = add_error(mod, "FullError", NULL, "The map is full (a plain map at its max_size).");
    Err_TOOSMALL = add_error(mod, "TooSmallError", NULL, "Buffer too small (internal; never raised by Map).");
    Err_TOOBIG = add_error(mod, "TooBigError", PyExc_ValueError, "Key or value over the map's limits.");
    Err_NOTNUM = add_error(mod, "NotNumberError", PyExc_ValueError, "The value is not an int64 counter.");
    Err_CORRUPT = add_error(mod, "CorruptError", NULL, "The map's files fail validation.");
    Err_INCOMPAT = add_error(mod, "IncompatibleError", NULL, "Another format version, word size or byte order.");
    Err_BUSY = add_error(mod, "BusyError", NULL, "A writer holds the map and could not be waited for.");
    return SysError && Err_NOTFOUND && Err_EXISTS && Err_MISMATCH && Err_FULL && Err_TOOSMALL && Err_TOOBIG &&
                   Err_NOTNUM && Err_CORRUPT && Err_INCOMPAT && Err_BUSY
               ? 0
               : -1;
}

PyMODINIT_FUNC PyInit_hashmmap(void);
PyMODINIT_FUNC PyInit_hashmmap(void)
{
    if (PyType_Ready(&hmm__MapType) < 0 || PyType_Ready(&hmm__IterType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module_def);
    if (!mod)
        return NULL;
    if (add_errors(mod) != 0 || PyModule_AddObjectRef(mod, "Map", (PyObject *)&hmm__MapType) != 0 ||
        PyModule_AddStringConstant(mod, "__version__", hmm_version(NULL, NULL, NULL)) != 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}

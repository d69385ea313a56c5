/*
 * methods.c - the named methods of hashmmap.Map (map.c has the mapping
 * protocol): get, put, setdefault, incr, getv, cas, ttl, keys/values/items,
 * stats, fds, sync, close and the context manager.
 */
#include "bindings/python/pyhmm.h"

#include <math.h>
#include <string.h>
#include <sys/time.h>

PyDoc_STRVAR(get_doc, "get(key, default=None) -> value\n\nThe value of key, or default when absent or expired.");
static PyObject *m_get(hmm__MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    hmm__pybuf k;
    int rc;
    if (hmm__py_begin(self, args[0], &k) != 0)
        return NULL;
    PyObject *v = hmm__py_fetch(self, &k, NULL, &rc);
    if (!v && rc == HMM_NOTFOUND)
        v = Py_NewRef(nargs > 1 ? args[1] : Py_None);
    else if (!v && rc)
        hmm__py_raise(rc, NULL);
    hmm__py_end(self, &k);
    return v;
}

/* put, cas: the library's code as True (stored) / False (refused: a
 * condition did not hold), or an exception. */
static PyObject *stored(int rc, int refused, PyObject *key)
{
    if (rc == 0)
        Py_RETURN_TRUE;
    if (refused && rc == refused)
        Py_RETURN_FALSE;
    return rc == 1 ? NULL : hmm__py_raise(rc, key);
}

PyDoc_STRVAR(put_doc,
"put(key, value, ttl=None, nx=False, xx=False) -> bool\n\n"
"Store value under key, atomically.  ttl: seconds to live (None: the map's\n"
"default).  nx=True stores only if the key is absent, xx=True only if present;\n"
"returns False when that condition did not hold, else True.");
static PyObject *m_put(hmm__MapObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "value", "ttl", "nx", "xx", NULL};
    PyObject *key, *value, *ttl = Py_None;
    int nx = 0, xx = 0;
    uint64_t ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O$pp:put", kwlist, &key, &value, &ttl, &nx, &xx) ||
        hmm__py_ttl_ms(ttl, &ttl_ms) != 0)
        return NULL;
    if (nx && xx) {
        PyErr_SetString(PyExc_ValueError, "nx and xx exclude each other");
        return NULL;
    }
    hmm__pybuf k;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    int rc = hmm__py_store(self, &k, value, ttl_ms, (nx ? HMM_NX : 0) | (xx ? HMM_XX : 0));
    PyObject *out = stored(rc, nx ? HMM_EXISTS : xx ? HMM_NOTFOUND : 0, NULL);
    hmm__py_end(self, &k);
    return out;
}

/* What a get of the value just stored returns (bytes, or str in text mode). */
static PyObject *stored_as_read(hmm__MapObject *self, PyObject *value)
{
    hmm__pybuf v;
    if (hmm__py_buf_get(value, &v, "value") != 0)
        return NULL;
    PyObject *out = hmm__py_out(self->text, v.view.buf, (size_t)v.view.len);
    hmm__py_buf_release(&v);
    return out;
}

PyDoc_STRVAR(setdefault_doc,
"setdefault(key, default=b'', ttl=None) -> value\n\n"
"The value of key; when absent, store default first (atomically: of several\n"
"processes racing, one stores and all return the same value).");
static PyObject *m_setdefault(hmm__MapObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "default", "ttl", NULL};
    PyObject *key, *dflt = NULL, *ttl = Py_None;
    uint64_t ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:setdefault", kwlist, &key, &dflt, &ttl) ||
        hmm__py_ttl_ms(ttl, &ttl_ms) != 0)
        return NULL;
    hmm__pybuf k;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    PyObject *empty = dflt ? NULL : PyBytes_FromStringAndSize("", 0), *out = NULL;
    int rc = HMM_NOTFOUND;
    /* Absent: store (NX); present: read.  A delete in between sends us
     * round again; bounded, as the library bounds its own retries. */
    for (int round = 0; round < 1000 && rc == HMM_NOTFOUND && !out; round++) {
        rc = hmm__py_store(self, &k, dflt ? dflt : empty, ttl_ms, HMM_NX);
        if (rc == 0)
            out = stored_as_read(self, dflt ? dflt : empty);
        else if (rc == HMM_EXISTS)
            out = hmm__py_fetch(self, &k, NULL, &rc);
    }
    if (!out && rc && rc != 1)
        hmm__py_raise(rc, NULL);
    Py_XDECREF(empty);
    hmm__py_end(self, &k);
    return out;
}

PyDoc_STRVAR(incr_doc,
"incr(key, delta=1) -> int\n\n"
"Add delta to the int64 counter under key (created at 0) and return the new\n"
"value; atomic across processes.  The value reads as decimal text (b'42').\n"
"NotNumberError when the value is not a counter or the sum overflows.");
static PyObject *m_incr(hmm__MapObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "delta", NULL};
    PyObject *key;
    long long delta = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|L:incr", kwlist, &key, &delta))
        return NULL;
    hmm__pybuf k;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    int64_t result = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_incr(self->m, k.view.buf, (size_t)k.view.len, delta, &result);
    Py_END_ALLOW_THREADS
    hmm__py_end(self, &k);
    return rc ? hmm__py_raise(rc, NULL) : PyLong_FromLongLong(result);
}

PyDoc_STRVAR(getv_doc,
"getv(key) -> (value, version)\n\n"
"The value and its version, for cas().  Versions of a key only increase.\n"
"NotFoundError (a KeyError) when absent.");
static PyObject *m_getv(hmm__MapObject *self, PyObject *key)
{
    hmm__pybuf k;
    int rc;
    uint64_t version = 0;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    PyObject *v = hmm__py_fetch(self, &k, &version, &rc), *out = NULL;
    if (v)
        out = Py_BuildValue("(NK)", v, (unsigned long long)version);
    else if (rc)
        hmm__py_raise(rc, key);
    hmm__py_end(self, &k);
    return out;
}

/* "K" took version modulo 2^64, so 2**64 became 0 ("must be absent") and
 * -1 a version no entry has: checked, as the version is an exact number. */
static int version_converter(PyObject *o, void *out)
{
    unsigned long long v = PyLong_Check(o) ? PyLong_AsUnsignedLongLong(o) : (unsigned long long)-1;
    if (!PyLong_Check(o) || (v == (unsigned long long)-1 && PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "version must be an int from 0 to 2**64-1 (from getv), not %.100R", o);
        return 0;
    }
    *(unsigned long long *)out = v;
    return 1;
}

PyDoc_STRVAR(cas_doc,
"cas(key, value, version, ttl=None) -> bool\n\n"
"Store value only if the key's version is still version (from getv; 0: the\n"
"key must be absent).  False when another write came first.");
static PyObject *m_cas(hmm__MapObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "value", "version", "ttl", NULL};
    PyObject *key, *value, *ttl = Py_None;
    unsigned long long version;
    uint64_t ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO&|O:cas", kwlist, &key, &value, version_converter, &version, &ttl) ||
        hmm__py_ttl_ms(ttl, &ttl_ms) != 0)
        return NULL;
    hmm__pybuf k, v;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    int rc = 1;
    if (hmm__py_buf_get(value, &v, "value") == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = hmm_cas(self->m, k.view.buf, (size_t)k.view.len, v.view.buf, (size_t)v.view.len, ttl_ms, version);
        Py_END_ALLOW_THREADS
        hmm__py_buf_release(&v);
    }
    PyObject *out = stored(rc, HMM_MISMATCH, NULL);
    hmm__py_end(self, &k);
    return out;
}

PyDoc_STRVAR(ttl_doc,
"ttl(key) -> float or None\n\n"
"Seconds key has left to live, None when it never expires.  KeyError when absent.");
static PyObject *m_ttl(hmm__MapObject *self, PyObject *key)
{
    hmm__pybuf k;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    hmm_entry_info info;
    char none;
    size_t vlen = 0;
    int rc = hmm_get_info(self->m, k.view.buf, (size_t)k.view.len, &none, &vlen, &info);
    PyObject *out = NULL;
    if (rc == 0 || rc == HMM_TOOSMALL) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        double now_ms = (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
        out = info.expire_ms ? PyFloat_FromDouble(fmax(0.0, ((double)info.expire_ms - now_ms) / 1000.0))
                             : Py_NewRef(Py_None);
    } else {
        hmm__py_raise(rc, key);
    }
    hmm__py_end(self, &k);
    return out;
}

PyDoc_STRVAR(keys_doc, "keys() -> iterator over the keys (weakly consistent, unspecified order)");
static PyObject *m_keys(hmm__MapObject *self, PyObject *unused)
{
    return hmm__py_iter_new(self, HMM__ITER_KEYS);
}
PyDoc_STRVAR(values_doc, "values() -> iterator over the values");
static PyObject *m_values(hmm__MapObject *self, PyObject *unused)
{
    return hmm__py_iter_new(self, HMM__ITER_VALUES);
}
PyDoc_STRVAR(items_doc, "items() -> iterator over (key, value) pairs");
static PyObject *m_items(hmm__MapObject *self, PyObject *unused)
{
    return hmm__py_iter_new(self, HMM__ITER_ITEMS);
}

static int put_u64(PyObject *d, const char *name, uint64_t v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    int rc = o ? PyDict_SetItemString(d, name, o) : -1;
    Py_XDECREF(o);
    return rc;
}

PyDoc_STRVAR(stats_doc,
"stats() -> dict\n\n"
"Sizes (items, bytes_used, bytes_total, size, max_size, file_size, ...), the\n"
"event counters of every process (gets, hits, misses, puts, evictions, ...),\n"
"and cache/readonly/replog/inline as booleans.");
static PyObject *m_stats(hmm__MapObject *self, PyObject *unused)
{
    hmm_stats st;
    if (hmm__py_stat(self, &st) != 0)
        return NULL;
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    int bad = put_u64(d, "items", st.items) || put_u64(d, "bytes_used", st.bytes_used) ||
              put_u64(d, "bytes_total", st.bytes_total) || put_u64(d, "size", st.size) ||
              put_u64(d, "max_size", st.max_size) || put_u64(d, "file_size", st.file_size) ||
              put_u64(d, "index_slots", st.index_slots) || put_u64(d, "generation", st.generation) ||
              put_u64(d, "default_ttl_ms", st.default_ttl_ms) || put_u64(d, "max_key", st.max_key) ||
              put_u64(d, "max_value", st.max_value) || put_u64(d, "processes", st.nprocs) ||
              put_u64(d, "format_version", st.format_version) ||
              PyDict_SetItemString(d, "cache", (st.flags & HMM_CACHE) ? Py_True : Py_False) ||
              PyDict_SetItemString(d, "readonly", (st.flags & HMM_RDONLY) ? Py_True : Py_False) ||
              PyDict_SetItemString(d, "replog", (st.flags & HMM_NOREPLOG) ? Py_False : Py_True) ||
              PyDict_SetItemString(d, "inline", (st.flags & HMM_INLINE) ? Py_True : Py_False);
    for (int i = 0; !bad && i < HMM_COUNTER_COUNT; i++)
        bad = put_u64(d, hmm_counter_name(i), st.counters[i]);
    if (bad)
        Py_CLEAR(d);
    return d;
}

PyDoc_STRVAR(fds_doc,
"fds() -> (map_fd, metrics_fd, log_fd)\n\n"
"The descriptors of an anonymous map (-1 where it has none), to hand it to a\n"
"process that was not forked from this one: socket.send_fds() them and call\n"
"hashmmap.from_fds() there.  They belong to the map: do not close them.");
static PyObject *m_fds(hmm__MapObject *self, PyObject *unused)
{
    if (hmm__py_map_enter(self) != 0)
        return NULL;
    int fds[HMM_FD_COUNT];
    int rc = hmm_fd(self->m, fds);
    hmm__py_map_leave(self);
    return rc ? hmm__py_raise(rc, NULL) : Py_BuildValue("(iii)", fds[0], fds[1], fds[2]);
}

PyDoc_STRVAR(sync_doc, "sync()\n\nFlush the map to stable storage (msync + fsync); a no-op for anonymous maps.");
static PyObject *m_sync(hmm__MapObject *self, PyObject *unused)
{
    if (hmm__py_map_enter(self) != 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_sync(self->m);
    Py_END_ALLOW_THREADS
    hmm__py_map_leave(self);
    return rc ? hmm__py_raise(rc, NULL) : Py_NewRef(Py_None);
}

PyDoc_STRVAR(close_doc,
"close()\n\n"
"Close the map; later calls raise ValueError.  Calls still running in other\n"
"threads and open iterators finish first (the map is unmapped after them).\n"
"Closing twice is harmless.  The map's data stays in its files.");
static PyObject *m_close(hmm__MapObject *self, PyObject *unused)
{
    if (!self->closed) {
        self->closed = 1;
        hmm__py_map_leave(self);
    }
    return Py_NewRef(Py_None);
}

PyDoc_STRVAR(enter_doc, "__enter__() -> self");
static PyObject *m_enter(hmm__MapObject *self, PyObject *unused)
{
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed map");
        return NULL;
    }
    return Py_NewRef(self);
}

PyDoc_STRVAR(exit_doc, "__exit__(*exc) -> False\n\nclose() the map.");
static PyObject *m_exit(hmm__MapObject *self, PyObject *args)
{
    Py_XDECREF(m_close(self, NULL));
    Py_RETURN_FALSE;
}

PyMethodDef hmm__map_methods[] = {
    {"get", (PyCFunction)(void (*)(void))m_get, METH_FASTCALL, get_doc},
    {"put", (PyCFunction)(void (*)(void))m_put, METH_VARARGS | METH_KEYWORDS, put_doc},
    {"setdefault", (PyCFunction)(void (*)(void))m_setdefault, METH_VARARGS | METH_KEYWORDS, setdefault_doc},
    {"incr", (PyCFunction)(void (*)(void))m_incr, METH_VARARGS | METH_KEYWORDS, incr_doc},
    {"getv", (PyCFunction)m_getv, METH_O, getv_doc},
    {"cas", (PyCFunction)(void (*)(void))m_cas, METH_VARARGS | METH_KEYWORDS, cas_doc},
    {"ttl", (PyCFunction)m_ttl, METH_O, ttl_doc},
    {"keys", (PyCFunction)m_keys, METH_NOARGS, keys_doc},
    {"values", (PyCFunction)m_values, METH_NOARGS, values_doc},
    {"items", (PyCFunction)m_items, METH_NOARGS, items_doc},
    {"stats", (PyCFunction)m_stats, METH_NOARGS, stats_doc},
    {"fds", (PyCFunction)m_fds, METH_NOARGS, fds_doc},
    {"sync", (PyCFunction)m_sync, METH_NOARGS, sync_doc},
    {"close", (PyCFunction)m_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)m_enter, METH_NOARGS, enter_doc},
    {"__exit__", (PyCFunction)m_exit, METH_VARARGS, exit_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *get_closed(hmm__MapObject *self, void *unused)
{
    return PyBool_FromLong(self->closed);
}
static PyObject *get_text(hmm__MapObject *self, void *unused)
{
    return PyBool_FromLong(self->text);
}

PyGetSetDef hmm__map_getset[] = {
    {"closed", (getter)get_closed, NULL, "True after close()", NULL},
    {"text", (getter)get_text, NULL, "True when keys and values come back as str", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyObject *hmm__map_repr(hmm__MapObject *self)
{
    return PyUnicode_FromFormat("<hashmmap.Map%s%s at %p>", self->closed ? " closed" : "",
                                self->text ? " text" : "", (void *)self);
}

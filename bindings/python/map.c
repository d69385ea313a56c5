/*
 * map.c - hashmmap.Map: a mutable mapping of bytes to bytes in a hashmmap.
 *
 * The GIL: writes (puts, deletes, incr, cas), stat, sync and iteration
 * steps run without it, since they may wait for a stripe lock or repair a
 * dead process's work.  Gets keep it for values that fit the 512-byte stack
 * buffer: a lock-free get costs less than releasing and taking the GIL
 * (bench/README.md), and waits only in the rare fallback of a read that
 * kept meeting writers.  Larger values are copied without it.
 */
#include "bindings/python/pyhmm.h"

#include <string.h>

#define GET_STACK_BYTES 512

int hmm__py_map_enter(hmm__MapObject *self)
{
    if (self->closed || !self->m) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed map");
        return -1;
    }
    self->users++;
    return 0;
}

void hmm__py_map_leave(hmm__MapObject *self)
{
    if (--self->users == 0 && self->m) {
        hmm_t *m = self->m;
        self->m = NULL;
        Py_BEGIN_ALLOW_THREADS
        hmm_close(m);
        Py_END_ALLOW_THREADS
    }
}

PyObject *hmm__py_map_new(hmm_t *m, int text)
{
    hmm__MapObject *self = PyObject_New(hmm__MapObject, &hmm__MapType);
    if (!self)
        return NULL;
    self->m = m;
    self->closed = 0;
    self->text = text;
    self->users = 1; /* the Map itself, until close() */
    return (PyObject *)self;
}

static void map_dealloc(hmm__MapObject *self)
{
    if (!self->closed) {
        self->closed = 1;
        hmm__py_map_leave(self);
    }
    PyObject_Free(self);
}

/* The value of key as bytes (or str); NULL with *rc set when the library
 * refused, NULL with *rc 0 when Python failed.  version may be NULL. */
PyObject *hmm__py_fetch(hmm__MapObject *self, const hmm__pybuf *k, uint64_t *version, int *rc)
{
    char stack[GET_STACK_BYTES];
    size_t vlen = sizeof stack;
    const void *kp = k->view.buf;
    size_t kl = (size_t)k->view.len;
    *rc = version ? hmm_getv(self->m, kp, kl, stack, &vlen, version) : hmm_get(self->m, kp, kl, stack, &vlen);
    if (*rc == 0)
        return hmm__py_out(self->text, stack, vlen);
    /* Too large for the stack: a buffer of the size the library named; the
     * value may change size meanwhile, so try again (bounded). */
    for (int tries = 0; *rc == HMM_TOOSMALL && tries < 64; tries++) {
        size_t cap = vlen;
        char *buf = PyMem_RawMalloc(cap ? cap : 1);
        if (!buf) {
            *rc = 0;
            return PyErr_NoMemory();
        }
        Py_BEGIN_ALLOW_THREADS
        *rc = version ? hmm_getv(self->m, kp, kl, buf, &vlen, version) : hmm_get(self->m, kp, kl, buf, &vlen);
        Py_END_ALLOW_THREADS
        PyObject *out = *rc == 0 ? hmm__py_out(self->text, buf, vlen) : NULL;
        PyMem_RawFree(buf);
        if (*rc == 0) {
            *rc = 0;
            return out;
        }
    }
    return NULL;
}

/* Enter the map, convert key: the common start of every keyed method. */
int hmm__py_begin(hmm__MapObject *self, PyObject *key, hmm__pybuf *k)
{
    if (hmm__py_map_enter(self) != 0)
        return -1;
    if (hmm__py_buf_get(key, k, "key") != 0) {
        hmm__py_map_leave(self);
        return -1;
    }
    return 0;
}

void hmm__py_end(hmm__MapObject *self, hmm__pybuf *k)
{
    hmm__py_buf_release(k);
    hmm__py_map_leave(self);
}

static PyObject *map_subscript(hmm__MapObject *self, PyObject *key)
{
    hmm__pybuf k;
    int rc;
    if (hmm__py_begin(self, key, &k) != 0)
        return NULL;
    PyObject *v = hmm__py_fetch(self, &k, NULL, &rc);
    if (!v && rc)
        hmm__py_raise(rc, key);
    hmm__py_end(self, &k);
    return v;
}

/* put(key, value, ttl_ms, flags) without the GIL; 0 or the library's code. */
int hmm__py_store(hmm__MapObject *self, const hmm__pybuf *k, PyObject *value, uint64_t ttl_ms, unsigned flags)
{
    hmm__pybuf v;
    if (hmm__py_buf_get(value, &v, "value") != 0)
        return 1; /* Python error set */
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_put(self->m, k->view.buf, (size_t)k->view.len, v.view.buf, (size_t)v.view.len, ttl_ms, flags);
    Py_END_ALLOW_THREADS
    hmm__py_buf_release(&v);
    return rc;
}

static int map_ass_subscript(hmm__MapObject *self, PyObject *key, PyObject *value)
{
    hmm__pybuf k;
    if (hmm__py_begin(self, key, &k) != 0)
        return -1;
    int rc;
    if (value) {
        rc = hmm__py_store(self, &k, value, 0, 0);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = hmm_del(self->m, k.view.buf, (size_t)k.view.len);
        Py_END_ALLOW_THREADS
    }
    if (rc < 0)
        hmm__py_raise(rc, key);
    hmm__py_end(self, &k);
    return rc == 0 ? 0 : -1;
}

static int map_contains(hmm__MapObject *self, PyObject *key)
{
    hmm__pybuf k;
    if (hmm__py_begin(self, key, &k) != 0)
        return -1;
    char none;
    size_t vlen = 0; /* HMM_TOOSMALL also says: present */
    int rc = hmm_get(self->m, k.view.buf, (size_t)k.view.len, &none, &vlen);
    int out = rc == 0 || rc == HMM_TOOSMALL ? 1 : rc == HMM_NOTFOUND ? 0 : -1;
    if (out < 0)
        hmm__py_raise(rc, NULL);
    hmm__py_end(self, &k);
    return out;
}

int hmm__py_stat(hmm__MapObject *self, hmm_stats *st)
{
    if (hmm__py_map_enter(self) != 0)
        return -1;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_stat(self->m, st);
    Py_END_ALLOW_THREADS
    hmm__py_map_leave(self);
    if (rc) {
        hmm__py_raise(rc, NULL);
        return -1;
    }
    return 0;
}

static Py_ssize_t map_length(hmm__MapObject *self)
{
    hmm_stats st;
    if (hmm__py_stat(self, &st) != 0)
        return -1;
    return (Py_ssize_t)st.items;
}

static PyObject *map_iter(hmm__MapObject *self)
{
    return hmm__py_iter_new(self, HMM__ITER_KEYS);
}

static PyMappingMethods map_as_mapping = {
    .mp_length = (lenfunc)map_length,
    .mp_subscript = (binaryfunc)map_subscript,
    .mp_ass_subscript = (objobjargproc)map_ass_subscript,
};
static PySequenceMethods map_as_sequence = {
    .sq_contains = (objobjproc)map_contains,
};

PyDoc_STRVAR(map_doc,
"A hashmmap map, from hashmmap.open(), anonymous() or from_fds().\n\n"
"m[k], m[k] = v, del m[k], k in m, len(m) and iteration (keys; weakly\n"
"consistent: a key present throughout is seen once) work as for a dict.\n"
"Keys and values are bytes (str is stored as UTF-8); with text=True they come\n"
"back as str.  len() counts entries not yet reclaimed, expired ones included.\n"
"A Map may be used by many threads, and after os.fork() in the child.");

PyTypeObject hmm__MapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hashmmap.Map",
    .tp_basicsize = sizeof(hmm__MapObject),
    .tp_dealloc = (destructor)map_dealloc,
    .tp_repr = (reprfunc)hmm__map_repr,
    .tp_as_sequence = &map_as_sequence,
    .tp_as_mapping = &map_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = map_doc,
    .tp_iter = (getiterfunc)map_iter,
    .tp_methods = hmm__map_methods,
    .tp_getset = hmm__map_getset,
};

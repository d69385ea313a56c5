/*
 * pyhmm.h - what the files of the CPython module `hashmmap` share.
 *
 * module.c: the module, its functions (open, anonymous, from_fds) and the
 * exception hierarchy; map.c: the Map type and its mapping protocol;
 * methods.c: Map's named methods (get, put, incr, cas, stats, close...);
 * iter.c: iteration over keys, values or items; convert.c: keys, values and
 * TTLs between Python objects and bytes.
 *
 * A Map's hmm_t is closed when nothing uses it any more: `users` counts the
 * Map itself (until close() or deallocation), every open iterator and every
 * call that runs without the GIL.  It changes only with the GIL held, so
 * close() in one thread never pulls the map from under a put in another.
 */
#ifndef PYHMM_H
#define PYHMM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <hashmmap.h>

typedef struct {
    PyObject_HEAD
    hmm_t *m;
    int closed;          /* close() was called: methods raise ValueError */
    int text;            /* keys and values come back as str (UTF-8, surrogateescape) */
    Py_ssize_t users;    /* see above; hmm_close when it drops to 0 */
} hmm__MapObject;

typedef struct {
    Py_buffer view;
    int held;
} hmm__pybuf;

extern PyTypeObject hmm__MapType;
extern PyTypeObject hmm__IterType;

/* module.c */
/* Raise the exception of rc (hmm_strerror plus hmm_last_error as message).
 * key: for HMM_NOTFOUND, the key the KeyError names (may be NULL).  Returns NULL. */
PyObject *hmm__py_raise(int rc, PyObject *key);
PyObject *hmm__py_map_new(hmm_t *m, int text);

/* map.c: a use of the map that may outlive the GIL (a call, an iterator). */
int hmm__py_map_enter(hmm__MapObject *self); /* -1 with ValueError when closed */
void hmm__py_map_leave(hmm__MapObject *self);

/* map.c: the steps every keyed method shares. */
int hmm__py_begin(hmm__MapObject *self, PyObject *key, hmm__pybuf *k); /* enter + key; -1: error set */
void hmm__py_end(hmm__MapObject *self, hmm__pybuf *k);
/* The value of key (bytes or str); NULL with *rc set when the library
 * refused, NULL with *rc 0 when Python failed.  version may be NULL. */
PyObject *hmm__py_fetch(hmm__MapObject *self, const hmm__pybuf *k, uint64_t *version, int *rc);
/* hmm_put without the GIL: 0, the library's code, or 1 with a Python error. */
int hmm__py_store(hmm__MapObject *self, const hmm__pybuf *k, PyObject *value, uint64_t ttl_ms, unsigned flags);
int hmm__py_stat(hmm__MapObject *self, hmm_stats *st); /* -1: error set */

/* methods.c: the named methods and attributes of Map. */
extern PyMethodDef hmm__map_methods[];
extern PyGetSetDef hmm__map_getset[];
PyObject *hmm__map_repr(hmm__MapObject *self);

/* iter.c */
enum { HMM__ITER_KEYS, HMM__ITER_VALUES, HMM__ITER_ITEMS };
PyObject *hmm__py_iter_new(hmm__MapObject *map, int kind);

/* convert.c: bytes-like objects as they are, str as UTF-8 (surrogateescape,
 * so str decoded from any bytes encodes back to the same bytes). */
int hmm__py_buf_get(PyObject *o, hmm__pybuf *b, const char *what); /* 0, or -1 with TypeError */
void hmm__py_buf_release(hmm__pybuf *b);
PyObject *hmm__py_out(int text, const void *p, size_t len); /* bytes, or str in text mode */
/* Python seconds (None: 0, the map's default) to ms for the library; -1 with ValueError. */
int hmm__py_ttl_ms(PyObject *ttl, uint64_t *ms);

#endif

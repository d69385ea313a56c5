/*
 * iter.c - iterating over a Map: keys, values or (key, value) items.
 *
 * One hmm_cursor per iterator, weakly consistent as the library's: a key
 * present for the whole iteration comes once, no key twice; writers are
 * never blocked.  Each step copies the entry without the GIL.  The iterator
 * keeps the map in use (pyhmm.h), so close() waits for it to end.
 */
#include "bindings/python/pyhmm.h"

typedef struct {
    PyObject_HEAD
    hmm__MapObject *map;  /* strong reference; NULL once exhausted */
    hmm_cursor *c;
    int kind;             /* HMM__ITER_* */
    int running;          /* a step is under way in another thread */
} hmm__IterObject;

PyObject *hmm__py_iter_new(hmm__MapObject *map, int kind)
{
    if (hmm__py_map_enter(map) != 0)
        return NULL;
    hmm_cursor *c = NULL;
    int rc = hmm_cursor_open(map->m, &c);
    if (rc) {
        hmm__py_map_leave(map);
        return hmm__py_raise(rc, NULL);
    }
    hmm__IterObject *it = PyObject_New(hmm__IterObject, &hmm__IterType);
    if (!it) {
        hmm_cursor_close(c);
        hmm__py_map_leave(map);
        return NULL;
    }
    it->map = (hmm__MapObject *)Py_NewRef(map);
    it->c = c;
    it->kind = kind;
    it->running = 0;
    return (PyObject *)it;
}

/* The end (or an error): give the cursor and the map back. */
static void iter_finish(hmm__IterObject *it)
{
    if (it->c)
        hmm_cursor_close(it->c);
    it->c = NULL;
    if (it->map) {
        hmm__MapObject *map = it->map;
        it->map = NULL;
        hmm__py_map_leave(map);
        Py_DECREF(map);
    }
}

static void iter_dealloc(hmm__IterObject *it)
{
    iter_finish(it);
    PyObject_Free(it);
}

static PyObject *make_item(hmm__IterObject *it, const void *k, size_t kl, const void *v, size_t vl)
{
    int text = it->map->text;
    if (it->kind == HMM__ITER_KEYS)
        return hmm__py_out(text, k, kl);
    if (it->kind == HMM__ITER_VALUES)
        return hmm__py_out(text, v, vl);
    PyObject *ko = hmm__py_out(text, k, kl);
    PyObject *vo = ko ? hmm__py_out(text, v, vl) : NULL;
    if (!vo) {
        Py_XDECREF(ko);
        return NULL;
    }
    return Py_BuildValue("(NN)", ko, vo);
}

static PyObject *iter_next(hmm__IterObject *it)
{
    if (!it->c)
        return NULL; /* exhausted: StopIteration */
    if (it->running) {
        PyErr_SetString(PyExc_RuntimeError, "hashmmap iterator already executing in another thread");
        return NULL;
    }
    const void *k, *v;
    size_t kl, vl;
    int rc;
    it->running = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = hmm_cursor_next(it->c, &k, &kl, &v, &vl);
    Py_END_ALLOW_THREADS
    it->running = 0;
    if (rc == HMM_NOTFOUND) {
        iter_finish(it);
        return NULL;
    }
    if (rc) {
        iter_finish(it);
        return hmm__py_raise(rc, NULL);
    }
    return make_item(it, k, kl, v, vl);
}

PyTypeObject hmm__IterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hashmmap.MapIterator",
    .tp_basicsize = sizeof(hmm__IterObject),
    .tp_dealloc = (destructor)iter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Iterator over a hashmmap.Map (keys, values or items).",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)iter_next,
};

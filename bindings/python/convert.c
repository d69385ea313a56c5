/*
 * convert.c - keys, values and TTLs between Python and the library.
 *
 * In: bytes, bytearray, memoryview (any bytes-like object) as they are;
 * str as UTF-8.  Out: bytes, or in a map opened with text=True, str decoded
 * from UTF-8.  Both directions use the surrogateescape error handler, so a
 * str read from bytes that are not UTF-8 writes back the very same bytes.
 */
#include "bindings/python/pyhmm.h"

#include <math.h>

int hmm__py_buf_get(PyObject *o, hmm__pybuf *b, const char *what)
{
    b->held = 0;
    if (PyUnicode_Check(o)) {
        /* The cached UTF-8 form when there is one (no copy); a str with
         * lone surrogates goes through surrogateescape into a new bytes. */
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s) {
            PyBuffer_FillInfo(&b->view, o, (void *)s, n, 1, PyBUF_SIMPLE);
            b->held = 1;
            return 0;
        }
        PyErr_Clear();
        PyObject *enc = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
        if (!enc)
            return -1;
        int rc = PyObject_GetBuffer(enc, &b->view, PyBUF_SIMPLE);
        Py_DECREF(enc); /* the view holds its own reference */
        if (rc == 0)
            b->held = 1;
        return rc;
    }
    if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like or str, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    b->held = 1;
    return 0;
}

void hmm__py_buf_release(hmm__pybuf *b)
{
    if (b->held)
        PyBuffer_Release(&b->view);
    b->held = 0;
}

PyObject *hmm__py_out(int text, const void *p, size_t len)
{
    if (text)
        return PyUnicode_DecodeUTF8(p, (Py_ssize_t)len, "surrogateescape");
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)len);
}

int hmm__py_ttl_ms(PyObject *ttl, uint64_t *ms)
{
    *ms = 0;
    if (!ttl || ttl == Py_None)
        return 0;
    double s = PyFloat_AsDouble(ttl);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    /* Seconds, as time.time() counts; rounded up so a TTL never ends early. */
    if (!(s > 0) || s > 1e15) {
        PyErr_SetString(PyExc_ValueError, "ttl must be a positive number of seconds (or None)");
        return -1;
    }
    double v = ceil(s * 1000.0);
    *ms = v < 1 ? 1 : (uint64_t)v;
    return 0;
}

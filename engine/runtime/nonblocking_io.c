/* The built form of nonblocking_io.py (see its docstring): os.read and os.write for
 * non-blocking descriptors, without releasing the GIL and without a fresh buffer per read. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <unistd.h>

/* Reads up to this size land here first; the hot path reads at most 64 KiB at a time. */
#define KEPT_SIZE 65536
static char kept[KEPT_SIZE];

static int
descriptor_of(PyObject *object, int *fd)
{
    long value = PyLong_AsLong(object);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "file descriptor out of range");
        return -1;
    }
    *fd = (int)value;
    return 0;
}

static PyObject *
os_error(int error)
{
    errno = error;  /* as the call left it: freeing memory since may have changed it */
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *
read_larger(int fd, Py_ssize_t size)
{
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, size);
    if (bytes == NULL) {
        return NULL;
    }
    for (;;) {
        ssize_t got = read(fd, PyBytes_AS_STRING(bytes), (size_t)size);
        if (got >= 0) {
            if (got != size && _PyBytes_Resize(&bytes, got) < 0) {
                return NULL;
            }
            return bytes;
        }
        int error = errno;
        /* A signal interrupted the call: its Python handler runs (and may raise), then retry. */
        if (error != EINTR || PyErr_CheckSignals() < 0) {
            Py_DECREF(bytes);
            return PyErr_Occurred() ? NULL : os_error(error);
        }
    }
}

static PyObject *
nonblocking_read(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "read expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    if (descriptor_of(args[0], &fd) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        errno = EINVAL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (size > KEPT_SIZE) {
        return read_larger(fd, size);
    }
    for (;;) {
        ssize_t got = read(fd, kept, (size_t)size);
        if (got >= 0) {
            return PyBytes_FromStringAndSize(kept, got);
        }
        int error = errno;
        if (error != EINTR || PyErr_CheckSignals() < 0) {
            return PyErr_Occurred() ? NULL : os_error(error);
        }
    }
}

static PyObject *
nonblocking_write(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    Py_buffer data;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "write expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    if (descriptor_of(args[0], &fd) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    for (;;) {
        ssize_t sent = write(fd, data.buf, (size_t)data.len);
        if (sent >= 0) {
            PyBuffer_Release(&data);
            return PyLong_FromSsize_t(sent);
        }
        int error = errno;
        if (error != EINTR || PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&data);
            return PyErr_Occurred() ? NULL : os_error(error);
        }
    }
}

static PyMethodDef methods[] = {
    {"read", (PyCFunction)(void (*)(void))nonblocking_read, METH_FASTCALL,
     "read(fd, size) -> bytes: os.read for a non-blocking descriptor, GIL kept."},
    {"write", (PyCFunction)(void (*)(void))nonblocking_write, METH_FASTCALL,
     "write(fd, data) -> int: os.write for a non-blocking descriptor, GIL kept."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "passerelle.engine.runtime.nonblocking_io",
    .m_doc = "os.read and os.write for non-blocking descriptors, without releasing the GIL.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit_nonblocking_io(void)
{
    return PyModule_Create(&definition);
}

/* The server's two loops that Python and numpy are slowest at, per request:
 *
 * read_numbers: a request's values (a list from the JSON) as float64, refusing anything but
 * finite ints and floats, in one pass. numpy's conversion of a list plus a check of every
 * value's type first took 20 us for 400 values; this takes 1.
 *
 * Walker: the walk through a compiled tree ensemble (compiled.Trees): for each row, every tree
 * from its root to a leaf, the leaf's values added to the row's totals in tree order.
 * In C because numpy pays per call, not per node: walking 100 trees one level at a time for
 * all rows is about ten numpy calls per level, 17 us for one row and 450 us for 100, where this
 * loop takes 1 us and 70 us. The answers are numpy's (and scikit-learn's) to the last bit: the
 * same comparisons on the same float32-rounded inputs, the leaf values added one tree after
 * another (strictly in order, no reassociation: built without -ffast-math).
 *
 * The arrays come from a file, so nothing is trusted: Walker() checks every child and feature
 * index once, and each call checks that the rows are wide enough, so no walk reads outside
 * them. Walks are bounded by the deepest tree's depth even if a crafted file has cycles. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>

/* Trees walked side by side: their next nodes' loads do not wait on each other, so the CPU
 * overlaps them (one tree at a time is a chain of dependent loads, three per level). */
#define LANES 16

typedef struct {
    PyObject_HEAD
    Py_buffer children, feature, threshold, value, roots;
    Py_ssize_t slots, outputs, trees, depth, features_needed;
    int float32;
} Walker;

static int take_buffer(PyObject *array, Py_buffer *view, const char *format, int ndim,
                       const char *name) {
    if (PyObject_GetBuffer(array, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != 8 || strcmp(view->format, format) != 0 || view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be a %d-dimensional array of %s", name, ndim,
                     format[0] == 'd' ? "float64" : "int64");
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static void Walker_dealloc(Walker *self) {
    PyBuffer_Release(&self->children);
    PyBuffer_Release(&self->feature);
    PyBuffer_Release(&self->threshold);
    PyBuffer_Release(&self->value);
    PyBuffer_Release(&self->roots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int fail(const char *message) {
    PyErr_SetString(PyExc_ValueError, message);
    return -1;
}

static int Walker_init(Walker *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"children", "feature", "threshold", "value", "roots", "depth",
                               "float32", NULL};
    PyObject *children, *feature, *threshold, *value, *roots;
    Py_ssize_t depth;
    int float32;
    if (self->children.obj != NULL)
        return fail("a Walker is initialized once");
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOnp", keywords, &children, &feature,
                                     &threshold, &value, &roots, &depth, &float32))
        return -1;
    /* "l" is int64 (numpy's intp) on the 64-bit platforms this builds for. */
    if (take_buffer(children, &self->children, "l", 1, "children") < 0 ||
        take_buffer(feature, &self->feature, "l", 1, "feature") < 0 ||
        take_buffer(threshold, &self->threshold, "d", 1, "threshold") < 0 ||
        take_buffer(value, &self->value, "d", 2, "value") < 0 ||
        take_buffer(roots, &self->roots, "l", 1, "roots") < 0)
        return -1;
    Py_ssize_t slots = self->children.shape[0];
    if (self->feature.shape[0] != slots || self->threshold.shape[0] != slots ||
        self->value.shape[0] != slots)
        return fail("children, feature, threshold and value must have one entry per slot");
    if (self->value.shape[1] < 1)
        return fail("value must have at least one output");
    if (depth < 0)
        return fail("depth must not be negative");
    const Py_ssize_t *child = self->children.buf, *split = self->feature.buf,
                     *root = self->roots.buf;
    Py_ssize_t features_needed = 0;
    for (Py_ssize_t slot = 0; slot < slots; slot++) {
        /* A step reads child[slot + 1] at most, so a child (a node's first slot) is below the
         * last slot. */
        if (child[slot] < 0 || child[slot] >= slots - 1)
            return fail("a child is outside the trees");
        if (split[slot] < 0)
            return fail("a split feature is negative");
        if (split[slot] >= features_needed)
            features_needed = split[slot] + 1;
    }
    for (Py_ssize_t tree = 0; tree < self->roots.shape[0]; tree++)
        if (root[tree] < 0 || root[tree] >= slots - 1)
            return fail("a root is outside the trees");
    self->slots = slots;
    self->outputs = self->value.shape[1];
    self->trees = self->roots.shape[0];
    self->depth = depth;
    self->features_needed = features_needed;
    self->float32 = float32;
    return 0;
}

/* The smallest float64 that becomes infinity as float32 (FLT_MAX plus half its last step). */
static double float32_overflow(void) { return ldexp(1.0, 128) - ldexp(1.0, 103); }

/* Walks `lanes` trees from `slot` (their roots) to their leaves, side by side. Called with
 * the constant LANES for full blocks, so the compiler unrolls the lanes and keeps them in
 * registers. A leaf's children are the leaf itself: a walk that reached one stays there, and
 * once no lane moves, all are at leaves. */
static inline void walk(Py_ssize_t *slot, Py_ssize_t lanes, const double *features,
                        const Py_ssize_t *child, const Py_ssize_t *split,
                        const double *threshold, Py_ssize_t depth) {
    for (Py_ssize_t level = 0; level < depth; level++) {
        Py_ssize_t moved = 0;
        for (Py_ssize_t lane = 0; lane < lanes; lane++) {
            Py_ssize_t at = slot[lane];
            Py_ssize_t next = child[at + (features[split[at]] > threshold[at])];
            moved |= next ^ at;
            slot[lane] = next;
        }
        if (!moved)
            break;
    }
}

/* add(x, out, divisor): adds every tree's leaf values for each row of x (rows, features) to
 * out (rows, outputs), then divides out by divisor (a forest's mean: scikit-learn divides the
 * sum once, at the end). OverflowError when a float32 model is given a value beyond float32. */
static PyObject *Walker_add(Walker *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->children.obj == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Walker was not initialized");
        return NULL;
    }
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add(x, out, divisor) takes two arrays and a number");
        return NULL;
    }
    double divisor = PyFloat_AsDouble(args[2]);
    if (divisor == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer x_view, out_view;
    if (PyObject_GetBuffer(args[0], &x_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &out_view,
                           PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&x_view);
        return NULL;
    }
    PyObject *result = NULL;
    double *x = NULL;
    if (strcmp(x_view.format, "d") != 0 || x_view.ndim != 2 ||
        strcmp(out_view.format, "d") != 0 || out_view.ndim != 2) {
        PyErr_SetString(PyExc_ValueError, "x and out must be 2-dimensional float64 arrays");
        goto done;
    }
    Py_ssize_t rows = x_view.shape[0], width = x_view.shape[1], outputs = self->outputs;
    if (width < self->features_needed) {
        PyErr_Format(PyExc_ValueError, "the trees split on %zd features; x has %zd",
                     self->features_needed, width);
        goto done;
    }
    if (out_view.shape[0] != rows || out_view.shape[1] != outputs) {
        PyErr_Format(PyExc_ValueError, "out must be (%zd, %zd)", rows, outputs);
        goto done;
    }
    /* scikit-learn's trees compare float32 inputs: rounded here, in a copy, as its own checks
     * do, and refused where it refuses them. Float64 trees read the rows as given. */
    const double *rows_read = x_view.buf;
    if (self->float32) {
        Py_ssize_t count = rows * width;
        x = PyMem_Malloc((count > 0 ? count : 1) * sizeof(double));
        if (x == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        double limit = float32_overflow();
        for (Py_ssize_t i = 0; i < count; i++) {
            if (!(fabs(rows_read[i]) < limit)) {
                PyErr_SetString(PyExc_OverflowError, "a value is beyond float32's range");
                goto done;
            }
            x[i] = (double)(float)rows_read[i];
        }
        rows_read = x;
    }
    const Py_ssize_t *child = self->children.buf, *split = self->feature.buf,
                     *root = self->roots.buf;
    const double *threshold = self->threshold.buf, *value = self->value.buf;
    double *out = out_view.buf;
    /* A block of trees at a time, through every row: the block's nodes stay in the nearest
     * cache while the rows walk them (a row at a time through all trees reads the whole
     * ensemble per row: 100 rows of a 100-tree forest took a quarter longer). Each row's
     * totals still add the trees in order. */
    for (Py_ssize_t first = 0; first < self->trees; first += LANES) {
        Py_ssize_t lanes = self->trees - first < LANES ? self->trees - first : LANES;
        for (Py_ssize_t row = 0; row < rows; row++) {
            const double *features = rows_read + row * width;
            double *total = out + row * outputs;
            Py_ssize_t slot[LANES];
            for (Py_ssize_t lane = 0; lane < lanes; lane++)
                slot[lane] = root[first + lane];
            if (lanes == LANES)
                walk(slot, LANES, features, child, split, threshold, self->depth);
            else
                walk(slot, lanes, features, child, split, threshold, self->depth);
            for (Py_ssize_t lane = 0; lane < lanes; lane++) {
                const double *leaf = value + slot[lane] * outputs;
                for (Py_ssize_t k = 0; k < outputs; k++)
                    total[k] += leaf[k];
            }
        }
    }
    if (divisor != 1.0)
        for (Py_ssize_t i = 0; i < rows * outputs; i++)
            out[i] /= divisor;
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(x);
    PyBuffer_Release(&x_view);
    PyBuffer_Release(&out_view);
    return result;
}

/* read_numbers(values, out): writes the list `values` into the float64 array `out` (as long as
 * it) and returns -1, or returns the index of the first value that is not a finite int or float
 * (exactly those types: a bool is not a number here, nor a numeric string). */
static PyObject *read_numbers(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_numbers(values, out) takes a list and an array");
        return NULL;
    }
    PyObject *values = args[0];
    Py_buffer out_view;
    if (PyObject_GetBuffer(args[1], &out_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(values), invalid = -1;
    if (strcmp(out_view.format, "d") != 0 || out_view.len != count * (Py_ssize_t)sizeof(double)) {
        PyBuffer_Release(&out_view);
        PyErr_SetString(PyExc_ValueError, "out must be a float64 array as long as values");
        return NULL;
    }
    double *out = out_view.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(values, i);
        double number;
        if (PyFloat_CheckExact(item)) {
            number = PyFloat_AS_DOUBLE(item);
        } else if (PyLong_CheckExact(item)) {
            number = PyLong_AsDouble(item);
            if (number == -1.0 && PyErr_Occurred()) {
                PyErr_Clear(); /* beyond float64: not a number this server takes */
                invalid = i;
                break;
            }
        } else {
            invalid = i;
            break;
        }
        if (!isfinite(number)) {
            invalid = i;
            break;
        }
        out[i] = number;
    }
    PyBuffer_Release(&out_view);
    return PyLong_FromSsize_t(invalid);
}

static PyMethodDef module_functions[] = {
    {"read_numbers", (PyCFunction)(void (*)(void))read_numbers, METH_FASTCALL,
     "read_numbers(values, out): values into out and -1, or the index of the first that is not "
     "a finite int or float."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Walker_members[] = {
    {"features_needed", T_PYSSIZET, offsetof(Walker, features_needed), READONLY,
     "One more than the highest feature a split reads: the narrowest rows add() takes."},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef Walker_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Walker_add, METH_FASTCALL,
     "add(x, out, divisor): adds every tree's leaf values for each row of x to out, in tree "
     "order, then divides out by divisor."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "modelops_server._kernels.Walker",
    .tp_doc = "Walker(children, feature, threshold, value, roots, depth, float32): the arrays "
              "of compiled.Trees, checked once and walked by add().",
    .tp_basicsize = sizeof(Walker),
    .tp_dealloc = (destructor)Walker_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Walker_init,
    .tp_methods = Walker_methods,
    .tp_members = Walker_members,
};

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "A request's numbers read in one pass, and the compiled tree ensembles' walk.",
    -1, module_functions, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (PyType_Ready(&WalkerType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&kernels_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Walker", (PyObject *)&WalkerType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

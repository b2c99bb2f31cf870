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
 * Walker.explain: TreeSHAP (Lundberg et al., "From local explanations to global understanding
 * with explainable AI for trees", 2020, algorithm 2: path-dependent, exact), the algorithm of
 * the shap library's TreeExplainer, step for step, so the contributions are its own to
 * rounding. It needs every node's cover (the training weight that reached it), which compiled
 * files carry from format 2 on. Shallow trees are explained from tables made at load
 * (tabulate(), "Leaf tables" below), about 3x faster, the rest by the recursion.
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

/* A deeper tree is refused an explanation: its path buffer grows with the depth squared. */
#define MAX_EXPLAINED_DEPTH 4096

/* A leaf's path in a tabled tree (see "Leaf tables" below). */
typedef struct {
    Py_ssize_t slot;            /* the leaf's own slot: its values */
    Py_ssize_t conditions;      /* the splits on its path, from the first in `conditions` */
    Py_ssize_t first_condition;
    Py_ssize_t features;        /* the distinct features they split on, from the first in */
    Py_ssize_t first_feature;   /* `leaf_features`, in order of first appearance */
    Py_ssize_t table;           /* its weights: 2^features rows of `features`, in `tables` */
} Leaf;

/* A split on a leaf's path: the node, which way the path goes, and which of the leaf's
 * distinct features it splits on. */
typedef struct {
    Py_ssize_t slot;
    int right;
    int feature;
} Condition;

typedef struct {
    PyObject_HEAD
    Py_buffer children, feature, threshold, value, roots, cover;
    Py_ssize_t slots, outputs, trees, depth, features_needed;
    int float32;
    /* Leaf tables, once tabulate() made them: tree t's leaves are leaves[tree_leaves[2t]] up to
     * leaves[tree_leaves[2t + 1]]; tree_leaves[2t] is -1 for a tree left to the recursion. */
    Py_ssize_t *tree_leaves;
    Leaf *leaves;
    Condition *conditions;
    Py_ssize_t *leaf_features;
    double *tables;
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
    if (self->cover.obj != NULL)
        PyBuffer_Release(&self->cover);
    PyMem_Free(self->tree_leaves);
    PyMem_Free(self->leaves);
    PyMem_Free(self->conditions);
    PyMem_Free(self->leaf_features);
    PyMem_Free(self->tables);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int fail(const char *message) {
    PyErr_SetString(PyExc_ValueError, message);
    return -1;
}

static int Walker_init(Walker *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"children", "feature", "threshold", "value", "roots", "depth",
                               "float32", "cover", NULL};
    PyObject *children, *feature, *threshold, *value, *roots, *cover = Py_None;
    Py_ssize_t depth;
    int float32;
    if (self->children.obj != NULL)
        return fail("a Walker is initialized once");
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOnp|O", keywords, &children, &feature,
                                     &threshold, &value, &roots, &depth, &float32, &cover))
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
    if (cover != Py_None) {
        if (take_buffer(cover, &self->cover, "d", 1, "cover") < 0)
            return -1;
        if (self->cover.shape[0] != slots)
            return fail("cover must have one entry per slot");
        const double *weight = self->cover.buf;
        for (Py_ssize_t slot = 0; slot < slots; slot++)
            if (!(weight[slot] >= 0 && isfinite(weight[slot])))
                return fail("a cover is negative or not finite");
    }
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

/* The rows as the trees compare them. scikit-learn's trees compare float32 inputs: rounded
 * here, in a copy (*copy, for the caller to free), as its own checks do, and refused where it
 * refuses them. Float64 trees read the rows as given. NULL with an exception set on failure. */
static const double *rows_compared(Walker *self, Py_buffer *x_view, double **copy) {
    const double *given = x_view->buf;
    if (!self->float32)
        return given;
    Py_ssize_t count = x_view->shape[0] * x_view->shape[1];
    double *rounded = *copy = PyMem_Malloc((count > 0 ? count : 1) * sizeof(double));
    if (rounded == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    double limit = float32_overflow();
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!(fabs(given[i]) < limit)) {
            PyErr_SetString(PyExc_OverflowError, "a value is beyond float32's range");
            return NULL;
        }
        rounded[i] = (double)(float)given[i];
    }
    return rounded;
}

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

/* What add() and explain() take: (x, out, divisor), x a float64 (rows, features) array at least
 * as wide as the trees read, out a writable float64 array of `out_ndim` dimensions and as many
 * rows. On success the two buffers are held, for the caller to release; -1 with an exception
 * set (and nothing held) otherwise. */
static int take_rows_and_out(Walker *self, PyObject *const *args, Py_ssize_t nargs,
                             const char *usage, int out_ndim, Py_buffer *x_view,
                             Py_buffer *out_view, double *divisor) {
    if (self->children.obj == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Walker was not initialized");
        return -1;
    }
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s takes two arrays and a number", usage);
        return -1;
    }
    *divisor = PyFloat_AsDouble(args[2]);
    if (*divisor == -1.0 && PyErr_Occurred())
        return -1;
    if (PyObject_GetBuffer(args[0], x_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (PyObject_GetBuffer(args[1], out_view,
                           PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(x_view);
        return -1;
    }
    if (strcmp(x_view->format, "d") != 0 || x_view->ndim != 2 ||
        strcmp(out_view->format, "d") != 0 || out_view->ndim != out_ndim) {
        PyErr_Format(PyExc_ValueError, "%s: x must be a 2-dimensional float64 array, the "
                     "other a %d-dimensional one", usage, out_ndim);
    } else if (x_view->shape[1] < self->features_needed) {
        PyErr_Format(PyExc_ValueError, "the trees split on %zd features; x has %zd",
                     self->features_needed, x_view->shape[1]);
    } else if (out_view->shape[0] != x_view->shape[0]) {
        PyErr_Format(PyExc_ValueError, "%s: x has %zd rows, the other %zd", usage,
                     x_view->shape[0], out_view->shape[0]);
    } else {
        return 0;
    }
    PyBuffer_Release(x_view);
    PyBuffer_Release(out_view);
    return -1;
}

/* add(x, out, divisor): adds every tree's leaf values for each row of x (rows, features) to
 * out (rows, outputs), then divides out by divisor (a forest's mean: scikit-learn divides the
 * sum once, at the end). OverflowError when a float32 model is given a value beyond float32. */
static PyObject *Walker_add(Walker *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer x_view, out_view;
    double divisor;
    if (take_rows_and_out(self, args, nargs, "add(x, out, divisor)", 2, &x_view, &out_view,
                          &divisor) < 0)
        return NULL;
    PyObject *result = NULL;
    double *x = NULL;
    Py_ssize_t rows = x_view.shape[0], width = x_view.shape[1], outputs = self->outputs;
    if (out_view.shape[1] != outputs) {
        PyErr_Format(PyExc_ValueError, "out must be (%zd, %zd)", rows, outputs);
        goto done;
    }
    const double *rows_read = rows_compared(self, &x_view, &x);
    if (rows_read == NULL)
        goto done;
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

/* --- TreeSHAP ------------------------------------------------------------------------------ */

/* One feature on the path from the root to the node the recursion is at: the fraction of the
 * paths that do not fix the feature (zero) and that fix it to the row's value (one) and go this
 * way, and the weight of the subsets of the path's size (pweight). */
typedef struct {
    Py_ssize_t feature;
    double zero_fraction, one_fraction, pweight;
} PathElement;

/* What a tree's recursion reads and adds to, for one row. */
typedef struct {
    const Py_ssize_t *child, *split;
    const double *threshold, *value, *cover, *row;
    double *phi; /* (features, outputs) of this row */
    Py_ssize_t outputs, depth;
    int too_deep;
} Explained;

/* 1/k for the path lengths a walk can reach: the path's arithmetic multiplies by these where
 * shap divides, nine divisions in ten fewer (twice the speed), rounding apart in the 16th
 * digit. */
static double inverse[MAX_EXPLAINED_DEPTH + 3];

static void extend_path(PathElement *path, Py_ssize_t depth, double zero_fraction,
                        double one_fraction, Py_ssize_t feature) {
    path[depth].feature = feature;
    path[depth].zero_fraction = zero_fraction;
    path[depth].one_fraction = one_fraction;
    path[depth].pweight = depth == 0 ? 1.0 : 0.0;
    const double one = one_fraction * inverse[depth + 1], zero = zero_fraction * inverse[depth + 1];
    for (Py_ssize_t i = depth - 1; i >= 0; i--) {
        path[i + 1].pweight += one * path[i].pweight * (i + 1);
        path[i].pweight = zero * path[i].pweight * (depth - i);
    }
}

static void unwind_path(PathElement *path, Py_ssize_t depth, Py_ssize_t index) {
    const double one_fraction = path[index].one_fraction;
    const double zero_fraction = path[index].zero_fraction;
    double next_one_portion = path[depth].pweight;
    if (one_fraction != 0) {
        const double up = (depth + 1) / one_fraction, down = zero_fraction * inverse[depth + 1];
        for (Py_ssize_t i = depth - 1; i >= 0; i--) {
            const double kept = path[i].pweight;
            path[i].pweight = next_one_portion * up * inverse[i + 1];
            next_one_portion = kept - path[i].pweight * down * (depth - i);
        }
    } else {
        const double up = (depth + 1) / zero_fraction;
        for (Py_ssize_t i = depth - 1; i >= 0; i--)
            path[i].pweight = path[i].pweight * up * inverse[depth - i];
    }
    for (Py_ssize_t i = index; i < depth; i++) {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

/* The total weight of the path's subsets with the element at `index` taken out. */
static double unwound_path_sum(const PathElement *path, Py_ssize_t depth, Py_ssize_t index) {
    const double one_fraction = path[index].one_fraction;
    const double zero_fraction = path[index].zero_fraction;
    double next_one_portion = path[depth].pweight, total = 0;
    if (one_fraction != 0) {
        const double up = (depth + 1) / one_fraction, down = zero_fraction * inverse[depth + 1];
        for (Py_ssize_t i = depth - 1; i >= 0; i--) {
            const double part = next_one_portion * up * inverse[i + 1];
            total += part;
            next_one_portion = path[i].pweight - part * down * (depth - i);
        }
        return total;
    }
    for (Py_ssize_t i = depth - 1; i >= 0; i--)
        total += path[i].pweight * inverse[depth - i];
    return total * (depth + 1) / zero_fraction;
}

/* The slot a row takes from the node at `slot`: scikit-learn's `x <= threshold` goes left. */
static inline Py_ssize_t taken(const Explained *e, Py_ssize_t slot) {
    return e->child[slot + (e->row[e->split[slot]] > e->threshold[slot])];
}

static void tree_shap(Explained *e, Py_ssize_t slot, Py_ssize_t level, PathElement *parent_path,
                      Py_ssize_t depth, double zero_fraction, double one_fraction,
                      Py_ssize_t feature) {
    if (level > e->depth) {
        /* A tree deeper than the file says (or a cycle): no walk goes deeper than that. */
        e->too_deep = 1;
        return;
    }
    PathElement *path = parent_path + depth + 1;
    memcpy(path, parent_path, (depth + 1) * sizeof(PathElement));
    extend_path(path, depth, zero_fraction, one_fraction, feature);
    if (e->child[slot] == slot) {
        const double *leaf = e->value + slot * e->outputs;
        for (Py_ssize_t i = 1; i <= depth; i++) {
            const PathElement *element = &path[i];
            const double scale = unwound_path_sum(path, depth, i) *
                                 (element->one_fraction - element->zero_fraction);
            double *phi = e->phi + element->feature * e->outputs;
            for (Py_ssize_t k = 0; k < e->outputs; k++)
                phi[k] += scale * leaf[k];
        }
        return;
    }
    const Py_ssize_t split = e->split[slot];
    const Py_ssize_t hot = taken(e, slot);
    const Py_ssize_t cold = hot == e->child[slot] ? e->child[slot + 1] : e->child[slot];
    const double weight = e->cover[slot];
    /* No training weight reached the node (possible only with zero sample weights): none flows
     * on, where 0/0 would spread NaN. */
    const double hot_fraction = weight > 0 ? e->cover[hot] / weight : 0;
    const double cold_fraction = weight > 0 ? e->cover[cold] / weight : 0;
    double incoming_zero = 1, incoming_one = 1;
    Py_ssize_t index = 0;
    while (index <= depth && path[index].feature != split)
        index++;
    if (index <= depth) {
        /* The feature split before on this path: that split is undone and done again here. */
        incoming_zero = path[index].zero_fraction;
        incoming_one = path[index].one_fraction;
        unwind_path(path, depth, index);
        depth--;
    }
    tree_shap(e, hot, level + 1, path, depth + 1, hot_fraction * incoming_zero, incoming_one,
              split);
    /* No path reaches the cold child with both fractions 0: it adds nothing (and the path's
     * arithmetic would divide by 0). */
    if (cold_fraction * incoming_zero != 0)
        tree_shap(e, cold, level + 1, path, depth + 1, cold_fraction * incoming_zero, 0, split);
}

/* 0 where the trees can be explained; -1 with ValueError where not. */
static int explainable(const Walker *self) {
    if (self->cover.obj == NULL) {
        PyErr_SetString(PyExc_ValueError, "the trees have no cover to explain with");
        return -1;
    }
    if (self->depth > MAX_EXPLAINED_DEPTH) {
        PyErr_Format(PyExc_ValueError, "trees %zd deep are not explained (at most %d)",
                     self->depth, MAX_EXPLAINED_DEPTH);
        return -1;
    }
    return 0;
}

/* --- Leaf tables ---------------------------------------------------------------------------
 *
 * What TreeSHAP adds at a leaf depends on the row only through which of the splits on the
 * leaf's path the row takes: per distinct feature on the path, whether the row takes every
 * split on it ("one") or not. A leaf whose path splits on u distinct features has 2^u such
 * patterns, and for each, each feature's weight can be computed once, at load (Yang, "Fast
 * TreeSHAP", 2021, its v2). A row then costs, per leaf, its path's comparisons and u
 * multiply-adds, where the recursion costs O(depth^2) per leaf and a call per node: about 4x
 * faster on the iris forest. The weights are the recursion's own (the same path arithmetic on
 * the same fractions), so the contributions agree with it to rounding. Trees whose tables
 * would not fit in TABLE_BUDGET, or whose leaves split on more than TABLED_FEATURES distinct
 * features, are left to the recursion. */
#define TABLED_FEATURES 10
#define TABLE_BUDGET ((Py_ssize_t)1 << 20) /* doubles: 8 MB */

/* What tabulating one tree collects, grown as it goes. */
typedef struct {
    Leaf *leaves;
    Condition *conditions;
    Py_ssize_t *leaf_features;
    double *tables;
    Py_ssize_t leaf_count, leaf_room, condition_count, condition_room, feature_count,
        feature_room, table_size, table_room;
} Tabulation;

static int grow(void **items, Py_ssize_t *room, Py_ssize_t needed, size_t size) {
    if (needed <= *room)
        return 0;
    Py_ssize_t larger = *room ? *room : 64;
    while (larger < needed)
        larger *= 2;
    void *moved = PyMem_Realloc(*items, larger * size);
    if (moved == NULL)
        return -1;
    *items = moved;
    *room = larger;
    return 0;
}

/* A leaf's weights for every pattern: its path as the recursion would have it at the leaf
 * (an element per distinct feature: the product of its splits' cover fractions, and 1 or 0
 * as the row takes all of them or not), each element's weight as it leaves. */
static void leaf_table(const double *zero, Py_ssize_t features, double *table) {
    PathElement path[TABLED_FEATURES + 1];
    for (Py_ssize_t pattern = 0; pattern < ((Py_ssize_t)1 << features); pattern++) {
        double *weights = table + pattern * features;
        int reached = 1;
        for (Py_ssize_t j = 0; j < features; j++)
            if (!((pattern >> j) & 1) && zero[j] == 0)
                reached = 0; /* a split no training weight crossed: the recursion stops there */
        if (!reached) {
            memset(weights, 0, features * sizeof(double));
            continue;
        }
        extend_path(path, 0, 1, 1, -1);
        for (Py_ssize_t j = 0; j < features; j++)
            extend_path(path, j + 1, zero[j], (double)((pattern >> j) & 1), j);
        for (Py_ssize_t j = 0; j < features; j++) {
            const PathElement *element = &path[j + 1];
            weights[j] = unwound_path_sum(path, features, j + 1) *
                         (element->one_fraction - element->zero_fraction);
        }
    }
}

/* Tabulates the leaves below `slot`, whose path so far is `path` (`level` nodes: their slots,
 * and which way it went). 0, or 1 where the tree cannot be tabled, -1 out of memory. */
static int tabulate_below(const Walker *self, Tabulation *t, Py_ssize_t slot, Py_ssize_t level,
                          Py_ssize_t *path, int *went_right) {
    const Py_ssize_t *child = self->children.buf, *split = self->feature.buf;
    const double *cover = self->cover.buf;
    if (child[slot] != slot) {
        for (int right = 0; right <= 1; right++) {
            path[level] = slot;
            went_right[level] = right;
            int outcome = tabulate_below(self, t, child[slot + right], level + 1, path, went_right);
            if (outcome != 0)
                return outcome;
        }
        return 0;
    }
    Py_ssize_t distinct[TABLED_FEATURES];
    double zero[TABLED_FEATURES];
    Py_ssize_t features = 0;
    if (grow((void **)&t->conditions, &t->condition_room, t->condition_count + level,
             sizeof(Condition)) < 0)
        return -1;
    for (Py_ssize_t k = 0; k < level; k++) {
        Py_ssize_t node = path[k], f = split[node], j = 0;
        while (j < features && distinct[j] != f)
            j++;
        if (j == features) {
            if (features == TABLED_FEATURES)
                return 1;
            distinct[features] = f;
            zero[features++] = 1;
        }
        Py_ssize_t taken = child[node + went_right[k]];
        zero[j] *= cover[node] > 0 ? cover[taken] / cover[node] : 0;
        t->conditions[t->condition_count + k] = (Condition){node, went_right[k], (int)j};
    }
    Py_ssize_t size = ((Py_ssize_t)1 << features) * features;
    if (t->table_size + size > TABLE_BUDGET)
        return 1;
    if (grow((void **)&t->leaves, &t->leaf_room, t->leaf_count + 1, sizeof(Leaf)) < 0 ||
        grow((void **)&t->leaf_features, &t->feature_room, t->feature_count + features,
             sizeof(Py_ssize_t)) < 0 ||
        grow((void **)&t->tables, &t->table_room, t->table_size + size, sizeof(double)) < 0)
        return -1;
    memcpy(t->leaf_features + t->feature_count, distinct, features * sizeof(Py_ssize_t));
    leaf_table(zero, features, t->tables + t->table_size);
    t->leaves[t->leaf_count++] = (Leaf){slot, level, t->condition_count, features,
                                        t->feature_count, t->table_size};
    t->condition_count += level;
    t->feature_count += features;
    t->table_size += size;
    return 0;
}

/* tabulate(): makes the leaf tables of every tree they fit, once; returns how many trees.
 * Called after expectation() checked that the nodes make trees. */
static PyObject *Walker_tabulate(Walker *self, PyObject *Py_UNUSED(ignored)) {
    if (self->children.obj == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Walker was not initialized");
        return NULL;
    }
    if (explainable(self) < 0)
        return NULL;
    if (self->tree_leaves != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the trees are tabulated once");
        return NULL;
    }
    Tabulation t = {0};
    Py_ssize_t *tree_leaves = PyMem_Malloc((2 * self->trees + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *path = PyMem_Malloc((self->depth + 1) * sizeof(Py_ssize_t));
    int *went_right = PyMem_Malloc((self->depth + 1) * sizeof(int));
    Py_ssize_t tabled = 0;
    if (tree_leaves == NULL || path == NULL || went_right == NULL)
        goto out_of_memory;
    const Py_ssize_t *root = self->roots.buf;
    for (Py_ssize_t tree = 0; tree < self->trees; tree++) {
        tree_leaves[2 * tree] = t.leaf_count;
        Tabulation before = t;
        int outcome = tabulate_below(self, &t, root[tree], 0, path, went_right);
        if (outcome < 0)
            goto out_of_memory;
        if (outcome > 0) {
            /* Left to the recursion: what this tree had added goes (the room stays). */
            t.leaf_count = before.leaf_count;
            t.condition_count = before.condition_count;
            t.feature_count = before.feature_count;
            t.table_size = before.table_size;
            tree_leaves[2 * tree] = -1;
        } else {
            tabled++;
        }
        tree_leaves[2 * tree + 1] = t.leaf_count;
    }
    PyMem_Free(path);
    PyMem_Free(went_right);
    self->tree_leaves = tree_leaves;
    self->leaves = t.leaves;
    self->conditions = t.conditions;
    self->leaf_features = t.leaf_features;
    self->tables = t.tables;
    return PyLong_FromSsize_t(tabled);
out_of_memory:
    PyMem_Free(tree_leaves);
    PyMem_Free(path);
    PyMem_Free(went_right);
    PyMem_Free(t.leaves);
    PyMem_Free(t.conditions);
    PyMem_Free(t.leaf_features);
    PyMem_Free(t.tables);
    return PyErr_NoMemory();
}

/* One tabled tree's SHAP values for one row: per leaf, the pattern of its path's splits the
 * row takes, and that pattern's weights times the leaf's values. */
static void tabled_shap(const Walker *self, Py_ssize_t tree, const double *row, double *phi) {
    const Py_ssize_t *split = self->feature.buf;
    const double *threshold = self->threshold.buf, *value = self->value.buf;
    Py_ssize_t outputs = self->outputs, end = self->tree_leaves[2 * tree + 1];
    for (Py_ssize_t index = self->tree_leaves[2 * tree]; index < end; index++) {
        const Leaf *leaf = &self->leaves[index];
        const Condition *condition = self->conditions + leaf->first_condition;
        Py_ssize_t pattern = ((Py_ssize_t)1 << leaf->features) - 1;
        for (Py_ssize_t k = 0; k < leaf->conditions; k++) {
            Py_ssize_t node = condition[k].slot;
            if ((row[split[node]] > threshold[node]) != condition[k].right)
                pattern &= ~((Py_ssize_t)1 << condition[k].feature);
        }
        const double *weights = self->tables + leaf->table + pattern * leaf->features;
        const double *leaf_value = value + leaf->slot * outputs;
        const Py_ssize_t *features = self->leaf_features + leaf->first_feature;
        for (Py_ssize_t j = 0; j < leaf->features; j++) {
            double *contribution = phi + features[j] * outputs;
            for (Py_ssize_t k = 0; k < outputs; k++)
                contribution[k] += weights[j] * leaf_value[k];
        }
    }
}

/* explain(x, phi, divisor): adds every tree's SHAP values for each row of x (rows, features) to
 * phi (rows, features, outputs), then divides phi by divisor, as add() does its totals. */
static PyObject *Walker_explain(Walker *self, PyObject *const *args, Py_ssize_t nargs) {
    if (explainable(self) < 0)
        return NULL;
    Py_buffer x_view, phi_view;
    double divisor;
    if (take_rows_and_out(self, args, nargs, "explain(x, phi, divisor)", 3, &x_view, &phi_view,
                          &divisor) < 0)
        return NULL;
    PyObject *result = NULL;
    double *x = NULL;
    PathElement *paths = NULL;
    Py_ssize_t rows = x_view.shape[0], width = x_view.shape[1], outputs = self->outputs;
    if (phi_view.shape[1] != width || phi_view.shape[2] != outputs) {
        PyErr_Format(PyExc_ValueError, "phi must be (%zd, %zd, %zd)", rows, width, outputs);
        goto done;
    }
    const double *rows_read = rows_compared(self, &x_view, &x);
    if (rows_read == NULL)
        goto done;
    /* Each level of the recursion keeps its own copy of the path, one element longer. */
    Py_ssize_t levels = self->depth + 2;
    paths = PyMem_Malloc(levels * (levels + 1) / 2 * sizeof(PathElement));
    if (paths == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Explained e = {self->children.buf, self->feature.buf, self->threshold.buf, self->value.buf,
                   self->cover.buf, NULL, NULL, outputs, self->depth, 0};
    const Py_ssize_t *root = self->roots.buf;
    double *phi = phi_view.buf;
    /* Without the GIL: the buffers stay held, and the rest of the server runs meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t row = 0; row < rows; row++) {
        e.row = rows_read + row * width;
        e.phi = phi + row * width * outputs;
        for (Py_ssize_t tree = 0; tree < self->trees; tree++) {
            if (self->tree_leaves != NULL && self->tree_leaves[2 * tree] >= 0)
                tabled_shap(self, tree, e.row, e.phi);
            else
                tree_shap(&e, root[tree], 0, paths, 0, 1, 1, -1);
        }
    }
    Py_END_ALLOW_THREADS
    if (e.too_deep) {
        PyErr_SetString(PyExc_ValueError, "a tree is deeper than the trees' depth");
        goto done;
    }
    if (divisor != 1.0)
        for (Py_ssize_t i = 0; i < rows * width * outputs; i++)
            phi[i] /= divisor;
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(paths);
    PyMem_Free(x);
    PyBuffer_Release(&x_view);
    PyBuffer_Release(&phi_view);
    return result;
}

/* The tree's mean leaf value below `slot`, weighted by cover: each node's children weighed by
 * their covers, as shap computes its expected value. It visits every node, as an explanation
 * does: -1 where a node is visited more often than there are nodes (nodes shared, which a
 * crafted file could make take 2^depth steps) or deeper than the trees' depth (a cycle). */
static int expectation(const Walker *self, Py_ssize_t slot, Py_ssize_t level, double *out,
                       Py_ssize_t *visits_left) {
    const Py_ssize_t *child = self->children.buf;
    const double *cover = self->cover.buf, *value = self->value.buf;
    Py_ssize_t outputs = self->outputs;
    if (level > self->depth || --*visits_left < 0)
        return -1;
    if (child[slot] == slot) {
        memcpy(out, value + slot * outputs, outputs * sizeof(double));
        return 0;
    }
    double *right = out + outputs;
    if (expectation(self, child[slot], level + 1, out, visits_left) < 0 ||
        expectation(self, child[slot + 1], level + 1, right, visits_left) < 0)
        return -1;
    double left_weight = cover[child[slot]], right_weight = cover[child[slot + 1]];
    double total = left_weight + right_weight;
    for (Py_ssize_t k = 0; k < outputs; k++)
        out[k] = total > 0 ? (left_weight * out[k] + right_weight * right[k]) / total : 0;
    return 0;
}

/* expectation(out, divisor): adds every tree's expected value (its mean leaf value by cover)
 * to out (outputs), in tree order, then divides out by divisor: the base value the SHAP values
 * of a row add up from to its prediction. ValueError where the nodes do not make trees: called
 * at load, it also bounds what explain() will visit. */
static PyObject *Walker_expectation(Walker *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->children.obj == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Walker was not initialized");
        return NULL;
    }
    if (explainable(self) < 0)
        return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expectation(out, divisor) takes an array and a number");
        return NULL;
    }
    double divisor = PyFloat_AsDouble(args[1]);
    if (divisor == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer out_view;
    if (PyObject_GetBuffer(args[0], &out_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t outputs = self->outputs;
    /* Two outputs' room per level: a node's left and right expectations. */
    double *scratch = NULL;
    if (strcmp(out_view.format, "d") != 0 || out_view.ndim != 1 || out_view.shape[0] != outputs) {
        PyErr_Format(PyExc_ValueError, "out must be a float64 array of %zd", outputs);
        goto done;
    }
    scratch = PyMem_Malloc((self->depth + 2) * outputs * sizeof(double));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const Py_ssize_t *root = self->roots.buf;
    double *out = out_view.buf;
    Py_ssize_t visits_left = self->slots / 2;
    for (Py_ssize_t tree = 0; tree < self->trees; tree++) {
        if (expectation(self, root[tree], 0, scratch, &visits_left) < 0) {
            PyErr_SetString(PyExc_ValueError,
                            "the nodes do not make trees (shared, or deeper than the depth)");
            goto done;
        }
        for (Py_ssize_t k = 0; k < outputs; k++)
            out[k] += scratch[k];
    }
    if (divisor != 1.0)
        for (Py_ssize_t k = 0; k < outputs; k++)
            out[k] /= divisor;
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(scratch);
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
    {"explain", (PyCFunction)(void (*)(void))Walker_explain, METH_FASTCALL,
     "explain(x, phi, divisor): adds every tree's SHAP values (path-dependent TreeSHAP) for each "
     "row of x to phi (rows, features, outputs), then divides phi by divisor."},
    {"tabulate", (PyCFunction)Walker_tabulate, METH_NOARGS,
     "tabulate(): the leaf tables of every tree they fit (explain() then uses them); returns "
     "how many trees."},
    {"expectation", (PyCFunction)(void (*)(void))Walker_expectation, METH_FASTCALL,
     "expectation(out, divisor): adds every tree's expected value (mean leaf value by cover) to "
     "out, then divides out by divisor."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "modelops_server._kernels.Walker",
    .tp_doc = "Walker(children, feature, threshold, value, roots, depth, float32, cover=None): "
              "the arrays of compiled.Trees, checked once, walked by add() and explained by "
              "explain() where they have covers.",
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
    for (Py_ssize_t k = 1; k < (Py_ssize_t)(sizeof inverse / sizeof inverse[0]); k++)
        inverse[k] = 1.0 / k;
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

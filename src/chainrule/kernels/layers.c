/* The elementwise work between a network's matrix products, one pass each, with the bits of
 * the NumPy lines each one replaces (see chainrule/kernels/__init__.py for which method each
 * stands in for; compiled with -ffp-contract=off, so no fused multiply-adds):
 *
 *     relu_forward    mask = Z >= 0;  A = max(Z, 0)        (np.maximum: NaN stays NaN, −0 → 0)
 *     relu_backward   dLdZ = dLdA * mask                    (mask as 1.0 or 0.0, as NumPy casts it)
 *     shift_rows      E = Z − max of each row               (before NumPy's exp)
 *     sum_rows        dLdW0 = Σ_rows dLdZ, rows in order from 0 (NumPy's order over axis 0)
 *     nllm_grad       G = (A − Y) · scale, Y one-hot from flat indices i·k + yᵢ
 *     add_row         Z = Z + W0, each row (after NumPy's A_prev @ W)
 *     pick            a_y = max(A[i, yᵢ], eps) and the flat indices i·k + yᵢ (before NumPy's log)
 *
 * NumPy spends about a microsecond on each call on small batches, and most of a small
 * network's step is such calls; these do one call where NumPy makes two to five.
 * Arguments: contiguous buffers (checked by chainrule.kernels), outputs never overlapping
 * inputs (restrict, which lets the loops be vectorised), and is_double (float64 if true,
 * float32 otherwise).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>

#include "clones.h"

#define RELU_FORWARD(NAME, T)                                                             \
    CLONES static void NAME(Py_ssize_t n, const T *restrict Z, T *restrict A,     \
                           bool *restrict mask) {                  \
        for (Py_ssize_t i = 0; i < n; i++) {                                              \
            T z = Z[i];                                                                   \
            mask[i] = z >= 0;                                                             \
            A[i] = ((z > 0) | (z != z)) ? z : (T)0; /* np.maximum(z, 0): NaN kept, −0 → 0 */ \
        }                                                                                 \
    }
RELU_FORWARD(relu_forward_f, float)
RELU_FORWARD(relu_forward_d, double)

#define RELU_BACKWARD(NAME, T)                                                            \
    CLONES static void NAME(Py_ssize_t n, const T *restrict d,                    \
                           const bool *restrict mask, T *restrict out) {          \
        const unsigned char *m = (const unsigned char *)mask; /* bytes 0 or 1: GCC        \
                                                                 vectorises these */      \
        for (Py_ssize_t i = 0; i < n; i++)                                                \
            out[i] = d[i] * (T)(int)m[i]; /* 0·d: −0 for d < 0, NaN for ±∞; no branch */  \
    }
RELU_BACKWARD(relu_backward_f, float)
RELU_BACKWARD(relu_backward_d, double)

/* np.max over a row keeps the first NaN it meets; among ±0 it may keep either, which changes
 * only the sign of a zero in E, and exp(±0) = 1. */
#define SHIFT_ROWS(NAME, T)                                                               \
    static void NAME(Py_ssize_t rows, Py_ssize_t k, const T *restrict Z,   \
                     T *restrict E) {                   \
        for (Py_ssize_t r = 0; r < rows; r++) {                                           \
            const T *z = Z + r * k;                                                       \
            T *e = E + r * k;                                                             \
            T m = z[0];                                                                   \
            for (Py_ssize_t j = 1; j < k && m == m; j++)                                  \
                if (z[j] > m || z[j] != z[j])                                             \
                    m = z[j];                                                             \
            for (Py_ssize_t j = 0; j < k; j++)                                            \
                e[j] = z[j] - m;                                                          \
        }                                                                                 \
    }
SHIFT_ROWS(shift_rows_f, float)
SHIFT_ROWS(shift_rows_d, double)

#define SUM_ROWS(NAME, T)                                                                 \
    CLONES static void NAME(Py_ssize_t rows, Py_ssize_t k, const T *restrict M,   \
                           T *restrict out) {           \
        for (Py_ssize_t j = 0; j < k; j++)                                                \
            out[j] = 0;                                                                   \
        for (Py_ssize_t r = 0; r < rows; r++) {                                           \
            const T *m = M + r * k;                                                       \
            for (Py_ssize_t j = 0; j < k; j++)                                            \
                out[j] = out[j] + m[j];                                                   \
        }                                                                                 \
    }
SUM_ROWS(sum_rows_f, float)
SUM_ROWS(sum_rows_d, double)

#define NLLM_GRAD(NAME, T)                                                                \
    static void NAME(Py_ssize_t n, const T *restrict A, T *restrict G,     \
                     const Py_ssize_t *restrict picked,            \
                     Py_ssize_t rows, T scale) {                                          \
        for (Py_ssize_t i = 0; i < n; i++)                                                \
            G[i] = A[i];                                                                  \
        for (Py_ssize_t r = 0; r < rows; r++)                                             \
            G[picked[r]] = G[picked[r]] - (T)1;                                           \
        for (Py_ssize_t i = 0; i < n; i++)                                                \
            G[i] = G[i] * scale;                                                          \
    }
NLLM_GRAD(nllm_grad_f, float)
NLLM_GRAD(nllm_grad_d, double)

#define ADD_ROW(NAME, T)                                                                  \
    CLONES static void NAME(Py_ssize_t rows, Py_ssize_t k, T *restrict Z,                  \
                            const T *restrict row) {                                      \
        for (Py_ssize_t r = 0; r < rows; r++)                                             \
            for (Py_ssize_t j = 0; j < k; j++)                                            \
                Z[r * k + j] = Z[r * k + j] + row[j];                                     \
    }
ADD_ROW(add_row_f, float)
ADD_ROW(add_row_d, double)

/* a_y = max(A[i, yᵢ], eps) and picked = i·k + yᵢ, for labels y in 0..k-1 */
#define PICK(NAME, T)                                                                     \
    static void NAME(Py_ssize_t rows, Py_ssize_t k, const T *restrict A,                  \
                     const Py_ssize_t *restrict y, Py_ssize_t *restrict picked,           \
                     T *restrict a_y, T eps) {                                            \
        for (Py_ssize_t r = 0; r < rows; r++) {                                           \
            Py_ssize_t i = r * k + y[r];                                                  \
            T a = A[i];                                                                   \
            picked[r] = i;                                                                \
            a_y[r] = ((a > eps) | (a != a)) ? a : eps; /* np.maximum(a, eps) */           \
        }                                                                                 \
    }
PICK(pick_f, float)
PICK(pick_d, double)

static int equal_lengths(Py_buffer *a, Py_buffer *b, Py_ssize_t a_item, Py_ssize_t b_item) {
    if (a->len % a_item || b->len % b_item || a->len / a_item != b->len / b_item) {
        PyErr_SetString(PyExc_ValueError, "expected buffers of equal numbers of elements");
        return 0;
    }
    return 1;
}

/* relu_forward(Z, A, mask, is_double) */
static PyObject *relu_forward(PyObject *self, PyObject *args) {
    Py_buffer Z, A, mask;
    int is_double;
    if (!PyArg_ParseTuple(args, "y*w*w*p", &Z, &A, &mask, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    if (equal_lengths(&Z, &A, size, size) && equal_lengths(&Z, &mask, size, 1)) {
        Py_ssize_t n = Z.len / size;
        if (is_double)
            relu_forward_d(n, Z.buf, A.buf, mask.buf);
        else
            relu_forward_f(n, Z.buf, A.buf, mask.buf);
    }
    PyBuffer_Release(&Z);
    PyBuffer_Release(&A);
    PyBuffer_Release(&mask);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* relu_backward(dLdA, mask, out, is_double) */
static PyObject *relu_backward(PyObject *self, PyObject *args) {
    Py_buffer d, mask, out;
    int is_double;
    if (!PyArg_ParseTuple(args, "y*y*w*p", &d, &mask, &out, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    if (equal_lengths(&d, &out, size, size) && equal_lengths(&d, &mask, size, 1)) {
        Py_ssize_t n = d.len / size;
        if (is_double)
            relu_backward_d(n, d.buf, mask.buf, out.buf);
        else
            relu_backward_f(n, d.buf, mask.buf, out.buf);
    }
    PyBuffer_Release(&d);
    PyBuffer_Release(&mask);
    PyBuffer_Release(&out);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* shift_rows(Z, E, k, is_double): rows of k values */
static PyObject *shift_rows(PyObject *self, PyObject *args) {
    Py_buffer Z, E;
    Py_ssize_t k;
    int is_double;
    if (!PyArg_ParseTuple(args, "y*w*np", &Z, &E, &k, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    if (equal_lengths(&Z, &E, size, size)) {
        Py_ssize_t n = Z.len / size;
        if (k < 1 || n % k)
            PyErr_SetString(PyExc_ValueError, "shift_rows expected whole rows of k >= 1 values");
        else if (is_double)
            shift_rows_d(n / k, k, Z.buf, E.buf);
        else
            shift_rows_f(n / k, k, Z.buf, E.buf);
    }
    PyBuffer_Release(&Z);
    PyBuffer_Release(&E);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* sum_rows(M, out, k, is_double): out (k values) = the sum of M's rows of k values */
static PyObject *sum_rows(PyObject *self, PyObject *args) {
    Py_buffer M, out;
    Py_ssize_t k;
    int is_double;
    if (!PyArg_ParseTuple(args, "y*w*np", &M, &out, &k, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    Py_ssize_t n = M.len / size;
    if (k < 1 || M.len % size || n % k || out.len != k * size)
        PyErr_SetString(PyExc_ValueError, "sum_rows expected whole rows of k values, out of k");
    else if (is_double)
        sum_rows_d(n / k, k, M.buf, out.buf);
    else
        sum_rows_f(n / k, k, M.buf, out.buf);
    PyBuffer_Release(&M);
    PyBuffer_Release(&out);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* nllm_grad(A, picked, G, scale, is_double): picked holds one flat index (intp) per row */
static PyObject *nllm_grad(PyObject *self, PyObject *args) {
    Py_buffer A, picked, G;
    double scale;
    int is_double;
    if (!PyArg_ParseTuple(args, "y*y*w*dp", &A, &picked, &G, &scale, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    Py_ssize_t n = A.len / size, rows = picked.len / (Py_ssize_t)sizeof(Py_ssize_t);
    int ok = equal_lengths(&A, &G, size, size) && picked.len % sizeof(Py_ssize_t) == 0;
    const Py_ssize_t *idx = picked.buf;
    for (Py_ssize_t r = 0; ok && r < rows; r++)
        ok = idx[r] >= 0 && idx[r] < n;
    if (!ok) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "nllm_grad expected flat indices into A");
    } else if (is_double) {
        nllm_grad_d(n, A.buf, G.buf, idx, rows, scale);
    } else {
        nllm_grad_f(n, A.buf, G.buf, idx, rows, (float)scale);
    }
    PyBuffer_Release(&A);
    PyBuffer_Release(&picked);
    PyBuffer_Release(&G);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* add_row(Z, row, k, is_double): Z (rows of k values) += row, in place */
static PyObject *add_row(PyObject *self, PyObject *args) {
    Py_buffer Z, row;
    Py_ssize_t k;
    int is_double;
    if (!PyArg_ParseTuple(args, "w*y*np", &Z, &row, &k, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    Py_ssize_t n = Z.len / size;
    if (k < 1 || Z.len % size || n % k || row.len != k * size)
        PyErr_SetString(PyExc_ValueError, "add_row expected whole rows of k values, a row of k");
    else if (is_double)
        add_row_d(n / k, k, Z.buf, row.buf);
    else
        add_row_f(n / k, k, Z.buf, row.buf);
    PyBuffer_Release(&Z);
    PyBuffer_Release(&row);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* pick(A, k, y, picked, a_y, eps, is_double): y and picked intp, one per row of A */
static PyObject *pick(PyObject *self, PyObject *args) {
    Py_buffer A, y, picked, a_y;
    Py_ssize_t k;
    double eps;
    int is_double;
    if (!PyArg_ParseTuple(args, "y*ny*w*w*dp", &A, &k, &y, &picked, &a_y, &eps, &is_double))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4, isize = (Py_ssize_t)sizeof(Py_ssize_t);
    Py_ssize_t rows = y.len / isize;
    int ok = k >= 1 && y.len % isize == 0 && A.len == rows * k * size &&
             picked.len == y.len && a_y.len == rows * size;
    const Py_ssize_t *labels = y.buf;
    for (Py_ssize_t r = 0; ok && r < rows; r++)
        ok = labels[r] >= 0 && labels[r] < k;
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "pick expected labels in 0..k-1, one per row of A");
    else if (is_double)
        pick_d(rows, k, A.buf, labels, picked.buf, a_y.buf, eps);
    else
        pick_f(rows, k, A.buf, labels, picked.buf, a_y.buf, (float)eps);
    PyBuffer_Release(&A);
    PyBuffer_Release(&y);
    PyBuffer_Release(&picked);
    PyBuffer_Release(&a_y);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"relu_forward", relu_forward, METH_VARARGS, "mask = Z >= 0; A = max(Z, 0)."},
    {"relu_backward", relu_backward, METH_VARARGS, "dLdZ = dLdA * mask."},
    {"shift_rows", shift_rows, METH_VARARGS, "E = Z - the maximum of each row."},
    {"sum_rows", sum_rows, METH_VARARGS, "The sum of the rows, in order."},
    {"nllm_grad", nllm_grad, METH_VARARGS, "(A - Y) * scale with Y one-hot."},
    {"add_row", add_row, METH_VARARGS, "Z += row, for each row of Z."},
    {"pick", pick, METH_VARARGS, "a_y = max(A[i, y_i], eps) and the flat indices."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_layers", NULL, -1, methods};

PyMODINIT_FUNC PyInit__layers(void) { return PyModule_Create(&module); }

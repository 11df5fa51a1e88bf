/* Adam's update in one pass over the arrays: the lines of Adam._update in
 * chainrule/optimizers.py, operation for operation and in the same precision, so that both
 * give the same bits (compiled with -ffp-contract=off: no fused multiply-adds; and with
 * -fno-math-errno, which lets sqrt be vectorised):
 *
 *     m ← β₁m + (1−β₁) g;   v ← β₂v + (1−β₂) g²
 *     W ← W − k m / (√v + ε̂),   k = η √(1−β₂ᵗ) / (1−β₁ᵗ),   ε̂ = eps √(1−β₂ᵗ)
 *
 * which is W ← W − η m̂ / (√v̂ + eps) with the bias corrections folded into two numbers.
 *
 * NumPy makes a dozen passes over the arrays for these lines; this loop reads each array
 * once, which is most of what a step costs when batches are small. It writes the new weights
 * to `out`, which may be W itself or another buffer (a ParameterBuffer's proposal, so that a
 * step that diverges leaves W as it was), and tells whether every new weight is finite,
 * which would otherwise take one more pass. A long pass may be split with one helper thread
 * (split.h): the same operations on each weight, so the same bits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "clones.h"
#include "split.h"

/* Never split a pass shorter than this; chainrule.kernels.MIN_SPLIT decides when to ask. */
#define ADAM_MIN_SPLIT 4096

typedef struct {
    const void *W, *g;
    void *m, *v, *out;
    double b1, c1, b2, c2, k, eps_hat;
} adam_args;

#define ADAM_LOOP(NAME, T, SQRT)                                                          \
    CLONES static int NAME(void *p, Py_ssize_t start, Py_ssize_t end) {                   \
        const adam_args *a = p;                                                           \
        const T *W = a->W, *g = a->g;                                                     \
        T *m = a->m, *v = a->v, *out = a->out;                                            \
        const T b1 = (T)a->b1, c1 = (T)a->c1, b2 = (T)a->b2, c2 = (T)a->c2, k = (T)a->k;  \
        const T eps_hat = (T)a->eps_hat;                                                  \
        int bad = 0;                                                                      \
        for (Py_ssize_t i = start; i < end; i++) {                                        \
            T gi = g[i];                                                                  \
            T mi = b1 * m[i] + c1 * gi;           /* m ← β₁m + (1−β₁) g */                \
            T vi = b2 * v[i] + c2 * (gi * gi);    /* v ← β₂v + (1−β₂) g² */               \
            T w = W[i] - (k * mi) / (SQRT(vi) + eps_hat);                                 \
            bad |= !(w - w == 0);                 /* w − w is NaN for ±∞ and NaN */       \
            out[i] = w;                                                                   \
            m[i] = mi;                                                                    \
            v[i] = vi;                                                                    \
        }                                                                                 \
        return bad;                                                                       \
    }

ADAM_LOOP(adam_float, float, sqrtf)
ADAM_LOOP(adam_double, double, sqrt)

/* adam(W, g, m, v, out, beta1, beta2, k, eps_hat, is_double, threads) -> bool
 * W and g readable, m, v and out writable contiguous buffers of n float32 (or float64)
 * values; out may be W. With threads >= 2, a long pass is split with one helper thread.
 * Returns whether every new weight is finite. */
static PyObject *adam(PyObject *self, PyObject *args) {
    Py_buffer bW, bg, bm, bv, bo;
    double beta1, beta2, k, eps_hat;
    int is_double, threads, bad = 1;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*ddddpi", &bW, &bg, &bm, &bv, &bo, &beta1, &beta2,
                          &k, &eps_hat, &is_double, &threads))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    Py_ssize_t n = bW.len / size;
    if (bg.len != bW.len || bm.len != bW.len || bv.len != bW.len || bo.len != bW.len ||
        bW.len % size) {
        PyErr_SetString(PyExc_ValueError, "adam expected buffers of equal length");
    } else {
        /* the constants in the arrays' precision, as Adam._update's NumPy scalars are */
        adam_args a = {bW.buf, bg.buf, bm.buf, bv.buf, bo.buf, beta1, 1.0 - beta1, beta2,
                       1.0 - beta2, k, eps_hat};
        if (!is_double) {
            a.b1 = (float)beta1; a.c1 = (float)(1.0 - beta1); a.b2 = (float)beta2;
            a.c2 = (float)(1.0 - beta2); a.k = (float)k; a.eps_hat = (float)eps_hat;
        }
        Py_BEGIN_ALLOW_THREADS
        bad = split_run(is_double ? adam_double : adam_float, &a, n, threads, ADAM_MIN_SPLIT,
                        64);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&bW);
    PyBuffer_Release(&bg);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bv);
    PyBuffer_Release(&bo);
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(!bad);
}

static PyMethodDef methods[] = {
    {"adam", adam, METH_VARARGS, "Adam's update of W, m and v in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_adam", NULL, -1, methods};

PyMODINIT_FUNC PyInit__adam(void) { return PyModule_Create(&module); }

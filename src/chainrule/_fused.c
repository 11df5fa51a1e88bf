/* Adam's update in one pass over the arrays: the arithmetic of Adam._update in
 * chainrule/optimizers.py, operation for operation and in the same precision, so that both
 * give the same bits (compiled with -ffp-contract=off: no fused multiply-adds; and with
 * -fno-math-errno, which lets sqrt be vectorised).
 *
 * NumPy's version makes 12 passes over W, g, m, v and a scratch array; this one reads each
 * array once, which is most of what a step costs when batches are small. It can write the
 * new weights to another array instead of W (fit's double buffer: W itself stays as it was,
 * ready to be kept if the step diverges) and it checks each new weight for NaN and ±∞ on the
 * way, which would otherwise take another pass. Built when a C compiler is available
 * (optional); chainrule.optimizers falls back to NumPy without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* Wider vector units where the CPU has them (x86-64 with GCC or Clang on Linux: the loop is
 * compiled for each target and the best one is chosen when the module loads). */
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#define ADAM_LOOP(NAME, T, SQRT)                                                \
    CLONES static int NAME(Py_ssize_t n, const T *W, const T *g, T *m, T *v, T *out, T b1, \
                           T c1, T b2, T c2, T e, T k) {                        \
        int bad = 0;                                                            \
        for (Py_ssize_t i = 0; i < n; i++) {                                    \
            T w = W[i], gi = g[i];                                              \
            T mi = m[i] * b1;           /* m ← β₁m + (1−β₁) g */                \
            mi = mi + gi * c1;                                                  \
            T vi = v[i] * b2;           /* v ← β₂v + (1−β₂) g² */               \
            vi = vi + (gi * gi) * c2;                                           \
            T s = SQRT(vi) + e;         /* W ← W − k m / (√v + ε̂) */            \
            s = mi / s;                                                         \
            w = w - s * k;                                                      \
            bad |= !(w - w == 0);       /* w − w is NaN for ±∞ and NaN */       \
            out[i] = w;                 /* out is W itself, or fit's other buffer */ \
            m[i] = mi;                                                          \
            v[i] = vi;                                                          \
        }                                                                       \
        return !bad;                                                            \
    }

ADAM_LOOP(adam_float, float, sqrtf)
ADAM_LOOP(adam_double, double, sqrt)

/* adam(W, g, m, v, beta1, beta2, eps_hat, step_size, is_double[, out]) -> bool
 * W, m, v (and out) writable and g readable contiguous buffers of n float32 (or float64)
 * values. The new weights go to out when it is given (W is then left as it was), else to W.
 * Returns whether every new weight is finite. */
static PyObject *adam(PyObject *self, PyObject *args) {
    Py_buffer bW, bg, bm, bv, bo = {.buf = NULL, .obj = NULL};
    double beta1, beta2, eps_hat, step_size;
    int is_double, finite = 0;
    if (!PyArg_ParseTuple(args, "w*y*w*w*ddddp|w*", &bW, &bg, &bm, &bv, &beta1, &beta2,
                          &eps_hat, &step_size, &is_double, &bo))
        return NULL;
    Py_ssize_t size = is_double ? 8 : 4;
    Py_ssize_t n = bW.len / size;
    if (bg.len != bW.len || bm.len != bW.len || bv.len != bW.len || bW.len % size ||
        (bo.obj && bo.len != bW.len)) {
        PyErr_SetString(PyExc_ValueError, "adam expected buffers of equal length");
    } else {
        void *out = bo.obj ? bo.buf : bW.buf;
        Py_BEGIN_ALLOW_THREADS
        if (is_double)
            finite = adam_double(n, (const double *)bW.buf, (const double *)bg.buf,
                                 (double *)bm.buf, (double *)bv.buf, (double *)out, beta1,
                                 1.0 - beta1, beta2, 1.0 - beta2, eps_hat, step_size);
        else
            finite = adam_float(n, (const float *)bW.buf, (const float *)bg.buf,
                                (float *)bm.buf, (float *)bv.buf, (float *)out, (float)beta1,
                                (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2),
                                (float)eps_hat, (float)step_size);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&bW);
    PyBuffer_Release(&bg);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bv);
    if (bo.obj)
        PyBuffer_Release(&bo);
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(finite);
}

static PyMethodDef methods[] = {
    {"adam", adam, METH_VARARGS, "Adam's update of W, m and v in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fused", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fused(void) { return PyModule_Create(&module); }

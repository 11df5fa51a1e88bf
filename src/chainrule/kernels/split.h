/* One helper thread for a long elementwise pass: the first half of the range on the calling
 * thread, the second on the helper, the two results combined. Each element is computed by
 * the same code whichever thread runs it, so the bits never depend on the split.
 *
 * The helper is started on the first pass long enough to split (a pthread, never pinned to
 * a CPU) and then sleeps on a condition variable between passes, so that it takes no CPU
 * from BLAS's threads while the matrix products run. Whichever thread gets to the second
 * half first does it. The caller asks for two threads only within the BLAS thread limit
 * (chainrule.kernels reads it); one caller at a time gets the helper (another runs its pass
 * alone), and a process forked from this one starts anew.
 */
#ifndef CHAINRULE_SPLIT_H
#define CHAINRULE_SPLIT_H

#include <Python.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* A part of a pass: elements [start, end) of the arrays behind `args`; returns a flag that
 * the parts' results are OR-ed into (here: "some new value is not finite"). */
typedef int (*split_part)(void *args, Py_ssize_t start, Py_ssize_t end);

static struct {
    pthread_mutex_t busy;  /* held by the caller that is using the helper */
    pthread_mutex_t lock;  /* guards `work` and the condition variable */
    pthread_cond_t wake;
    int started, work;
    atomic_int claimed;    /* the second half was taken: by the helper, or by the caller */
    atomic_int done;       /* the helper has finished the second half */
    split_part part;
    void *args;
    Py_ssize_t start, end;
    int flag;
} split_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static int split_claim(void) {
    int expected = 0;
    return atomic_compare_exchange_strong(&split_pool.claimed, &expected, 1);
}

static void *split_helper(void *unused) {
    (void)unused;
    pthread_mutex_lock(&split_pool.lock);
    for (;;) {
        while (!split_pool.work)
            pthread_cond_wait(&split_pool.wake, &split_pool.lock);
        split_pool.work = 0;
        pthread_mutex_unlock(&split_pool.lock);
        if (split_claim()) { /* else the caller got there first and does it itself */
            split_pool.flag = split_pool.part(split_pool.args, split_pool.start, split_pool.end);
            atomic_store_explicit(&split_pool.done, 1, memory_order_release);
        }
        pthread_mutex_lock(&split_pool.lock);
    }
    return NULL;
}

static void split_after_fork(void) {
    /* the child has no helper thread, and the locks may have been held by another thread */
    pthread_mutex_init(&split_pool.busy, NULL);
    pthread_mutex_init(&split_pool.lock, NULL);
    pthread_cond_init(&split_pool.wake, NULL);
    split_pool.started = split_pool.work = 0;
}

static int split_start(void) {
    pthread_t t;
    pthread_attr_t attr;
    if (split_pool.started)
        return 1;
    if (pthread_attr_init(&attr))
        return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int ok = pthread_create(&t, &attr, split_helper, NULL) == 0;
    pthread_attr_destroy(&attr);
    if (ok) {
        pthread_atfork(NULL, NULL, split_after_fork);
        split_pool.started = 1;
    }
    return ok;
}

/* Run part over [0, n): split in two at a multiple of `align` elements when `threads` >= 2
 * and n >= `min_split`, else on this thread alone. The caller does the first half; if the
 * helper has not begun the second by then (it may not have a CPU: other processes are
 * running), the caller takes that too, so a busy machine costs no more than one thread.
 * Call without the GIL. */
static int split_run(split_part part, void *args, Py_ssize_t n, int threads,
                     Py_ssize_t min_split, Py_ssize_t align) {
    if (threads < 2 || n < min_split || pthread_mutex_trylock(&split_pool.busy) != 0)
        return part(args, 0, n);
    if (!split_start()) {
        pthread_mutex_unlock(&split_pool.busy);
        return part(args, 0, n);
    }
    Py_ssize_t half = n / 2 / align * align;
    split_pool.part = part;
    split_pool.args = args;
    split_pool.start = half;
    split_pool.end = n;
    atomic_store_explicit(&split_pool.done, 0, memory_order_relaxed);
    atomic_store_explicit(&split_pool.claimed, 0, memory_order_release);
    pthread_mutex_lock(&split_pool.lock);
    split_pool.work = 1;
    pthread_cond_signal(&split_pool.wake);
    pthread_mutex_unlock(&split_pool.lock);
    int flag = part(args, 0, half);
    if (split_claim()) {
        flag |= part(args, half, n);
    } else {
        for (long spins = 0; !atomic_load_explicit(&split_pool.done, memory_order_acquire);
             spins++)
            if (spins > 2000)
                sched_yield(); /* the helper lost its CPU: let it have this one */
        flag |= split_pool.flag;
    }
    pthread_mutex_unlock(&split_pool.busy);
    return flag;
}

#endif

/*
 * The compiled line solver's interface for other compiled modules of arma_core (the torch
 * autograd node, backends/_lines_torch.cpp): the capsule "arma_core.backends._lines_c._C_API"
 * holds a LinesCApi. Its functions take raw buffers, touch no Python object and need no GIL;
 * they are the same code as the module's Python functions (solve, vjp, theta_grad,
 * advise_hugepages), which call them.
 */
#ifndef ARMA_LINES_C_API_H
#define ARMA_LINES_C_API_H

#include <stddef.h>
#include <stdint.h>

#define LINES_C_API_VERSION 2
#define LINES_C_API_CAPSULE "arma_core.backends._lines_c._C_API"

/* what solve and vjp return */
enum { LINES_OK = 0, LINES_NOT_A_PLAN = 1, LINES_WRONG_DIRECTION = 2, LINES_BAD_SIZES = 3, LINES_NO_MEMORY = 4 };

/* One part of a kernel's work: the items [lo, hi) of its range */
typedef void (*lines_work_fn)(void *ctx, int64_t lo, int64_t hi, int part);

/* Where solve and vjp run the parts of their work (a NULL runner: on threads of their own,
 * started per call). run must call fn(ctx, n * t / parts, n * (t + 1) / parts, t) exactly once
 * for every t in [0, parts), concurrently or not, and return when all calls have returned; the
 * results do not depend on how (every part writes its own items). The torch node passes one
 * that runs them on torch's intra-op threads, which are awake after the operators around the
 * solve (threads of its own would compete with them for the cores). */
typedef struct LinesRunner {
    void (*run)(const struct LinesRunner *self, lines_work_fn fn, void *ctx, int64_t n, int parts);
} LinesRunner;

typedef struct {
    int version; /* LINES_C_API_VERSION */
    /* dst = A^{-1} src (A^{-T}: a transposed plan and rev = 1) for P blocks; buffer sizes in
     * bytes, checked against the plan; up to `threads` parts run by runner. dst may be src
     * (same precision): each block is read into a work copy before any of it is written */
    int (*solve)(const void *plan, size_t plan_len, const void *src, size_t src_len, int src_f32, void *dst,
                 size_t dst_len, int dst_f32, long long P, int rev, int threads, const LinesRunner *runner);
    /* the backward of a solve (Theorem 4): w = A^{-T} g (A^{-1} g when adjoint), and with
     * need_taps the taps' gradient into gtaps (C, k, Q, 3) float64; y, g, w: len bytes each;
     * w may be g (the taps' sums read w and y only) */
    int (*vjp)(const void *plan, size_t plan_len, const void *y, const void *g, void *w, size_t len, double *gtaps,
               size_t gtaps_len, long long P, int f32, int adjoint, int need_taps, int threads,
               const LinesRunner *runner);
    /* out (R, m) = gtaps (R, 3) x jac (R, 3, m): a parameter's gradient from its taps' through
     * the reparameterization's Jacobian, in jac's precision (float when f32) */
    void (*theta_grad)(const double *gtaps, const void *jac, void *out, long long R, long long m, int f32);
    /* back a fresh buffer with transparent huge pages (a hint; from HUGE_MIN bytes up) */
    void (*advise_hugepages)(void *ptr, size_t nbytes);
    /* the message of a nonzero code of solve / vjp */
    const char *(*message)(int code);
} LinesCApi;

#endif

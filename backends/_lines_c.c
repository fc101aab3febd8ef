/*
 * The compiled line solver of arma_core (method="lines"): a CPython extension, built by the
 * install step (setup.py), optional. The math and the operators are documented in
 * backends/_lines.py (the Python driver that calls this module); this file holds the loops.
 *
 * Conventions
 * - A signal is P blocks (batch x channel, channel p % C) of shape (n1, n2, n3), C-contiguous,
 *   float32 or float64; leading block sizes are 1 when it has k < 3 spatial axes. 1-D signals
 *   (k == 1) are P rows of length n3.
 * - Recurrences run in float64, except for float32 blocks (circular or zeros) whose channel's
 *   factors are well conditioned (work32_ok): those run in float32 (solve_block32).
 * - A plan (bytes) holds, per block axis and per (channel, factor), the Thomas factors of T
 *   (the factor with the zeros rule) and the Woodbury correction M of the boundary
 *   (A_f^{-1} t = z - M z[cols], z = T^{-1} t), plus the taps themselves.
 * - Pivots of the d interleaved chains are identical and converge: p[i] and l[i] are stored
 *   for i < S only; from S on they are the constants pinf, linf (exactly: the recurrence is
 *   deterministic once a pivot repeats).
 * - M is stored only outside the rows [lo, hi) where it is zero (entries below 2^-53 of its
 *   largest dropped), column by column.
 * - Work is split over threads by contiguous ranges of blocks (or groups of rows), so results
 *   do not depend on the thread count; the GIL is released around the loops.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <pthread.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "_lines_c_api.h"

typedef int64_t i64;

/* Hot kernels get an AVX2+FMA and an AVX-512 clone next to the baseline build on x86-64 glibc
 * (chosen at load time by the dynamic linker); helpers are inlined into each clone. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && !defined(ARMA_NO_CLONES)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* GCC and Clang vector extensions (lowered to whatever each clone's instruction set has): the
 * recurrences keep their carried rows in registers and the transposes shuffle 4 x 4 blocks;
 * other compilers take the plain loops. */
#if defined(__GNUC__)
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef float f8v __attribute__((vector_size(32)));
#if defined(__clang__)
#define SHUF4(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define SHUF4(a, b, i, j, k, l) __builtin_shuffle(a, b, (v4i){i, j, k, l})
#endif
INLINE v4d ld4(const double *p) {
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void st4(double *p, v4d v) { memcpy(p, &v, sizeof v); }
INLINE void st4f(float *p, v4d v) {
    v4f f = __builtin_convertvector(v, v4f);
    memcpy(p, &f, sizeof f);
}
/* Eight float64 lanes, in two forms chosen at run time (lanes_wide, set at import):
 * - w8: one 64-byte vector, native to AVX-512 (one register per 8 lanes);
 * - h8: two 4-lane halves. A 64-byte vector type is native only to the AVX-512 clone; in the
 *   AVX2 clone and the baseline GCC lowers it piecewise, through the stack, which made every
 *   carried row of the recurrences a store and a reload and the solver 4-10x slower on AVX2
 *   processors. Two halves stay in registers there.
 * Both compute the same lanes with the same operations in the same order (bit-identical
 * results); the form that does not fit a clone is compiled but not run (ARMA_LINES_WIDE=0/1 in
 * the environment at import overrides the choice, for tests). ARMA_NO_WIDE drops the w8 form. */
typedef struct {
    v4d lo, hi;
} h8_t;
INLINE h8_t h8_ld(const double *p) {
    h8_t v = {ld4(p), ld4(p + 4)};
    return v;
}
/* float32 loads widened element by element: GCC 12 makes one vcvtps2pd of each (its lowering of
 * __builtin_convertvector on a loaded vector took two half conversions and extra moves) */
INLINE h8_t h8_ldf(const float *p) {
    h8_t v = {{p[0], p[1], p[2], p[3]}, {p[4], p[5], p[6], p[7]}};
    return v;
}
INLINE void h8_st(double *p, h8_t v) {
    st4(p, v.lo);
    st4(p + 4, v.hi);
}
/* The recurrences' arithmetic on a lane form W made of two halves (W_t with members lo, hi) of
 * scalar type T: x - s c, (y - s c) p and x p, half by half (h8 here, f16h for float32). */
#define HALVES_ARITH(W, T)                                                                                             \
    INLINE W##_t W##_sub_mul(W##_t x, T s, W##_t c) {                                                                  \
        W##_t v = {x.lo - s * c.lo, x.hi - s * c.hi};                                                                  \
        return v;                                                                                                      \
    }                                                                                                                  \
    INLINE W##_t W##_sub_mul_scale(W##_t y, T s, W##_t c, T p) {                                                       \
        W##_t v = {(y.lo - s * c.lo) * p, (y.hi - s * c.hi) * p};                                                      \
        return v;                                                                                                      \
    }                                                                                                                  \
    INLINE W##_t W##_scale(W##_t x, T p) {                                                                             \
        W##_t v = {x.lo * p, x.hi * p};                                                                                \
        return v;                                                                                                      \
    }
HALVES_ARITH(h8, double)
/* acc + a b */
INLINE h8_t h8_madd(h8_t acc, h8_t a, h8_t b) {
    h8_t v = {acc.lo + a.lo * b.lo, acc.hi + a.hi * b.hi};
    return v;
}
INLINE h8_t h8_zero(void) {
    h8_t v = {{0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}};
    return v;
}
/* *d += the lanes 0, 1, ..., 7 in turn */
INLINE void h8_add_lanes(double *d, h8_t a) {
    for (int l = 0; l < 4; l++) *d += a.lo[l];
    for (int l = 0; l < 4; l++) *d += a.hi[l];
}
#ifndef ARMA_NO_WIDE
#define WIDE 1
typedef double w8_t __attribute__((vector_size(64)));
typedef long long v8i __attribute__((vector_size(64)));
#if defined(__clang__)
#define SHUF8(a, b, i, j, k, l, m, n, o, p) __builtin_shufflevector(a, b, i, j, k, l, m, n, o, p)
#else
#define SHUF8(a, b, i, j, k, l, m, n, o, p) __builtin_shuffle(a, b, (v8i){i, j, k, l, m, n, o, p})
#endif
INLINE w8_t w8_ld(const double *p) {
    w8_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE w8_t w8_ldf(const float *p) {
    w8_t v = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]}; /* see h8_ldf */
    return v;
}
INLINE void w8_st(double *p, w8_t v) { memcpy(p, &v, sizeof v); }
INLINE w8_t w8_sub_mul(w8_t x, double s, w8_t c) { return x - s * c; }
INLINE w8_t w8_sub_mul_scale(w8_t y, double s, w8_t c, double p) { return (y - s * c) * p; }
INLINE w8_t w8_scale(w8_t x, double p) { return x * p; }
#else
#define WIDE 0
#endif
/* 1: the w8 form (the processor has AVX-512F), 0: the h8 form; set by the module's init */
static int lanes_wide = 0;
/* the columns c[0..3] of the 4 x 4 block whose rows start at s, s + ls, s + 2 ls, s + 3 ls */
INLINE void tr4(const double *s, i64 ls, v4d *c) {
    v4d r0 = ld4(s), r1 = ld4(s + ls), r2 = ld4(s + 2 * ls), r3 = ld4(s + 3 * ls);
    v4d t0 = SHUF4(r0, r1, 0, 4, 2, 6), t1 = SHUF4(r0, r1, 1, 5, 3, 7);
    v4d t2 = SHUF4(r2, r3, 0, 4, 2, 6), t3 = SHUF4(r2, r3, 1, 5, 3, 7);
    c[0] = SHUF4(t0, t2, 0, 1, 4, 5);
    c[1] = SHUF4(t1, t3, 0, 1, 4, 5);
    c[2] = SHUF4(t0, t2, 2, 3, 6, 7);
    c[3] = SHUF4(t1, t3, 2, 3, 6, 7);
}
/* Float32 work copies (solve_block32): sixteen float32 lanes, in the same two forms as the
 * float64 lanes (f16w: one 64-byte vector, AVX-512; f16h: two 8-lane halves elsewhere). */
typedef int v4si __attribute__((vector_size(16)));
typedef struct {
    f8v lo, hi;
} f16h_t;
INLINE f16h_t f16h_ld(const float *p) {
    f16h_t v;
    memcpy(&v.lo, p, sizeof v.lo);
    memcpy(&v.hi, p + 8, sizeof v.hi);
    return v;
}
INLINE void f16h_st(float *p, f16h_t v) {
    memcpy(p, &v.lo, sizeof v.lo);
    memcpy(p + 8, &v.hi, sizeof v.hi);
}
HALVES_ARITH(f16h, float)
#if WIDE
typedef float f16w_t __attribute__((vector_size(64)));
INLINE f16w_t f16w_ld(const float *p) {
    f16w_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void f16w_st(float *p, f16w_t v) { memcpy(p, &v, sizeof v); }
INLINE f16w_t f16w_sub_mul(f16w_t x, float s, f16w_t c) { return x - s * c; }
INLINE f16w_t f16w_sub_mul_scale(f16w_t y, float s, f16w_t c, float p) { return (y - s * c) * p; }
INLINE f16w_t f16w_scale(f16w_t x, float p) { return x * p; }
#endif
#if defined(__clang__)
#define SHUF4F(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define SHUF4F(a, b, i, j, k, l) __builtin_shuffle(a, b, (v4si){i, j, k, l})
#endif
/* tr4 on float32 */
INLINE void tr4f(const float *s, i64 ls, v4f *c) {
    v4f r0, r1, r2, r3;
    memcpy(&r0, s, 16);
    memcpy(&r1, s + ls, 16);
    memcpy(&r2, s + 2 * ls, 16);
    memcpy(&r3, s + 3 * ls, 16);
    v4f t0 = SHUF4F(r0, r1, 0, 4, 2, 6), t1 = SHUF4F(r0, r1, 1, 5, 3, 7);
    v4f t2 = SHUF4F(r2, r3, 0, 4, 2, 6), t3 = SHUF4F(r2, r3, 1, 5, 3, 7);
    c[0] = SHUF4F(t0, t2, 0, 1, 4, 5);
    c[1] = SHUF4F(t1, t3, 0, 1, 4, 5);
    c[2] = SHUF4F(t0, t2, 2, 3, 6, 7);
    c[3] = SHUF4F(t1, t3, 2, 3, 6, 7);
}
#define VEC 1
#else
#define VEC 0
#endif

#define STRIP 32          /* rows of the last axis solved together after a transpose */
#define STRIP_MAX_N 128   /* longer last axes with one factor take the scalar chains */
/* Samples of a plane from which solve_block and solve_block32 transpose the last axis back into
 * the work copy and copy (or convert) the plane to dst in one sequential pass, instead of
 * transposing into dst: written in transposed tiles, dst's lines arrive scattered over the
 * plane, and from about 8 KiB of float32 or 16 KiB of float64 on, the work copy, the strip and
 * dst's lines no longer share the 48 KiB L1. Measured side by side in one process
 * (docs/performance.md): float32 solves 1.1-1.3x faster at 32 x 64, 64 x 64 and 96 x 96, no
 * change at 32 x 48 and 48 x 48, up to 10% slower at 32 x 32; float64 work copies 1.1-1.3x
 * faster at 64 x 64, mixed at 32 x 32. */
#define STAGE_MIN 2048
#define MAX_THREADS 256

enum { B_CIRCULAR = 0, B_ZEROS = 1, B_REFLECT = 2, B_REPLICATE = 3 };

static i64 imin(i64 a, i64 b) { return a < b ? a : b; }

/* Scratch of the hot loops on 64-byte boundaries: their vectors are 64 bytes (AVX-512), and an
 * access that straddles two cache lines costs two. afree releases what amalloc returned. */
static void *amalloc(size_t bytes) {
    char *raw = (char *)malloc(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t at = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)at)[-1] = raw;
    return (void *)at;
}
static void afree(void *p) {
    if (p) free(((void **)p)[-1]);
}
static i64 imax(i64 a, i64 b) { return a > b ? a : b; }

/* Ask for the next block while this one is computed: blocks are a few pages each, and the
 * hardware prefetchers do not run ahead across pages. Always inlined: as a separate function
 * GCC's interprocedural analysis finds it free of side effects and deletes its calls (GCC 12
 * emitted no prefetch instruction at all while this was a plain static function). */
INLINE void prefetch(const void *p, size_t bytes) {
#if defined(__GNUC__)
    const char *c = (const char *)p;
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 3);
#else
    (void)p;
    (void)bytes;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* threads: fn(ctx, lo, hi, tid) over contiguous ranges of [0, n)                              */

typedef lines_work_fn work_fn; /* fn(ctx, lo, hi, part) */

typedef struct {
    work_fn fn;
    void *ctx;
    i64 lo, hi;
    int tid;
} Job;

#ifdef _WIN32
static DWORD WINAPI job_main(LPVOID arg) {
    Job *j = (Job *)arg;
    j->fn(j->ctx, j->lo, j->hi, j->tid);
    return 0;
}
#else
static void *job_main(void *arg) {
    Job *j = (Job *)arg;
    j->fn(j->ctx, j->lo, j->hi, j->tid);
    return NULL;
}
#endif

/* Runs fn over [0, n) in `threads` contiguous parts: by runner where one is given (see
 * LinesRunner), else on threads started here (the caller's thread takes part 0; a part whose
 * thread cannot be started runs on the caller's thread: the result is the same). */
static void run_parallel(work_fn fn, void *ctx, i64 n, int threads, const LinesRunner *runner) {
    if (threads > n) threads = (int)n;
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    if (runner) {
        runner->run(runner, fn, ctx, n, threads);
        return;
    }
    Job jobs[MAX_THREADS];
    int started[MAX_THREADS];
#ifdef _WIN32
    HANDLE handles[MAX_THREADS];
#else
    pthread_t handles[MAX_THREADS];
#endif
    for (int t = 0; t < threads; t++) {
        jobs[t].fn = fn;
        jobs[t].ctx = ctx;
        jobs[t].lo = n * t / threads;
        jobs[t].hi = n * (t + 1) / threads;
        jobs[t].tid = t;
        started[t] = 0;
    }
    for (int t = 1; t < threads; t++) {
#ifdef _WIN32
        handles[t] = CreateThread(NULL, 0, job_main, &jobs[t], 0, NULL);
        started[t] = handles[t] != NULL;
#else
        started[t] = pthread_create(&handles[t], NULL, job_main, &jobs[t]) == 0;
#endif
    }
    fn(ctx, jobs[0].lo, jobs[0].hi, 0);
    for (int t = 1; t < threads; t++) {
        if (started[t]) {
#ifdef _WIN32
            WaitForSingleObject(handles[t], INFINITE);
            CloseHandle(handles[t]);
#else
            pthread_join(handles[t], NULL);
#endif
        } else {
            fn(ctx, jobs[t].lo, jobs[t].hi, t);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* boundary rules and the structure of E = A_f - T                                              */

/* index in [0, n) of the sample at position p, or n for a zero (arma_core.boundary.source) */
static i64 source(i64 p, i64 n, int b) {
    if (p >= 0 && p < n) return p;
    if (b == B_CIRCULAR) {
        i64 q = p % n;
        return q < 0 ? q + n : q;
    }
    if (b == B_ZEROS) return n;
    if (b == B_REPLICATE) return p < 0 ? 0 : n - 1;
    if (n == 1) return 0; /* reflect */
    i64 m = 2 * n - 2;
    i64 q = p % m;
    if (q < 0) q += m;
    return q < n ? q : m - q;
}

/* Entries of E as (row, col, tap): tap 0 carries f_-1 (it multiplies y[i + d]), 2 carries f_1.
 * Only the first and last d rows have them; at most 2 * min(n, 2 d) entries. */
typedef struct {
    i64 cnt;
    i64 *row, *col, *tap;
} Edges;

static int edges_build(i64 n, i64 d, int b, Edges *e) {
    i64 cap = 2 * imin(n, 2 * d) + 2;
    e->cnt = 0;
    e->row = (i64 *)malloc(3 * cap * sizeof(i64));
    if (!e->row) return -1;
    e->col = e->row + cap;
    e->tap = e->col + cap;
    i64 head = imin(d, n);
    i64 tail = imax(head, n - d);
    for (i64 i = 0; i < n; i++) {
        if (i == head && i < tail) i = tail;
        if (i >= n) break;
        for (int s = 0; s < 2; s++) {
            i64 p = s == 0 ? i + d : i - d;
            if (p >= 0 && p < n) continue;
            i64 j = source(p, n, b);
            if (j < n) {
                e->row[e->cnt] = i;
                e->col[e->cnt] = j;
                e->tap[e->cnt] = s == 0 ? 0 : 2;
                e->cnt++;
            }
        }
    }
    return 0;
}

static void edges_free(Edges *e) { free(e->row); }

/* sorted unique values of v[0..cnt) into u; returns their number */
static i64 unique_sorted(const i64 *v, i64 cnt, i64 *u) {
    i64 m = 0;
    for (i64 e = 0; e < cnt; e++) {
        i64 x = v[e], pos = 0;
        while (pos < m && u[pos] < x) pos++;
        if (pos < m && u[pos] == x) continue;
        memmove(u + pos + 1, u + pos, (size_t)(m - pos) * sizeof(i64));
        u[pos] = x;
        m++;
    }
    return m;
}

static i64 index_of(const i64 *u, i64 m, i64 x) {
    for (i64 i = 0; i < m; i++)
        if (u[i] == x) return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* plans                                                                                        */

#define PLAN_MAGIC 0x34304e4c414d5241LL

typedef struct {
    i64 n;     /* length (1 for block axes the signal does not have) */
    i64 nc;    /* correction columns */
    i64 cols;  /* byte offset of i64[nc] */
    i64 fac;   /* byte offset of Fac[C * Q] (0 for absent axes) */
    /* small planes: each channel's inverse of this axis (the last axis's transposed) as n rows
     * of n entries, row i at (channel's start) + i * rs, channels cs entries apart: a matrix
     * (rs = n, cs = n * n) or a circulant's first row doubled (rs = -1, cs = 2 n: row i starts
     * n - i entries into 2 n values, one period after another) */
    i64 dense;   /* byte offset of channel 0's row 0 in doubles (0: none) */
    i64 dense32; /* the same in floats (planes of rows of 16; 0: none) */
    i64 rs, cs;  /* row and channel strides, in entries */
} Axis;

typedef struct {
    double sup, linf, pinf; /* f_-1 of T; multiplier and reciprocal pivot for rows >= S */
    i64 S, lo, hi;          /* explicit rows [0, S); M is zero on rows [lo, hi) */
    i64 l, p, M;            /* byte offsets: double[S], double[S], double[nc * (lo + n - hi)] */
} Fac;

typedef struct {
    i64 magic, C, k, Q, d, boundary, transposed, zrows;
    i64 taps; /* byte offset of double[C * k * Q * 3], the taps as given */
    Axis ax[3];
} Plan;

/* one factor's operators, resolved to pointers */
typedef struct {
    double sup, linf, pinf;
    i64 S, lo, hi, n, nc, mlen;
    const double *l, *p, *M;
    const i64 *cols;
} FV;

static FV fac_view(const Plan *pl, int b, i64 c, i64 q) {
    const char *base = (const char *)pl;
    const Axis *ax = &pl->ax[b];
    const Fac *f = (const Fac *)(base + ax->fac) + (c * pl->Q + q);
    FV v;
    v.sup = f->sup;
    v.linf = f->linf;
    v.pinf = f->pinf;
    v.S = f->S;
    v.lo = f->lo;
    v.hi = f->hi;
    v.n = ax->n;
    v.nc = ax->nc;
    v.mlen = f->lo + ax->n - f->hi;
    v.l = (const double *)(base + f->l);
    v.p = (const double *)(base + f->p);
    v.M = (const double *)(base + f->M);
    v.cols = (const i64 *)(base + ax->cols);
    return v;
}

INLINE double Lof(const FV *v, i64 i) { return i < v->S ? v->l[i] : v->linf; }
INLINE double Pof(const FV *v, i64 i) { return i < v->S ? v->p[i] : v->pinf; }
INLINE double Mof(const FV *v, i64 j, i64 i) { return v->M[j * v->mlen + (i < v->lo ? i : v->lo + i - v->hi)]; }

/* One factor's operators before they are packed into the plan. */
typedef struct {
    double sup, linf, pinf;
    i64 S, lo, hi;
    double *l, *p, *M; /* one allocation at l */
} FacTmp;

typedef struct {
    i64 n, d, m, nc, ecnt;
    const i64 *urows, *ucols, *ri, *ci, *etap;
} Structure;

/* K = I + V^T T^{-1} U and X = K^{-1} Ec (m x nc) by Gaussian elimination with partial pivoting */
static void solve_small(double *K, double *X, const double *Ec, const double *W, const Structure *s, i64 n) {
    i64 m = s->m, nc = s->nc;
    for (i64 a = 0; a < m; a++) {
        for (i64 b = 0; b < m; b++) {
            double acc = a == b ? 1.0 : 0.0;
            for (i64 j = 0; j < nc; j++) acc += Ec[a * nc + j] * W[b * n + s->ucols[j]];
            K[a * m + b] = acc;
        }
        for (i64 b = 0; b < nc; b++) X[a * nc + b] = Ec[a * nc + b];
    }
    for (i64 col = 0; col < m; col++) {
        i64 piv = col;
        for (i64 r = col + 1; r < m; r++)
            if (fabs(K[r * m + col]) > fabs(K[piv * m + col])) piv = r;
        if (piv != col) {
            for (i64 b = 0; b < m; b++) {
                double t = K[col * m + b];
                K[col * m + b] = K[piv * m + b];
                K[piv * m + b] = t;
            }
            for (i64 b = 0; b < nc; b++) {
                double t = X[col * nc + b];
                X[col * nc + b] = X[piv * nc + b];
                X[piv * nc + b] = t;
            }
        }
        double inv = 1.0 / K[col * m + col];
        for (i64 r = col + 1; r < m; r++) {
            double g = K[r * m + col] * inv;
            if (g != 0.0) {
                for (i64 b = col; b < m; b++) K[r * m + b] -= g * K[col * m + b];
                for (i64 b = 0; b < nc; b++) X[r * nc + b] -= g * X[col * nc + b];
            }
        }
    }
    for (i64 col = m - 1; col >= 0; col--) {
        for (i64 b = 0; b < nc; b++) {
            double x = X[col * nc + b];
            for (i64 r = col + 1; r < m; r++) x -= K[col * m + r] * X[r * nc + b];
            X[col * nc + b] = x / K[col * m + col];
        }
    }
}

/* zero the entries of M^T (nc x n) at most cut; [lo, hi) = the longest run of rows of M left
 * zero; the rest stored column by column in out->M */
static void drop_and_store(double *Mt, i64 nc, i64 n, double cut, FacTmp *out) {
    i64 best0 = 0, best1 = 0, run0 = -1;
    for (i64 i = 0; i < n; i++) {
        int keep = 0;
        for (i64 b = 0; b < nc; b++) {
            if (fabs(Mt[b * n + i]) > cut)
                keep = 1;
            else
                Mt[b * n + i] = 0.0;
        }
        if (keep) {
            run0 = -1;
        } else {
            if (run0 < 0) run0 = i;
            if (i + 1 - run0 > best1 - best0) {
                best0 = run0;
                best1 = i + 1;
            }
        }
    }
    out->lo = best0;
    out->hi = best1;
    i64 len = best0 + n - best1;
    for (i64 b = 0; b < nc; b++) {
        memcpy(out->M + b * len, Mt + b * n, (size_t)best0 * sizeof(double));
        memcpy(out->M + b * len + best0, Mt + b * n + best1, (size_t)(n - best1) * sizeof(double));
    }
}

/* scratch of factor_build for an axis of length n: chain pivots, W, M^T, K, Ec, X */
static i64 factor_scratch_size(const Structure *s) {
    i64 n = s->n, m = s->m, nc = s->nc, steps = (n + s->d - 1) / s->d;
    return 2 * steps + 1 + n * m + n * nc + 2 * m * m + 2 * m * nc;
}

/* Thomas factors of T and the Woodbury correction M for one factor (fm, f0, fp) of T, where E's
 * entries take their values from the untransposed taps f (module comment). The results go to
 * res (factor_result_size doubles: l, p, then M at its largest; pages past what is used stay
 * untouched). */
static void factor_build(const Structure *s, double fm, double f0, double fp, const double *f, FacTmp *out,
                         double *scratch, double *res) {
    i64 n = s->n, d = s->d, m = s->m, nc = s->nc;
    /* the d chains are identical: chain step t covers rows [t d, (t + 1) d) */
    i64 steps = (n + d - 1) / d;
    double *P = scratch, *Lc = P + steps;
    P[0] = f0;
    Lc[0] = 0.0;
    i64 conv = steps; /* first chain step from which l and p are constant */
    for (i64 t = 1; t < steps; t++) {
        double li = fp / P[t - 1];
        Lc[t] = li;
        P[t] = f0 - li * fm;
        if (P[t] == P[t - 1]) {
            conv = t;
            break;
        }
    }
    i64 S = imin(n, conv * d);
    out->sup = fm;
    out->S = S;
    out->linf = conv < steps ? Lc[conv] : 0.0;
    out->pinf = conv < steps ? 1.0 / P[conv] : 1.0;
    out->lo = 0;
    out->hi = n;
    out->l = res;
    out->p = out->l + S;
    out->M = out->p + S;
    for (i64 i = 0; i < S; i++) {
        out->l[i] = Lc[i / d];
        out->p[i] = 1.0 / P[i / d];
    }
    if (m == 0) return;
    FV v = {0};
    v.S = S;
    v.l = out->l;
    v.p = out->p;
    v.linf = out->linf;
    v.pinf = out->pinf;
    /* W = T^{-1} U, column kk holds T^{-1} e_{urows[kk]} */
    double *W = Lc + steps + 1, *Mt = W + n * m, *K = Mt + n * nc, *Ec = K + m * m, *X = Ec + m * nc;
    for (i64 kk = 0; kk < m; kk++) {
        double *w = W + kk * n;
        i64 u = s->urows[kk];
        for (i64 i = 0; i < n; i++) w[i] = 0.0;
        w[u] = 1.0;
        for (i64 i = u + d; i < n; i += d) w[i] = -Lof(&v, i) * w[i - d];
        for (i64 i = n - 1; i >= imax(n - d, 0); i--) w[i] *= Pof(&v, i);
        for (i64 i = n - 1 - d; i >= 0; i--) w[i] = (w[i] - fm * w[i + d]) * Pof(&v, i);
    }
    for (i64 a = 0; a < m * nc; a++) Ec[a] = 0.0;
    for (i64 e = 0; e < s->ecnt; e++) Ec[s->ri[e] * nc + s->ci[e]] += f[s->etap[e]];
    solve_small(K, X, Ec, W, s, n);
    /* M^T = (W X)^T, row b of M^T is column b of M; entries below 2^-53 of the largest dropped */
    double big = 0.0;
    for (i64 b = 0; b < nc; b++) {
        double *mb = Mt + b * n;
        for (i64 i = 0; i < n; i++) mb[i] = 0.0;
        for (i64 a = 0; a < m; a++) {
            double x = X[a * nc + b];
            const double *w = W + a * n;
            for (i64 i = 0; i < n; i++) mb[i] += w[i] * x;
        }
        for (i64 i = 0; i < n; i++) big = fmax(big, fabs(mb[i]));
    }
    drop_and_store(Mt, nc, n, big * 0x1p-53, out);
}

static i64 factor_result_size(const Structure *s) { return (2 + s->nc) * s->n + 1; }

typedef struct {
    const Structure *s;
    const double *taps; /* (C, k, Q, 3) */
    i64 k, Q, j;
    int transposed;
    FacTmp *out;   /* C * Q */
    double *arena; /* C * Q results of factor_build */
    int failed;
} BuildCtx;

static void build_range(void *vctx, i64 lo, i64 hi, int tid) {
    BuildCtx *ctx = (BuildCtx *)vctx;
    (void)tid;
    double *scratch = (double *)malloc((size_t)factor_scratch_size(ctx->s) * sizeof(double));
    if (!scratch) {
        ctx->failed = 1;
        return;
    }
    for (i64 cq = lo; cq < hi; cq++) {
        i64 c = cq / ctx->Q, q = cq % ctx->Q;
        const double *f = ctx->taps + ((c * ctx->k + ctx->j) * ctx->Q + q) * 3;
        double fm = ctx->transposed ? f[2] : f[0];
        double fp = ctx->transposed ? f[0] : f[2];
        factor_build(ctx->s, fm, f[1], fp, f, &ctx->out[cq], scratch, ctx->arena + cq * factor_result_size(ctx->s));
    }
    free(scratch);
}

typedef struct {
    Structure s;
    i64 *buf;
    FacTmp *facs;
    double *arena;
} AxisTmp;

static void axis_tmp_free(AxisTmp *a) {
    free(a->facs);
    free(a->arena);
    free(a->buf);
}

/* The structure of E (E^T when transposed) for one axis and every factor's operators. */
static int axis_build(const double *taps, i64 C, i64 k, i64 Q, i64 j, i64 n, i64 d, int b, int transposed,
                      int threads, AxisTmp *a) {
    Edges e;
    memset(a, 0, sizeof(*a));
    if (edges_build(n, d, b, &e) != 0) return -1;
    i64 cnt = e.cnt;
    a->buf = (i64 *)malloc((size_t)(5 * cnt + 1) * sizeof(i64));
    a->facs = (FacTmp *)calloc((size_t)(C * Q + 1), sizeof(FacTmp));
    if (!a->buf || !a->facs) {
        edges_free(&e);
        return -1;
    }
    i64 *urows = a->buf, *ucols = urows + cnt, *ri = ucols + cnt, *ci = ri + cnt, *etap = ci + cnt;
    const i64 *rows = transposed ? e.col : e.row;
    const i64 *cols = transposed ? e.row : e.col;
    i64 m = unique_sorted(rows, cnt, urows);
    i64 nc = unique_sorted(cols, cnt, ucols);
    for (i64 x = 0; x < cnt; x++) {
        ri[x] = index_of(urows, m, rows[x]);
        ci[x] = index_of(ucols, nc, cols[x]);
        etap[x] = e.tap[x];
    }
    edges_free(&e);
    a->s = (Structure){n, d, m, nc, cnt, urows, ucols, ri, ci, etap};
    a->arena = (double *)malloc((size_t)(C * Q * factor_result_size(&a->s)) * sizeof(double));
    if (!a->arena) return -1;
    BuildCtx ctx = {&a->s, taps, k, Q, j, transposed, a->facs, a->arena, 0};
    /* the per-factor work is about n (m + nc) multiply-adds: threads only for long axes */
    run_parallel(build_range, &ctx, C * Q, n * (m + 1) * C * Q >= (1 << 18) ? threads : 1, NULL);
    return ctx.failed ? -1 : 0;
}

static i64 align8(i64 x) { return (x + 7) & ~(i64)7; }

/* Small planes (see solve_block_dense): 2-D blocks of at most 8 rows of 4 or 8 samples, or of at
 * most 16 rows of 16 samples (both sizes at most dense_max) get plans of each channel's inverse
 * of each axis as a dense matrix (dense_plan), no factors. set_dense_max changes the bound (0:
 * never, 8: not the rows of 16), for tests and A/Bs. Rows of other lengths keep the recurrences
 * (with this file's scalar loops for them the dense form did not pay: 6 x 6 and 7 x 7 planes
 * took as long as the recurrences; 32 x 32 planes take as long in float32 dense, 32 multiply-adds
 * per sample and axis). */
#define DENSE_MAX 16
static i64 dense_max = DENSE_MAX;
static int dense_wanted(i64 k, const i64 *n) {
    if (k != 2 || n[1] > dense_max || n[2] > dense_max) return 0;
    return ((n[2] == 4 || n[2] == 8) && n[1] <= 8) || (n[2] == 16 && n[1] <= 16);
}
static PyObject *dense_plan(const double *taps, i64 C, i64 k, i64 Q, const i64 *n, i64 d, int boundary,
                            int threads);
static PyObject *dense_plan_transposed(PyObject *fwd);

/* The plan (bytes) of the operators built in axes: header, taps, then per axis the correction
 * columns, Fac[C Q] and each factor's arrays. */
static PyObject *plan_pack(const AxisTmp *axes, const double *taps, i64 C, i64 k, i64 Q, const i64 *n, i64 d,
                           int boundary, int transposed) {
    i64 size = align8(sizeof(Plan)) + C * k * Q * 3 * 8, zrows = 1;
    for (int bx = 3 - (int)k; bx < 3; bx++) {
        const AxisTmp *a = &axes[bx];
        size += a->s.nc * 8 + C * Q * (i64)sizeof(Fac);
        for (i64 i = 0; i < C * Q; i++)
            size += 16 * a->facs[i].S + 8 * a->s.nc * (a->facs[i].lo + n[bx] - a->facs[i].hi);
        zrows = imax(zrows, a->s.nc);
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!result) return NULL;
    char *base = PyBytes_AS_STRING(result);
    memset(base, 0, (size_t)size);
    Plan *pl = (Plan *)base;
    *pl = (Plan){.magic = PLAN_MAGIC, .C = C, .k = k, .Q = Q, .d = d, .boundary = boundary, .transposed = transposed,
                 .zrows = zrows, .taps = align8(sizeof(Plan))};
    i64 off = pl->taps;
    memcpy(base + off, taps, (size_t)(C * k * Q * 3 * 8));
    off += C * k * Q * 3 * 8;
    for (int bx = 0; bx < 3; bx++) {
        Axis *ax = &pl->ax[bx];
        ax->n = n[bx];
        if (bx < 3 - k) continue;
        const AxisTmp *a = &axes[bx];
        ax->nc = a->s.nc;
        ax->cols = off;
        memcpy(base + off, a->s.ucols, (size_t)(a->s.nc * 8));
        off += a->s.nc * 8;
        ax->fac = off;
        Fac *fac = (Fac *)(base + off);
        off += C * Q * (i64)sizeof(Fac);
        for (i64 i = 0; i < C * Q; i++) {
            const FacTmp *t = &a->facs[i];
            i64 mlen = a->s.nc * (t->lo + n[bx] - t->hi);
            fac[i] = (Fac){t->sup, t->linf, t->pinf, t->S, t->lo, t->hi, off, off + 8 * t->S, off + 16 * t->S};
            memcpy(base + off, t->l, (size_t)(8 * t->S));
            memcpy(base + off + 8 * t->S, t->p, (size_t)(8 * t->S));
            if (mlen) memcpy(base + off + 16 * t->S, t->M, (size_t)(8 * mlen));
            off += 16 * t->S + 8 * mlen;
        }
    }
    return result;
}

/* The plan of taps for one direction (transposed 0 or 1), or NULL with an exception set. */
static PyObject *plan_one(const double *taps, i64 C, i64 k, i64 Q, const i64 *n, i64 d, int boundary, int transposed,
                          int threads) {
    AxisTmp axes[3];
    memset(axes, 0, sizeof(axes));
    PyObject *result = NULL;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (i64 j = 0; j < k && !failed; j++) {
        int bx = (int)(3 - k + j);
        failed = axis_build(taps, C, k, Q, j, n[bx], d, boundary, transposed, threads, &axes[bx]) != 0;
    }
    Py_END_ALLOW_THREADS
    if (failed)
        PyErr_NoMemory();
    else
        result = plan_pack(axes, taps, C, k, Q, n, d, boundary, transposed);
    for (int bx = 0; bx < 3; bx++) axis_tmp_free(&axes[bx]);
    return result;
}

/* plan(taps, C, k, Q, sizes, d, boundary, transposed, threads) -> bytes; transposed = 2 returns
 * the tuple (plan of A, plan of A^T): one call for a solve and its backward */
static PyObject *py_plan(PyObject *self, PyObject *args) {
    Py_buffer tb;
    long long C, k, Q, d;
    PyObject *sizes;
    int boundary, transposed, threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*LLLOLiii", &tb, &C, &k, &Q, &sizes, &d, &boundary, &transposed, &threads))
        return NULL;
    PyObject *result = NULL;
    i64 n[3] = {1, 1, 1};
    if (k < 1 || k > 3 || C < 1 || Q < 1 || d < 1 || boundary < 0 || boundary > 3 || transposed < 0 ||
        transposed > 2 || tb.len != (Py_ssize_t)(C * k * Q * 3 * sizeof(double)) || !PyTuple_Check(sizes) ||
        PyTuple_GET_SIZE(sizes) != k) {
        PyErr_SetString(PyExc_ValueError, "_lines_c.plan: inconsistent arguments");
        goto done;
    }
    for (i64 j = 0; j < k; j++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(sizes, j));
        if (v < 1) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_lines_c.plan: sizes must be >= 1");
            goto done;
        }
        n[3 - k + j] = v;
    }
    const double *taps = (const double *)tb.buf;
    int dense = dense_wanted(k, n);
    if (transposed == 1 && !dense) {
        result = plan_one(taps, C, k, Q, n, d, boundary, 1, threads);
    } else { /* A's plan first; A^T's of small planes is A's with each matrix transposed */
        PyObject *fwd = dense ? dense_plan(taps, C, k, Q, n, d, boundary, threads)
                              : plan_one(taps, C, k, Q, n, d, boundary, 0, threads);
        PyObject *adj = NULL;
        if (fwd && transposed > 0)
            adj = dense ? dense_plan_transposed(fwd) : plan_one(taps, C, k, Q, n, d, boundary, 1, threads);
        if (transposed == 0)
            result = fwd, fwd = NULL;
        else if (transposed == 1)
            result = adj, adj = NULL;
        else if (adj)
            result = PyTuple_Pack(2, fwd, adj);
        Py_XDECREF(fwd);
        Py_XDECREF(adj);
    }
done:
    PyBuffer_Release(&tb);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* sweeps along one axis with R lanes: y (n, R) float64                                         */

INLINE void row_from_f64(double *restrict y, const double *restrict x, const double *restrict ym, double l, i64 R) {
    for (i64 r = 0; r < R; r++) y[r] = x[r] - l * ym[r];
}
INLINE void row_from_f32(double *restrict y, const float *restrict x, const double *restrict ym, double l, i64 R) {
    for (i64 r = 0; r < R; r++) y[r] = (double)x[r] - l * ym[r];
}
INLINE void row_sub(double *restrict y, const double *restrict ym, double l, i64 R) {
    for (i64 r = 0; r < R; r++) y[r] -= l * ym[r];
}

/* forward elimination y[i] = x[i] - l[i] y[i - d] on the lanes [r0, R); x = src (float32 or
 * float64) or y itself */
INLINE void forward_rows(double *y, const void *src, int f32, i64 n, i64 R, i64 r0, const FV *v, i64 d) {
    i64 w = R - r0;
    y += r0;
    if (src) {
        const float *s32 = (const float *)src + r0;
        const double *s64 = (const double *)src + r0;
        for (i64 i = 0; i < imin(d, n); i++) {
            if (f32)
                for (i64 r = 0; r < w; r++) y[i * R + r] = (double)s32[i * R + r];
            else
                memcpy(y + i * R, s64 + i * R, (size_t)w * sizeof(double));
        }
        for (i64 i = d; i < n; i++) {
            if (f32)
                row_from_f32(y + i * R, s32 + i * R, y + (i - d) * R, Lof(v, i), w);
            else
                row_from_f64(y + i * R, s64 + i * R, y + (i - d) * R, Lof(v, i), w);
        }
    } else {
        for (i64 i = d; i < n; i++) row_sub(y + i * R, y + (i - d) * R, Lof(v, i), w);
    }
}

#if VEC
/* The vectorised recurrences of d = 1, shared by the float64 work copies (T double, lane form
 * W h8 or w8, L = 8 lanes per vector) and the float32 ones (T float, W f16h or f16w, L = 16):
 * NV vectors of L lanes from r at a time, the carried row in registers (no store-to-load round
 * trip in the recurrence). The factors are read in float64 and rounded to T.
 *
 * Forward elimination y[i] = x[i] - l[i] y[i - 1]; X(W, i, r) loads lane block r of row i of
 * the input. */
#define FORWARD_LANES(NV, X, W, T, L)                                                                                  \
    for (; r + L * NV <= R; r += L * NV) {                                                                             \
        W##_t c[NV];                                                                                                   \
        for (int k = 0; k < NV; k++) W##_st(y + r + L * k, c[k] = X(W, 0, r + L * k));                                \
        for (i64 i = 1; i < n; i++) {                                                                                  \
            T li = (T)Lof(v, i);                                                                                       \
            for (int k = 0; k < NV; k++) W##_st(y + i * R + r + L * k, c[k] = W##_sub_mul(X(W, i, r + L * k), li, c[k])); \
        }                                                                                                              \
    }
/* Back substitution y[i] = (y[i] - sup y[i + 1]) p[i], sup (type T) from the caller's scope */
#define BACKWARD_LANES(NV, W, T, L)                                                                                    \
    for (; r + L * NV <= R; r += L * NV) {                                                                             \
        W##_t c[NV];                                                                                                   \
        T pl = (T)Pof(v, n - 1);                                                                                       \
        for (int k = 0; k < NV; k++) W##_st(y + (n - 1) * R + r + L * k, c[k] = W##_scale(W##_ld(y + (n - 1) * R + r + L * k), pl)); \
        for (i64 i = n - 2; i >= 0; i--) {                                                                             \
            T pi = (T)Pof(v, i);                                                                                       \
            for (int k = 0; k < NV; k++) {                                                                             \
                T *yi = y + i * R + r + L * k;                                                                         \
                W##_st(yi, c[k] = W##_sub_mul_scale(W##_ld(yi), sup, c[k], pi));                                       \
            }                                                                                                          \
        }                                                                                                              \
    }
/* 4, 2 then 1 vectors at a time */
#define LANES_421(M, ...) M(4, __VA_ARGS__) M(2, __VA_ARGS__) M(1, __VA_ARGS__)
#define X_Y(W, i, r) W##_ld(y + (i) * R + (r))
#define X_F64(W, i, r) W##_ld(s64 + (i) * R + (r))
#define X_F32(W, i, r) W##_ldf(s32 + (i) * R + (r))
/* the three inputs of the float64 work copy, 32, 16 then 8 lanes at a time */
#define FORWARD_ALL(W)                                                                                                 \
    if (!src) {                                                                                                        \
        LANES_421(FORWARD_LANES, X_Y, W, double, 8)                                                                    \
    } else if (f32) {                                                                                                  \
        LANES_421(FORWARD_LANES, X_F32, W, double, 8)                                                                  \
    } else {                                                                                                           \
        LANES_421(FORWARD_LANES, X_F64, W, double, 8)                                                                  \
    }
#endif

/* forward elimination y[i] = x[i] - l[i] y[i - d]; x = src (float32 or float64) or y itself */
INLINE void forward(double *y, const void *src, int f32, i64 n, i64 R, const FV *v, i64 d) {
    i64 r = 0;
#if VEC
    if (d == 1 && n > 0) {
        const float *s32 = (const float *)src;
        const double *s64 = (const double *)src;
#if WIDE
        if (lanes_wide) {
            FORWARD_ALL(w8)
        } else
#endif
        {
            FORWARD_ALL(h8)
        }
    }
#endif
    if (r < R) forward_rows(y, src, f32, n, R, r, v, d);
}

INLINE void row_back(double *restrict y, const double *restrict yp, double sup, double pi, i64 R) {
    for (i64 r = 0; r < R; r++) y[r] = (y[r] - sup * yp[r]) * pi;
}
INLINE void row_scale(double *restrict y, double pi, i64 R) {
    for (i64 r = 0; r < R; r++) y[r] *= pi;
}
INLINE void row_axpy(double *restrict y, const double *restrict z, double a, i64 R) {
    for (i64 r = 0; r < R; r++) y[r] -= a * z[r];
}
INLINE void row_axpy2(double *restrict y, const double *restrict z0, const double *restrict z1, double a0, double a1,
                      i64 R) {
    for (i64 r = 0; r < R; r++) y[r] -= a0 * z0[r] + a1 * z1[r];
}

/* back substitution z = U^{-1} w on the lanes [r, R) */
INLINE void backward_rows(double *y, i64 n, i64 R, i64 r, const FV *v, i64 d) {
    i64 w = R - r;
    y += r;
    for (i64 i = n - 1; i >= imax(n - d, 0); i--) row_scale(y + i * R, Pof(v, i), w);
    for (i64 i = n - 1 - d; i >= 0; i--) row_back(y + i * R, y + (i + d) * R, v->sup, Pof(v, i), w);
}

/* back substitution, then the Woodbury correction y -= M z[cols] (zc: nc x R scratch) */
INLINE void backward(double *y, i64 n, i64 R, const FV *v, i64 d, double *zc) {
    i64 r = 0;
#if VEC
    if (d == 1 && n > 0) { /* the next row stays in registers, 32, 16 then 8 lanes at a time */
        double sup = v->sup;
#if WIDE
        if (lanes_wide) {
            LANES_421(BACKWARD_LANES, w8, double, 8)
        } else
#endif
        {
            LANES_421(BACKWARD_LANES, h8, double, 8)
        }
    }
#endif
    if (r < R) backward_rows(y, n, R, r, v, d);
    if (v->nc == 0) return;
    for (i64 j = 0; j < v->nc; j++) memcpy(zc + j * R, y + v->cols[j] * R, (size_t)R * sizeof(double));
    for (i64 i = 0; i < n; i++) {
        if (i == v->lo && v->hi > v->lo) {
            i = v->hi - 1;
            continue;
        }
        i64 x = i < v->lo ? i : v->lo + i - v->hi; /* the row's place in the stored columns */
        if (v->nc == 2) /* d = 1: both columns in one pass over the row */
            row_axpy2(y + i * R, zc, zc + R, v->M[x], v->M[v->mlen + x], R);
        else
            for (i64 j = 0; j < v->nc; j++) row_axpy(y + i * R, zc + j * R, v->M[j * v->mlen + x], R);
    }
}

/* every factor of block axis b on y (A, n, R); the first reads src (same shape) when given */
INLINE void solve_axis(double *y, const void *src, int f32, i64 A, i64 n, i64 R, const Plan *pl, int b, i64 c,
                       int rev, double *zc) {
    i64 Q = pl->Q;
    for (i64 qq = 0; qq < Q; qq++) {
        i64 q = rev ? Q - 1 - qq : qq;
        FV v = fac_view(pl, b, c, q);
        for (i64 a = 0; a < A; a++) {
            const void *s = NULL;
            if (qq == 0 && src) s = f32 ? (const void *)((const float *)src + a * n * R) : (const void *)((const double *)src + a * n * R);
            forward(y + a * n * R, s, f32, n, R, &v, pl->d);
            backward(y + a * n * R, n, R, &v, pl->d, zc);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* four scalar recurrences in flight: rows of 1-D signals and long last axes                    */

typedef struct {
    const void *src[4]; /* rows to read (float32 when sf32) */
    void *dst[4];       /* rows to write (float32 when df32) */
    i64 c[4];           /* channel of each lane */
} Group;

INLINE double ld(const void *p, int f32, i64 i) { return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i]; }
INLINE void st(void *p, int f32, i64 i, double x) {
    if (f32)
        ((float *)p)[i] = (float)x;
    else
        ((double *)p)[i] = x;
}

/* The recurrence y = x - l y_prev of 4 lanes over the rows [i0, i1), the lanes' states in
 * registers (y, in and out). Inputs of type IT, outputs of type OT (the output is y * p with
 * `scaled`); `const` factors: the same l and p on every row (L[r], P[r]), else per-row arrays
 * (Lr[r][i], Pr[r][i]). A function per (IT, OT) pair so that each hot loop has fixed types. */
#define LANES_RUN(NAME, IT, OT)                                                                                        \
    INLINE void NAME(const void *const *in, void *const *out, i64 i0, i64 i1, const double *const *Lr,               \
                     const double *const *Pr, const double *L, const double *P, int scaled, double *y) {               \
        const IT *s0 = (const IT *)in[0], *s1 = (const IT *)in[1], *s2 = (const IT *)in[2], *s3 = (const IT *)in[3];  \
        OT *o0 = (OT *)out[0], *o1 = (OT *)out[1], *o2 = (OT *)out[2], *o3 = (OT *)out[3];                             \
        double y0 = y[0], y1 = y[1], y2 = y[2], y3 = y[3];                                                             \
        if (L) {                                                                                                       \
            double l0 = L[0], l1 = L[1], l2 = L[2], l3 = L[3], p0 = P[0], p1 = P[1], p2 = P[2], p3 = P[3];             \
            if (!scaled) p0 = p1 = p2 = p3 = 1.0;                                                                      \
            for (i64 i = i0; i < i1; i++) {                                                                            \
                y0 = (double)s0[i] - l0 * y0, y1 = (double)s1[i] - l1 * y1;                                            \
                y2 = (double)s2[i] - l2 * y2, y3 = (double)s3[i] - l3 * y3;                                            \
                o0[i] = (OT)(y0 * p0), o1[i] = (OT)(y1 * p1), o2[i] = (OT)(y2 * p2), o3[i] = (OT)(y3 * p3);             \
            }                                                                                                          \
        } else {                                                                                                       \
            for (i64 i = i0; i < i1; i++) {                                                                            \
                y0 = (double)s0[i] - Lr[0][i] * y0, y1 = (double)s1[i] - Lr[1][i] * y1;                                \
                y2 = (double)s2[i] - Lr[2][i] * y2, y3 = (double)s3[i] - Lr[3][i] * y3;                                \
                if (scaled)                                                                                            \
                    o0[i] = (OT)(y0 * Pr[0][i]), o1[i] = (OT)(y1 * Pr[1][i]), o2[i] = (OT)(y2 * Pr[2][i]),             \
                    o3[i] = (OT)(y3 * Pr[3][i]);                                                                       \
                else                                                                                                   \
                    o0[i] = (OT)y0, o1[i] = (OT)y1, o2[i] = (OT)y2, o3[i] = (OT)y3;                                    \
            }                                                                                                          \
        }                                                                                                              \
        y[0] = y0, y[1] = y1, y[2] = y2, y[3] = y3;                                                                    \
    }
LANES_RUN(lanes_run_ff, float, float)
LANES_RUN(lanes_run_fd, float, double)
LANES_RUN(lanes_run_df, double, float)
LANES_RUN(lanes_run_dd, double, double)
#undef LANES_RUN

/* forward elimination of 4 lanes into buf (4, n) (from src when given). With `scale` (every
 * lane has f_-1 = 0 and no correction, d = 1: the back substitution is y = z pinv) the result
 * y is written instead, to dst when given, else to buf. */
INLINE void lanes_forward(const Group *g, int sf32, int from_src, double *buf, i64 n, const FV *v, i64 d, int scale,
                          void *const *dst, int df32) {
    double *b[4] = {buf, buf + n, buf + 2 * n, buf + 3 * n};
    if (d != 1 || n == 0) { /* never scaled: the caller runs the back substitution */
        for (int r = 0; r < 4; r++) {
            if (from_src)
                for (i64 i = 0; i < imin(d, n); i++) b[r][i] = ld(g->src[r], sf32, i);
            for (i64 i = d; i < n; i++) b[r][i] = (from_src ? ld(g->src[r], sf32, i) : b[r][i]) - Lof(&v[r], i) * b[r][i - d];
        }
        return;
    }
    const void *in[4];
    void *out[4];
    const double *Lr[4], *Pr[4];
    double L[4], P[4], y[4];
    int to_dst = scale && dst;
    for (int r = 0; r < 4; r++) {
        in[r] = from_src ? g->src[r] : (const void *)b[r];
        out[r] = to_dst ? dst[r] : (void *)b[r];
        Lr[r] = v[r].l, Pr[r] = v[r].p, L[r] = v[r].linf, P[r] = v[r].pinf;
        y[r] = from_src ? ld(g->src[r], sf32, 0) : b[r][0];
        st(out[r], to_dst && df32, 0, scale ? y[r] * Pof(&v[r], 0) : y[r]);
    }
    int fi = from_src && sf32, fo = to_dst && df32;
#define RUN(...)                                                                                                       \
    do {                                                                                                               \
        if (fi)                                                                                                        \
            fo ? lanes_run_ff(__VA_ARGS__) : lanes_run_fd(__VA_ARGS__);                                                \
        else                                                                                                           \
            fo ? lanes_run_df(__VA_ARGS__) : lanes_run_dd(__VA_ARGS__);                                                \
    } while (0)
    /* rows [1, S): each lane's own factors (the lanes' S may differ: the shortest first) */
    i64 Smin = imin(n, imin(imin(v[0].S, v[1].S), imin(v[2].S, v[3].S)));
    i64 Smax = imin(n, imax(imax(v[0].S, v[1].S), imax(v[2].S, v[3].S)));
    if (Smin > 1) RUN(in, out, 1, Smin, Lr, Pr, NULL, NULL, scale, y);
    for (i64 i = imax(Smin, 1); i < Smax; i++)
        for (int r = 0; r < 4; r++) {
            y[r] = ld(in[r], fi, i) - Lof(&v[r], i) * y[r];
            st(out[r], fo, i, scale ? y[r] * Pof(&v[r], i) : y[r]);
        }
    /* rows [S, n): constant factors, the hot loop of long lines */
    RUN(in, out, imax(Smax, 1), n, NULL, NULL, L, P, scale, y);
#undef RUN
}

/* back substitution and correction of the 4 lanes in buf; then to dst when given */
INLINE void lanes_backward(double *buf, i64 n, const FV *v, i64 d, double *zc, void *const *dst, int df32) {
    double *b0 = buf, *b1 = buf + n, *b2 = buf + 2 * n, *b3 = buf + 3 * n;
    double *bl[4] = {b0, b1, b2, b3};
    for (i64 i = n - 1; i >= imax(n - d, 0); i--)
        for (int r = 0; r < 4; r++) bl[r][i] *= Pof(&v[r], i);
    if (d == 1 && n > 1) {
        double y0 = b0[n - 1], y1 = b1[n - 1], y2 = b2[n - 1], y3 = b3[n - 1];
        double s0 = v[0].sup, s1 = v[1].sup, s2 = v[2].sup, s3 = v[3].sup;
        i64 Smax = imax(imax(v[0].S, v[1].S), imax(v[2].S, v[3].S));
        i64 i = n - 2;
        double P0 = v[0].pinf, P1 = v[1].pinf, P2 = v[2].pinf, P3 = v[3].pinf;
        for (; i >= Smax; i--) {
            y0 = (b0[i] - s0 * y0) * P0;
            y1 = (b1[i] - s1 * y1) * P1;
            y2 = (b2[i] - s2 * y2) * P2;
            y3 = (b3[i] - s3 * y3) * P3;
            b0[i] = y0, b1[i] = y1, b2[i] = y2, b3[i] = y3;
        }
        for (; i >= 0; i--) {
            y0 = (b0[i] - s0 * y0) * Pof(&v[0], i);
            y1 = (b1[i] - s1 * y1) * Pof(&v[1], i);
            y2 = (b2[i] - s2 * y2) * Pof(&v[2], i);
            y3 = (b3[i] - s3 * y3) * Pof(&v[3], i);
            b0[i] = y0, b1[i] = y1, b2[i] = y2, b3[i] = y3;
        }
    } else {
        for (int r = 0; r < 4; r++) {
            double *br = bl[r];
            for (i64 i = n - 1 - d; i >= 0; i--) br[i] = (br[i] - v[r].sup * br[i + d]) * Pof(&v[r], i);
        }
    }
    for (int r = 0; r < 4; r++) {
        const FV *vr = &v[r];
        double *br = bl[r];
        if (vr->nc == 0) continue;
        for (i64 j = 0; j < vr->nc; j++) zc[j] = br[vr->cols[j]];
        for (i64 j = 0; j < vr->nc; j++) {
            double z = zc[j];
            const double *mj = vr->M + j * vr->mlen;
            for (i64 i = 0; i < vr->lo; i++) br[i] -= mj[i] * z;
            double *bt = br + vr->hi;
            const double *mt = mj + vr->lo;
            for (i64 i = 0; i < n - vr->hi; i++) bt[i] -= mt[i] * z;
        }
    }
    if (dst) {
        for (int r = 0; r < 4; r++) {
            if (df32) {
                float *o = (float *)dst[r];
                for (i64 i = 0; i < n; i++) o[i] = (float)bl[r][i];
            } else {
                memcpy(dst[r], bl[r], (size_t)n * sizeof(double));
            }
        }
    }
}

/* every factor of axis b for the 4 lanes of g: src -> dst, scratch buf (4 n) and zc */
INLINE void solve_group(const Group *g, int sf32, int df32, i64 n, const Plan *pl, int b, int rev, double *buf,
                        double *zc) {
    i64 Q = pl->Q, d = pl->d;
    for (i64 qq = 0; qq < Q; qq++) {
        i64 q = rev ? Q - 1 - qq : qq;
        FV v[4];
        int scale = d == 1;
        for (int r = 0; r < 4; r++) {
            v[r] = fac_view(pl, b, g->c[r], q);
            scale = scale && v[r].sup == 0.0 && v[r].nc == 0;
        }
        int last = qq == Q - 1;
        void *const *dst = last ? g->dst : NULL;
        lanes_forward(g, sf32, qq == 0, buf, n, v, d, scale, dst, df32);
        if (!scale) lanes_backward(buf, n, v, d, zc, dst, df32);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 1-D signals: rows grouped 4 at a time, rows of one channel together                          */

typedef struct {
    const Plan *pl;
    const char *src;
    char *dst;
    i64 P, n;
    int sf32, df32, rev, failed;
} LinesCtx;

/* row of the s-th item: the rows of channel 0 first, then channel 1, ... */
INLINE i64 line_row(i64 s, i64 C, i64 NB) { return (s / NB) + C * (s % NB); }

HOT static void lines_range(void *vctx, i64 lo, i64 hi, int tid) {
    LinesCtx *ctx = (LinesCtx *)vctx;
    const Plan *pl = ctx->pl;
    i64 n = ctx->n, P = ctx->P, C = pl->C, NB = P / C;
    size_t se = ctx->sf32 ? 4 : 8, de = ctx->df32 ? 4 : 8;
    (void)tid;
    double *buf = (double *)amalloc((size_t)(4 * n + 4 * pl->zrows + 4) * sizeof(double));
    if (!buf) {
        ctx->failed = 1;
        return;
    }
    double *zc = buf + 4 * n;
    for (i64 gi = lo; gi < hi; gi++) {
        Group g;
        for (int r = 0; r < 4; r++) {
            i64 s = imin(4 * gi + r, P - 1);
            i64 row = line_row(s, C, NB);
            g.src[r] = ctx->src + (size_t)row * n * se;
            g.dst[r] = ctx->dst + (size_t)row * n * de;
            g.c[r] = row % C;
        }
        solve_group(&g, ctx->sf32, ctx->df32, n, pl, 2, ctx->rev, buf, zc);
    }
    afree(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* blocks (k >= 2): outer axes vectorised across rows, the last axis in transposed strips        */

typedef struct {
    double *wk; /* n1 n2 n3 */
    double *st; /* max(4, STRIP) n3 */
    double *zc; /* zrows x max(STRIP, n2 n3) */
} Scratch;

static int scratch_alloc(Scratch *s, const Plan *pl) {
    i64 n1 = pl->ax[0].n, n2 = pl->ax[1].n, n3 = pl->ax[2].n;
    i64 lanes = imax(STRIP, n2 * n3);
    i64 nwk = align8(n1 * n2 * n3), nst = align8(imax(4, STRIP) * n3);
    s->wk = (double *)amalloc((size_t)(nwk + nst + pl->zrows * lanes + 8) * sizeof(double));
    if (!s->wk) return -1;
    s->st = s->wk + nwk;
    s->zc = s->st + nst;
    return 0;
}

/* Transposes of the last axis: 4 x 4 blocks of vectors (four row loads, eight shuffles, four
 * column stores; the compilers do not find this for the plain loops), element by element
 * elsewhere. */
/* wt (n3, R) = the rows w (R, n3) transposed */
INLINE void transpose_in(const double *restrict w, double *restrict wt, i64 n3, i64 R) {
    i64 r = 0;
#if VEC
    for (; r + 4 <= R; r += 4) {
        i64 i = 0;
        for (; i + 4 <= n3; i += 4) {
            v4d c[4];
            tr4(w + r * n3 + i, n3, c);
            for (int b = 0; b < 4; b++) st4(wt + (i + b) * R + r, c[b]);
        }
        for (; i < n3; i++)
            for (int a = 0; a < 4; a++) wt[i * R + r + a] = w[(r + a) * n3 + i];
    }
#endif
    for (; r < R; r++)
        for (i64 i = 0; i < n3; i++) wt[i * R + r] = w[r * n3 + i];
}

/* the rows dst (R, n3) = wt (n3, R) transposed, in dst's type */
INLINE void transpose_out_f64(const double *restrict wt, double *restrict dst, i64 n3, i64 R) {
    i64 i = 0;
#if VEC
    for (; i + 4 <= n3; i += 4) {
        i64 r = 0;
        for (; r + 4 <= R; r += 4) {
            v4d c[4];
            tr4(wt + i * R + r, R, c);
            for (int a = 0; a < 4; a++) st4(dst + (r + a) * n3 + i, c[a]);
        }
        for (; r < R; r++)
            for (int b = 0; b < 4; b++) dst[r * n3 + i + b] = wt[(i + b) * R + r];
    }
#endif
    for (; i < n3; i++)
        for (i64 r = 0; r < R; r++) dst[r * n3 + i] = wt[i * R + r];
}

INLINE void transpose_out_f32(const double *restrict wt, float *restrict dst, i64 n3, i64 R) {
    i64 i = 0;
#if VEC
    for (; i + 4 <= n3; i += 4) {
        i64 r = 0;
        for (; r + 4 <= R; r += 4) {
            v4d c[4];
            tr4(wt + i * R + r, R, c);
            for (int a = 0; a < 4; a++) st4f(dst + (r + a) * n3 + i, c[a]);
        }
        for (; r < R; r++)
            for (int b = 0; b < 4; b++) dst[r * n3 + i + b] = (float)wt[(i + b) * R + r];
    }
#endif
    for (; i < n3; i++)
        for (i64 r = 0; r < R; r++) dst[r * n3 + i] = (float)wt[i * R + r];
}

/* ------------------------------------------------------------------------------------------ */
/* float32 work copies: the sweeps of solve_block in float32, for float32 signals whose factors  */
/* are well conditioned (work32_ok); the same operations in the same order as the float64 work  */
/* copy, sixteen lanes per vector, half the bytes                                               */

#if VEC
/* 0: float32 signals keep the float64 work copy (set_work32(0), or ARMA_LINES_WORK32=0 at import) */
static int work32_enabled = 1;

/* Whether channel c of the plan may run with float32 work copies: the boundary is circular or
 * zeros and every factor (f_-1, f_0, f_1) has |f_0| + |f_-1| + |f_1| <= WORK32_COND
 * (|f_0| - |f_-1 + f_1|). For these two boundaries that bounds the condition number of the
 * factor's matrix (its norm is at most |f_0| + |f_-1| + |f_1|; its symmetric part is at least
 * |f_0| - |f_-1 + f_1| times the identity, its skew part does not lower |x^T A x|), so the
 * float32 recurrences cost a few float32 roundings per factor (docs/performance.md, "ninth
 * pass"). The edge rows of reflect and replicate break the bound (replicate's first pivot
 * vanishes inside the strip): those keep float64. */
#define WORK32_COND 8.0
INLINE int work32_ok(const Plan *pl, i64 c) {
    if (!work32_enabled || (pl->boundary != B_CIRCULAR && pl->boundary != B_ZEROS)) return 0;
    const double *t = (const double *)((const char *)pl + pl->taps) + c * pl->k * pl->Q * 3;
    for (i64 x = 0; x < pl->k * pl->Q; x++) {
        double fm = t[3 * x], f0 = fabs(t[3 * x + 1]), fp = t[3 * x + 2];
        if (!(f0 + fabs(fm) + fabs(fp) <= WORK32_COND * (f0 - fabs(fm + fp)))) return 0;
    }
    return 1;
}

/* forward elimination y[i] = x[i] - l[i] y[i - d] in float32; x = src or y itself */
INLINE void forward32(float *y, const float *src, i64 n, i64 R, const FV *v, i64 d) {
    i64 r = 0;
    if (d == 1 && n > 0) {
        const float *x = src ? src : y;
#define X_P(W, i, r) W##_ld(x + (i) * R + (r))
#if WIDE
        if (lanes_wide) {
            LANES_421(FORWARD_LANES, X_P, f16w, float, 16)
        } else
#endif
        {
            LANES_421(FORWARD_LANES, X_P, f16h, float, 16)
        }
#undef X_P
    }
    if (r >= R) return;
    i64 w = R - r;
    float *yr = y + r;
    if (src) {
        const float *s = src + r;
        for (i64 i = 0; i < imin(d, n); i++) memcpy(yr + i * R, s + i * R, (size_t)w * sizeof(float));
        for (i64 i = d; i < n; i++) {
            float l = (float)Lof(v, i);
            for (i64 q = 0; q < w; q++) yr[i * R + q] = s[i * R + q] - l * yr[(i - d) * R + q];
        }
    } else {
        for (i64 i = d; i < n; i++) {
            float l = (float)Lof(v, i);
            for (i64 q = 0; q < w; q++) yr[i * R + q] -= l * yr[(i - d) * R + q];
        }
    }
}

/* back substitution in float32, then the Woodbury correction y -= M z[cols] (zc: nc x R) */
INLINE void backward32(float *y, i64 n, i64 R, const FV *v, i64 d, float *zc) {
    i64 r = 0;
    float sup = (float)v->sup;
    if (d == 1 && n > 0) {
#if WIDE
        if (lanes_wide) {
            LANES_421(BACKWARD_LANES, f16w, float, 16)
        } else
#endif
        {
            LANES_421(BACKWARD_LANES, f16h, float, 16)
        }
    }
    if (r < R) {
        i64 w = R - r;
        float *yr = y + r;
        for (i64 i = n - 1; i >= imax(n - d, 0); i--) {
            float p = (float)Pof(v, i);
            for (i64 q = 0; q < w; q++) yr[i * R + q] *= p;
        }
        for (i64 i = n - 1 - d; i >= 0; i--) {
            float p = (float)Pof(v, i);
            for (i64 q = 0; q < w; q++) yr[i * R + q] = (yr[i * R + q] - sup * yr[(i + d) * R + q]) * p;
        }
    }
    if (v->nc == 0) return;
    for (i64 j = 0; j < v->nc; j++) memcpy(zc + j * R, y + v->cols[j] * R, (size_t)R * sizeof(float));
    for (i64 i = 0; i < n; i++) {
        if (i == v->lo && v->hi > v->lo) {
            i = v->hi - 1;
            continue;
        }
        i64 x = i < v->lo ? i : v->lo + i - v->hi;
        float *yi = y + i * R;
        if (v->nc == 2) {
            float a0 = (float)v->M[x], a1 = (float)v->M[v->mlen + x];
            for (i64 q = 0; q < R; q++) yi[q] -= a0 * zc[q] + a1 * zc[R + q];
        } else {
            for (i64 j = 0; j < v->nc; j++) {
                float a = (float)v->M[j * v->mlen + x];
                const float *z = zc + j * R;
                for (i64 q = 0; q < R; q++) yi[q] -= a * z[q];
            }
        }
    }
}

/* every factor of block axis b on y (A, n, R) in float32; the first reads src when given */
INLINE void solve_axis32(float *y, const float *src, i64 A, i64 n, i64 R, const Plan *pl, int b, i64 c, int rev,
                         float *zc) {
    i64 Q = pl->Q;
    for (i64 qq = 0; qq < Q; qq++) {
        i64 q = rev ? Q - 1 - qq : qq;
        FV v = fac_view(pl, b, c, q);
        for (i64 a = 0; a < A; a++) {
            forward32(y + a * n * R, qq == 0 && src ? src + a * n * R : NULL, n, R, &v, pl->d);
            backward32(y + a * n * R, n, R, &v, pl->d, zc);
        }
    }
}

typedef int v8si __attribute__((vector_size(32)));
#if defined(__clang__)
#define SHUF8F(a, b, i, j, k, l, m, n, o, p) __builtin_shufflevector(a, b, i, j, k, l, m, n, o, p)
#else
#define SHUF8F(a, b, i, j, k, l, m, n, o, p) __builtin_shuffle(a, b, (v8si){i, j, k, l, m, n, o, p})
#endif
/* the 8 x 8 block of s (row stride ls) transposed into d (row stride ld): unpacks, in-lane
 * shuffles and lane permutes, three rounds of eight */
INLINE void tr8f(const float *restrict s, i64 ls, float *restrict d, i64 ld) {
    f8v r[8], t[8], u[8];
    for (int a = 0; a < 8; a++) memcpy(&r[a], s + a * ls, 32);
    for (int a = 0; a < 8; a += 2) {
        t[a] = SHUF8F(r[a], r[a + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[a + 1] = SHUF8F(r[a], r[a + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int a = 0; a < 8; a += 4) {
        u[a] = SHUF8F(t[a], t[a + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[a + 1] = SHUF8F(t[a], t[a + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[a + 2] = SHUF8F(t[a + 1], t[a + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[a + 3] = SHUF8F(t[a + 1], t[a + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int b = 0; b < 4; b++) {
        f8v lo = SHUF8F(u[b], u[b + 4], 0, 1, 2, 3, 8, 9, 10, 11), hi = SHUF8F(u[b], u[b + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        memcpy(d + b * ld, &lo, 32);
        memcpy(d + (b + 4) * ld, &hi, 32);
    }
}

/* d (cols, rows) = s (rows, cols) transposed, float32; row strides ls of s and ld of d */
INLINE void transpose32(const float *restrict s, i64 ls, float *restrict d, i64 ld, i64 rows, i64 cols) {
    i64 r = 0;
    for (; r + 8 <= rows; r += 8) {
        i64 i = 0;
        for (; i + 8 <= cols; i += 8) tr8f(s + r * ls + i, ls, d + i * ld + r, ld);
        for (; i + 4 <= cols; i += 4) {
            for (int h = 0; h < 8; h += 4) {
                v4f c[4];
                tr4f(s + (r + h) * ls + i, ls, c);
                for (int b = 0; b < 4; b++) memcpy(d + (i + b) * ld + r + h, &c[b], 16);
            }
        }
        for (; i < cols; i++)
            for (int a = 0; a < 8; a++) d[i * ld + r + a] = s[(r + a) * ls + i];
    }
    for (; r < rows; r++)
        for (i64 i = 0; i < cols; i++) d[i * ld + r] = s[r * ls + i];
}

/* rows of the last axis per strip of a float32 work copy: the float64 strip's bytes, twice its
 * rows, so that a row of the strip fills as many 16-lane vectors as the float64 strip's 8-lane
 * ones (four independent recurrences instead of two), in the same scratch (Scratch.st) */
#define STRIP32 (2 * STRIP)

/* solve_block for float32 signals with float32 work copies (work32_ok; not the scalar chains of
 * long last axes) */
INLINE void solve_block32(const float *src, float *dst, const Plan *pl, i64 c, int rev, Scratch *sc) {
    i64 n1 = pl->ax[0].n, n2 = pl->ax[1].n, n3 = pl->ax[2].n, k = pl->k;
    float *wk = (float *)sc->wk, *zc = (float *)sc->zc;
    solve_axis32(wk, src, n1, n2, n3, pl, 1, c, rev, zc);
    if (k >= 3) solve_axis32(wk, NULL, 1, n1, n2 * n3, pl, 0, c, rev, zc);
    i64 L = n1 * n2;
    /* planes of STAGE_MIN samples and more go back through the work copy (whose rows of this
     * strip are read already) and reach dst in one sequential copy */
    float *out = L * n3 >= STAGE_MIN ? wk : dst;
    for (i64 a0 = 0; a0 < L; a0 += STRIP32) {
        i64 R = imin(STRIP32, L - a0);
        float *wt = (float *)sc->st;
        transpose32(wk + a0 * n3, n3, wt, R, R, n3);
        solve_axis32(wt, NULL, 1, n3, R, pl, 2, c, rev, zc);
        transpose32(wt, R, out + a0 * n3, n3, n3, R); /* back to the rows (R, n3) */
    }
    if (out != dst) memcpy(dst, wk, (size_t)(L * n3) * sizeof(float));
}
#endif

/* dst = A^{-1} src for one block (A^{-T}: a transposed plan and rev) */
INLINE void solve_block(const void *src, int sf32, void *dst, int df32, const Plan *pl, i64 c, int rev, Scratch *sc) {
    i64 n1 = pl->ax[0].n, n2 = pl->ax[1].n, n3 = pl->ax[2].n, k = pl->k;
    double *wk = sc->wk;
    solve_axis(wk, src, sf32, n1, n2, n3, pl, 1, c, rev, sc->zc);
    if (k >= 3) solve_axis(wk, NULL, 0, 1, n1, n2 * n3, pl, 0, c, rev, sc->zc);
    i64 L = n1 * n2;
    if (n3 > STRIP_MAX_N && pl->Q == 1) {
        for (i64 a0 = 0; a0 < L; a0 += 4) {
            Group g;
            for (int r = 0; r < 4; r++) {
                i64 a = imin(a0 + r, L - 1);
                g.src[r] = wk + a * n3;
                g.dst[r] = df32 ? (void *)((float *)dst + a * n3) : (void *)((double *)dst + a * n3);
                g.c[r] = c;
            }
            solve_group(&g, 0, df32, n3, pl, 2, rev, sc->st, sc->zc);
        }
        return;
    }
    /* as solve_block32: planes of STAGE_MIN samples and more go back through the work copy,
     * then to dst in one pass (converted to float32 there for float32 signals) */
    int stage = L * n3 >= STAGE_MIN;
    for (i64 a0 = 0; a0 < L; a0 += STRIP) {
        i64 R = imin(STRIP, L - a0);
        double *wt = sc->st;
        transpose_in(wk + a0 * n3, wt, n3, R);
        solve_axis(wt, NULL, 0, 1, n3, R, pl, 2, c, rev, sc->zc);
        if (df32 && !stage)
            transpose_out_f32(wt, (float *)dst + a0 * n3, n3, R);
        else /* float64 rows: into dst, or back into the work copy when staged */
            transpose_out_f64(wt, (stage ? wk : (double *)dst) + a0 * n3, n3, R);
    }
    if (stage && df32) {
        float *d32 = (float *)dst;
        for (i64 x = 0; x < L * n3; x++) d32[x] = (float)wk[x];
    } else if (stage) {
        memcpy(dst, wk, (size_t)(L * n3) * sizeof(double));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* small planes: each axis's inverse as a dense matrix                                          */

/* G (C, m, m) = each channel's inverse of block axis b (m samples) of the plan of factors rp:
 * solve_axis on the identity, whose m columns are the lanes; transposed for the last axis */
HOT static void axis_inverses(const Plan *rp, int b, double *G, double *zc) {
    i64 m = rp->ax[b].n;
    for (i64 c = 0; c < rp->C; c++, G += m * m) {
        memset(G, 0, (size_t)(m * m) * sizeof(double));
        for (i64 i = 0; i < m; i++) G[i * m + i] = 1.0;
        solve_axis(G, NULL, 0, 1, m, m, rp, b, c, 0, zc); /* G[i, j] = (A_b^{-1})[i, j] */
        if (b == 2)
            for (i64 i = 0; i < m; i++)
                for (i64 j = 0; j < i; j++) {
                    double t = G[i * m + j];
                    G[i * m + j] = G[j * m + i];
                    G[j * m + i] = t;
                }
    }
}

/* cos and sin of 2 pi m t / n for n <= DENSE_MAX, m, t < n: row m of n's table at circ_at[n] + m n
 * (module init; 1496 entries each) */
#define CIRC_ENTRIES (DENSE_MAX * (DENSE_MAX + 1) * (2 * DENSE_MAX + 1) / 6)
static double circ_cos[CIRC_ENTRIES], circ_sin[CIRC_ENTRIES];
static i64 circ_at[DENSE_MAX + 1];
static void circ_tables(void) {
    i64 at = 0;
    for (i64 n = 1; n <= DENSE_MAX; n++) {
        circ_at[n] = at;
        for (i64 m = 0; m < n; m++)
            for (i64 t = 0; t < n; t++, at++) {
                double phase = 6.283185307179586476925286766559 * (double)((m * t) % n) / (double)n;
                circ_cos[at] = cos(phase);
                circ_sin[at] = sin(phase);
            }
    }
}

/* axis_inverses for the circular boundary, without factors, each channel's as 2 n values (Axis):
 * a factor of axis j is the circulant f_0 I + f_-1 S^d + f_1 S^-d ((S^d y)[i] = y[i + d mod n]),
 * so the axis's operator A_j (their product) is circulant with eigenvalues lambda_m = prod_q (f_0
 * + (f_-1 + f_1) cos(2 pi m d / n) + i (f_-1 - f_1) sin(2 pi m d / n)) on the Fourier vectors,
 * and A_j^{-1}[i, i'] = c[i - i' mod n] with c[t] = (1 / n) sum_m Re(e^{2 pi i m t / n} /
 * lambda_m), where lambda_{n - m} is lambda_m's
 * conjugate: the sum over m <= n / 2, the inner terms twice. In the strip |f_-1 + f_1| < |f_0|
 * every |lambda_m| >= prod_q (|f_0| - |f_-1 + f_1|) > 0. About n^2 multiply-adds per channel
 * and axis (n / 2 + 1 terms of two products for each of the n entries of c). */
static void circulant_inverses(const double *taps, i64 C, i64 k, i64 Q, i64 j, i64 n, i64 d, int last, double *G) {
    const double *cs = circ_cos + circ_at[n], *sn = circ_sin + circ_at[n];
    double u[DENSE_MAX / 2 + 1], v[DENSE_MAX / 2 + 1], c[2 * DENSE_MAX];
    i64 half = n / 2;
    for (i64 ch = 0; ch < C; ch++, G += 2 * n) {
        for (i64 m = 0; m <= half; m++) {
            i64 t = (m * d) % n; /* row 1 of the table: cos and sin of 2 pi t / n */
            double re = 1.0, im = 0.0;
            for (i64 q = 0; q < Q; q++) {
                const double *f = taps + ((ch * k + j) * Q + q) * 3;
                double a = f[1] + (f[0] + f[2]) * cs[n + t], b = (f[0] - f[2]) * sn[n + t];
                double r = re * a - im * b;
                im = re * b + im * a;
                re = r;
            }
            double s = (m == 0 || 2 * m == n ? 1.0 : 2.0) / ((re * re + im * im) * (double)n);
            u[m] = re * s;
            v[m] = -im * s;
        }
        for (i64 t = 0; t < n; t++) c[t] = 0.0;
        for (i64 m = 0; m <= half; m++)
            for (i64 t = 0; t < n; t++) c[t] += u[m] * cs[m * n + t] - v[m] * sn[m * n + t];
        /* A^{-1}[i, i'] = c[i - i'], stored transposed for the last axis: G holds r doubled with
         * r[t] = c[-t] (c[t] for the last axis), so that row i, the n entries from G + n - i, is
         * c read backwards from i (forwards from -i) */
        for (i64 t = 0; t < n; t++) G[t] = G[n + t] = last ? c[t] : c[(n - t) % n];
    }
}

/* A's plan of small planes (dense_wanted): header, taps and each channel's inverse of each axis
 * (the last axis's stored transposed: solve_block_dense combines rows of both; circular: each
 * circulant's first row, doubled, read with row stride -1, see Axis), for rows of 16
 * also in float32 (dense32); no factors: every solve of the plan takes solve_block_dense
 * (plan_check refuses the other direction). For the circular boundary they come from the
 * circulants' eigenvalues (circulant_inverses, no factors: a plan pair of 8 channels of 8 x 8
 * takes 1.3-2.5 us against 5.8-8.2 us by the recurrences' solves, with the same scaled residuals
 * |A G - I|, docs/performance.md); otherwise they are the recurrences' solves of the identity: A's plan of factors
 * (plan_one) solves each axis on an n x n identity whose n columns are the lanes (solve_axis, as
 * on any block), so they are as exact as the recurrences (Gauss-Jordan elimination took 1.2 us
 * per 16 x 16 inverse). */
static PyObject *dense_plan(const double *taps, i64 C, i64 k, i64 Q, const i64 *n, i64 d, int boundary,
                            int threads) {
    PyObject *rec = NULL; /* the plan of factors whose solves of the identity are the inverses */
    const Plan *rp = NULL;
    if (boundary != B_CIRCULAR) {
        rec = plan_one(taps, C, k, Q, n, d, boundary, 0, threads);
        if (!rec) return NULL;
        rp = (const Plan *)PyBytes_AS_STRING(rec);
    }
    i64 size = align8(sizeof(Plan)) + C * k * Q * 3 * 8, f32 = n[2] == 16, per[3];
    for (int b = 3 - (int)k; b < 3; b++) {
        per[b] = rp ? n[b] * n[b] : 2 * n[b]; /* entries per channel: a matrix or a circulant's row */
        size += align8(C * per[b] * (f32 ? 12 : 8));
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    double *zc = (double *)malloc((size_t)((rp ? rp->zrows : 1) * DENSE_MAX + 1) * sizeof(double));
    if (!result || !zc) {
        Py_XDECREF(rec);
        Py_XDECREF(result);
        free(zc);
        return PyErr_NoMemory();
    }
    char *base = PyBytes_AS_STRING(result);
    memset(base, 0, (size_t)size);
    Plan *pl = (Plan *)base;
    *pl = (Plan){.magic = PLAN_MAGIC, .C = C, .k = k, .Q = Q, .d = d, .boundary = boundary,
                 .transposed = 0, .zrows = 1, .taps = align8(sizeof(Plan))};
    i64 off = pl->taps + C * k * Q * 3 * 8;
    memcpy(base + pl->taps, taps, (size_t)(C * k * Q * 3 * 8));
    for (int b = 0; b < 3; b++) {
        i64 m = n[b];
        pl->ax[b].n = m;
        if (b < 3 - k) continue;
        double *G = (double *)(base + off);
        pl->ax[b].rs = rp ? m : -1;
        pl->ax[b].cs = per[b];
        pl->ax[b].dense = off + (rp ? 0 : m * 8);
        if (rp)
            axis_inverses(rp, b, G, zc);
        else
            circulant_inverses(taps, C, k, Q, b - (3 - k), m, d, b == 2, G);
        off += C * per[b] * 8;
        if (f32) {
            pl->ax[b].dense32 = off + (rp ? 0 : m * 4);
            float *G32 = (float *)(base + off);
            for (i64 x = 0; x < C * per[b]; x++) G32[x] = (float)G[x];
            off += C * per[b] * 4;
        }
        off = align8(off);
    }
    free(zc);
    Py_XDECREF(rec);
    return result;
}

/* dst's matrices = src's transposed (plans of the same layout). A circulant's transpose is the
 * circulant of its first column: each channel's r (Axis: 2 n values, r doubled) becomes
 * r'[t] = r[-t]. */
#define DENSE_TRANSPOSE(T, OFF)                                                                                        \
    do {                                                                                                               \
        T *G = (T *)((char *)dst + src->ax[b].OFF);                                                                    \
        const T *H = (const T *)((const char *)src + src->ax[b].OFF);                                                  \
        for (i64 c = 0; c < src->C; c++, G += cs, H += cs) {                                                           \
            if (circulant)                                                                                             \
                for (i64 t = 0; t < n; t++) G[t - n] = G[t] = H[(n - t) % n - n];                                      \
            else                                                                                                       \
                for (i64 i = 0; i < n; i++)                                                                            \
                    for (i64 j = 0; j < n; j++) G[i * n + j] = H[j * n + i];                                           \
        }                                                                                                              \
    } while (0)
HOT static void dense_transposes(const Plan *src, Plan *dst) {
    for (int b = 3 - (int)src->k; b < 3; b++) {
        i64 n = src->ax[b].n, cs = src->ax[b].cs;
        int circulant = src->ax[b].rs < 0; /* row 0 at n into the doubled row: G[t - n] = r[t] */
        DENSE_TRANSPOSE(double, dense);
        if (src->ax[b].dense32) DENSE_TRANSPOSE(float, dense32);
    }
}
#undef DENSE_TRANSPOSE

/* A^T's plan of small planes from A's (dense_plan): the same bytes, each matrix transposed */
static PyObject *dense_plan_transposed(PyObject *fwd) {
    const Plan *src = (const Plan *)PyBytes_AS_STRING(fwd);
    PyObject *result = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(fwd));
    if (!result) return NULL;
    Plan *pl = (Plan *)PyBytes_AS_STRING(result);
    /* the header and the taps copied, the matrices (all after them) written transposed, the
     * padding between axes zero as in A's plan (equal plans are equal bytes) */
    size_t head = (size_t)(src->taps + src->C * src->k * src->Q * 3 * 8);
    memcpy(pl, src, head);
    memset((char *)pl + head, 0, (size_t)PyBytes_GET_SIZE(fwd) - head);
    pl->transposed = 1;
    dense_transposes(src, pl);
    return result;
}

/* dst (n2, n3) = G2 src GT3 for one plane in float64 arithmetic: the rows of src combined by
 * GT3 (= G3^T, the last axis) into wk, then wk's rows combined by G2. Per plane 2 n2 n3^2
 * multiply-adds on vectors of n3 lanes (against the recurrences' per-line and transpose costs,
 * which dominate planes this small). G2's rows are s2 apart, GT3's s3 (Axis.rs: n for a matrix,
 * -1 for a circulant's row). DENSE_VEC: n3 = NN fixed, each row as NN / 4 vectors of
 * 4 doubles; DENSE_ANY: any n3 <= DENSE_MAX, plain loops (mixed precisions, other compilers). */
#define DENSE_VEC(NAME, NN, ST, DT)                                                                                    \
    INLINE void NAME(const ST *restrict src, DT *restrict dst, i64 n2, const double *restrict G2, i64 s2,              \
                     const double *restrict GT3, i64 s3, double *restrict wk) {                                       \
        enum { V = NN / 4 };                                                                                           \
        for (i64 a = 0; a < n2; a++) {                                                                                 \
            v4d acc[V];                                                                                                \
            for (int q = 0; q < V; q++) acc[q] = (double)src[a * NN] * ld4(GT3 + 4 * q);                               \
            for (i64 j = 1; j < NN; j++) {                                                                             \
                double x = (double)src[a * NN + j];                                                                    \
                for (int q = 0; q < V; q++) acc[q] += x * ld4(GT3 + j * s3 + 4 * q);                                   \
            }                                                                                                          \
            for (int q = 0; q < V; q++) st4(wk + a * NN + 4 * q, acc[q]);                                              \
        }                                                                                                              \
        for (i64 i = 0; i < n2; i++) {                                                                                 \
            v4d acc[V];                                                                                                \
            for (int q = 0; q < V; q++) acc[q] = G2[i * s2] * ld4(wk + 4 * q);                                         \
            for (i64 j = 1; j < n2; j++) {                                                                             \
                double g = G2[i * s2 + j];                                                                             \
                for (int q = 0; q < V; q++) acc[q] += g * ld4(wk + j * NN + 4 * q);                                    \
            }                                                                                                          \
            for (int q = 0; q < V; q++)                                                                                \
                for (int l = 0; l < 4; l++) dst[i * NN + 4 * q + l] = (DT)acc[q][l];                                   \
        }                                                                                                              \
    }
#define DENSE_ANY(NAME, ST, DT)                                                                                        \
    INLINE void NAME(const ST *restrict src, DT *restrict dst, i64 n2, i64 n3, const double *restrict G2, i64 s2,      \
                     const double *restrict GT3, i64 s3, double *restrict wk) {                                       \
        for (i64 a = 0; a < n2; a++) {                                                                                 \
            double acc[DENSE_MAX] = {0};                                                                               \
            for (i64 j = 0; j < n3; j++)                                                                               \
                for (i64 i = 0; i < n3; i++) acc[i] += (double)src[a * n3 + j] * GT3[j * s3 + i];                      \
            memcpy(wk + a * n3, acc, (size_t)n3 * sizeof(double));                                                     \
        }                                                                                                              \
        for (i64 i = 0; i < n2; i++) {                                                                                 \
            double acc[DENSE_MAX] = {0};                                                                               \
            for (i64 j = 0; j < n2; j++)                                                                               \
                for (i64 r = 0; r < n3; r++) acc[r] += G2[i * s2 + j] * wk[j * n3 + r];                                \
            for (i64 r = 0; r < n3; r++) dst[i * n3 + r] = (DT)acc[r];                                                 \
        }                                                                                                              \
    }
#if VEC
DENSE_VEC(dense_ff4, 4, float, float)
DENSE_VEC(dense_ff8, 8, float, float)
DENSE_VEC(dense_dd4, 4, double, double)
DENSE_VEC(dense_dd8, 8, double, double)
#endif
#if !VEC
DENSE_ANY(dense_ffn, float, float)
DENSE_ANY(dense_ddn, double, double)
#endif
DENSE_ANY(dense_fdn, float, double)
DENSE_ANY(dense_dfn, double, float)

#if VEC
/* Planes of rows of 16 samples: the same two stages as DENSE_VEC, each a product out (rows, 16) =
 * A (rows, m) B (m, 16) of a row block (A's rows sa apart, B's sb: Axis's row strides for the
 * inverses, 16 for the planes): RB rows at a time, so that RB * 16 / L independent
 * chains of multiply-adds hide their latency (one row alone waits on it: its sixteen products
 * accumulate in turn), each row as 16 / L vectors VT of L lanes of the arithmetic's type AT;
 * AS: the type of A, OS: of out. The sums are not unrolled (DENSE16_SEQUENTIAL): unrolled, the
 * reassociation this file is compiled with regrouped the one-row products' sums (not those of
 * blocks), and a row's result depended on its block, so on the lane form. */
#if defined(__clang__)
#define DENSE16_SEQUENTIAL _Pragma("clang loop unroll(disable)")
#else
#define DENSE16_SEQUENTIAL _Pragma("GCC unroll 1")
#endif
#define DENSE16_MM(NAME, VT, L, RB, AS, OS, AT)                                                                        \
    INLINE void NAME(const AS *restrict A, i64 sa, i64 m, const AT *restrict B, i64 sb, OS *restrict out) {            \
        enum { V = 16 / L };                                                                                           \
        VT acc[RB][V], b;                                                                                              \
        for (int q = 0; q < V; q++) {                                                                                  \
            memcpy(&b, B + L * q, sizeof b);                                                                           \
            for (int r = 0; r < RB; r++) acc[r][q] = (AT)A[r * sa] * b;                                                \
        }                                                                                                              \
        DENSE16_SEQUENTIAL                                                                                             \
        for (i64 j = 1; j < m; j++)                                                                                    \
            for (int q = 0; q < V; q++) {                                                                              \
                memcpy(&b, B + j * sb + L * q, sizeof b);                                                              \
                for (int r = 0; r < RB; r++) acc[r][q] += (AT)A[r * sa + j] * b;                                       \
            }                                                                                                          \
        for (int r = 0; r < RB; r++)                                                                                   \
            for (int q = 0; q < V; q++) {                                                                              \
                if (sizeof(OS) == sizeof(AT))                                                                          \
                    memcpy(out + r * 16 + L * q, &acc[r][q], sizeof acc[r][q]);                                        \
                else                                                                                                   \
                    for (int l = 0; l < L; l++) out[r * 16 + L * q + l] = (OS)acc[r][q][l];                            \
            }                                                                                                          \
    }
/* dst (n2, 16) = G2 src GT3 (the matrices in AT) through wk (n2 x 16 of AT): MM, MM1 the products
 * of RB rows and of one row from ST to AT, MMO, MMO1 from AT to DT */
#define DENSE16(NAME, RB, MM, MM1, MMO, MMO1, ST, DT, AT)                                                              \
    INLINE void NAME(const ST *restrict src, DT *restrict dst, i64 n2, const AT *restrict G2, i64 s2,                  \
                     const AT *restrict GT3, i64 s3, AT *restrict wk) {                                               \
        i64 a = 0;                                                                                                     \
        for (; a + RB <= n2; a += RB) MM(src + a * 16, 16, 16, GT3, s3, wk + a * 16);                                  \
        for (; a < n2; a++) MM1(src + a * 16, 16, 16, GT3, s3, wk + a * 16);                                           \
        for (a = 0; a + RB <= n2; a += RB) MMO(G2 + a * s2, s2, n2, wk, 16, dst + a * 16);                             \
        for (; a < n2; a++) MMO1(G2 + a * s2, s2, n2, wk, 16, dst + a * 16);                                           \
    }
/* The three planes of one lane form X (w: 64-byte vectors, where lanes_wide; h: 32-byte ones
 * elsewhere): float32 arithmetic (channels that pass work32_ok; FV vectors of FL lanes, FR rows
 * a block) and float64 arithmetic on float32 or float64 planes (DV vectors of DL lanes, DR rows) */
#define DENSE16_FORM(X, FV, FL, FR, DV, DL, DR)                                                                        \
    DENSE16_MM(mm16_f##X, FV, FL, FR, float, float, float)                                                             \
    DENSE16_MM(mm16_f##X##1, FV, FL, 1, float, float, float)                                                           \
    DENSE16(dense16_f##X, FR, mm16_f##X, mm16_f##X##1, mm16_f##X, mm16_f##X##1, float, float, float)                   \
    DENSE16_MM(mm16_d##X, DV, DL, DR, double, double, double)                                                          \
    DENSE16_MM(mm16_d##X##1, DV, DL, 1, double, double, double)                                                        \
    DENSE16(dense16_dd##X, DR, mm16_d##X, mm16_d##X##1, mm16_d##X, mm16_d##X##1, double, double, double)               \
    DENSE16_MM(mm16_fd##X, DV, DL, DR, float, double, double)                                                          \
    DENSE16_MM(mm16_fd##X##1, DV, DL, 1, float, double, double)                                                        \
    DENSE16_MM(mm16_df##X, DV, DL, DR, double, float, double)                                                          \
    DENSE16_MM(mm16_df##X##1, DV, DL, 1, double, float, double)                                                        \
    DENSE16(dense16_ff##X, DR, mm16_fd##X, mm16_fd##X##1, mm16_df##X, mm16_df##X##1, float, float, double)
#if WIDE
DENSE16_FORM(w, f16w_t, 16, 8, w8_t, 8, 4)
/* NAME##w where lanes_wide, NAME##h elsewhere */
#define DENSE16_CALL(NAME, ...)                                                                                        \
    do {                                                                                                               \
        if (lanes_wide)                                                                                                \
            NAME##w(__VA_ARGS__);                                                                                      \
        else                                                                                                           \
            NAME##h(__VA_ARGS__);                                                                                      \
    } while (0)
#else
#define DENSE16_CALL(NAME, ...) NAME##h(__VA_ARGS__)
#endif
DENSE16_FORM(h, f8v, 8, 4, v4d, 4, 2)
#endif

/* dst = A^{-1} src for one block of a plan with dense inverses (k = 2) */
INLINE void solve_block_dense(const void *src, int sf32, void *dst, int df32, const Plan *pl, i64 c, double *wk) {
    i64 n2 = pl->ax[1].n, n3 = pl->ax[2].n, s2 = pl->ax[1].rs, s3 = pl->ax[2].rs;
    const double *G2 = (const double *)((const char *)pl + pl->ax[1].dense) + c * pl->ax[1].cs;
    const double *GT3 = (const double *)((const char *)pl + pl->ax[2].dense) + c * pl->ax[2].cs;
#if VEC
    if (n3 == 16 && sf32 == df32) {
        if (sf32 && work32_ok(pl, c)) { /* float32 arithmetic: the matrices' float32 copies */
            const float *F2 = (const float *)((const char *)pl + pl->ax[1].dense32) + c * pl->ax[1].cs;
            const float *FT3 = (const float *)((const char *)pl + pl->ax[2].dense32) + c * pl->ax[2].cs;
            DENSE16_CALL(dense16_f, (const float *)src, (float *)dst, n2, F2, s2, FT3, s3, (float *)wk);
        } else if (sf32) {
            DENSE16_CALL(dense16_ff, (const float *)src, (float *)dst, n2, G2, s2, GT3, s3, wk);
        } else {
            DENSE16_CALL(dense16_dd, (const double *)src, (double *)dst, n2, G2, s2, GT3, s3, wk);
        }
        return;
    }
#endif
#if VEC /* n3 is 4 or 8 here, or 16 with mixed precisions (dense_fdn, dense_dfn) */
#define DENSE_CASES(T, S, D)                                                                                           \
    if (n3 == 4)                                                                                                       \
        dense_##T##4((const S *)src, (D *)dst, n2, G2, s2, GT3, s3, wk);                                               \
    else                                                                                                               \
        dense_##T##8((const S *)src, (D *)dst, n2, G2, s2, GT3, s3, wk);
#else
#define DENSE_CASES(T, S, D) dense_##T##n((const S *)src, (D *)dst, n2, n3, G2, s2, GT3, s3, wk);
#endif
    if (sf32 && df32) {
        DENSE_CASES(ff, float, float)
    } else if (!sf32 && !df32) {
        DENSE_CASES(dd, double, double)
    } else if (sf32) {
        dense_fdn((const float *)src, (double *)dst, n2, n3, G2, s2, GT3, s3, wk);
    } else {
        dense_dfn((const double *)src, (float *)dst, n2, n3, G2, s2, GT3, s3, wk);
    }
#undef DENSE_CASES
}

/* solve_block, with float32 work copies where they are allowed (float32 in and out, the channel's
 * factors well conditioned, the last axis solved in strips) and pay: on planes below 16 x 16 the
 * 16-lane vectors do not fill and the float64 work copy's 8 lanes are faster (1.6x at 8 x 8) */
#define WORK32_MIN 16
INLINE void solve_block_any(const void *src, int sf32, void *dst, int df32, const Plan *pl, i64 c, int rev,
                            Scratch *sc) {
    if (pl->ax[2].dense) { /* rev == pl->transposed: plan_check checks it */
        solve_block_dense(src, sf32, dst, df32, pl, c, sc->wk);
        return;
    }
#if VEC
    i64 n3 = pl->ax[2].n, L = pl->ax[0].n * pl->ax[1].n;
    if (sf32 && df32 && n3 >= WORK32_MIN && L >= WORK32_MIN && !(n3 > STRIP_MAX_N && pl->Q == 1) && work32_ok(pl, c)) {
        solve_block32((const float *)src, (float *)dst, pl, c, rev, sc);
        return;
    }
#endif
    solve_block(src, sf32, dst, df32, pl, c, rev, sc);
}

typedef struct {
    const Plan *pl;
    const char *src;
    char *dst;
    int sf32, df32, rev, failed;
} BlocksCtx;

HOT static void blocks_range(void *vctx, i64 lo, i64 hi, int tid) {
    BlocksCtx *ctx = (BlocksCtx *)vctx;
    const Plan *pl = ctx->pl;
    i64 N = pl->ax[0].n * pl->ax[1].n * pl->ax[2].n;
    size_t se = ctx->sf32 ? 4 : 8, de = ctx->df32 ? 4 : 8;
    Scratch sc;
    (void)tid;
    if (scratch_alloc(&sc, pl) != 0) {
        ctx->failed = 1;
        return;
    }
    for (i64 p = lo; p < hi; p++) {
        if (p + 1 < hi) prefetch(ctx->src + (size_t)((p + 1) * N) * se, (size_t)N * se);
        solve_block_any(ctx->src + (size_t)(p * N) * se, ctx->sf32, ctx->dst + (size_t)(p * N) * de, ctx->df32, pl,
                    p % pl->C, ctx->rev, &sc);
    }
    afree(sc.wk);
}

/* the plan in buf for solves with rev (a plan of small planes holds one direction's inverses
 * only): LINES_OK with *out set, or the error's code */
static int plan_check(const void *buf, size_t len, int rev, const Plan **out) {
    const Plan *pl = (const Plan *)buf;
    if (len < sizeof(Plan) || pl->magic != PLAN_MAGIC) return LINES_NOT_A_PLAN;
    if (pl->ax[2].dense && rev != (int)pl->transposed) return LINES_WRONG_DIRECTION;
    *out = pl;
    return LINES_OK;
}

static const char *lines_message(int code) {
    switch (code) {
    case LINES_NOT_A_PLAN: return "_lines_c: not a plan";
    case LINES_WRONG_DIRECTION: return "_lines_c: this plan solves with rev = transposed only";
    case LINES_BAD_SIZES: return "_lines_c: buffer sizes do not match the plan";
    case LINES_NO_MEMORY: return "_lines_c: out of memory";
    default: return "_lines_c: unknown error";
    }
}

/* a nonzero code of lines_solve / lines_vjp as the Python exception (NULL) */
static PyObject *lines_raise(int code) {
    if (code == LINES_NO_MEMORY) return PyErr_NoMemory();
    PyErr_SetString(PyExc_ValueError, lines_message(code));
    return NULL;
}

/* The work of a solve, in multiply-adds, that a part on another thread must have to pay off:
 * on a runner's threads (torch's, awake already) 2^17; on threads started for the call 2^19, as
 * their start and cold caches cost about 40 us (one thread solved 4x128x16x16 float32 planes in
 * 64 us, two in 110; 16x128x16x16 in 264 and 241) */
#define RUNNER_WORK (1 << 17)
#define OWN_THREAD_WORK (1 << 19)
#ifndef DENSE_PLANE_WORK
#define DENSE_PLANE_WORK 128
#endif
static int threads_for(i64 work, int threads, const LinesRunner *runner) {
    i64 most = work / (runner ? RUNNER_WORK : OWN_THREAD_WORK);
    if (most < 1) return 1;
    return (int)imin(threads, most);
}

/* A solve's work in the units of threads_for (the recurrences' multiply-adds per factor and axis):
 * P blocks of N samples. Dense planes (solve_block_dense) cost more per sample than that count
 * says: n2 + n3 multiply-adds on vectors of 4 (rows of 4 or 8 samples) or 16 lanes (rows of 16),
 * plus a fixed cost per plane (DENSE_PLANE_WORK). Counted as recurrences, a U-Net's 16x64x8x8 and
 * 16x128x4x4 float32 solves ran on one of torch's two threads (77 and 36 us; 43 and 24 us split,
 * their backward 115 -> 100 and 127 -> 82 us; docs/performance.md, twentieth pass) */
static i64 solve_work(const Plan *pl, i64 P) {
    i64 N = pl->ax[0].n * pl->ax[1].n * pl->ax[2].n;
    if (pl->ax[2].dense) {
        i64 n2 = pl->ax[1].n, n3 = pl->ax[2].n;
        return P * (N * (n2 + n3) / (n3 == 16 ? 16 : 4) + DENSE_PLANE_WORK);
    }
    return P * N * pl->Q * pl->k;
}

static void solve_any(const Plan *pl, const char *src, int sf32, char *dst, int df32, i64 P, int rev, int threads,
                      const LinesRunner *runner, int *failed) {
    int t = threads_for(solve_work(pl, P), threads, runner);
    if (pl->k == 1) {
        LinesCtx ctx = {pl, src, dst, P, pl->ax[2].n, sf32, df32, rev, 0};
        run_parallel(lines_range, &ctx, (P + 3) / 4, t, runner);
        *failed = ctx.failed;
    } else {
        BlocksCtx ctx = {pl, src, dst, sf32, df32, rev, 0};
        run_parallel(blocks_range, &ctx, P, t, runner);
        *failed = ctx.failed;
    }
}

/* dst = A^{-1} src (A^{-T}: a transposed plan and rev = 1) for P blocks (rows for 1-D): the
 * capsule's solve (LinesCApi), no GIL needed */
static int lines_solve(const void *plan, size_t plan_len, const void *src, size_t src_len, int sf32, void *dst,
                       size_t dst_len, int df32, long long P, int rev, int threads, const LinesRunner *runner) {
    const Plan *pl = NULL;
    int code = plan_check(plan, plan_len, rev, &pl);
    if (code) return code;
    i64 N = pl->ax[0].n * pl->ax[1].n * pl->ax[2].n;
    if (P < 0 || P % pl->C || src_len != (size_t)(P * N * (sf32 ? 4 : 8)) || dst_len != (size_t)(P * N * (df32 ? 4 : 8)))
        return LINES_BAD_SIZES;
    int failed = 0;
    solve_any(pl, (const char *)src, sf32, (char *)dst, df32, P, rev, threads, runner, &failed);
    return failed ? LINES_NO_MEMORY : LINES_OK;
}

/* solve(src, dst, plan, P, src_f32, dst_f32, rev, threads): lines_solve on buffers */
static PyObject *py_solve(PyObject *self, PyObject *args) {
    Py_buffer sb, db, pb;
    long long P;
    int sf32, df32, rev, threads, code;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*y*Liiii", &sb, &db, &pb, &P, &sf32, &df32, &rev, &threads)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    code = lines_solve(pb.buf, (size_t)pb.len, sb.buf, (size_t)sb.len, sf32, db.buf, (size_t)db.len, df32, P, rev,
                       threads, NULL);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&sb);
    PyBuffer_Release(&db);
    PyBuffer_Release(&pb);
    if (code) return lines_raise(code);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------ */
/* the backward pass: the taps' gradient (Theorem 4) by shifted dot products                    */

/* block (n1, n2, n3) seen along block axis b as (A, n, R) */
INLINE void view_dims(i64 n1, i64 n2, i64 n3, int b, i64 *A, i64 *n, i64 *R) {
    if (b == 2) {
        *A = n1 * n2, *n = n3, *R = 1;
    } else if (b == 1) {
        *A = n1, *n = n2, *R = n3;
    } else {
        *A = 1, *n = n1, *R = n2 * n3;
    }
}

/* apply_factor, shifted_dots and taps_sums on float32 (T = float) and float64 blocks: the taps'
 * gradient works on the signal's precision (half the memory traffic for float32) and
 * accumulates its dot products in float64 */
#define T float
#define SFX(name) name##_f32
#include "_lines_c_grad.h"
#undef T
#undef SFX
#define T double
#define SFX(name) name##_f64
#include "_lines_c_grad.h"
#undef T
#undef SFX

typedef struct {
    const Plan *pl; /* operators of the backward solve */
    const char *y, *g;
    char *w;
    double *part;       /* (P, k, Q, 3) */
    const float *taps32; /* the plan's taps in float32 (float32 signals) */
    const Edges *est;
    const i64 *rows, *cols; /* shift maps of the two axes (taps_sums_2d_q1) */
    int f32, rev, adjoint, need_taps, solved, failed;
} VjpCtx;

HOT static void vjp_range(void *vctx, i64 lo, i64 hi, int tid) {
    VjpCtx *ctx = (VjpCtx *)vctx;
    const Plan *pl = ctx->pl;
    i64 N = pl->ax[0].n * pl->ax[1].n * pl->ax[2].n, KQ3 = pl->k * pl->Q * 3;
    size_t es = ctx->f32 ? 4 : 8;
    const double *taps64 = (const double *)((const char *)pl + pl->taps);
    (void)tid;
    Scratch sc = {NULL, NULL, NULL};
    void *bufs = NULL;
    if (!ctx->solved && scratch_alloc(&sc, pl) != 0) goto fail;
    if (ctx->need_taps) { /* taps_sums: (3 + Q) blocks of T; taps_sums_2d_q1: two padded blocks of doubles */
        i64 d = pl->d, S = pl->ax[2].n + 2 * d, pad = (2 * pl->ax[1].n + 2 * d) * S + 2 * d;
        bufs = amalloc((size_t)(imax((3 + pl->Q) * N * (i64)es, ctx->rows ? 8 * pad : 0) + 8));
        if (!bufs) goto fail;
    }
    for (i64 p = lo; p < hi; p++) {
        i64 c = p % pl->C;
        const char *gp = ctx->g + (size_t)(p * N) * es;
        char *wp = ctx->w + (size_t)(p * N) * es;
        const char *yp = ctx->y + (size_t)(p * N) * es;
        if (p + 1 < hi) {
            if (!ctx->solved) prefetch(gp + N * es, (size_t)N * es);
            /* the 2-D one-factor sums prefetch the next y row by row themselves */
            if (ctx->need_taps && !ctx->rows) prefetch(yp + N * es, (size_t)N * es);
        }
        const char *ahead = p + 1 < hi ? yp + N * es : NULL;
        if (!ctx->solved) solve_block_any(gp, ctx->f32, wp, ctx->f32, pl, c, ctx->rev, &sc);
        if (!ctx->need_taps) continue;
        /* left and right: (y, w) for the adjoint solve, (w, y) otherwise */
        const char *left = ctx->adjoint ? yp : wp, *right = ctx->adjoint ? wp : yp;
        double *part = ctx->part + p * KQ3;
        if (ctx->rows) {
            i64 n2 = pl->ax[1].n, n3 = pl->ax[2].n, d = pl->d;
            if (ctx->f32) {
                const float *f = ctx->taps32 + c * 6;
                taps_sums_2d_q1_f32((const float *)left, (const float *)right, n2, n3, d, ctx->rows, ctx->cols, f, f + 3,
                                    part, bufs, ahead);
            } else {
                const double *f = taps64 + c * 6;
                taps_sums_2d_q1_f64((const double *)left, (const double *)right, n2, n3, d, ctx->rows, ctx->cols, f,
                                    f + 3, part, bufs, ahead);
            }
        } else if (ctx->f32) {
            taps_sums_f32((const float *)left, (const float *)right, c, pl, ctx->taps32, ctx->est, (float *)bufs, part);
        } else {
            taps_sums_f64((const double *)left, (const double *)right, c, pl, taps64, ctx->est, (double *)bufs, part);
        }
    }
    afree(sc.wk);
    afree(bufs);
    return;
fail:
    afree(sc.wk);
    afree(bufs);
    ctx->failed = 1;
}

/* The backward of y = A^{-1} t (A^{-T} t when adjoint) with the plan of the backward solve
 * (transposed unless adjoint): w = A^{-T} g, and gtaps (C, k, Q, 3) float64 = the taps'
 * gradient when need_taps. y, g and w are len bytes each. The capsule's vjp (LinesCApi), no
 * GIL needed. */
static int lines_vjp(const void *plan, size_t plan_len, const void *y, const void *g, void *w, size_t len,
                     double *gtaps, size_t gtaps_len, long long P, int f32, int adjoint, int need_taps, int threads,
                     const LinesRunner *runner) {
    double *part = NULL;
    float *taps32 = NULL;
    i64 *maps = NULL; /* rows (n2 + 2 d), then cols (n3 + 2 d): the padded maps of a 2-D block */
    Edges est[3];
    memset(est, 0, sizeof(est));
    const Plan *pl = NULL;
    int code = plan_check(plan, plan_len, !adjoint, &pl);
    if (code) return code;
    i64 N = pl->ax[0].n * pl->ax[1].n * pl->ax[2].n, C = pl->C, KQ3 = pl->k * pl->Q * 3;
    if (P < 0 || P % C || len != (size_t)(P * N * (f32 ? 4 : 8)) || gtaps_len != (size_t)(C * KQ3 * 8))
        return LINES_BAD_SIZES;
    int failed = 0;
    for (int b = 3 - (int)pl->k; b < 3 && !failed; b++) failed = edges_build(pl->ax[b].n, pl->d, (int)pl->boundary, &est[b]);
    part = (double *)calloc((size_t)(need_taps ? P * KQ3 + 1 : 1), sizeof(double));
    taps32 = (float *)malloc((size_t)(C * KQ3 + 1) * sizeof(float));
    i64 n2 = pl->ax[1].n, n3 = pl->ax[2].n;
    if (pl->k == 2 && pl->Q == 1) maps = (i64 *)malloc((size_t)(n2 + n3 + 4 * pl->d) * sizeof(i64));
    if (failed || !part || !taps32 || (pl->k == 2 && pl->Q == 1 && !maps)) {
        code = LINES_NO_MEMORY;
        goto done;
    }
    const double *taps64 = (const double *)((const char *)pl + pl->taps);
    for (i64 x = 0; x < C * KQ3; x++) taps32[x] = (float)taps64[x];
    if (maps) { /* what stands at padded row i' and column j' (taps_sums_2d_q1) */
        int b = (int)pl->boundary;
        i64 d = pl->d;
        for (i64 i = 0; i < n2 + 2 * d; i++) maps[i] = source(i - d, n2, b);
        for (i64 j = 0; j < n3 + 2 * d; j++) maps[n2 + 2 * d + j] = source(j - d, n3, b);
    }
    int rev = !adjoint, solved = 0;
    if (pl->k == 1) { /* the rows of a channel are solved in groups first */
        solve_any(pl, (const char *)g, f32, (char *)w, f32, P, rev, threads, runner, &failed);
        solved = 1;
    }
    if (!failed && (need_taps || !solved)) {
        VjpCtx ctx = {pl,  (const char *)y, (const char *)g, (char *)w, part, taps32, est, maps,
                      maps ? maps + n2 + 2 * pl->d : NULL, f32, rev, adjoint, need_taps, solved, 0};
        i64 work = solve_work(pl, P) + (need_taps ? 2 * P * N * pl->Q * pl->k : 0); /* the solve, then the taps' sums */
        run_parallel(vjp_range, &ctx, P, threads_for(work, threads, runner), runner);
        failed = ctx.failed;
    }
    if (!failed && need_taps) {
        for (i64 x = 0; x < C * KQ3; x++) gtaps[x] = 0.0;
        for (i64 p = 0; p < P; p++) {
            double *o = gtaps + (p % C) * KQ3;
            const double *s = part + p * KQ3;
            for (i64 x = 0; x < KQ3; x++) o[x] += s[x];
        }
    }
    if (failed) code = LINES_NO_MEMORY;
done:
    for (int b = 0; b < 3; b++) edges_free(&est[b]);
    free(part);
    free(taps32);
    free(maps);
    return code;
}

/* vjp(y, g, w, gtaps, plan, P, f32, adjoint, need_taps, threads): lines_vjp on buffers */
static PyObject *py_vjp(PyObject *self, PyObject *args) {
    Py_buffer yb, gb, wb, tb, pb;
    long long P;
    int f32, adjoint, need_taps, threads, code;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*w*y*Liiii", &yb, &gb, &wb, &tb, &pb, &P, &f32, &adjoint, &need_taps, &threads))
        return NULL;
    code = LINES_BAD_SIZES;
    if (yb.len == gb.len && yb.len == wb.len) {
        Py_BEGIN_ALLOW_THREADS
        code = lines_vjp(pb.buf, (size_t)pb.len, yb.buf, gb.buf, wb.buf, (size_t)wb.len, (double *)tb.buf,
                         (size_t)tb.len, P, f32, adjoint, need_taps, threads, NULL);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&yb);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&pb);
    if (code) return lines_raise(code);
    Py_RETURN_NONE;
}

/* out (R, m) = gtaps (R, 3) x jac (R, 3, m), row by row: a parameter's gradient from its taps'
 * (float64) through the reparameterization's Jacobian (float32 when f32, else float64), each
 * sum in float64 over i = 0, 1, 2, rounded once to jac's precision. The capsule's theta_grad. */
static void lines_theta_grad(const double *gtaps, const void *jac, void *out, long long R, long long m, int f32) {
    for (i64 r = 0; r < R; r++) {
        const double *g = gtaps + 3 * r;
        for (i64 j = 0; j < m; j++) {
            double acc = 0.0;
            if (f32) {
                const float *J = (const float *)jac + 3 * m * r + j;
                for (int i = 0; i < 3; i++) acc += g[i] * (double)J[i * m];
                ((float *)out)[m * r + j] = (float)acc;
            } else {
                const double *J = (const double *)jac + 3 * m * r + j;
                for (int i = 0; i < 3; i++) acc += g[i] * J[i * m];
                ((double *)out)[m * r + j] = acc;
            }
        }
    }
}

/* theta_grad(gtaps, jac, out, f32): lines_theta_grad with R = gtaps' rows of 3, m = out's
 * columns per row */
static PyObject *py_theta_grad(PyObject *self, PyObject *args) {
    Py_buffer gb, jb, ob;
    int f32;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*p", &gb, &jb, &ob, &f32)) return NULL;
    Py_ssize_t item = f32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    i64 R = (i64)(gb.len / (3 * (Py_ssize_t)sizeof(double)));
    i64 m = R ? (i64)(ob.len / (R * item)) : 0;
    int ok = gb.len == R * 3 * (Py_ssize_t)sizeof(double) && ob.len == R * m * item && jb.len == R * 3 * m * item;
    if (ok) lines_theta_grad((const double *)gb.buf, jb.buf, ob.buf, R, m, f32);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&jb);
    PyBuffer_Release(&ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "theta_grad: gtaps (R, 3) float64, jac (R, 3, m), out (R, m) expected");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* transparent huge pages on request (madvise), decided once at import: -1 unknown, 0 no, 1 yes */
#define HUGE_PAGE ((size_t)2 << 20)   /* a transparent huge page on x86-64 and aarch64 Linux */
#define HUGE_MIN (2 * HUGE_PAGE)      /* buffers from this size up are advised */
static int thp_on_request = 0;

static void thp_probe(void) {
#ifdef __linux__
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char line[256] = {0};
    if (!f) return;
    if (fgets(line, sizeof(line), f)) thp_on_request = strstr(line, "[never]") == NULL;
    fclose(f);
#endif
}

/* Ask the kernel to back a fresh (untouched) buffer with transparent huge pages: its 2 MiB
 * aligned interior, for buffers of at least HUGE_MIN bytes (a hint, harmless if ignored). The
 * solver's outputs are first touched by the solver; with 4 KiB pages their page faults cost
 * about as much as the solve itself at tens of MiB (docs/performance.md). What torch's
 * THP_MEM_ALLOC_ENABLE=1 does for its own allocations. The capsule's advise_hugepages. */
static void lines_advise_hugepages(void *ptr, size_t nbytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (nbytes < HUGE_MIN || !thp_on_request) return;
    uintptr_t p = (uintptr_t)ptr, start = (p + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    uintptr_t stop = (p + nbytes) / HUGE_PAGE * HUGE_PAGE;
    if (stop > start) (void)madvise((void *)start, stop - start, MADV_HUGEPAGE);
#else
    (void)ptr, (void)nbytes;
#endif
}

/* advise_hugepages(ptr, nbytes): lines_advise_hugepages of a buffer's address */
static PyObject *py_advise_hugepages(PyObject *self, PyObject *args) {
    unsigned long long ptr, nbytes;
    (void)self;
    if (!PyArg_ParseTuple(args, "KK", &ptr, &nbytes)) return NULL;
    lines_advise_hugepages((void *)(uintptr_t)ptr, (size_t)nbytes);
    Py_RETURN_NONE;
}

static const LinesCApi lines_c_api = {
    LINES_C_API_VERSION, lines_solve, lines_vjp, lines_theta_grad, lines_advise_hugepages, lines_message,
};

/* accurate(taps64, zeros, max_spread) -> bool: every factor (f_-1, f_0, f_1) in the strip
 * |f_-1 + f_1| < |f_0| and, unless zeros, |f_-1 - f_1| <= max_spread |f_0| (_lines.accurate) */
static PyObject *py_accurate(PyObject *self, PyObject *args) {
    Py_buffer tb;
    int zeros;
    double spread;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*pd", &tb, &zeros, &spread)) return NULL;
    const double *t = (const double *)tb.buf;
    i64 n = (i64)(tb.len / (Py_ssize_t)(3 * sizeof(double)));
    int ok = tb.len % (Py_ssize_t)(3 * sizeof(double)) == 0;
    for (i64 i = 0; i < n && ok; i++) {
        double fm = t[3 * i], f0 = fabs(t[3 * i + 1]), fp = t[3 * i + 2];
        ok = fabs(fm + fp) < f0 && (zeros || fabs(fm - fp) <= spread * f0);
    }
    PyBuffer_Release(&tb);
    return PyBool_FromLong(ok);
}

/* taps_facts(taps, f32) -> int: for C-contiguous taps (..., 3) of float32 (f32) or float64, bit 0
 * set when every value is finite, bit 1 when every factor (f_-1, f_0, f_1) is in the strip
 * |f_-1 + f_1| < |f_0| evaluated in the taps' own precision (the checks of a new filter's taps:
 * arma_core's check_finite_values and check_stable_validated, in one pass) */
#define TAPS_FACTS(T, ABS)                                                                                             \
    for (i64 i = 0; i < n; i++) {                                                                                      \
        const T *t = (const T *)tb.buf + 3 * i;                                                                        \
        T fm = t[0], f0 = t[1], fp = t[2];                                                                             \
        finite &= isfinite(fm) && isfinite(f0) && isfinite(fp);                                                        \
        strip &= ABS(fm + fp) < ABS(f0);                                                                               \
    }
static PyObject *py_taps_facts(PyObject *self, PyObject *args) {
    Py_buffer tb;
    int f32;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*p", &tb, &f32)) return NULL;
    Py_ssize_t row = 3 * (f32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double));
    if (tb.len % row != 0) {
        PyBuffer_Release(&tb);
        PyErr_SetString(PyExc_ValueError, "taps_facts: the buffer is not a whole number of factors");
        return NULL;
    }
    i64 n = (i64)(tb.len / row);
    int finite = 1, strip = 1;
    if (f32) {
        TAPS_FACTS(float, fabsf)
    } else {
        TAPS_FACTS(double, fabs)
    }
    PyBuffer_Release(&tb);
    return PyLong_FromLong(finite | (strip << 1));
}
#undef TAPS_FACTS

/* ------------------------------------------------------------------------------------------ */
/* the strip reparameterization of a new theta, taps and Jacobian in one call                   */

/* reparam_strip(theta, t1, taps, jac, f32): for n factors, theta (n, 2), t1 = tanh(theta[:, 1])
 * (n,) computed by NumPy, the same operations as arma_core.filters.reparameterize_host for
 * "strip", element by element and in the same order, so the results are bit for bit NumPy's:
 * s = clip(t1, -lim, lim) (NaN stays NaN), left = (s + a0) / 2, right = (s - a0) / 2 nudged by
 * ulps until |left + right| < 1 (at most 8 steps), taps (n, 3) = (left, 1, right); the
 * Jacobian (n, 3, 2) has rows (1/2, w), (0, 0), (-1/2, w) with w = (1 - t1 t1) / 2 where
 * |t1| <= lim, else 0. The product t1 t1 goes through a volatile so that no build contracts
 * 1 - t1 t1 into a fused multiply-add (the extension is built with -ffp-contract=fast); the
 * divisions by 2 are exact whatever -freciprocal-math does; nothing else can be reassociated. */
#define REPARAM_STRIP(T, NEXT, ABS)                                                                                    \
    for (i64 i = 0; i < n; i++) {                                                                                      \
        T a0 = th[2 * i], u = t1[i];                                                                                   \
        T s = u < -lim ? -lim : u;                                                                                     \
        s = s > lim ? lim : s;                                                                                         \
        T left = (s + a0) / (T)2, right = (s - a0) / (T)2;                                                             \
        for (int it = 0; it < 8; it++) {                                                                               \
            T tot = left + right;                                                                                      \
            if (!(ABS(tot) >= (T)1)) break;                                                                            \
            right = NEXT(right, tot >= (T)1 ? -(T)INFINITY : (T)INFINITY);                                             \
        }                                                                                                              \
        volatile T uu = u * u;                                                                                         \
        T w = ABS(u) <= lim ? ((T)1 - uu) * (T)0.5 : (T)0;                                                             \
        T *tp = taps + 3 * i, *jp = jac + 6 * i;                                                                       \
        tp[0] = left, tp[1] = (T)1, tp[2] = right;                                                                     \
        jp[0] = (T)0.5, jp[1] = w, jp[2] = (T)0, jp[3] = (T)0, jp[4] = -(T)0.5, jp[5] = w;                             \
    }

static PyObject *py_reparam_strip(PyObject *self, PyObject *args) {
    Py_buffer thb, tb, ob, jb;
    int f32;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*w*p", &thb, &tb, &ob, &jb, &f32)) return NULL;
    Py_ssize_t item = f32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    i64 n = (i64)(tb.len / item);
    PyObject *result = NULL;
    if (tb.len != n * item || thb.len != 2 * n * item || ob.len != 3 * n * item || jb.len != 6 * n * item) {
        PyErr_SetString(PyExc_ValueError, "reparam_strip: theta (n, 2), t1 (n,), taps (n, 3), jac (n, 3, 2) expected");
        goto done;
    }
    if (f32) {
        const float *th = (const float *)thb.buf, *t1 = (const float *)tb.buf;
        float *taps = (float *)ob.buf, *jac = (float *)jb.buf;
        const float lim = nextafterf(1.0f, 0.0f);
        REPARAM_STRIP(float, nextafterf, fabsf)
    } else {
        const double *th = (const double *)thb.buf, *t1 = (const double *)tb.buf;
        double *taps = (double *)ob.buf, *jac = (double *)jb.buf;
        const double lim = nextafter(1.0, 0.0);
        REPARAM_STRIP(double, nextafter, fabs)
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&thb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&jb);
    return result;
}
#undef REPARAM_STRIP

/* ------------------------------------------------------------------------------------------ */

/* set_work32(flag) -> the previous flag: whether float32 signals may run with float32 work
 * copies (work32_ok); for tests and benchmarks that compare the two */
static PyObject *py_set_work32(PyObject *self, PyObject *args) {
    int flag;
    (void)self;
    if (!PyArg_ParseTuple(args, "p", &flag)) return NULL;
#if VEC
    int old = work32_enabled;
    work32_enabled = flag;
    return PyBool_FromLong(old);
#else
    (void)flag;
    return PyBool_FromLong(0);
#endif
}

/* set_dense_max(n) -> the previous bound: the planes of dense_wanted whose two sizes are at most n
 * get dense inverses in the plans built from now on (0: never, 8: not the rows of 16); for tests
 * and benchmarks */
static PyObject *py_set_dense_max(PyObject *self, PyObject *args) {
    long long v;
    (void)self;
    if (!PyArg_ParseTuple(args, "L", &v)) return NULL;
    if (v < 0 || v > DENSE_MAX) {
        PyErr_Format(PyExc_ValueError, "_lines_c.set_dense_max: n must be in [0, %d]", DENSE_MAX);
        return NULL;
    }
    long long old = dense_max;
    dense_max = v;
    return PyLong_FromLongLong(old);
}

static PyMethodDef methods[] = {
    {"plan", py_plan, METH_VARARGS,
     "plan(taps, C, k, Q, sizes, dilation, boundary, transposed, threads) -> bytes: the solve operators "
     "(transposed = 2: the tuple of both directions' plans)"},
    {"solve", py_solve, METH_VARARGS,
     "solve(src, dst, plan, P, src_f32, dst_f32, rev, threads): dst = A^{-1} src for P blocks"},
    {"taps_facts", py_taps_facts, METH_VARARGS,
     "taps_facts(taps, f32) -> int: bit 0 every value finite, bit 1 every factor in the strip (own precision)"},
    {"accurate", py_accurate, METH_VARARGS,
     "accurate(taps64, zeros, max_spread) -> bool: every factor in the strip and within the spread bound"},
    {"vjp", py_vjp, METH_VARARGS,
     "vjp(y, g, w, gtaps, plan, P, f32, adjoint, need_taps, threads): the backward of the solve"},
    {"reparam_strip", py_reparam_strip, METH_VARARGS,
     "reparam_strip(theta, t1, taps, jac, f32): the strip's taps and Jacobian of theta, t1 = tanh(theta[:, 1])"},
    {"theta_grad", py_theta_grad, METH_VARARGS,
     "theta_grad(gtaps, jac, out, f32): out (R, m) = gtaps (R, 3) float64 x jac (R, 3, m), in jac's precision"},
    {"advise_hugepages", py_advise_hugepages, METH_VARARGS,
     "advise_hugepages(ptr, nbytes): transparent huge pages for a fresh buffer's aligned interior (from HUGE_MIN)"},
    {"set_work32", py_set_work32, METH_VARARGS, "set_work32(flag) -> previous flag (float32 work copies)"},
    {"set_dense_max", py_set_dense_max, METH_VARARGS,
     "set_dense_max(n) -> previous bound (dense inverses in the plans of 2-D planes of at most 8 rows of 4 or 8 "
     "samples or 16 rows of 16, both sizes <= n; 0: never)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lines_c", "The compiled line solver (see arma_core.backends._lines).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lines_c(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "STRIP", STRIP) < 0 || PyModule_AddIntConstant(m, "STRIP_MAX_N", STRIP_MAX_N) < 0 ||
        PyModule_AddIntConstant(m, "CIRCULAR", B_CIRCULAR) < 0 || PyModule_AddIntConstant(m, "ZEROS", B_ZEROS) < 0 ||
        PyModule_AddIntConstant(m, "REFLECT", B_REFLECT) < 0 ||
        PyModule_AddIntConstant(m, "REPLICATE", B_REPLICATE) < 0 ||
        PyModule_AddIntConstant(m, "HUGE_MIN", (long)HUGE_MIN) < 0 ||
        PyModule_AddIntConstant(m, "OWN_THREAD_WORK", OWN_THREAD_WORK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *api = PyCapsule_New((void *)&lines_c_api, LINES_C_API_CAPSULE, NULL);
    if (!api || PyModule_AddObject(m, "_C_API", api) < 0) {
        Py_XDECREF(api);
        Py_DECREF(m);
        return NULL;
    }
    circ_tables();
    thp_probe();
#if WIDE && defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    lanes_wide = __builtin_cpu_supports("avx512f") ? 1 : 0;
#endif
#if WIDE
    const char *force = getenv("ARMA_LINES_WIDE");
    if (force && (force[0] == '0' || force[0] == '1')) lanes_wide = force[0] == '1';
#endif
#if VEC
    const char *w32 = getenv("ARMA_LINES_WORK32");
    if (w32 && w32[0] == '0') work32_enabled = 0;
#endif
    if (PyModule_AddIntConstant(m, "LANES_WIDE", lanes_wide) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

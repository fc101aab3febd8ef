/*
 * What float32 recurrences would buy the line solver: a stand-alone prototype, not part of the
 * package (docs/performance.md, "Issue 13, eighth pass").
 *
 * One axis of a 2-D plane (n rows of R = n lanes, the lanes contiguous) the way
 * backends/_lines_c.c runs it for d = 1: forward elimination from a float32 input with the
 * previous row kept in registers, back substitution, then the two-column Woodbury correction of
 * the circular boundary, NV vectors of W lanes at a time. Variant "f64" keeps the work copy in
 * float64 and converts the result to float32 (what the solver does today); variant "f32" runs
 * the same operations in float32 (twice the lanes per vector, half the bytes). Constant factors
 * (l, p) stand in for the plan's; the values do not matter for the timing.
 *
 *     gcc -O3 -march=native -DNV=2 -o /tmp/f32_sweep benchmarks/f32_sweep_proto.c
 *     /tmp/f32_sweep 64 1024        # n = 64, 1024 planes; R must be a multiple of 16 * NV
 *
 * Prints, for 5 rounds, the time per sample of each variant and their ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef NV
#define NV 2
#endif

#define SWEEP(T, W)                                                                                                    \
    static void sweep_##T(T *y, const float *x, int n, int R, const double *l, const double *p, double sup,          \
                          const double *M0, const double *M1, T *zc) {                                                \
        typedef T vt __attribute__((vector_size(W * sizeof(T))));                                                      \
        for (int r = 0; r < R; r += W * NV) {                                                                          \
            vt c[NV];                                                                                                  \
            for (int k = 0; k < NV; k++) {                                                                             \
                for (int j = 0; j < W; j++) c[k][j] = (T)x[r + k * W + j];                                             \
                memcpy(y + r + k * W, &c[k], sizeof(vt));                                                              \
            }                                                                                                          \
            for (int i = 1; i < n; i++) {                                                                              \
                T li = (T)l[i];                                                                                        \
                for (int k = 0; k < NV; k++) {                                                                         \
                    vt xv;                                                                                             \
                    for (int j = 0; j < W; j++) xv[j] = (T)x[i * R + r + k * W + j];                                   \
                    c[k] = xv - li * c[k];                                                                             \
                    memcpy(y + i * R + r + k * W, &c[k], sizeof(vt));                                                  \
                }                                                                                                      \
            }                                                                                                          \
            T pl = (T)p[n - 1];                                                                                        \
            for (int k = 0; k < NV; k++) {                                                                             \
                memcpy(&c[k], y + (n - 1) * R + r + k * W, sizeof(vt));                                                \
                c[k] *= pl;                                                                                            \
                memcpy(y + (n - 1) * R + r + k * W, &c[k], sizeof(vt));                                                \
            }                                                                                                          \
            for (int i = n - 2; i >= 0; i--) {                                                                         \
                T pi = (T)p[i], s = (T)sup;                                                                            \
                for (int k = 0; k < NV; k++) {                                                                         \
                    vt yv;                                                                                             \
                    memcpy(&yv, y + i * R + r + k * W, sizeof(vt));                                                    \
                    c[k] = (yv - s * c[k]) * pi;                                                                       \
                    memcpy(y + i * R + r + k * W, &c[k], sizeof(vt));                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        memcpy(zc, y, R * sizeof(T));                                                                                  \
        memcpy(zc + R, y + (n - 1) * R, R * sizeof(T));                                                                \
        for (int i = 0; i < n; i++) {                                                                                  \
            T a0 = (T)M0[i], a1 = (T)M1[i];                                                                            \
            for (int r = 0; r < R; r++) y[i * R + r] -= a0 * zc[r] + a1 * zc[R + r];                                   \
        }                                                                                                              \
    }
SWEEP(double, 8)
SWEEP(float, 16)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s n planes\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), R = n, planes = atoi(argv[2]);
    if (n < 2 || planes < 1 || R % (16 * NV) != 0) {
        fprintf(stderr, "n >= 2 and a multiple of %d, planes >= 1\n", 16 * NV);
        return 2;
    }
    size_t N = (size_t)n * R, total = N * (size_t)planes;
    float *x = aligned_alloc(64, sizeof(float) * total), *out = aligned_alloc(64, sizeof(float) * total);
    double *y = aligned_alloc(64, sizeof(double) * N), *zc = aligned_alloc(64, sizeof(double) * 2 * R);
    float *yf = aligned_alloc(64, sizeof(float) * N), *zcf = aligned_alloc(64, sizeof(float) * 2 * R);
    double *l = malloc(sizeof(double) * n), *p = malloc(sizeof(double) * n);
    double *M0 = malloc(sizeof(double) * n), *M1 = malloc(sizeof(double) * n);
    for (size_t i = 0; i < total; i++) x[i] = (float)(rand() % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < n; i++) l[i] = -0.3, p[i] = 0.9, M0[i] = 0.01 / (i + 1), M1[i] = 0.01 / (n - i);
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int q = 0; q < planes; q++) {
            sweep_double(y, x + q * N, n, R, l, p, 0.3, M0, M1, zc);
            float *o = out + q * N;
            for (size_t i = 0; i < N; i++) o[i] = (float)y[i];
        }
        double t1 = now();
        for (int q = 0; q < planes; q++) {
            sweep_float(yf, x + q * N, n, R, l, p, 0.3, M0, M1, zcf);
            memcpy(out + q * N, yf, N * sizeof(float));
        }
        double t2 = now();
        printf("n=%d planes=%d NV=%d  f64 %.3f ns/sample  f32 %.3f ns/sample  f64/f32 %.2f\n", n, planes, NV,
               (t1 - t0) / (double)total * 1e9, (t2 - t1) / (double)total * 1e9, (t1 - t0) / (t2 - t1));
    }
    return 0;
}

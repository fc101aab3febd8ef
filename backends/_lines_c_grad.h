/*
 * The taps' gradient of the line solver's backward pass, for one element type: included by
 * _lines_c.c with T = float (SFX(name) = name_f32) and T = double (name_f64). Blocks are
 * (n1, n2, n3) arrays of T; sums are accumulated in double.
 */

/* apply_factor along the contiguous rows of s2 (A, n): one pass over the flattened plane,
 * then the first and last sh columns without the neighbouring rows, then the boundary entries
 * (the fix-ups run down columns: one short loop per column, not per row and column) */
INLINE void SFX(apply_rows)(const T *s2, T *d2, i64 A, i64 n, T fm, T f0, T fp, i64 sh, const Edges *e, const T *f,
                            int transposed) {
    i64 N = A * n;
    if (2 * sh <= N) {
        T *restrict dm = d2 + sh;
        const T *restrict sm = s2 + sh;
        const T *restrict sp = s2 + 2 * sh;
        const T *restrict sq = s2;
        for (i64 x = 0; x < N - 2 * sh; x++) dm[x] = f0 * sm[x] + fm * sp[x] + fp * sq[x];
    }
    for (i64 i = 0; i < imin(sh, n); i++) {
        if (i + sh < n)
            for (i64 a = 0; a < A; a++) d2[a * n + i] = f0 * s2[a * n + i] + fm * s2[a * n + i + sh];
        else
            for (i64 a = 0; a < A; a++) d2[a * n + i] = f0 * s2[a * n + i];
    }
    for (i64 i = imax(sh, n - sh); i < n; i++) {
        if (i >= sh)
            for (i64 a = 0; a < A; a++) d2[a * n + i] = f0 * s2[a * n + i] + fp * s2[a * n + i - sh];
        else
            for (i64 a = 0; a < A; a++) d2[a * n + i] = f0 * s2[a * n + i];
    }
    for (i64 x = 0; x < e->cnt; x++) {
        T val = f[e->tap[x]];
        i64 to = transposed ? e->col[x] : e->row[x];
        i64 from = transposed ? e->row[x] : e->col[x];
        for (i64 a = 0; a < A; a++) d2[a * n + to] += val * s2[a * n + from];
    }
}

/* dst = A_f src (A_f^T src when transposed) along block axis b; f = (f_-1, f_0, f_1) */
INLINE void SFX(apply_factor)(const T *src, T *dst, i64 n1, i64 n2, i64 n3, int b, const T *f, i64 d,
                              const Edges *e, int transposed) {
    i64 A, n, R;
    view_dims(n1, n2, n3, b, &A, &n, &R);
    T f0 = f[1];
    T fm = transposed ? f[2] : f[0]; /* T^T is T with f_-1 and f_1 swapped */
    T fp = transposed ? f[0] : f[2];
    i64 N = n * R, sh = imin(d, n) * R;
    if (R == 1 && A > 1) {
        SFX(apply_rows)(src, dst, A, n, fm, f0, fp, imin(d, n), e, f, transposed);
        return;
    }
    for (i64 a = 0; a < A; a++) {
        const T *s1 = src + a * N;
        T *d1 = dst + a * N;
        if (2 * sh <= N) {
            T *restrict dm = d1 + sh;
            const T *restrict sm = s1 + sh, *restrict sp = s1 + 2 * sh, *restrict sq = s1;
            for (i64 x = 0; x < N - 2 * sh; x++) dm[x] = f0 * sm[x] + fm * sp[x] + fp * sq[x];
            for (i64 x = 0; x < sh; x++) d1[x] = f0 * s1[x] + fm * s1[sh + x];
            for (i64 x = 0; x < sh; x++) d1[N - sh + x] = f0 * s1[N - sh + x] + fp * s1[N - 2 * sh + x];
        } else {
            for (i64 x = 0; x < N; x++) {
                T v = f0 * s1[x];
                if (x + sh < N) v += fm * s1[x + sh];
                if (x >= sh) v += fp * s1[x - sh];
                d1[x] = v;
            }
        }
        for (i64 x = 0; x < e->cnt; x++) {
            T val = f[e->tap[x]]; /* E^T keeps each entry's tap and swaps its row and column */
            i64 to = transposed ? e->col[x] : e->row[x];
            i64 from = transposed ? e->row[x] : e->col[x];
            T *dr = d1 + to * R;
            const T *sr = s1 + from * R;
            for (i64 r = 0; r < R; r++) dr[r] += val * sr[r];
        }
    }
}

/* out3 -= (<v, S_{+d} u>, <v, u>, <v, S_{-d} u>) along block axis b, boundary shifts included */
INLINE void SFX(shifted_dots)(const T *v, const T *u, i64 n1, i64 n2, i64 n3, int b, i64 d, const Edges *e,
                              double *out3) {
    i64 A, n, R;
    view_dims(n1, n2, n3, b, &A, &n, &R);
    double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0;
    if (R == 1 && A > 1) {
        /* the rows of (A, n) flattened; minus the pairs that straddle two rows */
        i64 N = A * n, sh = imin(d, n);
        const T *va = v, *ua = u, *ub = u + sh, *vb = v + sh;
        for (i64 x = 0; x < N - sh; x++) {
            double vx = (double)va[x], ux = (double)ua[x];
            acc1 += vx * ux;
            acc0 += vx * (double)ub[x];
            acc2 += (double)vb[x] * ux;
        }
        for (i64 x = N - sh; x < N; x++) acc1 += (double)v[x] * (double)u[x];
        for (i64 i = imax(n - sh, 0); i < n; i++) {
            for (i64 a = 0; a < A - 1; a++) {
                i64 x = a * n + i;
                acc0 -= (double)va[x] * (double)ub[x];
                acc2 -= (double)vb[x] * (double)ua[x];
            }
        }
        for (i64 x = 0; x < e->cnt; x++) {
            double acc = 0.0;
            for (i64 a = 0; a < A; a++) acc += (double)v[a * n + e->row[x]] * (double)u[a * n + e->col[x]];
            if (e->tap[x] == 0)
                acc0 += acc;
            else
                acc2 += acc;
        }
    } else {
        i64 N = n * R, sh = imin(d, n) * R;
        for (i64 a = 0; a < A; a++) {
            const T *v1 = v + a * N, *u1 = u + a * N;
            for (i64 x = 0; x < N - sh; x++) {
                double vx = (double)v1[x], ux = (double)u1[x];
                acc1 += vx * ux;
                acc0 += vx * (double)u1[x + sh];
                acc2 += (double)v1[x + sh] * ux;
            }
            for (i64 x = N - sh; x < N; x++) acc1 += (double)v1[x] * (double)u1[x];
            for (i64 x = 0; x < e->cnt; x++) {
                double acc = 0.0;
                const T *vr = v1 + e->row[x] * R, *ur = u1 + e->col[x] * R;
                for (i64 r = 0; r < R; r++) acc += (double)vr[r] * (double)ur[r];
                if (e->tap[x] == 0)
                    acc0 += acc;
                else
                    acc2 += acc;
            }
        }
    }
    out3[0] -= acc0;
    out3[1] -= acc1;
    out3[2] -= acc2;
}

/* part (k, Q, 3) += the taps' gradient -<(A_j^(1..q-1))^T left, E_tap A_j^(q+1..Q) B_j right>
 * of one block (arma_core.solve.taps_vjp); taps (C, k, Q, 3) in T; bufs: (3 + Q) blocks:
 * 0/1 hold z = B_j right (the other axes' operators), 2/3 v_q = (A_j^(1..q-1))^T left,
 * 4 + q u_q = A_j^(q+1..Q) z */
INLINE void SFX(taps_sums)(const T *left, const T *right, i64 c, const Plan *pl, const T *taps, const Edges *est,
                           T *bufs, double *part) {
    i64 n1 = pl->ax[0].n, n2 = pl->ax[1].n, n3 = pl->ax[2].n, N = n1 * n2 * n3;
    i64 k = pl->k, Q = pl->Q, d = pl->d;
#define BUF(i) (bufs + (i) * N)
#define TAP(j, q) (taps + ((c * k + (j)) * Q + (q)) * 3)
    for (i64 j = 0; j < k; j++) {
        int bj = (int)(j + 3 - k);
        const T *z = right;
        int zi = -1;
        for (i64 o = 0; o < k; o++) {
            if (o == j) continue;
            int bo = (int)(o + 3 - k);
            for (i64 qq = 0; qq < Q; qq++) {
                i64 q = Q - 1 - qq;
                int dst = zi == 0 ? 1 : 0;
                SFX(apply_factor)(z, BUF(dst), n1, n2, n3, bo, TAP(o, q), d, &est[bo], 0);
                zi = dst;
                z = BUF(dst);
            }
        }
        for (i64 q = Q - 2; q >= 0; q--) {
            const T *s = q == Q - 2 ? z : BUF(4 + q + 1);
            SFX(apply_factor)(s, BUF(4 + q), n1, n2, n3, bj, TAP(j, q + 1), d, &est[bj], 0);
        }
        const T *vq = left;
        int vi = -1;
        for (i64 q = 0; q < Q; q++) {
            const T *uq = q == Q - 1 ? z : BUF(4 + q);
            SFX(shifted_dots)(vq, uq, n1, n2, n3, bj, d, &est[bj], part + (j * Q + q) * 3);
            if (q + 1 < Q) {
                int dst = vi == 2 ? 3 : 2;
                SFX(apply_factor)(vq, BUF(dst), n1, n2, n3, bj, TAP(j, q), d, &est[bj], 1);
                vi = dst;
                vq = BUF(dst);
            }
        }
    }
#undef BUF
#undef TAP
}

/* Row i (n3 elements of T) of the next block's plane at ahead, if any: the taps' sums ask for
 * it a row per row of their own pass (taps_sums_2d_q1's ahead) */
INLINE void SFX(prefetch_row)(const char *ahead, i64 i, i64 n3) {
    if (ahead) prefetch(ahead + i * n3 * (i64)sizeof(T), (size_t)n3 * sizeof(T));
}

#if VEC
/* Circular along the rows (d = 1): u~'s columns -1 and n3 are u's last and first, so the terms
 * they would add as scalars (dots9_row's E) come instead from shifts of v that wrap around its
 * row: v~[-1] = v[n3 - 1], v~[n3] = v[0] (the same products; at rows of 16 the scalar terms
 * were a third of the sums' instructions) */
#ifndef WRAPS
#define WRAPS(cl, cr, n3) ((cl) == (n3) - 1 && (cr) == 0)
#endif
INLINE v4d SFX(ld4t)(const T *p) {
    /* element by element: GCC 12 makes this one widening load (vcvtps2pd), where its lowering of
     * __builtin_convertvector on a loaded vector took two half conversions and extra moves */
    v4d v = {p[0], p[1], p[2], p[3]};
    return v;
}

/* The per-row part of dots9_d1 (both lane forms): the three rows of u~ that row i of v meets
 * (ut[t], on[t]: inside the plane, or a zero row of the boundary) and the scalar terms of the
 * columns -1 and n3 of u~ (cl, cr: those columns of u, n3 for a zero) added to E. */
INLINE void SFX(dots9_row)(const T *vi, const T *u, i64 i, i64 n2, i64 n3, const i64 *rows, i64 cl, i64 cr,
                           const T **ut, int *on, double *E) {
    for (int t = 0; t < 3; t++) {
        i64 h = rows[i + 2 - t];
        on[t] = h < n2;
        ut[t] = u + (on[t] ? h : 0) * n3;
        if (on[t] && cl < n3) E[3 * t + 2] += (double)vi[0] * (double)ut[t][cl];
        if (on[t] && cr < n3) E[3 * t] += (double)vi[n3 - 1] * (double)ut[t][cr];
    }
}

#if WIDE
INLINE w8_t SFX(ld8t)(const T *p) {
    w8_t v = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]}; /* see ld4t */
    return v;
}
/* dots9_d1 in the w8 form (AVX-512: the nine 8-lane accumulators in nine registers) */
INLINE void SFX(dots9_d1_w8)(const T *v, const T *u, i64 n2, i64 n3, const i64 *rows, const i64 *cols, double *D,
                             const char *ahead) {
    w8_t A[9], zero = {0};
    double E[9] = {0.0};
    for (int k = 0; k < 9; k++) A[k] = zero;
    i64 cl = cols[0], cr = cols[n3 + 1];
    int wrap = WRAPS(cl, cr, n3);
    if (wrap) cl = cr = n3;
    for (i64 i = 0; i < n2; i++) {
        const T *vi = v + i * n3, *ut[3];
        int on[3];
        SFX(dots9_row)(vi, u, i, n2, n3, rows, cl, cr, ut, on, E);
        SFX(prefetch_row)(ahead, i, n3);
        w8_t first = SFX(ld8t)(vi), cur = first, prev = wrap ? SFX(ld8t)(vi + n3 - 8) : zero;
        w8_t after = wrap ? first : zero;
        for (i64 j = 0; j < n3; j += 8) {
            w8_t next = j + 8 < n3 ? SFX(ld8t)(vi + j + 8) : after;
            w8_t vm = SHUF8(prev, cur, 7, 8, 9, 10, 11, 12, 13, 14); /* v~[k - 1] */
            w8_t vp = SHUF8(cur, next, 1, 2, 3, 4, 5, 6, 7, 8);      /* v~[k + 1] */
            for (int t = 0; t < 3; t++) {
                if (!on[t]) continue;
                w8_t uk = SFX(ld8t)(ut[t] + j);
                A[3 * t] += vm * uk;
                A[3 * t + 1] += cur * uk;
                A[3 * t + 2] += vp * uk;
            }
            prev = cur;
            cur = next;
        }
    }
    for (int k = 0; k < 9; k++) {
        D[k] = E[k];
        for (int l = 0; l < 8; l++) D[k] += A[k][l];
    }
}
#endif
/* taps_sums_2d_q1's nine sums for d = 1 and n3 a multiple of 4, without copies:
 *     D[3 t + b] = sum_k v~[i][k - 1 + b] u~[i + 1 - t][k]    (k = -1 .. n3)
 * (the shift moved from u to v, so that the three shifts of a row of v serve the three rows of
 * u), v~ = v with zero columns -1 and n3, u~ = u with the boundary's rows and columns. Rows of
 * u are read in place as aligned vectors (float32 loads, exact float64 products); the shifted
 * vectors of v come from lane shuffles, and the columns -1 and n3 of u~ are scalar terms
 * (circular: the shifts wrap instead, see WRAPS). */
INLINE void SFX(dots9_d1)(const T *v, const T *u, i64 n2, i64 n3, const i64 *rows, const i64 *cols, double *D,
                          const char *ahead) {
    /* 4 lanes at a time: the nine accumulators and the six vectors of a step fit the 16
     * registers of AVX2 (with 8 lanes, as two halves, they spilled: 2x slower there) */
    v4d A[9], zero = {0.0, 0.0, 0.0, 0.0};
    double E[9] = {0.0};
    for (int k = 0; k < 9; k++) A[k] = zero;
    i64 cl = cols[0], cr = cols[n3 + 1]; /* the columns of u at -1 and n3 (n3: a zero) */
    int wrap = WRAPS(cl, cr, n3);
    if (wrap) cl = cr = n3;
    for (i64 i = 0; i < n2; i++) {
        const T *vi = v + i * n3, *ut[3];
        int on[3];
        SFX(dots9_row)(vi, u, i, n2, n3, rows, cl, cr, ut, on, E);
        SFX(prefetch_row)(ahead, i, n3);
        v4d first = SFX(ld4t)(vi), cur = first, prev = wrap ? SFX(ld4t)(vi + n3 - 4) : zero;
        v4d after = wrap ? first : zero;
        for (i64 j = 0; j < n3; j += 4) {
            v4d next = j + 4 < n3 ? SFX(ld4t)(vi + j + 4) : after;
            v4d vm = SHUF4(prev, cur, 3, 4, 5, 6); /* v~[k - 1] */
            v4d vp = SHUF4(cur, next, 1, 2, 3, 4); /* v~[k + 1] */
            for (int t = 0; t < 3; t++) {
                if (!on[t]) continue;
                v4d uk = SFX(ld4t)(ut[t] + j);
                A[3 * t] += vm * uk;
                A[3 * t + 1] += cur * uk;
                A[3 * t + 2] += vp * uk;
            }
            prev = cur;
            cur = next;
        }
    }
    for (int k = 0; k < 9; k++) {
        D[k] = E[k];
        for (int l = 0; l < 4; l++) D[k] += A[k][l];
    }
}
#endif

/* taps_sums_2d_q1's gradients from the nine sums D[3 t + b] */
INLINE void SFX(fold9)(const double *D, const T *fH, const T *fW, double *part) {
    for (int t = 0; t < 3; t++) {
        double sH = 0.0, sW = 0.0;
        for (int b = 0; b < 3; b++) {
            sH += (double)fW[b] * D[3 * t + b];
            sW += (double)fH[b] * D[3 * b + t];
        }
        part[t] -= sH;     /* part[0][0][t]: axis H */
        part[3 + t] -= sW; /* part[1][0][t]: axis W */
    }
}

/* One 2-D block with one factor per axis (k = 2, Q = 1, the layers' default), in one pass:
 * with D[t][b] = <v, S_H^(t) S_W^(b) u> (t, b = 0, 1, 2 for the shifts +d, 0, -d, the
 * boundary rule applied along each axis),
 *     part[H][t] -= sum_b fW[b] D[t][b]    (<v, S_H^(t) A_W u>)
 *     part[W][b] -= sum_t fH[t] D[t][b]    (<v, S_W^(b) A_H u>),
 * the same sums as taps_sums (the shifts of the two axes commute), without the filtered
 * copies of u. v and u are (n2, n3); rows[i'] / cols[j'] give the row / column of u that
 * stands at position i' - d / j' - d (n2 / n3: a zero), for i' < n2 + 2 d, j' < n3 + 2 d.
 *
 * With d = 1 and n3 a multiple of 4 the sums come from dots9_d1 (dots9_d1_w8 for multiples of
 * 8 on AVX-512), without copies. Otherwise u is copied in float64 with a halo of d rows and
 * columns holding what the boundary rule puts there, and v with d zero columns on each side and
 * the same row stride S = n3 + 2 d: then every shift is a fixed offset and the nine sums are one
 * pass over the padded rows.
 * w64: the padded copies' (2 n2 + 2 d) S + 2 d doubles.
 *
 * ahead: the next block's y (n2 x n3 of T), or NULL: prefetched a row per row of v, spread
 * over this pass (asked for all at once at the start of a block, it was evicted again by the
 * next block's solve before its sums read it: 64 x 64 float32 planes' vjp 1.2-1.4x faster). */
INLINE void SFX(taps_sums_2d_q1)(const T *v, const T *u, i64 n2, i64 n3, i64 d, const i64 *rows, const i64 *cols,
                                 const T *fH, const T *fW, double *part, double *w64, const char *ahead) {
    double D[9] = {0.0}; /* D[3 t + b] */
#if VEC
    if (d == 1 && n3 % 4 == 0) {
#if WIDE
        if (lanes_wide && n3 % 8 == 0)
            SFX(dots9_d1_w8)(v, u, n2, n3, rows, cols, D, ahead);
        else
#endif
            SFX(dots9_d1)(v, u, n2, n3, rows, cols, D, ahead);
        SFX(fold9)(D, fH, fW, part);
        return;
    }
#endif
    i64 S = n3 + 2 * d, NV = n2 * S;
    double *vp = w64, *up = w64 + NV + d; /* up[-d .. (n2 + 2 d) S + d) */
    for (i64 i = 0; i < n2; i++) {
        double *o = vp + i * S;
        SFX(prefetch_row)(ahead, i, n3);
        for (i64 j = 0; j < d; j++) o[j] = o[d + n3 + j] = 0.0;
        for (i64 j = 0; j < n3; j++) o[d + j] = (double)v[i * n3 + j];
    }
    for (i64 j = 0; j < d; j++) up[-d + j] = up[(n2 + 2 * d) * S + j] = 0.0;
    for (i64 ip = 0; ip < n2 + 2 * d; ip++) {
        double *o = up + ip * S;
        i64 h = rows[ip];
        if (h >= n2) {
            for (i64 j = 0; j < S; j++) o[j] = 0.0;
            continue;
        }
        const T *uh = u + h * n3;
        for (i64 j = 0; j < n3; j++) o[d + j] = (double)uh[j];
        for (i64 jp = 0; jp < S; jp++) {
            if (jp == d) jp = d + n3;
            if (jp >= S) break;
            o[jp] = cols[jp] < n3 ? (double)uh[cols[jp]] : 0.0;
        }
    }
    i64 off[9];
    for (int t = 0; t < 3; t++)
        for (int b = 0; b < 3; b++) off[3 * t + b] = (2 - t) * d * S + (1 - b) * d;
    i64 x = 0;
#if VEC
    h8_t A[9];
    for (int k = 0; k < 9; k++) A[k] = h8_zero();
    for (; x + 8 <= NV; x += 8) {
        h8_t vx = h8_ld(vp + x);
        for (int k = 0; k < 9; k++) A[k] = h8_madd(A[k], vx, h8_ld(up + x + off[k]));
    }
    for (int k = 0; k < 9; k++)
        h8_add_lanes(&D[k], A[k]);
#endif
    for (; x < NV; x++)
        for (int k = 0; k < 9; k++) D[k] += vp[x] * up[x + off[k]];
    SFX(fold9)(D, fH, fW, part);
}

// GEMM for CPU devices (PoCL, Intel's CPU runtime): C = A * B, row-major, any M, N, K.
//
// Two kernels, run back to back by the host:
//   pack_b   copies B into panels of PW = NB*VW columns, each panel K x PW contiguous
//            (zero-padded past N), so the inner loop streams memory sequentially instead of
//            striding by N;
//   gemm_cpu one work-item computes an RB x PW block of C in RB*NB vector accumulators: per k
//            it loads NB VW-wide pieces of the panel and broadcasts RB scalars of A into fused
//            multiply-adds (each broadcast feeds NB of them).
// A CPU device runs the work-items of a group one after another on one core; with groups laid
// out along m (local size 1 x WG) the group's items reuse one B panel from cache while A
// streams. A GPU-style local-memory tiled kernel is ~20x slower on PoCL; see gemm_tiled.cl.
// Tunables (build options): RB rows per work-item, VW vector width (4, 8 or 16), NB vectors per
// row, KU unroll of the k loop, WG work-group size along m (host side), T float|double.
// Which values are fast depends on the device's vector registers and caches: the tuner
// (kernels/opencl/tune.py) searches them; the defaults are only a starting point.

#ifndef RB
#define RB 8
#endif
#ifndef VW
#define VW 16
#endif
#ifndef NB
#define NB 1
#endif
#ifndef KU
#define KU 1
#endif
#ifndef T
#define T float
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifdef USE_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VT CAT(T, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)
#define PW (NB * VW)
#define STR_(x) #x
#define STR(x) STR_(x)
#define UNROLL(n) _Pragma(STR(unroll n))

__kernel void pack_b(const int N, const int K, __global const T *restrict B,
                     __global T *restrict Bp)
{
    const int k = get_global_id(0);
    const int p = get_global_id(1);
    const int col = p * PW;
    if (k >= K)
        return;
    __global T *dst = Bp + ((size_t)p * K + k) * PW;
    if (col + PW <= N) {
        for (int j = 0; j < NB; ++j)
            VSTORE(VLOAD(j, B + (size_t)k * N + col), j, dst);
    } else {
        for (int j = 0; j < PW; ++j)
            dst[j] = (col + j < N) ? B[(size_t)k * N + col + j] : (T)0;
    }
}

__kernel void gemm_cpu(const int M, const int N, const int K, __global const T *restrict A,
                       __global const T *restrict Bp, __global T *restrict C)
{
    const int p = get_global_id(0);
    const int col = p * PW;
    const int row = get_global_id(1) * RB;
    if (col >= N || row >= M)
        return;
    VT acc[RB][NB];
    const __global T *arow[RB];
    for (int r = 0; r < RB; ++r) {
        for (int j = 0; j < NB; ++j)
            acc[r][j] = (VT)(0);
        arow[r] = A + (size_t)min(row + r, M - 1) * K;  // rows past M repeat the last; unstored
    }
    const __global T *bp = Bp + (size_t)p * K * PW;
    UNROLL(KU)
    for (int k = 0; k < K; ++k) {
        VT b[NB];
#pragma unroll
        for (int j = 0; j < NB; ++j)
            b[j] = VLOAD(k * NB + j, bp);
#pragma unroll
        for (int r = 0; r < RB; ++r) {
            const VT a = (VT)(arow[r][k]);
#pragma unroll
            for (int j = 0; j < NB; ++j)
                acc[r][j] = fma(a, b[j], acc[r][j]);
        }
    }
    if (col + PW <= N) {
        for (int r = 0; r < RB && row + r < M; ++r)
            for (int j = 0; j < NB; ++j)
                VSTORE(acc[r][j], 0, C + (size_t)(row + r) * N + col + j * VW);
    } else {  // the ragged last panel
        for (int r = 0; r < RB && row + r < M; ++r) {
            T tmp[PW];
            for (int j = 0; j < NB; ++j)
                VSTORE(acc[r][j], j, tmp);
            for (int j = 0; col + j < N; ++j)
                C[(size_t)(row + r) * N + col + j] = tmp[j];
        }
    }
}

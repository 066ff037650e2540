// GEMM for CPU devices (PoCL, Intel's CPU runtime): C = A * B, row-major, any M, N, K.
//
// Two kernels, run back to back by the host:
//   pack_b   copies B into panels of VW columns, each panel K x VW contiguous (zero-padded
//            past N), so the inner loop streams memory sequentially instead of striding by N;
//   gemm_cpu one work-item computes an RB x VW block of C in RB vector accumulators
//            (VW = 16 floats is one AVX-512 register): per k it loads one VW-wide piece of the
//            panel and broadcasts RB scalars of A into fused multiply-adds.
// A CPU device runs the work-items of a group one after another on one core; with groups laid
// out along m (local size 1 x L) the group's items reuse one B panel from cache while A streams.
// A GPU-style local-memory tiled kernel is ~20x slower on PoCL; see gemm_tiled.cl for GPUs.
// Tunables (build options): RB rows per work-item, VW vector width (4, 8 or 16), T float|double.

#ifndef RB
#define RB 8
#endif
#ifndef VW
#define VW 16
#endif
#ifndef T
#define T float
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VT CAT(T, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

__kernel void pack_b(const int N, const int K, __global const T *restrict B,
                     __global T *restrict Bp)
{
    const int k = get_global_id(0);
    const int p = get_global_id(1);
    const int col = p * VW;
    if (k >= K)
        return;
    __global T *dst = Bp + ((size_t)p * K + k) * VW;
    if (col + VW <= N) {
        VSTORE(VLOAD(0, B + (size_t)k * N + col), 0, dst);
    } else {
        for (int j = 0; j < VW; ++j)
            dst[j] = (col + j < N) ? B[(size_t)k * N + col + j] : (T)0;
    }
}

__kernel void gemm_cpu(const int M, const int N, const int K, __global const T *restrict A,
                       __global const T *restrict Bp, __global T *restrict C)
{
    const int p = get_global_id(0);
    const int col = p * VW;
    const int row = get_global_id(1) * RB;
    if (col >= N || row >= M)
        return;
    VT acc[RB];
    const __global T *arow[RB];
    for (int r = 0; r < RB; ++r) {
        acc[r] = (VT)(0);
        arow[r] = A + (size_t)min(row + r, M - 1) * K;  // rows past M repeat the last; unstored
    }
    const __global T *bp = Bp + (size_t)p * K * VW;
    for (int k = 0; k < K; ++k) {
        const VT b = VLOAD(k, bp);
#pragma unroll
        for (int r = 0; r < RB; ++r)
            acc[r] = fma((VT)(arow[r][k]), b, acc[r]);
    }
    if (col + VW <= N) {
        for (int r = 0; r < RB && row + r < M; ++r)
            VSTORE(acc[r], 0, C + (size_t)(row + r) * N + col);
    } else {  // the ragged last panel
        for (int r = 0; r < RB && row + r < M; ++r) {
            T tmp[VW];
            VSTORE(acc[r], 0, tmp);
            for (int j = 0; col + j < N; ++j)
                C[(size_t)(row + r) * N + col + j] = tmp[j];
        }
    }
}

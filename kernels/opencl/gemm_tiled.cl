// GEMM for GPUs: C = A * B, row-major, any M, N, K.
// Square TS x TS tiles of A and B are staged in local memory; a work-group of TS x (TS/WPT)
// work-items computes one TS x TS tile of C, each work-item WPT elements of one column strided
// by TS/WPT rows, so every loaded tile element feeds WPT multiply-adds from registers.
// (After C. Nugteren's "myGEMM" kernel 3.) Loads past the matrix edges read zeros.
// Tunables (build options): TS tile size, WPT work per thread (TS % WPT == 0), T float|double.

#ifndef TS
#define TS 32
#endif
#ifndef WPT
#define WPT 8
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
#define RTS (TS / WPT)

__kernel __attribute__((reqd_work_group_size(TS, RTS, 1)))
void gemm_tiled(const int M, const int N, const int K, __global const T *restrict A,
                __global const T *restrict B, __global T *restrict C)
{
    const int tx = get_local_id(0);  // column within the tile
    const int ty = get_local_id(1);  // first row within the tile
    const int col = get_group_id(0) * TS + tx;
    const int row0 = get_group_id(1) * TS + ty;
    __local T As[TS][TS];
    __local T Bs[TS][TS];
    T acc[WPT];
    for (int w = 0; w < WPT; ++w)
        acc[w] = 0;
    for (int t = 0; t < K; t += TS) {
        for (int w = 0; w < WPT; ++w) {
            const int r = ty + w * RTS;
            const int arow = get_group_id(1) * TS + r;
            const int brow = t + r;
            As[r][tx] = (arow < M && t + tx < K) ? A[(size_t)arow * K + t + tx] : (T)0;
            Bs[r][tx] = (brow < K && col < N) ? B[(size_t)brow * N + col] : (T)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TS; ++k) {
            const T b = Bs[k][tx];
            for (int w = 0; w < WPT; ++w)
                acc[w] = fma(As[ty + w * RTS][k], b, acc[w]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int w = 0; w < WPT; ++w) {
        const int row = row0 + w * RTS;
        if (row < M && col < N)
            C[(size_t)row * N + col] = acc[w];
    }
}

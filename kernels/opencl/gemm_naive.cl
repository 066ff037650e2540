// GEMM, one work-item per element of C: the portable baseline every OpenCL device can run.
#ifndef T
#define T float
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifdef USE_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

__kernel void gemm_naive(const int M, const int N, const int K, __global const T *restrict A,
                         __global const T *restrict B, __global T *restrict C)
{
    const int col = get_global_id(0);
    const int row = get_global_id(1);
    if (row >= M || col >= N)
        return;
    T acc = 0;
    for (int k = 0; k < K; ++k)
        acc = fma(A[(size_t)row * K + k], B[(size_t)k * N + col], acc);
    C[(size_t)row * N + col] = acc;
}

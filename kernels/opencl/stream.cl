// STREAM kernels (McCalpin): copy c=a, scale b=s*c, add c=a+b, triad a=b+s*c.
// One element per work-item; CPU runtimes (PoCL) vectorise across the work-items of a group.
#ifndef T
#define T float
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

__kernel void stream_copy(const long n, const T s, __global const T *restrict a,
                          __global T *restrict b, __global T *restrict c)
{
    const size_t i = get_global_id(0);
    if (i < n)
        c[i] = a[i];
}

__kernel void stream_scale(const long n, const T s, __global const T *restrict a,
                           __global T *restrict b, __global const T *restrict c)
{
    const size_t i = get_global_id(0);
    if (i < n)
        b[i] = s * c[i];
}

__kernel void stream_add(const long n, const T s, __global const T *restrict a,
                         __global const T *restrict b, __global T *restrict c)
{
    const size_t i = get_global_id(0);
    if (i < n)
        c[i] = a[i] + b[i];
}

__kernel void stream_triad(const long n, const T s, __global T *restrict a,
                           __global const T *restrict b, __global const T *restrict c)
{
    const size_t i = get_global_id(0);
    if (i < n)
        a[i] = fma(s, c[i], b[i]);
}

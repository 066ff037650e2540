// STREAM kernels (McCalpin): copy c=a, scale b=s*c, add c=a+b, triad a=b+s*c.
//
// Each work-item handles EPW vectors of VW elements. With CONTIG=1 a work-item's vectors are
// contiguous (a CPU device runs one work-item's loop over one cache-friendly stretch); with
// CONTIG=0 they are strided by the work-group size, so neighbouring work-items touch
// neighbouring vectors at each step (coalesced, as GPUs want). Elements past n (the ragged end
// when n is not a multiple of VW) are done one at a time. The host launches
// ceil(n / (VW * EPW)) work-items, rounded up to the work-group size WG (WG=0: the runtime
// chooses, and the grid is rounded to 64).
// Tunables (build options): VW vector width (1, 2, 4, 8, 16), EPW vectors per work-item,
// CONTIG layout, WG work-group size (host side), T float|double. EPW=VW=1 is one element per
// work-item: the portable baseline.
#ifndef T
#define T float
#endif
#ifndef VW
#define VW 1
#endif
#ifndef EPW
#define EPW 1
#endif
#ifndef CONTIG
#define CONTIG 1
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if VW == 1
#define VT T
#define LOAD(i, p) ((p)[i])
#define STORE(v, i, p) ((p)[i] = (v))
#else
#define VT CAT(T, VW)
#define LOAD(i, p) CAT(vload, VW)(i, p)
#define STORE(v, i, p) CAT(vstore, VW)(v, i, p)
#endif

#if CONTIG
#define FIRST ((size_t)get_global_id(0) * EPW)
#define STEP 1
#else
#define FIRST ((size_t)get_group_id(0) * get_local_size(0) * EPW + get_local_id(0))
#define STEP get_local_size(0)
#endif

// BODY(vector expression of index v, scalar expression of element j)
#define STREAM_LOOP(VEC, SCALAR)                                                             \
    const size_t first = FIRST;                                                              \
    const size_t full = (size_t)n / VW;                                                      \
    for (int e = 0; e < EPW; ++e) {                                                          \
        const size_t v = first + (size_t)e * STEP;                                           \
        if (v < full) {                                                                      \
            VEC;                                                                             \
        } else if (v == full) {                                                              \
            for (size_t j = v * VW; j < (size_t)n; ++j) {                                    \
                SCALAR;                                                                      \
            }                                                                                \
        }                                                                                    \
    }

__kernel void stream_copy(const long n, const T s, __global const T *restrict a,
                          __global T *restrict b, __global T *restrict c)
{
    STREAM_LOOP(STORE(LOAD(v, a), v, c), c[j] = a[j])
}

__kernel void stream_scale(const long n, const T s, __global const T *restrict a,
                           __global T *restrict b, __global const T *restrict c)
{
    STREAM_LOOP(STORE(s * LOAD(v, c), v, b), b[j] = s * c[j])
}

__kernel void stream_add(const long n, const T s, __global const T *restrict a,
                         __global const T *restrict b, __global T *restrict c)
{
    STREAM_LOOP(STORE(LOAD(v, a) + LOAD(v, b), v, c), c[j] = a[j] + b[j])
}

__kernel void stream_triad(const long n, const T s, __global T *restrict a,
                           __global const T *restrict b, __global const T *restrict c)
{
    STREAM_LOOP(STORE(fma((VT)(s), LOAD(v, c), LOAD(v, b)), v, a), a[j] = fma(s, c[j], b[j]))
}

// Direct 2-D convolution, NCHW input, OIHW weights, zero padding, no bias.
// One work-item per output element; work-items along x read neighbouring input pixels and the
// same weight, which CPU runtimes (PoCL) vectorise across the group and GPUs coalesce.
#ifndef T
#define T float
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

__kernel void conv2d_direct(const int C, const int H, const int W, const int F, const int K,
                            const int OH, const int OW, const int S, const int P,
                            __global const T *restrict x, __global const T *restrict w,
                            __global T *restrict y)
{
    const int ox = get_global_id(0);
    const int oy = get_global_id(1);
    const int nf = get_global_id(2);
    if (ox >= OW || oy >= OH)
        return;
    const int n = nf / F, f = nf % F;
    T acc = 0;
    for (int c = 0; c < C; ++c) {
        const __global T *xc = x + ((size_t)n * C + c) * H * W;
        const __global T *wc = w + ((size_t)f * C + c) * K * K;
        for (int i = 0; i < K; ++i) {
            const int iy = oy * S - P + i;
            if (iy < 0 || iy >= H)
                continue;
            for (int j = 0; j < K; ++j) {
                const int ix = ox * S - P + j;
                if (ix >= 0 && ix < W)
                    acc = fma(xc[iy * W + ix], wc[i * K + j], acc);
            }
        }
    }
    y[(((size_t)n * F + f) * OH + oy) * OW + ox] = acc;
}

// 2-D convolution as an implicit GEMM (no im2col buffer): NCHW input, OIHW weights, zero
// padding, no bias. Per image, Y (F x OH*OW) = W (F x C*K*K) * im2col(X) (C*K*K x OH*OW); the
// im2col matrix is never built: each work-item reads the input pixels its VW outputs need.
// One work-item computes RF filters x VW consecutive output pixels (the flattened oy*OW+ox) in
// RF vector accumulators: per reduction index (c, i, j) it gathers VW input pixels into one
// vector (a plain vector load where the VW outputs share a row, stride is 1 and the kernel
// window stays inside the image) and broadcasts RF weights into fused multiply-adds.
// Tunables (build options): VW output pixels per work-item (4, 8, 16), RF filters per
// work-item, WG work-group size along the pixels (host side), T float|double.
#ifndef T
#define T float
#endif
#ifndef VW
#define VW 8
#endif
#ifndef RF
#define RF 4
#endif
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VT CAT(T, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

__kernel void conv2d_igemm(const int C, const int H, const int W, const int F, const int K,
                           const int OH, const int OW, const int S, const int P,
                           __global const T *restrict x, __global const T *restrict w,
                           __global T *restrict y)
{
    const int npix = OH * OW;
    const int p0 = get_global_id(0) * VW;
    const int f0 = get_global_id(1) * RF;
    const int n = get_global_id(2);
    if (p0 >= npix || f0 >= F)
        return;
    int by[VW], bx[VW];  // each lane's top-left input pixel; lanes past the end repeat the last
    for (int l = 0; l < VW; ++l) {
        const int p = min(p0 + l, npix - 1);
        by[l] = (p / OW) * S - P;
        bx[l] = (p % OW) * S - P;
    }
    const int kk = K * K;
    const __global T *wf[RF];
    VT acc[RF];
    for (int r = 0; r < RF; ++r) {
        wf[r] = w + (size_t)min(f0 + r, F - 1) * C * kk;
        acc[r] = (VT)(0);
    }
    const __global T *xn = x + (size_t)n * C * H * W;
    // The VW outputs in one row, stride 1, the window inside the image: vector loads.
    const bool dense = S == 1 && p0 + VW <= npix && by[0] == by[VW - 1] && by[0] >= 0
                       && by[0] + K <= H && bx[0] >= 0 && bx[VW - 1] + K <= W;
    if (dense) {
        for (int c = 0; c < C; ++c) {
            const __global T *xc = xn + (size_t)c * H * W + by[0] * W + bx[0];
            for (int i = 0; i < K; ++i) {
                for (int j = 0; j < K; ++j) {
                    const VT xv = VLOAD(0, xc + i * W + j);
                    const int widx = c * kk + i * K + j;
#pragma unroll
                    for (int r = 0; r < RF; ++r)
                        acc[r] = fma((VT)(wf[r][widx]), xv, acc[r]);
                }
            }
        }
    } else {
        for (int c = 0; c < C; ++c) {
            const __global T *xc = xn + (size_t)c * H * W;
            for (int i = 0; i < K; ++i) {
                for (int j = 0; j < K; ++j) {
                    T v[VW];
                    for (int l = 0; l < VW; ++l) {
                        const int iy = by[l] + i, ix = bx[l] + j;
                        v[l] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[iy * W + ix] : (T)0;
                    }
                    const VT xv = VLOAD(0, v);
                    const int widx = c * kk + i * K + j;
#pragma unroll
                    for (int r = 0; r < RF; ++r)
                        acc[r] = fma((VT)(wf[r][widx]), xv, acc[r]);
                }
            }
        }
    }
    for (int r = 0; r < RF && f0 + r < F; ++r) {
        __global T *yf = y + ((size_t)n * F + f0 + r) * npix;
        if (p0 + VW <= npix) {
            VSTORE(acc[r], 0, yf + p0);
        } else {
            T out[VW];
            VSTORE(acc[r], 0, out);
            for (int l = 0; p0 + l < npix; ++l)
                yf[p0 + l] = out[l];
        }
    }
}

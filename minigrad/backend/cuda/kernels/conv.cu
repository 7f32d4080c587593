// conv.cu: im2col and its adjoint col2im, channels-last (docs/derivations/conv.md).
//
// Layout.  x is (N, H, W, C) contiguous.  cols is (N*oh*ow, K + extra), K = kh*kw*C:
// row = output pixel (n, oy, ox), column = tap (i, j, c), so
//     cols[(n*oh + oy)*ow + ox, (i*kw + j)*C + c] = x[n, oy*sh - ph + i*dh, ox*sw - pw + j*dw, c]
// (0 where that lies in the padding), and with extra = 1 a last column of ones (the bias).
//
// im2col, thread mapping: one thread per element of cols, in memory order (grid-stride):
//     thread t -> cols row t / (K+extra), column t % (K+extra)
// so a warp writes 32 consecutive elements of a row, and reads the C channels of one input
// pixel, which are contiguous too (coalesced both ways).
//
// col2im, thread mapping: one thread per element of dx (n, y, x, c), in memory order.  Each
// thread GATHERS every cols entry that im2col copied from its pixel: for each tap (i, j) the
// output pixel that used it is oy = (y + ph - i*dh) / sh (when that divides exactly and lies
// in [0, oh): Window::each_output in common.cuh), likewise ox.  No two threads write the same
// element and the taps are summed in a fixed order (i, then j): deterministic, with no
// atomics (a scatter would need atomicAdd).
#include "common.cuh"

template <typename T>
__device__ void im2col(const T* __restrict__ x, T* __restrict__ cols, index_t N, index_t H,
                       index_t W, index_t C, int kh, int kw, int sh, int sw, int ph, int pw,
                       int dh, int dw, index_t oh, index_t ow, int extra) {
    const index_t K = (index_t)kh * kw * C;
    const index_t width = K + extra;
    const index_t total = N * oh * ow * width;
    for (index_t e = global_thread(); e < total; e += grid_threads()) {
        const index_t row = e / width, col = e - row * width;
        if (col >= K) {  // the ones column
            cols[e] = T(1);
            continue;
        }
        const index_t ox = row % ow, oy = (row / ow) % oh, n = row / (ow * oh);
        const index_t c = col % C, tap = col / C;
        const index_t i = tap / kw, j = tap - i * kw;
        const index_t y = oy * sh - ph + i * dh, xx = ox * sw - pw + j * dw;
        const bool inside = y >= 0 && y < H && xx >= 0 && xx < W;
        cols[e] = inside ? x[((n * H + y) * W + xx) * C + c] : T(0);
    }
}

template <typename T>
__device__ void col2im(const T* __restrict__ cols, T* __restrict__ dx, index_t N, index_t H,
                       index_t W, index_t C, Window win, index_t oh, index_t ow, index_t width) {
    const index_t total = N * H * W * C;
    for (index_t e = global_thread(); e < total; e += grid_threads()) {
        const index_t c = e % C, xx = (e / C) % W, y = (e / (C * W)) % H, n = e / (C * W * H);
        T sum = T(0);
        win.each_output(y, xx, oh, ow, [&](int i, int j, index_t oy, index_t ox) {
            sum += cols[((n * oh + oy) * ow + ox) * width + ((index_t)i * win.kw + j) * C + c];
        });
        dx[e] = sum;
    }
}

#define MG_CONV_KERNELS(T, sfx)                                                                 \
    extern "C" __global__ void im2col_##sfx(const T* x, T* cols, index_t N, index_t H,         \
                                            index_t W, index_t C, int kh, int kw, int sh,       \
                                            int sw, int ph, int pw, int dh, int dw, index_t oh, \
                                            index_t ow, int extra) {                            \
        im2col(x, cols, N, H, W, C, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra);             \
    }                                                                                           \
    extern "C" __global__ void col2im_##sfx(const T* cols, T* dx, index_t N, index_t H,        \
                                            index_t W, index_t C, int kh, int kw, int sh,       \
                                            int sw, int ph, int pw, int dh, int dw, index_t oh, \
                                            index_t ow, index_t width) {                        \
        Window win = {kh, kw, sh, sw, ph, pw, dh, dw};                                          \
        col2im(cols, dx, N, H, W, C, win, oh, ow, width);                                       \
    }

MG_CONV_KERNELS(float, f32)
MG_CONV_KERNELS(double, f64)

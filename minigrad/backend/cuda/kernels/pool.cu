// pool.cu: 2-D max and average pooling, forward and backward.
//
// Tensors are logically (N, C, H, W); in memory they are either NCHW or channels-last NHWC
// (`cl` = 1), and outputs keep the input's layout, so conv -> relu -> pool -> conv stays
// channels-last with no copies.  argmax (max pooling) has the output's layout and holds, for
// each output, the flat index y*W + x of the winning input inside its own (n, c) plane.
//
// Forward, thread mapping: one thread per OUTPUT element, in the output's memory order
// (grid-stride), so consecutive threads write consecutive addresses:
//     NCHW: t -> (n, c, oy, ox) with ox fastest      NHWC: t -> (n, oy, ox, c) with c fastest
// The thread reads its kh x kw window (in NHWC a warp reads 32 neighbouring channels of each
// window pixel: coalesced).
//
// Backward, thread mapping: one thread per INPUT element (n, c, y, x), in the input's memory
// order.  It GATHERS from the outputs whose window covers it: for kernel row i the covering
// output row is oy = (y + ph - i*dh) / sh, when that divides exactly and lies in [0, oh);
// likewise ox.  Each thread writes only its own element and adds in a fixed order: the result
// is deterministic without atomics (a scatter from the outputs would collide where windows
// overlap).
#include "common.cuh"

// (n, c, y, x) of the flat element e of an (N, C, H, W) tensor stored NCHW or NHWC.
__device__ __forceinline__ void unflatten(index_t e, int cl, index_t C, index_t H, index_t W,
                                          index_t& n, index_t& c, index_t& y, index_t& x) {
    if (cl) {
        c = e % C; x = (e / C) % W; y = (e / (C * W)) % H; n = e / (C * W * H);
    } else {
        x = e % W; y = (e / W) % H; c = (e / (W * H)) % C; n = e / (W * H * C);
    }
}

// flat offset of (n, c, y, x)
__device__ __forceinline__ index_t flatten(int cl, index_t C, index_t H, index_t W, index_t n,
                                           index_t c, index_t y, index_t x) {
    return cl ? ((n * H + y) * W + x) * C + c : ((n * C + c) * H + y) * W + x;
}

// Max pooling: the first maximum in row-major window order wins; padding never wins; a NaN
// wins and the first NaN stays.
template <typename T>
__device__ void maxpool_forward(const T* __restrict__ x, T* __restrict__ out, int* __restrict__ argmax,
                                index_t N, index_t C, index_t H, index_t W, index_t oh,
                                index_t ow, Window win, int cl) {
    const index_t total = N * C * oh * ow;
    for (index_t e = global_thread(); e < total; e += grid_threads()) {
        index_t n, c, oy, ox;
        unflatten(e, cl, C, oh, ow, n, c, oy, ox);
        T best = -Num<T>::inf();
        index_t arg = -1;
        win.each_input(oy, ox, H, W, [&](index_t y, index_t xx) {
            const T v = x[flatten(cl, C, H, W, n, c, y, xx)];
            if (arg < 0 || v > best || (v != v && best == best)) {
                best = v;
                arg = y * W + xx;
            }
        });
        out[e] = best;
        argmax[e] = (int)arg;
    }
}

template <typename T>
__device__ void maxpool_backward(const T* __restrict__ g, const int* __restrict__ argmax,
                                 T* __restrict__ dx, index_t N, index_t C, index_t H, index_t W,
                                 index_t oh, index_t ow, Window win, int cl) {
    const index_t total = N * C * H * W;
    for (index_t e = global_thread(); e < total; e += grid_threads()) {
        index_t n, c, y, xx;
        unflatten(e, cl, C, H, W, n, c, y, xx);
        const int me = (int)(y * W + xx);
        T sum = T(0);
        win.each_output(y, xx, oh, ow, [&](int, int, index_t oy, index_t ox) {
            const index_t o = flatten(cl, C, oh, ow, n, c, oy, ox);
            if (argmax[o] == me) sum += g[o];
        });
        dx[e] = sum;
    }
}

// Average pooling divisor of the window at (oy, ox) (PyTorch's rule): with count_include_pad,
// the window clipped to the padded input (ceil mode can run past it); otherwise the number
// of real input elements in the window.
__device__ __forceinline__ index_t avg_divisor(index_t oy, index_t ox, index_t H, index_t W,
                                               const Window& win, int count_include_pad) {
    const index_t y0 = oy * win.sh - win.ph, x0 = ox * win.sw - win.pw;
    index_t y1 = y0 + win.kh, x1 = x0 + win.kw;
    if (count_include_pad) {
        if (y1 > H + win.ph) y1 = H + win.ph;
        if (x1 > W + win.pw) x1 = W + win.pw;
        return (y1 - y0) * (x1 - x0);
    }
    const index_t ya = y0 < 0 ? 0 : y0, xa = x0 < 0 ? 0 : x0;
    if (y1 > H) y1 = H;
    if (x1 > W) x1 = W;
    return (y1 - ya) * (x1 - xa);
}

template <typename T>
__device__ void avgpool_forward(const T* __restrict__ x, T* __restrict__ out, index_t N,
                                index_t C, index_t H, index_t W, index_t oh, index_t ow,
                                Window win, int count_include_pad, int cl) {
    const index_t total = N * C * oh * ow;
    for (index_t e = global_thread(); e < total; e += grid_threads()) {
        index_t n, c, oy, ox;
        unflatten(e, cl, C, oh, ow, n, c, oy, ox);
        T sum = T(0);
        win.each_input(oy, ox, H, W, [&](index_t y, index_t xx) { sum += x[flatten(cl, C, H, W, n, c, y, xx)]; });
        out[e] = sum / T(avg_divisor(oy, ox, H, W, win, count_include_pad));
    }
}

template <typename T>
__device__ void avgpool_backward(const T* __restrict__ g, T* __restrict__ dx, index_t N,
                                 index_t C, index_t H, index_t W, index_t oh, index_t ow,
                                 Window win, int count_include_pad, int cl) {
    const index_t total = N * C * H * W;
    for (index_t e = global_thread(); e < total; e += grid_threads()) {
        index_t n, c, y, xx;
        unflatten(e, cl, C, H, W, n, c, y, xx);
        T sum = T(0);
        win.each_output(y, xx, oh, ow, [&](int, int, index_t oy, index_t ox) {
            const T d = T(avg_divisor(oy, ox, H, W, win, count_include_pad));
            sum += g[flatten(cl, C, oh, ow, n, c, oy, ox)] / d;
        });
        dx[e] = sum;
    }
}

#define MG_POOL_KERNELS(T, sfx)                                                                 \
    extern "C" __global__ void maxpool_forward_##sfx(                                           \
        const T* x, T* out, int* argmax, index_t N, index_t C, index_t H, index_t W, index_t oh, \
        index_t ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int cl) {   \
        Window win = {kh, kw, sh, sw, ph, pw, dh, dw};                                          \
        maxpool_forward(x, out, argmax, N, C, H, W, oh, ow, win, cl);                           \
    }                                                                                           \
    extern "C" __global__ void maxpool_backward_##sfx(                                          \
        const T* g, const int* argmax, T* dx, index_t N, index_t C, index_t H, index_t W,       \
        index_t oh, index_t ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, \
        int cl) {                                                                               \
        Window win = {kh, kw, sh, sw, ph, pw, dh, dw};                                          \
        maxpool_backward(g, argmax, dx, N, C, H, W, oh, ow, win, cl);                           \
    }                                                                                           \
    extern "C" __global__ void avgpool_forward_##sfx(                                           \
        const T* x, T* out, index_t N, index_t C, index_t H, index_t W, index_t oh, index_t ow, \
        int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad, int cl) {        \
        Window win = {kh, kw, sh, sw, ph, pw, 1, 1};                                            \
        avgpool_forward(x, out, N, C, H, W, oh, ow, win, count_include_pad, cl);                \
    }                                                                                           \
    extern "C" __global__ void avgpool_backward_##sfx(                                          \
        const T* g, T* dx, index_t N, index_t C, index_t H, index_t W, index_t oh, index_t ow,  \
        int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad, int cl) {        \
        Window win = {kh, kw, sh, sw, ph, pw, 1, 1};                                            \
        avgpool_backward(g, dx, N, C, H, W, oh, ow, win, count_include_pad, cl);                \
    }

MG_POOL_KERNELS(float, f32)
MG_POOL_KERNELS(double, f64)

// common.cuh: the helpers every kernel family shares.
//
// Each family (elementwise.cu, softmax.cu, ...) starts with `#include "common.cuh"`; nvcc finds
// this file beside it, and minigrad/backend/cuda/__init__.py pastes it in place of that line
// before handing the source to NVRTC (or to the CPU emulator), so no include path is needed.
//
// Conventions used in every family:
// * Kernels are written once as templates over the element type T (float or double) and
//   exported under plain C names, `<kernel>_f32` and `<kernel>_f64` (extern "C": no C++ name
//   mangling, so Python finds them by name).
// * Sizes and flat indices are `index_t` (64-bit): a tensor may hold more than 2^31 elements.
// * No float atomics anywhere: every reduction adds in an order fixed by the shapes alone, so
//   the same inputs give the same bits on every run.
#pragma once

typedef long long index_t;

#define MG_WARP 32
#define MG_FULL_MASK 0xffffffffu

// ---- math, overloaded for float and double ------------------------------------------------
// (CUDA's math library names the float versions expf, logf, ...; these overloads let one
// template body call the right one.)
__device__ __forceinline__ float mg_exp(float x) { return expf(x); }
__device__ __forceinline__ double mg_exp(double x) { return exp(x); }
__device__ __forceinline__ float mg_log(float x) { return logf(x); }
__device__ __forceinline__ double mg_log(double x) { return log(x); }
__device__ __forceinline__ float mg_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double mg_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float mg_erf(float x) { return erff(x); }
__device__ __forceinline__ double mg_erf(double x) { return erf(x); }
__device__ __forceinline__ float mg_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double mg_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float mg_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double mg_abs(double x) { return fabs(x); }

// +infinity and a quiet NaN of type T, built from their bit patterns (no header needed).
template <typename T> struct Num;
template <> struct Num<float> {
    __device__ static float inf() { return __int_as_float(0x7f800000); }
    __device__ static float nan() { return __int_as_float(0x7fc00000); }
};
template <> struct Num<double> {
    __device__ static double inf() { return __longlong_as_double(0x7ff0000000000000LL); }
    __device__ static double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};

// max that never drops a NaN (fmax(NaN, 1) is 1: that would mask a NaN row).
template <typename T> __device__ __forceinline__ T max_nan(T a, T b) {
    return (a != a || a > b) ? a : b;
}

// ---- 16-byte vector access ------------------------------------------------------------------
// One 16-byte load or store moves 4 floats or 2 doubles; a warp then moves 512 contiguous
// bytes per instruction, the widest access the memory system serves.  Vec<T>::n is how many
// elements one access holds; the caller checks alignment (16 bytes) before using these.
template <typename T> struct Vec;
template <> struct Vec<float> { static const int n = 4; };
template <> struct Vec<double> { static const int n = 2; };

__device__ __forceinline__ void load_vec(const float* p, float* r) {
    float4 v = *reinterpret_cast<const float4*>(p);
    r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
}
__device__ __forceinline__ void load_vec(const double* p, double* r) {
    double2 v = *reinterpret_cast<const double2*>(p);
    r[0] = v.x; r[1] = v.y;
}
__device__ __forceinline__ void store_vec(float* p, const float* r) {
    float4 v;
    v.x = r[0]; v.y = r[1]; v.z = r[2]; v.w = r[3];
    *reinterpret_cast<float4*>(p) = v;
}
__device__ __forceinline__ void store_vec(double* p, const double* r) {
    double2 v;
    v.x = r[0]; v.y = r[1];
    *reinterpret_cast<double2*>(p) = v;
}
// 4 consecutive elements (one float4, or two double2): p must be 16-byte aligned.
template <typename T> __device__ __forceinline__ void load_vec4(const T* p, T* r) {
#pragma unroll
    for (int j = 0; j < 4; j += Vec<T>::n) load_vec(p + j, r + j);
}
template <typename T> __device__ __forceinline__ void store_vec4(T* p, const T* r) {
#pragma unroll
    for (int j = 0; j < 4; j += Vec<T>::n) store_vec(p + j, r + j);
}
__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

// Flat index of this thread in the grid, and the grid's size: for grid-stride loops, where a
// grid sized to fill the GPU walks over any number of elements.
__device__ __forceinline__ index_t global_thread() {
    return (index_t)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ index_t grid_threads() { return (index_t)gridDim.x * blockDim.x; }

// ---- sliding windows (convolution, pooling) -------------------------------------------------
// A 2-D window op: output (oy, ox) reads inputs (oy*sh - ph + i*dh, ox*sw - pw + j*dw) for taps
// i < kh, j < kw.  The forward kernels walk a window's inputs; the gather-style backward
// kernels (col2im, pooling) walk, for one input, the outputs whose windows read it.
struct Window {
    int kh, kw, sh, sw, ph, pw, dh, dw;

    // Calls f(y, x) for each input of output (oy, ox)'s window inside the H x W input, in
    // row-major window order (padding is skipped).
    template <typename F>
    __device__ __forceinline__ void each_input(index_t oy, index_t ox, index_t H, index_t W, F f) const {
        for (int i = 0; i < kh; ++i) {
            const index_t y = oy * sh - ph + (index_t)i * dh;
            if (y < 0 || y >= H) continue;
            for (int j = 0; j < kw; ++j) {
                const index_t x = ox * sw - pw + (index_t)j * dw;
                if (x >= 0 && x < W) f(y, x);
            }
        }
    }

    // Calls f(i, j, oy, ox) for each tap (i, j) and output (oy, ox) of an oh x ow output whose
    // window reads input (y, x), in tap order: oy = (y + ph - i*dh) / sh when that division is
    // exact and in [0, oh), likewise ox.
    template <typename F>
    __device__ __forceinline__ void each_output(index_t y, index_t x, index_t oh, index_t ow, F f) const {
        for (int i = 0; i < kh; ++i) {
            const index_t oy = covering(y, i, sh, ph, dh, oh);
            if (oy < 0) continue;
            for (int j = 0; j < kw; ++j) {
                const index_t ox = covering(x, j, sw, pw, dw, ow);
                if (ox >= 0) f(i, j, oy, ox);
            }
        }
    }

  private:
    __device__ static index_t covering(index_t v, int t, int s, int p, int d, index_t out) {
        const index_t u = v + p - (index_t)t * d;
        if (u < 0 || u % s != 0 || u / s >= out) return -1;
        return u / s;
    }
};

// ---- reductions -----------------------------------------------------------------------------
// A reduction state ("accumulator") is a small struct with
//     static Acc identity();                         the state of no elements
//     static Acc merge(const Acc& a, const Acc& b);  the state of a's elements followed by b's
//     Acc shfl_xor(int lane_mask) const;             the same state held by lane ^ lane_mask
// Sum<T>, MaxSum<T> and Welford<T> below are the three the kernels use.
//
// Warp reduction is a butterfly: after the step with offset o, lanes l and l^o hold the same
// state.  Both lanes compute merge(lower lane's, upper lane's), in that order, so every lane
// ends with bit-identical results even when merge is not symmetric in rounding (Welford).

template <typename T> struct Sum {  // a plain sum
    T s;
    __device__ static Sum identity() { Sum r = {T(0)}; return r; }
    __device__ static Sum merge(const Sum& a, const Sum& b) { Sum r = {a.s + b.s}; return r; }
    __device__ Sum shfl_xor(int o) const { Sum r = {__shfl_xor_sync(MG_FULL_MASK, s, o)}; return r; }
};

template <typename T> struct Sum2 {  // two sums at once (e.g. sum g and sum g*xhat)
    T a, b;
    __device__ static Sum2 identity() { Sum2 r = {T(0), T(0)}; return r; }
    __device__ static Sum2 merge(const Sum2& x, const Sum2& y) {
        Sum2 r = {x.a + y.a, x.b + y.b};
        return r;
    }
    __device__ Sum2 shfl_xor(int o) const {
        Sum2 r = {__shfl_xor_sync(MG_FULL_MASK, a, o), __shfl_xor_sync(MG_FULL_MASK, b, o)};
        return r;
    }
};

// The running maximum m and sum s = sum_i exp(x_i - m) of a row ("online softmax"): one pass
// over x gives both.  Merging rescales each side's sum to the larger maximum.  A side whose
// maximum IS the new maximum keeps its sum unscaled: that keeps -inf == -inf (empty or all
// -inf sides) from computing exp(-inf - -inf) = NaN, while a NaN maximum (a NaN in the row)
// fails every comparison and makes the sum NaN, as it must.
template <typename T> struct MaxSum {
    T m, s;
    __device__ static MaxSum identity() { MaxSum r = {-Num<T>::inf(), T(0)}; return r; }
    __device__ static MaxSum of(T x) { MaxSum r = {x, T(1)}; return r; }
    // add(x) == merge(*this, of(x)), with one exp per element instead of two: the exponent
    // is -|x - m| either way (the running sum is rescaled when x is a new maximum, else x's
    // term is added).  NaN (in x or already in m) makes m and s NaN; x == m (+-inf included)
    // adds exactly 1.
    __device__ void add(T x) {
        const T d = x - m;
        const bool up = x > m;
        const T e = mg_exp(up ? -d : d);
        if (up) {
            s = s * e + T(1);
            m = x;
        } else {
            s += x == m ? T(1) : e;
            if (x != x) m = x;
        }
    }
    __device__ static MaxSum merge(const MaxSum& a, const MaxSum& b) {
        T m = max_nan(a.m, b.m);
        T sa = a.m == m ? a.s : a.s * mg_exp(a.m - m);
        T sb = b.m == m ? b.s : b.s * mg_exp(b.m - m);
        MaxSum r = {m, sa + sb};
        return r;
    }
    __device__ MaxSum shfl_xor(int o) const {
        MaxSum r = {__shfl_xor_sync(MG_FULL_MASK, m, o), __shfl_xor_sync(MG_FULL_MASK, s, o)};
        return r;
    }
    // log sum exp x = m + log s; a row of -inf (or an empty row) gives -inf, not NaN, and a
    // row holding +inf gives +inf.
    __device__ T lse() const { return m == -Num<T>::inf() ? m : m + mg_log(s); }
    // For softmax and cross-entropy, x - m is NaN (inf - inf) when the maximum is +inf, and
    // the whole row is NaN (as in reference.py and PyTorch): make the sum say so.
    __device__ MaxSum nan_if_inf_max() const {
        MaxSum r = {m, m == Num<T>::inf() ? Num<T>::nan() : s};
        return r;
    }
};

// Count, mean and sum of squared deviations (Welford; merged with Chan's formula): variance in
// one pass without the cancellation of E[x^2] - E[x]^2.
template <typename T> struct Welford {
    T n, mean, m2;
    __device__ static Welford identity() { Welford r = {T(0), T(0), T(0)}; return r; }
    __device__ void add(T x) {
        n += T(1);
        T d = x - mean;
        mean += d / n;
        m2 += d * (x - mean);
    }
    __device__ static Welford merge(const Welford& a, const Welford& b) {
        if (b.n == T(0)) return a;
        if (a.n == T(0)) return b;
        T n = a.n + b.n;
        T d = b.mean - a.mean;
        T f = b.n / n;
        Welford r = {n, a.mean + d * f, a.m2 + b.m2 + d * d * a.n * f};
        return r;
    }
    __device__ Welford shfl_xor(int o) const {
        Welford r = {__shfl_xor_sync(MG_FULL_MASK, n, o), __shfl_xor_sync(MG_FULL_MASK, mean, o),
                     __shfl_xor_sync(MG_FULL_MASK, m2, o)};
        return r;
    }
};

// Every lane of the warp ends with the merge of all 32 lanes' states (lane order).
template <typename Acc> __device__ __forceinline__ Acc warp_reduce(Acc a) {
    const int lane = threadIdx.x & (MG_WARP - 1);
#pragma unroll
    for (int o = 1; o < MG_WARP; o <<= 1) {
        Acc other = a.shfl_xor(o);
        a = (lane & o) ? Acc::merge(other, a) : Acc::merge(a, other);
    }
    return a;
}

// Every thread of the block ends with the merge of all threads' states (thread order).
// blockDim.x must be a multiple of 32 (and at most 1024).  Safe to call repeatedly: the
// first barrier keeps a fast warp from overwriting `part` while a slow one still reads it.
template <typename Acc> __device__ __forceinline__ Acc block_reduce(Acc a) {
    __shared__ Acc part[MG_WARP];
    const int lane = threadIdx.x & (MG_WARP - 1), warp = threadIdx.x / MG_WARP;
    const int warps = blockDim.x / MG_WARP;
    a = warp_reduce(a);
    __syncthreads();
    if (lane == 0) part[warp] = a;
    __syncthreads();
    return warp_reduce(lane < warps ? part[lane] : Acc::identity());
}

// ---- row teams --------------------------------------------------------------------------
// The row kernels (softmax, cross-entropy, layer norm) let a TEAM of threads share one row:
//   WarpTeam:  one warp per row, blockDim.x / 32 rows per block (short rows: a block-wide
//              reduction would leave most threads idle, and warp shuffles need no barrier);
//   BlockTeam: the whole block per row (long rows: more threads to read them).
// Within a team, thread `rank()` reads columns rank, rank + size, ... (coalesced); rows are
// spread over the grid with a grid-stride loop.  A kernel body is written once against this
// interface and instantiated for both teams.
struct WarpTeam {
    __device__ int rank() const { return threadIdx.x & (MG_WARP - 1); }
    __device__ int size() const { return MG_WARP; }
    __device__ index_t first_row() const {
        return (index_t)blockIdx.x * (blockDim.x / MG_WARP) + threadIdx.x / MG_WARP;
    }
    __device__ index_t row_step() const { return (index_t)gridDim.x * (blockDim.x / MG_WARP); }
    template <typename Acc> __device__ Acc reduce(Acc a) const { return warp_reduce(a); }
};

struct BlockTeam {
    __device__ int rank() const { return threadIdx.x; }
    __device__ int size() const { return blockDim.x; }
    __device__ index_t first_row() const { return blockIdx.x; }
    __device__ index_t row_step() const { return gridDim.x; }
    template <typename Acc> __device__ Acc reduce(Acc a) const { return block_reduce(a); }
};

// elementwise.cu: activations and their backward passes, one element in, one element out.
//
// Thread mapping (every kernel here):
//   The tensor is a flat array of n elements (the wrapper makes it contiguous).  Thread t of
//   the grid handles 16-byte packs t, t + G, t + 2G, ... (G = threads in the grid: a
//   grid-stride loop, so a grid sized to the GPU covers any n).  A pack is 4 floats or
//   2 doubles, read and written with one 16-byte access each:
//
//       elements  | 0 1 2 3 | 4 5 6 7 | 8 ...     | ...
//       thread    |    0    |    1    |    2      | ... G-1 | 0 (second round) ...
//
//   so a warp moves 512 contiguous bytes per instruction (fully coalesced).  The last
//   n % 4 (or n % 2) elements, and whole arrays that are not 16-byte aligned, go one element
//   per thread.  Memory-bound: each element is read once and written once.
//
// Each operation is a small functor; map1 / map2 apply one to every element.
#include "common.cuh"

// y[i] = f(x[i])
template <typename T, typename F>
__device__ __forceinline__ void map1(const T* __restrict__ x, T* __restrict__ y, index_t n, F f) {
    const int V = Vec<T>::n;
    index_t start = 0;
    if (aligned16(x) && aligned16(y)) {
        const index_t packs = n / V;
        for (index_t p = global_thread(); p < packs; p += grid_threads()) {
            T r[Vec<T>::n];
            load_vec(x + p * V, r);
#pragma unroll
            for (int j = 0; j < V; ++j) r[j] = f(r[j]);
            store_vec(y + p * V, r);
        }
        start = packs * V;
    }
    for (index_t i = start + global_thread(); i < n; i += grid_threads()) y[i] = f(x[i]);
}

// out[i] = f(a[i], b[i])   (a is the upstream gradient g, b the saved x or y)
template <typename T, typename F>
__device__ __forceinline__ void map2(const T* __restrict__ a, const T* __restrict__ b,
                                     T* __restrict__ out, index_t n, F f) {
    const int V = Vec<T>::n;
    index_t start = 0;
    if (aligned16(a) && aligned16(b) && aligned16(out)) {
        const index_t packs = n / V;
        for (index_t p = global_thread(); p < packs; p += grid_threads()) {
            T ra[Vec<T>::n], rb[Vec<T>::n];
            load_vec(a + p * V, ra);  // both loads issue before the first use
            load_vec(b + p * V, rb);
#pragma unroll
            for (int j = 0; j < V; ++j) ra[j] = f(ra[j], rb[j]);
            store_vec(out + p * V, ra);
        }
        start = packs * V;
    }
    for (index_t i = start + global_thread(); i < n; i += grid_threads()) out[i] = f(a[i], b[i]);
}

// ---- the operations ---------------------------------------------------------------------
// Written with comparisons that are false for NaN, so a NaN input gives a NaN output.

template <typename T> struct Relu {  // max(x, 0)
    __device__ T operator()(T x) const { return x < T(0) ? T(0) : x; }
};
template <typename T> struct ReluBackward {  // g where y > 0
    __device__ T operator()(T g, T y) const { return y > T(0) ? g : T(0); }
};

template <typename T> struct LeakyRelu {  // x if x > 0 else slope x
    T slope;
    __device__ T operator()(T x) const { return x > T(0) ? x : slope * x; }
};
template <typename T> struct LeakyReluBackward {  // g if x > 0 else slope g
    T slope;
    __device__ T operator()(T g, T x) const { return x > T(0) ? g : slope * g; }
};

// sigmoid from e = exp(-|x|) <= 1: never overflows, for x of either sign.
template <typename T> __device__ __forceinline__ T stable_sigmoid(T x) {
    T e = mg_exp(-mg_abs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
template <typename T> struct Sigmoid {
    __device__ T operator()(T x) const { return stable_sigmoid(x); }
};
template <typename T> struct SigmoidBackward {  // g y (1 - y)
    __device__ T operator()(T g, T y) const { return g * y * (T(1) - y); }
};

template <typename T> struct Tanh {
    __device__ T operator()(T x) const { return mg_tanh(x); }
};
template <typename T> struct TanhBackward {  // g (1 - y^2)
    __device__ T operator()(T g, T y) const { return g * (T(1) - y * y); }
};

// GELU, exact: x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;  d/dx = Phi(x) + x phi(x)
template <typename T> struct GeluErf {
    __device__ T operator()(T x) const {
        return T(0.5) * x * (T(1) + mg_erf(x * T(0.70710678118654752440)));
    }
};
template <typename T> struct GeluErfBackward {
    __device__ T operator()(T g, T x) const {
        T cdf = T(0.5) * (T(1) + mg_erf(x * T(0.70710678118654752440)));
        T pdf = T(0.39894228040143267794) * mg_exp(T(-0.5) * x * x);  // exp(-x^2/2)/sqrt(2 pi)
        return g * (cdf + x * pdf);
    }
};

// GELU, tanh form: x (1 + tanh u) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3);
// d/dx = (1 + t)/2 + x (1 - t^2) u' / 2,  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
template <typename T> struct GeluTanh {
    __device__ T operator()(T x) const {
        T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
        return T(0.5) * x * (T(1) + mg_tanh(u));
    }
};
template <typename T> struct GeluTanhBackward {
    __device__ T operator()(T g, T x) const {
        T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
        T t = mg_tanh(u);
        T du = T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * x * x);
        T s = T(1) - t * t;  // 0 once tanh saturates: the term is 0 (du may be inf: 0 * inf = NaN)
        return g * (T(0.5) * (T(1) + t) + (s == T(0) ? T(0) : T(0.5) * x * s * du));
    }
};

template <typename T> struct Silu {  // x sigmoid(x)
    __device__ T operator()(T x) const { return x * stable_sigmoid(x); }
};
template <typename T> struct SiluBackward {  // g s (1 + x (1 - s)),  s = sigmoid(x)
    __device__ T operator()(T g, T x) const {
        T s = stable_sigmoid(x);
        return g * s * (T(1) + x * (T(1) - s));
    }
};

// ---- exported kernels: <name>_f32 / <name>_f64 ----------------------------------------------
// forward (x, y, n), backward (g, saved x or y, out, n); leaky_relu also takes its slope.
#define MG_FORWARD(T, sfx, name, Op)                                                            \
    extern "C" __global__ void name##_##sfx(const T* x, T* y, index_t n) { map1(x, y, n, Op<T>()); }
#define MG_BACKWARD(T, sfx, name, Op)                                                           \
    extern "C" __global__ void name##_##sfx(const T* g, const T* s, T* out, index_t n) {       \
        map2(g, s, out, n, Op<T>());                                                            \
    }
#define MG_ELEMENTWISE_KERNELS(T, sfx)                                                          \
    MG_FORWARD(T, sfx, relu, Relu)                                                              \
    MG_BACKWARD(T, sfx, relu_backward, ReluBackward)                                            \
    MG_FORWARD(T, sfx, sigmoid, Sigmoid)                                                        \
    MG_BACKWARD(T, sfx, sigmoid_backward, SigmoidBackward)                                      \
    MG_FORWARD(T, sfx, tanh, Tanh)                                                              \
    MG_BACKWARD(T, sfx, tanh_backward, TanhBackward)                                            \
    MG_FORWARD(T, sfx, gelu_erf, GeluErf)                                                       \
    MG_BACKWARD(T, sfx, gelu_erf_backward, GeluErfBackward)                                     \
    MG_FORWARD(T, sfx, gelu_tanh, GeluTanh)                                                     \
    MG_BACKWARD(T, sfx, gelu_tanh_backward, GeluTanhBackward)                                   \
    MG_FORWARD(T, sfx, silu, Silu)                                                              \
    MG_BACKWARD(T, sfx, silu_backward, SiluBackward)                                            \
    extern "C" __global__ void leaky_relu_##sfx(const T* x, T* y, index_t n, T slope) {        \
        LeakyRelu<T> f = {slope};                                                               \
        map1(x, y, n, f);                                                                       \
    }                                                                                           \
    extern "C" __global__ void leaky_relu_backward_##sfx(const T* g, const T* x, T* out,       \
                                                         index_t n, T slope) {                  \
        LeakyReluBackward<T> f = {slope};                                                       \
        map2(g, x, out, n, f);                                                                  \
    }

MG_ELEMENTWISE_KERNELS(float, f32)
MG_ELEMENTWISE_KERNELS(double, f64)

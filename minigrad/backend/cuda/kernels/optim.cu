// optim.cu: fused SGD, Adam/AdamW, Adagrad and Adadelta updates for ALL tensors of a parameter
// group in ONE launch.
//
// A model has tens of parameter tensors, many of them small (biases): one launch per tensor
// would cost more in launch overhead than the arithmetic.  Instead the caller builds a table,
// one row per tensor (int64 words; pointers stored as integers):
//
//     SGD:      x  g  buf  size  first_block                (W = 5 words per row)
//     Adam:     x  g  m  v  vmax  size  first_block         (W = 7 words per row)
//     Adagrad:  x  g  s  size  first_block                  (W = 5)
//     Adadelta: x  g  v  u  size  first_block               (W = 6)
//
// and launches one grid whose blocks are dealt out to the tensors, `chunk` elements per block:
//
//     blocks:   | t0 c0 | t0 c1 | t0 c2 | t1 c0 | t2 c0 | t2 c1 | ...
//     first_block:  0                     3       4
//
// Thread mapping: block b finds its tensor t (binary search for the last first_block <= b),
// takes elements [(b - first_block[t]) * chunk, + chunk) of it, and its threads walk them
// with stride blockDim.x (coalesced).
//
// The table is a kernel argument, passed by value (as PyTorch's multi_tensor_apply passes its
// tensor lists): it travels with the launch itself, so there is no copy from the host and no
// wait for one.  MG_TABLE_WORDS (3584 bytes) keeps the arguments within the 4 KB every CUDA
// device accepts: up to 89 tensors (SGD, Adagrad), 74 (Adadelta) or 64 (Adam) per launch; the
// caller launches once per that many tensors of a group.
#include "common.cuh"

#define MG_SGD_WORDS 5
#define MG_ADAM_WORDS 7
#define MG_ADAGRAD_WORDS 5
#define MG_ADADELTA_WORDS 6
#define MG_TABLE_WORDS 448

struct TensorTable {
    long long words[MG_TABLE_WORDS];
};

// The tensor that block b works on, and the element range [begin, end) of its chunk.
__device__ __forceinline__ int find_tensor(const long long* table, int words, int ntensors,
                                           index_t chunk, index_t& begin, index_t& end) {
    const index_t b = blockIdx.x;
    int lo = 0, hi = ntensors - 1;  // invariant: first_block[lo] <= b
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (table[mid * words + words - 1] <= b) lo = mid; else hi = mid - 1;
    }
    const index_t size = table[lo * words + words - 2];
    begin = (b - table[lo * words + words - 1]) * chunk;
    end = begin + chunk < size ? begin + chunk : size;
    return lo;
}

template <typename T> __device__ __forceinline__ T* table_ptr(const long long* table, index_t word) {
    return reinterpret_cast<T*>(table[word]);
}

// d = g + wd x;  with momentum: buf = d (first step) or momentum buf + (1 - dampening) d,
// d = d + momentum buf (nesterov) or buf;  x -= lr d.
template <typename T>
__device__ void sgd_step(const long long* table, int ntensors, index_t chunk, T lr, T wd,
                         T momentum, T undamped, int nesterov, int first) {
    index_t begin, end;
    const int t = find_tensor(table, MG_SGD_WORDS, ntensors, chunk, begin, end);
    T* x = table_ptr<T>(table, t * MG_SGD_WORDS + 0);
    const T* g = table_ptr<T>(table, t * MG_SGD_WORDS + 1);
    T* buf = table_ptr<T>(table, t * MG_SGD_WORDS + 2);
    for (index_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const T xi = x[i];
        T d = g[i];
        if (wd != T(0)) d += wd * xi;
        if (momentum != T(0)) {
            const T b = first ? d : momentum * buf[i] + undamped * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        x[i] = xi - lr * d;
    }
}

// Adam (decoupled = 0: g += wd x) and AdamW (decay = 1 - lr wd: x *= decay), amsgrad optional:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  (amsgrad: vmax = max(vmax, v), used for v)
//   x -= step_size m / (sqrt(v) inv_sqrt_bc2 + eps),
// step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t) come from the host.
template <typename T>
__device__ void adam_step(const long long* table, int ntensors, index_t chunk, T step_size, T b1,
                          T b2, T eps, T inv_sqrt_bc2, T l2, T decay, int amsgrad) {
    index_t begin, end;
    const int t = find_tensor(table, MG_ADAM_WORDS, ntensors, chunk, begin, end);
    T* x = table_ptr<T>(table, t * MG_ADAM_WORDS + 0);
    const T* g = table_ptr<T>(table, t * MG_ADAM_WORDS + 1);
    T* m = table_ptr<T>(table, t * MG_ADAM_WORDS + 2);
    T* v = table_ptr<T>(table, t * MG_ADAM_WORDS + 3);
    T* vmax = table_ptr<T>(table, t * MG_ADAM_WORDS + 4);
    for (index_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        T xi = x[i];
        T gi = g[i];
        if (l2 != T(0)) gi += l2 * xi;
        xi *= decay;
        const T mi = b1 * m[i] + (T(1) - b1) * gi;
        T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            vi = max_nan(vmax[i], vi);
            vmax[i] = vi;
        }
        x[i] = xi - step_size * (mi / (mg_sqrt(vi) * inv_sqrt_bc2 + eps));
    }
}

// Adagrad: g += wd x;  s += g^2;  x -= clr g / (sqrt(s) + eps),
// clr = lr / (1 + (t - 1) lr_decay) from the host.
template <typename T>
__device__ void adagrad_step(const long long* table, int ntensors, index_t chunk, T clr, T wd, T eps) {
    index_t begin, end;
    const int t = find_tensor(table, MG_ADAGRAD_WORDS, ntensors, chunk, begin, end);
    T* x = table_ptr<T>(table, t * MG_ADAGRAD_WORDS + 0);
    const T* g = table_ptr<T>(table, t * MG_ADAGRAD_WORDS + 1);
    T* s = table_ptr<T>(table, t * MG_ADAGRAD_WORDS + 2);
    for (index_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const T xi = x[i];
        T gi = g[i];
        if (wd != T(0)) gi += wd * xi;
        const T si = s[i] + gi * gi;
        s[i] = si;
        x[i] = xi - clr * (gi / (mg_sqrt(si) + eps));
    }
}

// Adadelta: g += wd x;  v = rho v + (1-rho) g^2;  d = sqrt(u + eps) / sqrt(v + eps) g;
//           u = rho u + (1-rho) d^2;  x -= lr d.
template <typename T>
__device__ void adadelta_step(const long long* table, int ntensors, index_t chunk, T lr, T rho,
                              T one_minus_rho, T eps, T wd) {
    index_t begin, end;
    const int t = find_tensor(table, MG_ADADELTA_WORDS, ntensors, chunk, begin, end);
    T* x = table_ptr<T>(table, t * MG_ADADELTA_WORDS + 0);
    const T* g = table_ptr<T>(table, t * MG_ADADELTA_WORDS + 1);
    T* v = table_ptr<T>(table, t * MG_ADADELTA_WORDS + 2);
    T* u = table_ptr<T>(table, t * MG_ADADELTA_WORDS + 3);
    for (index_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const T xi = x[i];
        T gi = g[i];
        if (wd != T(0)) gi += wd * xi;
        const T vi = rho * v[i] + one_minus_rho * (gi * gi);
        v[i] = vi;
        const T d = mg_sqrt(u[i] + eps) / mg_sqrt(vi + eps) * gi;
        u[i] = rho * u[i] + one_minus_rho * (d * d);
        x[i] = xi - lr * d;
    }
}

#define MG_OPTIM_KERNELS(T, sfx)                                                                \
    extern "C" __global__ void sgd_step_##sfx(const TensorTable table, int ntensors,           \
                                              index_t chunk, T lr, T wd, T momentum,            \
                                              T undamped, int nesterov, int first) {            \
        sgd_step(table.words, ntensors, chunk, lr, wd, momentum, undamped, nesterov, first);    \
    }                                                                                           \
    extern "C" __global__ void adam_step_##sfx(const TensorTable table, int ntensors,          \
                                               index_t chunk, T step_size, T b1, T b2, T eps,   \
                                               T inv_sqrt_bc2, T l2, T decay, int amsgrad) {    \
        adam_step(table.words, ntensors, chunk, step_size, b1, b2, eps, inv_sqrt_bc2, l2, decay, \
                  amsgrad);                                                                     \
    }                                                                                           \
    extern "C" __global__ void adagrad_step_##sfx(const TensorTable table, int ntensors,       \
                                                  index_t chunk, T clr, T wd, T eps) {          \
        adagrad_step(table.words, ntensors, chunk, clr, wd, eps);                               \
    }                                                                                           \
    extern "C" __global__ void adadelta_step_##sfx(const TensorTable table, int ntensors,      \
                                                   index_t chunk, T lr, T rho,                  \
                                                   T one_minus_rho, T eps, T wd) {              \
        adadelta_step(table.words, ntensors, chunk, lr, rho, one_minus_rho, eps, wd);           \
    }

MG_OPTIM_KERNELS(float, f32)
MG_OPTIM_KERNELS(double, f64)

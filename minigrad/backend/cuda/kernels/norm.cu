// norm.cu: batch norm (per-channel statistics) and layer norm (per-row statistics).
//
// Deterministic by construction: no atomics.  A per-channel (or per-column) sum over many
// elements is done in two launches:
//   1. partial:  the elements of each channel are cut into P chunks (P depends on the shape
//                only); block (channel, chunk) reduces its chunk and writes one partial state;
//   2. finalize: one thread per channel merges its P partials in chunk order.
// So the order of every addition is fixed by the shapes, whatever GPU runs it.
//
// Two memory layouts reach the partial kernels:
//   planes  (NCHW, viewed as (A, C, B) = (N, C, H*W)):  channel c is A runs of B contiguous
//           elements.  grid = (C, P); the 256 threads of block (c, p) take the chunk's elements
//           k = start + tid, start + tid + 256, ... (k -> a = k / B, b = k % B): consecutive
//           threads read consecutive addresses inside a plane.
//   columns (channels-last NHWC or (N, C), viewed as an (R, C) row-major matrix): channel c
//           is column c.  grid = (ceil(C / 32), P), block = 32 x 8: thread (tx, ty) owns column
//           32 * blockIdx.x + tx and rows start + ty, start + ty + 8, ...; a warp (fixed ty)
//           reads 32 neighbouring columns of one row: one coalesced 128-byte line.
//
//       columns:   c ->  0 1 2 ... 31 | 32 ... 63 | ...
//           row start+0   warp 0 (ty=0)  | block x=1 ...
//           row start+1   warp 1 (ty=1)  |
//           ...                          |
//           row start+8   warp 0 again   |
//
// Layer norm works on rows (M, N): one warp or one block per row (row teams, common.cuh);
// its weight/bias gradients are column sums over the rows, done with the columns kernels.
#include "common.cuh"

#define MG_COL_TILE 32  // columns per block of the columns kernels (blockDim.x)
#define MG_COL_ROWS 8   // rows walked in parallel per block (blockDim.y)

// ---- what a reduction reads: "sources" --------------------------------------------------
// add(acc, i, row, c) folds element i (flat index in memory), of row `row` and channel c,
// into the accumulator.

template <typename T> struct StatsSource {  // batch-norm forward: mean and variance of x
    typedef Welford<T> Acc;
    const T* x;
    __device__ void add(Acc& acc, index_t i, index_t, index_t) const { acc.add(x[i]); }
};

template <typename T> struct BatchGradSource {  // batch-norm backward: (sum g xhat, sum g)
    typedef Sum2<T> Acc;
    const T* g;
    const T* x;
    const T* mean;
    const T* invstd;
    __device__ void add(Acc& acc, index_t i, index_t, index_t c) const {
        const T gi = g[i];
        acc.a += gi * ((x[i] - mean[c]) * invstd[c]);
        acc.b += gi;
    }
};

template <typename T> struct LayerGradSource {  // layer-norm dweight, dbias: (sum g xhat, sum g)
    typedef Sum2<T> Acc;
    const T* g;
    const T* x;
    const T* mean;  // per row
    const T* rstd;  // per row
    __device__ void add(Acc& acc, index_t i, index_t row, index_t) const {
        const T gi = g[i];
        acc.a += gi * ((x[i] - mean[row]) * rstd[row]);
        acc.b += gi;
    }
};

// ---- partial reductions -------------------------------------------------------------------

// planes: x is (A, C, B); block (c, p) reduces elements [p*chunk, (p+1)*chunk) of channel c.
template <typename Src>
__device__ void reduce_planes(Src src, typename Src::Acc* partial, index_t A, index_t C,
                              index_t B, index_t chunk) {
    typedef typename Src::Acc Acc;
    const index_t c = blockIdx.x, p = blockIdx.y;
    const index_t count = A * B;
    const index_t start = p * chunk;
    const index_t end = start + chunk < count ? start + chunk : count;
    Acc acc = Acc::identity();
    for (index_t k = start + threadIdx.x; k < end; k += blockDim.x) {
        const index_t a = k / B, b = k - a * B;
        src.add(acc, (a * C + c) * B + b, a, c);
    }
    acc = block_reduce(acc);
    if (threadIdx.x == 0) partial[p * C + c] = acc;
}

// columns: x is (R, C) row-major; block (column tile, p) reduces rows [p*chunk, (p+1)*chunk).
template <typename Src>
__device__ void reduce_columns(Src src, typename Src::Acc* partial, index_t R, index_t C,
                               index_t chunk) {
    typedef typename Src::Acc Acc;
    __shared__ Acc part[MG_COL_ROWS][MG_COL_TILE];
    const index_t c = (index_t)blockIdx.x * MG_COL_TILE + threadIdx.x;
    const index_t p = blockIdx.y;
    const index_t start = p * chunk;
    const index_t end = start + chunk < R ? start + chunk : R;
    Acc acc = Acc::identity();
    if (c < C)
        for (index_t r = start + threadIdx.y; r < end; r += MG_COL_ROWS) src.add(acc, r * C + c, r, c);
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int j = 1; j < MG_COL_ROWS; ++j) acc = Acc::merge(acc, part[j][threadIdx.x]);
        partial[p * C + c] = acc;
    }
}

// Merge the P partials of channel c in chunk order (one thread per channel).
template <typename Acc>
__device__ __forceinline__ Acc merge_partials(const Acc* partial, index_t P, index_t C, index_t c) {
    Acc acc = partial[c];
    for (index_t p = 1; p < P; ++p) acc = Acc::merge(acc, partial[p * C + c]);
    return acc;
}

// ---- batch norm ---------------------------------------------------------------------------

// mean[c], invstd[c] = 1/sqrt(var + eps) from the Welford partials (biased variance).
template <typename T>
__device__ void welford_finalize(const Welford<T>* partial, index_t P, index_t C, T eps, T* mean,
                                 T* invstd) {
    for (index_t c = global_thread(); c < C; c += grid_threads()) {
        const Welford<T> acc = merge_partials(partial, P, C, c);
        mean[c] = acc.mean;
        invstd[c] = T(1) / mg_sqrt(acc.m2 / acc.n + eps);
    }
}

// out_a[c], out_b[c] = the two sums of the Sum2 partials (dweight, dbias).
template <typename T>
__device__ void sum2_finalize(const Sum2<T>* partial, index_t P, index_t C, T* out_a, T* out_b) {
    for (index_t c = global_thread(); c < C; c += grid_threads()) {
        const Sum2<T> acc = merge_partials(partial, P, C, c);
        out_a[c] = acc.a;
        out_b[c] = acc.b;
    }
}

// y = (x - mean_c) invstd_c w_c + b_c, one thread per element (grid-stride); the channel of
// flat element i is (i / B) % C (B = H*W for planes, 1 for columns).
template <typename T>
__device__ void batch_norm_apply(const T* __restrict__ x, T* __restrict__ y, const T* mean,
                                 const T* invstd, const T* weight, const T* bias, int has_weight,
                                 int has_bias, index_t total, index_t C, index_t B) {
    for (index_t i = global_thread(); i < total; i += grid_threads()) {
        const index_t c = (i / B) % C;
        T v = (x[i] - mean[c]) * invstd[c];
        if (has_weight) v *= weight[c];
        if (has_bias) v += bias[c];
        y[i] = v;
    }
}

// training: dx = w invstd (g - dbias/R - xhat dweight/R)   (dbias = sum g, dweight = sum g xhat)
// eval:     dx = g w invstd
template <typename T>
__device__ void batch_norm_backward_apply(const T* __restrict__ g, const T* __restrict__ x,
                                          const T* mean, const T* invstd, const T* weight,
                                          int has_weight, const T* dweight, const T* dbias,
                                          int training, index_t total, index_t C, index_t B,
                                          T* __restrict__ dx) {
    const T inv_r = T(1) / T(total / C);
    for (index_t i = global_thread(); i < total; i += grid_threads()) {
        const index_t c = (i / B) % C;
        const T scale = (has_weight ? weight[c] : T(1)) * invstd[c];
        if (training) {
            const T xhat = (x[i] - mean[c]) * invstd[c];
            dx[i] = scale * (g[i] - dbias[c] * inv_r - xhat * (dweight[c] * inv_r));
        } else {
            dx[i] = scale * g[i];
        }
    }
}

// ---- layer norm (row teams) ---------------------------------------------------------------

// y = (x - mean) rstd w + b per row; mean[r], rstd[r] = 1/sqrt(var + eps) (biased variance).
template <typename T, typename Team>
__device__ void layer_norm_rows(Team team, const T* __restrict__ x, const T* weight,
                                const T* bias, int has_weight, int has_bias, index_t M, index_t N,
                                T eps, T* __restrict__ y, T* mean, T* rstd) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* xr = x + r * N;
        T* yr = y + r * N;
        Welford<T> acc = Welford<T>::identity();
        for (index_t c = team.rank(); c < N; c += team.size()) acc.add(xr[c]);
        acc = team.reduce(acc);
        const T mu = acc.n == T(0) ? Num<T>::nan() : acc.mean;
        const T rs = T(1) / mg_sqrt(acc.m2 / acc.n + eps);
        for (index_t c = team.rank(); c < N; c += team.size()) {
            T v = (xr[c] - mu) * rs;
            if (has_weight) v *= weight[c];
            if (has_bias) v += bias[c];
            yr[c] = v;
        }
        if (team.rank() == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
    }
}

// dx = rstd (gw - mean(gw) - xhat mean(gw xhat)),  gw = g w, per row.
template <typename T, typename Team>
__device__ void layer_norm_backward_rows(Team team, const T* __restrict__ g,
                                         const T* __restrict__ x, const T* weight, int has_weight,
                                         const T* mean, const T* rstd, index_t M, index_t N,
                                         T* __restrict__ dx) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* gr = g + r * N;
        const T* xr = x + r * N;
        T* dr = dx + r * N;
        const T mu = mean[r], rs = rstd[r];
        Sum2<T> acc = Sum2<T>::identity();  // (sum gw, sum gw xhat)
        for (index_t c = team.rank(); c < N; c += team.size()) {
            const T gw = has_weight ? gr[c] * weight[c] : gr[c];
            acc.a += gw;
            acc.b += gw * ((xr[c] - mu) * rs);
        }
        acc = team.reduce(acc);
        const T mean_gw = acc.a / T(N), mean_gwx = acc.b / T(N);
        for (index_t c = team.rank(); c < N; c += team.size()) {
            const T gw = has_weight ? gr[c] * weight[c] : gr[c];
            dr[c] = rs * (gw - mean_gw - ((xr[c] - mu) * rs) * mean_gwx);
        }
    }
}

// ---- exported kernels ---------------------------------------------------------------------
#define MG_NORM_KERNELS(T, sfx)                                                                 \
    extern "C" __global__ void bn_stats_planes_##sfx(const T* x, Welford<T>* partial,          \
                                                     index_t A, index_t C, index_t B,           \
                                                     index_t chunk) {                           \
        StatsSource<T> src = {x};                                                               \
        reduce_planes(src, partial, A, C, B, chunk);                                            \
    }                                                                                           \
    extern "C" __global__ void bn_stats_columns_##sfx(const T* x, Welford<T>* partial,         \
                                                      index_t R, index_t C, index_t chunk) {    \
        StatsSource<T> src = {x};                                                               \
        reduce_columns(src, partial, R, C, chunk);                                              \
    }                                                                                           \
    extern "C" __global__ void bn_grad_planes_##sfx(const T* g, const T* x, const T* mean,     \
                                                    const T* invstd, Sum2<T>* partial,          \
                                                    index_t A, index_t C, index_t B,            \
                                                    index_t chunk) {                            \
        BatchGradSource<T> src = {g, x, mean, invstd};                                          \
        reduce_planes(src, partial, A, C, B, chunk);                                            \
    }                                                                                           \
    extern "C" __global__ void bn_grad_columns_##sfx(const T* g, const T* x, const T* mean,    \
                                                     const T* invstd, Sum2<T>* partial,         \
                                                     index_t R, index_t C, index_t chunk) {     \
        BatchGradSource<T> src = {g, x, mean, invstd};                                          \
        reduce_columns(src, partial, R, C, chunk);                                              \
    }                                                                                           \
    extern "C" __global__ void ln_grad_columns_##sfx(const T* g, const T* x, const T* mean,    \
                                                     const T* rstd, Sum2<T>* partial,           \
                                                     index_t R, index_t C, index_t chunk) {     \
        LayerGradSource<T> src = {g, x, mean, rstd};                                            \
        reduce_columns(src, partial, R, C, chunk);                                              \
    }                                                                                           \
    extern "C" __global__ void welford_finalize_##sfx(const Welford<T>* partial, index_t P,    \
                                                      index_t C, T eps, T* mean, T* invstd) {   \
        welford_finalize(partial, P, C, eps, mean, invstd);                                     \
    }                                                                                           \
    extern "C" __global__ void sum2_finalize_##sfx(const Sum2<T>* partial, index_t P,          \
                                                   index_t C, T* out_a, T* out_b) {             \
        sum2_finalize(partial, P, C, out_a, out_b);                                             \
    }                                                                                           \
    extern "C" __global__ void bn_apply_##sfx(const T* x, T* y, const T* mean, const T* invstd, \
                                              const T* weight, const T* bias, int has_weight,   \
                                              int has_bias, index_t total, index_t C,           \
                                              index_t B) {                                      \
        batch_norm_apply(x, y, mean, invstd, weight, bias, has_weight, has_bias, total, C, B);  \
    }                                                                                           \
    extern "C" __global__ void bn_backward_apply_##sfx(                                         \
        const T* g, const T* x, const T* mean, const T* invstd, const T* weight,                \
        int has_weight, const T* dweight, const T* dbias, int training, index_t total,          \
        index_t C, index_t B, T* dx) {                                                          \
        batch_norm_backward_apply(g, x, mean, invstd, weight, has_weight, dweight, dbias,       \
                                  training, total, C, B, dx);                                   \
    }                                                                                           \
    extern "C" __global__ void layer_norm_forward_##sfx(                                        \
        const T* x, const T* weight, const T* bias, int has_weight, int has_bias, index_t M,    \
        index_t N, T eps, T* y, T* mean, T* rstd, int per_block) {                              \
        if (per_block)                                                                          \
            layer_norm_rows<T>(BlockTeam(), x, weight, bias, has_weight, has_bias, M, N, eps,   \
                               y, mean, rstd);                                                  \
        else                                                                                    \
            layer_norm_rows<T>(WarpTeam(), x, weight, bias, has_weight, has_bias, M, N, eps,    \
                               y, mean, rstd);                                                  \
    }                                                                                           \
    extern "C" __global__ void layer_norm_backward_##sfx(                                       \
        const T* g, const T* x, const T* weight, int has_weight, const T* mean, const T* rstd,  \
        index_t M, index_t N, T* dx, int per_block) {                                           \
        if (per_block)                                                                          \
            layer_norm_backward_rows<T>(BlockTeam(), g, x, weight, has_weight, mean, rstd, M,   \
                                        N, dx);                                                 \
        else                                                                                    \
            layer_norm_backward_rows<T>(WarpTeam(), g, x, weight, has_weight, mean, rstd, M, N, \
                                        dx);                                                    \
    }

MG_NORM_KERNELS(float, f32)
MG_NORM_KERNELS(double, f64)

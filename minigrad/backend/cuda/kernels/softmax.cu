// softmax.cu: softmax, log-softmax, logsumexp and softmax cross-entropy, row by row.
//
// Every kernel sees a C-contiguous (M, N) matrix and reduces along each row (the wrapper moves
// the softmax axis last first).  Thread mapping, chosen per call by `per_block` (common.cuh,
// "row teams"):
//
//   per_block = 0 (rows of up to ~1024):  one WARP per row, 8 warps (rows) per 256-thread block
//       row r:  | lane0 lane1 ... lane31 | lane0 lane1 ... lane31 | ...   (column c -> lane c % 32)
//       reductions are warp shuffles (no shared memory, no barrier).
//   per_block = 1 (longer rows):          one BLOCK per row
//       row r:  | t0 t1 ... t255 | t0 t1 ... t255 | ...                     (column c -> thread c % 256)
//       reductions: shuffles inside each warp, then across the block's warps via shared memory.
//
// Consecutive threads read consecutive columns (coalesced).  Rows are spread over the grid with
// a grid-stride loop, so any M works with a grid sized to the GPU.
//
// Numerics: one pass keeps the running maximum m and sum s = sum exp(x - m) (MaxSum in
// common.cuh, "online softmax"), so exp never sees a positive argument: huge logits do not
// overflow.  The maximum is NaN-propagating: one NaN makes its whole row NaN.  A row of all
// -inf has m = -inf: logsumexp gives -inf, softmax gives NaN (as PyTorch); a row holding +inf
// gives +inf for logsumexp and NaN for the others (x - m = inf - inf).
#include "common.cuh"

// y = softmax(x) (LOG = false) or log_softmax(x) (LOG = true) of each row.
template <typename T, bool LOG, typename Team>
__device__ void softmax_rows(Team team, const T* __restrict__ x, T* __restrict__ y, index_t M,
                             index_t N) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* xr = x + r * N;
        T* yr = y + r * N;
        MaxSum<T> acc = MaxSum<T>::identity();
        for (index_t c = team.rank(); c < N; c += team.size()) acc.add(xr[c]);
        acc = team.reduce(acc).nan_if_inf_max();
        if (LOG) {
            const T log_s = mg_log(acc.s);
            for (index_t c = team.rank(); c < N; c += team.size()) yr[c] = (xr[c] - acc.m) - log_s;
        } else {
            const T inv_s = T(1) / acc.s;
            for (index_t c = team.rank(); c < N; c += team.size()) yr[c] = mg_exp(xr[c] - acc.m) * inv_s;
        }
    }
}

// dx = y (g - sum(g y))          (softmax:     y = softmax output)
// dx = g - exp(y) sum(g)         (log_softmax: y = log_softmax output)
template <typename T, bool LOG, typename Team>
__device__ void softmax_backward_rows(Team team, const T* __restrict__ g, const T* __restrict__ y,
                                      T* __restrict__ dx, index_t M, index_t N) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* gr = g + r * N;
        const T* yr = y + r * N;
        T* dr = dx + r * N;
        Sum<T> acc = Sum<T>::identity();
        for (index_t c = team.rank(); c < N; c += team.size()) acc.s += LOG ? gr[c] : gr[c] * yr[c];
        const T dot = team.reduce(acc).s;
        for (index_t c = team.rank(); c < N; c += team.size())
            dr[c] = LOG ? gr[c] - mg_exp(yr[c]) * dot : yr[c] * (gr[c] - dot);
    }
}

// out[r] = log sum_c exp x[r, c]  (-inf for an empty or all -inf row)
template <typename T, typename Team>
__device__ void logsumexp_rows(Team team, const T* __restrict__ x, T* __restrict__ out, index_t M,
                               index_t N) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* xr = x + r * N;
        MaxSum<T> acc = MaxSum<T>::identity();
        for (index_t c = team.rank(); c < N; c += team.size()) acc.add(xr[c]);
        acc = team.reduce(acc);
        if (team.rank() == 0) out[r] = acc.lse();
    }
}

// Cross-entropy forward.  With m the row max and s = sum_c exp(x_c - m) (one pass over x):
//   sumexp[r] = s                       (what the backward needs besides x)
//   losses[r] = -(1-e) w_t ((x_t - m) - log s) - (e/C) (sum_c w_c (x_c - m) - W log s)
// that is -(1-e) w_t logp_t - (e/C) sum_c w_c logp_c with logp = (x - m) - log s, W = sum_c w_c.
// logp is formed from x - m, never as x - lse: for logits near 500, lse rounds to float32's
// 3e-5 spacing there (near 1e4 to 1e-3), and x_t - lse would lose the loss's low digits.  The
// smoothing sum needs m, so it takes a second pass over the row (cache-hot), only when e != 0.
// w = 1 when has_weight == 0, and then W = C; otherwise *wsum holds W (summed once by the
// caller, on the device).  Rows whose target is ignore_index get 0; a target outside [0, C)
// gives NaN (and nothing is read out of bounds).
template <typename T, typename Team>
__device__ void cross_entropy_forward_rows(Team team, const T* __restrict__ x,
                                           const long long* __restrict__ target,
                                           const T* __restrict__ weight, const T* __restrict__ wsum,
                                           int has_weight, index_t M, index_t C,
                                           long long ignore_index, T eps, T* __restrict__ losses,
                                           T* __restrict__ sumexp) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* xr = x + r * C;
        MaxSum<T> acc = MaxSum<T>::identity();
        for (index_t c = team.rank(); c < C; c += team.size()) acc.add(xr[c]);
        acc = team.reduce(acc).nan_if_inf_max();
        const T log_s = mg_log(acc.s);
        Sum<T> wx = Sum<T>::identity();  // sum_c w_c (x_c - m), for label smoothing only
        if (eps != T(0)) {
            for (index_t c = team.rank(); c < C; c += team.size())
                wx.s += (has_weight ? weight[c] : T(1)) * (xr[c] - acc.m);
            wx = team.reduce(wx);
        }
        if (team.rank() != 0) continue;
        const long long t = target[r];
        T loss;
        if (t == ignore_index) {
            loss = T(0);
        } else if (t < 0 || t >= C) {
            loss = Num<T>::nan();
        } else {
            const T wt = has_weight ? weight[t] : T(1);
            loss = -(T(1) - eps) * wt * ((xr[t] - acc.m) - log_s);
            if (eps != T(0)) {
                const T W = has_weight ? *wsum : T(C);
                loss -= eps / T(C) * (wx.s - log_s * W);
            }
        }
        losses[r] = loss;
        sumexp[r] = acc.s;
    }
}

// Cross-entropy backward: with p = exp(x - m) / s (the softmax; m the row max, recomputed
// here by a max-reduction, which is exact, and s the forward's sumexp),
//   dx[r, c] = grow[r] ( (1-e) w_t (p_c - [c == t]) + (e/C) (p_c W - w_c) )
// rows with target == ignore_index get 0, rows with an invalid target NaN.  Never
// p = exp(x - lse): lse = m + log s is rounded at m's spacing (1e-3 for float32 logits near
// 1e4), and that error would scale every p.
template <typename T> struct RowMax {  // the accumulator of a plain max (NaN sticks)
    T m;
    __device__ static RowMax identity() { RowMax r = {-Num<T>::inf()}; return r; }
    __device__ static RowMax merge(const RowMax& a, const RowMax& b) {
        RowMax r = {max_nan(a.m, b.m)};
        return r;
    }
    __device__ RowMax shfl_xor(int o) const {
        RowMax r = {__shfl_xor_sync(MG_FULL_MASK, m, o)};
        return r;
    }
};

template <typename T, typename Team>
__device__ void cross_entropy_backward_rows(Team team, const T* __restrict__ x,
                                            const long long* __restrict__ target,
                                            const T* __restrict__ sumexp, const T* __restrict__ grow,
                                            const T* __restrict__ weight,
                                            const T* __restrict__ wsum, int has_weight, index_t M,
                                            index_t C, long long ignore_index, T eps,
                                            T* __restrict__ dx) {
    for (index_t r = team.first_row(); r < M; r += team.row_step()) {
        const T* xr = x + r * C;
        T* dr = dx + r * C;
        const long long t = target[r];
        if (t == ignore_index || t < 0 || t >= C) {
            const T fill = t == ignore_index ? T(0) : Num<T>::nan();
            for (index_t c = team.rank(); c < C; c += team.size()) dr[c] = fill;
            continue;
        }
        RowMax<T> mx = RowMax<T>::identity();
        for (index_t c = team.rank(); c < C; c += team.size()) mx.m = max_nan(mx.m, xr[c]);
        const T m = team.reduce(mx).m;
        const T inv_s = T(1) / sumexp[r];
        const T a = (T(1) - eps) * grow[r] * (has_weight ? weight[t] : T(1));
        const T b = eps / T(C) * grow[r];
        const T W = has_weight ? *wsum : T(C);
        for (index_t c = team.rank(); c < C; c += team.size()) {
            const T p = mg_exp(xr[c] - m) * inv_s;
            T d = a * (c == t ? p - T(1) : p);
            if (eps != T(0)) d += b * (p * W - (has_weight ? weight[c] : T(1)));
            dr[c] = d;
        }
    }
}

// ---- exported kernels: <name>_f32 / <name>_f64, with per_block choosing the team ----------
#define MG_SOFTMAX_KERNELS(T, sfx)                                                              \
    extern "C" __global__ void softmax_##sfx(const T* x, T* y, index_t M, index_t N,           \
                                             int per_block) {                                   \
        if (per_block) softmax_rows<T, false>(BlockTeam(), x, y, M, N);                         \
        else softmax_rows<T, false>(WarpTeam(), x, y, M, N);                                    \
    }                                                                                           \
    extern "C" __global__ void log_softmax_##sfx(const T* x, T* y, index_t M, index_t N,       \
                                                 int per_block) {                               \
        if (per_block) softmax_rows<T, true>(BlockTeam(), x, y, M, N);                          \
        else softmax_rows<T, true>(WarpTeam(), x, y, M, N);                                     \
    }                                                                                           \
    extern "C" __global__ void softmax_backward_##sfx(const T* g, const T* y, T* dx, index_t M, \
                                                      index_t N, int per_block) {               \
        if (per_block) softmax_backward_rows<T, false>(BlockTeam(), g, y, dx, M, N);            \
        else softmax_backward_rows<T, false>(WarpTeam(), g, y, dx, M, N);                       \
    }                                                                                           \
    extern "C" __global__ void log_softmax_backward_##sfx(const T* g, const T* y, T* dx,       \
                                                          index_t M, index_t N, int per_block) { \
        if (per_block) softmax_backward_rows<T, true>(BlockTeam(), g, y, dx, M, N);             \
        else softmax_backward_rows<T, true>(WarpTeam(), g, y, dx, M, N);                        \
    }                                                                                           \
    extern "C" __global__ void logsumexp_##sfx(const T* x, T* out, index_t M, index_t N,       \
                                               int per_block) {                                 \
        if (per_block) logsumexp_rows<T>(BlockTeam(), x, out, M, N);                            \
        else logsumexp_rows<T>(WarpTeam(), x, out, M, N);                                       \
    }                                                                                           \
    extern "C" __global__ void cross_entropy_forward_##sfx(                                     \
        const T* x, const long long* target, const T* weight, const T* wsum, int has_weight,    \
        index_t M, index_t C, long long ignore_index, T eps, T* losses, T* sumexp, int per_block) { \
        if (per_block)                                                                          \
            cross_entropy_forward_rows<T>(BlockTeam(), x, target, weight, wsum, has_weight, M,  \
                                          C, ignore_index, eps, losses, sumexp);                \
        else                                                                                    \
            cross_entropy_forward_rows<T>(WarpTeam(), x, target, weight, wsum, has_weight, M,   \
                                          C, ignore_index, eps, losses, sumexp);                \
    }                                                                                           \
    extern "C" __global__ void cross_entropy_backward_##sfx(                                    \
        const T* x, const long long* target, const T* sumexp, const T* grow, const T* weight,   \
        const T* wsum, int has_weight, index_t M, index_t C, long long ignore_index, T eps,     \
        T* dx, int per_block) {                                                                 \
        if (per_block)                                                                          \
            cross_entropy_backward_rows<T>(BlockTeam(), x, target, sumexp, grow, weight, wsum,  \
                                           has_weight, M, C, ignore_index, eps, dx);            \
        else                                                                                    \
            cross_entropy_backward_rows<T>(WarpTeam(), x, target, sumexp, grow, weight, wsum,   \
                                           has_weight, M, C, ignore_index, eps, dx);            \
    }

MG_SOFTMAX_KERNELS(float, f32)
MG_SOFTMAX_KERNELS(double, f64)

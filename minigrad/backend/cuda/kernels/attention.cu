// attention.cu: fused scaled dot-product attention, forward and backward, FlashAttention style.
//
// For B independent (batch, head) problems, Q (Tq, D), K (Tk, D), V (Tk, Dv), an additive
// mask A (broadcast by strides, 0 for a broadcast side) and the causal triangle:
//     S = scale Q K^T + A,   P = softmax(S) row-wise,   O = (P * M) V      (M: dropout)
// The (Tq, Tk) matrices S and P never reach global memory: the forward streams K and V
// through shared memory in tiles of ATT_TILE keys and keeps, per query row, the running
// maximum m, the running sum l = sum exp(s - m) and the running output; when a tile raises the
// maximum, l and the output are rescaled by exp(m_old - m_new) ("online softmax").  It stores
// O and lse = m + log l (Tq numbers per problem).  The backward rebuilds P = exp(S - lse) tile
// by tile (derivation: docs/derivations/attention.md, the kernels: docs/kernels.md):
//     dV = (P * M)^T G,   dP = (G V^T) * M,   dS = P * (dP - delta),  delta_i = sum_d G_id O_id,
//     dQ = scale dS K,    dK = scale dS^T Q
// in two kernels, one per query row (dQ, and delta) and one per key row (dK, dV), so every
// output element is summed by one warp in a fixed order: no atomics, the same bits every run.
//
// Thread mapping (both directions): a block of ATT_WARPS warps owns ATT_WARPS rows (query
// rows forward and for dQ, key rows for dK/dV), one warp per row, and the block walks the other
// side in tiles of ATT_TILE = 32 rows loaded into shared memory by all its threads: lane t
// scores tile row t (one dot product per lane), then the warp folds the tile into its
// accumulators, each lane owning output columns lane, lane + 32 (head sizes up to ATT_DMAX).
// Shared tiles whose rows lanes read across are padded by one element (no bank conflicts).
//
// Dropout regenerates the multiplier of element (b, i, j) from the Philox stream of
// dropout.cu (element index e = (b Tq + i) Tk + j, the contract's C order), so the mask is not
// stored either.  A row masked everywhere gets O = 0 and lse = -inf (as PyTorch), and no
// gradient.  NaN in any score makes its row NaN.
#include "common.cuh"
#include "dropout.cu"

#define ATT_WARPS 8                      // rows per block, one warp each
#define ATT_THREADS (ATT_WARPS * MG_WARP)
#define ATT_TILE MG_WARP                 // rows of the other side per shared tile: one per lane
#define ATT_DMAX 64                      // the largest head size (D and Dv) the kernels take
#define ATT_PER_LANE (ATT_DMAX / MG_WARP)  // output columns per lane

// What the three kernels share: sizes, scale, causality, the mask and the dropout stream.
template <typename T> struct Attn {
    index_t B, Tq, Tk, D, Dv;
    T scale;
    int causal;
    const T* mask;  // A[b, i, j] = mask[b * msb + i * msq + j * msk]; null: no mask
    index_t msb, msq, msk;
    int dropout;    // 0: no dropout; else keep iff the element's 24 random bits >= threshold
    unsigned int seed_lo, seed_hi, threshold;
    unsigned long long offset;
    T keep_scale;   // 1 / (1 - p)

    // Key j is visible from query i (inside the sizes, and not above the diagonal).
    __device__ bool visible(index_t i, index_t j) const { return i < Tq && j < Tk && !(causal && j > i); }

    // s_ij = scale q_i . k_j + A_ij, or -inf where j is not visible; q, k: rows in shared memory.
    __device__ T score(const T* qi, const T* kj, index_t b, index_t i, index_t j) const {
        if (!visible(i, j)) return -Num<T>::inf();
        T acc = T(0);
        for (index_t d = 0; d < D; ++d) acc += qi[d] * kj[d];
        acc *= scale;
        if (mask) acc += mask[b * msb + i * msq + j * msk];
        return acc;
    }

    // The dropout multiplier M_ij: 0 or 1/(1-p) (1 without dropout).
    __device__ T keep(index_t b, index_t i, index_t j) const {
        if (!dropout) return T(1);
        const index_t e = (b * Tq + i) * Tk + j;
        const unsigned long long counter = offset + (unsigned long long)(e >> 2);
        unsigned int w[4] = {(unsigned int)counter, (unsigned int)(counter >> 32), 0u, 0u};
        philox4x32_10(w, seed_lo, seed_hi);
        return (w[e & 3] >> 8) >= threshold ? keep_scale : T(0);
    }
};

// Copy rows r0 .. r0 + ATT_TILE - 1 (n wide) of a (rows, n) matrix into a shared tile with row
// stride `stride`, zeros past the last row: all threads of the block take part.
template <typename T>
__device__ void load_tile(T* tile, int stride, const T* src, index_t r0, index_t rows, index_t n) {
    for (index_t t = threadIdx.x; t < ATT_TILE * n; t += blockDim.x) {
        const index_t r = t / n, c = t % n;
        tile[r * stride + c] = r0 + r < rows ? src[(r0 + r) * n + c] : T(0);
    }
}

// One row of n numbers into shared memory, read by its warp (zeros for a row past the end).
template <typename T> __device__ void load_row(T* dst, const T* src, bool valid, index_t n) {
    for (index_t c = threadIdx.x & (MG_WARP - 1); c < n; c += MG_WARP) dst[c] = valid ? src[c] : T(0);
}

// acc[c] += sum over the tile rows t of w_t * tile[t][lane + 32 c], w_t held by lane t.
template <typename T>
__device__ __forceinline__ void fold_tile(T* acc, T w, const T* tile, int stride, index_t n) {
    const int lane = threadIdx.x & (MG_WARP - 1);
    for (int t = 0; t < ATT_TILE; ++t) {
        const T wt = __shfl_sync(MG_FULL_MASK, w, t);
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) {
            const index_t d = lane + c * MG_WARP;
            if (d < n) acc[c] += wt * tile[t * stride + d];
        }
    }
}

// ---- forward: out (B, Tq, Dv) and lse (B, Tq) ---------------------------------------------------
template <typename T>
__device__ void attention_forward(const Attn<T> a, const T* __restrict__ q, const T* __restrict__ k,
                                  const T* __restrict__ v, T* __restrict__ out, T* __restrict__ lse) {
    __shared__ T Qs[ATT_WARPS][ATT_DMAX];
    __shared__ T Ks[ATT_TILE][ATT_DMAX + 1];
    __shared__ T Vs[ATT_TILE][ATT_DMAX];
    const int warp = threadIdx.x / MG_WARP, lane = threadIdx.x & (MG_WARP - 1);
    const index_t tiles = (a.Tq + ATT_WARPS - 1) / ATT_WARPS;
    for (index_t blk = blockIdx.x; blk < a.B * tiles; blk += gridDim.x) {
        const index_t b = blk / tiles, i0 = (blk % tiles) * ATT_WARPS, i = i0 + warp;
        const T* kb = k + b * a.Tk * a.D;
        const T* vb = v + b * a.Tk * a.Dv;
        load_row(Qs[warp], q + (b * a.Tq + i) * a.D, i < a.Tq, a.D);
        MaxSum<T> run = MaxSum<T>::identity();  // m and l of this row so far
        T acc[ATT_PER_LANE];
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) acc[c] = T(0);
        // keys any row of this block can see (causal: none past its last row)
        const index_t last = a.causal ? min(a.Tk, i0 + ATT_WARPS) : a.Tk;
        for (index_t j0 = 0; j0 < last; j0 += ATT_TILE) {
            __syncthreads();  // everyone is done with the previous tile
            load_tile(&Ks[0][0], ATT_DMAX + 1, kb, j0, a.Tk, a.D);
            load_tile(&Vs[0][0], ATT_DMAX, vb, j0, a.Tk, a.Dv);
            __syncthreads();
            const index_t j = j0 + lane;
            const T s = a.score(Qs[warp], Ks[lane], b, i, j);
            // the tile's (max, sum) merged into the row's: m_new, and l rescaled to it
            const MaxSum<T> tile = warp_reduce(s == -Num<T>::inf() ? MaxSum<T>::identity() : MaxSum<T>::of(s));
            const MaxSum<T> next = MaxSum<T>::merge(run, tile);
            const T shift = next.m == -Num<T>::inf() ? T(0) : next.m;  // all masked so far: p = 0
            const T alpha = run.m == next.m ? T(1) : mg_exp(run.m - shift);
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; ++c) acc[c] *= alpha;
            const T p = mg_exp(s - shift) * a.keep(b, i, j);
            fold_tile(acc, p, &Vs[0][0], ATT_DMAX, a.Dv);
            run = next;
        }
        if (i < a.Tq) {
            const T inv = run.s > T(0) ? T(1) / run.s : T(0);  // a row masked everywhere: O = 0
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; ++c) {
                const index_t d = lane + c * MG_WARP;
                if (d < a.Dv) out[(b * a.Tq + i) * a.Dv + d] = acc[c] * inv;
            }
            if (lane == 0) lse[b * a.Tq + i] = run.lse();
        }
    }
}

// The shift that rebuilds P = exp(S - shift): lse, or +inf for a row masked everywhere (P = 0).
template <typename T> __device__ __forceinline__ T p_shift(T lse) {
    return lse == -Num<T>::inf() ? Num<T>::inf() : lse;
}

// ---- backward, by query row: dq (B, Tq, D) and delta_i = sum_d g_id out_id (B, Tq) ----------------
template <typename T>
__device__ void attention_backward_dq(const Attn<T> a, const T* __restrict__ g, const T* __restrict__ q,
                                      const T* __restrict__ k, const T* __restrict__ v,
                                      const T* __restrict__ out, const T* __restrict__ lse,
                                      T* __restrict__ dq, T* __restrict__ delta) {
    __shared__ T Qs[ATT_WARPS][ATT_DMAX];
    __shared__ T Gs[ATT_WARPS][ATT_DMAX];
    __shared__ T Ks[ATT_TILE][ATT_DMAX + 1];
    __shared__ T Vs[ATT_TILE][ATT_DMAX + 1];
    const int warp = threadIdx.x / MG_WARP, lane = threadIdx.x & (MG_WARP - 1);
    const index_t tiles = (a.Tq + ATT_WARPS - 1) / ATT_WARPS;
    for (index_t blk = blockIdx.x; blk < a.B * tiles; blk += gridDim.x) {
        const index_t b = blk / tiles, i0 = (blk % tiles) * ATT_WARPS, i = i0 + warp;
        const bool row = i < a.Tq;
        const index_t r = b * a.Tq + i;
        load_row(Qs[warp], q + r * a.D, row, a.D);
        load_row(Gs[warp], g + r * a.Dv, row, a.Dv);
        Sum<T> dot = Sum<T>::identity();
        for (index_t d = lane; d < a.Dv; d += MG_WARP) dot.s += row ? g[r * a.Dv + d] * out[r * a.Dv + d] : T(0);
        const T di = warp_reduce(dot).s;
        if (row && lane == 0) delta[r] = di;
        const T shift = row ? p_shift(lse[r]) : Num<T>::inf();
        T acc[ATT_PER_LANE];
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) acc[c] = T(0);
        const index_t last = a.causal ? min(a.Tk, i0 + ATT_WARPS) : a.Tk;
        for (index_t j0 = 0; j0 < last; j0 += ATT_TILE) {
            __syncthreads();
            load_tile(&Ks[0][0], ATT_DMAX + 1, k + b * a.Tk * a.D, j0, a.Tk, a.D);
            load_tile(&Vs[0][0], ATT_DMAX + 1, v + b * a.Tk * a.Dv, j0, a.Tk, a.Dv);
            __syncthreads();
            const index_t j = j0 + lane;
            const T p = mg_exp(a.score(Qs[warp], Ks[lane], b, i, j) - shift);
            T dp = T(0);
            for (index_t d = 0; d < a.Dv; ++d) dp += Gs[warp][d] * Vs[lane][d];
            dp *= a.keep(b, i, j);
            const T ds = p * (dp - di) * a.scale;
            fold_tile(acc, ds, &Ks[0][0], ATT_DMAX + 1, a.D);
        }
        if (row) {
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; ++c) {
                const index_t d = lane + c * MG_WARP;
                if (d < a.D) dq[r * a.D + d] = acc[c];
            }
        }
    }
}

// ---- backward, by key row: dk (B, Tk, D) and dv (B, Tk, Dv) ------------------------------------
template <typename T>
__device__ void attention_backward_dkdv(const Attn<T> a, const T* __restrict__ g, const T* __restrict__ q,
                                        const T* __restrict__ k, const T* __restrict__ v,
                                        const T* __restrict__ lse, const T* __restrict__ delta,
                                        T* __restrict__ dk, T* __restrict__ dv) {
    __shared__ T Kr[ATT_WARPS][ATT_DMAX];
    __shared__ T Vr[ATT_WARPS][ATT_DMAX];
    __shared__ T Qs[ATT_TILE][ATT_DMAX + 1];
    __shared__ T Gs[ATT_TILE][ATT_DMAX + 1];
    __shared__ T shifts[ATT_TILE], deltas[ATT_TILE];
    const int warp = threadIdx.x / MG_WARP, lane = threadIdx.x & (MG_WARP - 1);
    const index_t tiles = (a.Tk + ATT_WARPS - 1) / ATT_WARPS;
    for (index_t blk = blockIdx.x; blk < a.B * tiles; blk += gridDim.x) {
        const index_t b = blk / tiles, j0 = (blk % tiles) * ATT_WARPS, j = j0 + warp;
        const index_t r = b * a.Tk + j;
        load_row(Kr[warp], k + r * a.D, j < a.Tk, a.D);
        load_row(Vr[warp], v + r * a.Dv, j < a.Tk, a.Dv);
        T acc_k[ATT_PER_LANE], acc_v[ATT_PER_LANE];
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) acc_k[c] = acc_v[c] = T(0);
        // causal: queries before this block's first key see none of its keys
        const index_t first = a.causal ? (j0 / ATT_TILE) * ATT_TILE : 0;
        for (index_t i0 = first; i0 < a.Tq; i0 += ATT_TILE) {
            __syncthreads();
            load_tile(&Qs[0][0], ATT_DMAX + 1, q + b * a.Tq * a.D, i0, a.Tq, a.D);
            load_tile(&Gs[0][0], ATT_DMAX + 1, g + b * a.Tq * a.Dv, i0, a.Tq, a.Dv);
            for (index_t t = threadIdx.x; t < ATT_TILE; t += blockDim.x) {
                const bool in = i0 + t < a.Tq;
                shifts[t] = in ? p_shift(lse[b * a.Tq + i0 + t]) : Num<T>::inf();
                deltas[t] = in ? delta[b * a.Tq + i0 + t] : T(0);
            }
            __syncthreads();
            const index_t i = i0 + lane;
            const T p = mg_exp(a.score(Qs[lane], Kr[warp], b, i, j) - shifts[lane]);
            T dp = T(0);
            for (index_t d = 0; d < a.Dv; ++d) dp += Gs[lane][d] * Vr[warp][d];
            const T m = a.keep(b, i, j);
            const T ds = p * (dp * m - deltas[lane]) * a.scale;
            fold_tile(acc_k, ds, &Qs[0][0], ATT_DMAX + 1, a.D);
            fold_tile(acc_v, p * m, &Gs[0][0], ATT_DMAX + 1, a.Dv);
        }
        if (j < a.Tk) {
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; ++c) {
                const index_t d = lane + c * MG_WARP;
                if (d < a.D) dk[r * a.D + d] = acc_k[c];
                if (d < a.Dv) dv[r * a.Dv + d] = acc_v[c];
            }
        }
    }
}

#define MG_ATTN_PARAMS(T)                                                                       \
    index_t B, index_t Tq, index_t Tk, index_t D, index_t Dv, T scale, int causal,              \
        const T* mask, index_t msb, index_t msq, index_t msk, int dropout, unsigned int seed_lo,  \
        unsigned int seed_hi, unsigned int threshold, unsigned long long offset, T keep_scale
#define MG_ATTN_ARGS                                                                            \
    {B, Tq, Tk, D, Dv, scale, causal, mask_given ? mask : 0, msb, msq, msk, dropout, seed_lo,     \
     seed_hi, threshold, offset, keep_scale}

#define MG_ATTENTION_KERNELS(T, sfx)                                                            \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS)                                   \
        attention_forward_##sfx(MG_ATTN_PARAMS(T), int mask_given, const T* q, const T* k,      \
                                const T* v, T* out, T* lse) {                                    \
        const Attn<T> a = MG_ATTN_ARGS;                                                          \
        attention_forward(a, q, k, v, out, lse);                                                \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_backward_dq_##sfx(      \
        MG_ATTN_PARAMS(T), int mask_given, const T* g, const T* q, const T* k, const T* v,      \
        const T* out, const T* lse, T* dq, T* delta) {                                           \
        const Attn<T> a = MG_ATTN_ARGS;                                                          \
        attention_backward_dq(a, g, q, k, v, out, lse, dq, delta);                              \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_backward_dkdv_##sfx(    \
        MG_ATTN_PARAMS(T), int mask_given, const T* g, const T* q, const T* k, const T* v,      \
        const T* lse, const T* delta, T* dk, T* dv) {                                            \
        const Attn<T> a = MG_ATTN_ARGS;                                                          \
        attention_backward_dkdv(a, g, q, k, v, lse, delta, dk, dv);                             \
    }

MG_ATTENTION_KERNELS(float, f32)
MG_ATTENTION_KERNELS(double, f64)

// gemm.cu: minigrad's own matrix multiply C = A B (+ bias), a ladder of three kernels.
//
// Every rung computes the same thing, for any shapes:
//     C[z, m, n] = sum_k A[z, m, k] B[z, k, n]  (+ bias[n] when has_bias: linear's epilogue)
// A (M x K) and B (K x N) are addressed through strides, so a transposed operand (say w.T in
// linear) is read in place: A[z, m, k] = A[offset_a(z) + m*sam + k*sak].  The wrapper makes
// one of each operand's two matrix strides 1 (row- or column-major).  The batch index z runs
// over up to three broadcast batch dims (d0, d1, d2), each with its own stride per operand
// (stride 0 = broadcast).  C is contiguous (batch, M, N).
//
// The rungs differ in how often they go to device memory (docs/kernels.md works the numbers):
//   naive     one thread per C element, reading A's row and B's column straight from memory:
//             2 loads per multiply-add (served mostly by the caches).
//   tiled     16 x 16 threads share 16 x 16 tiles of A and B staged in shared memory: each
//             loaded element is used 16 times: 2/16 loads per multiply-add.
//   regblock  a 128 x 128 tile of C per 256 threads, each thread owning 8 x 8 outputs in
//             registers; per k, a thread reads 8 + 8 values from shared memory for 64
//             multiply-adds, and each element loaded from memory serves 128 of them.  The next
//             k-slice is fetched into registers while the current one is multiplied (double-
//             buffered shared memory, one barrier per slice).
#include "common.cuh"

// Element offset of batch z in an operand with batch strides (s0, s1, s2) over dims (., d1, d2).
__device__ __forceinline__ index_t batch_offset(index_t z, index_t d1, index_t d2, index_t s0,
                                                index_t s1, index_t s2) {
    const index_t z2 = z % d2, z1 = (z / d2) % d1, z0 = z / (d1 * d2);
    return z0 * s0 + z1 * s1 + z2 * s2;
}

// The arguments every rung takes (one list, so the Python side launches any rung alike).
#define MG_GEMM_PARAMS(T)                                                                       \
    const T *__restrict__ A, const T *__restrict__ B, const T *__restrict__ bias,              \
        T *__restrict__ C, index_t M, index_t N, index_t K, index_t sam, index_t sak,           \
        index_t sbk, index_t sbn, index_t batch, index_t d1, index_t d2, index_t sa0,           \
        index_t sa1, index_t sa2, index_t sb0, index_t sb1, index_t sb2, int has_bias, int vec
#define MG_GEMM_ARGS \
    A, B, bias, C, M, N, K, sam, sak, sbk, sbn, batch, d1, d2, sa0, sa1, sa2, sb0, sb1, sb2, has_bias, vec

// ---- rung 1: naive --------------------------------------------------------------------------
// Block 16 x 16; thread (ty, tx) computes C[m, n] with n = 16*blockIdx.x + tx (consecutive
// threads: consecutive n, so B and C accesses coalesce), m = 16*blockIdx.y + ty.
template <typename T> __device__ void gemm_naive(MG_GEMM_PARAMS(T)) {
    const index_t n = (index_t)blockIdx.x * 16 + threadIdx.x;
    for (index_t z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* a = A + batch_offset(z, d1, d2, sa0, sa1, sa2);
        const T* b = B + batch_offset(z, d1, d2, sb0, sb1, sb2);
        for (index_t m = (index_t)blockIdx.y * 16 + threadIdx.y; m < M; m += (index_t)gridDim.y * 16) {
            if (n >= N) continue;
            T sum = T(0);
            for (index_t k = 0; k < K; ++k) sum += a[m * sam + k * sak] * b[k * sbk + n * sbn];
            if (has_bias) sum += bias[n];
            C[(z * M + m) * N + n] = sum;
        }
    }
}

// ---- rung 2: shared-memory tiles ----------------------------------------------------------
// Block 16 x 16 computes a 16 x 16 tile of C, thread (ty, tx) -> C[m0 + ty, n0 + tx].  For each
// 16-wide slice of k, the block copies the 16 x 16 tiles of A and B into shared memory (one
// element per thread; the thread's tx walks the operand's unit-stride direction so the copy
// is coalesced either way), waits, and multiplies from shared memory.
#define MG_TILE 16
template <typename T> __device__ void gemm_tiled(MG_GEMM_PARAMS(T)) {
    __shared__ T As[MG_TILE][MG_TILE + 1];  // As[m][k]; +1 column: no bank conflicts on the
    __shared__ T Bs[MG_TILE][MG_TILE + 1];  // Bs[k][n]; transposed stores
    const int tx = threadIdx.x, ty = threadIdx.y;
    const bool a_rows = sak == 1;  // A row-major: consecutive k adjacent in memory
    const bool b_rows = sbn == 1;  // B row-major: consecutive n adjacent
    const index_t n0 = (index_t)blockIdx.x * MG_TILE;
    for (index_t z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* a = A + batch_offset(z, d1, d2, sa0, sa1, sa2);
        const T* b = B + batch_offset(z, d1, d2, sb0, sb1, sb2);
        for (index_t m0 = (index_t)blockIdx.y * MG_TILE; m0 < M; m0 += (index_t)gridDim.y * MG_TILE) {
            T sum = T(0);
            for (index_t k0 = 0; k0 < K; k0 += MG_TILE) {
                // A tile element (mi, ki): tx walks k if A is row-major, else m
                const int mi = a_rows ? ty : tx, ki = a_rows ? tx : ty;
                const index_t am = m0 + mi, ak = k0 + ki;
                As[mi][ki] = (am < M && ak < K) ? a[am * sam + ak * sak] : T(0);
                const int kj = b_rows ? ty : tx, nj = b_rows ? tx : ty;
                const index_t bk = k0 + kj, bn = n0 + nj;
                Bs[kj][nj] = (bk < K && bn < N) ? b[bk * sbk + bn * sbn] : T(0);
                __syncthreads();
#pragma unroll
                for (int k = 0; k < MG_TILE; ++k) sum += As[ty][k] * Bs[k][tx];
                __syncthreads();  // before the next slice overwrites the tiles
            }
            const index_t m = m0 + ty, n = n0 + tx;
            if (m < M && n < N) C[(z * M + m) * N + n] = has_bias ? sum + bias[n] : sum;
        }
    }
}

// ---- rung 3: register-blocked, double-buffered ------------------------------------------
// Block = 256 threads computes a 128 x 128 tile of C.  Thread tid = 16 ty + tx owns the 8 x 8
// outputs at rows {4ty..4ty+3, 64+4ty..64+4ty+3} and columns {4tx..4tx+3, 64+4tx..64+4tx+3}
// of the tile (two 4-wide groups each way, so the threads of a warp read neighbouring 16-byte
// words of shared memory: no bank conflicts):
//
//             columns:  tx=0  tx=1 ... tx=15 | tx=0 tx=1 ... tx=15
//                       [4 ]  [4 ]     [4 ]  | [4 ] [4 ]     [4 ]
//   rows ty=0  [4]       .     .        .    |  .    .        .
//        ...
//        ty=15 [4]
//        ty=0  [4]  (rows 64..)
//
// Per 8-wide slice of k: As[k][0..127] (A's slice, stored k-major) and Bs[k][0..127].  Each
// thread loads 4 elements of each slice from memory, 4 consecutive along the operand's
// unit-stride direction (one 16-byte load when `vec` says the operand allows it).
#define MG_BM 128
#define MG_BK 8
#define MG_PAD 4  // keeps rows 16-byte aligned and spreads the transposed stores over all banks

// Where this thread's 4 elements sit in a BK x 128 slice.  along_j: the 4 are consecutive
// along the 128-long side (m or n), else along k.
__device__ __forceinline__ void slice_coords(int tid, bool along_j, int& kk, int& jj) {
    if (along_j) { kk = tid / 32; jj = (tid % 32) * 4; }
    else { jj = tid / 2; kk = (tid % 2) * 4; }
}

// Fetch this thread's 4 elements of the slice starting at (k0, j0) of an operand whose
// element (k, j) is p[k*sk + j*sj]; out-of-range elements read 0 (edge tiles).
template <typename T>
__device__ __forceinline__ void fetch_slice(const T* p, index_t sk, index_t sj, index_t K, index_t J,
                                            index_t k0, index_t j0, int kk, int jj, bool along_j,
                                            bool vec, T r[4]) {
    const index_t k = k0 + kk, j = j0 + jj;
    if (along_j) {
        if (vec && k < K && j + 3 < J) {
            load_vec4(p + k * sk + j, r);
        } else {
#pragma unroll
            for (int t = 0; t < 4; ++t) r[t] = (k < K && j + t < J) ? p[k * sk + (j + t) * sj] : T(0);
        }
    } else {
        if (vec && j < J && k + 3 < K) {
            load_vec4(p + j * sj + k, r);
        } else {
#pragma unroll
            for (int t = 0; t < 4; ++t) r[t] = (k + t < K && j < J) ? p[(k + t) * sk + j * sj] : T(0);
        }
    }
}

template <typename T>
__device__ __forceinline__ void stash_slice(T (*S)[MG_BM + MG_PAD], int kk, int jj, bool along_j,
                                            const T r[4]) {
#pragma unroll
    for (int t = 0; t < 4; ++t) {
        if (along_j) S[kk][jj + t] = r[t];
        else S[kk + t][jj] = r[t];
    }
}

template <typename T> __device__ void gemm_regblock(MG_GEMM_PARAMS(T)) {
    __shared__ __align__(16) T As[2][MG_BK][MG_BM + MG_PAD];
    __shared__ __align__(16) T Bs[2][MG_BK][MG_BM + MG_PAD];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const bool a_along_m = sam == 1, b_along_n = sbn == 1;
    const bool vec_a = vec & 1, vec_b = vec & 2, vec_c = vec & 4;
    int a_k, a_m, b_k, b_n;
    slice_coords(tid, a_along_m, a_k, a_m);
    slice_coords(tid, b_along_n, b_k, b_n);
    const index_t n0 = (index_t)blockIdx.x * MG_BM;
    const index_t slices = (K + MG_BK - 1) / MG_BK;

    for (index_t z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* a = A + batch_offset(z, d1, d2, sa0, sa1, sa2);
        const T* b = B + batch_offset(z, d1, d2, sb0, sb1, sb2);
        for (index_t m0 = (index_t)blockIdx.y * MG_BM; m0 < M; m0 += (index_t)gridDim.y * MG_BM) {
            T acc[8][8];
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = T(0);
            T ra[4], rb[4];
            if (slices > 0) {  // prologue: slice 0 into buffer 0
                fetch_slice(a, sak, sam, K, M, 0, m0, a_k, a_m, a_along_m, vec_a, ra);
                fetch_slice(b, sbk, sbn, K, N, 0, n0, b_k, b_n, b_along_n, vec_b, rb);
                stash_slice(As[0], a_k, a_m, a_along_m, ra);
                stash_slice(Bs[0], b_k, b_n, b_along_n, rb);
            }
            __syncthreads();
            for (index_t s = 0; s < slices; ++s) {
                const int cur = s & 1;
                const bool more = s + 1 < slices;
                if (more) {  // issue the next slice's loads now; they land while we multiply
                    const index_t k0 = (s + 1) * MG_BK;
                    fetch_slice(a, sak, sam, K, M, k0, m0, a_k, a_m, a_along_m, vec_a, ra);
                    fetch_slice(b, sbk, sbn, K, N, k0, n0, b_k, b_n, b_along_n, vec_b, rb);
                }
#pragma unroll
                for (int k = 0; k < MG_BK; ++k) {
                    T av[8], bv[8];
                    load_vec4(&As[cur][k][4 * ty], av);
                    load_vec4(&As[cur][k][64 + 4 * ty], av + 4);
                    load_vec4(&Bs[cur][k][4 * tx], bv);
                    load_vec4(&Bs[cur][k][64 + 4 * tx], bv + 4);
#pragma unroll
                    for (int i = 0; i < 8; ++i)
#pragma unroll
                        for (int j = 0; j < 8; ++j) acc[i][j] += av[i] * bv[j];
                }
                if (more) {  // the other buffer was last read before the previous barrier
                    stash_slice(As[cur ^ 1], a_k, a_m, a_along_m, ra);
                    stash_slice(Bs[cur ^ 1], b_k, b_n, b_along_n, rb);
                }
                __syncthreads();
            }
            // epilogue: bias, then 16-byte stores where the row allows
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const index_t m = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + (i - 4));
                if (m >= M) continue;
                T* crow = C + (z * M + m) * N;
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    const index_t n = n0 + half * 64 + 4 * tx;
                    T out[4];
#pragma unroll
                    for (int t = 0; t < 4; ++t)
                        out[t] = acc[i][4 * half + t] + ((has_bias && n + t < N) ? bias[n + t] : T(0));
                    if (vec_c && n + 3 < N) {
                        store_vec4(crow + n, out);
                    } else {
#pragma unroll
                        for (int t = 0; t < 4; ++t)
                            if (n + t < N) crow[n + t] = out[t];
                    }
                }
            }
        }
    }
}

#define MG_GEMM_KERNELS(T, sfx)                                                                 \
    extern "C" __global__ void __launch_bounds__(256) gemm_naive_##sfx(MG_GEMM_PARAMS(T)) {    \
        gemm_naive<T>(MG_GEMM_ARGS);                                                            \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(256) gemm_tiled_##sfx(MG_GEMM_PARAMS(T)) {    \
        gemm_tiled<T>(MG_GEMM_ARGS);                                                            \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(256) gemm_regblock_##sfx(MG_GEMM_PARAMS(T)) { \
        gemm_regblock<T>(MG_GEMM_ARGS);                                                         \
    }

MG_GEMM_KERNELS(float, f32)
MG_GEMM_KERNELS(double, f64)

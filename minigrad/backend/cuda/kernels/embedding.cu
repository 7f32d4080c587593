// embedding.cu: the embedding gradient dW[e] = sum of g[m] over the m with indices[m] == e.
//
// Deterministic, with no atomics and no host synchronisation: a stable counting sort of the
// positions m by index value, then a gather.
//
// 1. embedding_count:  the M positions are cut into B chunks of S consecutive m.  Thread b
//    (one per chunk) counts its chunk's indices: hist[b, e].
// 2. (the wrapper, with array operations) base[b, e] = where chunk b's positions with index e
//    go in the sorted order = (positions with a smaller index) + (positions with index e in
//    earlier chunks): prefix sums of hist.  starts[e] = where row e's run begins.
// 3. embedding_place:  thread b walks its chunk in increasing m and writes order[base[b, e]++] = m.
//    So within each run the positions are in increasing m: a STABLE sort, built without
//    atomics (each (b, e) counter belongs to one thread).
// 4. embedding_backward:  one thread per element (e, d) of dW, in memory order (d fastest,
//    grid-stride), adds g[order[k], d] for k over row e's run, i.e. in increasing m: repeated
//    indices accumulate in index order, on every device alike.  A warp reads 32 neighbouring
//    d of one g row (coalesced).  Rows nobody picked get 0.
//
//     indices:  3 1 3 0 1 3          order (by index, stable):  3 | 1 4 | - | 0 2 5
//     dW row 3 <- g[0] + g[2] + g[5]                  starts:   0   1     3   3     6
//
// Indices outside [0, E) are skipped (never an out-of-bounds access); check_indices (below),
// launched first, has already stopped the work with an error.
//
// The same four steps add the rows of ANY integer-array indexing back into place: the backward
// of getitem / gather / pad is this embedding gradient with E = the rows of the indexed tensor
// (minigrad/ops/shape.py, ScatterAdd), so it too is deterministic on the GPU.
//
// check_indices_<op>: low <= indices[m] < high for every m, else the kernel stops (__trap) after
// printing which index of which op was wrong, as PyTorch's device-side asserts do.  The host
// never reads the indices (that would make it wait for the GPU); CuPy reports the failed launch
// at the next synchronisation, as "unspecified launch failure" (the printed line says why, and
// the CUDA context is lost: restart the process).  The emulator raises it with the message.
#include "common.cuh"

__device__ __noinline__ void index_error(const char* op, long long index, index_t low, index_t high) {
#ifdef MINIGRAD_CUDA_EMULATOR
    char message[200];
    snprintf(message, sizeof message, "%s: index %lld is out of range [%lld, %lld)", op, index,
             (long long)low, (long long)high);
    ::mgemu::kernel_fail(message, __FILE__, __LINE__);
#else
    printf("minigrad: %s: index %lld is out of range [%lld, %lld) (block %d, thread %d)\n", op, index,
           (long long)low, (long long)high, (int)blockIdx.x, (int)threadIdx.x);
    __trap();
#endif
}

__device__ void check_indices(const char* op, const long long* __restrict__ indices, index_t M,
                              index_t low, index_t high) {
    for (index_t m = global_thread(); m < M; m += grid_threads()) {
        const long long i = indices[m];
        if (i < low || i >= high) index_error(op, i, low, high);
    }
}

// One entry point per op, so the message (and the kernel's name) says whose index was wrong.
#define MG_CHECK_INDICES(op)                                                                     \
    extern "C" __global__ void check_indices_##op(const long long* indices, index_t M, index_t low, \
                                                  index_t high) {                                \
        check_indices(#op, indices, M, low, high);                                               \
    }

MG_CHECK_INDICES(embedding)
MG_CHECK_INDICES(embedding_backward)
MG_CHECK_INDICES(getitem)
MG_CHECK_INDICES(setitem)
MG_CHECK_INDICES(scatter_add)
MG_CHECK_INDICES(one_hot)
MG_CHECK_INDICES(gather)
MG_CHECK_INDICES(index)  // any other op

extern "C" __global__ void embedding_count(const long long* __restrict__ indices, index_t M,
                                           index_t E, index_t S, index_t B, long long* hist) {
    for (index_t b = global_thread(); b < B; b += grid_threads()) {
        const index_t end = (b + 1) * S < M ? (b + 1) * S : M;
        for (index_t m = b * S; m < end; ++m) {
            const long long e = indices[m];
            if (e >= 0 && e < E) hist[b * E + e] += 1;
        }
    }
}

extern "C" __global__ void embedding_place(const long long* __restrict__ indices, index_t M,
                                           index_t E, index_t S, index_t B, long long* base,
                                           long long* __restrict__ order) {
    for (index_t b = global_thread(); b < B; b += grid_threads()) {
        const index_t end = (b + 1) * S < M ? (b + 1) * S : M;
        for (index_t m = b * S; m < end; ++m) {
            const long long e = indices[m];
            if (e >= 0 && e < E) order[base[b * E + e]++] = m;
        }
    }
}

template <typename T>
__device__ void embedding_backward(const T* __restrict__ g, const long long* __restrict__ order,
                                   const long long* __restrict__ starts, T* __restrict__ dW,
                                   index_t E, index_t D) {
    const index_t total = E * D;
    for (index_t i = global_thread(); i < total; i += grid_threads()) {
        const index_t e = i / D, d = i - e * D;
        T sum = T(0);
        for (index_t k = starts[e]; k < starts[e + 1]; ++k) sum += g[order[k] * D + d];
        dW[i] = sum;
    }
}

#define MG_EMBEDDING_KERNELS(T, sfx)                                                            \
    extern "C" __global__ void embedding_backward_##sfx(const T* g, const long long* order,    \
                                                        const long long* starts, T* dW,         \
                                                        index_t E, index_t D) {                 \
        embedding_backward(g, order, starts, dW, E, D);                                         \
    }

MG_EMBEDDING_KERNELS(float, f32)
MG_EMBEDDING_KERNELS(double, f64)

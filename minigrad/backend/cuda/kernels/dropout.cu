// dropout.cu: the dropout mask from the Philox4x32-10 counter-based generator.
//
// Counter-based: the random bits of element i are a pure function of (seed, offset, i), so any
// thread can make any element's bits without shared state, and every device (NumPy reference,
// numba, this kernel) produces the same mask bit for bit.  Contract (docs/kernels.md):
//     key     = (seed lo32, seed hi32)
//     counter = (lo32(offset + i/4), hi32(offset + i/4), 0, 0)
//     word    = Philox4x32-10(counter, key)[i % 4]
//     u       = (word >> 8) * 2^-24                  (24 random bits: a uniform in [0, 1))
//     mask[i] = 1/(1-p) if u >= p else 0
// u >= p is tested exactly in integers: (word >> 8) >= threshold, threshold = ceil(p * 2^24)
// (computed by the caller; p * 2^24 is exact in double).
//
// Thread mapping: one thread per counter value (4 consecutive elements: one Philox call gives
// the 4 words), grid-stride.  A thread writes its 4 elements with 16-byte stores when the
// output is aligned, so a warp writes 512 (float) contiguous bytes.
#include "common.cuh"

// Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011).  Each round multiplies two words by fixed odd constants and mixes the high and low
// halves of the products with the other two words and the key; the key is bumped by the
// Weyl constants (golden ratio, sqrt 3 - 1) between rounds.
__device__ __forceinline__ void philox4x32_10(unsigned int c[4], unsigned int k0, unsigned int k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const unsigned int hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        const unsigned int hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        const unsigned int n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

template <typename T>
__device__ void dropout_mask(T* __restrict__ out, index_t size, unsigned int seed_lo,
                             unsigned int seed_hi, unsigned long long offset,
                             unsigned int threshold, T scale) {
    const index_t groups = (size + 3) / 4;
    const bool vec = aligned16(out);
    for (index_t q = global_thread(); q < groups; q += grid_threads()) {
        const unsigned long long counter = offset + (unsigned long long)q;
        unsigned int w[4] = {(unsigned int)counter, (unsigned int)(counter >> 32), 0u, 0u};
        philox4x32_10(w, seed_lo, seed_hi);
        T v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = (w[j] >> 8) >= threshold ? scale : T(0);
        T* dst = out + q * 4;
        if (vec && q * 4 + 4 <= size) {
            store_vec4(dst, v);
        } else {
            for (int j = 0; j < 4 && q * 4 + j < size; ++j) dst[j] = v[j];
        }
    }
}

#define MG_DROPOUT_KERNELS(T, sfx)                                                              \
    extern "C" __global__ void dropout_mask_##sfx(T* out, index_t size, unsigned int seed_lo,  \
                                                  unsigned int seed_hi,                         \
                                                  unsigned long long offset,                    \
                                                  unsigned int threshold, T scale) {            \
        dropout_mask(out, size, seed_lo, seed_hi, offset, threshold, scale);                    \
    }

MG_DROPOUT_KERNELS(float, f32)
MG_DROPOUT_KERNELS(double, f64)

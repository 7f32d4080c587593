// cuda_device.h: CUDA C++'s device-side vocabulary, for g++.
//
// emulator/__init__.py force-includes this header (g++ -include) in front of a kernel module's
// CUDA source, so the same source that NVRTC compiles for a GPU compiles here for the CPU:
//   qualifiers      __global__ __shared__ are markers that emulator/__init__.py rewrites after
//                   preprocessing (kernels get a launch stub; shared variables become static
//                   storage, counted and filled with garbage per block); the others are empty;
//   built-ins       threadIdx blockIdx blockDim gridDim warpSize;
//   synchronisation __syncthreads* and the warp collectives call the runtime's scheduler
//                   (runtime.cpp), which switches to the other threads of the block;
//   everything else (atomics, intrinsics, math, vector types) is plain C++ here: the threads
//                   of a block run one at a time on one CPU thread, so an atomic is a plain
//                   read-modify-write.
// Semantics follow the CUDA C++ Programming Guide and the PTX ISA; where an intrinsic is only
// approximate on a GPU (__expf, __fdividef, ...) the emulator computes the exact function.
#pragma once

// The C++ <math.h> also puts the float overloads (exp(float), abs(float), isnan, ...) into the
// global namespace, as CUDA does.
#include <math.h>
#include <cfloat>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "runtime.h"

// ----------------------------------------------------------------------------------------
// Qualifiers
// ----------------------------------------------------------------------------------------
#define __global__ __mgemu_global__
#define __shared__ __mgemu_shared__
#define __launch_bounds__(...) __mgemu_launch_bounds__(__VA_ARGS__)
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __device_builtin__
#define __grid_constant__
#define __forceinline__ inline
#define __noinline__
#define __align__(n) __attribute__((aligned(n)))
#define __builtin_assume(e) ((void)0)
#define __CUDACC__ 1
#define MINIGRAD_CUDA_EMULATOR 1  // kernels can tell where they run (rarely a good idea)

// ----------------------------------------------------------------------------------------
// Built-in variables (uint3 and dim3 come from runtime.h)
// ----------------------------------------------------------------------------------------
static const uint3& threadIdx = ::mgemu::thread_idx;
static const uint3& blockIdx = ::mgemu::block_idx;
static const dim3& blockDim = ::mgemu::block_dim;
static const dim3& gridDim = ::mgemu::grid_dim;
static constexpr int warpSize = 32;

// ----------------------------------------------------------------------------------------
// Vector types: CUDA's layouts and alignments, and their make_* helpers
// ----------------------------------------------------------------------------------------
#define MGEMU_VECTOR_1_2_4(T, name, align2, align4)                                        \
    struct __attribute__((aligned(sizeof(T)))) name##1 { T x; };                            \
    struct __attribute__((aligned(align2))) name##2 { T x, y; };                            \
    struct __attribute__((aligned(align4))) name##4 { T x, y, z, w; };                      \
    inline name##1 make_##name##1(T x) { return name##1{x}; }                              \
    inline name##2 make_##name##2(T x, T y) { return name##2{x, y}; }                      \
    inline name##4 make_##name##4(T x, T y, T z, T w) { return name##4{x, y, z, w}; }
#define MGEMU_VECTOR_3(T, name) \
    inline name##3 make_##name##3(T x, T y, T z) { return name##3{x, y, z}; }

MGEMU_VECTOR_1_2_4(signed char, char, 2, 4)
MGEMU_VECTOR_1_2_4(unsigned char, uchar, 2, 4)
MGEMU_VECTOR_1_2_4(short, short, 4, 8)
MGEMU_VECTOR_1_2_4(unsigned short, ushort, 4, 8)
MGEMU_VECTOR_1_2_4(int, int, 8, 16)
MGEMU_VECTOR_1_2_4(unsigned int, uint, 8, 16)
MGEMU_VECTOR_1_2_4(long, long, 16, 16)
MGEMU_VECTOR_1_2_4(unsigned long, ulong, 16, 16)
MGEMU_VECTOR_1_2_4(long long, longlong, 16, 16)
MGEMU_VECTOR_1_2_4(unsigned long long, ulonglong, 16, 16)
MGEMU_VECTOR_1_2_4(float, float, 8, 16)
MGEMU_VECTOR_1_2_4(double, double, 16, 16)
struct char3 { signed char x, y, z; };
struct uchar3 { unsigned char x, y, z; };
struct short3 { short x, y, z; };
struct ushort3 { unsigned short x, y, z; };
struct int3 { int x, y, z; };
struct long3 { long x, y, z; };
struct ulong3 { unsigned long x, y, z; };
struct longlong3 { long long x, y, z; };
struct ulonglong3 { unsigned long long x, y, z; };
struct float3 { float x, y, z; };
struct double3 { double x, y, z; };
MGEMU_VECTOR_3(signed char, char)
MGEMU_VECTOR_3(unsigned char, uchar)
MGEMU_VECTOR_3(short, short)
MGEMU_VECTOR_3(unsigned short, ushort)
MGEMU_VECTOR_3(int, int)
MGEMU_VECTOR_3(unsigned int, uint)
MGEMU_VECTOR_3(long, long)
MGEMU_VECTOR_3(unsigned long, ulong)
MGEMU_VECTOR_3(long long, longlong)
MGEMU_VECTOR_3(unsigned long long, ulonglong)
MGEMU_VECTOR_3(float, float)
MGEMU_VECTOR_3(double, double)
#undef MGEMU_VECTOR_1_2_4
#undef MGEMU_VECTOR_3

// ----------------------------------------------------------------------------------------
// Block and warp synchronisation. The empty asm with a "memory" clobber stops g++ from keeping
// shared or global values in registers across the point where other threads run.
// ----------------------------------------------------------------------------------------
namespace mgemu {

inline void compiler_fence() { asm volatile("" ::: "memory"); }

inline int barrier_at(int kind, int predicate, const char* file, int line) {
    compiler_fence();
    int r = block_barrier(kind, predicate, file, line);
    compiler_fence();
    return r;
}

inline WarpCall warp_call(int op, const char* file, int line, unsigned mask, const void* value, int size) {
    WarpCall c{};
    c.op = op;
    c.mask = mask;
    c.file = file;
    c.line = line;
    c.size = size;
    c.width = 32;
    std::memcpy(c.value, value, static_cast<std::size_t>(size));
    compiler_fence();
    return c;
}

inline void warp_run(WarpCall& c) {
    warp_collective(&c);
    compiler_fence();
}

template <class T>
inline T shuffle(int op, const char* file, int line, unsigned mask, T var, int arg, int width = warpSize) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 16, "shuffles move values of up to 16 bytes");
    WarpCall c = warp_call(op, file, line, mask, &var, sizeof(T));
    c.arg = arg;
    c.width = width;
    warp_run(c);
    T out;
    std::memcpy(&out, c.result, sizeof(T));
    return out;
}

inline unsigned vote(int op, const char* file, int line, unsigned mask, int predicate) {
    predicate = predicate != 0;
    WarpCall c = warp_call(op, file, line, mask, &predicate, sizeof predicate);
    warp_run(c);
    unsigned out;
    std::memcpy(&out, c.result, sizeof out);
    return out;
}

inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
    int none = 0;
    WarpCall c = warp_call(kSyncWarp, file, line, mask, &none, sizeof none);
    warp_run(c);
}

template <class T>
inline unsigned match(int op, const char* file, int line, unsigned mask, T value, int* pred = nullptr) {
    WarpCall c = warp_call(op, file, line, mask, &value, sizeof(T));
    warp_run(c);
    if (pred) *pred = c.pred;
    unsigned out;
    std::memcpy(&out, c.result, sizeof out);
    return out;
}

template <class T>
inline T reduce(int op, const char* file, int line, unsigned mask, T value) {
    WarpCall c = warp_call(op, file, line, mask, &value, sizeof(T));
    c.is_signed = std::is_signed<T>::value;
    warp_run(c);
    T out;
    std::memcpy(&out, c.result, sizeof(T));
    return out;
}

// __reduce_and/or/xor_sync take unsigned only
inline unsigned reduce_bits(int op, const char* file, int line, unsigned mask, unsigned value) {
    return reduce<unsigned>(op, file, line, mask, value);
}

}  // namespace mgemu

#define __syncthreads() ::mgemu::barrier_at(0, 1, __FILE__, __LINE__)
#define __syncthreads_count(...) ::mgemu::barrier_at(1, (__VA_ARGS__), __FILE__, __LINE__)
#define __syncthreads_and(...) ::mgemu::barrier_at(2, (__VA_ARGS__), __FILE__, __LINE__)
#define __syncthreads_or(...) ::mgemu::barrier_at(3, (__VA_ARGS__), __FILE__, __LINE__)
#define __syncwarp(...) ::mgemu::syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(...) ::mgemu::shuffle(::mgemu::kShflIdx, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::mgemu::shuffle(::mgemu::kShflUp, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::mgemu::shuffle(::mgemu::kShflDown, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::mgemu::shuffle(::mgemu::kShflXor, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(...) ::mgemu::vote(::mgemu::kBallot, __FILE__, __LINE__, __VA_ARGS__)
#define __any_sync(...) static_cast<int>(::mgemu::vote(::mgemu::kAny, __FILE__, __LINE__, __VA_ARGS__))
#define __all_sync(...) static_cast<int>(::mgemu::vote(::mgemu::kAll, __FILE__, __LINE__, __VA_ARGS__))
#define __activemask() ::mgemu::vote(::mgemu::kActiveMask, __FILE__, __LINE__, 0xffffffffu, 1)
#define __match_any_sync(...) ::mgemu::match(::mgemu::kMatchAny, __FILE__, __LINE__, __VA_ARGS__)
#define __match_all_sync(...) ::mgemu::match(::mgemu::kMatchAll, __FILE__, __LINE__, __VA_ARGS__)
#define __reduce_add_sync(...) ::mgemu::reduce(::mgemu::kReduceAdd, __FILE__, __LINE__, __VA_ARGS__)
#define __reduce_min_sync(...) ::mgemu::reduce(::mgemu::kReduceMin, __FILE__, __LINE__, __VA_ARGS__)
#define __reduce_max_sync(...) ::mgemu::reduce(::mgemu::kReduceMax, __FILE__, __LINE__, __VA_ARGS__)
#define __reduce_and_sync(...) ::mgemu::reduce_bits(::mgemu::kReduceAnd, __FILE__, __LINE__, __VA_ARGS__)
#define __reduce_or_sync(...) ::mgemu::reduce_bits(::mgemu::kReduceOr, __FILE__, __LINE__, __VA_ARGS__)
#define __reduce_xor_sync(...) ::mgemu::reduce_bits(::mgemu::kReduceXor, __FILE__, __LINE__, __VA_ARGS__)

// Memory fences: with one CPU thread every write is seen at once; only the compiler must not
// move memory accesses across them.
inline void __threadfence() { ::mgemu::compiler_fence(); }
inline void __threadfence_block() { ::mgemu::compiler_fence(); }
inline void __threadfence_system() { ::mgemu::compiler_fence(); }

// ----------------------------------------------------------------------------------------
// Atomics: the overloads CUDA has (and no others, so code the emulator accepts compiles with
// nvcc too). Signed arithmetic wraps (the module is compiled with -fwrapv), as on a GPU.
// ----------------------------------------------------------------------------------------
#define MGEMU_ATOMIC(name, T, update)                  \
    inline T name(T* address, T val) {                 \
        T old = *address;                              \
        *address = (update);                           \
        return old;                                    \
    }
MGEMU_ATOMIC(atomicAdd, int, old + val)
MGEMU_ATOMIC(atomicAdd, unsigned int, old + val)
MGEMU_ATOMIC(atomicAdd, unsigned long long int, old + val)
MGEMU_ATOMIC(atomicAdd, float, old + val)
MGEMU_ATOMIC(atomicAdd, double, old + val)
MGEMU_ATOMIC(atomicSub, int, old - val)
MGEMU_ATOMIC(atomicSub, unsigned int, old - val)
MGEMU_ATOMIC(atomicExch, int, val)
MGEMU_ATOMIC(atomicExch, unsigned int, val)
MGEMU_ATOMIC(atomicExch, unsigned long long int, val)
MGEMU_ATOMIC(atomicExch, float, val)
MGEMU_ATOMIC(atomicMin, int, val < old ? val : old)
MGEMU_ATOMIC(atomicMin, unsigned int, val < old ? val : old)
MGEMU_ATOMIC(atomicMin, long long int, val < old ? val : old)
MGEMU_ATOMIC(atomicMin, unsigned long long int, val < old ? val : old)
MGEMU_ATOMIC(atomicMax, int, val > old ? val : old)
MGEMU_ATOMIC(atomicMax, unsigned int, val > old ? val : old)
MGEMU_ATOMIC(atomicMax, long long int, val > old ? val : old)
MGEMU_ATOMIC(atomicMax, unsigned long long int, val > old ? val : old)
MGEMU_ATOMIC(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
MGEMU_ATOMIC(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
MGEMU_ATOMIC(atomicAnd, int, old & val)
MGEMU_ATOMIC(atomicAnd, unsigned int, old & val)
MGEMU_ATOMIC(atomicAnd, unsigned long long int, old & val)
MGEMU_ATOMIC(atomicOr, int, old | val)
MGEMU_ATOMIC(atomicOr, unsigned int, old | val)
MGEMU_ATOMIC(atomicOr, unsigned long long int, old | val)
MGEMU_ATOMIC(atomicXor, int, old ^ val)
MGEMU_ATOMIC(atomicXor, unsigned int, old ^ val)
MGEMU_ATOMIC(atomicXor, unsigned long long int, old ^ val)
#undef MGEMU_ATOMIC

#define MGEMU_CAS(T)                                    \
    inline T atomicCAS(T* address, T compare, T val) {  \
        T old = *address;                               \
        if (old == compare) *address = val;             \
        return old;                                     \
    }
MGEMU_CAS(int)
MGEMU_CAS(unsigned int)
MGEMU_CAS(unsigned long long int)
MGEMU_CAS(unsigned short int)
#undef MGEMU_CAS

// The scoped variants (_block, _system) are the same operation here.
#define MGEMU_SCOPED(name)                                                                     \
    template <class... A>                                                                      \
    inline auto name##_block(A... a) -> decltype(name(a...)) { return name(a...); }            \
    template <class... A>                                                                      \
    inline auto name##_system(A... a) -> decltype(name(a...)) { return name(a...); }
MGEMU_SCOPED(atomicAdd)
MGEMU_SCOPED(atomicSub)
MGEMU_SCOPED(atomicExch)
MGEMU_SCOPED(atomicMin)
MGEMU_SCOPED(atomicMax)
MGEMU_SCOPED(atomicInc)
MGEMU_SCOPED(atomicDec)
MGEMU_SCOPED(atomicAnd)
MGEMU_SCOPED(atomicOr)
MGEMU_SCOPED(atomicXor)
MGEMU_SCOPED(atomicCAS)
#undef MGEMU_SCOPED

// ----------------------------------------------------------------------------------------
// Cached loads and stores: plain memory accesses here
// ----------------------------------------------------------------------------------------
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// ----------------------------------------------------------------------------------------
// Bit reinterpretation and integer intrinsics
// ----------------------------------------------------------------------------------------
namespace mgemu {
template <class To, class From>
inline To bits(From from) {
    static_assert(sizeof(To) == sizeof(From), "same size");
    To to;
    std::memcpy(&to, &from, sizeof to);
    return to;
}
}  // namespace mgemu

inline unsigned int __float_as_uint(float x) { return ::mgemu::bits<unsigned int>(x); }
inline int __float_as_int(float x) { return ::mgemu::bits<int>(x); }
inline float __uint_as_float(unsigned int x) { return ::mgemu::bits<float>(x); }
inline float __int_as_float(int x) { return ::mgemu::bits<float>(x); }
inline long long int __double_as_longlong(double x) { return ::mgemu::bits<long long int>(x); }
inline double __longlong_as_double(long long int x) { return ::mgemu::bits<double>(x); }
inline int __double2hiint(double x) { return static_cast<int>(::mgemu::bits<unsigned long long>(x) >> 32); }
inline int __double2loint(double x) { return static_cast<int>(::mgemu::bits<unsigned long long>(x) & 0xffffffffu); }
inline double __hiloint2double(int hi, int lo) {
    return ::mgemu::bits<double>((static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32) | static_cast<unsigned>(lo));
}

inline unsigned int __umulhi(unsigned int a, unsigned int b) { return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32); }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned long long int __umul64hi(unsigned long long int a, unsigned long long int b) {
    return static_cast<unsigned long long int>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline long long int __mul64hi(long long int a, long long int b) { return static_cast<long long int>((static_cast<__int128>(a) * b) >> 64); }
inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
inline unsigned int __umul24(unsigned int a, unsigned int b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long int x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long int x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long int x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
    unsigned int r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline unsigned long long int __brevll(unsigned long long int x) {
    return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) | __brev(static_cast<unsigned>(x >> 32));
}
inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s) {
    unsigned long long bytes = (static_cast<unsigned long long>(y) << 32) | x;
    unsigned int r = 0;
    for (int i = 0; i < 4; ++i) r |= static_cast<unsigned>((bytes >> (8 * ((s >> (4 * i)) & 7u))) & 0xffu) << (8 * i);
    return r;
}
inline unsigned int __funnelshift_l(unsigned int lo, unsigned int hi, unsigned int shift) {
    return static_cast<unsigned>((((static_cast<unsigned long long>(hi) << 32) | lo) << (shift & 31u)) >> 32);
}
inline unsigned int __funnelshift_lc(unsigned int lo, unsigned int hi, unsigned int shift) {
    shift = shift < 32u ? shift : 32u;
    return static_cast<unsigned>((((static_cast<unsigned long long>(hi) << 32) | lo) << shift) >> 32);
}
inline unsigned int __funnelshift_r(unsigned int lo, unsigned int hi, unsigned int shift) {
    return static_cast<unsigned>(((static_cast<unsigned long long>(hi) << 32) | lo) >> (shift & 31u));
}
inline unsigned int __funnelshift_rc(unsigned int lo, unsigned int hi, unsigned int shift) {
    shift = shift < 32u ? shift : 32u;
    return static_cast<unsigned>(((static_cast<unsigned long long>(hi) << 32) | lo) >> shift);
}
inline unsigned int __sad(int x, int y, unsigned int z) { return (x > y ? static_cast<unsigned>(x) - static_cast<unsigned>(y) : static_cast<unsigned>(y) - static_cast<unsigned>(x)) + z; }
inline unsigned int __usad(unsigned int x, unsigned int y, unsigned int z) { return (x > y ? x - y : y - x) + z; }
inline int __hadd(int x, int y) { return static_cast<int>((static_cast<long long>(x) + y) >> 1); }
inline int __rhadd(int x, int y) { return static_cast<int>((static_cast<long long>(x) + y + 1) >> 1); }
inline unsigned int __uhadd(unsigned int x, unsigned int y) { return static_cast<unsigned>((static_cast<unsigned long long>(x) + y) >> 1); }
inline unsigned int __urhadd(unsigned int x, unsigned int y) { return static_cast<unsigned>((static_cast<unsigned long long>(x) + y + 1) >> 1); }

// ----------------------------------------------------------------------------------------
// min / max: CUDA's overload set (mixed int/float calls are ambiguous there too); the floating
// versions are fminf/fmaxf, which return the other operand when one is NaN.
// ----------------------------------------------------------------------------------------
#define MGEMU_MINMAX(R, A, B)                                                                        \
    inline R min(const A a, const B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); } \
    inline R max(const A a, const B b) { return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); }
MGEMU_MINMAX(int, int, int)
MGEMU_MINMAX(unsigned int, unsigned int, unsigned int)
MGEMU_MINMAX(unsigned int, int, unsigned int)
MGEMU_MINMAX(unsigned int, unsigned int, int)
MGEMU_MINMAX(long int, long int, long int)
MGEMU_MINMAX(unsigned long int, unsigned long int, unsigned long int)
MGEMU_MINMAX(unsigned long int, long int, unsigned long int)
MGEMU_MINMAX(unsigned long int, unsigned long int, long int)
MGEMU_MINMAX(long long int, long long int, long long int)
MGEMU_MINMAX(unsigned long long int, unsigned long long int, unsigned long long int)
MGEMU_MINMAX(unsigned long long int, long long int, unsigned long long int)
MGEMU_MINMAX(unsigned long long int, unsigned long long int, long long int)
#undef MGEMU_MINMAX
inline float min(const float a, const float b) { return fminf(a, b); }
inline float max(const float a, const float b) { return fmaxf(a, b); }
inline double min(const double a, const double b) { return fmin(a, b); }
inline double max(const double a, const double b) { return fmax(a, b); }
inline double min(const float a, const double b) { return fmin(static_cast<double>(a), b); }
inline double max(const float a, const double b) { return fmax(static_cast<double>(a), b); }
inline double min(const double a, const float b) { return fmin(a, static_cast<double>(b)); }
inline double max(const double a, const float b) { return fmax(a, static_cast<double>(b)); }
inline unsigned int umin(const unsigned int a, const unsigned int b) { return a < b ? a : b; }
inline unsigned int umax(const unsigned int a, const unsigned int b) { return a > b ? a : b; }
inline long long int llmin(const long long int a, const long long int b) { return a < b ? a : b; }
inline long long int llmax(const long long int a, const long long int b) { return a > b ? a : b; }
inline unsigned long long int ullmin(const unsigned long long int a, const unsigned long long int b) { return a < b ? a : b; }
inline unsigned long long int ullmax(const unsigned long long int a, const unsigned long long int b) { return a > b ? a : b; }

// ----------------------------------------------------------------------------------------
// Floating-point intrinsics and CUDA's extra math functions. The fast intrinsics (__expf ...)
// are approximate on a GPU; here they are the exact functions.
// ----------------------------------------------------------------------------------------
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { sincosf(x, s, c); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }  // NaN -> 0
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline double rcbrt(double x) { return 1.0 / cbrt(x); }
inline float rhypotf(float x, float y) { return 1.0f / hypotf(x, y); }
inline double rhypot(double x, double y) { return 1.0 / hypot(x, y); }
inline double sinpi(double x) { return sin(M_PI * x); }
inline double cospi(double x) { return cos(M_PI * x); }
inline float sinpif(float x) { return static_cast<float>(sinpi(x)); }
inline float cospif(float x) { return static_cast<float>(cospi(x)); }
inline void sincospif(float x, float* s, float* c) { *s = sinpif(x); *c = cospif(x); }
inline void sincospi(double x, double* s, double* c) { *s = sinpi(x); *c = cospi(x); }
inline double normcdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }
inline float normcdff(float x) { return static_cast<float>(normcdf(x)); }
inline double erfcx(double x) {
    if (x < 25.0) return static_cast<double>(expl(static_cast<long double>(x) * x) * erfcl(x));
    double r = 1.0 / (x * x);  // asymptotic series: exp(x^2) erfc(x) ~ (1 - r/2 + 3r^2/4) / (x sqrt(pi))
    return (1.0 - 0.5 * r + 0.75 * r * r - 1.875 * r * r * r) / (x * 1.7724538509055160273);
}
inline float erfcxf(float x) { return static_cast<float>(erfcx(x)); }
// erfc^-1 by Newton's method on erfc (d/dy erfc(y) = -2/sqrt(pi) e^{-y^2}), started from the
// tail approximation; erfinv(x) = erfcinv(1 - x) in long double keeps small x accurate.
inline long double mgemu_erfcinv(long double y) {
    if (!(y > 0.0L && y < 2.0L)) return y == 0.0L ? INFINITY : y == 2.0L ? -INFINITY : NAN;
    bool upper = y > 1.0L;
    long double t = upper ? 2.0L - y : y;
    long double x = t < 0.5L ? sqrtl(-logl(t)) : (1.0L - t) * 0.886226925452758L;
    for (int i = 0; i < 60; ++i) {
        long double step = (erfcl(x) - t) / (-1.1283791670955126L * expl(-x * x));
        x -= step;
        if (fabsl(step) <= 1e-19L * fabsl(x)) break;
    }
    return upper ? -x : x;
}
inline double erfcinv(double y) { return static_cast<double>(mgemu_erfcinv(y)); }
inline float erfcinvf(float y) { return static_cast<float>(mgemu_erfcinv(y)); }
inline double erfinv(double x) { return static_cast<double>(mgemu_erfcinv(1.0L - x)); }
inline float erfinvf(float x) { return static_cast<float>(mgemu_erfcinv(1.0L - x)); }
inline double normcdfinv(double p) { return static_cast<double>(-1.4142135623730950488L * mgemu_erfcinv(2.0L * p)); }
inline float normcdfinvf(float p) { return static_cast<float>(normcdfinv(p)); }

// IEEE round-to-nearest arithmetic (the _rn suffix); other rounding modes are not provided.
// On a GPU these are never contracted into a fused multiply-add (that is what they are for:
// __fmul_rn(a, b) + c rounds the product), while g++ here contracts a * b + c as NVRTC does
// (emulator/__init__.py: -ffp-contract=fast). mgemu::rounded() keeps a value out of any
// contraction: a round trip through a volatile variable is a rounded value the compiler must
// take as it is.
namespace mgemu {
template <class T>
inline T rounded(T v) {
    volatile T stored = v;
    return stored;
}
}  // namespace mgemu
#define MGEMU_ROUND_TO_NEAREST(p, T)                                  \
    inline T __##p##add_rn(T a, T b) { return ::mgemu::rounded(a) + ::mgemu::rounded(b); } \
    inline T __##p##sub_rn(T a, T b) { return ::mgemu::rounded(a) - ::mgemu::rounded(b); } \
    inline T __##p##mul_rn(T a, T b) { return ::mgemu::rounded(a * b); } \
    inline T __##p##div_rn(T a, T b) { return a / b; }                \
    inline T __##p##rcp_rn(T x) { return T(1) / x; }                  \
    inline T __##p##sqrt_rn(T x) { return sqrt(x); }
MGEMU_ROUND_TO_NEAREST(f, float)
MGEMU_ROUND_TO_NEAREST(d, double)
#undef MGEMU_ROUND_TO_NEAREST
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }

// Float -> integer conversions saturate and turn NaN into 0, as the GPU's cvt instructions do.
namespace mgemu {
template <class I, class F>
inline I saturate(F v) {
    if (v != v) return 0;
    if (v <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
    if (v >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
    return static_cast<I>(v);
}
}  // namespace mgemu
#define MGEMU_CONVERT(name, I, F)                                                         \
    inline I name##_rn(F v) { return ::mgemu::saturate<I>(nearbyint(v)); }                \
    inline I name##_rz(F v) { return ::mgemu::saturate<I>(trunc(v)); }                   \
    inline I name##_ru(F v) { return ::mgemu::saturate<I>(ceil(v)); }                    \
    inline I name##_rd(F v) { return ::mgemu::saturate<I>(floor(v)); }
MGEMU_CONVERT(__float2int, int, float)
MGEMU_CONVERT(__float2uint, unsigned int, float)
MGEMU_CONVERT(__float2ll, long long int, float)
MGEMU_CONVERT(__float2ull, unsigned long long int, float)
MGEMU_CONVERT(__double2int, int, double)
MGEMU_CONVERT(__double2uint, unsigned int, double)
MGEMU_CONVERT(__double2ll, long long int, double)
MGEMU_CONVERT(__double2ull, unsigned long long int, double)
#undef MGEMU_CONVERT
inline float __int2float_rn(int v) { return static_cast<float>(v); }
inline float __uint2float_rn(unsigned int v) { return static_cast<float>(v); }
inline float __ll2float_rn(long long int v) { return static_cast<float>(v); }
inline float __ull2float_rn(unsigned long long int v) { return static_cast<float>(v); }
inline double __int2double_rn(int v) { return static_cast<double>(v); }
inline double __uint2double_rn(unsigned int v) { return static_cast<double>(v); }
inline double __ll2double_rn(long long int v) { return static_cast<double>(v); }
inline double __ull2double_rn(unsigned long long int v) { return static_cast<double>(v); }
inline float __double2float_rn(double v) { return static_cast<float>(v); }

// ----------------------------------------------------------------------------------------
// Odds and ends
// ----------------------------------------------------------------------------------------
inline long long int clock64() { return ::mgemu::clock64(); }
inline void __nanosleep(unsigned int) {}
#define __trap() ::mgemu::kernel_fail("__trap() was called", __FILE__, __LINE__)
#define __brkpt() ::mgemu::kernel_fail("__brkpt() was called", __FILE__, __LINE__)
#undef assert
#ifdef NDEBUG
#define assert(e) ((void)0)
#else
#define assert(e) ((e) ? (void)0 : ::mgemu::kernel_fail("assertion failed: " #e, __FILE__, __LINE__))
#endif

// ----------------------------------------------------------------------------------------
// The launch table: emulator/__init__.py appends one kernel_desc<&kernel>(...) per kernel, which
// describes the parameters (so Python can check every argument) and unpacks the arguments.
// ----------------------------------------------------------------------------------------
namespace mgemu {

template <class T>
const char* type_name() { return __PRETTY_FUNCTION__; }  // "... [with T = const float*]"

template <class T>
constexpr int kind_of() {
    return std::is_pointer<T>::value               ? kPointer
           : std::is_same<T, bool>::value          ? kBool
           : std::is_floating_point<T>::value      ? kFloat
           : std::is_integral<T>::value            ? (std::is_signed<T>::value ? kSigned : kUnsigned)
                                                   : kOther;
}

template <class T>
constexpr int size_of() {
    if constexpr (std::is_void<T>::value || std::is_function<T>::value) return 0;
    else return static_cast<int>(sizeof(T));
}

template <class T>
ParamDesc param_desc() {
    using Pointee = std::remove_pointer_t<T>;
    constexpr bool pointer = std::is_pointer<T>::value;
    return ParamDesc{kind_of<T>(), static_cast<int>(sizeof(T)),
                     pointer ? kind_of<std::remove_cv_t<Pointee>>() : 0,
                     pointer ? size_of<std::remove_cv_t<Pointee>>() : 0,
                     pointer ? static_cast<int>(std::is_const<Pointee>::value) : 0, type_name<T>()};
}

template <class F>
struct Signature;

template <class... A>
struct Signature<void(A...)> {
    static constexpr int count = static_cast<int>(sizeof...(A));
    static const ParamDesc* params() {
        static const ParamDesc list[] = {param_desc<A>()..., ParamDesc{}};
        return list;
    }
    template <void (*F)(A...), std::size_t... I>
    static void call(void** args, std::index_sequence<I...>) {
        F(*static_cast<std::remove_cv_t<A>*>(args[I])...);
    }
    template <void (*F)(A...)>
    static void invoke(void** args) {
        call<F>(args, std::index_sequence_for<A...>{});
    }
};

template <class... A>
struct Signature<void(A...) noexcept> : Signature<void(A...)> {};

template <auto F>
KernelDesc kernel_desc(const char* name, const char* param_names, int max_threads) {
    using Fn = std::remove_pointer_t<decltype(F)>;
    using S = Signature<Fn>;
    return KernelDesc{name, &S::template invoke<F>, S::count, S::params(), param_names, max_threads};
}

}  // namespace mgemu

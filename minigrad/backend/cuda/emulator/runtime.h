// runtime.h: the contract between an emulated kernel module and the emulator's runtime.
//
// Three parties include or use this file:
//   cuda_device.h  (force-included into the kernel source) calls the functions below for every
//                  CUDA operation that synchronises threads (barriers, warp collectives);
//   the launch table that emulator/__init__.py appends to each module describes its kernels with
//                  KernelDesc / ParamDesc;
//   runtime.cpp    implements the fibers, the block scheduler and the launch entry point that
//                  emulator/__init__.py calls through ctypes (mgemu_launch).
// Nothing here spells CUDA keywords, so runtime.cpp can include it as plain C++.
#pragma once

#include <cstddef>
#include <cstdint>

#define MGEMU_EXPORT extern "C" __attribute__((visibility("default")))

// CUDA's index types. uint3 is what threadIdx/blockIdx are, dim3 what blockDim/gridDim are.
struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

namespace mgemu {

// The built-in variables of the thread that is running now. The scheduler rewrites them before
// it switches to a thread, so a kernel always reads its own values.
extern uint3 thread_idx;
extern uint3 block_idx;
extern dim3 block_dim;
extern dim3 grid_dim;

// Start of the dynamic shared memory of the running launch (`extern __shared__ T name[];`
// is rewritten into a reference to this pointer).
extern unsigned char* dynamic_shared_base;

// Warp collectives: every operation that exchanges data between the lanes of a warp is one
// WarpCall. The calling thread blocks until every lane named in `mask` that is still running
// has made the same call; then the runtime computes each lane's result.
enum WarpOp : int {
    kShflIdx, kShflUp, kShflDown, kShflXor,
    kBallot, kAny, kAll, kSyncWarp, kMatchAny, kMatchAll,
    kReduceAdd, kReduceMin, kReduceMax, kReduceAnd, kReduceOr, kReduceXor,
    kActiveMask,
};

struct WarpCall {
    int op;                       // a WarpOp
    unsigned int mask;            // the lanes that take part (CUDA's membermask)
    const char* file;             // where the call is in the CUDA source
    int line;
    int arg;                      // source lane, delta or lane mask (shuffles)
    int width;                    // shuffle segment width
    int size;                     // bytes of `value`
    int is_signed;                // reductions: compare as signed
    unsigned char value[16];      // this lane's operand
    unsigned char result[16];     // this lane's result (written by the runtime)
    int pred;                     // __match_all_sync's predicate out
};

void warp_collective(WarpCall* call);

// Block barriers. kind: 0 __syncthreads, 1 __syncthreads_count, 2 _and, 3 _or.
int block_barrier(int kind, int predicate, const char* file, int line);

// Called where a static __shared__ variable is declared: counts it towards the block's shared
// memory and fills it with garbage (0xFF bytes: NaN, -1) the first time a block reaches it, the
// way a GPU leaves shared memory uninitialised.
void note_shared(const volatile void* address, std::size_t bytes, const char* name, const char* file, int line);

// A file-scope __shared__ variable registers itself once when the module loads.
struct SharedNote {
    SharedNote(const volatile void* address, std::size_t bytes, const char* name);
};

// Stops the launch: the Python call raises KernelError with this message.
[[noreturn]] void kernel_fail(const char* message, const char* file, int line);

long long int clock64();

// --- the launch table (generated per module) ---------------------------------------------

enum ParamKind : int { kPointer = 1, kFloat = 2, kSigned = 3, kUnsigned = 4, kBool = 5, kOther = 6 };

struct ParamDesc {
    int kind;               // ParamKind of the parameter
    int size;               // sizeof(parameter)
    int pointee_kind;       // for pointers: ParamKind of the pointee (kOther for void/structs)
    int pointee_size;       // for pointers: sizeof(pointee), 0 for void
    int pointee_const;      // for pointers: the pointee is const (read-only through this parameter)
    const char* type_name;  // __PRETTY_FUNCTION__ of type_name<T>(): "... [with T = const float*]"
};

struct KernelDesc {
    const char* name;                 // what get_function() takes
    void (*invoke)(void** args);      // calls the kernel with args[i] pointing at parameter i
    int num_params;
    const ParamDesc* params;
    const char* param_names;          // comma-separated, from the source ("" when unknown)
    int max_threads;                  // __launch_bounds__, 0 when none
};

// --- what emulator/__init__.py passes to mgemu_launch ---------------------------------------

struct ArrayArg {            // one array argument (a pointer parameter)
    int index;               // which parameter
    int writable;            // the NumPy array may be written
    std::uint64_t address;   // its data
    std::uint64_t bytes;     // its size
    const char* label;       // "argument 0 'x' (float32 array of shape (3, 4))" for messages
};

struct LaunchDesc {
    const KernelDesc* kernel;            // from the module's table
    unsigned int grid[3];
    unsigned int block[3];
    std::uint64_t dynamic_shared;        // bytes
    std::uint64_t shared_limit;          // static + dynamic may not exceed this
    void** args;                         // args[i] points at the value of parameter i
    const ArrayArg* arrays;
    int num_arrays;
    int check_bounds;                    // copy arrays between guard pages (MINIGRAD_EMU_CHECK)
    std::uint64_t stack_bytes;           // per emulated thread
};

enum LaunchStatus : int {
    kOk = 0,
    kDeadlock = 1,        // a barrier or warp collective can never complete
    kFault = 2,           // illegal memory access, out of bounds, stack overflow, trap, assert
    kLimit = 3,           // a resource limit (shared memory) was exceeded
    kInterrupted = 4,     // Ctrl-C
    kSetupError = 5,      // the runtime could not allocate what it needs
};

}  // namespace mgemu

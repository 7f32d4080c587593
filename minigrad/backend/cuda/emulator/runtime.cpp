// runtime.cpp: runs CUDA kernels on one CPU thread with CUDA's execution model.
//
//   launch   = blocks one after another, in order x, then y, then z (deterministic);
//   block    = its threads are cooperative fibers (each has its own small stack) that the
//              scheduler below runs one at a time, in thread-id order;
//   a thread runs until it exits or reaches a point where it must wait for other threads:
//              __syncthreads() (all live threads of the block) or a warp collective (the live
//              lanes of its warp named in the mask). The last thread to arrive releases the
//              others; a thread that exited counts as arrived (as on Volta and later GPUs).
//   deadlock = no thread can run and some have not exited: the launch stops with a report of
//              what every thread waits on, instead of hanging.
// A fault inside a kernel (bad pointer, stack overflow, division by zero, __trap, assert) is
// caught with a signal handler and turned into an error message for Python.
#include "runtime.h"

#include <algorithm>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

namespace mgemu {

uint3 thread_idx;
uint3 block_idx;
dim3 block_dim;
dim3 grid_dim;
unsigned char* dynamic_shared_base;

namespace {

constexpr unsigned kWarp = 32;
constexpr unsigned char kGarbage = 0xFF;  // uninitialised memory reads as NaN (floats) or -1 (ints)

// ---------------------------------------------------------------------------------------
// Fibers: a stack plus a saved context. On x86-64 the switch saves the callee-saved registers
// and the stack pointer (the FP control words are left alone: kernels do not change rounding
// modes, and every fiber runs on the same OS thread); elsewhere ucontext does the job (slower:
// swapcontext makes a system call).
// ---------------------------------------------------------------------------------------
#if defined(__x86_64__) && !defined(MGEMU_UCONTEXT)

extern "C" void mgemu_switch_context(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .hidden mgemu_switch_context
    .type mgemu_switch_context, @function
mgemu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size mgemu_switch_context, .-mgemu_switch_context
)");

struct Context {
    void* sp = nullptr;
};

void context_start(Context& c, char* stack_lo, std::size_t size, void (*entry)()) {
    // Build the frame mgemu_switch_context pops: six registers, then `ret` jumps to entry with
    // the stack aligned as if entry had been called.
    auto* top = reinterpret_cast<std::uint64_t*>(
        (reinterpret_cast<std::uintptr_t>(stack_lo + size)) & ~std::uintptr_t(15));
    top[-1] = 0;  // entry's return address: it never returns
    top[-2] = reinterpret_cast<std::uint64_t>(entry);
    for (int i = 3; i <= 8; ++i) top[-i] = 0;  // rbp rbx r12 r13 r14 r15
    c.sp = &top[-8];
}

inline void context_switch(Context& from, Context& to) { mgemu_switch_context(&from.sp, to.sp); }

#else

struct Context {
    ucontext_t uc;
};

void context_start(Context& c, char* stack_lo, std::size_t size, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack_lo;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}

inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

#endif

std::size_t page_size() {
    static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return size;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

struct Fiber {
    char* mapping;        // [guard page][stack]
    std::size_t mapped;
    Context context;
    char* stack() const { return mapping + page_size(); }
    std::size_t stack_bytes() const { return mapped - page_size(); }
};

// ---------------------------------------------------------------------------------------
// Launch state. Global (not on the stack) because a fault leaves through siglongjmp.
// ---------------------------------------------------------------------------------------
enum State : unsigned char { kNotStarted, kRunnable, kRunning, kAtBarrier, kAtWarp, kExited };

struct Thread {
    uint3 idx;
    unsigned linear;
    State state;
    Fiber* fiber;
    // what it waits on
    int barrier_kind;
    int predicate;
    const char* file;
    int line;
    WarpCall* call;  // lives on the waiting thread's own stack
    int barrier_result;
};

struct SharedVar {
    const volatile void* address;
    std::size_t bytes;
    const char* name;
    const char* file;
    int line;
    std::uint64_t launch;  // last launch that counted it
    std::uint64_t block;   // last block that filled it with garbage
};

struct Region {  // check mode: a copy of one or more overlapping array arguments between guard pages
    char* mapping;
    std::size_t mapped;
    char* data;
    std::uint64_t original;
    std::uint64_t bytes;
    bool writable;
};

struct Fault {
    int signal;
    int code;
    std::uintptr_t address;
    int is_write;  // -1 unknown
    Thread* thread;
};

struct WarpState {         // bit i = lane i
    unsigned live;         // exists and has not exited
    unsigned at_call;      // waits at a warp collective
    unsigned at_active;    // ... which is __activemask()
    unsigned at_barrier;   // waits at a block barrier
};

struct Launch {
    const LaunchDesc* desc = nullptr;
    const KernelDesc* kernel = nullptr;
    void** args = nullptr;
    std::vector<Thread> threads;
    unsigned num_threads = 0;
    unsigned live = 0;
    unsigned at_barrier = 0;
    std::vector<WarpState> warps;
    unsigned scan = 0;                   // id of the running thread
    Thread* current = nullptr;
    Context scheduler;
    std::uint64_t id = 0;
    std::uint64_t block_serial = 0;
    std::uint64_t static_shared = 0;
    std::string static_shared_detail;
    std::vector<Region> regions;
    std::vector<void*> relocated_values;
    std::vector<void*> relocated_args;
    volatile sig_atomic_t interrupted = 0;
    Fault fault{};
    int status = kOk;
    std::string message;
    sigjmp_buf exit;
};

Launch L;
std::vector<Fiber*> all_fibers;
std::vector<Fiber*> free_fibers;
std::size_t fiber_stack_bytes = 0;
std::vector<SharedVar> shared_vars;
std::vector<SharedVar> file_scope_shared;
char* dynamic_mapping = nullptr;  // [dynamic shared memory][guard page]
std::size_t dynamic_mapped = 0;
std::string last_message;
long long clock_counter = 0;

// The thread that is inside mgemu_launch (signal handlers must ignore signals of others).
volatile pid_t launching_tid = 0;
char* alt_stack = nullptr;
constexpr std::size_t kAltStackBytes = 64 * 1024;

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buffer[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buffer, sizeof buffer, fmt, ap);
    va_end(ap);
    return buffer;
}

std::string kernel_name() { return L.kernel ? L.kernel->name : "?"; }

std::string where_block() {
    return format("kernel '%s', block (%u, %u, %u)", kernel_name().c_str(), block_idx.x, block_idx.y, block_idx.z);
}

std::string where_thread(const Thread* t) {
    if (!t) return where_block() + ", outside any thread (in the emulator's scheduler)";
    return where_block() + format(", thread (%u, %u, %u)", t->idx.x, t->idx.y, t->idx.z);
}

[[noreturn]] void stop(int status, const std::string& message) {
    L.status = status;
    L.message = message;
    siglongjmp(L.exit, 1);
}

// ---------------------------------------------------------------------------------------
// Fiber pool
// ---------------------------------------------------------------------------------------
void free_all_fibers() {
    for (Fiber* f : all_fibers) {
        munmap(f->mapping, f->mapped);
        delete f;
    }
    all_fibers.clear();
    free_fibers.clear();
}

Fiber* acquire_fiber() {
    if (!free_fibers.empty()) {
        Fiber* f = free_fibers.back();
        free_fibers.pop_back();
        return f;
    }
    std::size_t mapped = page_size() + round_up(fiber_stack_bytes, page_size());
    void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) stop(kSetupError, format("%s: cannot allocate a %zu-byte stack for a thread", where_block().c_str(), mapped));
    mprotect(p, page_size(), PROT_NONE);  // overflowing the stack faults here
    auto* f = new Fiber{static_cast<char*>(p), mapped, {}};
    all_fibers.push_back(f);
    return f;
}

void fiber_main();

// ---------------------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------------------
inline unsigned warp_of(const Thread& t) { return t.linear / kWarp; }
inline unsigned lane_of(const Thread& t) { return t.linear % kWarp; }

// The scheduler's pass over the block: threads run in id order, each until it exits or waits;
// L.scan is the id of the thread running now. Whoever stops running (a thread that exits or
// waits) hands over directly to the next thread of the pass that can run, so the scheduler's
// own loop (run_block) only starts passes and detects deadlocks.
int next_runnable(unsigned from) {
    for (unsigned i = from; i < L.num_threads; ++i)
        if (L.threads[i].state == kNotStarted || L.threads[i].state == kRunnable) return static_cast<int>(i);
    return -1;
}

// Make `t` the running thread (its fiber is started if it has none yet).
Thread& enter(unsigned id) {
    Thread& t = L.threads[id];
    L.scan = id;
    L.current = &t;
    thread_idx = t.idx;
    if (!t.fiber) {
        t.fiber = acquire_fiber();
        context_start(t.fiber->context, t.fiber->stack(), t.fiber->stack_bytes(), fiber_main);
    }
    t.state = kRunning;
    return t;
}

// Leave the fiber whose context is `self` for the next thread of the pass, or for the scheduler.
void hand_over(Context& self) {
    if (L.interrupted) stop(kInterrupted, where_block() + ": interrupted");
    int next = next_runnable(L.scan + 1);
    if (next >= 0) context_switch(self, enter(static_cast<unsigned>(next)).fiber->context);
    else context_switch(self, L.scheduler);
}

// The running thread waits until another thread marks it runnable (and enters it again).
void wait_here(Thread& t) { hand_over(t.fiber->context); }

void thread_exited(Thread& t);

// Every fiber runs this. When its thread exits, the next thread of the pass that has not started
// yet simply runs on the same stack (no context switch: elementwise kernels never switch).
void fiber_main() {
    for (;;) {
        Thread* t = L.current;
        L.kernel->invoke(L.args);
        Fiber* f = t->fiber;
        t->state = kExited;
        t->fiber = nullptr;
        thread_exited(*t);
        int next = next_runnable(L.scan + 1);
        if (next >= 0 && L.threads[next].state == kNotStarted && !L.interrupted) {
            L.threads[next].fiber = f;
            enter(static_cast<unsigned>(next));
            continue;
        }
        // Nothing runs on this stack any more (it is restarted from scratch when reused). The next
        // thread of the pass, if any, already has a stack of its own: one that had not started
        // would have been chained above, so hand_over does not hand this stack out while it runs.
        free_fibers.push_back(f);
        hand_over(f->context);
    }
}

inline unsigned lane_bit(const Thread& t) { return 1u << (t.linear % kWarp); }

const char* op_name(int op) {
    switch (op) {
        case kShflIdx: return "__shfl_sync";
        case kShflUp: return "__shfl_up_sync";
        case kShflDown: return "__shfl_down_sync";
        case kShflXor: return "__shfl_xor_sync";
        case kBallot: return "__ballot_sync";
        case kAny: return "__any_sync";
        case kAll: return "__all_sync";
        case kSyncWarp: return "__syncwarp";
        case kMatchAny: return "__match_any_sync";
        case kMatchAll: return "__match_all_sync";
        case kReduceAdd: return "__reduce_add_sync";
        case kReduceMin: return "__reduce_min_sync";
        case kReduceMax: return "__reduce_max_sync";
        case kReduceAnd: return "__reduce_and_sync";
        case kReduceOr: return "__reduce_or_sync";
        case kReduceXor: return "__reduce_xor_sync";
        case kActiveMask: return "__activemask";
    }
    return "a warp collective";
}

const char* barrier_name(int kind) {
    static const char* names[] = {"__syncthreads()", "__syncthreads_count()", "__syncthreads_and()", "__syncthreads_or()"};
    return names[kind];
}

std::string describe_wait(const Thread& t) {
    switch (t.state) {
        case kNotStarted: return "have not started";
        case kRunnable: return "are ready to run";
        case kRunning: return "are running";
        case kExited: return "have exited";
        case kAtBarrier: return format("wait at %s (%s:%d)", barrier_name(t.barrier_kind), t.file, t.line);
        case kAtWarp:
            return format("wait at %s with mask 0x%08x (%s:%d)", op_name(t.call->op), t.call->mask, t.call->file, t.call->line);
    }
    return "?";
}

// One line per distinct wait, listing the threads compactly: "threads 0-15, 32-47: wait at ...".
std::string describe_threads(const std::vector<unsigned>& ids) {
    std::vector<std::string> whats;
    std::vector<std::vector<unsigned>> who;
    for (unsigned id : ids) {
        std::string what = describe_wait(L.threads[id]);
        std::size_t k = 0;
        while (k < whats.size() && whats[k] != what) ++k;
        if (k == whats.size()) {
            whats.push_back(what);
            who.emplace_back();
        }
        who[k].push_back(id);
    }
    std::string out;
    for (std::size_t k = 0; k < whats.size(); ++k) {
        const std::vector<unsigned>& g = who[k];
        std::string list;
        int runs = 0;
        for (std::size_t i = 0; i < g.size();) {
            std::size_t j = i;
            while (j + 1 < g.size() && g[j + 1] == g[j] + 1) ++j;
            if (++runs > 8) {
                list += ", ...";
                break;
            }
            list += (list.empty() ? "" : ", ") + (i == j ? std::to_string(g[i]) : format("%u-%u", g[i], g[j]));
            i = j + 1;
        }
        out += format("\n  %s %s (%zu): %s", g.size() == 1 ? "thread" : "threads", list.c_str(), g.size(), whats[k].c_str());
    }
    if (block_dim.y > 1 || block_dim.z > 1) out += "\n  (thread numbers are linear ids: x + y*blockDim.x + z*blockDim.x*blockDim.y)";
    return out;
}

std::vector<unsigned> all_ids() {
    std::vector<unsigned> ids(L.num_threads);
    for (unsigned i = 0; i < L.num_threads; ++i) ids[i] = i;
    return ids;
}

[[noreturn]] void report_deadlock() {
    std::string hint;
    bool barrier = false, warp = false;
    for (const Thread& t : L.threads) {
        barrier |= t.state == kAtBarrier;
        warp |= t.state == kAtWarp;
    }
    if (barrier && warp)
        hint = "\nSome threads wait at a block barrier while others wait at a warp collective: a warp collective "
               "needs every live lane named in its mask, and __syncthreads() needs every live thread of the block.";
    else if (warp)
        hint = "\nA warp collective waits for lanes that are stuck at a different warp collective: is it inside "
               "a branch that not every lane in its mask takes?";
    stop(kDeadlock, where_block() + ": deadlock, no thread can continue:" + describe_threads(all_ids()) + hint);
}

// Every live thread has reached a block barrier: release them, if it is the same barrier.
void release_barrier() {
    const Thread* first = nullptr;
    int count = 0, all = 1, any = 0;
    for (const Thread& t : L.threads) {
        if (t.state != kAtBarrier) continue;
        if (!first) first = &t;
        if (t.barrier_kind != first->barrier_kind || t.line != first->line ||
            (t.file != first->file && std::strcmp(t.file, first->file) != 0))
            stop(kDeadlock, where_block() +
                                ": the threads of the block wait at different barriers, which CUDA does not allow "
                                "(every live thread must reach the same __syncthreads(); it is undefined behaviour "
                                "and hangs or corrupts data on a GPU):" +
                                describe_threads(all_ids()));
        count += t.predicate;
        all &= t.predicate;
        any |= t.predicate;
    }
    int result = first->barrier_kind == 1 ? count : first->barrier_kind == 2 ? all : first->barrier_kind == 3 ? any : 0;
    for (Thread& t : L.threads) {
        if (t.state != kAtBarrier) continue;
        t.state = kRunnable;
        t.barrier_result = result;
    }
    L.at_barrier = 0;
    for (WarpState& w : L.warps) w.at_barrier = 0;
}

// Which lane a shuffle reads from, as the PTX ISA defines shfl.sync (CUDA's __shfl*_sync pass
// c = ((32 - width) << 8) | clamp, with clamp 0 for "up" and 31 otherwise).
unsigned shuffle_source(int op, unsigned lane, int arg, int width) {
    unsigned segmask = static_cast<unsigned>(kWarp - width) & 31u;
    unsigned b = static_cast<unsigned>(arg) & 31u;
    unsigned clamp = op == kShflUp ? 0u : 31u;
    int max_lane = static_cast<int>((lane & segmask) | (clamp & ~segmask));
    int min_lane = static_cast<int>(lane & segmask);
    int j = static_cast<int>(lane);
    bool ok = true;
    switch (op) {
        case kShflIdx: j = min_lane | static_cast<int>(b & ~segmask); ok = j <= max_lane; break;
        case kShflUp: j = static_cast<int>(lane) - static_cast<int>(b); ok = j >= max_lane; break;
        case kShflDown: j = static_cast<int>(lane + b); ok = j <= max_lane; break;
        case kShflXor: j = static_cast<int>(lane ^ b); ok = j <= max_lane; break;
    }
    return ok ? static_cast<unsigned>(j) : lane;
}

template <class T>
T reduce_values(int op, T a, T b) {
    switch (op) {
        case kReduceAdd: return static_cast<T>(a + b);
        case kReduceMin: return a < b ? a : b;
        case kReduceMax: return a > b ? a : b;
        case kReduceAnd: return a & b;
        case kReduceOr: return a | b;
        default: return a ^ b;
    }
}

template <class T>
void reduce_group(Thread* members[], unsigned group, int op) {
    bool first = true;
    T acc{};
    for (unsigned lane = 0; lane < kWarp; ++lane) {
        if (!(group & (1u << lane))) continue;
        T v;
        std::memcpy(&v, members[lane]->call->value, sizeof v);
        acc = first ? v : reduce_values(op, acc, v);
        first = false;
    }
    for (unsigned lane = 0; lane < kWarp; ++lane)
        if (group & (1u << lane)) std::memcpy(members[lane]->call->result, &acc, sizeof acc);
}

// The lanes of `group` have all made the same warp call: compute every lane's result.
void complete_warp_call(unsigned warp, unsigned group) {
    Thread* members[kWarp] = {};
    for (unsigned lane = 0; lane < kWarp; ++lane)
        if (group & (1u << lane)) members[lane] = &L.threads[warp * kWarp + lane];
    const WarpCall& proto = *members[__builtin_ctz(group)]->call;
    int op = proto.op;
    unsigned votes = 0;
    if (op == kBallot || op == kAny || op == kAll)
        for (unsigned lane = 0; lane < kWarp; ++lane)
            if (members[lane]) {
                int pred;
                std::memcpy(&pred, members[lane]->call->value, sizeof pred);
                if (pred) votes |= 1u << lane;
            }
    switch (op) {
        case kShflIdx: case kShflUp: case kShflDown: case kShflXor:
            for (unsigned lane = 0; lane < kWarp; ++lane) {
                if (!members[lane]) continue;
                WarpCall* c = members[lane]->call;
                unsigned src = shuffle_source(op, lane, c->arg, c->width);
                if (!(group & (1u << src))) {
                    unsigned id = warp * kWarp + src;
                    const char* why = id >= L.num_threads ? "does not exist (the block is smaller)"
                                      : L.threads[id].state == kExited ? "has exited"
                                                                       : "is not in the mask";
                    stop(kFault, format("%s: lane %u of warp %u reads lane %u in %s (%s:%d), but lane %u %s; CUDA "
                                        "leaves such a value undefined",
                                        where_thread(members[lane]).c_str(), lane, warp, src, op_name(op), c->file,
                                        c->line, src, why));
                }
                std::memcpy(c->result, members[src]->call->value, sizeof c->value);
            }
            break;
        case kBallot: case kAny: case kAll:
            for (unsigned lane = 0; lane < kWarp; ++lane) {
                if (!members[lane]) continue;
                unsigned r = op == kBallot ? votes : op == kAny ? unsigned(votes != 0) : unsigned(votes == group);
                std::memcpy(members[lane]->call->result, &r, sizeof r);
            }
            break;
        case kSyncWarp:
            break;
        case kMatchAny: case kMatchAll: {
            bool all_equal = true;
            for (unsigned lane = 0; lane < kWarp; ++lane) {
                if (!members[lane]) continue;
                WarpCall* c = members[lane]->call;
                unsigned same = 0;
                for (unsigned other = 0; other < kWarp; ++other)
                    if (members[other] && std::memcmp(c->value, members[other]->call->value, c->size) == 0) same |= 1u << other;
                all_equal &= same == group;
                std::memcpy(c->result, &same, sizeof same);
            }
            if (op == kMatchAll)
                for (unsigned lane = 0; lane < kWarp; ++lane) {
                    if (!members[lane]) continue;
                    WarpCall* c = members[lane]->call;
                    unsigned r = all_equal ? c->mask : 0u;
                    std::memcpy(c->result, &r, sizeof r);
                    c->pred = all_equal;
                }
            break;
        }
        default:  // reductions over 32-bit integers
            if (proto.is_signed) reduce_group<int>(members, group, op);
            else reduce_group<unsigned>(members, group, op);
            break;
    }
    for (unsigned lane = 0; lane < kWarp; ++lane)
        if (members[lane]) members[lane]->state = kRunnable;
    L.warps[warp].at_call &= ~group;
}

bool same_call(const WarpCall& a, const WarpCall& b) {
    return a.op == b.op && a.mask == b.mask && a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

// Release the warp call that waits for `mask` in `warp` if every live lane of the mask is there.
void try_complete(unsigned warp, unsigned mask) {
    const WarpState& w = L.warps[warp];
    unsigned group = mask & w.live;
    // not there yet (or stuck elsewhere: the deadlock check reports it); lanes at __activemask()
    // have not reached this call yet either
    if (!group || (group & ~(w.at_call & ~w.at_active))) return;
    const WarpCall* proto = L.threads[warp * kWarp + __builtin_ctz(group)].call;
    for (unsigned lane = 0; lane < kWarp; ++lane) {
        if (!(group & (1u << lane))) continue;
        if (!same_call(*L.threads[warp * kWarp + lane].call, *proto)) {
            std::vector<unsigned> ids;
            for (unsigned l = 0; l < kWarp; ++l)
                if (warp * kWarp + l < L.num_threads) ids.push_back(warp * kWarp + l);
            stop(kDeadlock, where_block() +
                                format(": the lanes of warp %u meet at different warp collectives (or with different "
                                       "masks); every live lane named in a mask must make the same call:",
                                       warp) +
                                describe_threads(ids));
        }
    }
    complete_warp_call(warp, group);
}

// __activemask() has no mask to wait for. A GPU answers with the lanes that execute it together;
// here a lane waits until every live lane of its warp is waiting somewhere (or has exited), and
// the answer is the lanes that reached the same __activemask() call by then.
void try_complete_active(unsigned warp) {
    WarpState& w = L.warps[warp];
    if (!w.at_active || (w.live & ~(w.at_call | w.at_barrier))) return;  // some lane still runs
    unsigned at_call = w.at_active;
    while (at_call) {
        const WarpCall& first = *L.threads[warp * kWarp + __builtin_ctz(at_call)].call;
        unsigned same = 0;
        for (unsigned lane = 0; lane < kWarp; ++lane)
            if ((at_call & (1u << lane)) && same_call(*L.threads[warp * kWarp + lane].call, first)) same |= 1u << lane;
        for (unsigned lane = 0; lane < kWarp; ++lane) {
            if (!(same & (1u << lane))) continue;
            Thread& t = L.threads[warp * kWarp + lane];
            std::memcpy(t.call->result, &same, sizeof same);
            t.state = kRunnable;
        }
        w.at_call &= ~same;
        w.at_active &= ~same;
        at_call &= ~same;
    }
}

// A thread exited: it may have been the last one a barrier or a warp call waited for.
void thread_exited(Thread& t) {
    --L.live;
    if (L.live > 0 && L.at_barrier == L.live) release_barrier();
    unsigned warp = warp_of(t);
    WarpState& w = L.warps[warp];
    w.live &= ~lane_bit(t);
    try_complete_active(warp);
    unsigned waiting = w.at_call & ~w.at_active;
    while (waiting) {
        unsigned lane = static_cast<unsigned>(__builtin_ctz(waiting));
        try_complete(warp, L.threads[warp * kWarp + lane].call->mask);
        waiting &= ~(1u << lane) & w.at_call;  // a completion may have released others too
    }
}

void run_block() {
    unsigned n = L.num_threads;
    for (unsigned i = 0; i < n; ++i) {
        Thread& t = L.threads[i];
        t.state = kNotStarted;
        t.fiber = nullptr;
        t.call = nullptr;
    }
    L.warps.assign((n + kWarp - 1) / kWarp, WarpState{0xffffffffu, 0, 0, 0});
    if (n % kWarp) L.warps.back().live = (1u << (n % kWarp)) - 1;
    L.live = n;
    L.at_barrier = 0;
    while (L.live > 0) {
        int first = next_runnable(0);
        if (first < 0) report_deadlock();
        context_switch(L.scheduler, enter(static_cast<unsigned>(first)).fiber->context);
        L.current = nullptr;
        if (L.interrupted) stop(kInterrupted, where_block() + ": interrupted");
    }
}

// ---------------------------------------------------------------------------------------
// Memory: dynamic shared memory, check-mode copies of the array arguments
// ---------------------------------------------------------------------------------------
void prepare_dynamic_shared(std::size_t bytes) {
    std::size_t want = round_up(bytes, page_size()) + page_size();
    if (want > dynamic_mapped) {
        if (dynamic_mapping) munmap(dynamic_mapping, dynamic_mapped);
        void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            dynamic_mapping = nullptr;
            dynamic_mapped = 0;
            stop(kSetupError, format("kernel '%s': cannot allocate %zu bytes of dynamic shared memory", kernel_name().c_str(), bytes));
        }
        dynamic_mapping = static_cast<char*>(p);
        dynamic_mapped = want;
        mprotect(dynamic_mapping + want - page_size(), page_size(), PROT_NONE);
    }
    // End the buffer at the guard page (16-byte aligned start), so running off its end faults.
    char* guard = dynamic_mapping + dynamic_mapped - page_size();
    dynamic_shared_base = reinterpret_cast<unsigned char*>(guard - round_up(bytes, 16));
}

void release_regions() {
    for (Region& r : L.regions) munmap(r.mapping, r.mapped);
    L.regions.clear();
}

// Check mode: each group of overlapping array arguments is copied into its own mapping that
// ends in a guard page, the data ending within 16 bytes of it (its start keeps the original
// address modulo 16, so vector loads stay aligned). The bytes around the data hold garbage that
// is checked after the launch, which catches writes that stop short of the guard pages.
struct Group {
    std::uint64_t lo, hi;
    std::vector<int> members;  // indices into desc.arrays
    bool writable;
};
std::vector<Group> groups;

void relocate_arrays() {
    const LaunchDesc& d = *L.desc;
    std::vector<int> order(d.num_arrays);
    for (int i = 0; i < d.num_arrays; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return d.arrays[a].address < d.arrays[b].address; });
    groups.clear();
    for (int i : order) {
        const ArrayArg& a = d.arrays[i];
        std::uint64_t lo = a.address, hi = a.address + a.bytes;
        if (!groups.empty() && a.bytes > 0 && lo < groups.back().hi) {  // overlaps the previous group
            Group& g = groups.back();
            g.hi = std::max(g.hi, hi);
            g.members.push_back(i);
            g.writable |= a.writable != 0;
        } else {
            groups.push_back(Group{lo, hi, {i}, a.writable != 0});
        }
    }
    L.relocated_values.assign(d.kernel->num_params, nullptr);
    L.relocated_args.assign(d.args, d.args + d.kernel->num_params);
    std::size_t page = page_size();
    for (const Group& g : groups) {
        std::size_t bytes = g.hi - g.lo;
        std::size_t mapped = page + round_up(bytes + 16, page) + page;
        void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) stop(kSetupError, format("kernel '%s': cannot allocate %zu bytes for bounds checking", kernel_name().c_str(), mapped));
        char* mapping = static_cast<char*>(p);
        L.regions.push_back(Region{mapping, mapped, nullptr, g.lo, bytes, g.writable});
        mprotect(mapping, page, PROT_NONE);
        mprotect(mapping + mapped - page, page, PROT_NONE);
        char* end = mapping + mapped - page;
        char* data = end - bytes;
        data -= (reinterpret_cast<std::uintptr_t>(data) - g.lo) % 16;
        std::memset(mapping + page, kGarbage, mapped - 2 * page);
        if (bytes) std::memcpy(data, reinterpret_cast<const void*>(g.lo), bytes);
        L.regions.back().data = data;
        for (int i : g.members) {
            const ArrayArg& a = d.arrays[i];
            L.relocated_values[a.index] = data + (a.address - g.lo);
            L.relocated_args[a.index] = &L.relocated_values[a.index];
        }
    }
    L.args = L.relocated_args.data();
}

const char* group_label(std::size_t region, bool after) {
    // the member whose end (or start) is nearest the fault
    const Group& g = groups[region];
    const ArrayArg* best = &L.desc->arrays[g.members[0]];
    for (int i : g.members) {
        const ArrayArg& a = L.desc->arrays[i];
        if (after ? a.address + a.bytes > best->address + best->bytes : a.address < best->address) best = &a;
    }
    return best->label;
}

// After the launch: garbage around each copy must be intact; then copy the data back.
void finish_regions() {
    for (std::size_t r = 0; r < L.regions.size(); ++r) {
        const Region& region = L.regions[r];
        char* first = region.mapping + page_size();
        char* last = region.mapping + region.mapped - page_size();
        for (char* p = first; p < region.data; ++p)
            if (static_cast<unsigned char>(*p) != kGarbage)
                stop(kFault, format("kernel '%s' wrote %td bytes before the start of %s (found by MINIGRAD_EMU_CHECK)",
                                    kernel_name().c_str(), region.data - p, group_label(r, false)));
        for (char* p = last - 1; p >= region.data + region.bytes; --p)
            if (static_cast<unsigned char>(*p) != kGarbage)
                stop(kFault, format("kernel '%s' wrote %td bytes past the end of %s (found by MINIGRAD_EMU_CHECK)",
                                    kernel_name().c_str(), p - (region.data + region.bytes) + 1, group_label(r, true)));
    }
    for (const Region& region : L.regions)
        if (region.writable && region.bytes) std::memcpy(reinterpret_cast<void*>(region.original), region.data, region.bytes);
}

// ---------------------------------------------------------------------------------------
// Signals: a fault in a kernel becomes an error message instead of killing Python.
// ---------------------------------------------------------------------------------------
const int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGINT};
struct sigaction previous[sizeof kSignals / sizeof kSignals[0]];
stack_t previous_alt_stack;

pid_t this_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

void on_signal(int sig, siginfo_t* info, void* context) {
    if (this_tid() != launching_tid) {  // not ours: hand it to whoever had it before
        for (std::size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
            if (kSignals[i] != sig) continue;
            const struct sigaction& old = previous[i];
            if (old.sa_flags & SA_SIGINFO) old.sa_sigaction(sig, info, context);
            else if (old.sa_handler == SIG_DFL) { sigaction(sig, &old, nullptr); raise(sig); }
            else if (old.sa_handler != SIG_IGN) old.sa_handler(sig);
        }
        return;
    }
    if (sig == SIGINT && !L.interrupted) {  // first Ctrl-C: stop at the next thread switch
        L.interrupted = 1;
        return;
    }
    int is_write = -1;
#if defined(__x86_64__)
    if (sig == SIGSEGV) is_write = (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
#else
    (void)context;
#endif
    L.fault = Fault{sig, info->si_code, reinterpret_cast<std::uintptr_t>(info->si_addr), is_write, L.current};
    siglongjmp(L.exit, 2);
}

void install_handlers() {
    if (!alt_stack) alt_stack = static_cast<char*>(std::malloc(kAltStackBytes));
    stack_t ss{};
    ss.ss_sp = alt_stack;
    ss.ss_size = kAltStackBytes;
    sigaltstack(&ss, &previous_alt_stack);
    struct sigaction action {};
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) sigaction(kSignals[i], &action, &previous[i]);
}

void restore_handlers() {
    for (std::size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) sigaction(kSignals[i], &previous[i], nullptr);
    sigaltstack(&previous_alt_stack, nullptr);
}

std::string access_kind() {
    return L.fault.is_write == 1 ? "write" : L.fault.is_write == 0 ? "read" : "access";
}

std::string describe_memory_fault() {
    std::uintptr_t a = L.fault.address;
    std::size_t page = page_size();
    for (const Fiber* f : all_fibers) {
        auto lo = reinterpret_cast<std::uintptr_t>(f->mapping);
        if (a >= lo && a < lo + page)
            return format("stack overflow: the thread used more than its %zu KB of stack (large local arrays live "
                          "there; set MINIGRAD_EMU_STACK_KB to give every thread more)",
                          f->stack_bytes() / 1024);
    }
    if (dynamic_mapping) {
        auto guard = reinterpret_cast<std::uintptr_t>(dynamic_mapping + dynamic_mapped - page);
        if (a >= guard && a < guard + page) {
            if (L.desc->dynamic_shared == 0)
                return format("%s of dynamic shared memory (extern __shared__), but the launch passed shared_mem=0", access_kind().c_str());
            return format("%s past the end of dynamic shared memory: the launch passed shared_mem=%llu bytes",
                          access_kind().c_str(), static_cast<unsigned long long>(L.desc->dynamic_shared));
        }
    }
    for (std::size_t r = 0; r < L.regions.size(); ++r) {
        const Region& region = L.regions[r];
        auto lo = reinterpret_cast<std::uintptr_t>(region.mapping);
        auto data = reinterpret_cast<std::uintptr_t>(region.data);
        if (a >= lo && a < lo + page)
            return format("out-of-bounds %s %zu bytes before the start of %s", access_kind().c_str(),
                          static_cast<std::size_t>(data - a), group_label(r, false));
        if (a >= lo + region.mapped - page && a < lo + region.mapped)
            return format("out-of-bounds %s %zu bytes past the end of %s", access_kind().c_str(),
                          static_cast<std::size_t>(a - (data + region.bytes)), group_label(r, true));
    }
    std::string out = format("illegal memory %s at address 0x%llx", access_kind().c_str(), static_cast<unsigned long long>(a));
    if (a < 65536) out += " (a null or garbage pointer?)";
    for (int i = 0; i < L.desc->num_arrays; ++i) {
        const ArrayArg& arr = L.desc->arrays[i];
        if (a >= arr.address + arr.bytes && a < arr.address + arr.bytes + (1u << 20))
            out += format(", %llu bytes past the end of %s", static_cast<unsigned long long>(a - arr.address - arr.bytes), arr.label);
    }
    if (!L.desc->check_bounds) out += "; run with MINIGRAD_EMU_CHECK=1 to check every array argument's bounds";
    return out;
}

void describe_fault() {
    std::string what;
    switch (L.fault.signal) {
        case SIGSEGV: case SIGBUS: what = describe_memory_fault(); break;
        case SIGFPE: what = "arithmetic exception (integer division by zero or overflow); a GPU would go on with an unspecified value"; break;
        case SIGILL: case SIGTRAP: what = "trap or illegal instruction"; break;
        case SIGABRT: what = "abort() was called"; break;
        case SIGINT: L.status = kInterrupted; L.message = where_block() + ": interrupted"; return;
        default: what = format("signal %d", L.fault.signal);
    }
    L.status = kFault;
    L.message = where_thread(L.fault.thread) + ": " + what;
}

// ---------------------------------------------------------------------------------------
// Denormals. CuPy compiles every module with -ftz=true (cupy/cuda/compiler.py appends it to
// the caller's options), so on a GPU single-precision arithmetic flushes denormal inputs and
// results to a zero of the same sign, while double precision keeps them. A CPU has one switch
// for both precisions (x86-64: MXCSR's flush-to-zero and denormals-are-zero bits; AArch64:
// FPCR.FZ), so a launch flushes when no parameter of the kernel is a double or points to
// doubles (the float32 half of minigrad's kernels) and keeps denormals otherwise. The switch
// belongs to the CPU thread, so it covers every fiber; it is restored when the launch ends.
// ---------------------------------------------------------------------------------------
bool flushes_denormals(const KernelDesc* k) {
    for (int i = 0; i < k->num_params; ++i) {
        const ParamDesc& p = k->params[i];
        bool is_double = p.kind == kFloat && p.size == 8;
        bool to_double = p.kind == kPointer && p.pointee_kind == kFloat && p.pointee_size == 8;
        if (is_double || to_double) return false;
    }
    return true;
}

#if defined(__x86_64__)
constexpr unsigned kFlushBits = 0x8040;  // MXCSR: FTZ (bit 15) | DAZ (bit 6)
unsigned long long float_mode() { return __builtin_ia32_stmxcsr(); }
void set_float_mode(unsigned long long m) { __builtin_ia32_ldmxcsr(static_cast<unsigned>(m)); }
#elif defined(__aarch64__)
constexpr unsigned long long kFlushBits = 1ull << 24;  // FPCR.FZ
unsigned long long float_mode() { unsigned long long m; asm volatile("mrs %0, fpcr" : "=r"(m)); return m; }
void set_float_mode(unsigned long long m) { asm volatile("msr fpcr, %0" : : "r"(m)); }
#else
constexpr unsigned long long kFlushBits = 0;  // elsewhere denormals are kept (docs/emulator.md)
unsigned long long float_mode() { return 0; }
void set_float_mode(unsigned long long) {}
#endif

}  // namespace

// ---------------------------------------------------------------------------------------
// What kernels call (through cuda_device.h)
// ---------------------------------------------------------------------------------------
int block_barrier(int kind, int predicate, const char* file, int line) {
    Thread* t = L.current;
    t->barrier_kind = kind;
    t->predicate = predicate != 0;
    t->file = file;
    t->line = line;
    t->state = kAtBarrier;
    L.warps[warp_of(*t)].at_barrier |= lane_bit(*t);
    try_complete_active(warp_of(*t));
    if (++L.at_barrier == L.live) release_barrier();
    if (t->state == kAtBarrier) wait_here(*t);
    else t->state = kRunning;
    return t->barrier_result;
}

void warp_collective(WarpCall* call) {
    Thread* t = L.current;
    unsigned lane = lane_of(*t), warp = warp_of(*t);
    if (!(call->mask & (1u << lane)))
        stop(kFault, where_thread(t) + format(": %s (%s:%d) is called with mask 0x%08x, which does not include the "
                                              "calling lane %u",
                                              op_name(call->op), call->file, call->line, call->mask, lane));
    if (call->op <= kShflXor && (call->width < 1 || call->width > 32 || (call->width & (call->width - 1))))
        stop(kFault, where_thread(t) + format(": %s (%s:%d) is called with width %d; it must be a power of two "
                                              "from 1 to 32",
                                              op_name(call->op), call->file, call->line, call->width));
    t->call = call;
    t->state = kAtWarp;
    L.warps[warp].at_call |= 1u << lane;
    if (call->op == kActiveMask) L.warps[warp].at_active |= 1u << lane;
    try_complete_active(warp);
    if (call->op != kActiveMask) try_complete(warp, call->mask);
    if (t->state == kAtWarp) wait_here(*t);
    else t->state = kRunning;
}

void note_shared(const volatile void* address, std::size_t bytes, const char* name, const char* file, int line) {
    if (!L.current) return;
    SharedVar* v = nullptr;
    for (SharedVar& s : shared_vars)
        if (s.address == address) { v = &s; break; }
    if (!v) {
        shared_vars.push_back(SharedVar{address, bytes, name, file, line, 0, 0});
        v = &shared_vars.back();
    }
    if (v->launch != L.id) {
        v->launch = L.id;
        L.static_shared += bytes;
        L.static_shared_detail += format("%s'%s' %zu bytes (%s:%d)", L.static_shared_detail.empty() ? "" : ", ", name, bytes, file, line);
        std::uint64_t total = L.static_shared + L.desc->dynamic_shared;
        if (total > L.desc->shared_limit)
            stop(kLimit, format("kernel '%s' uses %llu bytes of shared memory per block, more than the limit of %llu: "
                                "%llu static [%s] + %llu dynamic (shared_mem)",
                                kernel_name().c_str(), static_cast<unsigned long long>(total),
                                static_cast<unsigned long long>(L.desc->shared_limit),
                                static_cast<unsigned long long>(L.static_shared), L.static_shared_detail.c_str(),
                                static_cast<unsigned long long>(L.desc->dynamic_shared)));
    }
    if (v->block != L.block_serial) {
        v->block = L.block_serial;
        std::memset(const_cast<void*>(address), kGarbage, bytes);
    }
}

SharedNote::SharedNote(const volatile void* address, std::size_t bytes, const char* name) {
    file_scope_shared.push_back(SharedVar{address, bytes, name, "", 0, 0, 0});
}

void kernel_fail(const char* message, const char* file, int line) {
    stop(kFault, where_thread(L.current) + ": " + message + format(" (%s:%d)", file, line));
}

long long int clock64() { return ++clock_counter; }

}  // namespace mgemu

// ---------------------------------------------------------------------------------------
// Entry points for emulator/__init__.py (ctypes)
// ---------------------------------------------------------------------------------------
using namespace mgemu;

MGEMU_EXPORT int mgemu_launch(const LaunchDesc* d) {
    L.desc = d;
    L.kernel = d->kernel;
    L.args = d->args;
    L.status = kOk;
    L.message.clear();
    L.interrupted = 0;
    L.fault = Fault{};
    L.current = nullptr;
    L.id += 1;
    L.static_shared = 0;
    L.static_shared_detail.clear();
    block_dim = dim3(d->block[0], d->block[1], d->block[2]);
    grid_dim = dim3(d->grid[0], d->grid[1], d->grid[2]);
    block_idx = uint3{0, 0, 0};
    L.num_threads = d->block[0] * d->block[1] * d->block[2];
    L.threads.assign(L.num_threads, Thread{});
    for (unsigned i = 0; i < L.num_threads; ++i) {
        Thread& t = L.threads[i];
        t.linear = i;
        t.idx = uint3{i % d->block[0], (i / d->block[0]) % d->block[1], i / (d->block[0] * d->block[1])};
    }
    if (d->stack_bytes != fiber_stack_bytes) {
        free_all_fibers();
        fiber_stack_bytes = d->stack_bytes;
    }
    install_handlers();
    launching_tid = this_tid();
    const unsigned long long caller_float_mode = float_mode();
    set_float_mode(flushes_denormals(d->kernel) ? caller_float_mode | kFlushBits : caller_float_mode & ~kFlushBits);
    if (sigsetjmp(L.exit, 1) == 0) {
        prepare_dynamic_shared(d->dynamic_shared);
        if (d->check_bounds) relocate_arrays();
        for (std::uint64_t z = 0; z < d->grid[2]; ++z)
            for (std::uint64_t y = 0; y < d->grid[1]; ++y)
                for (std::uint64_t x = 0; x < d->grid[0]; ++x) {
                    block_idx = uint3{static_cast<unsigned>(x), static_cast<unsigned>(y), static_cast<unsigned>(z)};
                    L.block_serial += 1;
                    for (const SharedVar& s : file_scope_shared) std::memset(const_cast<void*>(s.address), kGarbage, s.bytes);
                    if (d->dynamic_shared) std::memset(dynamic_shared_base, kGarbage, d->dynamic_shared);
                    run_block();
                }
        if (d->check_bounds) finish_regions();
    } else if (L.fault.signal) {
        describe_fault();
    }
    set_float_mode(caller_float_mode);  // also after a fault: siglongjmp does not restore it
    launching_tid = 0;
    restore_handlers();
    release_regions();
    free_fibers = all_fibers;  // threads left waiting by an error give their stacks back
    L.current = nullptr;
    thread_idx = uint3{0, 0, 0};
    std::fflush(stdout);
    last_message = L.message;
    return L.status;
}

MGEMU_EXPORT const char* mgemu_message() { return last_message.c_str(); }

// emulator/__init__.py refuses a module whose runtime speaks another version of runtime.h.
MGEMU_EXPORT int mgemu_abi_version() { return 1; }

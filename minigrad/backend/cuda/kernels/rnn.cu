// rnn.cu: one time step of an Elman RNN, an LSTM and a GRU: the gates' elementwise math,
// forward and backward (derivation: docs/derivations/rnn.md).
//
// A step is two matrix products, xw = x W_ih^T and hw = h W_hh^T (B rows, G*H columns, G gates
// of H units in PyTorch's order: LSTM i, f, g, o; GRU r, z, n), which the wrapper in
// backend/cuda/__init__.py runs on cuBLAS, and then the math below, which touches every
// element once: one kernel instead of a dozen elementwise launches.  The backward kernels
// produce the gradients of the two products (da, or dgi and dgh for the GRU); the wrapper
// turns them into dx, dh, dW_ih, dW_hh with cuBLAS again and sums the bias gradients.
//
// Thread mapping (every kernel): one thread per unit (b, j) of the (B, H) state, grid-stride
// over the B*H units.  A thread reads its unit's G pre-activations, columns j, H + j, 2H + j,
// ... of row b, and writes its unit's outputs; consecutive threads take consecutive j, so
// every read and write of a warp is 32 consecutive elements (coalesced).  No thread shares
// anything with another: no shared memory, no barriers, no atomics.
//
// Biases: has_bias = 0 means none (the pointers are then never read).
#include "common.cuh"
#include "elementwise.cu"

// What every forward kernel reads: the step's two products xw, hw (B, G*H) and the biases.
template <typename T> struct Step {
    const T* xw;
    const T* hw;
    const T* b_ih;
    const T* b_hh;
    int has_bias;
    index_t B, H;

    // The G pre-activation pairs of unit (b, j): gi[k] = xw + b_ih and gh[k] = hw + b_hh at
    // column k H + j of row b.
    template <int G> __device__ __forceinline__ void inputs(index_t b, index_t j, T* gi, T* gh) const {
#pragma unroll
        for (int k = 0; k < G; ++k) {
            const index_t col = k * H + j, at = b * G * H + col;
            gi[k] = xw[at] + (has_bias ? b_ih[col] : T(0));
            gh[k] = hw[at] + (has_bias ? b_hh[col] : T(0));
        }
    }
};

// ---- Elman RNN: h' = tanh(a) or relu(a),  a = xw + hw + b_ih + b_hh --------------------------
template <typename T> __device__ void rnn_forward(const Step<T> s, int relu, T* __restrict__ out) {
    for (index_t u = global_thread(); u < s.B * s.H; u += grid_threads()) {
        T gi, gh;
        s.template inputs<1>(u / s.H, u % s.H, &gi, &gh);
        out[u] = relu ? Relu<T>()(gi + gh) : mg_tanh(gi + gh);
    }
}

// da = g (1 - h'^2) (tanh) or g [h' > 0] (relu)
template <typename T>
__device__ void rnn_backward(const T* __restrict__ g, const T* __restrict__ h_new, int relu, T* __restrict__ da,
                             index_t n) {
    for (index_t u = global_thread(); u < n; u += grid_threads())
        da[u] = relu ? ReluBackward<T>()(g[u], h_new[u]) : TanhBackward<T>()(g[u], h_new[u]);
}

// ---- LSTM ------------------------------------------------------------------------------------
// i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g),  c' = f c + i g,  h' = o tanh(c');
// h_new = h', c_new = c', tc = tanh(c') (B, H each);  the gates [i, f, g, o] (B, 4H), kept for
// backward, over the input's product (s.xw points to ``gates``: each thread reads its unit's
// four products before it writes its four gates, and no other thread touches them).
template <typename T>
__device__ void lstm_forward(const Step<T> s, T* gates, const T* __restrict__ c, T* __restrict__ h_new,
                             T* __restrict__ c_new, T* __restrict__ tc) {
    const index_t B = s.B, H = s.H;
    for (index_t u = global_thread(); u < B * H; u += grid_threads()) {
        const index_t b = u / H, j = u % H, row = b * 4 * H;
        T gi[4], gh[4], act[4];
        s.template inputs<4>(b, j, gi, gh);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            act[k] = k == 2 ? mg_tanh(gi[k] + gh[k]) : stable_sigmoid(gi[k] + gh[k]);
            gates[row + k * H + j] = act[k];
        }
        const T cu = act[1] * c[u] + act[0] * act[2], tcu = mg_tanh(cu);
        tc[u] = tcu;
        c_new[u] = cu;
        h_new[u] = act[3] * tcu;
    }
}

// dc' = gc + gh o (1 - tanh(c')^2);  da = [dc' g i(1-i), dc' c f(1-f), dc' i (1-g^2), gh tanh(c') o(1-o)];
// dc = dc' f.   g_h = dL/dh', g_c = dL/dc', tc = tanh(c') (B, H each), gates = [i, f, g, o] (B, 4H).
template <typename T>
__device__ void lstm_backward(const T* __restrict__ g_h, const T* __restrict__ g_c, const T* __restrict__ c,
                              const T* __restrict__ gates, const T* __restrict__ tc, T* __restrict__ da,
                              T* __restrict__ dc, index_t B, index_t H) {
    for (index_t u = global_thread(); u < B * H; u += grid_threads()) {
        const index_t b = u / H, j = u % H, row = b * 4 * H;
        const T i = gates[row + j], f = gates[row + H + j], g = gates[row + 2 * H + j];
        const T o = gates[row + 3 * H + j], tcu = tc[u], gh = g_h[u];
        const T dc_new = g_c[u] + gh * o * (T(1) - tcu * tcu);
        da[row + j] = dc_new * g * i * (T(1) - i);
        da[row + H + j] = dc_new * c[u] * f * (T(1) - f);
        da[row + 2 * H + j] = dc_new * i * (T(1) - g * g);
        da[row + 3 * H + j] = gh * tcu * o * (T(1) - o);
        dc[u] = dc_new * f;
    }
}

// ---- GRU (PyTorch's: the reset gate multiplies hw_n + b_hn) -----------------------------------
// r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r gh_n),  h' = (1 - z) n + z h,
// with gi = xw + b_ih and gh = hw + b_hh;  saved (B, 4H) = [r, z, n, gh_n], kept for backward.
template <typename T>
__device__ void gru_forward(const Step<T> s, const T* __restrict__ h, T* __restrict__ h_new, T* __restrict__ saved) {
    const index_t H = s.H;
    for (index_t u = global_thread(); u < s.B * H; u += grid_threads()) {
        const index_t b = u / H, j = u % H, srow = b * 4 * H;
        T gi[3], gh[3];
        s.template inputs<3>(b, j, gi, gh);
        const T r = stable_sigmoid(gi[0] + gh[0]), z = stable_sigmoid(gi[1] + gh[1]);
        const T n = mg_tanh(gi[2] + r * gh[2]);
        saved[srow + j] = r;
        saved[srow + H + j] = z;
        saved[srow + 2 * H + j] = n;
        saved[srow + 3 * H + j] = gh[2];
        h_new[u] = (T(1) - z) * n + z * h[u];
    }
}

// da_n = g (1 - z)(1 - n^2),  da_r = da_n gh_n r (1 - r),  da_z = g (h - n) z (1 - z);
// dgi = [da_r, da_z, da_n],  dgh = [da_r, da_z, r da_n],  g_z = g z (h's direct share of dh).
template <typename T>
__device__ void gru_backward(const T* __restrict__ g, const T* __restrict__ h, const T* __restrict__ saved,
                             T* __restrict__ dgi, T* __restrict__ dgh, T* __restrict__ g_z, index_t B, index_t H) {
    for (index_t u = global_thread(); u < B * H; u += grid_threads()) {
        const index_t b = u / H, j = u % H, row = b * 3 * H, srow = b * 4 * H;
        const T r = saved[srow + j], z = saved[srow + H + j], n = saved[srow + 2 * H + j];
        const T ghn = saved[srow + 3 * H + j], gu = g[u];
        const T da_n = gu * (T(1) - z) * (T(1) - n * n);
        const T da_r = da_n * ghn * r * (T(1) - r);
        const T da_z = gu * (h[u] - n) * z * (T(1) - z);
        dgi[row + j] = dgh[row + j] = da_r;
        dgi[row + H + j] = dgh[row + H + j] = da_z;
        dgi[row + 2 * H + j] = da_n;
        dgh[row + 2 * H + j] = da_n * r;
        g_z[u] = gu * z;
    }
}

// ---- exported kernels: <name>_f32 / <name>_f64 ----------------------------------------------
// The forward kernels take the products, the biases (has_bias = 0: none), then their own
// arguments (rnn: relu, out; lstm: c, h_new, c_new, tc; gru: h, h_new, saved), then the sizes
// B, H.  The LSTM's xw is not const: its gates are written over it.  The wrappers' step kernels (lstm_step_forward & co.) pass has_bias = 0: their xw
// already holds the biases (a layer adds them to all its steps' input products at once).
#define MG_STEP_ARGS(T) const T *xw, const T *hw, const T *b_ih, const T *b_hh, int has_bias
#define MG_STEP {xw, hw, b_ih, b_hh, has_bias, B, H}
#define MG_RNN_KERNELS(T, sfx)                                                                  \
    extern "C" __global__ void rnn_forward_##sfx(MG_STEP_ARGS(T), int relu, T* out, index_t B, \
                                                 index_t H) {                                   \
        const Step<T> s = MG_STEP;                                                              \
        rnn_forward(s, relu, out);                                                              \
    }                                                                                           \
    extern "C" __global__ void rnn_backward_##sfx(const T* g, const T* h_new, int relu, T* da, \
                                                  index_t n) {                                  \
        rnn_backward(g, h_new, relu, da, n);                                                    \
    }                                                                                           \
    extern "C" __global__ void lstm_forward_##sfx(T* xw, const T* hw, const T* b_ih,           \
                                                  const T* b_hh, int has_bias, const T* c,      \
                                                  T* h_new, T* c_new, T* tc, index_t B,         \
                                                  index_t H) {                                  \
        const Step<T> s = MG_STEP;                                                              \
        lstm_forward(s, xw, c, h_new, c_new, tc);                                               \
    }                                                                                           \
    extern "C" __global__ void gru_forward_##sfx(MG_STEP_ARGS(T), const T* h, T* h_new,        \
                                                 T* saved, index_t B, index_t H) {              \
        const Step<T> s = MG_STEP;                                                              \
        gru_forward(s, h, h_new, saved);                                                        \
    }                                                                                           \
    extern "C" __global__ void lstm_backward_##sfx(const T* g_h, const T* g_c, const T* c,     \
                                                   const T* gates, const T* tc, T* da, T* dc,   \
                                                   index_t B, index_t H) {                      \
        lstm_backward(g_h, g_c, c, gates, tc, da, dc, B, H);                                    \
    }                                                                                           \
    extern "C" __global__ void gru_backward_##sfx(const T* g, const T* h, const T* saved,      \
                                                  T* dgi, T* dgh, T* g_z, index_t B,            \
                                                  index_t H) {                                  \
        gru_backward(g, h, saved, dgi, dgh, g_z, B, H);                                         \
    }

MG_RNN_KERNELS(float, f32)
MG_RNN_KERNELS(double, f64)

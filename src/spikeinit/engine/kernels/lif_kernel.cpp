// Fused multi-step LIF: forward and hand-written backward over all T steps of one layer.
//
// Built on first use by spikeinit/neurons/compiled.py (g++ -O3 -fopenmp, loaded with ctypes;
// no torch headers, so it compiles in about a second). Tensors are contiguous (T, B, N) arrays;
// the per-neuron decay `beta` and threshold `theta` are arrays of N values (a per-layer value
// arrives broadcast). The membrane of every neuron stays in L1 for all T steps, so each layer
// reads its currents once and writes its spikes (and, when training, its membranes) once.
//
// The arithmetic follows the PyTorch reference in spikeinit/neurons/dynamics.py operation by
// operation, and the library is built with -ffp-contract=off, so the spikes are bit-identical.
//
// Equations (s[t] = H(u[t] - theta), u[-1] = u0, s[-1] = s0):
//   reset 0 subtract, order 0 delayed:   u[t] = beta*u[t-1] + I[t] - theta*s[t-1]
//   reset 0 subtract, order 1 immediate: u[t] = beta*(u[t-1] - theta*s[t-1]) + I[t]
//   reset 1 zero:                        u[t] = beta*u[t-1]*(1 - s[t-1]) + I[t]
//   reset 2 none:                        u[t] = beta*u[t-1] + I[t]

#include <cmath>
#include <cstdint>

namespace {

constexpr int64_t kChunk = 256;  // neurons whose state stays in registers/L1 across all T
// The backward can take the currents instead of the saved membranes and recompute u[t] of a
// chunk into a local buffer, for up to this many steps (Python checks T against it).
constexpr int64_t kRecomputeSteps = SPIKEINIT_RECOMPUTE_STEPS;

// The codes come from Python (spikeinit/engine/kernels/abi.py passes them as -D flags).
enum Reset { kSubtract = SPIKEINIT_RESET_SUBTRACT, kZero = SPIKEINIT_RESET_ZERO,
             kNone = SPIKEINIT_RESET_NONE };
enum Order { kDelayed = SPIKEINIT_ORDER_DELAYED, kImmediate = SPIKEINIT_ORDER_IMMEDIATE };
enum Surrogate { kFastSigmoid = SPIKEINIT_SURROGATE_FAST_SIGMOID, kAtan = SPIKEINIT_SURROGATE_ATAN };

template <typename S, int R, int O>
inline S integrate(S u, S s, S x, S beta, S theta) {
  if (R == kNone) return beta * u + x;
  if (R == kZero) return beta * u * (S(1) - s) + x;
  if (O == kDelayed) return beta * u + x - theta * s;
  return beta * (u - theta * s) + x;
}

template <typename S, int G>
inline S surrogate(S x, S slope) {
  if (G == kFastSigmoid) {
    S d = slope * std::fabs(x) + S(1);
    return S(1) / (d * d);
  }
  S z = S(M_PI / 2.0) * slope * x;
  return (slope / S(2)) / (S(1) + z * z);
}

struct Shape {
  int64_t steps, batch, neurons;
};

inline int pick_threads(const Shape& shape, int threads) {
  // Small layers are not worth waking the pool for.
  return shape.steps * shape.batch * shape.neurons < (int64_t(1) << 15) ? 1 : threads;
}

// Calls body(b, n0, width) for every sample b and chunk of neurons [n0, n0 + width), split
// over the threads.
template <typename Body>
void for_each_chunk(const Shape& shape, int threads, const Body& body) {
  const int64_t B = shape.batch, N = shape.neurons;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static) num_threads(pick_threads(shape, threads))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t n0 = c * kChunk;
      body(b, n0, (N - n0) < kChunk ? (N - n0) : kChunk);
    }
  }
}

template <typename S, int R, int O, bool SaveMembrane>
void forward(const S* current, S* spikes, S* membrane, const S* beta, const S* theta,
             const S* u0, const S* s0, S* u_last, Shape shape, int threads) {
  const int64_t T = shape.steps, B = shape.batch, N = shape.neurons;
  for_each_chunk(shape, threads, [&](int64_t b, int64_t n0, int64_t width) {
    S u[kChunk], s[kChunk];
    // Null checks stay outside the loops (see backward_step on masked loads).
    if (u0) for (int64_t i = 0; i < width; ++i) u[i] = u0[b * N + n0 + i];
    else for (int64_t i = 0; i < width; ++i) u[i] = S(0);
    if (s0) for (int64_t i = 0; i < width; ++i) s[i] = s0[b * N + n0 + i];
    else for (int64_t i = 0; i < width; ++i) s[i] = S(0);
    const S* bt = beta + n0;
    const S* th = theta + n0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = (t * B + b) * N + n0;
      const S* x = current + row;
      S* out = spikes + row;
      for (int64_t i = 0; i < width; ++i) {
        const S v = integrate<S, R, O>(u[i], s[i], x[i], bt[i], th[i]);
        const S fired = v > th[i] ? S(1) : S(0);
        u[i] = v;
        s[i] = fired;
        out[i] = fired;
        if (SaveMembrane) membrane[row + i] = v;
      }
    }
    if (u_last)
      for (int64_t i = 0; i < width; ++i) u_last[b * N + n0 + i] = u[i];
  });
}

// One reverse step for a chunk of neurons. a_next holds dL/du[t+1] on entry and dL/du[t] on
// exit; u_here holds u[t] on entry and u[t-1] on exit; extra is dL/du[T-1] from the returned
// state (zero after the last step). Branch-free so that the compiler vectorizes it. Every
// pointer must be valid: a vectorized select from a null pointer becomes a masked load, which
// is over ten times slower on x86 (a fault-suppression assist on every iteration).
template <typename S, int R, int O, int G, bool Detach, bool SpikesFromMembrane>
inline void backward_step(int64_t width, const S* __restrict__ gs,
                          const S* __restrict__ prev_u, const S* __restrict__ prev_s,
                          const S* __restrict__ bt,
                          const S* __restrict__ th, S slope, S* __restrict__ a_next,
                          S* __restrict__ u_here, S* __restrict__ extra, S* __restrict__ gb,
                          S* __restrict__ gt, S* __restrict__ grad_current) {
  for (int64_t i = 0; i < width; ++i) {
    const S u = u_here[i];
    const S fired = u > th[i] ? S(1) : S(0);
    const S u_prev = prev_u[i];
    const S s_prev = SpikesFromMembrane ? (u_prev > th[i] ? S(1) : S(0)) : prev_s[i];
    u_here[i] = u_prev;
    const S d = surrogate<S, G>(u - th[i], slope);
    S g = gs[i];
    if (!Detach) {
      if (R == kSubtract) g -= (O == kDelayed ? th[i] : bt[i] * th[i]) * a_next[i];
      if (R == kZero) g -= bt[i] * u * a_next[i];
    }
    const S carry = R == kZero ? bt[i] * (S(1) - fired) : bt[i];
    const S a = g * d + carry * a_next[i] + extra[i];
    grad_current[i] = a;
    if (R == kSubtract && O == kImmediate) gb[i] += a * (u_prev - th[i] * s_prev);
    else if (R == kZero) gb[i] += a * u_prev * (S(1) - s_prev);
    else gb[i] += a * u_prev;
    gt[i] -= g * d;
    if (R == kSubtract) gt[i] -= a * (O == kDelayed ? s_prev : bt[i] * s_prev);
    a_next[i] = a;
    extra[i] = S(0);
  }
}

// Reverse-mode recursion. With a[t] = dL/du[t] (all paths) and g[t] = dL/ds[t] (direct, plus
// the reset path into u[t+1] unless the reset is detached):
//   g[t] = gS[t] + dU(t+1)/ds[t] * a[t+1]
//   a[t] = g[t] * h'(u[t] - theta) + dU(t+1)/du[t] * a[t+1]     (+ g_u_last at t = T-1)
//          (+ gU[t], the gradient of the returned membranes, when grad_membrane is given)
//   dL/dI[t] = a[t],  dL/dbeta += a[t] * du[t]/dbeta,
//   dL/dtheta += -g[t] * h'(u[t] - theta) + a[t] * du[t]/dtheta
// With `recompute`, `membrane` holds the currents I[t] instead, and each chunk first runs the
// forward recursion (the same arithmetic as `forward`, so the same u[t]) into a local buffer:
// the forward pass then writes no membranes, a third less memory traffic.
template <typename S, int R, int O, int G, bool Detach>
void backward(const S* grad_spikes, const S* membrane, const S* beta, const S* theta,
              const S* u0, const S* s0, const S* grad_u_last, const S* grad_membrane,
              S* grad_current,
              S* grad_beta, S* grad_theta, S* grad_u0, S* grad_s0, S slope, Shape shape,
              bool recompute, int threads) {
  const int64_t T = shape.steps, B = shape.batch, N = shape.neurons;
  for_each_chunk(shape, threads, [&](int64_t b, int64_t n0, int64_t width) {
    const int64_t state = b * N + n0;
    const S* bt = beta + n0;
    const S* th = theta + n0;
    S recomputed[kRecomputeSteps * kChunk];
    if (recompute) {
      S u[kChunk], s[kChunk];
      if (u0) for (int64_t i = 0; i < width; ++i) u[i] = u0[state + i];
      else for (int64_t i = 0; i < width; ++i) u[i] = S(0);
      if (s0) for (int64_t i = 0; i < width; ++i) s[i] = s0[state + i];
      else for (int64_t i = 0; i < width; ++i) s[i] = S(0);
      for (int64_t t = 0; t < T; ++t) {
        const S* x = membrane + (t * B + b) * N + n0;
        S* out = recomputed + t * kChunk;
        for (int64_t i = 0; i < width; ++i) {
          const S v = integrate<S, R, O>(u[i], s[i], x[i], bt[i], th[i]);
          s[i] = v > th[i] ? S(1) : S(0);
          u[i] = v;
          out[i] = v;
        }
      }
    }
    // u[t] of this chunk
    auto u_row = [&](int64_t t) -> const S* {
      return recompute ? recomputed + t * kChunk : membrane + (t * B + b) * N + n0;
    };
    S a_next[kChunk], gb[kChunk], gt[kChunk], u_here[kChunk], extra[kChunk], zeros[kChunk];
    const S* u_last_row = u_row(T - 1);
    for (int64_t i = 0; i < width; ++i) {
      zeros[i] = S(0);
      a_next[i] = S(0);
      gb[i] = S(0);
      gt[i] = S(0);
      u_here[i] = u_last_row[i];
    }
    const S* last = grad_u_last ? grad_u_last + state : zeros;
    for (int64_t i = 0; i < width; ++i) extra[i] = last[i];
    for (int64_t t = T - 1; t >= 1; --t) {
      const int64_t row = (t * B + b) * N + n0;
      if (grad_membrane)
        for (int64_t i = 0; i < width; ++i) extra[i] += grad_membrane[row + i];
      backward_step<S, R, O, G, Detach, true>(width, grad_spikes + row, u_row(t - 1),
                                              zeros, bt, th, slope, a_next, u_here, extra, gb,
                                              gt, grad_current + row);
    }
    const int64_t row0 = b * N + n0;
    if (grad_membrane)
      for (int64_t i = 0; i < width; ++i) extra[i] += grad_membrane[row0 + i];
    backward_step<S, R, O, G, Detach, false>(width, grad_spikes + row0,
                                             u0 ? u0 + state : zeros, s0 ? s0 + state : zeros,
                                             bt, th, slope, a_next, u_here, extra, gb, gt,
                                             grad_current + row0);
    if (grad_beta) for (int64_t i = 0; i < width; ++i) grad_beta[state + i] = gb[i];
    if (grad_theta) for (int64_t i = 0; i < width; ++i) grad_theta[state + i] = gt[i];
    const S* start_u = u0 ? u0 + state : zeros;
    const S* start_s = s0 ? s0 + state : zeros;
    if (grad_u0)
      for (int64_t i = 0; i < width; ++i)
        grad_u0[state + i] = (R == kZero ? bt[i] * (S(1) - start_s[i]) : bt[i]) * a_next[i];
    if (grad_s0)
      for (int64_t i = 0; i < width; ++i) {
        S gs0 = S(0);
        if (!Detach && R == kSubtract) gs0 = -(O == kDelayed ? th[i] : bt[i] * th[i]) * a_next[i];
        if (!Detach && R == kZero) gs0 = -bt[i] * start_u[i] * a_next[i];
        grad_s0[state + i] = gs0;
      }
  });
}

template <typename S, int R, int O>
int dispatch_forward(const S* current, S* spikes, S* membrane, const S* beta, const S* theta,
                     const S* u0, const S* s0, S* u_last, Shape shape, int threads) {
  if (membrane)
    forward<S, R, O, true>(current, spikes, membrane, beta, theta, u0, s0, u_last, shape,
                           threads);
  else
    forward<S, R, O, false>(current, spikes, membrane, beta, theta, u0, s0, u_last, shape,
                            threads);
  return 0;
}

template <typename S>
int forward_any(const S* current, S* spikes, S* membrane, const S* beta, const S* theta,
                const S* u0, const S* s0, S* u_last, int64_t T, int64_t B, int64_t N, int reset,
                int order, int threads) {
  const Shape shape{T, B, N};
  if (reset == kSubtract && order == kDelayed)
    return dispatch_forward<S, kSubtract, kDelayed>(current, spikes, membrane, beta, theta, u0, s0,
                                             u_last, shape, threads);
  if (reset == kSubtract)
    return dispatch_forward<S, kSubtract, kImmediate>(current, spikes, membrane, beta, theta, u0, s0,
                                             u_last, shape, threads);
  if (reset == kZero)
    return dispatch_forward<S, kZero, kDelayed>(current, spikes, membrane, beta, theta, u0, s0, u_last,
                                         shape, threads);
  if (reset == kNone)
    return dispatch_forward<S, kNone, kDelayed>(current, spikes, membrane, beta, theta, u0, s0, u_last,
                                         shape, threads);
  return 1;
}

template <typename S, int R, int O, int G>
int dispatch_backward(const S* gs, const S* mem, const S* beta, const S* theta, const S* u0,
                      const S* s0, const S* gul, const S* gm, S* gi, S* gb, S* gt, S* gu0, S* gs0, S slope,
                      Shape shape, int detach, bool recompute, int threads) {
  if (detach)
    backward<S, R, O, G, true>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt, gu0, gs0, slope,
                               shape, recompute, threads);
  else
    backward<S, R, O, G, false>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt, gu0, gs0, slope,
                                shape, recompute, threads);
  return 0;
}

template <typename S, int G>
int backward_reset(const S* gs, const S* mem, const S* beta, const S* theta, const S* u0,
                   const S* s0, const S* gul, const S* gm, S* gi, S* gb, S* gt, S* gu0, S* gs0, S slope,
                   Shape shape, int reset, int order, int detach, bool recompute,
                   int threads) {
  if (reset == kSubtract && order == kDelayed)
    return dispatch_backward<S, kSubtract, kDelayed, G>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt,
                                                 gu0, gs0, slope, shape, detach, recompute, threads);
  if (reset == kSubtract)
    return dispatch_backward<S, kSubtract, kImmediate, G>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt,
                                                 gu0, gs0, slope, shape, detach, recompute, threads);
  if (reset == kZero)
    return dispatch_backward<S, kZero, kDelayed, G>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt,
                                             gu0, gs0, slope, shape, detach, recompute, threads);
  if (reset == kNone)
    return dispatch_backward<S, kNone, kDelayed, G>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt,
                                             gu0, gs0, slope, shape, detach, recompute, threads);
  return 1;
}

template <typename S>
int backward_any(const S* gs, const S* mem, const S* beta, const S* theta, const S* u0,
                 const S* s0, const S* gul, const S* gm, S* gi, S* gb, S* gt, S* gu0, S* gs0, int64_t T,
                 int64_t B, int64_t N, int reset, int order, int detach, int surrogate_kind,
                 double slope, int recompute, int threads) {
  const Shape shape{T, B, N};
  if (recompute && T > kRecomputeSteps) return 2;
  if (surrogate_kind == kFastSigmoid)
    return backward_reset<S, kFastSigmoid>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt, gu0,
                                           gs0, S(slope), shape, reset, order, detach,
                                           recompute != 0, threads);
  if (surrogate_kind == kAtan)
    return backward_reset<S, kAtan>(gs, mem, beta, theta, u0, s0, gul, gm, gi, gb, gt, gu0, gs0,
                                    S(slope), shape, reset, order, detach, recompute != 0,
                                    threads);
  return 1;
}

}  // namespace

extern "C" {

int spikeinit_abi_version() { return SPIKEINIT_ABI_VERSION; }

#define SPIKEINIT_DEFINE(SUFFIX, S)                                                            \
  int lif_forward_##SUFFIX(const S* current, S* spikes, S* membrane, const S* beta,            \
                           const S* theta, const S* u0, const S* s0, S* u_last, int64_t T,     \
                           int64_t B, int64_t N, int reset, int order, int threads) {          \
    return forward_any<S>(current, spikes, membrane, beta, theta, u0, s0, u_last, T, B, N,     \
                          reset, order, threads);                                              \
  }                                                                                            \
  int lif_backward_##SUFFIX(const S* grad_spikes, const S* membrane, const S* beta,            \
                            const S* theta, const S* u0, const S* s0, const S* grad_u_last,    \
                            const S* grad_membrane, S* grad_current, S* grad_beta, S* grad_theta, S* grad_u0,          \
                            S* grad_s0, int64_t T, int64_t B, int64_t N, int reset, int order, \
                            int detach, int surrogate_kind, double slope, int recompute,       \
                            int threads) {                                                     \
    return backward_any<S>(grad_spikes, membrane, beta, theta, u0, s0, grad_u_last,            \
                           grad_membrane, grad_current, grad_beta, grad_theta, grad_u0, grad_s0, T, B, N,     \
                           reset, order, detach, surrogate_kind, slope, recompute, threads);   \
  }

SPIKEINIT_DEFINE(f32, float)
SPIKEINIT_DEFINE(f64, double)

}  // extern "C"

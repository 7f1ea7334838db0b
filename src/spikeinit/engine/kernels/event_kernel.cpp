// Event-driven synapses: y = x W^T + b computed from the nonzero inputs only.
//
// For a sparse input row (spikes: most entries 0), y[o] = b[o] + sum_{j: x[j] != 0} x[j] * W[o, j].
// With W^T stored row-major ((in, out), one contiguous row per input neuron), each event adds
// one contiguous weight row, so the work is rate * in * out per row instead of in * out. The
// output is processed in blocks of kBlock columns whose accumulators stay in vector registers.
// Built together with lif_kernel.cpp (see spikeinit/neurons/compiled.py).

#include <cstdint>
#include <vector>

namespace {

constexpr int64_t kBlock = 64;

template <int64_t Width>
inline void accumulate_block(const int32_t* events, const float* values, int64_t count,
                             const float* weight_t, int64_t out_features, int64_t column,
                             float* out) {
  float acc[Width];
  for (int64_t i = 0; i < Width; ++i) acc[i] = out[i];
  for (int64_t e = 0; e < count; ++e) {
    const float* row = weight_t + int64_t(events[e]) * out_features + column;
    const float v = values[e];
    if (v == 1.0f) {
      for (int64_t i = 0; i < Width; ++i) acc[i] += row[i];
    } else {
      for (int64_t i = 0; i < Width; ++i) acc[i] += v * row[i];
    }
  }
  for (int64_t i = 0; i < Width; ++i) out[i] = acc[i];
}

inline void accumulate_tail(const int32_t* events, const float* values, int64_t count,
                            const float* weight_t, int64_t out_features, int64_t column,
                            int64_t width, float* out) {
  for (int64_t e = 0; e < count; ++e) {
    const float* row = weight_t + int64_t(events[e]) * out_features + column;
    for (int64_t i = 0; i < width; ++i) out[i] += values[e] * row[i];
  }
}

}  // namespace

extern "C" {

// x: (rows, in) row-major; weight_t: (in, out); bias: (out,) or null; out: (rows, out).
int event_linear_f32(const float* x, const float* weight_t, const float* bias, float* out,
                     int64_t rows, int64_t in_features, int64_t out_features, int threads) {
  if (in_features > INT32_MAX) return 1;
#pragma omp parallel num_threads(threads)
  {
    std::vector<int32_t> events(in_features);
    std::vector<float> values(in_features);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * in_features;
      int64_t count = 0;
      for (int64_t j = 0; j < in_features; ++j) {
        events[count] = int32_t(j);
        values[count] = xr[j];
        count += xr[j] != 0.0f;
      }
      float* yr = out + r * out_features;
      if (bias) for (int64_t o = 0; o < out_features; ++o) yr[o] = bias[o];
      else for (int64_t o = 0; o < out_features; ++o) yr[o] = 0.0f;
      int64_t column = 0;
      for (; column + kBlock <= out_features; column += kBlock)
        accumulate_block<kBlock>(events.data(), values.data(), count, weight_t, out_features,
                                 column, yr + column);
      if (column < out_features)
        accumulate_tail(events.data(), values.data(), count, weight_t, out_features, column,
                        out_features - column, yr + column);
    }
  }
  return 0;
}

// dst (cols, rows) = src (rows, cols)^T, in square tiles that stay in L1 while they are
// read along rows and written along columns.
int transpose_f32(const float* src, float* dst, int64_t rows, int64_t cols, int threads) {
  constexpr int64_t kTile = 32;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t i0 = 0; i0 < rows; i0 += kTile) {
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t i1 = i0 + kTile < rows ? i0 + kTile : rows;
      const int64_t j1 = j0 + kTile < cols ? j0 + kTile : cols;
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) dst[j * rows + i] = src[i * cols + j];
    }
  }
  return 0;
}

}  // extern "C"

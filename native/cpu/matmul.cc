// matmul: y[t, n] = sum_k x[t, k] * w[n, k], x f32, w f32/f16/bf16/q8_0 (one row per output).
// Decode (T = 1) is a matvec bound by streaming w once; threads split the output rows.
#include <vector>

#include "backend.h"
#include "cpu/dequant.h"

namespace fuselm {

static void matmul_reference(const MatmulArgs& a) {
  const size_t rb = row_bytes(a.w_dtype, a.K);
  std::vector<float> wrow(size_t(a.K));
  for (int64_t n = 0; n < a.N; n++) {
    dequant_row_ref(static_cast<const uint8_t*>(a.w) + size_t(n) * rb, a.w_dtype, a.K, wrow.data());
    for (int64_t t = 0; t < a.T; t++) {
      double s = 0;
      const float* x = a.x + t * a.K;
      for (int64_t k = 0; k < a.K; k++) s += double(x[k]) * wrow[size_t(k)];
      a.y[t * a.N + n] = float(s);
    }
  }
}

void matmul_cpu(const MatmulArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return matmul_reference(a);
  const size_t rb = row_bytes(a.w_dtype, a.K);
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = (a.N + kRowsPerTask - 1) / kRowsPerTask;
  e.pool->run(tasks, [&](int64_t task, int) {
    std::vector<float> wrow(size_t(a.K));
    const int64_t n_end = std::min(a.N, (task + 1) * kRowsPerTask);
    for (int64_t n = task * kRowsPerTask; n < n_end; n++) {
      dequant_row_ref(static_cast<const uint8_t*>(a.w) + size_t(n) * rb, a.w_dtype, a.K, wrow.data());
      for (int64_t t = 0; t < a.T; t++) {
        const float* x = a.x + t * a.K;
        float s = 0;
        for (int64_t k = 0; k < a.K; k++) s += x[k] * wrow[size_t(k)];
        a.y[t * a.N + n] = s;
      }
    }
  });
}

}  // namespace fuselm

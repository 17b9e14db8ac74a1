// Bench cases: matmul_cuda (the dispatcher: GEMV for a few rows, GEMM for many) at
// torch_peers.py's F.linear shapes, the Llama-3-8B projections (N, K) = (4096, 4096),
// (14336, 4096), (4096, 14336) for M = 1, 16, 1024, 4096 tokens (--quick: 1 and 4096), with
// bf16, f16, q8_0, q4_0, q4_k, q5_k and q6_k weights (without --quick also q4_1, q5_0, q5_1,
// iq4_nl, q2_k, q3_k and iq4_xs, at M = 1 and 1024 on the first shape); x and y are f32 [M, K]
// and [M, N]. Bytes counted: the weights as stored plus x read and y written once (the decode
// roofline; the block formats' int8 copy of x, 1.125 M K bytes written and read again, is left
// out: under 1% of the weights at M <= 16); FLOPs 2 M N K. Sets of weights and inputs rotate so
// that small cases do not run from the L2 cache. For q8_0 at M <= 16 also the f32-activation
// GEMV (matmul_gemv_cuda) that decode used before the dp4a one.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bench.h"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

void matmul_cases(Bench& b) {
  const int64_t nk[][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};
  const std::vector<int64_t> ms_full = {1, 16, 1024, 4096}, ms_quick = {1, 4096};
  const std::vector<DType> main = {DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  const std::vector<DType> more = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::Q2_K, DType::Q3_K, DType::IQ4_XS};
  std::vector<DType> dts = main;
  if (!b.options().quick) dts.insert(dts.end(), more.begin(), more.end());
  for (DType dt : dts) {
    const bool few = std::find(more.begin(), more.end(), dt) != more.end();
    for (const auto& s : nk) {
      const int64_t N = s[0], K = s[1];
      if (few && (N != nk[0][0] || K != nk[0][1])) continue;
      for (int64_t M : b.options().quick ? ms_quick : ms_full) {
        if (few && M != 1 && M != 1024) continue;
        const std::vector<Field> shape = {num("M", M), num("N", N), num("K", K), text("w_dtype", dtype_name(dt))};
        const std::string label = std::string("matmul_cuda ") + dtype_name(dt) + " M=" + std::to_string(M) +
                                  " N=" + std::to_string(N) + " K=" + std::to_string(K);
        if (!b.wants(label)) continue;
        try {
          const size_t w_bytes = row_bytes(dt, K) * size_t(N), x_bytes = size_t(M * K) * 4, y_bytes = size_t(M * N) * 4;
          const int sets = b.rotations(w_bytes + x_bytes);
          std::vector<std::unique_ptr<DevBuf>> ws, xs;
          for (int i = 0; i < sets; i++) {
            ws.push_back(std::make_unique<DevBuf>(w_bytes));
            xs.push_back(std::make_unique<DevBuf>(x_bytes));
            fill_weights(ws.back()->p, dt, size_t(N * K), 100 + uint64_t(i));
            fill_f32(xs.back()->f32(), size_t(M * K), 200 + uint64_t(i), -1.0f, 1.0f);
          }
          DevBuf y(y_bytes);
          const size_t ws_bytes = matmul_cuda_workspace(dt, M, K);
          DevBuf workspace(ws_bytes > 0 ? ws_bytes : 256);
          const double ms = b.median_ms([&](int rep) {
            const size_t i = size_t(rep % sets);
            matmul_cuda(MatmulArgs{y.f32(), xs[i]->f32(), ws[i]->p, dt, M, K, N}, workspace.p, nullptr);
          });
          b.record("matmul_cuda", shape, ms, double(w_bytes + x_bytes + y_bytes), 2.0 * double(M) * double(N) * double(K));
          if (dt == DType::Q8_0 && M <= 16) {
            // q8_0's f32-activation GEMV (cuda/gemv.cu), which the dispatcher left for the dp4a
            // one (an extra launch quantizing x, the weights read once per 8 tokens): both timed
            // so the choice can follow the measurement
            const double ms_f32x = b.median_ms([&](int rep) {
              const size_t i = size_t(rep % sets);
              matmul_gemv_cuda(MatmulArgs{y.f32(), xs[i]->f32(), ws[i]->p, dt, M, K, N}, nullptr);
            });
            b.record("matmul_gemv_cuda", shape, ms_f32x, double(w_bytes + x_bytes + y_bytes),
                     2.0 * double(M) * double(N) * double(K));
          }
        } catch (const std::exception& e) {
          b.record_error("matmul_cuda", shape, e.what());
        }
      }
    }
  }
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END

// Bench cases: moe_matmul_cuda at Mixtral-8x7B's expert gate/up shape (8 experts of N = 14336 x
// K = 4096, top 2), q4_k and q8_0 weights stacked, for M = 1 (decode: the warp kernel reading
// the 2 chosen experts), 16 and 512 tokens (q4_k: the grouped tensor-core GEMM,
// cuda/moe_matmul_gemm.cu, each expert once over its ~M / 4 tokens; q8_0: the warp kernel at every M). Routing: token t's slots on experts t % 8 and
// (t + 1 + t % 3) % 8, so every expert takes a share. Bytes: the chosen experts' weights as
// stored (min(8, 2 M) of them), x read and the 2 M output rows written once; FLOPs 2 (2 M) N K.
// Beside matmul_cuda's N = 14336, K = 4096 cases of the same run (an expert's matmul alone at
// about M / 4 tokens), the grouping's cost shows.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bench.h"
#include "ops.h"
#include "ops/moe_matmul.h"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

void moe_matmul_cases(Bench& b) {
  const int64_t E = 8, k = 2, N = 14336, K = 4096;
  for (DType dt : {DType::Q8_0, DType::Q4_K})
    for (int64_t M : b.options().quick ? std::vector<int64_t>{1, 512} : std::vector<int64_t>{1, 16, 512}) {
      const std::vector<Field> shape = {num("M", M), num("E", E), num("k", k), num("N", N), num("K", K), text("w_dtype", dtype_name(dt))};
      const std::string label = std::string("moe_matmul_cuda ") + dtype_name(dt) + " M=" + std::to_string(M);
      if (!b.wants(label)) continue;
      try {
        const size_t expert_bytes = row_bytes(dt, K) * size_t(N), w_bytes = expert_bytes * size_t(E);
        const size_t x_bytes = size_t(M * K) * 4, y_bytes = size_t(M * k * N) * 4;
        const int sets = b.rotations(w_bytes + x_bytes);
        std::vector<std::unique_ptr<DevBuf>> ws, xs;
        for (int i = 0; i < sets; i++) {
          ws.push_back(std::make_unique<DevBuf>(w_bytes));
          xs.push_back(std::make_unique<DevBuf>(x_bytes));
          fill_weights(ws.back()->p, dt, size_t(E * N * K), 500 + uint64_t(i));
          fill_f32(xs.back()->f32(), size_t(M * K), 600 + uint64_t(i), -1.0f, 1.0f);
        }
        std::vector<int32_t> ids(size_t(M * k));
        for (int64_t t = 0; t < M; t++) ids[size_t(t * k)] = int32_t(t % E), ids[size_t(t * k + 1)] = int32_t((t + 1 + t % 3) % E);
        DevBuf y(y_bytes), dids(ids.size() * 4), err(8);
        CUDA_CHECK(cudaMemcpy(dids.p, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
        const size_t ws_bytes = moe_matmul_gemm_workspace(dt, M, K, N, E, k, false);
        DevBuf workspace(ws_bytes > 0 ? ws_bytes : 256);
        const double ms = b.median_ms([&](int rep) {
          const size_t i = size_t(rep % sets);
          moe_matmul_cuda(MoeMatmulArgs{y.f32(), xs[i]->f32(), ws[i]->p, dt, static_cast<const int32_t*>(dids.p), nullptr, M, K, N, E, k, false},
                          static_cast<int32_t*>(err.p), workspace.p, ws_bytes, nullptr);
        });
        const int64_t chosen = std::min<int64_t>(E, M * k);
        b.record("moe_matmul_cuda", shape, ms, double(expert_bytes * size_t(chosen) + x_bytes + y_bytes), 2.0 * double(M * k) * double(N) * double(K));
      } catch (const std::exception& e) {
        b.record_error("moe_matmul_cuda", shape, e.what());
      }
    }
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END

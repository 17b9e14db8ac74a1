// Bench cases: matmul_cuda (the dispatcher: GEMV for a few rows, GEMM for many) at
// torch_peers.py's F.linear shapes, the Llama-3-8B projections (N, K) = (4096, 4096),
// (14336, 4096), (4096, 14336) for M = 1, 16, 1024, 4096 tokens (--quick: 1 and 4096), with
// bf16, f16, q8_0, q4_0, q4_k, q5_k and q6_k weights (without --quick also q4_1, q5_0, q5_1,
// iq4_nl, q2_k, q3_k and iq4_xs, at M = 1 and 1024 on the first shape); x and y are f32 [M, K]
// and [M, N]. Bytes counted: the weights as stored plus x read and y written once (the decode
// roofline; the block formats' int8 copy of x, 1.125 M K bytes written and read again, is left
// out: under 1% of the weights at M <= 16); FLOPs 2 M N K. Sets of weights and inputs rotate so
// that small cases do not run from the L2 cache. q8_0 weights are filled as the device holds
// them (two planes, native/q8_0_planes.h).
// Decode's fused launches beside the separate ones, in the same run (q8_0 and q4_k; M = 1, and
// 4 without --quick): the q, k and v projections of Llama-3-8B (N = 4096, 1024, 1024; K = 4096)
// as one matmul_group_cuda launch and as three matmul_cuda calls; gate and up (N = 14336) with
// SwiGLU as one matmul_swiglu_cuda launch and as two matmuls plus swiglu_cuda. Bytes: weights,
// x and the outputs once.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bench.h"
#include "ops.h"
#include "ops/swiglu.h"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

static void fused_decode_cases(Bench& b);

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
        } catch (const std::exception& e) {
          b.record_error("matmul_cuda", shape, e.what());
        }
      }
    }
  }
  fused_decode_cases(b);
}

static void fused_decode_cases(Bench& b) {
  const int64_t K = 4096, dim = 4096, kv = 1024, ffn = 14336;
  for (DType dt : {DType::Q8_0, DType::Q4_K})
    for (int64_t M : b.options().quick ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 4}) {
      const std::string tag = std::string(dtype_name(dt)) + " M=" + std::to_string(M);
      const std::vector<Field> shape = {num("M", M), num("K", K), text("w_dtype", dtype_name(dt))};
      try {
        // weights: q, k, v, gate, up; the q/k/v and gate/up sets rotate together
        const int64_t Ns[5] = {dim, kv, kv, ffn, ffn};
        size_t total = 0;
        for (int64_t N : Ns) total += row_bytes(dt, K) * size_t(N);
        const int sets = b.rotations(total);
        std::vector<std::unique_ptr<DevBuf>> w;
        for (int i = 0; i < sets; i++)
          for (int j = 0; j < 5; j++) {
            w.push_back(std::make_unique<DevBuf>(row_bytes(dt, K) * size_t(Ns[j])));
            fill_weights(w.back()->p, dt, size_t(Ns[j] * K), 300 + uint64_t(5 * i + j));
          }
        DevBuf x(size_t(M * K) * 4), q(size_t(M * dim) * 4), k(size_t(M * kv) * 4), v(size_t(M * kv) * 4);
        DevBuf g(size_t(M * ffn) * 4), u(size_t(M * ffn) * 4);
        fill_f32(x.f32(), size_t(M * K), 400, -1.0f, 1.0f);
        DevBuf workspace(std::max<size_t>(matmul_cuda_workspace(dt, M, K), 256));
        auto args = [&](int rep, int j, float* y) {
          return MatmulArgs{y, x.f32(), w[size_t(5 * (rep % sets) + j)]->p, dt, M, K, Ns[j]};
        };
        const double qkv_bytes = double(row_bytes(dt, K) * size_t(dim + 2 * kv) + size_t(M * K) * 4 + size_t(M * (dim + 2 * kv)) * 4);
        const double glu_bytes = double(row_bytes(dt, K) * size_t(2 * ffn) + size_t(M * K) * 4 + size_t(M * ffn) * 4);
        const double qkv_flops = 2.0 * double(M) * double(K) * double(dim + 2 * kv), glu_flops = 4.0 * double(M) * double(K) * double(ffn);
        if (b.wants("matmul_group_cuda:qkv " + tag)) {
          b.record("matmul_group_cuda:qkv", shape, b.median_ms([&](int rep) {
            const MatmulArgs m[3] = {args(rep, 0, q.f32()), args(rep, 1, k.f32()), args(rep, 2, v.f32())};
            matmul_group_cuda(m, 3, workspace.p, nullptr);
          }), qkv_bytes, qkv_flops);
          b.record("matmul_cuda:qkv_separate", shape, b.median_ms([&](int rep) {
            matmul_cuda(args(rep, 0, q.f32()), workspace.p, nullptr);
            matmul_cuda(args(rep, 1, k.f32()), workspace.p, nullptr);
            matmul_cuda(args(rep, 2, v.f32()), workspace.p, nullptr);
          }), qkv_bytes, qkv_flops);
        }
        if (b.wants("matmul_swiglu_cuda " + tag)) {
          b.record("matmul_swiglu_cuda", shape, b.median_ms([&](int rep) {
            matmul_swiglu_cuda(args(rep, 3, g.f32()), args(rep, 4, u.f32()), g.f32(), workspace.p, nullptr);
          }), glu_bytes, glu_flops);
          b.record("matmul_cuda:gate_up_swiglu_separate", shape, b.median_ms([&](int rep) {
            matmul_cuda(args(rep, 3, g.f32()), workspace.p, nullptr);
            matmul_cuda(args(rep, 4, u.f32()), workspace.p, nullptr);
            swiglu_cuda({g.f32(), g.f32(), u.f32(), M, ffn}, nullptr);
          }), glu_bytes, glu_flops);
        }
      } catch (const std::exception& e) {
        b.record_error("matmul_group_cuda", shape, e.what());
      }
    }
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END

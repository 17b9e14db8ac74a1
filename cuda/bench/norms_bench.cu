// Bench cases: rms_norm_cuda, layer_norm_cuda and add_norm_cuda (RMS and LayerNorm) at
// torch_peers.py's norm shapes, 32768 rows of 4096 and of 8192. fuselm's norms are f32 (the
// peer's bf16), so the cases are compared by their share of the copy bandwidth, not by time:
// bytes counted are the row traffic, norm 2 x 4 per element (read x, write out), add_norm
// 4 x 4 (read x and r, write x and out); w and b are negligible. Each working set (>= 1 GiB)
// is far beyond the L2 cache, so no rotation.
// Decode's norm (1 and 8 rows of 4096, RMS): add_norm_cuda writing y's int8 copy for the next
// matmuls (quantize_to) beside add_norm_cuda then quantize_x_q8_cuda, the two launches it
// replaces, in the same run: latency-bound, compared by time (bytes: the row traffic plus the
// int8 copy and its scales, 16 + 1.125 per element).
#include <string>

#include "bench.h"
#include "ops.h"
#include "ops/layer_norm.h"
#include "ops/rms_norm.h"
#include "quantize_x.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

void norm_cases(Bench& b) {
  const int64_t rows = 32768;
  for (int64_t hid : {int64_t(4096), int64_t(8192)}) {
    const std::vector<Field> shape = {num("rows", rows), num("hidden", hid), text("dtype", "f32")};
    const std::string dims = " rows=" + std::to_string(rows) + " hidden=" + std::to_string(hid);
    const size_t n = size_t(rows * hid);
    const double row_bytes = double(n) * 4;
    struct Norm {
      const char* kernel;
      bool add, layer;
    };
    for (const Norm& k : {Norm{"rms_norm_cuda", false, false}, Norm{"layer_norm_cuda", false, true},
                          Norm{"add_norm_cuda:rms", true, false}, Norm{"add_norm_cuda:layer_norm", true, true}}) {
      if (!b.wants(k.kernel + dims)) continue;
      try {
        DevBuf x(n * 4), out(n * 4), w(size_t(hid) * 4), bias(size_t(hid) * 4);
        fill_f32(x.f32(), n, 11, -3.0f, 3.0f);
        fill_f32(w.f32(), size_t(hid), 12, 0.5f, 1.5f);
        fill_f32(bias.f32(), size_t(hid), 13, -0.5f, 0.5f);
        double ms;
        if (k.add) {
          DevBuf r(n * 4);
          fill_f32(r.f32(), n, 14, -1e-3f, 1e-3f);  // small: x stays bounded over the repeats
          const AddNormArgs a{out.f32(), x.f32(), r.f32(), w.f32(), k.layer ? bias.f32() : nullptr, rows, hid, 1e-5f};
          ms = b.median_ms([&](int) { add_norm_cuda(a, nullptr); });
        } else if (k.layer) {
          const LayerNormArgs a{out.f32(), x.f32(), w.f32(), bias.f32(), rows, hid, 1e-5f};
          ms = b.median_ms([&](int) { layer_norm_cuda(a, nullptr); });
        } else {
          const RmsNormArgs a{out.f32(), x.f32(), w.f32(), rows, hid, 1e-5f};
          ms = b.median_ms([&](int) { rms_norm_cuda(a, nullptr); });
        }
        b.record(k.kernel, shape, ms, (k.add ? 4 : 2) * row_bytes, 0);
      } catch (const std::exception& e) {
        b.record_error(k.kernel, shape, e.what());
      }
    }
  }
  for (int64_t T : {int64_t(1), int64_t(8)}) {
    const int64_t hid = 4096;
    const std::vector<Field> shape = {num("rows", T), num("hidden", hid), text("dtype", "f32")};
    const std::string dims = " rows=" + std::to_string(T) + " hidden=" + std::to_string(hid);
    const size_t n = size_t(T * hid);
    for (bool fused : {true, false}) {
      const char* kernel = fused ? "add_norm_cuda:rms+quantize" : "add_norm_cuda:rms,quantize_x_q8_cuda";
      if (!b.wants(kernel + dims)) continue;
      try {
        DevBuf x(n * 4), r(n * 4), out(n * 4), w(size_t(hid) * 4), ws(quantize_x_q8_bytes(T, hid));
        fill_f32(x.f32(), n, 11, -3.0f, 3.0f);
        fill_f32(r.f32(), n, 14, -1e-3f, 1e-3f);
        fill_f32(w.f32(), size_t(hid), 12, 0.5f, 1.5f);
        const AddNormArgs a{out.f32(), x.f32(), r.f32(), w.f32(), nullptr, T, hid, 1e-5f, fused ? ws.p : nullptr};
        const double ms = b.median_ms([&](int) {
          add_norm_cuda(a, nullptr);
          if (!fused) {
            int8_t* q;
            float* d;
            quantize_x_q8_cuda(out.f32(), T, hid, ws.p, q, d, nullptr);
          }
        });
        b.record(kernel, shape, ms, double(n) * (16 + 1.125), 0);
      } catch (const std::exception& e) {
        b.record_error(kernel, shape, e.what());
      }
    }
  }
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END

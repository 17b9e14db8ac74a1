// quantizeRows(format, src, cols, dst, search, threads): Promise<void>. Quantizes the rows of
// `src` (a Float32Array of rows x cols values) into `dst` (a Uint8Array of exactly the
// format's size) off the JS thread, the rows split among `threads` workers. Both arrays are
// held by references until the promise settles.
#include <algorithm>
#include <memory>
#include <thread>
#include <vector>

#include "napi/util.h"
#include "napi/wraps.h"
#include "quant/quant.h"

namespace fuselm {

Napi::Value quantize_rows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_js(env, "E_INVALID_ARG", "quantizeRows: format must be a string");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  quant::Format fmt;
  if (!quant::parse_format(name, &fmt))
    throw_js(env, "E_INVALID_ARG", "quantizeRows: unknown format '" + name + "' (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, f16)");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_js(env, "E_INVALID_ARG", "quantizeRows: src must be a Float32Array");
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_js(env, "E_INVALID_ARG", "quantizeRows: dst must be a Uint8Array");
  auto src = info[1].As<Napi::Float32Array>();
  auto dst = info[3].As<Napi::Uint8Array>();
  const int64_t cols = get_int(info[2], "cols");
  const bool search = info[4].ToBoolean();
  const int64_t threads = info[5].IsUndefined() ? int64_t(std::max(1u, std::thread::hardware_concurrency())) : get_int(info[5], "threads");
  const quant::FormatInfo fi = quant::info(fmt);
  if (cols <= 0 || cols % fi.block != 0)
    throw_js(env, "E_INVALID_ARG", "quantizeRows: a " + name + " row needs a multiple of " + std::to_string(fi.block) + " values, got " + std::to_string(cols));
  if (int64_t(src.ElementLength()) % cols != 0)
    throw_js(env, "E_INVALID_ARG", "quantizeRows: " + std::to_string(src.ElementLength()) + " values are not whole rows of " + std::to_string(cols));
  if (threads < 1) throw_js(env, "E_INVALID_ARG", "quantizeRows: threads must be >= 1");
  const int64_t rows = int64_t(src.ElementLength()) / cols;
  const int64_t row_bytes = cols / fi.block * fi.bytes;
  if (int64_t(dst.ByteLength()) != rows * row_bytes)
    throw_js(env, "E_INVALID_ARG", "quantizeRows: dst must be " + std::to_string(rows * row_bytes) + " bytes, got " + std::to_string(dst.ByteLength()));

  const float* x = src.Data();
  uint8_t* y = dst.Data();
  // keep both arrays alive (and their memory in place) while the workers run
  auto keep = std::make_shared<std::pair<Napi::Reference<Napi::Float32Array>, Napi::Reference<Napi::Uint8Array>>>(
      Napi::Persistent(src), Napi::Persistent(dst));
  return PromiseWorker::start(
      env,
      [=] {
        const int64_t n = std::min(threads, rows);
        auto work = [=](int64_t t) {
          for (int64_t r = rows * t / n; r < rows * (t + 1) / n; r++) quant::quantize_row(fmt, search, x + r * cols, y + r * row_bytes, cols);
        };
        std::vector<std::thread> pool;
        for (int64_t t = 1; t < n; t++) pool.emplace_back(work, t);
        work(0);
        for (auto& th : pool) th.join();
      },
      [keep](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

}  // namespace fuselm

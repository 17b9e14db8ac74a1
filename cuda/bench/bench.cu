// The CUDA microbenchmark program's helpers (declared in bench.h): device buffers, random
// fills by a hash of the element index (splitmix64), CUDA-event timing with warm-up and the
// median of the repeats, the copy-bandwidth ceiling, and the JSON report.
#include "bench.h"

#include <algorithm>
#include <cstdio>

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

DevBuf::DevBuf(size_t n) : bytes(n) { CUDA_CHECK(cudaMalloc(&p, n)); }
DevBuf::~DevBuf() { cudaFree(p); }

__device__ __forceinline__ float hash_uniform(uint64_t seed, uint64_t i, float lo, float hi) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return lo + (hi - lo) * float(z >> 40) * (1.0f / 16777216.0f);
}

static __global__ void fill_f32_kernel(float* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = hash_uniform(seed, i, lo, hi);
}

static __global__ void fill_half_kernel(uint16_t* p, size_t n, bool bf16, uint64_t seed, float lo, float hi) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float v = hash_uniform(seed, i, lo, hi);
    p[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16(v)) : __half_as_ushort(__float2half(v));
  }
}

// q8_0 as the device holds it (native/q8_0_planes.h): int8 values, then the f16 scales
static __global__ void fill_q8_0_kernel(uint8_t* p, size_t n_blocks, uint64_t seed) {
  int8_t* q = reinterpret_cast<int8_t*>(p);
  uint16_t* d = reinterpret_cast<uint16_t*>(p + 32 * n_blocks);
  for (size_t b = size_t(blockIdx.x) * blockDim.x + threadIdx.x; b < n_blocks; b += size_t(gridDim.x) * blockDim.x) {
    d[b] = __half_as_ushort(__float2half(hash_uniform(seed, b * 33, 0.002f, 0.01f)));
    for (int j = 0; j < kQ8Block; j++) q[32 * b + j] = int8_t(int(hash_uniform(seed, b * 33 + 1 + j, -127.0f, 128.0f)));
  }
}

// GGUF block formats: random bytes (every nibble, bit and sub-block scale uniformly drawn), then
// the block's f16 scale d and, where the format has one, its f16 min / offset m set to
// |v| in [0.5, 1) * scale, so the weights are finite and about +-1.
static __global__ void fill_blocks_kernel(uint8_t* p, size_t n_blocks, int block_bytes, int d_at, int m_at,
                                          float d_scale, float m_scale, uint64_t seed) {
  for (size_t b = size_t(blockIdx.x) * blockDim.x + threadIdx.x; b < n_blocks; b += size_t(gridDim.x) * blockDim.x) {
    uint8_t* q = p + b * size_t(block_bytes);
    for (int i = 0; i < block_bytes; i++) q[i] = uint8_t(hash_uniform(seed, b * 256 + size_t(i), 0.0f, 256.0f));
    const uint16_t d = __half_as_ushort(__float2half(hash_uniform(seed ^ 1, b, 0.5f, 1.0f) * d_scale));
    q[d_at] = uint8_t(d), q[d_at + 1] = uint8_t(d >> 8);
    if (m_at >= 0) {
      const uint16_t m = __half_as_ushort(__float2half(hash_uniform(seed ^ 2, b, -1.0f, 1.0f) * m_scale));
      q[m_at] = uint8_t(m), q[m_at + 1] = uint8_t(m >> 8);
    }
  }
}

static const dim3 kFillGrid(1024), kFillBlock(256);

void fill_f32(float* p, size_t n, uint64_t seed, float lo, float hi) {
  launch_kernel("fill_f32_kernel", fill_f32_kernel, kFillGrid, kFillBlock, 0, nullptr, p, n, seed, lo, hi);
}
void fill_half(void* p, size_t n, bool bf16, uint64_t seed, float lo, float hi) {
  launch_kernel("fill_half_kernel", fill_half_kernel, kFillGrid, kFillBlock, 0, nullptr, static_cast<uint16_t*>(p), n,
                bf16, seed, lo, hi);
}
void fill_q8_0(void* p, size_t n_blocks, uint64_t seed) {
  launch_kernel("fill_q8_0_kernel", fill_q8_0_kernel, kFillGrid, kFillBlock, 0, nullptr, static_cast<uint8_t*>(p), n_blocks,
                seed);
}
void fill_weights(void* p, DType dt, size_t n_values, uint64_t seed) {
  switch (dt) {
    case DType::F32: return fill_f32(static_cast<float*>(p), n_values, seed, -1.0f, 1.0f);
    case DType::F16: return fill_half(p, n_values, false, seed, -1.0f, 1.0f);
    case DType::BF16: return fill_half(p, n_values, true, seed, -1.0f, 1.0f);
    case DType::Q8_0: return fill_q8_0(p, n_values / kQ8Block, seed);
    default: break;
  }
  // byte offsets of d and m in the block (-1: none), and their scales
  struct F { DType dt; int d_at, m_at; float d_scale, m_scale; };
  static const F formats[] = {
      {DType::Q4_0, 0, -1, 0.1f, 0},      {DType::Q4_1, 0, 2, 0.1f, 0.5f},      {DType::Q5_0, 0, -1, 0.05f, 0},
      {DType::Q5_1, 0, 2, 0.05f, 0.5f},   {DType::IQ4_NL, 0, -1, 0.008f, 0},    {DType::Q2_K, 80, 82, 0.05f, 0.02f},
      {DType::Q3_K, 108, -1, 0.01f, 0},   {DType::Q4_K, 0, 2, 0.002f, 0.002f},  {DType::Q5_K, 0, 2, 0.001f, 0.001f},
      {DType::Q6_K, 208, -1, 0.0002f, 0}, {DType::IQ4_XS, 0, -1, 0.0002f, 0},
  };
  for (const F& f : formats)
    if (f.dt == dt) {
      const BlockGeom g = dtype_block(dt);
      launch_kernel("fill_blocks_kernel", fill_blocks_kernel, kFillGrid, kFillBlock, 0, nullptr, static_cast<uint8_t*>(p),
                    n_values / size_t(g.values), g.bytes, f.d_at, f.m_at, f.d_scale, f.m_scale, seed);
      return;
    }
  switch (dt) {
    default: throw Error("E_INVALID_ARG", std::string("bench: no weight fill for ") + dtype_name(dt));
  }
}

static std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  return out + "\"";
}

Field num(const char* key, int64_t v) { return {key, std::to_string(v)}; }
Field flag(const char* key, bool v) { return {key, v ? "true" : "false"}; }
Field text(const char* key, const std::string& v) { return {key, json_string(v)}; }

static std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

static std::string shape_json(const std::vector<Field>& shape) {
  std::string s = "{";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", \"" : "\"") + shape[i].key + "\": " + shape[i].json;
  return s + "}";
}

Bench::Bench(const Options& o) : opt_(o) {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  device_ = p.name;
  sms_ = p.multiProcessorCount;
  l2_bytes_ = size_t(p.l2CacheSize);
  CUDA_CHECK(cudaEventCreate(&start_));
  CUDA_CHECK(cudaEventCreate(&stop_));
}

Bench::~Bench() {
  cudaEventDestroy(start_);
  cudaEventDestroy(stop_);
}

bool Bench::wants(const std::string& label) const {
  return opt_.filter.empty() || label.find(opt_.filter) != std::string::npos;
}

int Bench::rotations(size_t bytes) const {
  const size_t need = (4 * l2_bytes_ + bytes - 1) / (bytes ? bytes : 1);
  return int(std::min<size_t>(64, std::max<size_t>(1, need)));
}

double Bench::median_ms(const std::function<void(int rep)>& launch) {
  const int warm = opt_.quick ? 5 : 10, reps = opt_.quick ? 20 : 50;
  for (int i = 0; i < warm; i++) launch(i);
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> ms(size_t(reps), 0.0f);
  for (int i = 0; i < reps; i++) {
    CUDA_CHECK(cudaEventRecord(start_, nullptr));
    launch(warm + i);
    CUDA_CHECK(cudaEventRecord(stop_, nullptr));
    CUDA_CHECK(cudaEventSynchronize(stop_));
    CUDA_CHECK(cudaEventElapsedTime(&ms[size_t(i)], start_, stop_));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void Bench::record(const std::string& kernel, const std::vector<Field>& shape, double ms, double bytes,
                   double flops) {
  std::string c = "{\"kernel\": " + json_string(kernel) + ", \"shape\": " + shape_json(shape) + ", \"ms\": " + fmt(ms);
  if (bytes > 0) {
    const double gbps = bytes / ms / 1e6;
    c += ", \"GBps\": " + fmt(gbps);
    if (copy_GBps_ > 0) c += ", \"copy_share\": " + fmt(gbps / copy_GBps_);
  }
  if (flops > 0) c += ", \"TFLOPs\": " + fmt(flops / ms / 1e9);
  c += "}";
  std::fprintf(stderr, "%s\n", c.c_str());  // progress, one case a line
  cases_.push_back(c);
}

void Bench::record_error(const std::string& kernel, const std::vector<Field>& shape, const std::string& error) {
  const std::string c = "{\"kernel\": " + json_string(kernel) + ", \"shape\": " + shape_json(shape) +
                        ", \"error\": " + json_string(error) + "}";
  std::fprintf(stderr, "%s\n", c.c_str());
  cases_.push_back(c);
}

void Bench::measure_copy_bandwidth() {
  const size_t bytes = size_t(512) << 20;
  DevBuf a(bytes), b(bytes);
  fill_f32(a.f32(), bytes / 4, 1, -1.0f, 1.0f);
  const double ms = median_ms([&](int) { CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, nullptr)); });
  copy_GBps_ = 2.0 * double(bytes) / ms / 1e6;
}

std::string Bench::json() const {
  std::string s = "{\"device\": " + json_string(device_) + ", \"sms\": " + std::to_string(sms_) +
                  ", \"l2_bytes\": " + std::to_string(l2_bytes_) + ", \"copy_GBps\": " + fmt(copy_GBps_) +
                  ", \"quick\": " + (opt_.quick ? "true" : "false") + ", \"cases\": [";
  for (size_t i = 0; i < cases_.size(); i++) s += (i ? ",\n  " : "\n  ") + cases_[i];
  return s + "\n]}";
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END

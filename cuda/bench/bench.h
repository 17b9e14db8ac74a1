// The CUDA microbenchmark program's shared pieces (fuselm_cuda_bench, ARCHITECTURE.md, "The kernel contract"): a
// device buffer, random fills on the device, event timing, and the JSON report. The cases
// (norms_bench.cu, matmul_bench.cu, attention_bench.cu) use the shapes of
// ../shared/gpu/torch_peers.py, so their times can be set beside torch's on the same GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

// cudaMalloc'd bytes, freed on scope exit.
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n);
  ~DevBuf();
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  float* f32() const { return static_cast<float*>(p); }
};

// Deterministic pseudo-random fills on the device (a hash of the index and seed, no host
// copy): f32 uniform in [lo, hi); f16 or bf16 bits of uniform [lo, hi); q8_0 blocks with
// random int8 and scales in [0.002, 0.01).
void fill_f32(float* p, size_t n, uint64_t seed, float lo, float hi);
void fill_half(void* p, size_t n, bool bf16, uint64_t seed, float lo, float hi);
void fill_q8_0(void* p, size_t n_blocks, uint64_t seed);
// n_values weights of dtype dt (f32, f16, bf16; a block format: n_values / block values
// blocks), in about [-1, 1).
void fill_weights(void* p, DType dt, size_t n_values, uint64_t seed);

// One JSON "key": value pair of a case's shape.
struct Field {
  std::string key, json;
};
Field num(const char* key, int64_t v);
Field flag(const char* key, bool v);
Field text(const char* key, const std::string& v);

struct Options {
  bool quick = false;
  std::string filter;  // run the cases whose label contains it
};

class Bench {
 public:
  explicit Bench(const Options& o);
  ~Bench();
  const Options& options() const { return opt_; }
  // Whether the case named `label` passes --filter.
  bool wants(const std::string& label) const;
  // How many copies of a working set of `bytes` to rotate through so that repeats do not find
  // it in the L2 cache: enough for four times the L2 size, at least 1, at most 64.
  int rotations(size_t bytes) const;
  // Median milliseconds of launch(rep) over the repeats, each timed alone by CUDA events on
  // the default stream after the warm-up calls; launch must only enqueue work there.
  double median_ms(const std::function<void(int rep)>& launch);
  // Adds a case: time, and GB/s (bytes > 0) with its share of the measured copy bandwidth,
  // and TFLOP/s (flops > 0).
  void record(const std::string& kernel, const std::vector<Field>& shape, double ms, double bytes, double flops);
  // Adds a case that could not run, with the reason.
  void record_error(const std::string& kernel, const std::vector<Field>& shape, const std::string& error);
  // cudaMemcpy device-to-device of 512 MiB, read + write counted: the bandwidth ceiling.
  void measure_copy_bandwidth();
  // The report: {"device", "sms", "l2_bytes", "copy_GBps", "cases": [...]}.
  std::string json() const;

 private:
  Options opt_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  std::string device_;
  int sms_ = 0;
  size_t l2_bytes_ = 0;
  double copy_GBps_ = 0;
  std::vector<std::string> cases_;
};

// The case groups, each in its own file.
void norm_cases(Bench& b);       // norms_bench.cu
void matmul_cases(Bench& b);     // matmul_bench.cu
void moe_matmul_cases(Bench& b);  // moe_matmul_bench.cu
void attention_cases(Bench& b);  // attention_bench.cu
void elementwise_cases(Bench& b);  // elementwise_bench.cu

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END

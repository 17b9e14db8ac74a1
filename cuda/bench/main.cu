// fuselm_cuda_bench: times the CUDA op launchers on a real GPU (ARCHITECTURE.md, "The kernel contract") and prints
// one JSON object on stdout: the device, its measured copy bandwidth (the roofline for the
// bandwidth-bound cases, each of which reports its share of it), and per case the kernel, the
// shape, the median ms of the repeats and GB/s and/or TFLOP/s. The shapes are those of
// ../shared/gpu/torch_peers.py, so the numbers sit beside torch's from the same machine.
// Progress goes to stderr, a line per case. A case that fails records its error and the run
// goes on. Usage: fuselm_cuda_bench [--quick] [--filter <substring of a case label>]
#include <cstdio>
#include <cstring>
#include <string>

#include "bench.h"

int main(int argc, char** argv) {
  namespace fb = fuselm::bench;
  fb::Options opt;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--quick")) {
      opt.quick = true;
    } else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) {
      opt.filter = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--filter <substring>]\n", argv[0]);
      return 2;
    }
  }
  try {
    fb::Bench b(opt);
    b.measure_copy_bandwidth();
    fb::norm_cases(b);
    fb::matmul_cases(b);
    fb::moe_matmul_cases(b);
    fb::attention_cases(b);
    fb::elementwise_cases(b);
    std::printf("%s\n", b.json().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuselm_cuda_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

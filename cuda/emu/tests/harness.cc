// The test program's main: runs every registered test (or those whose name contains argv[1]),
// printing one line per test and a summary; exit status 0 only when every test passed.
#include "harness.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

#include "tensor.h"

#ifdef FUSELM_EMU_TESTS_ON_GPU
#include <cuda_runtime.h>
#endif

namespace emu_tests {

namespace {
struct Test {
  const char* name;
  void (*fn)();
};
std::vector<Test>& registry() {
  static std::vector<Test> r;
  return r;
}
std::string g_note;
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace

Registrar::Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }

void fail_at(const char* file, int line, const std::string& msg) {
  const char* base = std::strrchr(file, '/');
  throw Failure(std::string(base ? base + 1 : file) + ":" + std::to_string(line) + ": " + msg);
}

void note(const std::string& s) { g_note += (g_note.empty() ? "" : "; ") + s; }

void expect_error(void (*fn)(), const char* needle) {
  try {
    fn();
  } catch (const fuselm::Error& e) {
    if (e.code != "E_NATIVE" || !std::strstr(e.what(), needle))
      throw Failure("expected an E_NATIVE error mentioning '" + std::string(needle) + "', got " + e.code + ": " +
                    e.what());
    std::string m = e.what();
    note("threw: " + (m.size() > 200 ? m.substr(0, 200) + "..." : m));
    return;
  }
  throw Failure("expected an E_NATIVE error mentioning '" + std::string(needle) + "', but nothing was thrown");
}

}  // namespace emu_tests

int main(int argc, char** argv) {
  using namespace emu_tests;
  using clock = std::chrono::steady_clock;
#ifdef FUSELM_EMU_TESTS_ON_GPU
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("summary: 0 passed, 0 failed, 0 ms (skipped: no CUDA device)\n");
    return 0;
  }
#endif
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  const auto t_all = clock::now();
  for (const Test& t : registry()) {
    if (filter && !std::strstr(t.name, filter)) continue;
    g_note.clear();
    std::string err;
    const auto t0 = clock::now();
    try {
      t.fn();
    } catch (const fuselm::Error& e) {
      err = "fuselm::Error " + e.code + ": " + e.what();
    } catch (const std::exception& e) {
      err = e.what();
    }
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (err.empty()) {
      passed++;
      std::printf("ok   %s %.1f ms%s%s\n", t.name, ms, g_note.empty() ? "" : " | ", g_note.c_str());
    } else {
      failed++;
      std::printf("FAIL %s %.1f ms | %s\n", t.name, ms, err.c_str());
    }
    std::fflush(stdout);
  }
  const double ms = std::chrono::duration<double, std::milli>(clock::now() - t_all).count();
  std::printf("summary: %d passed, %d failed, %.0f ms\n", passed, failed, ms);
  return failed ? 1 : 0;
}

// A tiny test harness shared by the emulator test program (fuselm_emu_tests: the .cu files
// compiled by g++ against cuda/emu) and its GPU twin (fuselm_cuda_tests: the same files
// compiled by nvcc). Output, one line per test, parsed by test/cuda/emu.test.ts:
//   ok   <name> <ms> ms[ | note]
//   FAIL <name> <ms> ms | <message>
//   summary: <passed> passed, <failed> failed, <ms> ms
#pragma once
#include <cstdint>
#include <string>

namespace emu_tests {

struct Registrar {
  Registrar(const char* name, void (*fn)());
};

#define EMU_TEST(name)                                              \
  static void name();                                               \
  static ::emu_tests::Registrar name##_registrar_(#name, name);     \
  static void name()

[[noreturn]] void fail_at(const char* file, int line, const std::string& msg);
#define CHECK(cond) \
  do { if (!(cond)) ::emu_tests::fail_at(__FILE__, __LINE__, "check failed: " #cond); } while (0)
#define CHECK_MSG(cond, msg) \
  do { if (!(cond)) ::emu_tests::fail_at(__FILE__, __LINE__, std::string(#cond ": ") + (msg)); } while (0)

// Appended to the test's "ok" line (timings, sizes).
void note(const std::string& s);

// Runs fn and requires it to throw fuselm::Error with code E_NATIVE and `needle` in the message.
void expect_error(void (*fn)(), const char* needle);

// Deterministic random numbers (splitmix64).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) / float(1 << 24); }
  int below(int n) { return int(next() % uint64_t(n)); }
};

}  // namespace emu_tests

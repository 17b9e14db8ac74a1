// Proves: argmax_cuda (cuda/argmax.cu) returns, bit for bit, the index argmax_cpu's reference
// returns (the lowest index among equal maxima; NaN skipped; a row without a non-NaN value
// gives 0). Rows: random at V = 1, 2, 3, 4, 5, 31, 32, 33, 1000, 4097 and 128000
// (a Llama-3 vocabulary), 1 and 3 rows, aligned (float4) and one float off alignment; ties
// placed across lanes, warps, slices (4097 and 128000 split each row over several blocks,
// merged from the workspace) and inside one float4; NaN before and around the maximum and
// NaN larger in bits; +inf twice; rows of -inf only, NaN only, NaN then -inf; +0 after -0.
// A workspace one byte short of a split call's need throws E_INVALID_ARG.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/argmax.h"
#include "parity.h"

namespace emu_tests {

namespace {

// Runs argmax_cuda on T rows of V (x holds them from x[off]) and compares with the reference
// and, where given, with the ids the semantics name.
void check_rows(const std::string& what, const std::vector<float>& x, int64_t off, int64_t T, int64_t V, int& cases,
                const std::vector<int32_t>& expect = {}) {
  DeviceBuffer<float> dx(x);
  DeviceBuffer<int32_t> ids{size_t(T)};
  // the slices' pairs, NaN until written (a pair read before it is written shows)
  const size_t ws_bytes = fuselm::argmax_cuda_workspace(T, V);
  DeviceBuffer<uint8_t> ws(std::vector<uint8_t>(ws_bytes + 1, 0xff));
  fuselm::argmax_cuda({ids.p, dx.p + off, T, V}, ws.p, ws_bytes, nullptr);
  const std::vector<int32_t> got = ids.download();
  std::vector<int32_t> ref(static_cast<size_t>(T));
  fuselm::argmax_cpu({ref.data(), x.data() + off, T, V}, ref_exec());
  for (int64_t t = 0; t < T; t++) {
    const int32_t want = ref[size_t(t)];
    CHECK_MSG(got[size_t(t)] == want, what + " row " + std::to_string(t) + ": got " + std::to_string(got[size_t(t)]) +
                                          ", want " + std::to_string(want));
    if (!expect.empty())
      CHECK_MSG(want == expect[size_t(t)], what + " row " + std::to_string(t) + ": the reference gives " +
                                               std::to_string(want) + ", expected " + std::to_string(expect[size_t(t)]));
  }
  cases++;
}

}  // namespace

EMU_TEST(argmax_f32_parity) {
  Rng rng(0xa59a);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  int cases = 0;
  for (int64_t V : {1, 2, 3, 4, 5, 31, 32, 33, 1000, 4097, 128000})
    for (int64_t T : {int64_t(1), int64_t(3)}) {
      if (V == 128000 && T == 3) continue;  // one vocabulary-sized row per layout is enough
      for (int64_t off = 0; off < 2; off++) {
        const std::string what = "V=" + std::to_string(V) + " T=" + std::to_string(T) + " off=" + std::to_string(off);
        std::vector<float> x = random_floats(rng, size_t(T * V + off), -20.0f, 20.0f);
        check_rows(what + " random", x, off, T, V, cases);
        if (V < 8) continue;
        for (int64_t t = 0; t < T; t++) {  // ties: the same maximum at several places
          float* r = x.data() + off + t * V;
          const int64_t a = 1 + rng.below(int(V / 2)), c = V / 2 + rng.below(int(V / 2));
          r[a] = r[a + 1] = r[c] = r[V - 1] = 50.0f;
          r[0] = nan;
          r[a - 1] = nan;
        }
        check_rows(what + " ties+nan", x, off, T, V, cases);
        for (int64_t t = 0; t < T; t++) {  // +inf twice: the lower index wins
          float* r = x.data() + off + t * V;
          r[V - 2] = inf;
          r[V / 3] = inf;
        }
        check_rows(what + " inf", x, off, T, V, cases);
      }
    }
  // Whole rows of special values, 3 rows of 37 and of 64 (scalar and float4 paths).
  for (int64_t V : {int64_t(37), int64_t(64)}) {
    std::vector<float> x(size_t(3 * V));
    for (int64_t i = 0; i < V; i++) {
      x[size_t(i)] = -inf;                        // row 0: -inf only -> 0
      x[size_t(V + i)] = nan;                     // row 1: NaN only -> 0 (no candidate)
      x[size_t(2 * V + i)] = i < 5 ? nan : -inf;  // row 2: NaN, then -inf -> 5
    }
    check_rows("specials V=" + std::to_string(V), x, 0, 3, V, cases, {0, 0, 5});
    std::vector<float> zeros(size_t(V), 0.0f);
    zeros[0] = -0.0f;                           // -0 == +0: index 0 wins
    zeros[size_t(V - 1)] = -1.0f;
    check_rows("signed zeros V=" + std::to_string(V), zeros, 0, 1, V, cases, {0});
    std::vector<float> big_nan(size_t(V), 1.0f);
    uint32_t bits = 0x7fffffffu;  // a NaN whose bits exceed every float's
    std::memcpy(&big_nan[3], &bits, 4);
    check_rows("NaN bits V=" + std::to_string(V), big_nan, 0, 1, V, cases, {0});
  }
  note(std::to_string(cases) + " cases bit-exact");
}

EMU_TEST(argmax_workspace_too_small) {
  const int64_t T = 1, V = 128000;
  const size_t need = fuselm::argmax_cuda_workspace(T, V);
  CHECK_MSG(need > 0, "a vocabulary-sized row at T = 1 must split over several blocks");
  DeviceBuffer<float> x(size_t(T * V));
  DeviceBuffer<int32_t> ids{size_t(T)};
  DeviceBuffer<uint8_t> ws(need);
  try {
    fuselm::argmax_cuda({ids.p, x.p, T, V}, ws.p, need - 1, nullptr);
  } catch (const fuselm::Error& e) {
    CHECK_MSG(e.code == "E_INVALID_ARG" && std::string(e.what()).find("workspace") != std::string::npos,
              std::string("wrong error: ") + e.code + ": " + e.what());
    return;
  }
  CHECK_MSG(false, "a workspace one byte short did not throw");
}

}  // namespace emu_tests

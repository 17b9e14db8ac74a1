// Parity checks of CUDA kernels against their CPU references (ARCHITECTURE.md, "The kernel contract"): the kernel runs
// on device buffers (the emulator's or a real GPU's), the reference is the op's plain scalar
// C++ (`<op>_cpu(args, ref_exec())`), and the two are compared by the normalized error
// ||out - ref|| / ||ref|| and the largest absolute difference, each against a stated bound.
// A failure names the case and lists the first mismatching elements. Passing cases add to a
// running worst error that the test reports in its "ok" line, so the suite's output states the
// errors measured next to the tolerances.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "ops.h"
#include "harness.h"

namespace emu_tests {

// The CPU reference's executor: the plain scalar path on one thread.
inline fuselm::Exec ref_exec() {
  static fuselm::ThreadPool pool(1);
  return fuselm::Exec{&pool, fuselm::Impl::kReference};
}

struct Parity {
  double rel_tol, abs_tol;
  double worst_rel = 0, worst_abs = 0;
  int cases = 0;

  Parity(double rel, double abs) : rel_tol(rel), abs_tol(abs) {}

  // Compares n values; `what` names the case (sizes, layout) in a failure. `floor`: the
  // normalized error's denominator is at least sqrt(n) * floor, for outputs that can cancel to
  // near zero (a dot product's error scales with its terms, not with its sum): the typical
  // magnitude of an output.
  void check(const std::string& what, const float* got, const float* ref, size_t n, double floor = 0) {
    double num = 0, den = 0, max_abs = 0;
    size_t bad = 0;
    std::string first;
    for (size_t i = 0; i < n; i++) {
      const double g = got[i], r = ref[i];
      const bool nan_mismatch = std::isnan(g) != std::isnan(r);
      const double d = g == r || (std::isnan(g) && std::isnan(r)) ? 0.0 : std::fabs(g - r);  // inf == inf
      if (!std::isnan(d)) {
        num += d * d;
        den += r * r;
        if (d > max_abs) max_abs = d;
      }
      if (nan_mismatch || std::isnan(d) || d > abs_tol) {
        if (bad < 8) {
          char buf[128];
          std::snprintf(buf, sizeof buf, "%s[%zu] got %.9g want %.9g (diff %.3g)", bad ? "; " : "", i, g, r, d);
          first += buf;
        }
        bad++;
      }
    }
    if (den < double(n) * floor * floor) den = double(n) * floor * floor;
    const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    char head[256];
    std::snprintf(head, sizeof head, "%s: rel %.3g (tol %.3g), max abs %.3g (tol %.3g), %zu of %zu beyond abs tol: ",
                  what.c_str(), rel, rel_tol, max_abs, abs_tol, bad, n);
    if (bad || !(rel <= rel_tol)) fail_at(__FILE__, __LINE__, head + first);
    cases++;
    if (rel > worst_rel) worst_rel = rel;
    if (max_abs > worst_abs) worst_abs = max_abs;
  }

  // Adds "N cases, worst rel R max abs A (tol ...)" to the test's ok line.
  void report() const {
    char buf[192];
    std::snprintf(buf, sizeof buf, "%d cases, worst rel %.2g max abs %.2g (tol %.2g / %.2g)", cases, worst_rel,
                  worst_abs, rel_tol, abs_tol);
    note(buf);
  }
};

inline std::vector<float> random_floats(Rng& rng, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(lo, hi);
  return v;
}

}  // namespace emu_tests

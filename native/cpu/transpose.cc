// transpose: out[c, r] = x[r, col0 + c], x [R, C] f32, out [Cout, R]. Used at load time to turn GPT-2's Conv1D
// weights, stored [in, out], into the [out, in] layout matmul reads. The reference walks the
// output in order; the fast path copies 32 x 32 blocks (both sides stay in L1) with bands of
// output rows split across threads.
#include <algorithm>

#include "backend.h"

namespace fuselm {

static void transpose_reference(const TransposeArgs& a) {
  for (int64_t c = 0; c < a.Cout; c++)
    for (int64_t r = 0; r < a.R; r++) a.out[c * a.R + r] = a.x[r * a.C + a.col0 + c];
}

void transpose_cpu(const TransposeArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return transpose_reference(a);
  constexpr int64_t B = 32;
  const int64_t bands = (a.Cout + B - 1) / B;
  e.pool->run(bands, [&](int64_t band, int) {
    const int64_t c0 = band * B, c1 = std::min(a.Cout, c0 + B);
    for (int64_t r0 = 0; r0 < a.R; r0 += B) {
      const int64_t r1 = std::min(a.R, r0 + B);
      for (int64_t c = c0; c < c1; c++)
        for (int64_t r = r0; r < r1; r++) a.out[c * a.R + r] = a.x[r * a.C + a.col0 + c];
    }
  }, a.R * a.Cout);
}

}  // namespace fuselm

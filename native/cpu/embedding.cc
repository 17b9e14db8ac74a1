// embedding: gather rows of a token table and widen them to f32.
#include "backend.h"
#include "cpu/dequant.h"

namespace fuselm {

void embedding_cpu(const EmbeddingArgs& a, const Exec& e) {
  const size_t rb = row_bytes(a.dtype, a.D);
  const uint8_t* table = static_cast<const uint8_t*>(a.table);
  // A gather of T rows is memory-bound and tiny; the scalar conversion is the reference and
  // is fast enough that a SIMD path would not show in a forward step.
  for (int64_t t = 0; t < a.T; t++) dequant_row_ref(table + size_t(a.ids[t]) * rb, a.dtype, a.D, a.out + t * a.D);
}

}  // namespace fuselm

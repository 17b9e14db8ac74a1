// The format table and the one-row dispatch of the quantizers (quant.h).
#include "quant/quant.h"

namespace fuselm::quant {

FormatInfo info(Format f) {
  switch (f) {
    case Format::Q4_0: return {"q4_0", 32, 18};
    case Format::Q4_1: return {"q4_1", 32, 20};
    case Format::Q5_0: return {"q5_0", 32, 22};
    case Format::Q5_1: return {"q5_1", 32, 24};
    case Format::Q8_0: return {"q8_0", 32, 34};
    case Format::Q4_K: return {"q4_k", 256, 144};
    case Format::Q5_K: return {"q5_k", 256, 176};
    case Format::Q6_K: return {"q6_k", 256, 210};
  }
  return {"?", 1, 1};
}

bool parse_format(const std::string& name, Format* out) {
  for (Format f : {Format::Q4_0, Format::Q4_1, Format::Q5_0, Format::Q5_1, Format::Q8_0, Format::Q4_K, Format::Q5_K, Format::Q6_K})
    if (name == info(f).name) {
      *out = f;
      return true;
    }
  return false;
}

void quantize_row(Format f, bool search, const float* x, uint8_t* out, int64_t n) {
  switch (f) {
    case Format::Q4_0: return q4_0_row(x, out, n, search);
    case Format::Q4_1: return q4_1_row(x, out, n, search);
    case Format::Q5_0: return q5_0_row(x, out, n, search);
    case Format::Q5_1: return q5_1_row(x, out, n, search);
    case Format::Q8_0: return q8_0_row(x, out, n, search);
    case Format::Q4_K: return q4_k_row(x, out, n, search);
    case Format::Q5_K: return q5_k_row(x, out, n, search);
    case Format::Q6_K: return q6_k_row(x, out, n, search);
  }
}

}  // namespace fuselm::quant

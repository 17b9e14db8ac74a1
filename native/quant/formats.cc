// The format table and the one-row dispatch of the quantizers (quant.h).
#include "quant/quant.h"
#include "tensor.h"

namespace fuselm::quant {

FormatInfo info(Format f) {
  switch (f) {
    case Format::Q4_0: return {"q4_0", 32, 18};
    case Format::Q4_1: return {"q4_1", 32, 20};
    case Format::Q5_0: return {"q5_0", 32, 22};
    case Format::Q5_1: return {"q5_1", 32, 24};
    case Format::Q8_0: return {"q8_0", 32, 34};
    case Format::Q2_K: return {"q2_k", 256, 84};
    case Format::Q3_K: return {"q3_k", 256, 110};
    case Format::Q4_K: return {"q4_k", 256, 144};
    case Format::Q5_K: return {"q5_k", 256, 176};
    case Format::Q6_K: return {"q6_k", 256, 210};
    case Format::IQ4_NL: return {"iq4_nl", 32, 18};
    case Format::F16: return {"f16", 1, 2};
  }
  return {"?", 1, 1};
}

bool parse_format(const std::string& name, Format* out) {
  for (Format f : {Format::Q4_0, Format::Q4_1, Format::Q5_0, Format::Q5_1, Format::Q8_0, Format::Q2_K, Format::Q3_K, Format::Q4_K, Format::Q5_K, Format::Q6_K, Format::IQ4_NL, Format::F16})
    if (name == info(f).name) {
      *out = f;
      return true;
    }
  return false;
}

void f16_row(const float* x, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const uint16_t h = f32_to_f16(x[i]);
    out[2 * i] = uint8_t(h & 0xff);
    out[2 * i + 1] = uint8_t(h >> 8);
  }
}

void quantize_row(Format f, bool search, const float* x, uint8_t* out, int64_t n) {
  switch (f) {
    case Format::Q4_0: return q4_0_row(x, out, n, search);
    case Format::Q4_1: return q4_1_row(x, out, n, search);
    case Format::Q5_0: return q5_0_row(x, out, n, search);
    case Format::Q5_1: return q5_1_row(x, out, n, search);
    case Format::Q8_0: return q8_0_row(x, out, n, search);
    case Format::Q2_K: return q2_k_row(x, out, n, search);
    case Format::Q3_K: return q3_k_row(x, out, n, search);
    case Format::Q4_K: return q4_k_row(x, out, n, search);
    case Format::Q5_K: return q5_k_row(x, out, n, search);
    case Format::Q6_K: return q6_k_row(x, out, n, search);
    case Format::IQ4_NL: return iq4_nl_row(x, out, n, search);
    case Format::F16: return f16_row(x, out, n);
  }
}

}  // namespace fuselm::quant

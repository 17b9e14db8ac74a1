// Weight quantization into GGUF's block formats, for `fuselm quantize` (lib/tools/quantize.ts).
// One file per family: legacy.cc (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: blocks of 32 with one scale)
// kquants.cc (Q2_K .. Q6_K: super-blocks of 256 with quantized sub-block scales) and
// nonlinear.cc (IQ4_NL: 32-blocks indexing a fixed non-uniform table).
//
// Each format has two quantizers over one row of `n` values (a multiple of its block):
//   *_plain:  the plain fit: the block's min/max (or signed max) maps onto the integer range.
//             The baseline the tests measure the searched fit against.
//   *_search: the fit used to write files: per block (or sub-block) a search over scales
//             (and mins) minimizing a weighted squared error, the method llama.cpp uses for its
//             k-quants (make_qx_quants / make_qkx2_quants in its sources; written here from the
//             published algorithm, see search.h).
// The byte layouts are GGUF's (lib/formats/quants.ts decodes them and documents them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fuselm::quant {

enum class Format { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, F16 };

struct FormatInfo {
  const char* name;
  int block;   // values per block
  int bytes;   // bytes per block
};

FormatInfo info(Format f);
// "q4_0" .. "q6_k" (lower case, as the JS side names them); false for an unknown name.
bool parse_format(const std::string& name, Format* out);

// Quantizes one row of n values (n % block == 0) into n / block blocks at `out`.
void quantize_row(Format f, bool search, const float* x, uint8_t* out, int64_t n);

// Family entry points (one row each).
void q4_0_row(const float* x, uint8_t* out, int64_t n, bool search);
void q4_1_row(const float* x, uint8_t* out, int64_t n, bool search);
void q5_0_row(const float* x, uint8_t* out, int64_t n, bool search);
void q5_1_row(const float* x, uint8_t* out, int64_t n, bool search);
void q8_0_row(const float* x, uint8_t* out, int64_t n, bool search);
void q2_k_row(const float* x, uint8_t* out, int64_t n, bool search);
void q3_k_row(const float* x, uint8_t* out, int64_t n, bool search);
void q4_k_row(const float* x, uint8_t* out, int64_t n, bool search);
void q5_k_row(const float* x, uint8_t* out, int64_t n, bool search);
void q6_k_row(const float* x, uint8_t* out, int64_t n, bool search);
void iq4_nl_row(const float* x, uint8_t* out, int64_t n, bool search);
void f16_row(const float* x, uint8_t* out, int64_t n);  // IEEE half, round to nearest even

}  // namespace fuselm::quant

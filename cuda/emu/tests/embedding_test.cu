// Proves: embedding_cuda (cuda/embedding.cu) gathers the same f32 rows as embedding_cpu's
// reference, bit for bit, from f32, f16, bf16, q8_0 and the GGUF block-format tables: row widths 1, 31, 32, 33, 64,
// 4095, 4096 and 4097 (q8_0: 32, 64, 4096), 1 and 5 tokens with repeated ids and the first and
// last rows, through the 16-byte path and (table one row-element off alignment) the scalar
// one; f16 tables include subnormals, infinities and a NaN. An id outside the table reads
// nothing: its output row is zeroed, the other rows are gathered, and the first bad token is
// reported in the error word ({1 + position, id}); nothing traps.
#include <cstring>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/embedding.h"
#include "parity.h"
#include "quant_blocks_ref.h"

namespace emu_tests {

namespace {

using fuselm::DType;

// A random table of V rows of D values in `dt`, as bytes, with `pad` spare bytes in front.
std::vector<uint8_t> random_table(Rng& rng, DType dt, int64_t V, int64_t D, size_t pad) {
  if (fuselm::is_block_dtype(dt) && dt != DType::Q8_0) return random_quant_rows(rng, quant_format(dt), V, D, pad);
  const size_t rb = fuselm::row_bytes(dt, D);
  std::vector<uint8_t> t(pad + rb * size_t(V));
  uint8_t* p = t.data() + pad;
  for (int64_t i = 0; i < V * (dt == DType::Q8_0 ? D / fuselm::kQ8Block : D); i++) {
    switch (dt) {
      case DType::F32: {
        const float f = rng.uniform(-4.0f, 4.0f);
        std::memcpy(p + 4 * i, &f, 4);
        break;
      }
      case DType::F16:
      case DType::BF16: {
        uint16_t h = dt == DType::F16 ? fuselm::f32_to_f16(rng.uniform(-4.0f, 4.0f))
                                      : fuselm::f32_to_bf16(rng.uniform(-4.0f, 4.0f));
        if (dt == DType::F16 && i % 97 == 5) h = uint16_t(0x0001 + i % 0x3ff);  // subnormal
        if (dt == DType::F16 && i == 11) h = 0x7c00;                            // +inf
        if (dt == DType::F16 && i == 12) h = 0xfc00;                            // -inf
        if (dt == DType::F16 && i == 13) h = 0x7e00;                            // NaN
        std::memcpy(p + 2 * i, &h, 2);
        break;
      }
      case DType::Q8_0: {
        fuselm::BlockQ8_0 b;
        b.d = fuselm::f32_to_f16(rng.uniform(0.001f, 0.1f));
        for (int j = 0; j < fuselm::kQ8Block; j++) b.qs[j] = int8_t(int(rng.next() % 256) - 128);
        std::memcpy(p + sizeof b * size_t(i), &b, sizeof b);
        break;
      }
      default: break;
    }
  }
  return t;
}

// shared: add to that Parity and leave the report to the caller
void embedding_cases(DType dt, const std::vector<int64_t>& widths, Parity* shared = nullptr) {
  Rng rng(0xe3b + uint64_t(dt));
  Parity own(0, 0);  // widening is exact
  Parity& p = shared ? *shared : own;
  const int64_t V = 7;
  for (int64_t D : widths) {
    for (int misalign = 0; misalign < 2; misalign++) {
      // misaligned: the table starts one element (a block: 18 .. 210 bytes) past a 16-byte boundary
      // (q8_0's planes: 16 bytes, their alignment)
      const size_t pad = misalign ? dt == DType::Q8_0 ? 16 : size_t(fuselm::dtype_block(dt).bytes) : 0;
      const std::vector<uint8_t> table = random_table(rng, dt, V, D, pad);
      for (const std::vector<int32_t>& ids : {std::vector<int32_t>{3}, std::vector<int32_t>{6, 0, 2, 2, 6}}) {
        const int64_t T = int64_t(ids.size());
        std::vector<float> want(size_t(T * D));
        fuselm::embedding_cpu({want.data(), table.data() + pad, dt, ids.data(), T, V, D}, ref_exec());
        DeviceBuffer<uint8_t> dtable(device_weights(dt, table, pad));
        DeviceBuffer<int32_t> dids(ids);
        DeviceBuffer<float> dout(size_t(T * D));
        fuselm::embedding_cuda({dout.p, dtable.p + pad, dt, dids.p, T, V, D}, nullptr, nullptr);
        const std::vector<float> got = dout.download();
        p.check(std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T) + " D=" + std::to_string(D) +
                    (misalign ? " misaligned" : ""),
                got.data(), want.data(), want.size());
        for (size_t i = 0; i < want.size(); i++)  // bit for bit, NaNs included
          CHECK_MSG(std::memcmp(&got[i], &want[i], 4) == 0, "element " + std::to_string(i));
      }
    }
  }
  if (!shared) p.report();
}

}  // namespace

EMU_TEST(embedding_f32_parity) { embedding_cases(DType::F32, {1, 31, 32, 33, 64, 4095, 4096, 4097}); }
EMU_TEST(embedding_f16_parity) { embedding_cases(DType::F16, {1, 31, 32, 33, 64, 4095, 4096, 4097}); }
EMU_TEST(embedding_bf16_parity) { embedding_cases(DType::BF16, {1, 31, 32, 33, 64, 4095, 4096, 4097}); }
EMU_TEST(embedding_q8_0_parity) { embedding_cases(DType::Q8_0, {32, 64, 4096}); }
// The GGUF block formats: rows of 1, 2 and 128 blocks (k-quants: 1, 2 and 16 super-blocks).
EMU_TEST(embedding_block_formats_parity) {
  Parity p(0, 0);
  for (DType dt : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::Q2_K, DType::Q3_K,
                   DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_XS}) {
    const int64_t b = fuselm::dtype_block(dt).values;
    embedding_cases(dt, {b, 2 * b, 4096}, &p);
  }
  p.report();
}

EMU_TEST(embedding_id_out_of_range_reported) {
  std::vector<float> table(4 * 8);
  for (size_t i = 0; i < table.size(); i++) table[i] = float(i + 1);
  DeviceBuffer<float> dtable(table), dout(std::vector<float>(3 * 8, -1.0f));
  DeviceBuffer<int32_t> dids(std::vector<int32_t>{2, 4, -7}), derr(2);
  fuselm::embedding_cuda({dout.p, dtable.p, fuselm::DType::F32, dids.p, 3, 4, 8}, derr.p, nullptr);
  const std::vector<float> out = dout.download();
  const std::vector<int32_t> err = derr.download();
  for (int i = 0; i < 8; i++) {
    CHECK_MSG(out[size_t(i)] == table[size_t(16 + i)], "row 0 is table row 2");
    CHECK_MSG(out[size_t(8 + i)] == 0.0f && out[size_t(16 + i)] == 0.0f, "the rows of bad ids are zeroed");
  }
  // blocks run in any order: either bad token may be the one reported
  CHECK_MSG((err[0] == 2 && err[1] == 4) || (err[0] == 3 && err[1] == -7), "the error word names a bad token and its id");
}

}  // namespace emu_tests

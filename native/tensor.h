// Tensor: a dtype, a row-major shape (outermost first) and an owning, 64-byte aligned buffer.
// Tensors are contiguous; a 2-D tensor [rows, cols] is the shape every kernel works on.
// Block-format tensors (q8_0, q4_k, ...) store whole blocks along the last dimension, laid out
// as GGUF stores them (native/quant_blocks.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant_blocks.h"

namespace fuselm {

enum class DType : int32_t {
  F32 = 0, F16 = 1, BF16 = 2, I32 = 3, Q8_0 = 4,
  Q4_0 = 5, Q4_1 = 6, Q5_0 = 7, Q5_1 = 8, Q2_K = 9, Q3_K = 10, Q4_K = 11, Q5_K = 12, Q6_K = 13,
  IQ4_NL = 14, IQ4_XS = 15,
};
constexpr int kDTypeCount = 16;

constexpr int kQ8Block = 32;       // values per q8_0 block
constexpr int kQ8BlockBytes = 34;  // f16 scale + 32 int8

// Values per block and bytes per block (1 and the element size for the plain types).
struct BlockGeom { int values, bytes; };
constexpr BlockGeom dtype_block(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return {1, 4};
    case DType::F16: case DType::BF16: return {1, 2};
    case DType::Q8_0: return {32, int(sizeof(BlockQ8_0))};
    case DType::Q4_0: return {32, int(sizeof(BlockQ4_0))};
    case DType::Q4_1: return {32, int(sizeof(BlockQ4_1))};
    case DType::Q5_0: return {32, int(sizeof(BlockQ5_0))};
    case DType::Q5_1: return {32, int(sizeof(BlockQ5_1))};
    case DType::IQ4_NL: return {32, int(sizeof(BlockIQ4_NL))};
    case DType::Q2_K: return {kQK, int(sizeof(BlockQ2_K))};
    case DType::Q3_K: return {kQK, int(sizeof(BlockQ3_K))};
    case DType::Q4_K: return {kQK, int(sizeof(BlockQ4_K))};
    case DType::Q5_K: return {kQK, int(sizeof(BlockQ5_K))};
    case DType::Q6_K: return {kQK, int(sizeof(BlockQ6_K))};
    case DType::IQ4_XS: return {kQK, int(sizeof(BlockIQ4_XS))};
  }
  return {1, 0};
}
// A block format (q8_0 and the GGUF quant types), as opposed to a plain element type.
constexpr bool is_block_dtype(DType t) { return dtype_block(t).values > 1; }
// The alignment the kernels need of a tensor's data: its element's, or its block struct's (whose
// widest member is an f16 scale). Views into a mapped file are made only at such offsets.
constexpr size_t dtype_align(DType t) { return is_block_dtype(t) ? 2 : size_t(dtype_block(t).bytes); }

const char* dtype_name(DType t);
bool dtype_from_name(const std::string& name, DType* out);
// Bytes for one row of `cols` values (cols must be a multiple of the block size).
size_t row_bytes(DType t, int64_t cols);

// A thrown error that the N-API layer turns into a FuselmError with this code.
struct Error : std::runtime_error {
  std::string code;
  Error(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

// Where a buffer's memory lives. Device memory is reached only through its DeviceMemory.
enum class Device : int32_t { Cpu = 0, Cuda = 1, CudaEmulated = 2 };
const char* device_name(Device d);  // "cpu", "cuda", "cuda-emulated"

// A device backend's memory: allocation, release and copies to and from the host. Copies are
// synchronous and throw Error on failure.
struct DeviceMemory {
  Device device;
  void* (*alloc)(size_t bytes);  // zero-filled
  void (*release)(void* p);
  void (*to_host)(void* dst, const void* src, size_t bytes);
  void (*from_host)(void* dst, const void* src, size_t bytes);
};

struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  const DeviceMemory* device = nullptr;  // null: host memory
  size_t mapped = 0;                      // > 0: host memory mapped (mmap) of this many bytes
  std::shared_ptr<const void> keep;       // non-null: a read-only view into memory `keep` owns (a mapped file)
  // Host memory, 64-byte aligned; zero-filled unless the caller overwrites it all; throws Error on failure
  explicit Buffer(size_t n, bool zero = true);
  // Zero-filled device memory
  Buffer(size_t n, const DeviceMemory& mem);
  // A read-only view of n bytes at `data`, which stays valid while `keep` lives
  Buffer(const void* data, size_t n, std::shared_ptr<const void> keep);
  bool read_only() const { return keep != nullptr; }
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::shared_ptr<Buffer> buf;

  static std::shared_ptr<Tensor> make(DType t, std::vector<int64_t> shape, bool zero = true);
  // A read-only host tensor over `data` (its bytes as stored), kept valid by `keep`.
  static std::shared_ptr<Tensor> view(DType t, std::vector<int64_t> shape, const void* data, std::shared_ptr<const void> keep);
  // A zero-filled tensor in a device's memory.
  static std::shared_ptr<Tensor> make_on(const DeviceMemory& mem, DType t, std::vector<int64_t> shape);
  // A copy of this tensor in a device's memory (mem null: in host memory).
  std::shared_ptr<Tensor> copy_to(const DeviceMemory* mem) const;
  Device device() const { return buf && buf->device ? buf->device->device : Device::Cpu; }
  bool on_host() const { return !buf || !buf->device; }
  // Copies bytes [off, off + n) of the tensor out to / in from host memory, wherever it lives;
  // writing to a read-only view is an E_INVALID_ARG.
  void read_bytes(void* dst, size_t off, size_t n) const;
  void write_bytes(const void* src, size_t off, size_t n);

  int64_t numel() const;
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const;  // product of all but the last dimension
  size_t nbytes() const { return buf ? buf->bytes : 0; }
  std::string describe() const;  // e.g. "f32[5, 64]"

  template <typename T> T* data() { return static_cast<T*>(buf->data); }
  template <typename T> const T* data() const { return static_cast<const T*>(buf->data); }
  uint8_t* row_ptr(int64_t r) { return static_cast<uint8_t*>(buf->data) + r * row_bytes(dtype, cols()); }
  const uint8_t* row_ptr(int64_t r) const {
    return static_cast<const uint8_t*>(buf->data) + r * row_bytes(dtype, cols());
  }
};
using TensorPtr = std::shared_ptr<Tensor>;

// Half-precision conversions (scalar, exact round-to-nearest-even).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

}  // namespace fuselm

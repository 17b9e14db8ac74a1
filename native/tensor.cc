#include "tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <sys/mman.h>

#include "q8_0_planes.h"

namespace fuselm {

namespace {
// Indexed by DType's value.
const char* const kDTypeNames[kDTypeCount] = {"f32",  "f16",  "bf16", "i32",  "q8_0", "q4_0",   "q4_1",  "q5_0",
                                              "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"};
}  // namespace

const char* dtype_name(DType t) {
  const int i = int(t);
  return i >= 0 && i < kDTypeCount ? kDTypeNames[i] : "?";
}

bool dtype_from_name(const std::string& n, DType* out) {
  for (int i = 0; i < kDTypeCount; i++)
    if (n == kDTypeNames[i]) { *out = DType(i); return true; }
  return false;
}

size_t row_bytes(DType t, int64_t cols) {
  const BlockGeom g = dtype_block(t);
  return size_t(cols / g.values) * size_t(g.bytes);
}

Buffer::Buffer(size_t n, bool zero) : bytes(n) {
  // Large buffers (weights, KV caches) are 2 MiB aligned and asked to be backed by huge pages:
  // streaming weights then misses the TLB far less (about +15% read bandwidth measured here).
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t align = n >= kHuge ? kHuge : 64;
  size_t alloc = (n + align - 1) / align * align;
  if (alloc == 0) alloc = 64;
#if defined(MAP_ANONYMOUS)
  if (align == kHuge) {
    // Mapped directly: the kernel's pages are zero and committed only when first written, so a
    // large buffer (a KV cache sized for the whole context) costs no memset on the calling (JS)
    // thread and no memory for the positions never used. Over-map by 2 MiB to align, then trim.
    void* p = mmap(nullptr, alloc + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error("E_OUT_OF_MEMORY", "out of memory mapping " + std::to_string(n) + " bytes");
    const uintptr_t start = reinterpret_cast<uintptr_t>(p), aligned = (start + kHuge - 1) / kHuge * kHuge;
    if (aligned > start) munmap(p, aligned - start);
    if (aligned + alloc < start + alloc + kHuge) munmap(reinterpret_cast<void*>(aligned + alloc), start + alloc + kHuge - (aligned + alloc));
    data = reinterpret_cast<void*>(aligned);
    mapped = alloc;
#ifdef MADV_HUGEPAGE
    madvise(data, alloc, MADV_HUGEPAGE);  // advisory: failure is harmless
#endif
    return;
  }
#endif
  data = std::aligned_alloc(align, alloc);
  if (!data) throw Error("E_OUT_OF_MEMORY", "out of memory allocating " + std::to_string(n) + " bytes");
#ifdef MADV_HUGEPAGE
  if (align == kHuge) madvise(data, alloc, MADV_HUGEPAGE);  // advisory: failure is harmless
#endif
  if (zero) std::memset(data, 0, alloc);
}
Buffer::Buffer(size_t n, const DeviceMemory& mem) : data(mem.alloc(n)), bytes(n), device(&mem) {}
Buffer::Buffer(const void* view, size_t n, std::shared_ptr<const void> owner)
    : data(const_cast<void*>(view)), bytes(n), keep(std::move(owner)) {}
Buffer::~Buffer() {
  if (keep) return;  // a view: `keep` releases the memory when its last holder goes
  if (device)
    device->release(data);
#if defined(MAP_ANONYMOUS)
  else if (mapped)
    munmap(data, mapped);
#endif
  else
    std::free(data);
}

const char* device_name(Device d) {
  switch (d) {
    case Device::Cpu: return "cpu";
    case Device::Cuda: return "cuda";
    case Device::CudaEmulated: return "cuda-emulated";
  }
  return "?";
}

namespace {
void check_shape(DType t, const std::vector<int64_t>& shape) {
  if (shape.empty() || shape.size() > 4)
    throw Error("E_INVALID_ARG", "tensor rank must be 1..4, got " + std::to_string(shape.size()));
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) throw Error("E_INVALID_ARG", "tensor dimensions must be positive");
    if (n > std::numeric_limits<int64_t>::max() / d) throw Error("E_INVALID_ARG", "tensor shape overflows");
    n *= d;
  }
  const int block = dtype_block(t).values;
  if (shape.back() % block != 0)
    throw Error("E_INVALID_ARG", std::string(dtype_name(t)) + " tensor's last dimension must be a multiple of " +
                                     std::to_string(block) + ", got " + std::to_string(shape.back()));
}
}  // namespace

std::shared_ptr<Tensor> Tensor::make(DType t, std::vector<int64_t> shape, bool zero) {
  check_shape(t, shape);
  auto out = std::make_shared<Tensor>();
  out->dtype = t;
  out->shape = std::move(shape);
  out->buf = std::make_shared<Buffer>(row_bytes(t, out->cols()) * size_t(out->rows()), zero);
  return out;
}

std::shared_ptr<Tensor> Tensor::view(DType t, std::vector<int64_t> shape, const void* data, std::shared_ptr<const void> keep) {
  check_shape(t, shape);
  if (reinterpret_cast<uintptr_t>(data) % dtype_align(t) != 0)
    throw Error("E_INVALID_ARG", std::string("a ") + dtype_name(t) + " view needs " + std::to_string(dtype_align(t)) + "-byte aligned data");
  auto out = std::make_shared<Tensor>();
  out->dtype = t;
  out->shape = std::move(shape);
  out->buf = std::make_shared<Buffer>(data, row_bytes(t, out->cols()) * size_t(out->rows()), std::move(keep));
  return out;
}

std::shared_ptr<Tensor> Tensor::make_on(const DeviceMemory& mem, DType t, std::vector<int64_t> shape) {
  check_shape(t, shape);
  auto out = std::make_shared<Tensor>();
  out->dtype = t;
  out->shape = std::move(shape);
  out->buf = std::make_shared<Buffer>(row_bytes(t, out->cols()) * size_t(out->rows()), mem);
  return out;
}

std::shared_ptr<Tensor> Tensor::copy_to(const DeviceMemory* mem) const {
  auto out = std::make_shared<Tensor>();
  out->dtype = dtype;
  out->shape = shape;
  out->buf = mem ? std::make_shared<Buffer>(nbytes(), *mem) : std::make_shared<Buffer>(nbytes(), false);
  if (on_host()) {
    out->write_bytes(buf->data, 0, nbytes());
  } else if (!mem) {
    read_bytes(out->buf->data, 0, nbytes());
  } else {  // device to device, through the host
    std::vector<uint8_t> staging(nbytes());
    read_bytes(staging.data(), 0, nbytes());
    out->write_bytes(staging.data(), 0, nbytes());
  }
  return out;
}

namespace {

// q8_0 in device memory is two planes (native/q8_0_planes.h); these move stored-layout bytes
// [off, off + n) out of and into them, a bounded run of blocks at a time.
constexpr size_t kPlaneChunkBlocks = size_t(1) << 16;

void q8_0_planes_read(const Buffer& b, uint8_t* dst, size_t off, size_t n) {
  constexpr size_t kB = sizeof(BlockQ8_0);
  const uint8_t* base = static_cast<const uint8_t*>(b.data);
  const size_t scales = q8_0_scales_at(b.bytes);
  std::vector<uint8_t> q, d, blocks;
  for (size_t at = off; at < off + n;) {
    const size_t first = at / kB, end = std::min((off + n + kB - 1) / kB, first + kPlaneChunkBlocks), count = end - first;
    q.resize(32 * count), d.resize(2 * count), blocks.resize(kB * count);
    b.device->to_host(q.data(), base + 32 * first, q.size());
    b.device->to_host(d.data(), base + scales + 2 * first, d.size());
    q8_0_join(q.data(), d.data(), count, blocks.data());
    const size_t upto = std::min(off + n, end * kB);
    std::memcpy(dst + (at - off), blocks.data() + (at - first * kB), upto - at);
    at = upto;
  }
}

void q8_0_planes_write(const Buffer& b, const uint8_t* src, size_t off, size_t n) {
  constexpr size_t kB = sizeof(BlockQ8_0);
  uint8_t* base = static_cast<uint8_t*>(b.data);
  const size_t scales = q8_0_scales_at(b.bytes);
  std::vector<uint8_t> q, d, blocks;
  for (size_t at = off; at < off + n;) {
    const size_t first = at / kB, end = std::min((off + n + kB - 1) / kB, first + kPlaneChunkBlocks), count = end - first;
    const size_t upto = std::min(off + n, end * kB);
    blocks.resize(kB * count);
    // blocks written only in part keep their other bytes
    if (at != first * kB) q8_0_planes_read(b, blocks.data(), first * kB, kB);
    if (upto != end * kB && (count > 1 || at == first * kB)) q8_0_planes_read(b, blocks.data() + kB * (count - 1), (end - 1) * kB, kB);
    std::memcpy(blocks.data() + (at - first * kB), src + (at - off), upto - at);
    q.resize(32 * count), d.resize(2 * count);
    q8_0_split(blocks.data(), count, q.data(), d.data());
    b.device->from_host(base + 32 * first, q.data(), q.size());
    b.device->from_host(base + scales + 2 * first, d.data(), d.size());
    at = upto;
  }
}

}  // namespace

void Tensor::read_bytes(void* dst, size_t off, size_t n) const {
  if (n == 0) return;
  if (buf->device && dtype == DType::Q8_0) return q8_0_planes_read(*buf, static_cast<uint8_t*>(dst), off, n);
  const uint8_t* src = static_cast<const uint8_t*>(buf->data) + off;
  if (buf->device)
    buf->device->to_host(dst, src, n);
  else
    std::memcpy(dst, src, n);
}

void Tensor::write_bytes(const void* src, size_t off, size_t n) {
  if (buf->read_only()) throw Error("E_INVALID_ARG", describe() + " is a read-only view of a mapped file; it cannot be written");
  if (n == 0) return;
  if (buf->device && dtype == DType::Q8_0) return q8_0_planes_write(*buf, static_cast<const uint8_t*>(src), off, n);
  uint8_t* dst = static_cast<uint8_t*>(buf->data) + off;
  if (buf->device)
    buf->device->from_host(dst, src, n);
  else
    std::memcpy(dst, src, n);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Tensor::rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); i++) n *= shape[i];
  return n;
}

std::string Tensor::describe() const {
  std::string s = std::string(dtype_name(dtype)) + "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do { mant <<= 1; e++; } while (!(mant & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | mant << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t exp = (u >> 23) & 0xff;
  uint32_t mant = u & 0x7fffff;
  if (exp == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = int(exp) - 127 + 15;
  if (e >= 31) return uint16_t(sign | 0x7c00);
  if (e <= 0) {  // subnormal or zero in f16
    if (e < -10) return uint16_t(sign);
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return uint16_t(sign | half);
  }
  uint32_t half = uint32_t(e) << 10 | mant >> 13;
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;  // may carry into exponent: correct
  return uint16_t(sign | half);
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

}  // namespace fuselm

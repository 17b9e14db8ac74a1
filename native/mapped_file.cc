#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace fuselm {

namespace {
std::atomic<size_t> g_mapped_bytes{0};
#ifdef MAP_POPULATE
constexpr int kPopulate = MAP_POPULATE;
#else
constexpr int kPopulate = 0;  // not Linux: the pages fault in during the first steps
#endif
}  // namespace

size_t mapped_file_bytes() { return g_mapped_bytes.load(); }

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, uint64_t min_size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error("E_IO", path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("E_IO", path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("E_IO", path + ": not a regular file; only regular files are mapped");
  }
  const uint64_t size = uint64_t(st.st_size);
  if (size < min_size) {
    ::close(fd);
    throw Error("E_FORMAT", path + ": the file is " + std::to_string(size) + " bytes but its header places tensor data up to byte " +
                                std::to_string(min_size) + " (was it truncated after it was read?)");
  }
  void* p = nullptr;
  if (size > 0) {
    // MAP_POPULATE (as llama.cpp's default prefetch): the page tables are filled here, off the
    // JS thread, reading what the page cache lacks. Faulting the pages in one by one during the
    // first forward steps instead measured 1 to 7 s slower on a warm 0.6 to 1.1 GB file.
    p = ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE | kPopulate, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file open
    if (p == MAP_FAILED) throw Error("E_IO", path + ": cannot map " + std::to_string(size) + " bytes: " + std::strerror(err));
  } else {
    ::close(fd);
  }
  g_mapped_bytes += size_t(size);
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), size_t(size)));
}

MappedFile::MappedFile(std::string path, const uint8_t* base, size_t size) : path_(std::move(path)), base_(base), size_(size) {}

MappedFile::~MappedFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
  g_mapped_bytes -= size_;
}

TensorPtr MappedFile::tensor(int64_t offset, DType dtype, std::vector<int64_t> shape) {
  const std::string where = path_ + ": at offset " + std::to_string(offset) + ": ";
  if (shape.empty()) throw Error("E_INVALID_ARG", where + "a tensor needs a shape");
  const int block = dtype_block(dtype).values;
  if (shape.back() % block != 0)
    throw Error("E_FORMAT", where + "a " + dtype_name(dtype) + " row of " + std::to_string(shape.back()) + " values is not whole blocks of " +
                                std::to_string(block));
  // the shape itself (rank, positive dims, overflow) is checked by Tensor::view / make
  uint64_t n = shape.back() > 0 ? row_bytes(dtype, shape.back()) : 0;
  bool overflow = false;
  for (size_t i = 0; i + 1 < shape.size(); i++) overflow |= __builtin_mul_overflow(n, shape[i] > 0 ? uint64_t(shape[i]) : 0, &n);
  if (overflow || offset < 0 || uint64_t(offset) > size_ || n > size_ - uint64_t(offset))
    throw Error("E_FORMAT", where + "tensor data of " + std::to_string(n) + " bytes runs past the end of the file (" + std::to_string(size_) + " bytes)");
  const uint8_t* src = base_ + offset;
  if (uint64_t(offset) % dtype_align(dtype) == 0) return Tensor::view(dtype, std::move(shape), src, shared_from_this());
  // an offset the kernels cannot read in place (GGUF's alignment below the dtype's): a copy
  TensorPtr t = Tensor::make(dtype, std::move(shape), /*zero=*/false);
  std::memcpy(t->buf->data, src, t->nbytes());
  return t;
}

}  // namespace fuselm

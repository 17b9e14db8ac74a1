// A model file mapped read-only (MAP_PRIVATE, PROT_READ), so that weights kept in their stored
// layout are views into the page cache instead of copies: a warm file loads without reading it,
// and its pages are file-backed (shared with other processes mapping the same file, and dropped
// by the kernel under pressure rather than swapped). Every view holds a share of the mapping
// (Buffer::keep); the file is unmapped when the last view and the loader's handle are gone.
//
// Truncating or rewriting a file while it is mapped is undefined, as for llama.cpp's mmap: a
// read past the new end raises SIGBUS. The size is checked once, when the file is mapped.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace fuselm {

class MappedFile : public std::enable_shared_from_this<MappedFile> {
 public:
  // Maps `path` whole. E_FORMAT when the file is smaller than `min_size` (the size its header
  // was checked against when it was parsed), E_IO when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path, uint64_t min_size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  // The tensor at bytes [offset, offset + its size) of the file: a read-only view when the
  // offset suits the dtype (dtype_align), else a copy in memory of its own. E_FORMAT when the
  // bytes lie outside the file or a row is not whole blocks.
  TensorPtr tensor(int64_t offset, DType dtype, std::vector<int64_t> shape);

 private:
  MappedFile(std::string path, const uint8_t* base, size_t size);
  std::string path_;
  const uint8_t* base_;
  size_t size_;
};

// Bytes of all files mapped now in this process (mappings still held by a tensor or a handle).
size_t mapped_file_bytes();

}  // namespace fuselm

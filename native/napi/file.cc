// Reading tensor data straight from a model file into native memory, off the JS thread, so
// weights never pass through the JS heap.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "napi/info.h"
#include "napi/util.h"
#include "napi/wraps.h"

namespace fuselm {

namespace {
void read_exact(const std::string& path, int64_t offset, Tensor& t) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("E_IO", path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error("E_IO", path + ": cannot stat: " + std::strerror(errno));
  }
  const uint64_t need = uint64_t(offset) + t.nbytes();
  if (offset < 0 || need > uint64_t(st.st_size)) {
    ::close(fd);
    throw Error("E_FORMAT", path + ": at offset " + std::to_string(offset) + ": tensor data of " +
                                std::to_string(t.nbytes()) + " bytes runs past the end of the file (" +
                                std::to_string(st.st_size) + " bytes)");
  }
  uint8_t* dst = static_cast<uint8_t*>(t.buf->data);
  size_t done = 0;
  while (done < t.nbytes()) {
    ssize_t r = ::pread(fd, dst + done, t.nbytes() - done, off_t(offset + int64_t(done)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      std::string why = r < 0 ? std::strerror(errno) : "unexpected end of file";
      ::close(fd);
      throw Error("E_IO", path + ": read failed at offset " + std::to_string(offset + int64_t(done)) + ": " + why);
    }
    done += size_t(r);
  }
  ::close(fd);
}
}  // namespace

// tensorFromFile(path, byteOffset, dtype, shape): Promise<Tensor>
Napi::Value tensor_from_file(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_js(env, "E_INVALID_ARG", "tensorFromFile: path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int64_t offset = get_int(info[1], "byteOffset");
  DType dtype = get_dtype(info[2]);
  std::vector<int64_t> shape = get_shape(info[3]);
  // A row must be whole blocks: refused here, before anything is allocated or read.
  const int block = dtype_block(dtype).values;
  if (!shape.empty() && shape.back() % block != 0)
    throw_js(env, "E_FORMAT",
             path + ": at offset " + std::to_string(offset) + ": a " + dtype_name(dtype) + " row of " +
                 std::to_string(shape.back()) + " values is not whole blocks of " + std::to_string(block));
  auto out = std::make_shared<TensorPtr>();
  return PromiseWorker::start(
      env,
      [=] {
        *out = Tensor::make(dtype, shape, /*zero=*/false);  // every byte is read from the file
        read_exact(path, offset, **out);
      },
      [out](Napi::Env env) -> Napi::Value { return TensorWrap::wrap(env, *out); });
}

}  // namespace fuselm

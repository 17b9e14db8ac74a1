// Tensor data straight from a model file, off the JS thread, so weights never pass through the
// JS heap: read into native memory (tensorFromFile), or mapped (mapFile, native/mapped_file.h).
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

// mapFile(path, minSize): Promise<MappedFile>, mapped off the JS thread.
Napi::Value map_file(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_js(env, "E_INVALID_ARG", "mapFile: path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  const int64_t min_size = get_int(info[1], "minSize");
  if (min_size < 0) throw_js(env, "E_INVALID_ARG", "mapFile: minSize must be >= 0");
  auto out = std::make_shared<std::shared_ptr<MappedFile>>();
  return PromiseWorker::start(
      env, [=] { *out = MappedFile::open(path, uint64_t(min_size)); },
      [out](Napi::Env env) -> Napi::Value { return MappedFileWrap::wrap(env, *out); });
}

Napi::Value mapped_file_bytes_info(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(mapped_file_bytes())); }

Napi::Function MappedFileWrap::define(Napi::Env env) {
  return DefineClass(env, "MappedFile",
                     {InstanceAccessor<&MappedFileWrap::path>("path"), InstanceAccessor<&MappedFileWrap::size>("size"),
                      InstanceMethod<&MappedFileWrap::tensor>("tensor"), InstanceMethod<&MappedFileWrap::free>("free")});
}

Napi::Object MappedFileWrap::wrap(Napi::Env env, std::shared_ptr<MappedFile> f) {
  auto* data = env.GetInstanceData<AddonData>();
  return data->mapped_file_ctor.New({Napi::External<std::shared_ptr<MappedFile>>::New(env, &f)});
}

MappedFileWrap::MappedFileWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MappedFileWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) throw_js(info.Env(), "E_INVALID_ARG", "a MappedFile is made by mapFile()");
  f_ = *info[0].As<Napi::External<std::shared_ptr<MappedFile>>>().Data();
}

std::shared_ptr<MappedFile> MappedFileWrap::get(Napi::Env env) const {
  if (!f_) throw_js(env, "E_DISPOSED", "mapped file used after free()");
  return f_;
}

Napi::Value MappedFileWrap::path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), get(info.Env())->path()); }

Napi::Value MappedFileWrap::size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(get(info.Env())->size())); }

// tensor(byteOffset, dtype, shape): Promise<Tensor>, a view into the mapping (or a copy where
// the offset does not suit the dtype), made off the JS thread.
Napi::Value MappedFileWrap::tensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<MappedFile> f = get(env);
  const int64_t offset = get_int(info[0], "byteOffset");
  const DType dtype = get_dtype(info[1]);
  std::vector<int64_t> shape = get_shape(info[2]);
  auto out = std::make_shared<TensorPtr>();
  return PromiseWorker::start(
      env, [=] { *out = f->tensor(offset, dtype, shape); },
      [out](Napi::Env env) -> Napi::Value { return TensorWrap::wrap(env, *out); });
}

Napi::Value MappedFileWrap::free(const Napi::CallbackInfo& info) {
  f_.reset();
  return info.Env().Undefined();
}

}  // namespace fuselm

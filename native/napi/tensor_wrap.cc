#include "napi/info.h"
#include "napi/util.h"
#include "napi/wraps.h"

namespace fuselm {

Napi::Function TensorWrap::define(Napi::Env env) {
  return DefineClass(env, "Tensor",
                     {InstanceAccessor<&TensorWrap::dtype>("dtype"), InstanceAccessor<&TensorWrap::shape>("shape"),
                      InstanceAccessor<&TensorWrap::nbytes>("nbytes"), InstanceAccessor<&TensorWrap::device>("device"),
                      InstanceAccessor<&TensorWrap::mapped>("mapped"),
                      InstanceMethod<&TensorWrap::write>("write"), InstanceMethod<&TensorWrap::read>("read"),
                      InstanceMethod<&TensorWrap::to>("to"), InstanceMethod<&TensorWrap::free>("free")});
}

// new Tensor(dtype, shape, device = 'cpu'): a zero-filled tensor.
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (info.Length() == 1 && info[0].IsExternal()) {  // internal: wrapping an existing tensor
    t_ = *info[0].As<Napi::External<TensorPtr>>().Data();
    return;
  }
  const Device d = info.Length() > 2 && !info[2].IsUndefined() ? get_device(info[2], "device") : Device::Cpu;
  const DeviceMemory* mem = memory_for(info.Env(), d);
  try {
    t_ = mem ? Tensor::make_on(*mem, get_dtype(info[0]), get_shape(info[1])) : Tensor::make(get_dtype(info[0]), get_shape(info[1]));
  } catch (const Error& e) {
    throw_js(info.Env(), e.code, e.what());
  } catch (const std::bad_alloc&) {
    throw_js(info.Env(), "E_OUT_OF_MEMORY", "out of memory allocating a tensor");
  }
}

Napi::Object TensorWrap::wrap(Napi::Env env, TensorPtr t) {
  auto* data = env.GetInstanceData<AddonData>();
  return data->tensor_ctor.New({Napi::External<TensorPtr>::New(env, &t)});
}

TensorPtr TensorWrap::unwrap(const Napi::Value& v, const char* role) {
  auto* data = v.Env().GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->tensor_ctor.Value()))
    throw_js(v.Env(), "E_INVALID_ARG", std::string(role) + " must be a Tensor");
  return Unwrap(v.As<Napi::Object>())->get(v.Env());
}

TensorPtr TensorWrap::get(Napi::Env env) const {
  if (!t_) throw_js(env, "E_DISPOSED", "tensor used after free()");
  return t_;
}

Napi::Value TensorWrap::dtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(get(info.Env())->dtype)); }

Napi::Value TensorWrap::shape(const Napi::CallbackInfo& info) {
  TensorPtr t = get(info.Env());
  Napi::Array a = Napi::Array::New(info.Env(), t->shape.size());
  for (size_t i = 0; i < t->shape.size(); i++) a.Set(uint32_t(i), Napi::Number::New(info.Env(), double(t->shape[i])));
  return a;
}

Napi::Value TensorWrap::device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_name(get(info.Env())->device())); }

// mapped: true for a read-only view into a mapped file (MappedFile.tensor)
Napi::Value TensorWrap::mapped(const Napi::CallbackInfo& info) {
  TensorPtr t = get(info.Env());
  return Napi::Boolean::New(info.Env(), t->buf && t->buf->read_only());
}

// to(device): a copy of the tensor in that device's memory.
Napi::Value TensorWrap::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorPtr t = get(env);
  const DeviceMemory* mem = memory_for(env, get_device(info[0], "device"));
  try {
    return wrap(env, t->copy_to(mem));
  } catch (const Error& e) {
    throw_js(env, e.code, e.what());
  }
}

Napi::Value TensorWrap::nbytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(get(info.Env())->nbytes())); }

// write(bytes: ArrayBufferView, byteOffset = 0): copies bytes into the tensor.
Napi::Value TensorWrap::write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorPtr t = get(env);
  if (!info[0].IsTypedArray() && !info[0].IsDataView())
    throw_js(env, "E_INVALID_ARG", "write: expected a TypedArray or Buffer");
  const uint8_t* src;
  size_t len;
  if (info[0].IsTypedArray()) {
    auto ta = info[0].As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    len = ta.ByteLength();
  } else {
    auto dv = info[0].As<Napi::DataView>();
    src = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    len = dv.ByteLength();
  }
  int64_t off = info.Length() > 1 && !info[1].IsUndefined() ? get_int(info[1], "byteOffset") : 0;
  if (off < 0 || uint64_t(off) + len > t->nbytes())
    throw_js(env, "E_INVALID_ARG", "write: " + std::to_string(len) + " bytes at offset " + std::to_string(off) +
                                        " do not fit " + t->describe() + " (" + std::to_string(t->nbytes()) + " bytes)");
  try {
    t->write_bytes(src, size_t(off), len);
  } catch (const Error& e) {
    throw_js(env, e.code, e.what());
  }
  return env.Undefined();
}

// read(byteOffset = 0, byteLength = rest): a copy of the bytes as an ArrayBuffer.
Napi::Value TensorWrap::read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorPtr t = get(env);
  int64_t off = info.Length() > 0 && !info[0].IsUndefined() ? get_int(info[0], "byteOffset") : 0;
  int64_t len = info.Length() > 1 && !info[1].IsUndefined() ? get_int(info[1], "byteLength") : int64_t(t->nbytes()) - off;
  if (off < 0 || len < 0 || uint64_t(off + len) > t->nbytes())
    throw_js(env, "E_INVALID_ARG", "read: range [" + std::to_string(off) + ", " + std::to_string(off + len) +
                                        ") is outside " + t->describe() + " (" + std::to_string(t->nbytes()) + " bytes)");
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, size_t(len));
  try {
    t->read_bytes(ab.Data(), size_t(off), size_t(len));
  } catch (const Error& e) {
    throw_js(env, e.code, e.what());
  }
  return ab;
}

Napi::Value TensorWrap::free(const Napi::CallbackInfo& info) {
  t_.reset();
  return info.Env().Undefined();
}

// growRows(tensors, rows): Promise<Tensor[]>. For each 2-D tensor, a new one of `rows` rows
// (same dtype, columns and device) holding the old one's rows first, zeros after; made and
// filled off the JS thread (a thousand layers' KV caches growing to more positions would
// otherwise stall the event loop).
Napi::Value grow_rows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw_js(env, "E_INVALID_ARG", "growRows(tensors[], rows)");
  const int64_t rows = get_int(info[1], "rows");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<TensorPtr> olds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    TensorPtr t = TensorWrap::unwrap(arr.Get(i), "growRows: tensors[]");
    if (t->shape.size() != 2 || rows < t->shape[0])
      throw_js(env, "E_INVALID_ARG", "growRows: tensor #" + std::to_string(i) + " (" + t->describe() + ") cannot grow to " +
                                         std::to_string(rows) + " rows");
    olds.push_back(std::move(t));
  }
  auto news = std::make_shared<std::vector<TensorPtr>>();
  return PromiseWorker::start(
      env,
      [olds = std::move(olds), news, rows] {
        std::vector<uint8_t> staging;  // device to device goes through the host
        for (const TensorPtr& old : olds) {
          const std::vector<int64_t> shape{rows, old->shape[1]};
          TensorPtr t = old->on_host() ? Tensor::make(old->dtype, shape) : Tensor::make_on(*old->buf->device, old->dtype, shape);
          const size_t n = old->nbytes();
          if (t->on_host()) {
            old->read_bytes(t->buf->data, 0, n);
          } else {
            staging.resize(n);
            old->read_bytes(staging.data(), 0, n);
            t->write_bytes(staging.data(), 0, n);
          }
          news->push_back(std::move(t));
        }
      },
      [news](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, news->size());
        for (size_t i = 0; i < news->size(); i++) out.Set(uint32_t(i), TensorWrap::wrap(env, (*news)[i]));
        return out;
      });
}

}  // namespace fuselm

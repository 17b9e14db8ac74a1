#include "napi/util.h"

#include <cmath>
#include <new>

namespace fuselm {

Napi::Error js_error(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

void throw_js(Napi::Env env, const std::string& code, const std::string& msg) { throw js_error(env, code, msg); }

int64_t get_int(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw_js(v.Env(), "E_INVALID_ARG", std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
    throw_js(v.Env(), "E_INVALID_ARG", std::string(what) + " must be an integer, got " + std::to_string(d));
  return int64_t(d);
}

double get_number(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw_js(v.Env(), "E_INVALID_ARG", std::string(what) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::vector<int64_t> get_shape(const Napi::Value& v) {
  if (!v.IsArray()) throw_js(v.Env(), "E_INVALID_ARG", "shape must be an array of positive integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> s;
  for (uint32_t i = 0; i < a.Length(); i++) s.push_back(get_int(a.Get(i), "shape entry"));
  return s;
}

DType get_dtype(const Napi::Value& v) {
  DType t;
  if (!v.IsString() || !dtype_from_name(v.As<Napi::String>().Utf8Value(), &t))
    throw_js(v.Env(), "E_INVALID_ARG",
             "dtype must be one of f32, f16, bf16, i32, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, "
             "iq4_nl, iq4_xs");
  return t;
}

Napi::Promise PromiseWorker::start(Napi::Env env, Job job, Done done) {
  auto* w = new PromiseWorker(env, std::move(job), std::move(done));
  Napi::Promise p = w->deferred_.Promise();
  w->Queue();
  return p;
}

PromiseWorker::PromiseWorker(Napi::Env env, Job job, Done done)
    : Napi::AsyncWorker(env, "fuselm"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)), done_(std::move(done)) {}

void PromiseWorker::Execute() {
  try {
    job_();
  } catch (const Error& e) {
    code_ = e.code;
    SetError(e.what());
  } catch (const std::bad_alloc& e) {
    code_ = "E_OUT_OF_MEMORY";
    SetError(std::string("out of memory: ") + e.what());
  } catch (const std::exception& e) {
    SetError(e.what());
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  try {
    deferred_.Resolve(done_ ? done_(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  deferred_.Reject(js_error(Env(), code_, e.Message()).Value());
}

}  // namespace fuselm

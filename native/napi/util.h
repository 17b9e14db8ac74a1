// Shared N-API helpers: typed JS errors, argument readers and a Promise-returning worker that
// runs its job on a libuv thread (never an N-API call off the JS thread).
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "tensor.h"

namespace fuselm {

// A JS Error carrying `code` (lib/native.ts turns it into a FuselmError).
Napi::Error js_error(Napi::Env env, const std::string& code, const std::string& msg);
[[noreturn]] void throw_js(Napi::Env env, const std::string& code, const std::string& msg);

int64_t get_int(const Napi::Value& v, const char* what);
double get_number(const Napi::Value& v, const char* what);
std::vector<int64_t> get_shape(const Napi::Value& v);
DType get_dtype(const Napi::Value& v);

// Runs `job` off the JS thread and settles a Promise: resolved with `done()` (called back on
// the JS thread) or rejected with the job's Error and its code.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  static Napi::Promise start(Napi::Env env, Job job, Done done);

 private:
  PromiseWorker(Napi::Env env, Job job, Done done);
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

  Napi::Promise::Deferred deferred_;
  Job job_;
  Done done_;
  std::string code_ = "E_NATIVE";
};

}  // namespace fuselm

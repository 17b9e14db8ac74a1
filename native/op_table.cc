// The op table's registry (filled by FUSELM_CPU_OP as the addon loads) and the checks shared
// by the ops' validate().
#include <algorithm>
#include <cstring>

#include "op.h"

namespace fuselm {

namespace {
std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> ops;
  return ops;
}
}  // namespace

bool register_cpu_op(const OpDef& def, CpuEval eval) {
  auto& ops = registry();
  auto at = std::lower_bound(ops.begin(), ops.end(), def.name,
                             [](const OpEntry& e, const char* name) { return std::strcmp(e.def->name, name) < 0; });
  ops.insert(at, OpEntry{&def, eval});
  return true;
}

const std::vector<OpEntry>& op_table() { return registry(); }

const OpEntry* find_op(const std::string& name) {
  for (const OpEntry& e : registry())
    if (name == e.def->name) return &e;
  return nullptr;
}

const OpEntry& op_entry(const OpDef& def) {
  for (const OpEntry& e : registry())
    if (e.def == &def) return e;
  throw Error("E_NATIVE", std::string("op ") + def.name + " has no CPU implementation registered");
}

void check_context(int64_t rows, int64_t pos, int64_t ctx) {
  if (pos < 0) throw Error("E_INVALID_ARG", "graph run: sequence position must be >= 0, got " + std::to_string(pos));
  if (pos + rows > ctx)
    throw Error("E_CONTEXT_FULL", "context full: positions " + std::to_string(pos) + ".." + std::to_string(pos + rows - 1) +
                                      " do not fit a KV cache of " + std::to_string(ctx) + " positions");
}

int OpDef::role(const char* n) const {
  for (size_t i = 0; i < roles.size(); i++)
    if (std::strcmp(roles[i].name, n) == 0) return int(i);
  return -1;
}

void Check::fail(const std::string& what) const {
  throw Error("E_INVALID_ARG", "op #" + std::to_string(index) + " (" + node.op->name + "): " + what);
}

const char* Check::name(int role) const { return node.op->roles[size_t(role)].name; }

const Tensor& Check::tensor(int role) const {
  if (!node.t[role]) fail(std::string("missing tensor '") + name(role) + "'");
  return *node.t[role];
}

const Tensor& Check::f32(int role) const {
  const Tensor& t = tensor(role);
  if (t.dtype != DType::F32) fail(std::string(name(role)) + " must be f32, got " + t.describe());
  return t;
}

const Tensor& Check::kv(int role) const {
  const Tensor& t = tensor(role);
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(std::string(name(role)) + " must be f32, f16 or bf16, got " + t.describe());
  return t;
}

void Check::same_dtype(int role, int other) const {
  if (tensor(role).dtype != tensor(other).dtype)
    fail(std::string(name(role)) + " must have " + name(other) + "'s dtype (" + dtype_name(tensor(other).dtype) + "), got " +
         tensor(role).describe());
}

void Check::cols(int role, int64_t c) const {
  if (tensor(role).cols() != c)
    fail(std::string(name(role)) + " must have " + std::to_string(c) + " columns, got " + tensor(role).describe());
}

void Check::rows(int role, int64_t at_least) const {
  if (tensor(role).rows() < at_least)
    fail(std::string(name(role)) + " must hold at least " + std::to_string(at_least) + " rows, got " + tensor(role).describe());
}

void Check::numel(int role, int64_t n) const {
  if (tensor(role).numel() != n)
    fail(std::string(name(role)) + " must hold " + std::to_string(n) + " values, got " + tensor(role).describe());
}

void Check::activations(std::initializer_list<int> roles, int64_t c) const {
  for (int r : roles) {
    f32(r);
    cols(r, c);
    rows(r, max_rows);
  }
}

}  // namespace fuselm

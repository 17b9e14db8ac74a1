// The op table (ARCHITECTURE.md, "Ops"). Every op is defined once, by an OpDef in
// native/ops/<op>.h: its name, its tensors under the roles they play, its parameters (typed,
// required or with an explicit default), the checks a node must pass, and the mapping of a
// node to its kernels' Args (used by every backend). The backends register their
// implementations against the definition: the CPU's in native/cpu/<op>.cc (FUSELM_CPU_OP),
// CUDA's in cuda/<op>.cu (FUSELM_CUDA_OP). The N-API layer parses graph nodes by this table and
// exports it (opTable()), which lib/ops/table.ts's typed builders are tested against.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "tensor.h"
#include "thread_pool.h"

namespace fuselm {

constexpr int kMaxRoles = 7;
constexpr int kMaxParams = 10;

// How an op uses a tensor. Update: some rows written, the rest kept (a KV cache).
enum class Access : uint8_t { In, Out, InOut, Update };

struct RoleDef {
  const char* name;
  Access access;
  bool required = true;
  // May stay in host memory on a device backend: an input is copied in before each run (token
  // ids); an output that no op reads is copied out after it (logits, chosen ids).
  bool host = false;
  // A host input a device backend copies in whole before each run, not just its first n rows
  // (a block table, indexed by sequence).
  bool whole = false;
};

enum class ParamType : uint8_t { Float, Int, Bool };
struct ParamDef {
  const char* name;
  ParamType type;
  bool required;
  double fallback;  // the default when not required
};

struct OpDef;

// One op of a graph: its tensors by role index and its parameters by parameter index (the
// indices are the order of OpDef::roles and OpDef::params; each native/ops/<op>.h names them).
struct Node {
  const OpDef* op = nullptr;
  TensorPtr t[kMaxRoles];
  double p[kMaxParams] = {};
  // A position-dependent op (OpDef::positional) of one sequence in a batch of several covers
  // rows row0 .. row0 + seq_rows - 1 of the step (those below n), at the position held in the
  // graph's positions tensor at pos_slot. pos_slot < 0: all n rows at the run's pos.
  int64_t row0 = 0, seq_rows = 1, pos_slot = -1;

  float f(int param) const { return float(p[param]); }
  int64_t i(int param) const { return int64_t(p[param]); }
  bool b(int param) const { return p[param] != 0; }
};

// A node's checks when a graph is built, with errors that name the op, its index and the role.
class Check {
 public:
  Check(const Node& node, size_t index, int64_t max_rows) : node(node), index(index), max_rows(max_rows) {}
  const Node& node;
  const size_t index;
  const int64_t max_rows;  // rows of the largest run

  [[noreturn]] void fail(const std::string& what) const;
  const char* name(int role) const;
  bool has(int role) const { return bool(node.t[role]); }
  const Tensor& tensor(int role) const;  // present
  const Tensor& f32(int role) const;     // present and f32
  const Tensor& kv(int role) const;      // present and f32, f16 or bf16 (a KV cache)
  void same_dtype(int role, int other) const;
  void cols(int role, int64_t cols) const;
  void rows(int role, int64_t at_least) const;
  void numel(int role, int64_t n) const;
  // f32 tensors [>= max_rows, cols]: the activations of a row-wise op
  void activations(std::initializer_list<int> roles, int64_t cols) const;
};

// A node in one run: its tensors' data where the backend keeps them, the run's size and the
// rows the node covers (all n at the run's pos, or its sequence's span).
struct Step {
  const Node& node;
  void* const* ptr;  // by role: host memory on the CPU, device memory (or a mirror) on CUDA
  int64_t n;         // rows of the run
  int64_t rows, row0, pos;

  const Tensor& t(int role) const { return *node.t[role]; }
  template <class T = float> T* data(int role) const { return static_cast<T*>(ptr[role]); }
  // The node's first row of an activation tensor (row0 of its sequence).
  float* rows_of(int role) const { return data(role) + row0 * t(role).cols(); }
};

struct OpDef {
  const char* name;
  std::vector<RoleDef> roles;
  std::vector<ParamDef> params;
  void (*validate)(const Check&);
  bool positional = false;  // takes a sequence span (row0, seqRows, posSlot)
  // Rows of its output a run of n rows writes (a device backend copies that many back); null: n.
  int64_t (*rows_written)(const Node&, int64_t n) = nullptr;
  // Checks before any op of a run runs, of the rows and position the node covers (n rows at
  // the run's pos, or its sequence's span): positions within the KV cache, token ids within
  // the vocabulary. Throws Error.
  void (*check_run)(const Node&, int64_t rows, int64_t pos) = nullptr;
  // Why the CUDA backend does not implement it; null: it does (cuda/<op>.cu).
  const char* no_cuda = nullptr;

  int role(const char* name) const;  // index, or -1
};

struct Exec {
  ThreadPool* pool;  // never null; size() == 1 means single-threaded
  Impl impl;         // kReference runs the plain scalar reference, single-threaded
};

using CpuEval = void (*)(const Step&, const Exec&);
struct OpEntry {
  const OpDef* def;
  CpuEval cpu;
};

// Every registered op, in name order; lookup by name (null when there is none).
const std::vector<OpEntry>& op_table();
const OpEntry* find_op(const std::string& name);
const OpEntry& op_entry(const OpDef& def);
bool register_cpu_op(const OpDef& def, CpuEval eval);

// E_CONTEXT_FULL unless positions pos .. pos + rows - 1 fit a KV cache of ctx positions.
void check_context(int64_t rows, int64_t pos, int64_t ctx);

#define FUSELM_OP_CAT2(a, b) a##b
#define FUSELM_OP_CAT(a, b) FUSELM_OP_CAT2(a, b)
// In native/cpu/<op>.cc: the CPU implementation of an op (every op has one).
#define FUSELM_CPU_OP(def, eval) \
  static const bool FUSELM_OP_CAT(fuselm_cpu_op_, __LINE__) [[maybe_unused]] = ::fuselm::register_cpu_op(def, eval)

}  // namespace fuselm

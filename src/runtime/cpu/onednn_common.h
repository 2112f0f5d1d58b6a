#pragma once
// Shared machinery of the oneDNN ("cpu") backend: the engine, intra-op thread control, error
// conversion, constant-weight packing, and OneDnnKernel, the base of every oneDNN node kernel.
//
// How a kernel runs: per input shape it builds a Plan once (the oneDNN primitives, the memory
// objects they read and write, and the output shapes) and caches it in its per-context
// OneDnnState; later calls with the same shapes only rebind data pointers and execute. Tensors
// at the kernel boundary are always plain row-major; blocked layouts chosen by oneDNN live in
// per-state workspaces, and weights are reordered into the layout a primitive wants once per
// kernel (ConstWeights), shared by every context.
//
// Output buffers: a node output that is not a graph output is written into a buffer owned by
// the node's state and reused by the next Run of the same ExecutionContext. That is safe
// because an ExecutionContext drops every intermediate value before Run returns, no reference
// kernel aliases its inputs, and this backend's views (Reshape, Flatten) copy when their output
// is a graph output, so a reused buffer can never reach the caller.
//
// Threads: Debian's oneDNN runs on OpenMP; each kernel call sets the calling thread's OpenMP
// thread count to BuildOptions::threads (ThreadScope), so every ExecutionContext thread drives
// its own team of that size. Keep contexts x threads <= cores: beyond that libgomp stops
// spinning between parallel regions and every primitive pays a futex wake-up.
#include <dnnl.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/engine.h"
#include "larserve/runtime/reference_kernels.h"

namespace larserve::runtime::cpu {

using Dims = std::vector<int64_t>;

// The process-wide oneDNN CPU engine, created on first use. Throws dnnl::error.
const dnnl::engine& CpuEngine();

// Whether oneDNN may use native bf16 instructions here (avx512_core_bf16 or better, as
// limited by ONEDNN_MAX_CPU_ISA). Without them bf16 builds run the dense ops in fp32.
bool CpuHasBf16();

// What kernel timings on this backend depend on: oneDNN's version, the instruction set it
// uses here and the CPU model, e.g. "cpu oneDNN 2.7.3 avx512_core_bf16 Intel(R) Xeon(R) ...".
std::string CpuDeviceDescription();

// Intra-op threads for BuildOptions::threads (0 = every core).
int ResolveThreads(int threads);

// Sets the OpenMP thread count of the calling thread for oneDNN's parallel regions (oneDNN
// uses the caller's omp_get_max_threads(), both when it creates a primitive and when it runs
// one) and restores the caller's setting on exit, so that the application's own OpenMP code is
// not affected. A no-op when oneDNN was not built with OpenMP.
class ThreadScope {
 public:
  explicit ThreadScope(int threads);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_ = 0;
};

// Converts the exception being handled (call only inside a catch block) into a Status that
// names `where` (the node and the tactic).
Status CurrentExceptionStatus(const std::string& where);

// Plain row-major float32 descriptor; a scalar is described as [1].
dnnl::memory::desc PlainDesc(const Dims& dims);
int64_t Volume(const Dims& dims);

// A fused activation (FusedConv/FusedGemm attributes) as a oneDNN eltwise post-op.
struct Activation {
  bool present = false;
  dnnl::algorithm alg = dnnl::algorithm::eltwise_relu;
  float alpha = 0;
  float beta = 0;
};
// False when the node's activation attributes are not something this backend implements.
bool ParseActivation(const graph::Node& node, Activation* act);
dnnl::primitive_attr MakeAttr(const Activation& act);

// Graph queries for Supports().
bool IsF32(const graph::Graph& g, int v);              // a present float32 value
const Tensor* ConstF32(const graph::Graph& g, int v);  // its data if a float32 constant
bool IsGraphOutput(const graph::Graph& g, int v);
bool AttrIs(const graph::Node& node, std::string_view key, graph::Attribute::Kind kind);

// A 2-D sliding window (Conv and the pools) resolved for an input, with ONNX's auto_pad rules
// and ceil_mode 0, exactly as the reference kernels resolve it.
struct Window2d {
  Dims kernel, strides, dilations;  // ONNX dilations (1 = dense)
  Dims pad_l, pad_r, out;
};
// Whether the node's strides, dilations, pads and auto_pad attributes are well-formed for a
// 2-D window (typed right, right lengths, in range); Supports() uses it so that run-time
// resolution cannot fail on attributes.
bool WindowAttrsOk(const graph::Node& node);
// Resolves the window for spatial input sizes `in` (2 values); InvalidArgument if the kernel
// does not fit.
Status ResolveWindow2d(const graph::Node& node, const Dims& in, const Dims& kernel, Window2d* w);

// Float32 weights known at build time, repacked on demand into whatever layout a primitive
// asks for. Each layout is made once (under a mutex) and then shared read-only by every
// ExecutionContext, so weights are never reordered on the inference path.
class ConstWeights {
 public:
  // user_md describes the weights as stored in `data`, starting `offset` bytes in (a slice of
  // a larger constant, such as one K-chunk of a matmul's weights).
  ConstWeights(Tensor data, dnnl::memory::desc user_md, std::size_t offset = 0)
      : data_(std::move(data)), user_md_(std::move(user_md)), offset_(offset) {}
  // A memory object (a new handle on the shared buffer) in layout `want`, packing it on first
  // use. Throws dnnl::error or std::bad_alloc.
  dnnl::memory Get(const dnnl::memory::desc& want) const;

 private:
  Tensor data_;
  dnnl::memory::desc user_md_;
  std::size_t offset_ = 0;
  mutable std::mutex mu_;
  mutable std::vector<std::pair<dnnl::memory::desc, Tensor>> packed_;
};

// Where a memory object of a plan gets its data at each run.
enum class Source : uint8_t { kInput, kOutput, kWorkspace };

// What a kernel runs for one combination of input shapes.
struct Plan {
  Dims key;                   // per input: rank (-1 if omitted), then dims
  int threads = 0;            // the OpenMP thread count its primitives were created for
  bool fallback = false;      // shapes this kernel leaves to the reference kernel
  std::vector<Dims> outputs;  // float32 output shapes, one per node output
  std::vector<std::size_t> workspace_bytes;
  struct Binding {
    dnnl::memory mem;
    Source source;
    int index;
    std::size_t offset;  // bytes from the start of the buffer
  };
  std::vector<Binding> bindings;
  struct Step {
    dnnl::primitive prim;
    std::unordered_map<int, dnnl::memory> args;
    // A step of our own instead of a oneDNN primitive (it reads its memory objects' handles).
    std::function<void()> custom;
  };
  std::vector<Step> steps;
  std::string impl;  // oneDNN implementation names, for the tactic
  uint64_t last_used = 0;

  // A memory object whose data pointer is set at every run from the given input, output or
  // workspace slot, `offset` bytes in.
  dnnl::memory Bind(const dnnl::memory::desc& md, Source source, int index, std::size_t offset = 0);
  // A new workspace slot (per-state scratch, reused across runs and plans) of md's size.
  dnnl::memory Workspace(const dnnl::memory::desc& md);
  void Add(dnnl::primitive prim, std::unordered_map<int, dnnl::memory> args) {
    steps.push_back({std::move(prim), std::move(args), nullptr});
  }
  void AddCustom(std::function<void()> fn) { steps.push_back({{}, {}, std::move(fn)}); }
  // Adds a reorder from `from` to `to`, noting its implementation as `what`.
  void AddReorder(const dnnl::memory& from, const dnnl::memory& to, std::string_view what);
  // Adds the user scratchpad of a primitive (attributes from MakeAttr ask for one) to args.
  void AddScratchpad(const dnnl::memory::desc& scratchpad_md,
                     std::unordered_map<int, dnnl::memory>& args);
  // Appends "what impl" to the tactic description.
  void NoteImpl(std::string_view what, std::string_view impl_info);
};

// Per-context state of a OneDnnKernel: the stream, cached plans, workspaces and output buffers.
class OneDnnState : public KernelState {
 public:
  std::optional<dnnl::stream> stream;
  std::vector<std::unique_ptr<Plan>> plans;
  Plan* last = nullptr;
  uint64_t clock = 0;
  std::vector<Tensor> workspaces;
  std::vector<Tensor> output_buffers;
};

// Base of the oneDNN kernels: shape-keyed plan cache, output buffers, thread control and the
// exception barrier. Subclasses implement MakePlan.
class OneDnnKernel : public NodeKernel {
 public:
  OneDnnKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options,
               std::string op_label);
  Status Run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
             KernelState* state) const final;
  std::unique_ptr<KernelState> CreateState() const final { return std::make_unique<OneDnnState>(); }
  std::string Describe() const final {
    return precision_note_.empty() ? tactic_ : tactic_ + " " + precision_note_;
  }

  // Plans once for the input shapes the graph declares (the batch taken as
  // kRepresentativeBatch): creates the primitives (warming oneDNN's primitive cache), packs
  // constant weights for them, and records the chosen implementation as the tactic.
  Status Prepare(const graph::Graph& g);

  static constexpr int64_t kRepresentativeBatch = 64;
  static constexpr std::size_t kMaxPlans = 8;

 protected:
  // Fills `plan` for these input shapes (nullptr for an omitted input). May throw dnnl::error;
  // returns InvalidArgument for shapes the op rejects, or sets plan.fallback.
  virtual Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const = 0;
  std::string Where() const;

  graph::Node node_;
  int64_t opset_;
  int threads_;
  std::vector<bool> graph_output_;  // per node output
  // Appended to the tactic: the compute precision of kernels that honour BuildOptions::precision
  // ("bf16", or why they run fp32); empty for kernels that always run fp32.
  std::string precision_note_;

 private:
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, OneDnnState& state,
                 bool reuse_outputs, int threads) const;
  StatusOr<Tensor> Output(OneDnnState& state, std::size_t k, const Dims& dims,
                          bool reuse_outputs) const;

  std::string op_label_;
  std::string tactic_;
  ref::KernelFn fallback_ = nullptr;
};

}  // namespace larserve::runtime::cpu

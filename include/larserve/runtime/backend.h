#pragma once
// The backend interface. A backend decides, node by node, what it can run (Supports) and
// compiles such a node into a NodeKernel. The Engine partitions a graph by asking the chosen
// backend first and the reference backend for the rest, so every model in the op set runs.
//
// Threading: Backends and NodeKernels are immutable after creation and shared by every
// ExecutionContext of an Engine; per-run state (scratch buffers, shape-specialised primitives)
// lives in a KernelState that each context creates once per node and passes to Run.
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"
#include "larserve/runtime/engine.h"

namespace larserve::runtime {

class KernelState {
 public:
  virtual ~KernelState() = default;
  // Set by the ExecutionContext before each run: at most this many intra-op threads for this
  // run (0 = the kernel's own count). Small batches run on fewer threads than large ones.
  int thread_cap = 0;
};

class NodeKernel {
 public:
  virtual ~NodeKernel() = default;
  // inputs: one per node input (empty Tensor for an omitted optional input); outputs: filled
  // with one tensor per node output. state: from CreateState (may be null).
  virtual Status Run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
                     KernelState* state) const = 0;
  virtual std::unique_ptr<KernelState> CreateState() const { return nullptr; }
  // A short description of the implementation chosen (the "tactic"), for reports.
  virtual std::string Describe() const = 0;
  // True if Run writes into outputs that arrive pre-filled with tensors of the right dtype and
  // shape (views into the context's activation arena, see memory_planner.h) instead of
  // allocating. A kernel that says so must leave those tensors in place. Caveat for kernels
  // that return views of their inputs (zero-copy Reshape): the planner ends a buffer's life at
  // its own last reader, not at the last reader of views of it, so such kernels must not be
  // fed arena inputs until aliasing is tracked.
  virtual bool WritesPreallocatedOutputs() const { return false; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Whether this backend runs `node` (of graph g) at `options.precision`.
  virtual bool Supports(const graph::Graph& g, const graph::Node& node,
                        const BuildOptions& options) const = 0;
  virtual StatusOr<std::unique_ptr<NodeKernel>> Compile(const graph::Graph& g,
                                                        const graph::Node& node,
                                                        const BuildOptions& options) const = 0;
  // Alternative implementations of a supported node, by stable names (stored in plans and
  // timing caches; runtime/tactics.h). The first is the backend's heuristic choice, which
  // Compile uses. Empty or one name: nothing to choose.
  virtual std::vector<std::string> Tactics(const graph::Graph& g, const graph::Node& node,
                                           const BuildOptions& options) const {
    return {};
  }
  // Compiles `node` with one of the names Tactics returned.
  virtual StatusOr<std::unique_ptr<NodeKernel>> CompileTactic(const graph::Graph& g,
                                                              const graph::Node& node,
                                                              const BuildOptions& options,
                                                              std::string_view tactic) const {
    return Compile(g, node, options);
  }
  // The device and library versions timings on this backend depend on (timing-cache keys).
  virtual std::string DeviceDescription() const { return std::string(name()); }
};

// Registered backends: "reference" always; "cpu" (oneDNN) when built in.
const Backend* FindBackend(std::string_view name);
std::vector<std::string_view> BackendNames();

// Internal registration, called by the registry (backend.cc).
const Backend& ReferenceBackend();
const Backend* CpuBackend();  // nullptr when not built

}  // namespace larserve::runtime

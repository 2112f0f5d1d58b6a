#pragma once
// Engines, execution contexts and plans: larserve's counterpart of TensorRT's ICudaEngine,
// IExecutionContext and serialized plan files.
//
// Engine::Build imports nothing: it takes a graph, optimises it (opt::PassManager), partitions
// it into segments for the chosen backend (nodes the backend cannot run fall back to the
// reference backend, so a model always runs) and compiles the segments. An Engine is immutable
// and thread-safe; per-run state lives in ExecutionContexts (one per thread).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"
#include "larserve/opt/pass.h"
#include "larserve/runtime/tactics.h"

namespace larserve::runtime {

enum class Precision : uint8_t { kFp32 = 0, kTf32 = 1, kFp16 = 2, kBf16 = 3, kInt8 = 4 };
std::string_view PrecisionName(Precision p);
StatusOr<Precision> PrecisionFromName(std::string_view name);

struct CalibrationTable;
class Backend;
class NodeKernel;

struct BuildOptions {
  std::string backend =
      "reference";  // "reference" (plain loops) or "cpu" (oneDNN); see BackendNames()
  Precision precision = Precision::kFp32;
  int min_segment_size = 1;  // smaller runs of supported nodes stay on the reference backend
  int threads = 0;           // 0 = all hardware threads
  // Optimisation profile of the batch (first) dimension of inputs whose batch is dynamic, as
  // TensorRT's min/opt/max: runs outside [batch_min, batch_max] are refused; batch_opt is the
  // size `larserve exec` runs by default. 0 = not set (any batch >= 1).
  int64_t batch_min = 0, batch_opt = 0, batch_max = 0;
  // INT8 activation ranges (runtime/calibration.h), keyed by the value names of the optimised
  // graph; required for precision int8, ignored otherwise. Shared, immutable.
  std::shared_ptr<const CalibrationTable> calibration;
  // Tactic selection (runtime/tactics.h). Nodes with several implementations are timed at the
  // OPT batch when a batch profile is set; timings are looked up in and added to this cache
  // when given (the caller saves it). Not shared between concurrent builds.
  std::shared_ptr<TimingCache> timing_cache;
  // Tactics fixed by node name (a loaded plan's choices); such nodes are not timed.
  std::map<std::string, std::string> tactics;
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;  // -1 = any size (the batch)
};

struct SegmentReport {
  std::string backend;
  std::vector<std::string> nodes;    // node descriptions, in order
  std::vector<std::string> tactics;  // per node: the implementation the backend chose
};

struct BuildReport {
  std::vector<opt::PassReport> passes;
  std::vector<SegmentReport> segments;
  std::vector<TacticReport> tactics;  // nodes that had more than one implementation to choose
  int nodes_before = 0;
  int nodes_after = 0;
  double seconds = 0;
};

struct LayerTiming {
  std::string node;
  std::string op_type;
  std::string backend;
  double total_ms = 0;
  int64_t calls = 0;
};

class Engine;

class ExecutionContext {
 public:
  ~ExecutionContext();
  // inputs: one per engine input, in order (dtype and known dims checked). outputs are
  // replaced with one tensor per engine output.
  Status Run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs);
  void EnableProfiling(bool on) { profiling_ = on; }
  // Called with (value index, tensor) for every graph input and node output as it is produced
  // (calibration, debugging). Slows execution; pass an empty function to remove.
  void SetObserver(std::function<void(int, const Tensor&)> observer) {
    observer_ = std::move(observer);
  }

  // Activation memory of the last input shapes run: the arena that lets intermediates with
  // disjoint lifetimes share memory, against one allocation per intermediate.
  struct MemoryStats {
    std::size_t arena_bytes = 0;
    std::size_t unshared_bytes = 0;
  };
  MemoryStats memory_stats() const { return memory_stats_; }
  const std::vector<LayerTiming>& profile() const { return profile_; }

 private:
  friend class Engine;
  explicit ExecutionContext(const Engine* engine);
  const Engine* engine_;
  std::vector<Tensor> slots_;
  std::vector<std::unique_ptr<class KernelState>> states_;  // per node
  bool profiling_ = false;
  std::vector<LayerTiming> profile_;
  std::function<void(int, const Tensor&)> observer_;
  // Memory plan for one input signature: per value, its dtype/shape and arena offset (-1: not
  // in the arena). Re-planned when the input shapes change.
  std::vector<std::vector<int64_t>> signature_;
  std::vector<Tensor> planned_;  // per value: a view into arena_, or empty
  Tensor arena_;
  bool planned_signature_ = false;
  MemoryStats memory_stats_;
  void Replan(const std::vector<Tensor>& produced);
};

class Engine {
 public:
  ~Engine();
  static StatusOr<std::unique_ptr<Engine>> Build(graph::Graph graph, const BuildOptions& options,
                                                 BuildReport* report = nullptr);
  // Plan files: versioned and checksummed; a plan from another larserve version, backend or
  // device, or a corrupt one, is refused with the reason and how to rebuild.
  // threads >= 0 replaces the plan's intra-op thread count (a property of the machine that
  // runs the plan, not of the plan); -1 keeps the one it was built with.
  static StatusOr<std::unique_ptr<Engine>> LoadPlan(const std::string& path, int threads = -1);
  Status SavePlan(const std::string& path) const;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  const BuildOptions& options() const { return options_; }
  const graph::Graph& graph() const { return graph_; }
  const std::vector<SegmentReport>& segments() const { return segment_reports_; }
  std::unique_ptr<ExecutionContext> CreateContext() const;

  // Intra-op threads a run with `batch` rows uses: options().threads (0 = all hardware threads),
  // fewer for small batches. A parallel region costs a few microseconds when its threads spin
  // and tens when they sleep (as between a server's requests), so a run gets one thread per
  // kWorkPerThread multiply-adds of estimated work (convolutions and products; one per output
  // element elsewhere), and all of them when the work per row is unknown.
  int RunThreads(int64_t batch) const;
  static constexpr int64_t kWorkPerThread = 4'000'000;

 private:
  friend class ExecutionContext;
  Engine() = default;
  Status Finalize();  // partition, resolve kernels, fill inputs_/outputs_
  // Compiles node n on `backend`, choosing among its tactics (plan, cache, timing or default).
  StatusOr<std::unique_ptr<NodeKernel>> CompileNode(const Backend& backend, std::size_t n);

  graph::Graph graph_;  // optimised
  BuildOptions options_;
  std::vector<TensorSpec> inputs_, outputs_;
  std::vector<SegmentReport> segment_reports_;
  std::vector<TacticReport> tactic_reports_;
  std::map<std::string, std::string> chosen_tactics_;  // node name -> tactic, saved in plans
  std::vector<int> node_segment_;                      // per node: index into segment_reports_
  std::vector<int> last_use_;                          // per value: last node reading it
  int max_threads_ = 1;                                // options_.threads resolved
  int64_t work_per_row_ = 0;  // estimated multiply-adds per batch row; 0 = unknown
  std::vector<std::unique_ptr<class NodeKernel>> kernels_;  // per node
};

// Reads `path` and makes an Engine: an ONNX model is built with `options`; a plan file is
// loaded as it was built except for options.threads. Decided by the file's first bytes.
StatusOr<std::unique_ptr<Engine>> LoadModelOrPlan(const std::string& path,
                                                  const BuildOptions& options,
                                                  BuildReport* report = nullptr);

}  // namespace larserve::runtime

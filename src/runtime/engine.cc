#include "larserve/runtime/engine.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "larserve/core/rng.h"
#include "larserve/core/timer.h"
#include "larserve/graph/onnx_export.h"
#include "larserve/graph/onnx_import.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/calibration.h"
#include "larserve/runtime/memory_planner.h"
#include "larserve/runtime/reference_executor.h"
#include "larserve/runtime/reference_kernels.h"
#include "larserve/version.h"

namespace larserve::runtime {
namespace {

constexpr char kPlanMagic[8] = {'L', 'A', 'R', 'S', 'P', 'L', 'A', 'N'};
constexpr uint32_t kPlanFormatVersion = 1;
constexpr uint64_t kMaxPlanBytes = uint64_t{4} << 30;

uint32_t Crc32(const std::string& a, const std::string& b) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const std::string* s : {&a, &b}) {
    const auto* p = reinterpret_cast<const Bytef*>(s->data());
    std::size_t left = s->size();
    while (left > 0) {
      const uInt step = static_cast<uInt>(std::min<std::size_t>(left, 1u << 30));
      crc = crc32(crc, p, step);
      p += step;
      left -= step;
    }
  }
  return static_cast<uint32_t>(crc);
}

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool Get(const std::string& in, std::size_t& pos, T* v) {
  if (pos + sizeof(T) > in.size()) return false;
  std::memcpy(v, in.data() + pos, sizeof(T));
  pos += sizeof(T);
  return true;
}

}  // namespace

std::string_view PrecisionName(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kTf32:
      return "tf32";
    case Precision::kFp16:
      return "fp16";
    case Precision::kBf16:
      return "bf16";
    case Precision::kInt8:
      return "int8";
  }
  return "?";
}

StatusOr<Precision> PrecisionFromName(std::string_view name) {
  for (Precision p :
       {Precision::kFp32, Precision::kTf32, Precision::kFp16, Precision::kBf16, Precision::kInt8}) {
    if (PrecisionName(p) == name) return p;
  }
  return InvalidArgument("unknown precision '" + std::string(name) +
                         "': use fp32, tf32, fp16, bf16 or int8");
}

Engine::~Engine() = default;
ExecutionContext::~ExecutionContext() = default;
ExecutionContext::ExecutionContext(const Engine* engine) : engine_(engine) {}

namespace {

// Multiply-adds per row of the batch (first) dimension, estimated from the declared shapes:
// for convolutions and matrix products, output elements x reduction length; for other nodes,
// their output elements. 0 when a node's output shape beyond the batch is unknown or the graph
// has no batch dimension.
int64_t EstimateWorkPerRow(const graph::Graph& g) {
  auto per_row = [&](int v) -> int64_t {
    if (v < 0) return 0;
    const graph::Value& val = g.values[v];
    if (!val.has_shape || val.dims.empty() || val.dims[0] >= 0) return -1;
    int64_t n = 1;
    for (std::size_t d = 1; d < val.dims.size(); ++d) {
      if (val.dims[d] < 0) return -1;
      n *= val.dims[d];
    }
    return n;
  };
  int64_t total = 0;
  for (const graph::Node& node : g.nodes) {
    if (node.outputs.empty()) continue;
    const int64_t out = per_row(node.outputs[0]);
    if (out < 0) {
      // Constants computed on the fly and shape arithmetic have no batch dimension.
      const graph::Value& v = g.values[node.outputs[0]];
      if (v.has_shape && (v.dims.empty() || v.dims[0] >= 0)) continue;
      return 0;
    }
    int64_t reduce = 1;
    const std::string& op = node.op_type;
    const auto weight = [&]() -> const graph::Value* {
      return node.inputs.size() > 1 && node.inputs[1] >= 0 ? &g.values[node.inputs[1]] : nullptr;
    };
    if (op == "Conv" || op == "FusedConv" || op == "ConvTranspose") {
      const graph::Value* w = weight();
      if (w && w->has_shape && w->dims.size() >= 2) {
        // Conv weights are [M, C/group, kh, kw...]; ConvTranspose's [C, M/group, kh, kw...]
        // (an upper bound: strides spread the input over the output).
        reduce = op == "ConvTranspose" ? std::max<int64_t>(1, w->dims[0]) : 1;
        for (std::size_t d = op == "ConvTranspose" ? 2 : 1; d < w->dims.size(); ++d) {
          reduce *= std::max<int64_t>(1, w->dims[d]);
        }
      }
    } else if (op == "Gemm" || op == "FusedGemm" || op == "MatMul") {
      const graph::Value& a = g.values[node.inputs[0]];
      if (a.has_shape && !a.dims.empty() && a.dims.back() > 0) {
        reduce = op == "MatMul" || node.GetInt("transA", 0) == 0 ? a.dims.back() : a.dims[0];
        reduce = std::max<int64_t>(1, reduce);
      }
    }
    total += out * reduce;
  }
  return total;
}

}  // namespace

Status Engine::Finalize() {
  const Backend* backend = FindBackend(options_.backend);
  if (!backend) {
    std::string names;
    for (auto n : BackendNames()) names += (names.empty() ? "" : ", ") + std::string(n);
    return InvalidArgument("unknown backend '" + options_.backend + "' (available: " + names + ")");
  }
  if (backend == &ReferenceBackend() && options_.precision != Precision::kFp32) {
    return Unimplemented("the reference backend computes in fp32 only; precision " +
                         std::string(PrecisionName(options_.precision)) + " needs the cpu backend");
  }
  if (options_.min_segment_size < 1) {
    return InvalidArgument("minimum segment size must be at least 1");
  }
  const bool profile = options_.batch_min || options_.batch_opt || options_.batch_max;
  if (profile && !(options_.batch_min >= 1 && options_.batch_min <= options_.batch_opt &&
                   options_.batch_opt <= options_.batch_max)) {
    return InvalidArgument("batch profile " + std::to_string(options_.batch_min) + ":" +
                           std::to_string(options_.batch_opt) + ":" +
                           std::to_string(options_.batch_max) +
                           " must satisfy 1 <= MIN <= OPT <= MAX");
  }
  RETURN_IF_ERROR(graph_.Verify());
  // Partition: every node runs on the chosen backend if it can, else on the reference backend;
  // runs of supported nodes shorter than min_segment_size also stay on the reference backend.
  const Backend& reference = ReferenceBackend();
  std::string missing;
  std::vector<const Backend*> assigned(graph_.nodes.size(), nullptr);
  for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
    const auto& node = graph_.nodes[n];
    if (backend->Supports(graph_, node, options_)) {
      assigned[n] = backend;
    } else if (reference.Supports(graph_, node, options_)) {
      assigned[n] = &reference;
    } else {
      missing += (missing.empty() ? "" : ", ") + node.Describe();
    }
  }
  if (!missing.empty()) return Unimplemented("no backend can run " + missing);
  for (std::size_t n = 0; n < assigned.size();) {
    std::size_t m = n;
    while (m < assigned.size() && assigned[m] == assigned[n]) ++m;
    if (assigned[n] != &reference && static_cast<int>(m - n) < options_.min_segment_size) {
      for (std::size_t k = n; k < m; ++k) assigned[k] = &reference;
    }
    n = m;
  }
  segment_reports_.clear();
  tactic_reports_.clear();
  chosen_tactics_.clear();
  kernels_.clear();
  node_segment_.assign(graph_.nodes.size(), -1);
  for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
    const auto& node = graph_.nodes[n];
    auto kernel = CompileNode(*assigned[n], n);
    if (!kernel.ok())
      return kernel.status().WithContext(std::string(assigned[n]->name()) + " backend");
    const std::string bname(assigned[n]->name());
    if (segment_reports_.empty() || segment_reports_.back().backend != bname) {
      segment_reports_.push_back({bname, {}, {}});
    }
    segment_reports_.back().nodes.push_back(node.Describe());
    segment_reports_.back().tactics.push_back((*kernel)->Describe());
    node_segment_[n] = static_cast<int>(segment_reports_.size()) - 1;
    kernels_.push_back(std::move(kernel).value());
  }
  inputs_.clear();
  outputs_.clear();
  for (int i : graph_.inputs)
    inputs_.push_back({graph_.values[i].name, graph_.values[i].dtype, graph_.values[i].dims});
  for (int o : graph_.outputs) {
    outputs_.push_back({graph_.values[o].name, graph_.values[o].dtype, graph_.values[o].dims});
  }
  last_use_.assign(graph_.values.size(), -1);
  for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
    for (int i : graph_.nodes[n].inputs) {
      if (i >= 0) last_use_[i] = static_cast<int>(n);
    }
  }
  for (int o : graph_.outputs) last_use_[o] = static_cast<int>(graph_.nodes.size());
  max_threads_ = options_.threads > 0
                     ? options_.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  work_per_row_ = EstimateWorkPerRow(graph_);
  return Status::Ok();
}

int Engine::RunThreads(int64_t batch) const {
  if (work_per_row_ <= 0 || batch <= 0) return max_threads_;
  const int64_t rows_per_thread = std::max<int64_t>(1, kWorkPerThread / work_per_row_);
  const int64_t wanted = (batch + rows_per_thread - 1) / rows_per_thread;
  return static_cast<int>(std::clamp<int64_t>(wanted, 1, max_threads_));
}

namespace {

// Median time of one run of `kernel` on `inputs`, after a warm-up run that builds its
// primitives: at least kMinRuns runs and kMinSeconds in all, at most kMaxRuns. A candidate whose
// warm-up run alone takes more than kGiveUpFactor x `best_ms` (the fastest so far; 0: none) is
// not timed further: its warm-up time is returned (it cannot win, and a pathological candidate,
// such as a reference-loop fallback, would otherwise hold the build for minutes).
StatusOr<double> TimeKernel(const NodeKernel& kernel, std::span<const Tensor> inputs,
                            double best_ms) {
  constexpr int kMinRuns = 3, kMaxRuns = 50;
  constexpr double kMinSeconds = 0.05, kGiveUpFactor = 10;
  std::unique_ptr<KernelState> state = kernel.CreateState();
  std::vector<Tensor> outputs;
  Timer warm_up;
  RETURN_IF_ERROR(kernel.Run(inputs, outputs, state.get()));
  const double warm_up_ms = warm_up.Seconds() * 1e3;
  if (best_ms > 0 && warm_up_ms > kGiveUpFactor * best_ms) return warm_up_ms;
  std::vector<double> times;
  Timer total;
  while (static_cast<int>(times.size()) < kMaxRuns &&
         (static_cast<int>(times.size()) < kMinRuns || total.Seconds() < kMinSeconds)) {
    outputs.clear();
    Timer t;
    RETURN_IF_ERROR(kernel.Run(inputs, outputs, state.get()));
    times.push_back(t.Seconds() * 1e3);
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

}  // namespace

StatusOr<std::unique_ptr<NodeKernel>> Engine::CompileNode(const Backend& backend, std::size_t n) {
  const graph::Node& node = graph_.nodes[n];
  const std::vector<std::string> names = backend.Tactics(graph_, node, options_);
  if (names.size() <= 1) return backend.Compile(graph_, node, options_);
  TacticReport report;
  report.node = node.Describe();
  auto finish = [&](const std::string& tactic) -> StatusOr<std::unique_ptr<NodeKernel>> {
    report.entry.chosen = tactic;
    chosen_tactics_[node.name] = tactic;
    tactic_reports_.push_back(report);
    return backend.CompileTactic(graph_, node, options_, tactic);
  };
  // A plan's choice is kept as it is: loading a plan never times anything.
  if (auto it = options_.tactics.find(node.name); it != options_.tactics.end()) {
    if (std::find(names.begin(), names.end(), it->second) == names.end()) {
      return FailedPrecondition(node.Describe() + ": tactic '" + it->second +
                                "' is not available in this build of the " +
                                std::string(backend.name()) + " backend; rebuild the plan");
    }
    report.source = TacticReport::Source::kPlan;
    return finish(it->second);
  }
  // Timing needs the OPT shapes: the batch from the profile, every other dimension known.
  std::vector<std::vector<int64_t>> dims;
  bool timeable = options_.batch_opt > 0;
  for (std::size_t i = 0; timeable && i < node.inputs.size(); ++i) {
    const int v = node.inputs[i];
    if (v < 0) {
      dims.push_back({});
      continue;
    }
    const graph::Value& val = graph_.values[v];
    if (val.constant) {
      dims.push_back(val.constant->shape().dims());
      continue;
    }
    std::vector<int64_t> d = val.dims;
    timeable = val.has_shape && val.dtype == DType::kFloat32;
    for (std::size_t k = 0; timeable && k < d.size(); ++k) {
      if (d[k] >= 0) continue;
      if (k != 0) timeable = false;
      d[k] = options_.batch_opt;
    }
    dims.push_back(std::move(d));
  }
  if (!timeable) {
    report.source = TacticReport::Source::kDefault;
    return finish(names.front());
  }
  const std::string key = TimingKey(backend.DeviceDescription() + " | larserve " + kVersion +
                                        " | " + std::string(PrecisionName(options_.precision)) +
                                        " | threads " + std::to_string(options_.threads),
                                    node, dims);
  if (options_.timing_cache) {
    if (const TimingEntry* e = options_.timing_cache->Find(key);
        e && std::find(names.begin(), names.end(), e->chosen) != names.end()) {
      report.entry = *e;
      report.source = TacticReport::Source::kCache;
      return finish(e->chosen);
    }
  }
  // Random inputs at the OPT shapes (constants as they are).
  std::vector<Tensor> inputs;
  Rng rng(0x7ac71c5 + n);
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    const int v = node.inputs[i];
    if (v < 0) {
      inputs.emplace_back();
    } else if (graph_.values[v].constant) {
      inputs.push_back(*graph_.values[v].constant);
    } else {
      ASSIGN_OR_RETURN(Tensor t, Tensor::Create(DType::kFloat32, Shape(dims[i])));
      for (float& x : t.Span<float>()) x = static_cast<float>(rng.Uniform(-1.0, 1.0));
      inputs.push_back(std::move(t));
    }
  }
  TimingEntry entry;
  double best = 0;
  std::string failures;
  for (const std::string& name : names) {
    auto kernel = backend.CompileTactic(graph_, node, options_, name);
    StatusOr<double> ms = kernel.ok() ? TimeKernel(**kernel, inputs, best) : kernel.status();
    if (!ms.ok()) {
      // A tactic that cannot run these shapes is not a candidate; the others still are.
      failures += "; " + name + ": " + ms.status().message();
      continue;
    }
    entry.timings.push_back({name, *ms});
    if (entry.chosen.empty() || *ms < best) {
      entry.chosen = name;
      best = *ms;
    }
  }
  if (entry.chosen.empty()) {
    return Internal(node.Describe() + ": no tactic ran at the OPT shapes" + failures);
  }
  if (options_.timing_cache) options_.timing_cache->Insert(key, entry);
  report.entry = entry;
  report.source = TacticReport::Source::kTimed;
  return finish(entry.chosen);
}

StatusOr<std::unique_ptr<Engine>> Engine::Build(graph::Graph graph, const BuildOptions& options,
                                                BuildReport* report) {
  Timer timer;
  BuildReport local;
  BuildReport& r = report ? *report : local;
  r.nodes_before = static_cast<int>(graph.nodes.size());
  // --- explicit quantisation (QDQ models; opt/fold_qdq.cc) ---
  // At int8, fold-qdq removes symmetric int8 Q/DQ pairs and records their ranges and weight
  // scales, which join the calibration table the kernels read (ahead of calibrated ranges). At
  // other precisions the Q/DQ nodes stay, with their exact rounding.
  opt::ExplicitQuantization explicit_q;
  opt::PipelineOptions pipeline;
  if (options.precision == Precision::kInt8) pipeline.explicit_quantization = &explicit_q;
  RETURN_IF_ERROR(opt::PassManager::Default(pipeline).Run(graph, ReferenceEvaluator(), &r.passes));
  BuildOptions effective = options;
  if (!explicit_q.empty())
    effective.calibration = WithExplicitQuantization(options.calibration, explicit_q);
  // --- end explicit quantisation ---
  std::unique_ptr<Engine> e(new Engine());
  e->graph_ = std::move(graph);
  e->options_ = effective;
  RETURN_IF_ERROR(e->Finalize());
  r.nodes_after = static_cast<int>(e->graph_.nodes.size());
  r.segments = e->segment_reports_;
  r.tactics = e->tactic_reports_;
  r.seconds = timer.Seconds();
  return e;
}

std::unique_ptr<ExecutionContext> Engine::CreateContext() const {
  return std::unique_ptr<ExecutionContext>(new ExecutionContext(this));
}

Status ExecutionContext::Run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) {
  const Engine& e = *engine_;
  const graph::Graph& g = e.graph_;
  if (inputs.size() != g.inputs.size()) {
    return InvalidArgument("the model takes " + std::to_string(g.inputs.size()) +
                           " input(s), got " + std::to_string(inputs.size()));
  }
  slots_.assign(g.values.size(), Tensor());
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    RETURN_IF_ERROR(CheckInput(g.values[g.inputs[k]], inputs[k]));
    const auto& declared = g.values[g.inputs[k]].dims;
    const BuildOptions& o = e.options_;
    if (o.batch_max > 0 && !declared.empty() && declared[0] < 0 && inputs[k].shape().rank() > 0) {
      const int64_t batch = inputs[k].shape()[0];
      if (batch < o.batch_min || batch > o.batch_max) {
        return InvalidArgument("input '" + g.values[g.inputs[k]].name + "' has batch " +
                               std::to_string(batch) + ", outside the plan's profile [" +
                               std::to_string(o.batch_min) + ", " + std::to_string(o.batch_max) +
                               "]; rebuild with --batch MIN:OPT:MAX");
      }
    }
    slots_[g.inputs[k]] = inputs[k];
    if (observer_) observer_(g.inputs[k], inputs[k]);
  }
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    if (g.values[v].constant) slots_[v] = *g.values[v].constant;
  }
  if (profiling_ && profile_.size() != g.nodes.size()) {
    profile_.clear();
    for (std::size_t n = 0; n < g.nodes.size(); ++n) {
      profile_.push_back({g.nodes[n].name, g.nodes[n].op_type,
                          e.segment_reports_[e.node_segment_[n]].backend, 0, 0});
    }
  }
  if (states_.size() != g.nodes.size()) {
    states_.clear();
    for (const auto& k : e.kernels_) states_.push_back(k->CreateState());
  }
  int64_t rows = 0;
  if (!inputs.empty() && inputs[0].shape().rank() > 0 && !g.values[g.inputs[0]].dims.empty() &&
      g.values[g.inputs[0]].dims[0] < 0) {
    rows = inputs[0].shape()[0];
  }
  const int cap = rows > 0 ? e.RunThreads(rows) : 0;
  for (auto& st : states_) {
    if (st) st->thread_cap = cap;
  }
  std::vector<std::vector<int64_t>> signature;
  for (const auto& t : inputs) signature.push_back(t.shape().dims());
  const bool same_signature = planned_signature_ && signature == signature_;
  std::vector<Tensor> produced(same_signature ? 0 : g.values.size());
  std::vector<Tensor> in, out;
  for (std::size_t n = 0; n < g.nodes.size(); ++n) {
    const graph::Node& node = g.nodes[n];
    in.clear();
    for (int i : node.inputs) in.push_back(i >= 0 ? slots_[i] : Tensor());
    out.clear();
    if (same_signature && e.kernels_[n]->WritesPreallocatedOutputs()) {
      for (int o : node.outputs) out.push_back(o >= 0 ? planned_[o] : Tensor());
    }
    Timer timer;
    Status s = e.kernels_[n]->Run(in, out, states_[n].get());
    if (!s.ok()) return s;
    if (profiling_) {
      profile_[n].total_ms += timer.Seconds() * 1e3;
      ++profile_[n].calls;
    }
    out.resize(node.outputs.size());
    for (std::size_t k = 0; k < node.outputs.size(); ++k) {
      if (node.outputs[k] < 0) continue;
      slots_[node.outputs[k]] = std::move(out[k]);
      if (!same_signature) produced[node.outputs[k]] = slots_[node.outputs[k]];
      if (observer_) observer_(node.outputs[k], slots_[node.outputs[k]]);
    }
    for (int i : node.inputs) {
      if (i >= 0 && e.last_use_[i] == static_cast<int>(n) && !g.values[i].constant)
        slots_[i] = Tensor();
    }
  }
  outputs->clear();
  for (int o : g.outputs) {
    if (slots_[o].empty()) return Internal("output '" + g.values[o].name + "' was not produced");
    outputs->push_back(slots_[o]);
  }
  slots_.clear();
  if (!same_signature) {
    signature_ = std::move(signature);
    Replan(produced);
  }
  return Status::Ok();
}

void ExecutionContext::Replan(const std::vector<Tensor>& produced) {
  const Engine& e = *engine_;
  const graph::Graph& g = e.graph_;
  std::vector<bool> is_output(g.values.size(), false);
  for (int o : g.outputs) is_output[o] = true;
  // Intermediates only: graph outputs are handed to the caller and must outlive the run.
  std::vector<int> values;
  std::vector<BufferRequest> requests;
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    const graph::Value& val = g.values[v];
    if (produced[v].empty() || is_output[v] || val.constant || val.producer < 0) continue;
    values.push_back(static_cast<int>(v));
    requests.push_back(
        {produced[v].num_bytes(), val.producer, std::max(val.producer, e.last_use_[v])});
  }
  // The statistics cover every intermediate (what a fully planned run needs); the arena is
  // allocated only for outputs of kernels that write into it, so kernels that allocate their
  // own outputs cost no extra memory.
  const MemoryPlan all = PlanMemory(requests);
  memory_stats_ = {all.arena_bytes, all.unshared_bytes};
  planned_.assign(g.values.size(), Tensor());
  std::vector<int> arena_values;
  std::vector<BufferRequest> arena_requests;
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (e.kernels_[g.values[values[k]].producer]->WritesPreallocatedOutputs()) {
      arena_values.push_back(values[k]);
      arena_requests.push_back(requests[k]);
    }
  }
  values = std::move(arena_values);
  const MemoryPlan plan = PlanMemory(arena_requests);
  auto arena = Tensor::Create(DType::kUInt8, Shape{static_cast<int64_t>(plan.arena_bytes)});
  if (!arena.ok()) {
    planned_signature_ = false;  // run without the arena rather than fail
    return;
  }
  arena_ = std::move(arena).value();
  auto* base = static_cast<uint8_t*>(arena_.data());
  for (std::size_t k = 0; k < values.size(); ++k) {
    const Tensor& t = produced[values[k]];
    planned_[values[k]] = Tensor::View(t.dtype(), t.shape(), base + plan.offsets[k]);
  }
  planned_signature_ = true;
}

Status Engine::SavePlan(const std::string& path) const {
  ASSIGN_OR_RETURN(std::string payload, graph::ExportOnnxBytes(graph_));
  nlohmann::json h;
  h["larserve_version"] = kVersion;
  h["backend"] = options_.backend;
  h["device"] = "cpu";
  h["precision"] = std::string(PrecisionName(options_.precision));
  h["min_segment_size"] = options_.min_segment_size;
  h["threads"] = options_.threads;
  h["batch_profile"] = {options_.batch_min, options_.batch_opt, options_.batch_max};
  // Tactics were timed on this device: a plan is refused on another one (as TensorRT's).
  if (const Backend* b = FindBackend(options_.backend))
    h["device_description"] = b->DeviceDescription();
  h["tactics"] = chosen_tactics_;
  if (options_.calibration) {
    h["calibration"] = {{"method", options_.calibration->method},
                        {"amax", options_.calibration->amax}};
    // QDQ models' weight scales (fold-qdq): without them a loaded plan would requantise.
    if (!options_.calibration->weight_scales.empty())
      h["calibration"]["weight_scales"] = options_.calibration->weight_scales;
  }
  nlohmann::json segs = nlohmann::json::array();
  for (const auto& s : segment_reports_)
    segs.push_back({{"backend", s.backend}, {"nodes", s.nodes}, {"tactics", s.tactics}});
  h["segments"] = segs;
  const std::string header = h.dump();
  std::string file(kPlanMagic, sizeof(kPlanMagic));
  Put<uint32_t>(file, kPlanFormatVersion);
  Put<uint32_t>(file, static_cast<uint32_t>(header.size()));
  file += header;
  Put<uint64_t>(file, payload.size());
  file += payload;
  Put<uint32_t>(file, Crc32(header, payload));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return NotFound("cannot create plan file '" + path + "'");
  out.write(file.data(), static_cast<std::streamsize>(file.size()));
  if (!out) return DataLoss("cannot write plan file '" + path + "'");
  return Status::Ok();
}

StatusOr<std::unique_ptr<Engine>> Engine::LoadPlan(const std::string& path, int threads) {
  const std::string where = "plan file '" + path + "'";
  const std::string rebuild = "; rebuild it with `larserve build MODEL.onnx -o " + path + "`";
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound("cannot open " + where);
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<uint64_t>(size) > kMaxPlanBytes)
    return InvalidArgument(where + " has an implausible size");
  std::string file(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(file.data(), size)) return DataLoss("cannot read " + where);
  if (file.size() < sizeof(kPlanMagic) ||
      std::memcmp(file.data(), kPlanMagic, sizeof(kPlanMagic)) != 0) {
    return InvalidArgument(where + " is not a larserve plan (wrong magic bytes)");
  }
  std::size_t pos = sizeof(kPlanMagic);
  uint32_t version = 0, header_len = 0;
  if (!Get(file, pos, &version)) return DataLoss(where + " is truncated" + rebuild);
  if (version != kPlanFormatVersion) {
    return FailedPrecondition(where + " has plan format " + std::to_string(version) +
                              "; this larserve reads " + std::to_string(kPlanFormatVersion) +
                              rebuild);
  }
  if (!Get(file, pos, &header_len) || pos + header_len > file.size())
    return DataLoss(where + " is truncated" + rebuild);
  const std::string header = file.substr(pos, header_len);
  pos += header_len;
  uint64_t payload_len = 0;
  if (!Get(file, pos, &payload_len) || payload_len > file.size() - pos)
    return DataLoss(where + " is truncated" + rebuild);
  const std::string payload = file.substr(pos, payload_len);
  pos += payload_len;
  uint32_t crc = 0;
  if (!Get(file, pos, &crc) || pos != file.size())
    return DataLoss(where + " is truncated or has trailing bytes" + rebuild);
  if (crc != Crc32(header, payload))
    return DataLoss(where + " is corrupt (checksum mismatch)" + rebuild);
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(header);
  } catch (const std::exception& e) {
    return DataLoss(where + " has an unreadable header" + rebuild);
  }
  BuildOptions options;
  try {
    const std::string built_by = h.at("larserve_version").get<std::string>();
    if (built_by != kVersion) {
      return FailedPrecondition(where + " was built by larserve " + built_by + ", this is " +
                                kVersion + rebuild);
    }
    options.backend = h.at("backend").get<std::string>();
    ASSIGN_OR_RETURN(options.precision, PrecisionFromName(h.at("precision").get<std::string>()));
    options.min_segment_size = h.at("min_segment_size").get<int>();
    options.threads = threads >= 0 ? threads : h.at("threads").get<int>();
    const auto profile = h.at("batch_profile").get<std::vector<int64_t>>();
    if (profile.size() != 3) return DataLoss(where + " has a malformed batch profile" + rebuild);
    options.batch_min = profile[0];
    options.batch_opt = profile[1];
    options.batch_max = profile[2];
    if (h.contains("device_description")) {
      const Backend* b = FindBackend(options.backend);
      const std::string built_on = h["device_description"].get<std::string>();
      if (b && b->DeviceDescription() != built_on) {
        return FailedPrecondition(where + " was built and tuned for '" + built_on +
                                  "'; this machine is '" + b->DeviceDescription() + "'" + rebuild);
      }
    }
    if (h.contains("tactics")) {
      options.tactics = h["tactics"].get<std::map<std::string, std::string>>();
    }
    if (h.contains("calibration")) {
      auto table = std::make_shared<CalibrationTable>();
      table->method = h["calibration"].at("method").get<std::string>();
      table->amax = h["calibration"].at("amax").get<std::map<std::string, float>>();
      if (h["calibration"].contains("weight_scales")) {
        table->weight_scales =
            h["calibration"]["weight_scales"].get<std::map<std::string, std::vector<float>>>();
      }
      options.calibration = std::move(table);
    }
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(where + " has an incomplete header (" + e.what() + ")" + rebuild);
  }
  graph::ImportOptions io;
  io.run_checker = false;  // our fused ops are not in the ONNX checker's registry
  io.infer_shapes = false;
  io.allow_larserve_domain = true;
  auto g = graph::ImportOnnxBytes(payload, path, io);
  if (!g.ok()) return g.status().WithContext(where);
  std::unique_ptr<Engine> e(new Engine());
  e->graph_ = std::move(g).value();
  e->options_ = options;
  Status s = e->Finalize();
  if (!s.ok()) return s.WithContext(where);
  return e;
}

StatusOr<std::unique_ptr<Engine>> LoadModelOrPlan(const std::string& path,
                                                  const BuildOptions& options,
                                                  BuildReport* report) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open '" + path + "'");
  char magic[sizeof(kPlanMagic)] = {0};
  in.read(magic, sizeof(magic));
  if (in.gcount() == sizeof(magic) && std::memcmp(magic, kPlanMagic, sizeof(magic)) == 0) {
    return Engine::LoadPlan(path, options.threads);
  }
  ASSIGN_OR_RETURN(graph::Graph g, graph::ImportOnnxFile(path));
  return Engine::Build(std::move(g), options, report);
}

}  // namespace larserve::runtime

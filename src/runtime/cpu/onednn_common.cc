#include "onednn_common.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <new>
#include <thread>

#include "larserve/runtime/tactics.h"

#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#endif

namespace larserve::runtime::cpu {

const dnnl::engine& CpuEngine() {
  // A function-local static: if construction throws, the next call tries again.
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool CpuHasBf16() {
  const auto want = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & want) == want;
}

std::string CpuDeviceDescription() {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      isa = "sse41";
      break;
    case dnnl::cpu_isa::avx:
      isa = "avx";
      break;
    case dnnl::cpu_isa::avx2:
      isa = "avx2";
      break;
    case dnnl::cpu_isa::avx512_core:
      isa = "avx512_core";
      break;
    case dnnl::cpu_isa::avx512_core_vnni:
      isa = "avx512_core_vnni";
      break;
    case dnnl::cpu_isa::avx512_core_bf16:
      isa = "avx512_core_bf16";
      break;
    case dnnl::cpu_isa::avx512_core_amx:
      isa = "avx512_core_amx";
      break;
    case dnnl::cpu_isa::avx2_vnni:
      isa = "avx2_vnni";
      break;
    default:
      isa = "isa " + std::to_string(static_cast<unsigned>(dnnl::get_effective_cpu_isa()));
  }
  return "cpu oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " " + isa + " " + CpuModelName();
}

int ResolveThreads(int threads) {
  if (threads > 0) return threads;
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  return omp_get_num_procs();
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
ThreadScope::ThreadScope(int threads) : saved_(omp_get_max_threads()) {
  if (threads != saved_) omp_set_num_threads(threads);
}
ThreadScope::~ThreadScope() {
  if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
}
#else
// Other oneDNN threading runtimes (TBB, sequential) are not controlled per call here.
ThreadScope::ThreadScope(int) {}
ThreadScope::~ThreadScope() = default;
#endif

Status CurrentExceptionStatus(const std::string& where) {
  try {
    throw;
  } catch (const dnnl::error& e) {
    const std::string msg = where + ": oneDNN: " + e.what();
    switch (e.status) {
      case dnnl_out_of_memory:
        return ResourceExhausted(msg);
      case dnnl_invalid_arguments:
        return InvalidArgument(msg);
      case dnnl_unimplemented:
        return Unimplemented(msg);
      default:
        return Internal(msg);
    }
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(where + ": out of memory");
  } catch (const std::exception& e) {
    return Internal(where + ": " + e.what());
  } catch (...) {
    return Internal(where + ": unknown exception");
  }
}

dnnl::memory::desc PlainDesc(const Dims& dims) {
  Dims d = dims.empty() ? Dims{1} : dims;
  Dims strides(d.size(), 1);
  for (std::size_t i = d.size() - 1; i-- > 0;) strides[i] = strides[i + 1] * d[i + 1];
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, strides);
}

int64_t Volume(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

bool ParseActivation(const graph::Node& node, Activation* act) {
  *act = Activation();
  if (!node.Has("activation")) return true;
  if (!AttrIs(node, "activation", graph::Attribute::Kind::kString)) return false;
  for (const char* key : {"activation_alpha", "activation_min", "activation_max"}) {
    if (node.Has(key) && !AttrIs(node, key, graph::Attribute::Kind::kFloat)) return false;
  }
  const std::string name = node.GetString("activation", "");
  if (name.empty()) return true;
  act->present = true;
  if (name == "Relu") {
    act->alg = dnnl::algorithm::eltwise_relu;
  } else if (name == "LeakyRelu") {
    // oneDNN's relu with a slope alpha is exactly LeakyRelu.
    act->alg = dnnl::algorithm::eltwise_relu;
    act->alpha = node.GetFloat("activation_alpha", 0.01f);
  } else if (name == "Sigmoid") {
    act->alg = dnnl::algorithm::eltwise_logistic;
  } else if (name == "Tanh") {
    act->alg = dnnl::algorithm::eltwise_tanh;
  } else if (name == "Clip") {
    act->alg = dnnl::algorithm::eltwise_clip;
    act->alpha = node.GetFloat("activation_min", -std::numeric_limits<float>::infinity());
    act->beta = node.GetFloat("activation_max", std::numeric_limits<float>::infinity());
    // ONNX's min > max (result: max everywhere) is not what oneDNN's clip computes.
    if (!(act->alpha <= act->beta)) return false;
  } else {
    return false;
  }
  return true;
}

dnnl::primitive_attr MakeAttr(const Activation& act) {
  dnnl::primitive_attr attr;
  // Scratch memory comes from the per-context workspaces instead of allocations per call.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (act.present) {
    dnnl::post_ops po;
    po.append_eltwise(1.0f, act.alg, act.alpha, act.beta);
    attr.set_post_ops(po);
  }
  return attr;
}

bool IsF32(const graph::Graph& g, int v) {
  return v >= 0 && v < static_cast<int>(g.values.size()) && g.values[v].dtype == DType::kFloat32 &&
         (!g.values[v].constant || g.values[v].constant->dtype() == DType::kFloat32);
}

const Tensor* ConstF32(const graph::Graph& g, int v) {
  if (!IsF32(g, v) || !g.values[v].constant) return nullptr;
  return &*g.values[v].constant;
}

bool IsGraphOutput(const graph::Graph& g, int v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}

bool AttrIs(const graph::Node& node, std::string_view key, graph::Attribute::Kind kind) {
  auto it = node.attrs.find(std::string(key));
  return it != node.attrs.end() && it->second.kind == kind;
}

bool WindowAttrsOk(const graph::Node& node) {
  using Kind = graph::Attribute::Kind;
  for (const char* key : {"strides", "dilations", "pads"}) {
    if (node.Has(key) && !AttrIs(node, key, Kind::kInts)) return false;
  }
  if (node.Has("auto_pad") && !AttrIs(node, "auto_pad", Kind::kString)) return false;
  const Dims strides = node.GetInts("strides", {1, 1});
  const Dims dilations = node.GetInts("dilations", {1, 1});
  const Dims pads = node.GetInts("pads", {0, 0, 0, 0});
  const std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  if (strides.size() != 2 || dilations.size() != 2) return false;
  for (int64_t v : strides) {
    if (v < 1) return false;
  }
  for (int64_t v : dilations) {
    if (v < 1) return false;
  }
  if (auto_pad == "NOTSET") {
    if (pads.size() != 4) return false;
    for (int64_t v : pads) {
      if (v < 0) return false;
    }
    return true;
  }
  return auto_pad == "VALID" || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
}

Status ResolveWindow2d(const graph::Node& node, const Dims& in, const Dims& kernel, Window2d* w) {
  w->kernel = kernel;
  w->strides = node.GetInts("strides", {1, 1});
  w->dilations = node.GetInts("dilations", {1, 1});
  const Dims pads = node.GetInts("pads", {0, 0, 0, 0});
  const std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  w->pad_l.assign(2, 0);
  w->pad_r.assign(2, 0);
  w->out.assign(2, 0);
  for (std::size_t i = 0; i < 2; ++i) {
    const int64_t extent = (kernel[i] - 1) * w->dilations[i] + 1;
    const int64_t s = w->strides[i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w->out[i] = in[i] / s + (in[i] % s != 0);
      const int64_t total = std::max<int64_t>(0, (w->out[i] - 1) * s + extent - in[i]);
      // The odd pad goes at the end for SAME_UPPER and at the beginning for SAME_LOWER.
      w->pad_l[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w->pad_r[i] = total - w->pad_l[i];
      continue;
    }
    if (auto_pad == "NOTSET") {
      w->pad_l[i] = pads[i];
      w->pad_r[i] = pads[i + 2];
    }
    const int64_t padded = in[i] + w->pad_l[i] + w->pad_r[i];
    if (padded < extent) {
      return InvalidArgument(node.Describe() + ": kernel extent " + std::to_string(extent) +
                             " exceeds the padded input size " + std::to_string(padded) +
                             " on spatial axis " + std::to_string(i));
    }
    w->out[i] = (padded - extent) / s + 1;
  }
  return Status::Ok();
}

dnnl::memory ConstWeights::Get(const dnnl::memory::desc& want) const {
  const dnnl::engine& eng = CpuEngine();
  // The constant's buffer is never written: oneDNN only reads weights.
  void* data = const_cast<char*>(static_cast<const char*>(data_.data()) + offset_);
  if (want == user_md_) return dnnl::memory(want, eng, data);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [md, t] : packed_) {
    if (md == want) return dnnl::memory(want, eng, const_cast<void*>(t.data()));
  }
  auto buf = Tensor::Create(DType::kUInt8, Shape{static_cast<int64_t>(want.get_size())});
  if (!buf.ok()) throw std::bad_alloc();
  // One thread: packing runs once per layout, usually on the thread that builds the engine,
  // where an OpenMP team would stay behind idle. libgomp counts such teams' threads, and once
  // more threads exist than cores it makes every team stop spinning between parallel regions,
  // which costs a futex wake-up per primitive in the inference threads.
  ThreadScope single(1);
  dnnl::memory src(user_md_, eng, data);
  dnnl::memory dst(want, eng, buf->data());
  dnnl::stream stream(eng);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
  packed_.emplace_back(want, *buf);
  return dnnl::memory(want, eng, buf->data());
}

dnnl::memory Plan::Bind(const dnnl::memory::desc& md, Source source, int index,
                        std::size_t offset) {
  dnnl::memory mem(md, CpuEngine(), DNNL_MEMORY_NONE);
  bindings.push_back({mem, source, index, offset});
  return mem;
}

dnnl::memory Plan::Workspace(const dnnl::memory::desc& md) {
  workspace_bytes.push_back(md.get_size());
  return Bind(md, Source::kWorkspace, static_cast<int>(workspace_bytes.size()) - 1);
}

void Plan::AddReorder(const dnnl::memory& from, const dnnl::memory& to, std::string_view what) {
  dnnl::reorder::primitive_desc pd(CpuEngine(), from.get_desc(), CpuEngine(), to.get_desc());
  NoteImpl(what, pd.impl_info_str());
  Add(dnnl::reorder(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

void Plan::AddScratchpad(const dnnl::memory::desc& scratchpad_md,
                         std::unordered_map<int, dnnl::memory>& args) {
  if (scratchpad_md.get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = Workspace(scratchpad_md);
}

void Plan::NoteImpl(std::string_view what, std::string_view impl_info) {
  if (!impl.empty()) impl += ", ";
  impl += what;
  if (!what.empty()) impl += " ";
  impl += impl_info;
}

namespace {

// Whether `inputs` have the shapes a plan was made for: per input its rank (-1 if omitted)
// followed by its dims. Compared in place, so a cache hit allocates nothing.
bool KeyMatches(const Dims& key, std::span<const Tensor> inputs) {
  std::size_t pos = 0;
  for (const Tensor& t : inputs) {
    if (pos >= key.size()) return false;
    if (t.empty()) {
      if (key[pos++] != -1) return false;
      continue;
    }
    const Dims& d = t.shape().dims();
    if (key[pos++] != static_cast<int64_t>(d.size()) || pos + d.size() > key.size()) return false;
    if (!std::equal(d.begin(), d.end(), key.begin() + static_cast<std::ptrdiff_t>(pos)))
      return false;
    pos += d.size();
  }
  return pos == key.size();
}

Dims MakeKey(std::span<const Tensor> inputs) {
  Dims key;
  for (const Tensor& t : inputs) {
    if (t.empty()) {
      key.push_back(-1);
      continue;
    }
    key.push_back(static_cast<int64_t>(t.shape().rank()));
    key.insert(key.end(), t.shape().dims().begin(), t.shape().dims().end());
  }
  return key;
}

}  // namespace

OneDnnKernel::OneDnnKernel(const graph::Graph& g, const graph::Node& node,
                           const BuildOptions& options, std::string op_label)
    : node_(node),
      opset_(g.opset),
      threads_(ResolveThreads(options.threads)),
      op_label_(std::move(op_label)),
      tactic_("oneDNN " + op_label_),
      fallback_(ref::FindKernel(node.op_type)) {
  for (int v : node.outputs) graph_output_.push_back(v < 0 || IsGraphOutput(g, v));
}

std::string OneDnnKernel::Where() const { return node_.Describe() + " [" + tactic_ + "]"; }

Status OneDnnKernel::Prepare(const graph::Graph& g) {
  std::vector<Dims> dims(node_.inputs.size());
  std::vector<const Dims*> shapes(node_.inputs.size(), nullptr);
  for (std::size_t i = 0; i < node_.inputs.size(); ++i) {
    const int v = node_.inputs[i];
    if (v < 0) continue;
    const graph::Value& value = g.values[v];
    if (value.constant) {
      dims[i] = value.constant->shape().dims();
    } else {
      // Without a declared shape the implementation is chosen at the first run.
      bool known = value.has_shape;
      dims[i] = value.dims;
      for (std::size_t k = 0; known && k < dims[i].size(); ++k) {
        if (dims[i][k] >= 0) continue;
        known = k == 0;
        dims[i][k] = kRepresentativeBatch;
      }
      if (!known) {
        tactic_ += " (implementation chosen per input shape)";
        return Status::Ok();
      }
    }
    shapes[i] = &dims[i];
  }
  ThreadScope scope(threads_);
  try {
    Plan plan;
    plan.threads = threads_;
    // Declared shapes the op rejects leave the choice to the first run, which reports the
    // problem with the actual shapes.
    if (!MakePlan(shapes, plan).ok()) return Status::Ok();
    if (plan.fallback) {
      tactic_ += " (reference kernel for the declared shapes)";
    } else if (!plan.impl.empty()) {
      tactic_ += " " + plan.impl;
    }
    return Status::Ok();
  } catch (...) {
    return CurrentExceptionStatus(Where());
  }
}

Status OneDnnKernel::Run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
                         KernelState* state) const {
  // Without a state of ours (a caller that skipped CreateState) a temporary one serves, and
  // outputs must then be fresh tensors since its buffers die with it.
  auto* own = dynamic_cast<OneDnnState*>(state);
  OneDnnState temporary;
  OneDnnState& st = own ? *own : temporary;
  // oneDNN sizes a primitive's work split (and per-thread scratch) by the thread count at its
  // creation, so a plan runs only with the count it was made for: part of the plan's key.
  const int threads = st.thread_cap > 0 ? std::min(threads_, st.thread_cap) : threads_;
  ThreadScope scope(threads);
  try {
    if (!st.stream) st.stream.emplace(CpuEngine());
    return Execute(inputs, outputs, st, own != nullptr, threads);
  } catch (...) {
    return CurrentExceptionStatus(Where());
  }
}

StatusOr<Tensor> OneDnnKernel::Output(OneDnnState& state, std::size_t k, const Dims& dims,
                                      bool reuse_outputs) const {
  const bool fresh = !reuse_outputs || k >= graph_output_.size() || graph_output_[k];
  const int64_t bytes = Volume(dims) * static_cast<int64_t>(sizeof(float));
  if (fresh || bytes == 0) return Tensor::Create(DType::kFloat32, Shape(dims));
  if (state.output_buffers.size() <= k) state.output_buffers.resize(k + 1);
  Tensor& buf = state.output_buffers[k];
  if (buf.empty() || static_cast<int64_t>(buf.num_bytes()) < bytes) {
    ASSIGN_OR_RETURN(buf, Tensor::Create(DType::kUInt8, Shape{bytes}));
  }
  return Tensor::View(DType::kFloat32, Shape(dims), buf.data());
}

Status OneDnnKernel::Execute(std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
                             OneDnnState& state, bool reuse_outputs, int threads) const {
  // Supports() checked the declared dtypes; a tensor that contradicts them must not be read
  // as float32.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].empty() && inputs[i].dtype() != DType::kFloat32) {
      return InvalidArgument(Where() + ": input " + std::to_string(i) + " has dtype " +
                             std::string(DTypeName(inputs[i].dtype())) + ", expected FP32");
    }
  }
  auto matches = [&](const Plan* p) { return p->threads == threads && KeyMatches(p->key, inputs); };
  Plan* plan = state.last && matches(state.last) ? state.last : nullptr;
  for (std::size_t i = 0; !plan && i < state.plans.size(); ++i) {
    if (matches(state.plans[i].get())) plan = state.plans[i].get();
  }
  if (!plan) {
    std::vector<const Dims*> shapes;
    for (const Tensor& t : inputs) shapes.push_back(t.empty() ? nullptr : &t.shape().dims());
    auto fresh = std::make_unique<Plan>();
    fresh->key = MakeKey(inputs);
    fresh->threads = threads;
    RETURN_IF_ERROR(MakePlan(shapes, *fresh));
    if (state.plans.size() >= kMaxPlans) {
      // Batch sizes vary between calls; keep the most recently used plans.
      auto lru = std::min_element(
          state.plans.begin(), state.plans.end(),
          [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
      if (state.last == lru->get()) state.last = nullptr;
      state.plans.erase(lru);
    }
    state.plans.push_back(std::move(fresh));
    plan = state.plans.back().get();
  }
  plan->last_used = ++state.clock;
  state.last = plan;
  if (plan->fallback) {
    if (!fallback_) return Unimplemented(Where() + ": no reference kernel for these shapes");
    return fallback_(node_, opset_, inputs, outputs);
  }
  outputs.clear();
  for (std::size_t k = 0; k < plan->outputs.size(); ++k) {
    ASSIGN_OR_RETURN(Tensor t, Output(state, k, plan->outputs[k], reuse_outputs));
    outputs.push_back(std::move(t));
  }
  if (plan->steps.empty()) return Status::Ok();
  if (state.workspaces.size() < plan->workspace_bytes.size())
    state.workspaces.resize(plan->workspace_bytes.size());
  for (std::size_t w = 0; w < plan->workspace_bytes.size(); ++w) {
    Tensor& ws = state.workspaces[w];
    const std::size_t bytes = std::max<std::size_t>(plan->workspace_bytes[w], 1);
    if (ws.empty() || ws.num_bytes() < bytes) {
      ASSIGN_OR_RETURN(ws, Tensor::Create(DType::kUInt8, Shape{static_cast<int64_t>(bytes)}));
    }
  }
  for (const Plan::Binding& b : plan->bindings) {
    void* data = nullptr;
    switch (b.source) {
      case Source::kInput:
        // oneDNN takes non-const handles; inputs are only read.
        data = const_cast<void*>(inputs[b.index].data());
        break;
      case Source::kOutput:
        data = outputs[b.index].data();
        break;
      case Source::kWorkspace:
        data = state.workspaces[b.index].data();
        break;
    }
    b.mem.set_data_handle(static_cast<char*>(data) + b.offset);
  }
  for (const Plan::Step& s : plan->steps) {
    if (s.custom) {
      state.stream->wait();  // what earlier primitives wrote is complete
      s.custom();
    } else {
      s.prim.execute(*state.stream, s.args);
    }
  }
  state.stream->wait();
  return Status::Ok();
}

}  // namespace larserve::runtime::cpu

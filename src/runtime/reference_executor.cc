#include "larserve/runtime/reference_executor.h"

#include "larserve/runtime/reference_kernels.h"

namespace larserve::runtime {

Status CheckInput(const graph::Value& declared, const Tensor& actual) {
  if (actual.dtype() != declared.dtype) {
    return InvalidArgument("input '" + declared.name + "' has data type " +
                           std::string(DTypeName(actual.dtype())) + ", expected " +
                           std::string(DTypeName(declared.dtype)));
  }
  if (!declared.has_shape) return Status::Ok();
  const auto& dims = actual.shape().dims();
  bool ok = dims.size() == declared.dims.size();
  for (std::size_t i = 0; ok && i < dims.size(); ++i) {
    ok = declared.dims[i] < 0 || declared.dims[i] == dims[i];
  }
  if (!ok) {
    std::string want = "[";
    for (std::size_t i = 0; i < declared.dims.size(); ++i) {
      want += (i ? "," : "") +
              (declared.dims[i] < 0 ? std::string("?") : std::to_string(declared.dims[i]));
    }
    return InvalidArgument("input '" + declared.name + "' has shape " + actual.shape().ToString() +
                           ", expected " + want + "]");
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<ReferenceExecutor>> ReferenceExecutor::Create(graph::Graph graph) {
  std::string missing;
  for (const auto& node : graph.nodes) {
    const bool known_domain = node.domain.empty() || node.domain == "larserve";
    if (!known_domain || !ref::FindKernel(node.op_type)) {
      missing += (missing.empty() ? "" : ", ") + node.Describe();
    }
  }
  if (!missing.empty()) return Unimplemented("no kernel for " + missing);
  RETURN_IF_ERROR(graph.Verify());
  std::unique_ptr<ReferenceExecutor> ex(new ReferenceExecutor());
  ex->last_use_.assign(graph.values.size(), -1);
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    for (int i : graph.nodes[n].inputs) {
      if (i >= 0) ex->last_use_[i] = static_cast<int>(n);
    }
  }
  for (int o : graph.outputs) ex->last_use_[o] = static_cast<int>(graph.nodes.size());
  ex->graph_ = std::move(graph);
  return ex;
}

StatusOr<std::vector<Tensor>> ReferenceExecutor::Run(std::span<const Tensor> inputs) const {
  const graph::Graph& g = graph_;
  if (inputs.size() != g.inputs.size()) {
    return InvalidArgument("model takes " + std::to_string(g.inputs.size()) + " inputs, got " +
                           std::to_string(inputs.size()));
  }
  std::vector<Tensor> slots(g.values.size());
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    RETURN_IF_ERROR(CheckInput(g.values[g.inputs[k]], inputs[k]));
    slots[g.inputs[k]] = inputs[k];
  }
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    if (g.values[v].constant) slots[v] = *g.values[v].constant;
  }
  std::vector<Tensor> in;
  std::vector<Tensor> out;
  for (std::size_t n = 0; n < g.nodes.size(); ++n) {
    const graph::Node& node = g.nodes[n];
    in.clear();
    for (int i : node.inputs) in.push_back(i >= 0 ? slots[i] : Tensor());
    out.clear();
    ref::KernelFn kernel = ref::FindKernel(node.op_type);
    Status s = kernel(node, g.opset, in, out);
    if (!s.ok()) return s;
    if (out.size() < node.outputs.size()) {
      // Optional trailing outputs a kernel does not produce stay empty.
      out.resize(node.outputs.size());
    }
    for (std::size_t k = 0; k < node.outputs.size(); ++k) {
      if (node.outputs[k] >= 0) slots[node.outputs[k]] = std::move(out[k]);
    }
    // Release intermediates after their last reader (constants stay shared with the graph).
    for (int i : node.inputs) {
      if (i >= 0 && last_use_[i] == static_cast<int>(n) && !g.values[i].constant)
        slots[i] = Tensor();
    }
  }
  std::vector<Tensor> result;
  for (int o : g.outputs) {
    if (slots[o].empty()) {
      return Internal("output '" + g.values[o].name + "' was not produced");
    }
    result.push_back(slots[o]);
  }
  return result;
}

opt::NodeEvaluator ReferenceEvaluator() {
  return [](const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
            std::vector<Tensor>& outputs) -> Status {
    ref::KernelFn kernel = ref::FindKernel(node.op_type);
    if (!kernel) return NotFound("no reference kernel for " + node.Describe());
    return kernel(node, opset, inputs, outputs);
  };
}

}  // namespace larserve::runtime

#include "larserve/runtime/backend.h"

#include "larserve/runtime/reference_kernels.h"

namespace larserve::runtime {
namespace {

class ReferenceKernel : public NodeKernel {
 public:
  ReferenceKernel(const graph::Node& node, int64_t opset, ref::KernelFn fn)
      : node_(node), opset_(opset), fn_(fn) {}
  Status Run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
             KernelState*) const override {
    return fn_(node_, opset_, inputs, outputs);
  }
  std::string Describe() const override { return "reference " + node_.op_type; }

 private:
  graph::Node node_;
  int64_t opset_;
  ref::KernelFn fn_;
};

class ReferenceBackendImpl : public Backend {
 public:
  std::string_view name() const override { return "reference"; }
  bool Supports(const graph::Graph&, const graph::Node& node,
                const BuildOptions& options) const override {
    return (node.domain.empty() || node.domain == "larserve") &&
           ref::FindKernel(node.op_type) != nullptr;
  }
  StatusOr<std::unique_ptr<NodeKernel>> Compile(const graph::Graph& g, const graph::Node& node,
                                                const BuildOptions&) const override {
    ref::KernelFn fn = ref::FindKernel(node.op_type);
    if (!fn) return Unimplemented("no reference kernel for " + node.Describe());
    return std::unique_ptr<NodeKernel>(new ReferenceKernel(node, g.opset, fn));
  }
};

}  // namespace

const Backend& ReferenceBackend() {
  static const ReferenceBackendImpl backend;
  return backend;
}

#ifndef LARSERVE_HAVE_ONEDNN
const Backend* CpuBackend() { return nullptr; }
#endif

const Backend* FindBackend(std::string_view name) {
  if (name == "reference") return &ReferenceBackend();
  if (name == "cpu") return CpuBackend();
  return nullptr;
}

std::vector<std::string_view> BackendNames() {
  std::vector<std::string_view> out{"reference"};
  if (CpuBackend()) out.push_back("cpu");
  return out;
}

}  // namespace larserve::runtime

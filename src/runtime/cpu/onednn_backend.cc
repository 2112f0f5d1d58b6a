// The "cpu" backend: oneDNN primitives for the ops listed in onednn_kernels.h, in float32
// (bf16 for the dense ops of bf16 builds, see onednn_dense.cc).
// Nodes it does not take run on the reference backend (Engine partitions the graph).
#include <string_view>

#include "larserve/runtime/backend.h"
#include "onednn_common.h"
#include "onednn_kernels.h"

namespace larserve::runtime {
namespace cpu {
namespace {

const OpSupport* FindOp(const graph::Node& node) {
  for (auto ops : {DenseOps(), MiscOps()}) {
    for (const OpSupport& op : ops) {
      if (op.domain == node.domain && op.op_type == node.op_type) return &op;
    }
  }
  return nullptr;
}

class OneDnnBackend : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }

  bool Supports(const graph::Graph& g, const graph::Node& node,
                const BuildOptions& options) const override {
    // fp32, bf16 and int8 (Conv/Gemm/MatMul in bf16 where the CPU has it, or in int8 where the
    // calibration table covers their input, every other op in fp32, as TensorRT picks a
    // precision per layer); other reduced precisions are not implemented.
    if (options.precision != Precision::kFp32 && options.precision != Precision::kBf16 &&
        options.precision != Precision::kInt8)
      return false;
    const OpSupport* op = FindOp(node);
    if (!op) return false;
    for (int v : node.inputs) {
      if (v >= static_cast<int>(g.values.size())) return false;
    }
    for (int v : node.outputs) {
      if (v >= static_cast<int>(g.values.size())) return false;
    }
    // A required first input must be present (later optional ones are checked per op).
    if (node.inputs.empty() || node.inputs[0] < 0) return false;
    return op->supports(g, node);
  }

  StatusOr<std::unique_ptr<NodeKernel>> Compile(const graph::Graph& g, const graph::Node& node,
                                                const BuildOptions& options) const override {
    const OpSupport* op = FindOp(node);
    if (!op || !Supports(g, node, options)) {
      return Unimplemented("the cpu backend does not implement " + node.Describe());
    }
    return op->compile(g, node, options);
  }

  std::vector<std::string> Tactics(const graph::Graph& g, const graph::Node& node,
                                   const BuildOptions& options) const override {
    const OpSupport* op = FindOp(node);
    if (!op || !op->tactics || !Supports(g, node, options)) return {};
    return op->tactics(g, node, options);
  }

  StatusOr<std::unique_ptr<NodeKernel>> CompileTactic(const graph::Graph& g,
                                                      const graph::Node& node,
                                                      const BuildOptions& options,
                                                      std::string_view tactic) const override {
    const OpSupport* op = FindOp(node);
    if (!op || !op->compile_tactic) return Compile(g, node, options);
    if (!Supports(g, node, options)) {
      return Unimplemented("the cpu backend does not implement " + node.Describe());
    }
    return op->compile_tactic(g, node, options, tactic);
  }

  std::string DeviceDescription() const override { return CpuDeviceDescription(); }
};

}  // namespace
}  // namespace cpu

const Backend* CpuBackend() {
  static const cpu::OneDnnBackend backend;
  return &backend;
}

}  // namespace larserve::runtime

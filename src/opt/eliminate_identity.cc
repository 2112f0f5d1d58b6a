// Removes ops that copy their input: Identity, Dropout at inference (when its mask is unused),
// and Cast to the type the input already has. TensorRT and TF-TRT do the same before fusion.
#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

using internal::IsGraphInput;
using internal::IsGraphOutput;

class EliminateIdentityPass : public Pass {
 public:
  std::string_view name() const override { return "eliminate-identity"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t n = 0; n < g.nodes.size(); ++n) {
      graph::Node& node = g.nodes[n];
      if (!IsCopy(g, node, consumers)) continue;
      const int in = node.inputs[0], out = node.outputs[0];
      if (IsGraphOutput(g, out)) {
        // The output's name is part of the model's interface: give it to the input instead,
        // unless the input's own name is part of it too.
        if (IsGraphInput(g, in) || IsGraphOutput(g, in) || g.IsConstant(in)) continue;
        g.values[in].name = g.values[out].name;
        g.values[out].name += "__removed";
      }
      ReplaceAllUses(g, out, in);
      dead[n] = true;
      ++count;
      ctx.Log("removed " + node.Describe());
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }

 private:
  static bool IsCopy(const graph::Graph& g, const graph::Node& node,
                     const std::vector<std::vector<int>>& consumers) {
    if (node.inputs.empty() || node.inputs[0] < 0 || node.outputs.empty() || node.outputs[0] < 0)
      return false;
    if (node.op_type == "Identity") return true;
    if (node.op_type == "Dropout") {
      // The mask output must be unused, and training_mode (opset 12+) absent or constant false.
      if (node.outputs.size() > 1 && node.outputs[1] >= 0 &&
          (!consumers[node.outputs[1]].empty() || IsGraphOutput(g, node.outputs[1]))) {
        return false;
      }
      if (node.inputs.size() > 2 && node.inputs[2] >= 0) {
        if (!g.IsConstant(node.inputs[2])) return false;
        const Tensor& t = *g.values[node.inputs[2]].constant;
        if (t.num_elements() != 1 || t.Span<uint8_t>()[0] != 0) return false;
      }
      return true;
    }
    if (node.op_type == "Cast") {
      const auto& v = g.values[node.inputs[0]];
      const int64_t to = node.GetInt("to", -1);
      // Only float32 -> float32 and int64 -> int64 are recognised (the common no-op casts).
      return (to == 1 && v.dtype == DType::kFloat32) || (to == 7 && v.dtype == DType::kInt64);
    }
    return false;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeEliminateIdentityPass() {
  return std::make_unique<EliminateIdentityPass>();
}

}  // namespace larserve::opt

// Evaluates nodes whose inputs are all constant (and Shape of a fully known shape) at build
// time with the reference kernels, replacing them by constants.
#include <numeric>

#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

constexpr std::size_t kMaxFoldedBytes = std::size_t{256} << 20;

class ConstantFoldingPass : public Pass {
 public:
  std::string_view name() const override { return "constant-folding"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    if (!ctx.evaluate) return LARSERVE_INTERNAL_ERROR("constant folding needs an evaluator");
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t n = 0; n < g.nodes.size(); ++n) {
      const graph::Node& node = g.nodes[n];
      if (!node.domain.empty()) continue;
      std::vector<Tensor> inputs;
      bool foldable = true;
      if (node.op_type == "Shape" && node.inputs.size() == 1 && node.inputs[0] >= 0) {
        // Shape of a value whose every dimension is known is a constant.
        const graph::Value& v = g.values[node.inputs[0]];
        foldable = v.has_shape &&
                   std::all_of(v.dims.begin(), v.dims.end(), [](int64_t d) { return d >= 0; });
        if (foldable) {
          auto t = Tensor::Create(v.dtype, Shape(v.dims));
          if (!t.ok()) continue;
          inputs.push_back(*t);  // contents are irrelevant to Shape
        }
      } else {
        for (int i : node.inputs) {
          if (i >= 0 && !g.IsConstant(i)) {
            foldable = false;
            break;
          }
          inputs.push_back(i >= 0 ? *g.values[i].constant : Tensor());
        }
      }
      // Random ops would change meaning; Constant nodes with no inputs fold too.
      if (!foldable || node.op_type.rfind("Random", 0) == 0) continue;
      std::vector<Tensor> outputs;
      Status s = ctx.evaluate(node, g.opset, inputs, outputs);
      if (!s.ok()) {
        if (s.code() == StatusCode::kUnimplemented || s.code() == StatusCode::kNotFound) continue;
        return s;  // invalid model: constant inputs the op rejects
      }
      std::size_t bytes = 0;
      for (const auto& t : outputs) bytes += t.num_bytes();
      if (bytes > kMaxFoldedBytes) continue;
      for (std::size_t k = 0; k < node.outputs.size() && k < outputs.size(); ++k) {
        const int o = node.outputs[k];
        if (o < 0) continue;
        graph::Value& v = g.values[o];
        v.dtype = outputs[k].dtype();
        v.dims = outputs[k].shape().dims();
        v.has_shape = true;
        v.constant = outputs[k];
        v.producer = -1;
      }
      dead[n] = true;
      ++count;
      ctx.Log("folded " + node.Describe());
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeConstantFoldingPass() { return std::make_unique<ConstantFoldingPass>(); }

}  // namespace larserve::opt

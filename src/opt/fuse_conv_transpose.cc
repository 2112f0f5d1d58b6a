// Writes a convolution's output directly in the layout a following Transpose asks for:
//   Conv / FusedConv (2-D, NCHW output y) -> Transpose(y, perm [0, 2, 3, 1])
//   => larserve.FusedConv(output_layout "NHWC") producing the Transpose's output
// A Keras-style model (EmTrackMichelId) transposes the whole convolution output back to NHWC to
// flatten it; a convolution can write NHWC as cheaply as NCHW (oneDNN's destination format), so
// the transpose, a pass over 92,928 values per patch there, disappears. Before
// fold-transpose-into-gemm, which would otherwise fold the Transpose into the next Gemm's weights
// (that also removes it, but leaves the convolution's own reorder back to NCHW).
#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

using internal::IsGraphOutput;

class FuseConvTransposePass : public Pass {
 public:
  std::string_view name() const override { return "fuse-conv-transpose"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      graph::Node& conv = g.nodes[k];
      const bool onnx = conv.op_type == "Conv" && conv.domain.empty();
      const bool ours = conv.op_type == "FusedConv" && conv.domain == "larserve";
      if (!(onnx || ours) || conv.outputs.size() != 1 || dead[k]) continue;
      if (conv.GetString("output_layout", "NCHW") != "NCHW") continue;
      const int y = conv.outputs[0];
      if (y < 0 || IsGraphOutput(g, y) || consumers[y].size() != 1) continue;
      const int ti = consumers[y][0];
      graph::Node& transpose = g.nodes[ti];
      if (transpose.op_type != "Transpose" || !transpose.domain.empty() || dead[ti]) continue;
      // A 4-entry perm: the convolution is 2-D.
      if (transpose.GetInts("perm") != std::vector<int64_t>{0, 2, 3, 1}) continue;
      if (transpose.inputs.size() != 1 || transpose.outputs.size() != 1) continue;
      const std::string before = conv.Describe();
      if (onnx) {
        conv.op_type = "FusedConv";
        conv.domain = "larserve";
      }
      graph::Attribute layout;
      layout.kind = graph::Attribute::Kind::kString;
      layout.s = "NHWC";
      conv.attrs["output_layout"] = layout;
      conv.outputs[0] = transpose.outputs[0];
      dead[ti] = true;
      ++count;
      ctx.Log("fused " + transpose.Describe() + " into " + before + ": it writes NHWC");
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFuseConvTransposePass() {
  return std::make_unique<FuseConvTransposePass>();
}

}  // namespace larserve::opt

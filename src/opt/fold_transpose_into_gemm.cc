// Folds a layout change that only feeds a matrix product into the product's constant weights:
//   Transpose(x, perm with perm[0] = 0) -> Flatten(axis 1) -> Gemm/FusedGemm(transA 0, constant B)
//   => Flatten(x) -> Gemm(B with its rows permuted)
// A Keras-style model flattens NHWC activations; our convolutions produce NCHW, so the exported
// graph transposes the whole conv output (92,928 values per patch in EmTrackMichelId) back to
// NHWC just to flatten it. Permuting the rows of the dense layer's weights once at build time
// removes that copy from every inference.
#include <numeric>

#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

using internal::IsGraphOutput;

class FoldTransposeIntoGemmPass : public Pass {
 public:
  std::string_view name() const override { return "fold-transpose-into-gemm"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      graph::Node& gemm = g.nodes[k];
      const bool is_gemm = (gemm.op_type == "Gemm" && gemm.domain.empty()) ||
                           (gemm.op_type == "FusedGemm" && gemm.domain == "larserve");
      if (!is_gemm || gemm.inputs.size() < 2 || gemm.GetInt("transA", 0) != 0) continue;
      const int flat = gemm.inputs[0];
      if (!Single(g, consumers, flat)) continue;
      graph::Node& flatten = g.nodes[g.values[flat].producer];
      if (flatten.op_type != "Flatten" || !flatten.domain.empty() || flatten.GetInt("axis", 1) != 1)
        continue;
      const int tout = flatten.inputs[0];
      if (!Single(g, consumers, tout)) continue;
      const int ti = g.values[tout].producer;
      graph::Node& transpose = g.nodes[ti];
      if (transpose.op_type != "Transpose" || !transpose.domain.empty() || dead[ti]) continue;
      const graph::Value& x = g.values[transpose.inputs[0]];
      if (!x.has_shape || x.dims.size() < 2) continue;
      std::vector<int64_t> perm = transpose.GetInts("perm");
      const std::size_t rank = x.dims.size();
      if (perm.empty()) {
        perm.resize(rank);
        for (std::size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(rank - 1 - i);
      }
      if (perm.size() != rank || perm[0] != 0) continue;
      bool known = true;
      for (std::size_t i = 1; i < rank; ++i) known &= x.dims[i] > 0;
      if (!known) continue;
      const int bidx = gemm.inputs[1];
      if (!g.IsConstant(bidx) || g.values[bidx].constant->dtype() != DType::kFloat32) continue;
      const Tensor& b = *g.values[bidx].constant;
      if (b.shape().rank() != 2) continue;
      const bool trans_b = gemm.GetInt("transB", 0) != 0;
      int64_t features = 1;
      for (std::size_t i = 1; i < rank; ++i) features *= x.dims[i];
      const int64_t kdim = trans_b ? b.shape()[1] : b.shape()[0];
      const int64_t ndim = trans_b ? b.shape()[0] : b.shape()[1];
      if (kdim != features) continue;
      // Feature index of the transposed layout for every feature index of x's own layout.
      std::vector<int64_t> xdims(x.dims.begin() + 1, x.dims.end());
      std::vector<int64_t> tdims(rank - 1);
      for (std::size_t i = 1; i < rank; ++i) tdims[i - 1] = x.dims[perm[i]];
      std::vector<int64_t> tstride(rank - 1, 1);
      for (std::size_t i = rank - 1; i-- > 1;) tstride[i - 1] = tstride[i] * tdims[i];
      // position of x's axis a (a >= 1) in the transposed tensor
      std::vector<int64_t> where(rank, 0);
      for (std::size_t i = 1; i < rank; ++i) where[perm[i]] = static_cast<int64_t>(i);
      auto nb = Tensor::Create(DType::kFloat32, b.shape());
      if (!nb.ok()) return nb.status();
      const auto src = b.Span<float>();
      auto dst = nb->Span<float>();
      std::vector<int64_t> idx(rank - 1, 0);  // multi-index in x's feature layout
      for (int64_t f = 0; f < features; ++f) {
        int64_t t = 0;
        for (std::size_t a = 1; a < rank; ++a) t += idx[a - 1] * tstride[where[a] - 1];
        if (trans_b) {
          for (int64_t n = 0; n < ndim; ++n) dst[n * kdim + f] = src[n * kdim + t];
        } else {
          std::copy(src.begin() + t * ndim, src.begin() + (t + 1) * ndim, dst.begin() + f * ndim);
        }
        for (std::size_t a = rank - 1; a-- > 0;) {
          if (++idx[a] < xdims[a]) break;
          idx[a] = 0;
        }
      }
      graph::Value v;
      v.name = internal::UniqueName(g, g.values[bidx].name + "_permuted");
      v.dtype = DType::kFloat32;
      v.dims = b.shape().dims();
      v.has_shape = true;
      v.constant = *nb;
      const int vi = g.AddValue(std::move(v));
      gemm.inputs[1] = vi;
      flatten.inputs[0] = transpose.inputs[0];
      dead[ti] = true;
      ++count;
      ctx.Log("folded " + transpose.Describe() + " into the weights of " + gemm.Describe());
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }

 private:
  static bool Single(const graph::Graph& g, const std::vector<std::vector<int>>& consumers, int v) {
    return v >= 0 && g.values[v].producer >= 0 && consumers[v].size() == 1 && !IsGraphOutput(g, v);
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFoldTransposeIntoGemmPass() {
  return std::make_unique<FoldTransposeIntoGemmPass>();
}

}  // namespace larserve::opt

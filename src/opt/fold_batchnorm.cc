// Folds an inference BatchNormalization that follows a Conv into the Conv's weights and bias:
//   W'[o] = W[o] * s[o] / sqrt(var[o] + eps),  B'[o] = (B[o] - mean[o]) * s[o] / sqrt(var[o] + eps)
//   + beta[o]
#include <cmath>

#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

bool Float32Constant(const graph::Graph& g, int v) {
  return g.IsConstant(v) && g.values[v].constant->dtype() == DType::kFloat32;
}

class FoldBatchNormPass : public Pass {
 public:
  std::string_view name() const override { return "fold-batchnorm"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t b = 0; b < g.nodes.size(); ++b) {
      const graph::Node& bn = g.nodes[b];
      if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.size() != 5)
        continue;
      if (bn.GetInt("training_mode", 0) != 0) continue;
      bool extra_outputs = false;
      for (std::size_t k = 1; k < bn.outputs.size(); ++k) extra_outputs |= bn.outputs[k] >= 0;
      if (extra_outputs) continue;
      const int x = bn.inputs[0];
      if (x < 0 || g.values[x].producer < 0 || consumers[x].size() != 1 ||
          internal::IsGraphOutput(g, x))
        continue;
      graph::Node& conv = g.nodes[g.values[x].producer];
      if (conv.op_type != "Conv" || !conv.domain.empty() || dead[g.values[x].producer]) continue;
      const int w = conv.inputs[1];
      const int bias = conv.inputs.size() > 2 ? conv.inputs[2] : -1;
      if (!Float32Constant(g, w) || (bias >= 0 && !Float32Constant(g, bias))) continue;
      bool params_ok = true;
      for (int k = 1; k < 5; ++k) params_ok &= Float32Constant(g, bn.inputs[k]);
      if (!params_ok) continue;
      const Tensor& wt = *g.values[w].constant;
      const int64_t oc = wt.shape().rank() > 0 ? wt.shape()[0] : 0;
      const auto s = g.values[bn.inputs[1]].constant->Span<float>();
      const auto beta = g.values[bn.inputs[2]].constant->Span<float>();
      const auto mean = g.values[bn.inputs[3]].constant->Span<float>();
      const auto var = g.values[bn.inputs[4]].constant->Span<float>();
      if (oc <= 0 || static_cast<int64_t>(s.size()) != oc ||
          static_cast<int64_t>(beta.size()) != oc || static_cast<int64_t>(mean.size()) != oc ||
          static_cast<int64_t>(var.size()) != oc) {
        continue;
      }
      const double eps = bn.GetFloat("epsilon", 1e-5f);
      ASSIGN_OR_RETURN(Tensor new_w, Tensor::Create(DType::kFloat32, wt.shape()));
      ASSIGN_OR_RETURN(Tensor new_b, Tensor::Create(DType::kFloat32, Shape{oc}));
      const int64_t per = wt.num_elements() / oc;
      const auto src_w = wt.Span<float>();
      auto dst_w = new_w.Span<float>();
      auto dst_b = new_b.Span<float>();
      for (int64_t o = 0; o < oc; ++o) {
        const double f = s[o] / std::sqrt(static_cast<double>(var[o]) + eps);
        for (int64_t k = 0; k < per; ++k)
          dst_w[o * per + k] = static_cast<float>(src_w[o * per + k] * f);
        const double b0 = bias >= 0 ? g.values[bias].constant->Span<float>()[o] : 0.0;
        dst_b[o] = static_cast<float>((b0 - mean[o]) * f + beta[o]);
      }
      graph::Value wv;
      wv.name = internal::UniqueName(g, g.values[w].name + "_bnfold");
      wv.dtype = DType::kFloat32;
      wv.dims = wt.shape().dims();
      wv.has_shape = true;
      wv.constant = new_w;
      graph::Value bv;
      bv.name = internal::UniqueName(g, conv.name + "_bias_bnfold");
      bv.dtype = DType::kFloat32;
      bv.dims = {oc};
      bv.has_shape = true;
      bv.constant = new_b;
      const int wi = g.AddValue(std::move(wv));
      const int bi = g.AddValue(std::move(bv));
      conv.inputs.resize(3);
      conv.inputs[1] = wi;
      conv.inputs[2] = bi;
      conv.outputs[0] = bn.outputs[0];  // the Conv now produces what the BN produced
      dead[b] = true;
      ++count;
      ctx.Log("folded " + bn.Describe() + " into " + conv.Describe());
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFoldBatchNormPass() { return std::make_unique<FoldBatchNormPass>(); }

}  // namespace larserve::opt

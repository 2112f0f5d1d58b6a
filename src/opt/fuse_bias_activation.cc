// Conv/Gemm + bias + activation fusion (TensorRT's CBR fusion):
//   Conv (no bias) -> Add(per-channel constant)      => Conv with bias
//   MatMul(2-D A, constant 2-D W) [-> Add(constant [N])] => Gemm
//   Conv | Gemm -> Relu | LeakyRelu | Sigmoid | Tanh | Clip(constant bounds)
//                                                   => larserve.FusedConv | larserve.FusedGemm
// The fused ops carry the activation as attributes: activation (string), activation_alpha,
// activation_min, activation_max.
#include <cmath>
#include <limits>

#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

using internal::IsGraphOutput;

// The per-output-channel values of a constant shaped [C], [C,1,...] or [1,C,1,...].
bool PerChannel(const graph::Graph& g, int v, int64_t channels, int rank, std::vector<float>* out) {
  if (!g.IsConstant(v)) return false;
  const Tensor& t = *g.values[v].constant;
  if (t.dtype() != DType::kFloat32 || t.num_elements() != channels) return false;
  const auto& d = t.shape().dims();
  // Broadcasting against [N, C, spatial...] (rank `rank`): C must line up with axis 1.
  int64_t non_one_axis = -1;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d[i] != 1) non_one_axis = static_cast<int64_t>(i);
  }
  const int64_t axis_in_output = rank - static_cast<int64_t>(d.size()) + non_one_axis;
  if (channels > 1 && axis_in_output != 1) return false;
  auto s = t.Span<float>();
  out->assign(s.begin(), s.end());
  return true;
}

bool SingleUse(const graph::Graph& g, const std::vector<std::vector<int>>& consumers, int v) {
  return v >= 0 && consumers[v].size() == 1 && !IsGraphOutput(g, v);
}

class FuseBiasActivationPass : public Pass {
 public:
  std::string_view name() const override { return "fuse-bias-activation"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    int count = 0;
    count += FuseConvAdd(g, ctx);
    count += MatMulToGemm(g, ctx);
    count += FuseActivation(g, ctx);
    return count;
  }

 private:
  static graph::Value ConstValue(const graph::Graph& g, const std::string& base, Tensor t) {
    graph::Value v;
    v.name = internal::UniqueName(g, base);
    v.dtype = t.dtype();
    v.dims = t.shape().dims();
    v.has_shape = true;
    v.constant = std::move(t);
    return v;
  }

  static int FuseConvAdd(graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t a = 0; a < g.nodes.size(); ++a) {
      const graph::Node& add = g.nodes[a];
      if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2) continue;
      for (int side = 0; side < 2; ++side) {
        const int x = add.inputs[side], c = add.inputs[1 - side];
        if (!SingleUse(g, consumers, x) || g.values[x].producer < 0) continue;
        graph::Node& conv = g.nodes[g.values[x].producer];
        if (conv.op_type != "Conv" || !conv.domain.empty() || dead[g.values[x].producer]) continue;
        if (conv.inputs.size() > 2 && conv.inputs[2] >= 0) continue;
        if (!g.IsConstant(conv.inputs[1])) continue;
        const Tensor& w = *g.values[conv.inputs[1]].constant;
        if (w.shape().rank() < 3) continue;
        std::vector<float> bias;
        if (!PerChannel(g, c, w.shape()[0], static_cast<int>(w.shape().rank()), &bias)) continue;
        auto t = Tensor::Create(DType::kFloat32, Shape{w.shape()[0]});
        if (!t.ok()) continue;
        std::copy(bias.begin(), bias.end(), t->Span<float>().begin());
        const int bi = g.AddValue(ConstValue(g, conv.name + "_bias", *t));
        conv.inputs.resize(3);
        conv.inputs[2] = bi;
        conv.outputs[0] = add.outputs[0];
        dead[a] = true;
        ++count;
        ctx.Log("merged " + add.Describe() + " into " + conv.Describe() + " as its bias");
        break;
      }
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }

  static int MatMulToGemm(graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t m = 0; m < g.nodes.size(); ++m) {
      graph::Node& mm = g.nodes[m];
      if (mm.op_type != "MatMul" || !mm.domain.empty() || mm.inputs.size() != 2) continue;
      const graph::Value& a = g.values[mm.inputs[0]];
      if (!a.has_shape || a.dims.size() != 2 || !g.IsConstant(mm.inputs[1])) continue;
      const Tensor& w = *g.values[mm.inputs[1]].constant;
      if (w.dtype() != DType::kFloat32 || a.dtype != DType::kFloat32 || w.shape().rank() != 2)
        continue;
      const int64_t n_out = w.shape()[1];
      mm.op_type = "Gemm";
      mm.attrs.clear();
      ++count;
      std::string what = "rewrote MatMul '" + mm.name + "' as Gemm";
      // A following Add of a constant [N] or [1, N] becomes the Gemm's C.
      const int y = mm.outputs[0];
      if (SingleUse(g, consumers, y)) {
        const int an = consumers[y][0];
        graph::Node& add = g.nodes[an];
        if (add.op_type == "Add" && add.domain.empty() && add.inputs.size() == 2) {
          const int c = add.inputs[0] == y ? add.inputs[1] : add.inputs[0];
          if (g.IsConstant(c)) {
            const Tensor& ct = *g.values[c].constant;
            const auto& d = ct.shape().dims();
            const bool vec = ct.dtype() == DType::kFloat32 && ct.num_elements() == n_out &&
                             (d.size() == 1 || (d.size() == 2 && d[0] == 1));
            if (vec) {
              mm.inputs.push_back(c);
              mm.outputs[0] = add.outputs[0];
              dead[an] = true;
              what += " with the bias of " + add.Describe();
            }
          }
        }
      }
      ctx.Log(what);
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }

  static int FuseActivation(graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      const graph::Node& act = g.nodes[k];
      if (!act.domain.empty() || act.inputs.empty()) continue;
      const std::string& op = act.op_type;
      if (op != "Relu" && op != "LeakyRelu" && op != "Sigmoid" && op != "Tanh" && op != "Clip")
        continue;
      const int x = act.inputs[0];
      if (!SingleUse(g, consumers, x) || g.values[x].producer < 0 || dead[g.values[x].producer])
        continue;
      graph::Node& prod = g.nodes[g.values[x].producer];
      if (!prod.domain.empty() || (prod.op_type != "Conv" && prod.op_type != "Gemm")) continue;
      float lo = -std::numeric_limits<float>::infinity(),
            hi = std::numeric_limits<float>::infinity();
      if (op == "Clip") {
        if (g.opset < 11) {
          lo = act.GetFloat("min", lo);
          hi = act.GetFloat("max", hi);
        } else {
          bool ok = true;
          for (std::size_t i = 1; i < act.inputs.size(); ++i) {
            const int v = act.inputs[i];
            if (v < 0) continue;
            if (!g.IsConstant(v) || g.values[v].constant->dtype() != DType::kFloat32 ||
                g.values[v].constant->num_elements() != 1) {
              ok = false;
              break;
            }
            (i == 1 ? lo : hi) = g.values[v].constant->Span<float>()[0];
          }
          if (!ok) continue;
        }
      }
      const std::string before = prod.Describe();
      prod.op_type = prod.op_type == "Conv" ? "FusedConv" : "FusedGemm";
      prod.domain = "larserve";
      graph::Attribute a;
      a.kind = graph::Attribute::Kind::kString;
      a.s = op;
      prod.attrs["activation"] = a;
      graph::Attribute f;
      f.kind = graph::Attribute::Kind::kFloat;
      f.f = act.GetFloat("alpha", 0.01f);
      prod.attrs["activation_alpha"] = f;
      f.f = lo;
      prod.attrs["activation_min"] = f;
      f.f = hi;
      prod.attrs["activation_max"] = f;
      prod.outputs[0] = act.outputs[0];
      dead[k] = true;
      ++count;
      ctx.Log("fused " + act.Describe() + " into " + before);
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFuseBiasActivationPass() {
  return std::make_unique<FuseBiasActivationPass>();
}

}  // namespace larserve::opt

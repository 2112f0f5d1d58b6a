// Layout clean-up (TensorRT's reformat removal, in graph form):
//   Transpose(Transpose(x, p), q)             => Transpose(x, p o q), or x if that is the identity
//   Transpose that only moves size-1 dims      => Reshape (a free view: no data movement); e.g. the
//                                                 NHWC -> NCHW transpose of a 1-channel image
//   Reshape(Reshape(x, s1), s2), s2 without 0  => Reshape(x, s2)
#include <numeric>

#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

using internal::IsGraphOutput;

std::vector<int64_t> PermOf(const graph::Node& t, std::size_t rank) {
  std::vector<int64_t> p = t.GetInts("perm");
  if (p.empty()) {
    p.resize(rank);
    for (std::size_t i = 0; i < rank; ++i) p[i] = static_cast<int64_t>(rank - 1 - i);
  }
  return p;
}

class TransposeReshapePass : public Pass {
 public:
  std::string_view name() const override { return "transpose-reshape"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    int count = 0;
    count += MergeTransposes(g, ctx);
    count += TransposeToReshape(g, ctx);
    count += MergeReshapes(g, ctx);
    return count;
  }

 private:
  static int MergeTransposes(graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      graph::Node& outer = g.nodes[k];
      if (outer.op_type != "Transpose" || !outer.domain.empty()) continue;
      const int mid = outer.inputs[0];
      if (mid < 0 || g.values[mid].producer < 0 || consumers[mid].size() != 1 ||
          IsGraphOutput(g, mid))
        continue;
      const int pi = g.values[mid].producer;
      graph::Node& inner = g.nodes[pi];
      if (inner.op_type != "Transpose" || !inner.domain.empty() || dead[pi]) continue;
      // The rank comes from an explicit perm, or else from the known shape of the input.
      const graph::Value& x = g.values[inner.inputs[0]];
      std::size_t rank = inner.GetInts("perm").size();
      if (rank == 0) rank = outer.GetInts("perm").size();
      if (rank == 0 && x.has_shape) rank = x.dims.size();
      if (rank == 0) continue;
      const auto p = PermOf(inner, rank);
      const auto q = PermOf(outer, rank);
      if (p.size() != q.size()) continue;
      // out[i] = mid[q[i]] = x[p[q[i]]]
      std::vector<int64_t> composed(q.size());
      bool identity = true;
      for (std::size_t i = 0; i < q.size(); ++i) {
        if (q[i] < 0 || q[i] >= static_cast<int64_t>(p.size())) return count;
        composed[i] = p[q[i]];
        identity &= composed[i] == static_cast<int64_t>(i);
      }
      if (identity && !IsGraphOutput(g, outer.outputs[0])) {
        ReplaceAllUses(g, outer.outputs[0], inner.inputs[0]);
        dead[k] = true;
        ctx.Log("removed " + inner.Describe() + " and " + outer.Describe() + " (they cancel)");
      } else {
        graph::Attribute a;
        a.kind = graph::Attribute::Kind::kInts;
        a.ints = composed;
        outer.attrs["perm"] = a;
        outer.inputs[0] = inner.inputs[0];
        ctx.Log("merged " + inner.Describe() + " into " + outer.Describe());
      }
      dead[pi] = true;
      ++count;
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }

  static int TransposeToReshape(graph::Graph& g, const PassContext& ctx) {
    int count = 0;
    for (auto& node : g.nodes) {
      if (node.op_type != "Transpose" || !node.domain.empty()) continue;
      const graph::Value& x = g.values[node.inputs[0]];
      if (!x.has_shape || x.dims.empty()) continue;
      const auto p = PermOf(node, x.dims.size());
      if (p.size() != x.dims.size()) continue;
      // The non-1 dimensions must keep their relative order; unknown dims must stay in place
      // (the Reshape target copies them with 0).
      std::vector<int64_t> order;
      bool ok = true;
      std::vector<int64_t> target(p.size());
      for (std::size_t i = 0; i < p.size() && ok; ++i) {
        const int64_t src = p[i];
        if (src < 0 || src >= static_cast<int64_t>(x.dims.size())) ok = false;
        if (!ok) break;
        const int64_t d = x.dims[src];
        if (d < 0) {
          ok = src == static_cast<int64_t>(i);
          target[i] = 0;
        } else {
          target[i] = d;
        }
        if (d != 1) order.push_back(src);
      }
      if (!ok || !std::is_sorted(order.begin(), order.end())) continue;
      // A 0 in the target copies the input dim at the same index: only valid where the input
      // and output dims there are equal, which holds for unknown dims kept in place; known dims
      // are written out explicitly.
      auto t = Tensor::Create(DType::kInt64, Shape{static_cast<int64_t>(target.size())});
      if (!t.ok()) continue;
      std::copy(target.begin(), target.end(), t->Span<int64_t>().begin());
      graph::Value sv;
      sv.name = internal::UniqueName(g, node.name + "_shape");
      sv.dtype = DType::kInt64;
      sv.dims = {static_cast<int64_t>(target.size())};
      sv.has_shape = true;
      sv.constant = *t;
      const int si = g.AddValue(std::move(sv));
      ctx.Log("replaced " + node.Describe() + " (moves only size-1 dimensions) by a Reshape");
      node.op_type = "Reshape";
      node.attrs.clear();
      node.inputs = {node.inputs[0], si};
      ++count;
    }
    return count;
  }

  static int MergeReshapes(graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      graph::Node& outer = g.nodes[k];
      if (outer.op_type != "Reshape" || !outer.domain.empty() || outer.inputs.size() != 2) continue;
      if (!g.IsConstant(outer.inputs[1])) continue;
      const Tensor& s = *g.values[outer.inputs[1]].constant;
      if (s.dtype() != DType::kInt64) continue;
      bool has_zero = false;
      for (int64_t d : s.Span<int64_t>()) has_zero |= d == 0;
      if (has_zero) continue;
      const int mid = outer.inputs[0];
      if (mid < 0 || g.values[mid].producer < 0 || consumers[mid].size() != 1 ||
          IsGraphOutput(g, mid))
        continue;
      const int pi = g.values[mid].producer;
      const graph::Node& inner = g.nodes[pi];
      if ((inner.op_type != "Reshape" && inner.op_type != "Flatten") || !inner.domain.empty() ||
          dead[pi])
        continue;
      outer.inputs[0] = inner.inputs[0];
      dead[pi] = true;
      ++count;
      ctx.Log("merged " + inner.Describe() + " into " + outer.Describe());
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeTransposeReshapePass() {
  return std::make_unique<TransposeReshapePass>();
}

}  // namespace larserve::opt

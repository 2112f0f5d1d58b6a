#include <algorithm>

#include "larserve/core/timer.h"
#include "larserve/opt/pass.h"

namespace larserve::opt {

void ReplaceAllUses(graph::Graph& g, int from, int to) {
  for (auto& node : g.nodes) {
    for (int& i : node.inputs) {
      if (i == from) i = to;
    }
  }
  for (int& o : g.outputs) {
    if (o == from) o = to;
  }
}

void CompactValues(graph::Graph& g) {
  std::vector<bool> used(g.values.size(), false);
  for (int i : g.inputs) used[i] = true;
  for (int o : g.outputs) used[o] = true;
  for (const auto& node : g.nodes) {
    for (int i : node.inputs) {
      if (i >= 0) used[i] = true;
    }
    for (int o : node.outputs) {
      if (o >= 0) used[o] = true;
    }
  }
  std::vector<int> remap(g.values.size(), -1);
  std::vector<graph::Value> kept;
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    if (!used[v]) continue;
    remap[v] = static_cast<int>(kept.size());
    kept.push_back(std::move(g.values[v]));
  }
  g.values = std::move(kept);
  auto fix = [&](int& i) {
    if (i >= 0) i = remap[i];
  };
  for (int& i : g.inputs) fix(i);
  for (int& o : g.outputs) fix(o);
  for (auto& node : g.nodes) {
    for (int& i : node.inputs) fix(i);
    for (int& o : node.outputs) fix(o);
  }
  g.RebuildProducers();
}

Status PassManager::Run(graph::Graph& g, const NodeEvaluator& evaluate,
                        std::vector<PassReport>* report, int max_rounds) const {
  std::vector<PassReport> local;
  std::vector<PassReport>& out = report ? *report : local;
  for (const auto& p : passes_) {
    PassReport r;
    r.pass = std::string(p->name());
    out.push_back(std::move(r));
  }
  for (int round = 0; round < max_rounds; ++round) {
    int changed = 0;
    for (std::size_t k = 0; k < passes_.size(); ++k) {
      PassContext ctx{evaluate, &out[k].log, quantization_};
      Timer timer;
      auto n = passes_[k]->Run(g, ctx);
      out[k].milliseconds += timer.Seconds() * 1e3;
      if (!n.ok()) return n.status().WithContext("pass " + std::string(passes_[k]->name()));
      g.RebuildProducers();
      if (Status s = g.Verify(); !s.ok()) {
        return Internal("pass " + std::string(passes_[k]->name()) +
                        " left an invalid graph: " + s.message());
      }
      out[k].rewrites += *n;
      changed += *n;
    }
    if (changed == 0) break;
  }
  CompactValues(g);
  return g.Verify();
}

PassManager PassManager::Default(const PipelineOptions& options) {
  PassManager pm;
  pm.Add(MakeEliminateIdentityPass());
  // Before constant folding, which would turn the weights' DequantizeLinear into plain floats
  // and lose their scales; after eliminate-identity, so that a Dropout between two pairs does
  // not hide the second pair's consumers.
  if (options.explicit_quantization) {
    pm.quantization_ = options.explicit_quantization;
    pm.Add(MakeFoldQdqPass());
  }
  pm.Add(MakeConstantFoldingPass());
  pm.Add(MakeTransposeReshapePass());
  pm.Add(MakeFoldBatchNormPass());
  pm.Add(MakeFuseBiasActivationPass());
  pm.Add(MakeFuseConvTransposePass());
  pm.Add(MakeFoldTransposeIntoGemmPass());
  pm.Add(MakeDeadCodePass());
  return pm;
}

}  // namespace larserve::opt

// Removes nodes none of whose outputs is used (TensorRT's dead-output elimination).
#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

class DeadCodePass : public Pass {
 public:
  std::string_view name() const override { return "dead-code"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    std::vector<bool> needed(g.values.size(), false);
    for (int o : g.outputs) needed[o] = true;
    std::vector<bool> dead(g.nodes.size(), true);
    for (std::size_t k = g.nodes.size(); k-- > 0;) {
      const graph::Node& node = g.nodes[k];
      bool live = false;
      for (int o : node.outputs) live |= o >= 0 && needed[o];
      if (!live) continue;
      dead[k] = false;
      for (int i : node.inputs) {
        if (i >= 0) needed[i] = true;
      }
    }
    int count = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      if (dead[k]) {
        ++count;
        ctx.Log("removed unused " + g.nodes[k].Describe());
      }
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeDeadCodePass() { return std::make_unique<DeadCodePass>(); }

}  // namespace larserve::opt

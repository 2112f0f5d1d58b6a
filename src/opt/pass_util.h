#pragma once
// Small helpers shared by the passes.
#include <string>
#include <vector>

#include "larserve/graph/graph.h"

namespace larserve::opt::internal {

inline bool IsGraphOutput(const graph::Graph& g, int v) {
  for (int o : g.outputs) {
    if (o == v) return true;
  }
  return false;
}

inline bool IsGraphInput(const graph::Graph& g, int v) {
  for (int i : g.inputs) {
    if (i == v) return true;
  }
  return false;
}

// Removes the nodes flagged in `dead` (same length as g.nodes), keeping the order.
inline void RemoveNodes(graph::Graph& g, const std::vector<bool>& dead) {
  std::vector<graph::Node> kept;
  kept.reserve(g.nodes.size());
  for (std::size_t n = 0; n < g.nodes.size(); ++n) {
    if (!dead[n]) kept.push_back(std::move(g.nodes[n]));
  }
  g.nodes = std::move(kept);
  g.RebuildProducers();
}

// A fresh value name derived from `base`, unique in g.
inline std::string UniqueName(const graph::Graph& g, const std::string& base) {
  std::string name = base;
  for (int k = 1; g.FindValue(name) >= 0; ++k) name = base + "_" + std::to_string(k);
  return name;
}

}  // namespace larserve::opt::internal

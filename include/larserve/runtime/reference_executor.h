#pragma once
// Runs a whole graph node by node with the reference kernels: the ground truth for every
// optimised path, and the fallback executor. Immutable after Create; Run is thread-safe (each
// call keeps its own intermediate tensors).
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"
#include "larserve/opt/pass.h"

namespace larserve::runtime {

class ReferenceExecutor {
 public:
  // Fails (Unimplemented) if any node has no reference kernel, naming every such node.
  static StatusOr<std::unique_ptr<ReferenceExecutor>> Create(graph::Graph graph);

  // inputs: one per graph input, in order. Dtypes and the known dimensions of the declared
  // input shapes are checked. Returns one tensor per graph output.
  StatusOr<std::vector<Tensor>> Run(std::span<const Tensor> inputs) const;

  const graph::Graph& graph() const { return graph_; }

 private:
  ReferenceExecutor() = default;
  graph::Graph graph_;
  std::vector<int> last_use_;  // per value: index of the last node reading it (-1: none / output)
};

// Checks a tensor against a declared value (dtype, rank, known dimensions); the message names
// the value.
Status CheckInput(const graph::Value& declared, const Tensor& actual);

// The reference kernels as the optimiser's constant-folding evaluator.
opt::NodeEvaluator ReferenceEvaluator();

}  // namespace larserve::runtime

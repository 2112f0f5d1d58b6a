#pragma once
// The ops of the oneDNN ("cpu") backend: for each (domain, op type), whether a node is
// implemented (exactly: Supports must say no to anything the kernel would not compute like the
// reference kernel) and how to compile it.
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/graph/graph.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/engine.h"

namespace larserve::runtime::cpu {

struct OpSupport {
  std::string_view domain;
  std::string_view op_type;
  bool (*supports)(const graph::Graph& g, const graph::Node& node);
  StatusOr<std::unique_ptr<NodeKernel>> (*compile)(const graph::Graph& g, const graph::Node& node,
                                                   const BuildOptions& options);
  // Ops with alternative implementations (runtime/tactics.h): their names, the heuristic
  // choice first, and how to compile one. Null for ops with a single implementation.
  std::vector<std::string> (*tactics)(const graph::Graph& g, const graph::Node& node,
                                      const BuildOptions& options) = nullptr;
  StatusOr<std::unique_ptr<NodeKernel>> (*compile_tactic)(const graph::Graph& g,
                                                          const graph::Node& node,
                                                          const BuildOptions& options,
                                                          std::string_view tactic) = nullptr;
};

// Conv, FusedConv, Gemm, FusedGemm, MatMul (onednn_dense.cc).
std::span<const OpSupport> DenseOps();
// Pools, Softmax, activations, binary arithmetic, Concat, BatchNormalization, Transpose,
// Reshape, Flatten (onednn_misc.cc).
std::span<const OpSupport> MiscOps();

}  // namespace larserve::runtime::cpu

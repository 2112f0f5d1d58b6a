#pragma once
// The ops of the oneDNN ("cpu") backend: for each (domain, op type), whether a node is
// implemented (exactly: Supports must say no to anything the kernel would not compute like the
// reference kernel) and how to compile it.
#include <memory>
#include <span>
#include <string_view>

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
};

// Conv, FusedConv, Gemm, FusedGemm, MatMul (onednn_dense.cc).
std::span<const OpSupport> DenseOps();
// Pools, Softmax, activations, binary arithmetic, Concat, BatchNormalization, Transpose,
// Reshape, Flatten (onednn_misc.cc).
std::span<const OpSupport> MiscOps();

}  // namespace larserve::runtime::cpu

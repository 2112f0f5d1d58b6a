#pragma once
// Reference kernels: plain, obviously-correct loops for every op larserve supports, on host
// tensors. They are the ground truth every optimised backend and precision is compared with,
// and the fallback that makes any model in the op set run.
//
// Contract of a kernel: inputs holds one Tensor per node input (an empty Tensor where an
// optional input is omitted); the kernel validates ranks, shapes, dtypes and attributes
// (InvalidArgument naming node->Describe() on anything wrong; Unimplemented for a valid but
// unsupported case), computes the output shapes, allocates and fills `outputs` (one per node
// output). Kernels are stateless and thread-safe. Semantics: ONNX operators at opsets 11-17.
#include <span>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"

namespace larserve::runtime::ref {

using KernelFn = Status (*)(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                            std::vector<Tensor>& outputs);

// The kernel for an op type of the default ONNX domain or a fused op of the "larserve" domain
// (FusedConv, FusedGemm), or nullptr.
KernelFn FindKernel(std::string_view op_type);
// All op types with a reference kernel, sorted.
std::vector<std::string_view> SupportedOps();

}  // namespace larserve::runtime::ref

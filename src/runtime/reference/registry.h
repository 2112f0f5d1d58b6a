#pragma once
// Internal: how the reference kernel files register their ops.
#include <map>
#include <string>

#include "larserve/runtime/reference_kernels.h"

namespace larserve::runtime::ref {

using KernelMap = std::map<std::string, KernelFn, std::less<>>;

void RegisterNnKernels(
    KernelMap& m);  // nn_kernels.cc: Conv, Gemm, MatMul, pools, BN, softmax, Q/DQ
void RegisterElementwiseKernels(
    KernelMap& m);  // elementwise_kernels.cc: arithmetic, activations, Clip, Cast
void RegisterTensorKernels(KernelMap& m);  // tensor_kernels.cc: shape and layout ops
void RegisterFusedKernels(KernelMap& m);   // fused_kernels.cc: the optimiser's fused ops

}  // namespace larserve::runtime::ref

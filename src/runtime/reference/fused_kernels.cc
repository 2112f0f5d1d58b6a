// Reference kernels of the fused ops the optimiser makes (domain "larserve"): the plain Conv or
// Gemm kernel followed by the activation, exactly as the unfused graph computes it.
#include <algorithm>
#include <cmath>

#include "registry.h"

namespace larserve::runtime::ref {
namespace {

Status ApplyActivation(const graph::Node& node, Tensor& t) {
  if (t.dtype() != DType::kFloat32)
    return Unimplemented(node.Describe() + ": fused activation needs float32");
  const std::string act = node.GetString("activation", "");
  const float alpha = node.GetFloat("activation_alpha", 0.01f);
  const float lo = node.GetFloat("activation_min", -INFINITY);
  const float hi = node.GetFloat("activation_max", INFINITY);
  auto s = t.Span<float>();
  if (act == "Relu") {
    for (float& v : s) v = v < 0.0f ? 0.0f : v;
  } else if (act == "LeakyRelu") {
    for (float& v : s) v = v < 0.0f ? alpha * v : v;
  } else if (act == "Sigmoid") {
    for (float& v : s) v = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(v))));
  } else if (act == "Tanh") {
    for (float& v : s) v = std::tanh(v);
  } else if (act == "Clip") {
    for (float& v : s) v = std::min(std::max(v, lo), hi);
  } else if (!act.empty()) {
    return InvalidArgument(node.Describe() + ": unknown fused activation '" + act + "'");
  }
  return Status::Ok();
}

template <const char* kBase>
Status FusedKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                   std::vector<Tensor>& outputs) {
  KernelFn base = FindKernel(kBase);
  if (!base) return LARSERVE_INTERNAL_ERROR(std::string("no reference kernel for ") + kBase);
  RETURN_IF_ERROR(base(node, opset, inputs, outputs));
  if (outputs.empty()) return LARSERVE_INTERNAL_ERROR("fused base kernel produced no output");
  return ApplyActivation(node, outputs[0]);
}

constexpr char kConv[] = "Conv";
constexpr char kGemm[] = "Gemm";

}  // namespace

void RegisterFusedKernels(KernelMap& m) {
  m["FusedConv"] = &FusedKernel<kConv>;
  m["FusedGemm"] = &FusedKernel<kGemm>;
}

}  // namespace larserve::runtime::ref

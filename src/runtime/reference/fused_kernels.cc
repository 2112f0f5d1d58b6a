// Reference kernels of the fused ops the optimiser makes (domain "larserve"): the plain Conv or
// Gemm kernel followed by the activation, exactly as the unfused graph computes it. FusedConv
// with output_layout "NHWC" (opt/fuse_conv_transpose.cc) then transposes [N, C, H, W] to
// [N, H, W, C], as the Transpose it replaced did.
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
  RETURN_IF_ERROR(ApplyActivation(node, outputs[0]));
  const std::string layout = node.GetString("output_layout", "NCHW");
  if (layout == "NCHW") return Status::Ok();
  const Tensor& y = outputs[0];
  if (layout != "NHWC" || y.shape().rank() != 4 || y.dtype() != DType::kFloat32) {
    return InvalidArgument(node.Describe() + ": output_layout '" + layout +
                           "' (expected NCHW, or NHWC with a rank-4 float32 output)");
  }
  const int64_t n = y.shape()[0], c = y.shape()[1], h = y.shape()[2], w = y.shape()[3];
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(DType::kFloat32, Shape{n, h, w, c}));
  const float* src = y.Span<const float>().data();
  float* dst = t.Span<float>().data();
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t p = 0; p < h * w; ++p)
        dst[(b * h * w + p) * c + ch] = src[(b * c + ch) * h * w + p];
    }
  }
  outputs[0] = std::move(t);
  return Status::Ok();
}

constexpr char kConv[] = "Conv";
constexpr char kGemm[] = "Gemm";

}  // namespace

void RegisterFusedKernels(KernelMap& m) {
  m["FusedConv"] = &FusedKernel<kConv>;
  m["FusedGemm"] = &FusedKernel<kGemm>;
}

}  // namespace larserve::runtime::ref

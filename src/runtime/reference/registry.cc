#include "registry.h"

namespace larserve::runtime::ref {
namespace {
const KernelMap& Kernels() {
  static const KernelMap map = [] {
    KernelMap m;
    RegisterNnKernels(m);
    RegisterElementwiseKernels(m);
    RegisterTensorKernels(m);
    RegisterFusedKernels(m);
    return m;
  }();
  return map;
}
}  // namespace

KernelFn FindKernel(std::string_view op_type) {
  const auto& m = Kernels();
  auto it = m.find(op_type);
  return it == m.end() ? nullptr : it->second;
}

std::vector<std::string_view> SupportedOps() {
  std::vector<std::string_view> out;
  for (const auto& [name, fn] : Kernels()) out.push_back(name);
  return out;
}

}  // namespace larserve::runtime::ref

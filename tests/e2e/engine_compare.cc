// engine_compare MODEL.onnx MODEL.plan: runs the plan (optimised graph) and the unoptimised ONNX
// model on the reference kernels with the same random inputs (batch 3) and checks that every
// output agrees within 1e-5 relative + 1e-6 absolute. Prints the largest differences.
#include <cmath>
#include <cstdio>

#include "larserve/core/rng.h"
#include "larserve/graph/onnx_import.h"
#include "larserve/runtime/engine.h"
#include "larserve/runtime/reference_executor.h"

using namespace larserve;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: engine_compare MODEL.onnx MODEL.plan\n");
    return 2;
  }
  auto g = graph::ImportOnnxFile(argv[1]);
  if (!g.ok()) return std::fprintf(stderr, "%s\n", g.status().ToString().c_str()), 1;
  auto ref = runtime::ReferenceExecutor::Create(*g);
  auto plan = runtime::Engine::LoadPlan(argv[2]);
  if (!ref.ok() || !plan.ok()) {
    std::fprintf(stderr, "%s %s\n", ref.status().ToString().c_str(), plan.status().ToString().c_str());
    return 1;
  }
  Rng rng(7);
  std::vector<Tensor> inputs;
  for (int i : g->inputs) {
    std::vector<int64_t> dims = g->values[i].dims;
    for (auto& d : dims) d = d < 0 ? 3 : d;
    Tensor t = *Tensor::Create(DType::kFloat32, Shape(dims));
    for (float& v : t.Span<float>()) v = static_cast<float>(rng.Uniform(-10.0, 30.0) / 30.0);
    inputs.push_back(t);
  }
  auto want = (*ref)->Run(inputs);
  std::vector<Tensor> got;
  auto ctx = (*plan)->CreateContext();
  Status s = ctx->Run(inputs, &got);
  if (!want.ok() || !s.ok()) {
    std::fprintf(stderr, "%s %s\n", want.status().ToString().c_str(), s.ToString().c_str());
    return 1;
  }
  double worst = 0;
  for (std::size_t k = 0; k < want->size(); ++k) {
    auto a = (*want)[k].Span<float>();
    auto b = got[k].Span<float>();
    if (a.size() != b.size()) return std::fprintf(stderr, "output %zu: size differs\n", k), 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs(a[i] - b[i]);
      worst = std::max(worst, d);
      if (d > 1e-6 + 1e-5 * std::fabs(a[i])) {
        std::fprintf(stderr, "output %zu element %zu: %.9g vs %.9g\n", k, i, b[i], a[i]);
        return 1;
      }
    }
  }
  std::printf("max abs difference %.3g\n", worst);
  return 0;
}

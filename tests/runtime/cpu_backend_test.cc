// The oneDNN ("cpu") backend against the reference backend. Every op and attribute variant the
// cpu backend takes is built into a small graph, compiled once for "cpu" and once for
// "reference", and both engines run the same fresh random inputs at several batch sizes
// (including 1 and non-powers of two); the nodes must really have landed on the cpu backend.
//
// Tolerance (float32): |cpu - ref| <= 1e-5 + 1e-4 * |ref|. oneDNN accumulates in float, in a
// blocked and vectorised order (and split across threads), while the reference accumulates in
// double in index order; the difference is a few float ulps per accumulated term, well inside
// 1e-4 relative for the sums here (up to ~1e5 terms of random sign), and 1e-5 absolute covers
// results that cancel to near zero and oneDNN's polynomial exp/tanh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "larserve/core/rng.h"
#include "larserve/graph/graph.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/calibration.h"
#include "larserve/runtime/engine.h"
#include "larserve/runtime/reference_executor.h"

namespace larserve::runtime {
namespace {

using graph::Attribute;
using graph::Graph;
using Dims = std::vector<int64_t>;
using Attrs = std::map<std::string, Attribute>;

constexpr double kRtol = 1e-4;
constexpr double kAtol = 1e-5;

Attribute Ints(Dims v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute Int(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}
Attribute Float(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}
Attribute Str(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

Tensor RandomTensor(const Dims& dims, Rng& rng, float scale = 1.0f, float offset = 0.0f) {
  Tensor t = *Tensor::Create(DType::kFloat32, Shape(dims));
  for (float& v : t.Span<float>()) v = offset + static_cast<float>(rng.Normal()) * scale;
  return t;
}

Tensor Int64Tensor(const Dims& values) {
  Tensor t = *Tensor::Create(DType::kInt64, Shape{static_cast<int64_t>(values.size())});
  for (std::size_t i = 0; i < values.size(); ++i) t.Span<int64_t>()[i] = values[i];
  return t;
}

// Builds graphs by hand: inputs with -1 for the batch, constants, nodes, outputs.
class Builder {
 public:
  explicit Builder(int64_t opset = 17, uint64_t seed = 1) : rng_(seed) {
    g_.name = "cpu_backend_test";
    g_.opset = opset;
  }
  int Input(const std::string& name, Dims dims) {
    graph::Value v;
    v.name = name;
    v.dims = std::move(dims);
    v.has_shape = true;
    const int id = g_.AddValue(std::move(v));
    g_.inputs.push_back(id);
    return id;
  }
  int Const(const std::string& name, Tensor t) {
    graph::Value v;
    v.name = name;
    v.dtype = t.dtype();
    v.dims = t.shape().dims();
    v.has_shape = true;
    v.constant = std::move(t);
    return g_.AddValue(std::move(v));
  }
  int Weights(const std::string& name, const Dims& dims, float scale = 0.5f, float offset = 0.0f) {
    return Const(name, RandomTensor(dims, rng_, scale, offset));
  }
  // A value produced by a node; dims empty = shape unknown.
  int Tmp(const std::string& name, Dims dims = {}) {
    graph::Value v;
    v.name = name;
    v.has_shape = !dims.empty();
    v.dims = std::move(dims);
    return g_.AddValue(std::move(v));
  }
  int Node(const std::string& op, std::vector<int> in, Attrs attrs = {}, Dims out_dims = {},
           const std::string& domain = "") {
    const int out = Tmp(op + "_" + std::to_string(g_.nodes.size()) + "_out", std::move(out_dims));
    graph::Node n;
    n.name = op + "_" + std::to_string(g_.nodes.size());
    n.op_type = op;
    n.domain = domain;
    n.inputs = std::move(in);
    n.outputs = {out};
    n.attrs = std::move(attrs);
    g_.nodes.push_back(std::move(n));
    g_.values[out].producer = static_cast<int>(g_.nodes.size()) - 1;
    return out;
  }
  void Output(int v) { g_.outputs.push_back(v); }
  Graph& graph() { return g_; }
  Rng& rng() { return rng_; }

 private:
  Graph g_;
  Rng rng_;
};

std::unique_ptr<Engine> BuildEngine(const Graph& g, const std::string& backend, int threads = 0) {
  BuildOptions options;
  options.backend = backend;
  options.threads = threads;
  auto e = Engine::Build(g, options);
  EXPECT_TRUE(e.ok()) << backend << ": " << e.status().ToString();
  if (!e.ok()) return nullptr;
  return std::move(e).value();
}

int NodesOn(const Engine& e, const std::string& backend) {
  int n = 0;
  for (const auto& s : e.segments()) {
    if (s.backend == backend) n += static_cast<int>(s.nodes.size());
  }
  return n;
}

std::string SegmentsToString(const Engine& e) {
  std::string out;
  for (const auto& s : e.segments()) {
    for (std::size_t k = 0; k < s.nodes.size(); ++k) {
      out += "  " + s.backend + ": " + s.nodes[k] + "  [" +
             (k < s.tactics.size() ? s.tactics[k] : "") + "]\n";
    }
  }
  return out;
}

std::vector<Tensor> RandomInputs(const Engine& e, int64_t batch, Rng& rng, float scale) {
  std::vector<Tensor> inputs;
  for (const auto& spec : e.inputs()) {
    Dims dims = spec.dims;
    for (int64_t& d : dims) d = d < 0 ? batch : d;
    inputs.push_back(RandomTensor(dims, rng, scale));
  }
  return inputs;
}

std::vector<Tensor> RunEngine(const Engine& e, const std::vector<Tensor>& inputs,
                              ExecutionContext* ctx = nullptr) {
  std::unique_ptr<ExecutionContext> own;
  if (!ctx) {
    own = e.CreateContext();
    ctx = own.get();
  }
  std::vector<Tensor> out;
  Status s = ctx->Run(inputs, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Number of elements outside the tolerance (the first few are reported).
int64_t CountMismatches(const Tensor& want, const Tensor& got, const std::string& what) {
  EXPECT_EQ(got.dtype(), DType::kFloat32) << what;
  EXPECT_EQ(got.shape(), want.shape()) << what;
  if (got.shape() != want.shape() || got.dtype() != DType::kFloat32) return 1;
  int64_t bad = 0;
  auto w = want.Span<float>();
  auto g = got.Span<float>();
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double a = w[i], b = g[i];
    if ((std::isnan(a) && std::isnan(b)) || a == b) continue;
    if (std::fabs(a - b) <= kAtol + kRtol * std::fabs(a)) continue;
    if (bad++ < 5) {
      ADD_FAILURE() << what << ": element " << i << " is " << b << ", reference " << a;
    }
  }
  return bad;
}

void ExpectOutputsMatch(const std::vector<Tensor>& want, const std::vector<Tensor>& got,
                        const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (std::size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(CountMismatches(want[k], got[k], what + " output " + std::to_string(k)), 0);
  }
}

struct CheckOptions {
  std::vector<int64_t> batches = {1, 3, 8};
  int min_cpu_nodes = -1;  // -1: every node must run on the cpu backend
  float input_scale = 1.0f;
  uint64_t seed = 7;
};

// Builds `g` for both backends, checks the partition, compares outputs at every batch size;
// returns the cpu engine for further checks.
std::unique_ptr<Engine> ExpectMatchesReference(const Graph& g, const std::string& what,
                                               const CheckOptions& opt = {}) {
  auto cpu = BuildEngine(g, "cpu");
  auto ref = BuildEngine(g, "reference");
  if (!cpu || !ref) return nullptr;
  const int total = static_cast<int>(cpu->graph().nodes.size());
  if (opt.min_cpu_nodes < 0) {
    EXPECT_EQ(NodesOn(*cpu, "cpu"), total) << what << ":\n" << SegmentsToString(*cpu);
  } else {
    EXPECT_GE(NodesOn(*cpu, "cpu"), opt.min_cpu_nodes) << what << ":\n" << SegmentsToString(*cpu);
  }
  Rng rng(opt.seed);
  auto ctx = cpu->CreateContext();
  for (int64_t batch : opt.batches) {
    const auto inputs = RandomInputs(*cpu, batch, rng, opt.input_scale);
    const auto want = RunEngine(*ref, inputs);
    const auto got = RunEngine(*cpu, inputs, ctx.get());
    ExpectOutputsMatch(want, got, what + " (batch " + std::to_string(batch) + ")");
  }
  return cpu;
}

class CpuBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CpuBackend()) GTEST_SKIP() << "built without oneDNN";
  }
};

// ---------------------------------------------------------------------------------------------
// Conv and FusedConv

struct ConvCase {
  std::string name;
  int64_t c, m, h, w, kh, kw;
  Attrs attrs;
  bool bias = true;
};

Graph ConvGraph(const ConvCase& cc, const std::string& op = "Conv", const std::string& domain = "",
                Attrs extra = {}) {
  Builder b;
  const int x = b.Input("x", {-1, cc.c, cc.h, cc.w});
  const int64_t group = cc.attrs.count("group") ? cc.attrs.at("group").i : 1;
  const int w = b.Weights("w", {cc.m, cc.c / group, cc.kh, cc.kw});
  std::vector<int> in = {x, w};
  if (cc.bias) in.push_back(b.Weights("b", {cc.m}));
  Attrs attrs = cc.attrs;
  for (auto& [k, v] : extra) attrs[k] = v;
  b.Output(b.Node(op, in, attrs, {}, domain));
  return b.graph();
}

TEST_F(CpuBackendTest, ConvVariants) {
  const std::vector<ConvCase> cases = {
      {"3x3", 3, 8, 10, 10, 3, 3, {}},
      {"no bias", 3, 8, 10, 10, 3, 3, {}, false},
      {"kernel_shape attr", 3, 8, 9, 7, 3, 2, {{"kernel_shape", Ints({3, 2})}}},
      {"stride 2 pads 1",
       4,
       16,
       11,
       11,
       3,
       3,
       {{"strides", Ints({2, 2})}, {"pads", Ints({1, 1, 1, 1})}}},
      {"asymmetric pads and strides",
       3,
       5,
       9,
       12,
       3,
       3,
       {{"strides", Ints({1, 2})}, {"pads", Ints({0, 1, 2, 0})}}},
      {"dilations 2", 3, 8, 12, 12, 3, 3, {{"dilations", Ints({2, 2})}}},
      {"dilations and pads",
       2,
       4,
       10,
       10,
       3,
       3,
       {{"dilations", Ints({2, 1})}, {"pads", Ints({2, 1, 2, 1})}}},
      {"group 2", 4, 6, 8, 8, 3, 3, {{"group", Int(2)}}},
      {"depthwise", 8, 8, 9, 9, 3, 3, {{"group", Int(8)}, {"pads", Ints({1, 1, 1, 1})}}},
      {"SAME_UPPER stride 2",
       3,
       8,
       9,
       10,
       3,
       3,
       {{"auto_pad", Str("SAME_UPPER")}, {"strides", Ints({2, 2})}}},
      {"SAME_LOWER", 3, 8, 8, 8, 4, 4, {{"auto_pad", Str("SAME_LOWER")}}},
      {"VALID", 3, 8, 8, 8, 3, 3, {{"auto_pad", Str("VALID")}}},
      {"1x1", 16, 32, 6, 6, 1, 1, {}},
      {"1 channel 5x5x48", 1, 48, 20, 20, 5, 5, {}},
      {"17 to 33 channels", 17, 33, 7, 7, 3, 3, {{"pads", Ints({1, 1, 1, 1})}}},
  };
  for (const auto& cc : cases) {
    SCOPED_TRACE(cc.name);
    ExpectMatchesReference(ConvGraph(cc), "Conv " + cc.name);
  }
}

std::vector<std::pair<std::string, Attrs>> Activations() {
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"none", {}},
      {"Relu", {{"activation", Str("Relu")}}},
      {"LeakyRelu", {{"activation", Str("LeakyRelu")}, {"activation_alpha", Float(0.2f)}}},
      {"Sigmoid", {{"activation", Str("Sigmoid")}}},
      {"Tanh", {{"activation", Str("Tanh")}}},
      {"Clip",
       {{"activation", Str("Clip")},
        {"activation_min", Float(-0.5f)},
        {"activation_max", Float(0.7f)}}},
      {"Clip min only",
       {{"activation", Str("Clip")},
        {"activation_min", Float(0.0f)},
        {"activation_max", Float(inf)}}},
  };
}

TEST_F(CpuBackendTest, FusedConvActivations) {
  const ConvCase cc = {"fused", 3, 8, 9, 9, 3, 3, {{"pads", Ints({1, 1, 1, 1})}}};
  for (const auto& [name, attrs] : Activations()) {
    SCOPED_TRACE(name);
    ExpectMatchesReference(ConvGraph(cc, "FusedConv", "larserve", attrs), "FusedConv " + name);
  }
}

TEST_F(CpuBackendTest, ConvReluIsFusedAndRunsAsOneCpuNode) {
  Builder b;
  const int x = b.Input("x", {-1, 2, 8, 8});
  const int y = b.Node("Conv", {x, b.Weights("w", {4, 2, 3, 3}), b.Weights("b", {4})});
  b.Output(b.Node("Relu", {y}));
  auto e = ExpectMatchesReference(b.graph(), "Conv+Relu");
  ASSERT_TRUE(e);
  ASSERT_EQ(e->graph().nodes.size(), 1u);
  EXPECT_EQ(e->graph().nodes[0].op_type, "FusedConv");
}

TEST_F(CpuBackendTest, ConvWithRuntimeWeights) {
  Builder b;
  const int x = b.Input("x", {-1, 3, 7, 7});
  const int w = b.Input("w", {4, 3, 3, 3});
  const int bias = b.Input("b", {4});
  b.Output(b.Node("Conv", {x, w, bias}, {{"pads", Ints({1, 1, 1, 1})}}));
  ExpectMatchesReference(b.graph(), "Conv with weights as inputs");
}

// ---------------------------------------------------------------------------------------------
// Gemm, FusedGemm, MatMul

Graph GemmGraph(int64_t k, int64_t n, bool trans_b, int bias_rank, const std::string& op = "Gemm",
                Attrs extra = {}) {
  Builder b;
  const int a = b.Input("a", {-1, k});
  const int w = b.Weights("w", trans_b ? Dims{n, k} : Dims{k, n});
  std::vector<int> in = {a, w};
  if (bias_rank == 1) in.push_back(b.Weights("c", {n}));
  if (bias_rank == 2) in.push_back(b.Weights("c", {1, n}));
  Attrs attrs = std::move(extra);
  if (trans_b) attrs["transB"] = Int(1);
  b.Output(b.Node(op, in, attrs, {-1, n}, op == "FusedGemm" ? "larserve" : ""));
  return b.graph();
}

TEST_F(CpuBackendTest, GemmVariants) {
  for (bool trans_b : {false, true}) {
    for (int bias_rank : {0, 1, 2}) {
      const std::string what = std::string("Gemm transB=") + (trans_b ? "1" : "0") + " bias rank " +
                               std::to_string(bias_rank);
      SCOPED_TRACE(what);
      ExpectMatchesReference(GemmGraph(37, 19, trans_b, bias_rank), what);
    }
  }
  // Explicit alpha = beta = 1 and transA = 0 are the defaults spelled out.
  ExpectMatchesReference(
      GemmGraph(16, 8, false, 1, "Gemm",
                {{"alpha", Float(1.0f)}, {"beta", Float(1.0f)}, {"transA", Int(0)}}),
      "Gemm explicit defaults");
  ExpectMatchesReference(GemmGraph(300, 64, true, 1), "Gemm K=300", {.batches = {1, 5, 64}});
}

TEST_F(CpuBackendTest, FusedGemmActivations) {
  for (const auto& [name, attrs] : Activations()) {
    SCOPED_TRACE(name);
    ExpectMatchesReference(GemmGraph(24, 10, true, 1, "FusedGemm", attrs), "FusedGemm " + name);
  }
}

TEST_F(CpuBackendTest, GemmWithRuntimeOperands) {
  for (bool trans_b : {false, true}) {
    Builder b;
    const int a = b.Input("a", {-1, 12});
    const int w = b.Input("w", trans_b ? Dims{7, 12} : Dims{12, 7});
    const int c = b.Input("c", {7});
    b.Output(b.Node("Gemm", {a, w, c}, {{"transB", Int(trans_b ? 1 : 0)}}));
    ExpectMatchesReference(b.graph(),
                           std::string("Gemm runtime B, transB=") + (trans_b ? "1" : "0"));
  }
}

TEST_F(CpuBackendTest, MatMul2d) {
  {
    // B as an input: stays a MatMul.
    Builder b;
    const int a = b.Input("a", {-1, 20});
    const int w = b.Input("w", {20, 9});
    b.Output(b.Node("MatMul", {a, w}, {}, {-1, 9}));
    auto e = ExpectMatchesReference(b.graph(), "MatMul runtime B");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->graph().nodes[0].op_type, "MatMul");
  }
  {
    // Constant B with a bias Add: the optimiser makes a Gemm of it.
    Builder b;
    const int a = b.Input("a", {-1, 20});
    const int y = b.Node("MatMul", {a, b.Weights("w", {20, 9})}, {}, {-1, 9});
    b.Output(b.Node("Add", {y, b.Weights("c", {9})}, {}, {-1, 9}));
    ExpectMatchesReference(b.graph(), "MatMul constant B + Add");
  }
}

// ---------------------------------------------------------------------------------------------
// Pools

TEST_F(CpuBackendTest, PoolVariants) {
  struct PoolCase {
    std::string name, op;
    int64_t h, w;
    Attrs attrs;
  };
  const std::vector<PoolCase> cases = {
      {"max 2x2 s2", "MaxPool", 8, 8, {{"kernel_shape", Ints({2, 2})}, {"strides", Ints({2, 2})}}},
      {"max 3x3 pads 1",
       "MaxPool",
       7,
       9,
       {{"kernel_shape", Ints({3, 3})}, {"pads", Ints({1, 1, 1, 1})}}},
      {"max asymmetric",
       "MaxPool",
       9,
       8,
       {{"kernel_shape", Ints({3, 2})}, {"strides", Ints({2, 1})}, {"pads", Ints({0, 1, 2, 0})}}},
      {"max SAME_UPPER s2",
       "MaxPool",
       9,
       9,
       {{"kernel_shape", Ints({3, 3})},
        {"strides", Ints({2, 2})},
        {"auto_pad", Str("SAME_UPPER")}}},
      {"max SAME_LOWER",
       "MaxPool",
       6,
       6,
       {{"kernel_shape", Ints({2, 2})}, {"auto_pad", Str("SAME_LOWER")}}},
      {"avg 2x2 s2",
       "AveragePool",
       8,
       8,
       {{"kernel_shape", Ints({2, 2})}, {"strides", Ints({2, 2})}}},
      {"avg pads exclude",
       "AveragePool",
       7,
       7,
       {{"kernel_shape", Ints({3, 3})}, {"strides", Ints({2, 2})}, {"pads", Ints({1, 1, 1, 1})}}},
      {"avg pads include",
       "AveragePool",
       7,
       7,
       {{"kernel_shape", Ints({3, 3})},
        {"strides", Ints({2, 2})},
        {"pads", Ints({1, 1, 1, 1})},
        {"count_include_pad", Int(1)}}},
      {"avg asymmetric include",
       "AveragePool",
       8,
       9,
       {{"kernel_shape", Ints({2, 3})},
        {"pads", Ints({1, 0, 0, 2})},
        {"count_include_pad", Int(1)}}},
      {"avg SAME_UPPER",
       "AveragePool",
       7,
       8,
       {{"kernel_shape", Ints({3, 3})},
        {"auto_pad", Str("SAME_UPPER")},
        {"strides", Ints({2, 2})}}},
      {"avg SAME_LOWER include",
       "AveragePool",
       7,
       8,
       {{"kernel_shape", Ints({2, 2})},
        {"auto_pad", Str("SAME_LOWER")},
        {"count_include_pad", Int(1)}}},
  };
  for (const auto& pc : cases) {
    SCOPED_TRACE(pc.name);
    Builder b;
    b.Output(b.Node(pc.op, {b.Input("x", {-1, 3, pc.h, pc.w})}, pc.attrs));
    ExpectMatchesReference(b.graph(), pc.op + " " + pc.name);
  }
}

TEST_F(CpuBackendTest, GlobalAveragePool) {
  for (const Dims& dims : {Dims{-1, 5, 6, 7}, Dims{-1, 4, 9}, Dims{-1, 3, 2, 3, 4}}) {
    Builder b;
    b.Output(b.Node("GlobalAveragePool", {b.Input("x", dims)}));
    ExpectMatchesReference(b.graph(), "GlobalAveragePool rank " + std::to_string(dims.size()));
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax, activations

TEST_F(CpuBackendTest, Softmax) {
  struct SoftmaxCase {
    int64_t opset;
    Dims dims;
    Attrs attrs;
  };
  const std::vector<SoftmaxCase> cases = {
      {13, {-1, 10}, {}},
      {13, {-1, 4, 6}, {{"axis", Int(1)}}},
      {13, {-1, 4, 6}, {{"axis", Int(-1)}}},
      {13, {-1, 3, 4, 5}, {{"axis", Int(0)}}},
      {11, {-1, 7}, {}},
      {11, {-1, 4, 6}, {}},                     // coerced to [N, 24]
      {11, {-1, 4, 6}, {{"axis", Int(2)}}},     // last axis
      {11, {-1, 3, 4, 5}, {{"axis", Int(2)}}},  // coerced to [N*3, 20]
  };
  for (const auto& sc : cases) {
    const std::string what =
        "Softmax opset " + std::to_string(sc.opset) + " " + Shape(sc.dims).ToString() +
        (sc.attrs.count("axis") ? " axis " + std::to_string(sc.attrs.at("axis").i) : "");
    SCOPED_TRACE(what);
    Builder b(sc.opset);
    b.Output(b.Node("Softmax", {b.Input("x", sc.dims)}, sc.attrs));
    ExpectMatchesReference(b.graph(), what, {.input_scale = 3.0f});
  }
}

TEST_F(CpuBackendTest, Activations) {
  struct ActCase {
    std::string name, op;
    Attrs attrs;
    int64_t opset;
    std::vector<float> bounds;  // Clip from opset 11: min (and max) as constant inputs
    bool max_only;
  };
  const std::vector<ActCase> cases = {
      {"Relu", "Relu", {}, 17, {}, false},
      {"LeakyRelu default", "LeakyRelu", {}, 17, {}, false},
      {"LeakyRelu 0.3", "LeakyRelu", {{"alpha", Float(0.3f)}}, 17, {}, false},
      {"Sigmoid", "Sigmoid", {}, 17, {}, false},
      {"Tanh", "Tanh", {}, 17, {}, false},
      {"Clip min max", "Clip", {}, 13, {-0.4f, 0.9f}, false},
      {"Clip min", "Clip", {}, 13, {0.1f}, false},
      {"Clip max", "Clip", {}, 13, {0.5f}, true},
      {"Clip none", "Clip", {}, 13, {}, false},
      {"Clip opset 6", "Clip", {{"min", Float(-1.0f)}, {"max", Float(0.25f)}}, 6, {}, false},
      {"Clip opset 6 defaults", "Clip", {}, 6, {}, false},
  };
  for (const auto& ac : cases) {
    SCOPED_TRACE(ac.name);
    Builder b(ac.opset);
    std::vector<int> in = {b.Input("x", {-1, 3, 5})};
    if (ac.max_only) {
      in.push_back(-1);
      in.push_back(b.Const("max", *Tensor::Create(DType::kFloat32, Shape{})));
      b.graph().values[in.back()].constant->Span<float>()[0] = ac.bounds[0];
    } else {
      for (std::size_t i = 0; i < ac.bounds.size(); ++i) {
        Tensor t = *Tensor::Create(DType::kFloat32, Shape{});
        t.Span<float>()[0] = ac.bounds[i];
        in.push_back(b.Const(i == 0 ? "min" : "max", t));
      }
    }
    b.Output(b.Node(ac.op, in, ac.attrs));
    ExpectMatchesReference(b.graph(), ac.name, {.input_scale = 3.0f});
  }
}

// ---------------------------------------------------------------------------------------------
// Binary arithmetic with broadcasting

TEST_F(CpuBackendTest, BinaryBroadcasting) {
  // An operand whose first dim is -1 is a graph input, any other a constant. When neither
  // operand can be oneDNN's first source (it broadcasts only the second), the node stays on the
  // reference backend if the declared shapes show it, and otherwise the cpu kernel hands those
  // calls to the reference kernel.
  struct BinCase {
    std::string name, op;
    Dims a, b;
    bool on_cpu = true;
    bool hide_shapes = false;  // A passes through a Relu whose output shape is not declared
  };
  const std::vector<BinCase> cases = {
      {"Add same shape", "Add", {-1, 4, 5}, {-1, 4, 5}},
      {"Add per channel", "Add", {-1, 3, 4, 5}, {3, 1, 1}},
      {"Add A broadcast (swapped)", "Add", {1, 5}, {-1, 5}},
      {"Mul row", "Mul", {-1, 5}, {5}},
      {"Mul scalar", "Mul", {-1, 2, 3}, {}},
      {"Mul A broadcast (swapped)", "Mul", {3, 1, 1}, {-1, 3, 4, 4}},
      {"Sub row", "Sub", {-1, 6}, {6}},
      {"Sub A broadcast", "Sub", {6}, {-1, 6}, false},
      {"Div", "Div", {-1, 4}, {4}},
      {"Add both broadcast", "Add", {-1, 1}, {1, 5}, false},
      {"Add both broadcast, shapes known at run time", "Add", {-1, 1}, {1, 5}, true, true},
      {"Sub A broadcast, shapes known at run time", "Sub", {-1, 1}, {1, 5}, true, true},
  };
  for (const auto& bc : cases) {
    SCOPED_TRACE(bc.name);
    Builder b;
    auto operand = [&](const std::string& name, const Dims& dims, bool divisor) {
      if (!dims.empty() && dims[0] == -1) return b.Input(name, dims);
      // Divisors are kept away from zero.
      return b.Weights(name, dims, divisor ? 0.2f : 1.0f, divisor ? 1.5f : 0.0f);
    };
    int a = operand("a", bc.a, false);
    if (bc.hide_shapes) a = b.Node("Relu", {a});
    const int y = operand("b", bc.b, bc.op == "Div");
    b.Output(b.Node(bc.op, {a, y}));
    ExpectMatchesReference(b.graph(), bc.name, {.min_cpu_nodes = bc.on_cpu ? -1 : 0});
    if (!bc.on_cpu) {
      auto e = BuildEngine(b.graph(), "cpu");
      ASSERT_TRUE(e);
      EXPECT_EQ(NodesOn(*e, "cpu"), 0) << SegmentsToString(*e);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Concat, BatchNormalization, Transpose, Reshape, Flatten

TEST_F(CpuBackendTest, Concat) {
  {
    Builder b;
    const int x = b.Input("x", {-1, 2, 3});
    const int y = b.Input("y", {-1, 4, 3});
    b.Output(b.Node("Concat", {x, y, x}, {{"axis", Int(1)}}));
    ExpectMatchesReference(b.graph(), "Concat axis 1");
  }
  {
    Builder b;
    const int x = b.Input("x", {-1, 2, 3});
    const int y = b.Input("y", {-1, 2, 5});
    b.Output(b.Node("Concat", {x, y}, {{"axis", Int(-1)}}));
    ExpectMatchesReference(b.graph(), "Concat axis -1");
  }
  {
    Builder b;
    const int x = b.Input("x", {-1, 4});
    const int c = b.Weights("c", {2, 4});
    b.Output(b.Node("Concat", {x, c}, {{"axis", Int(0)}}));
    ExpectMatchesReference(b.graph(), "Concat axis 0 with a constant");
  }
  {
    // A zero-sized input contributes nothing.
    Builder b;
    const int x = b.Input("x", {-1, 3});
    const int e = b.Const("empty", *Tensor::Create(DType::kFloat32, Shape{0, 3}));
    b.Output(b.Node("Concat", {x, e, x}, {{"axis", Int(0)}}));
    ExpectMatchesReference(b.graph(), "Concat with an empty input");
  }
}

TEST_F(CpuBackendTest, BatchNormalization) {
  for (const Dims& dims : {Dims{-1, 3, 5, 4}, Dims{-1, 6}, Dims{-1, 2, 7}}) {
    Builder b;
    const int64_t c = dims[1];
    const int x = b.Input("x", dims);
    const int scale = b.Weights("scale", {c});
    const int bias = b.Weights("bias", {c});
    const int mean = b.Weights("mean", {c});
    const int var = b.Weights("var", {c}, 0.2f, 1.0f);
    b.Output(
        b.Node("BatchNormalization", {x, scale, bias, mean, var}, {{"epsilon", Float(1e-3f)}}));
    ExpectMatchesReference(b.graph(), "BatchNormalization " + Shape(dims).ToString());
  }
}

TEST_F(CpuBackendTest, Transpose) {
  for (const Dims& perm : {Dims{0, 2, 3, 1}, Dims{0, 3, 1, 2}, Dims{3, 1, 0, 2}, Dims{}}) {
    Builder b;
    Attrs attrs;
    if (!perm.empty()) attrs["perm"] = Ints(perm);
    b.Output(b.Node("Transpose", {b.Input("x", {-1, 3, 4, 5})}, attrs));
    ExpectMatchesReference(b.graph(), "Transpose " + Shape(perm).ToString());
  }
}

TEST_F(CpuBackendTest, ReshapeAndFlattenAreViewsInsideAndCopiesAtTheOutput) {
  {
    // Relu -> Reshape -> Sigmoid: the Reshape is a view of the Relu's buffer.
    Builder b;
    const int x = b.Input("x", {-1, 4, 6});
    const int r = b.Node("Relu", {x});
    const int s = b.Node("Reshape", {r, b.Const("shape", Int64Tensor({0, -1}))});
    b.Output(b.Node("Sigmoid", {s}));
    auto e = ExpectMatchesReference(b.graph(), "Reshape inside");
    ASSERT_TRUE(e);
    EXPECT_NE(SegmentsToString(*e).find("view"), std::string::npos) << SegmentsToString(*e);
  }
  {
    Builder b;
    const int x = b.Input("x", {-1, 4, 6});
    b.Output(b.Node("Reshape", {b.Node("Tanh", {x}), b.Const("shape", Int64Tensor({-1, 3, 8}))}));
    auto e = ExpectMatchesReference(b.graph(), "Reshape as graph output");
    ASSERT_TRUE(e);
    EXPECT_NE(SegmentsToString(*e).find("copy"), std::string::npos) << SegmentsToString(*e);
  }
  {
    Builder b(13);
    const int x = b.Input("x", {-1, 2, 3, 4});
    const int f = b.Node("Flatten", {b.Node("Relu", {x})}, {{"axis", Int(2)}});
    b.Output(b.Node("Relu", {f}));
    ExpectMatchesReference(b.graph(), "Flatten axis 2 inside");
  }
  {
    Builder b(13);
    b.Output(b.Node("Flatten", {b.Input("x", {-1, 2, 3, 4})}));
    ExpectMatchesReference(b.graph(), "Flatten as graph output");
  }
}

// The caller keeps the outputs of one run while the next runs: they must not share the
// per-context buffers the cpu backend reuses for intermediate values.
TEST_F(CpuBackendTest, OutputsSurviveTheNextRun) {
  Builder b;
  const int x = b.Input("x", {-1, 8});
  const int h = b.Node("Relu", {x});
  const int v = b.Node("Reshape", {h, b.Const("shape", Int64Tensor({0, 2, 4}))});
  b.Output(b.Node("Reshape", {v, b.Const("shape2", Int64Tensor({0, 8}))}));
  b.Output(b.Node("Sigmoid", {h}));
  auto cpu = BuildEngine(b.graph(), "cpu");
  auto ref = BuildEngine(b.graph(), "reference");
  ASSERT_TRUE(cpu && ref);
  Rng rng(3);
  auto ctx = cpu->CreateContext();
  const auto in1 = RandomInputs(*cpu, 4, rng, 1.0f);
  const auto in2 = RandomInputs(*cpu, 4, rng, 1.0f);
  const auto first = RunEngine(*cpu, in1, ctx.get());
  const auto second = RunEngine(*cpu, in2, ctx.get());
  ExpectOutputsMatch(RunEngine(*ref, in1), first, "first run, after the second");
  ExpectOutputsMatch(RunEngine(*ref, in2), second, "second run");
}

// ---------------------------------------------------------------------------------------------
// The production network, batch changes and concurrency

// EmTrackMichelId-shaped: NHWC [N,48,48,1] -> Reshape to NCHW -> FusedConv 5x5x48 relu ->
// Transpose(0,2,3,1) -> Flatten -> FusedGemm 128 relu -> FusedGemm 32 relu -> Gemm 3 ->
// Softmax, and FusedGemm 1 sigmoid. Random weights at the scales of make_test_models.py.
Graph EmTrackMichelGraph(int64_t size = 48, int64_t maps = 48) {
  Builder b(13, 2026);
  const int64_t out = size - 4;
  const int x = b.Input("main_input", {-1, size, size, 1});
  const int nchw = b.Node("Reshape", {x, b.Const("nchw_shape", Int64Tensor({-1, 1, size, size}))},
                          {}, {-1, 1, size, size});
  const Attrs relu = {{"activation", Str("Relu")}};
  const int conv =
      b.Node("FusedConv",
             {nchw, b.Weights("conv_w", {maps, 1, 5, 5}, 0.2f), b.Weights("conv_b", {maps}, 0.05f)},
             relu, {-1, maps, out, out}, "larserve");
  const int nhwc =
      b.Node("Transpose", {conv}, {{"perm", Ints({0, 2, 3, 1})}}, {-1, out, out, maps});
  const int flat = b.Node("Flatten", {nhwc}, {{"axis", Int(1)}}, {-1, out * out * maps});
  const int d1 = b.Node(
      "FusedGemm",
      {flat, b.Weights("d1_w", {out * out * maps, 128}, 0.005f), b.Weights("d1_b", {128}, 0.05f)},
      relu, {-1, 128}, "larserve");
  Attrs relu_t = relu;
  relu_t["transB"] = Int(1);
  const int d2 =
      b.Node("FusedGemm", {d1, b.Weights("d2_w", {32, 128}, 0.1f), b.Weights("d2_b", {32}, 0.05f)},
             relu_t, {-1, 32}, "larserve");
  const int em =
      b.Node("Gemm", {d2, b.Weights("em_w", {3, 32}, 0.3f), b.Weights("em_b", {3}, 0.05f)},
             {{"transB", Int(1)}}, {-1, 3});
  b.Output(b.Node("Softmax", {em}, {{"axis", Int(-1)}}, {-1, 3}));
  b.Output(b.Node("FusedGemm",
                  {d2, b.Weights("mi_w", {1, 32}, 0.3f), b.Weights("mi_b", {1}, 0.05f)},
                  {{"activation", Str("Sigmoid")}, {"transB", Int(1)}}, {-1, 1}, "larserve"));
  return b.graph();
}

TEST_F(CpuBackendTest, EmTrackMichelIdEndToEnd) {
  auto e = ExpectMatchesReference(EmTrackMichelGraph(), "EmTrackMichelId", {.batches = {1, 3, 10}});
  ASSERT_TRUE(e);
  std::printf("EmTrackMichelId on the cpu backend:\n%s", SegmentsToString(*e).c_str());
  for (const auto& s : e->segments()) {
    for (const auto& t : s.tactics) EXPECT_FALSE(t.empty());
  }
}

TEST_F(CpuBackendTest, BatchSizeChangesBetweenCalls) {
  const Graph g = EmTrackMichelGraph(16, 8);
  auto cpu = BuildEngine(g, "cpu");
  auto ref = BuildEngine(g, "reference");
  ASSERT_TRUE(cpu && ref);
  auto ctx = cpu->CreateContext();
  Rng rng(11);
  // More distinct sizes than the per-context plan cache holds, then earlier ones again.
  for (int64_t batch : {4, 1, 7, 4, 1, 16, 2, 3, 5, 6, 9, 10, 11, 7, 4, 1}) {
    const auto inputs = RandomInputs(*cpu, batch, rng, 1.0f);
    ExpectOutputsMatch(RunEngine(*ref, inputs), RunEngine(*cpu, inputs, ctx.get()),
                       "batch " + std::to_string(batch));
  }
}

TEST_F(CpuBackendTest, TwoContextsInTwoThreads) {
  const Graph g = EmTrackMichelGraph(24, 16);
  auto cpu = BuildEngine(g, "cpu", /*threads=*/2);
  auto ref = BuildEngine(g, "reference");
  ASSERT_TRUE(cpu && ref);
  struct Job {
    std::vector<std::vector<Tensor>> inputs, want;
  };
  Rng rng(5);
  Job jobs[2];
  for (int t = 0; t < 2; ++t) {
    for (int64_t batch : {3, 8, 1}) {
      jobs[t].inputs.push_back(RandomInputs(*cpu, batch + t, rng, 1.0f));
      jobs[t].want.push_back(RunEngine(*ref, jobs[t].inputs.back()));
    }
  }
  std::atomic<int> mismatches{0}, errors{0};
  auto work = [&](const Job& job) {
    auto ctx = cpu->CreateContext();
    for (int rep = 0; rep < 10; ++rep) {
      for (std::size_t k = 0; k < job.inputs.size(); ++k) {
        std::vector<Tensor> out;
        if (!ctx->Run(job.inputs[k], &out).ok()) {
          ++errors;
          continue;
        }
        for (std::size_t o = 0; o < out.size(); ++o) {
          auto w = job.want[k][o].Span<float>();
          auto g = out[o].Span<float>();
          if (w.size() != g.size()) {
            ++mismatches;
            continue;
          }
          for (std::size_t i = 0; i < w.size(); ++i) {
            if (!(std::fabs(w[i] - g[i]) <= kAtol + kRtol * std::fabs(w[i]))) ++mismatches;
          }
        }
      }
    }
  };
  std::thread t0(work, std::cref(jobs[0]));
  std::thread t1(work, std::cref(jobs[1]));
  t0.join();
  t1.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(CpuBackendTest, IntraOpThreadCountsAgree) {
  const Graph g = EmTrackMichelGraph(20, 8);
  auto one = BuildEngine(g, "cpu", 1);
  auto two = BuildEngine(g, "cpu", 2);
  ASSERT_TRUE(one && two);
  Rng rng(9);
  const auto inputs = RandomInputs(*one, 6, rng, 1.0f);
  ExpectOutputsMatch(RunEngine(*one, inputs), RunEngine(*two, inputs), "threads 1 vs 2");
}

TEST_F(CpuBackendTest, SmallBatchesRunOnFewerThreads) {
  // EmTrackMichelId at 48x48 is several million multiply-adds per patch: one patch runs on one
  // thread, a large batch on all of them; the work estimate is per row of the batch.
  const Graph g = EmTrackMichelGraph(48, 8);
  auto four = BuildEngine(g, "cpu", /*threads=*/4);
  auto ref = BuildEngine(g, "reference");
  ASSERT_TRUE(four && ref);
  EXPECT_EQ(four->RunThreads(1), 1);
  EXPECT_EQ(four->RunThreads(4096), 4);
  for (int64_t b = 1; b < 4096; ++b) {
    ASSERT_LE(four->RunThreads(b), four->RunThreads(b + 1)) << b;
  }
  // One context alternating between thread counts: plans are kept per count, and every run
  // matches the reference.
  auto ctx = four->CreateContext();
  Rng rng(21);
  std::set<int> counts;
  for (int64_t batch : {64, 1, 64, 2, 1, 33, 64}) {
    counts.insert(four->RunThreads(batch));
    const auto inputs = RandomInputs(*four, batch, rng, 1.0f);
    ExpectOutputsMatch(RunEngine(*ref, inputs), RunEngine(*four, inputs, ctx.get()),
                       "batch " + std::to_string(batch));
  }
  EXPECT_GE(counts.size(), 2u);
  // Without a batch dimension to scale by, every run uses all threads.
  const Graph fixed = [] {
    Builder b;
    const int x = b.Input("x", {2, 16});
    b.Output(b.Node("Relu", {x}, {}, {2, 16}));
    return b.graph();
  }();
  auto fixed_engine = BuildEngine(fixed, "cpu", 3);
  ASSERT_TRUE(fixed_engine);
  EXPECT_EQ(fixed_engine->RunThreads(0), 3);
}

// ---------------------------------------------------------------------------------------------
// BF16 builds: Conv/FusedConv and Gemm/FusedGemm/MatMul take bf16 source and weights (8
// mantissa bits, relative rounding error 2^-9 per operand) with f32 accumulation, bias and
// output; every other op stays fp32. Against the fp32 reference on outputs of order 1, each
// element must lie within 2e-2 + 2e-2 * |ref|, and the mean absolute error of every output
// must stay below 5e-3, so that a few lucky elements cannot hide a broken kernel.

constexpr double kBf16Rtol = 2e-2;
constexpr double kBf16Atol = 2e-2;
constexpr double kBf16MeanAbs = 5e-3;

// A small conv + gemm graph with a MatMul whose weights arrive at run time (converted to bf16
// inside the kernel): [N,3,8,8] -> FusedConv 3x3x8 relu -> Flatten -> FusedGemm 16 relu
// (transB) -> MatMul by the input w [16,5].
Graph ConvGemmGraph() {
  Builder b(17, 4242);
  const int x = b.Input("x", {-1, 3, 8, 8});
  const Attrs relu = {{"activation", Str("Relu")}};
  const int conv = b.Node(
      "FusedConv", {x, b.Weights("conv_w", {8, 3, 3, 3}, 0.2f), b.Weights("conv_b", {8}, 0.05f)},
      relu, {-1, 8, 6, 6}, "larserve");
  const int flat = b.Node("Flatten", {conv}, {{"axis", Int(1)}}, {-1, 8 * 6 * 6});
  Attrs relu_t = relu;
  relu_t["transB"] = Int(1);
  const int d = b.Node(
      "FusedGemm", {flat, b.Weights("d_w", {16, 8 * 6 * 6}, 0.02f), b.Weights("d_b", {16}, 0.05f)},
      relu_t, {-1, 16}, "larserve");
  b.Output(b.Node("MatMul", {d, b.Input("w", {16, 5})}, {}, {-1, 5}));
  return b.graph();
}

// Builds `g` for the cpu backend in bf16 and compares with the fp32 reference; returns the
// cpu engine.
std::unique_ptr<Engine> ExpectBf16MatchesReference(const Graph& g, const std::string& what,
                                                   const std::vector<int64_t>& batches) {
  BuildOptions options;
  options.backend = "cpu";
  options.precision = Precision::kBf16;
  auto built = Engine::Build(g, options);
  EXPECT_TRUE(built.ok()) << what << ": " << built.status().ToString();
  if (!built.ok()) return nullptr;
  std::unique_ptr<Engine> cpu = std::move(built).value();
  auto ref = BuildEngine(g, "reference");
  if (!ref) return nullptr;
  EXPECT_EQ(NodesOn(*cpu, "cpu"), static_cast<int>(cpu->graph().nodes.size()))
      << what << ":\n"
      << SegmentsToString(*cpu);
  std::printf("%s in bf16 on the cpu backend:\n%s", what.c_str(), SegmentsToString(*cpu).c_str());
  Rng rng(31);
  auto ctx = cpu->CreateContext();
  for (int64_t batch : batches) {
    const auto inputs = RandomInputs(*cpu, batch, rng, 1.0f);
    const auto want = RunEngine(*ref, inputs);
    const auto got = RunEngine(*cpu, inputs, ctx.get());
    EXPECT_EQ(want.size(), got.size()) << what;
    for (std::size_t k = 0; k < std::min(want.size(), got.size()); ++k) {
      const std::string where =
          what + " (batch " + std::to_string(batch) + ") output " + std::to_string(k);
      EXPECT_EQ(got[k].dtype(), DType::kFloat32) << where;
      EXPECT_EQ(got[k].shape(), want[k].shape()) << where;
      if (got[k].dtype() != DType::kFloat32 || got[k].shape() != want[k].shape()) continue;
      auto w = want[k].Span<float>();
      auto o = got[k].Span<float>();
      double sum_abs = 0, max_abs = 0, max_ref = 0;
      int64_t bad = 0;
      for (std::size_t i = 0; i < w.size(); ++i) {
        const double err = std::fabs(static_cast<double>(o[i]) - w[i]);
        sum_abs += err;
        max_abs = std::max(max_abs, err);
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(w[i])));
        if (!(err <= kBf16Atol + kBf16Rtol * std::fabs(w[i])) && bad++ < 5) {
          ADD_FAILURE() << where << ": element " << i << " is " << o[i] << ", reference " << w[i];
        }
      }
      EXPECT_EQ(bad, 0) << where;
      const double mean_abs = w.empty() ? 0.0 : sum_abs / static_cast<double>(w.size());
      EXPECT_LT(mean_abs, kBf16MeanAbs) << where;
      // The tolerances are only meaningful on outputs of order 1.
      EXPECT_GT(max_ref, 0.1) << where;
      EXPECT_LT(max_ref, 50.0) << where;
      std::printf("  %s: mean |err| %.2e, max |err| %.2e, max |ref| %.2f\n", where.c_str(),
                  mean_abs, max_abs, max_ref);
    }
  }
  return cpu;
}

// Whether the dense kernels of a bf16 build really run bf16 (false: the CPU lacks it, and they
// must say so); every dense tactic must state its precision either way.
bool DenseTacticsSayBf16(const Engine& e) {
  bool all_bf16 = true;
  for (const auto& s : e.segments()) {
    for (std::size_t k = 0; k < s.nodes.size() && k < s.tactics.size(); ++k) {
      const std::string& t = s.tactics[k];
      const bool dense =
          t.find("oneDNN conv") == 0 || t.find("oneDNN gemm") == 0 || t.find("oneDNN matmul") == 0;
      if (!dense) {
        EXPECT_EQ(t.find("bf16"), std::string::npos) << s.nodes[k] << ": " << t;
        continue;
      }
      const bool bf16 = t.size() >= 5 && t.compare(t.size() - 5, 5, " bf16") == 0;
      const bool no_bf16 = t.find("fp32 (no bf16 on this CPU)") != std::string::npos;
      EXPECT_TRUE(bf16 || no_bf16) << s.nodes[k] << ": " << t;
      all_bf16 = all_bf16 && bf16;
    }
  }
  return all_bf16;
}

TEST_F(CpuBackendTest, Bf16ConvGemmMatMulMatchesFp32Reference) {
  auto e = ExpectBf16MatchesReference(ConvGemmGraph(), "conv+gemm+matmul", {1, 3, 17});
  ASSERT_TRUE(e);
  if (!DenseTacticsSayBf16(*e)) GTEST_SKIP() << "no bf16 on this CPU: the dense ops ran fp32";
}

TEST_F(CpuBackendTest, Bf16EmTrackMichelIdMatchesFp32Reference) {
  auto e = ExpectBf16MatchesReference(EmTrackMichelGraph(), "EmTrackMichelId", {1, 3, 10});
  ASSERT_TRUE(e);
  if (!DenseTacticsSayBf16(*e)) GTEST_SKIP() << "no bf16 on this CPU: the dense ops ran fp32";
  // bf16 really ran: the outputs are not bit-identical to an fp32 build of the cpu backend.
  auto fp32 = BuildEngine(EmTrackMichelGraph(), "cpu");
  ASSERT_TRUE(fp32);
  Rng rng(3);
  const auto inputs = RandomInputs(*e, 8, rng, 1.0f);
  const auto a = RunEngine(*fp32, inputs);
  const auto b = RunEngine(*e, inputs);
  ASSERT_EQ(a.size(), b.size());
  bool differs = false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    auto x = a[k].Span<float>();
    auto y = b[k].Span<float>();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) differs = differs || x[i] != y[i];
  }
  EXPECT_TRUE(differs);
}

// ---------------------------------------------------------------------------------------------
// INT8 builds: Conv/FusedConv and Gemm/FusedGemm/MatMul with a calibrated input and constant
// weights take a symmetric per-tensor s8 source (scale amax / 127 from a min-max calibration on
// data of the test distribution) and symmetric per-output-channel s8 weights, accumulate in
// s32 and write f32. The rounding error of each operand is up to half a step (1/254 of its
// range), so a dot product of K terms is off by about sqrt(K) * 1/254 * (typical term) --
// around a percent of the output range, and errors compound over the layers. Against the fp32
// reference on outputs of order 1, each element must lie within 5e-2 + 5e-2 * |ref|, and the
// mean absolute error of every output must stay below 1.5e-2.

constexpr double kInt8Rtol = 5e-2;
constexpr double kInt8Atol = 5e-2;
constexpr double kInt8MeanAbs = 1.5e-2;

// A min-max calibration table for `g` (keyed by the optimised graph's value names, which the
// reference engine inside Calibrate produces with the same passes) on random batches from the
// distribution RandomInputs uses in the tests: `num_batches` batches of 16. Min-max needs
// enough samples to see the extremes fresh data will reach.
std::shared_ptr<const CalibrationTable> CalibrateOnRandom(const Graph& g, uint64_t seed,
                                                          int num_batches) {
  auto ref = BuildEngine(g, "reference");
  if (!ref) return nullptr;
  Rng rng(seed);
  std::vector<std::vector<Tensor>> batches;
  for (int k = 0; k < num_batches; ++k) batches.push_back(RandomInputs(*ref, 16, rng, 1.0f));
  CalibrationOptions o;
  o.method = CalibrationMethod::kMinMax;
  auto table = Calibrate(g, batches, o);
  EXPECT_TRUE(table.ok()) << table.status().ToString();
  if (!table.ok()) return nullptr;
  return std::make_shared<const CalibrationTable>(std::move(table).value());
}

std::unique_ptr<Engine> BuildInt8(const Graph& g, std::shared_ptr<const CalibrationTable> table,
                                  int threads = 0) {
  BuildOptions options;
  options.backend = "cpu";
  options.precision = Precision::kInt8;
  options.calibration = std::move(table);
  options.threads = threads;
  auto built = Engine::Build(g, options);
  EXPECT_TRUE(built.ok()) << built.status().ToString();
  if (!built.ok()) return nullptr;
  return std::move(built).value();
}

// Builds `g` for the cpu backend in int8 with `table` and compares with the fp32 reference on
// fresh inputs; returns the cpu engine.
std::unique_ptr<Engine> ExpectInt8MatchesReference(const Graph& g, const std::string& what,
                                                   std::shared_ptr<const CalibrationTable> table,
                                                   const std::vector<int64_t>& batches) {
  std::unique_ptr<Engine> cpu = BuildInt8(g, std::move(table));
  auto ref = BuildEngine(g, "reference");
  if (!cpu || !ref) return nullptr;
  EXPECT_EQ(NodesOn(*cpu, "cpu"), static_cast<int>(cpu->graph().nodes.size()))
      << what << ":\n"
      << SegmentsToString(*cpu);
  std::printf("%s in int8 on the cpu backend:\n%s", what.c_str(), SegmentsToString(*cpu).c_str());
  Rng rng(97);  // not the calibration data
  auto ctx = cpu->CreateContext();
  for (int64_t batch : batches) {
    const auto inputs = RandomInputs(*cpu, batch, rng, 1.0f);
    const auto want = RunEngine(*ref, inputs);
    const auto got = RunEngine(*cpu, inputs, ctx.get());
    EXPECT_EQ(want.size(), got.size()) << what;
    for (std::size_t k = 0; k < std::min(want.size(), got.size()); ++k) {
      const std::string where =
          what + " (batch " + std::to_string(batch) + ") output " + std::to_string(k);
      EXPECT_EQ(got[k].dtype(), DType::kFloat32) << where;
      EXPECT_EQ(got[k].shape(), want[k].shape()) << where;
      if (got[k].dtype() != DType::kFloat32 || got[k].shape() != want[k].shape()) continue;
      auto w = want[k].Span<float>();
      auto o = got[k].Span<float>();
      double sum_abs = 0, max_abs = 0, max_ref = 0;
      int64_t bad = 0;
      for (std::size_t i = 0; i < w.size(); ++i) {
        const double err = std::fabs(static_cast<double>(o[i]) - w[i]);
        sum_abs += err;
        max_abs = std::max(max_abs, err);
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(w[i])));
        if (!(err <= kInt8Atol + kInt8Rtol * std::fabs(w[i])) && bad++ < 5) {
          ADD_FAILURE() << where << ": element " << i << " is " << o[i] << ", reference " << w[i];
        }
      }
      EXPECT_EQ(bad, 0) << where;
      const double mean_abs = w.empty() ? 0.0 : sum_abs / static_cast<double>(w.size());
      EXPECT_LT(mean_abs, kInt8MeanAbs) << where;
      EXPECT_GT(max_ref, 0.1) << where;
      EXPECT_LT(max_ref, 50.0) << where;
      std::printf("  %s: mean |err| %.2e, max |err| %.2e, max |ref| %.2f\n", where.c_str(),
                  mean_abs, max_abs, max_ref);
    }
  }
  return cpu;
}

bool IsDenseTactic(const std::string& t) {
  return t.find("oneDNN conv") == 0 || t.find("oneDNN gemm") == 0 || t.find("oneDNN matmul") == 0;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Whether oneDNN has fast int8 kernels here (the s8 source needs avx512_core, VNNI makes it fast).
bool CpuHasFastInt8() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// Checks the dense tactics of an int8 engine: those whose weights are constants say int8 (when
// the CPU has fast int8), the others say why they ran fp32; no other kernel mentions int8.
void ExpectInt8Tactics(const Engine& e, int want_int8, const std::string& runtime_weights_node) {
  int int8 = 0;
  for (const auto& s : e.segments()) {
    for (std::size_t k = 0; k < s.nodes.size() && k < s.tactics.size(); ++k) {
      const std::string& t = s.tactics[k];
      if (!IsDenseTactic(t)) {
        EXPECT_EQ(t.find("int8"), std::string::npos) << s.nodes[k] << ": " << t;
        continue;
      }
      if (!runtime_weights_node.empty() &&
          s.nodes[k].find(runtime_weights_node) != std::string::npos) {
        EXPECT_TRUE(EndsWith(t, "fp32 (weights not constant)")) << s.nodes[k] << ": " << t;
        continue;
      }
      EXPECT_TRUE(EndsWith(t, " int8")) << s.nodes[k] << ": " << t;
      EXPECT_EQ(t.find("no int8 implementation"), std::string::npos) << s.nodes[k] << ": " << t;
      int8 += EndsWith(t, " int8") ? 1 : 0;
    }
  }
  EXPECT_EQ(int8, want_int8);
}

TEST_F(CpuBackendTest, Int8ConvGemmMatMulMatchesFp32Reference) {
  const Graph g = ConvGemmGraph();
  auto table = CalibrateOnRandom(g, 123, 16);
  ASSERT_TRUE(table);
  auto e = ExpectInt8MatchesReference(g, "conv+gemm+matmul", table, {1, 3, 17, 64});
  ASSERT_TRUE(e);
  if (!CpuHasFastInt8()) GTEST_SKIP() << "no avx512_core + vnni: int8 tactics not checked";
  // The MatMul's weights arrive at run time: it runs fp32.
  ExpectInt8Tactics(*e, 2, "MatMul");
}

TEST_F(CpuBackendTest, Int8EmTrackMichelIdMatchesFp32Reference) {
  const Graph g = EmTrackMichelGraph();
  auto table = CalibrateOnRandom(g, 321, 4);  // the reference engine is slow here
  ASSERT_TRUE(table);
  auto e = ExpectInt8MatchesReference(g, "EmTrackMichelId", table, {1, 3, 10, 32});
  ASSERT_TRUE(e);
  if (!CpuHasFastInt8()) GTEST_SKIP() << "no avx512_core + vnni: int8 tactics not checked";
  ExpectInt8Tactics(*e, 5, "");
}

TEST_F(CpuBackendTest, Int8WithoutCalibrationRunsFp32) {
  for (const Graph& g : {ConvGemmGraph(), EmTrackMichelGraph(16, 8)}) {
    // No table at all, and a table that lacks every dense input.
    auto partial = std::make_shared<CalibrationTable>();
    partial->method = "minmax";
    partial->amax["no_such_value"] = 1.0f;
    for (auto table : {std::shared_ptr<const CalibrationTable>(),
                       std::shared_ptr<const CalibrationTable>(partial)}) {
      auto e = BuildInt8(g, table);
      auto ref = BuildEngine(g, "reference");
      ASSERT_TRUE(e && ref);
      EXPECT_EQ(NodesOn(*e, "cpu"), static_cast<int>(e->graph().nodes.size()))
          << SegmentsToString(*e);
      int dense = 0;
      for (const auto& s : e->segments()) {
        for (std::size_t k = 0; k < s.nodes.size() && k < s.tactics.size(); ++k) {
          const std::string& t = s.tactics[k];
          if (!IsDenseTactic(t)) continue;
          ++dense;
          if (!table) {
            EXPECT_TRUE(EndsWith(t, " fp32 (no calibration table)")) << s.nodes[k] << ": " << t;
          } else {
            EXPECT_NE(t.find(" fp32 ("), std::string::npos) << s.nodes[k] << ": " << t;
            if (t.find("weights not constant") == std::string::npos) {
              EXPECT_NE(t.find("fp32 (no calibration for input '"), std::string::npos)
                  << s.nodes[k] << ": " << t;
            }
          }
          EXPECT_EQ(t.find("int8"), std::string::npos) << s.nodes[k] << ": " << t;
        }
      }
      EXPECT_GT(dense, 0);
      Rng rng(13);
      for (int64_t batch : {1, 5}) {
        const auto inputs = RandomInputs(*e, batch, rng, 1.0f);
        ExpectOutputsMatch(RunEngine(*ref, inputs), RunEngine(*e, inputs),
                           "int8 without calibration (batch " + std::to_string(batch) + ")");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What the backend refuses, and errors

TEST_F(CpuBackendTest, UnsupportedVariantsStayOnTheReferenceBackend) {
  std::vector<std::pair<std::string, Graph>> graphs;
  graphs.emplace_back("Gemm alpha 2", GemmGraph(8, 4, false, 1, "Gemm", {{"alpha", Float(2.0f)}}));
  graphs.emplace_back("Gemm beta 0.5", GemmGraph(8, 4, false, 1, "Gemm", {{"beta", Float(0.5f)}}));
  {
    Builder b;
    const int a = b.Input("a", {8, -1});
    b.Output(b.Node("Gemm", {a, b.Weights("w", {8, 4})}, {{"transA", Int(1)}}));
    graphs.emplace_back("Gemm transA", b.graph());
  }
  {
    Builder b;
    b.Output(
        b.Node("MaxPool", {b.Input("x", {-1, 2, 7, 7})},
               {{"kernel_shape", Ints({2, 2})}, {"ceil_mode", Int(1)}, {"strides", Ints({2, 2})}}));
    graphs.emplace_back("MaxPool ceil_mode", b.graph());
  }
  {
    Builder b;
    b.Output(b.Node("MaxPool", {b.Input("x", {-1, 2, 7, 7})},
                    {{"kernel_shape", Ints({2, 2})}, {"dilations", Ints({2, 2})}}));
    graphs.emplace_back("MaxPool dilations", b.graph());
  }
  {
    Builder b;
    b.Output(b.Node("Conv", {b.Input("x", {-1, 2, 9}), b.Weights("w", {3, 2, 3})}));
    graphs.emplace_back("Conv 1-D", b.graph());
  }
  {
    Builder b;
    Tensor lo = *Tensor::Create(DType::kFloat32, Shape{});
    Tensor hi = *Tensor::Create(DType::kFloat32, Shape{});
    lo.Span<float>()[0] = 1.0f;
    hi.Span<float>()[0] = -1.0f;
    b.Output(b.Node("Clip", {b.Input("x", {-1, 4}), b.Const("lo", lo), b.Const("hi", hi)}));
    graphs.emplace_back("Clip min > max", b.graph());
  }
  {
    Builder b;
    b.Output(b.Node("Clip", {b.Input("x", {-1, 4}), b.Input("lo", {})}));
    graphs.emplace_back("Clip with a bound given at run time", b.graph());
  }
  for (auto& [name, g] : graphs) {
    SCOPED_TRACE(name);
    auto e = BuildEngine(g, "cpu");
    ASSERT_TRUE(e);
    EXPECT_EQ(NodesOn(*e, "cpu"), 0) << SegmentsToString(*e);
  }
  // Other precisions are not implemented yet.
  const Graph g = GemmGraph(8, 4, false, 1);
  BuildOptions fp16;
  fp16.backend = "cpu";
  fp16.precision = Precision::kFp16;
  EXPECT_FALSE(CpuBackend()->Supports(g, g.nodes[0], fp16));
  BuildOptions bf16;
  bf16.backend = "cpu";
  bf16.precision = Precision::kBf16;
  EXPECT_TRUE(CpuBackend()->Supports(g, g.nodes[0], bf16));
  BuildOptions fp32;
  fp32.backend = "cpu";
  EXPECT_TRUE(CpuBackend()->Supports(g, g.nodes[0], fp32));
}

TEST_F(CpuBackendTest, BadShapesAreStatusesNamingTheNode) {
  const ConvCase cc = {"c", 3, 4, 6, 6, 3, 3, {}};
  const Graph g = ConvGraph(cc);
  BuildOptions options;
  options.backend = "cpu";
  auto kernel = CpuBackend()->Compile(g, g.nodes[0], options);
  ASSERT_TRUE(kernel.ok()) << kernel.status().ToString();
  EXPECT_NE((*kernel)->Describe().find("oneDNN conv"), std::string::npos) << (*kernel)->Describe();
  auto state = (*kernel)->CreateState();
  Rng rng(1);
  for (const Dims& bad : {Dims{2, 5, 6, 6}, Dims{2, 3, 6}, Dims{1, 3, 2, 2}}) {
    std::vector<Tensor> inputs = {RandomTensor(bad, rng), *g.values[g.nodes[0].inputs[1]].constant,
                                  *g.values[g.nodes[0].inputs[2]].constant};
    std::vector<Tensor> outputs;
    Status s = (*kernel)->Run(inputs, outputs, state.get());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument)
        << Shape(bad).ToString() << ": " << s.ToString();
    EXPECT_NE(s.message().find(g.nodes[0].name), std::string::npos) << s.message();
  }
  {
    // A tensor that contradicts the declared dtype is refused, not read as float32.
    std::vector<Tensor> inputs = {*Tensor::Create(DType::kInt32, Shape{2, 3, 6, 6}),
                                  *g.values[g.nodes[0].inputs[1]].constant,
                                  *g.values[g.nodes[0].inputs[2]].constant};
    std::vector<Tensor> outputs;
    Status s = (*kernel)->Run(inputs, outputs, state.get());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  }
  // The kernel still works afterwards, with or without a state.
  std::vector<Tensor> inputs = {RandomTensor({2, 3, 6, 6}, rng),
                                *g.values[g.nodes[0].inputs[1]].constant,
                                *g.values[g.nodes[0].inputs[2]].constant};
  std::vector<Tensor> with_state, without_state;
  ASSERT_TRUE((*kernel)->Run(inputs, with_state, state.get()).ok());
  ASSERT_TRUE((*kernel)->Run(inputs, without_state, nullptr).ok());
  ASSERT_EQ(with_state.size(), 1u);
  EXPECT_EQ(CountMismatches(with_state[0], without_state[0], "state vs none"), 0);
}

// ---------------------------------------------------------------------------------------------
// Tactics (runtime/tactics.h): every alternative implementation must compute what the reference
// computes, timing must pick one of them, and the timing cache and plans must keep the choice.

// Conv -> Relu -> Flatten -> Gemm (+ bias, Relu) with K = 16 * 16 * 16 = 4096 (two K chunks of
// 2048), and a MatMul whose K = 4100 leaves a 4-column last chunk.
Graph TacticGraph() {
  Builder b;
  const int x = b.Input("x", {-1, 2, 20, 20});
  const int c = b.Node("Conv", {x, b.Weights("cw", {16, 2, 5, 5}, 0.2f), b.Weights("cb", {16})},
                       {{"kernel_shape", Ints({5, 5})}}, {-1, 16, 16, 16});
  const int r = b.Node("Relu", {c}, {}, {-1, 16, 16, 16});
  const int f = b.Node("Flatten", {r}, {{"axis", Int(1)}}, {-1, 4096});
  const int g = b.Node("Gemm", {f, b.Weights("gw", {24, 4096}, 0.05f), b.Weights("gb", {24})},
                       {{"transB", Int(1)}}, {-1, 24});
  b.Output(b.Node("Relu", {g}, {}, {-1, 24}));
  return b.graph();
}

Graph LongMatMulGraph() {
  Builder b;
  const int a = b.Input("a", {-1, 4100});
  b.Output(b.Node("MatMul", {a, b.Weights("w", {4100, 9}, 0.05f)}, {}, {-1, 9}));
  return b.graph();
}

// Gemm (weights [K, N], not transposed) + bias + LeakyRelu with N = 70: three 32-column panels
// of the panel GEMM, the last one partial, and a fused activation with a slope.
Graph WideGemmGraph() {
  Builder b;
  const int a = b.Input("a", {-1, 4200});
  const int g =
      b.Node("Gemm", {a, b.Weights("w", {4200, 70}, 0.05f), b.Weights("c", {70})}, {}, {-1, 70});
  b.Output(b.Node("LeakyRelu", {g}, {{"alpha", Float(0.2f)}}, {-1, 70}));
  return b.graph();
}

// Conv -> Relu -> Transpose to NHWC -> Flatten -> Gemm: the optimiser makes the convolution
// write NHWC (opt/fuse_conv_transpose.cc); every convolution tactic must then write NHWC.
Graph NhwcConvGraph() {
  Builder b;
  const int x = b.Input("x", {-1, 3, 14, 14});
  // 41 x 10 x 10 = 4100 features: the Gemm is long enough for the K-split tactics too.
  const int c = b.Node("Conv", {x, b.Weights("cw", {41, 3, 5, 5}, 0.2f), b.Weights("cb", {41})},
                       {{"kernel_shape", Ints({5, 5})}}, {-1, 41, 10, 10});
  const int r = b.Node("Relu", {c}, {}, {-1, 41, 10, 10});
  const int t = b.Node("Transpose", {r}, {{"perm", Ints({0, 2, 3, 1})}}, {-1, 10, 10, 41});
  const int f = b.Node("Flatten", {t}, {{"axis", Int(1)}}, {-1, 4100});
  b.Output(b.Node("Gemm", {f, b.Weights("gw", {4100, 6}, 0.05f)}, {}, {-1, 6}));
  return b.graph();
}

TEST_F(CpuBackendTest, NhwcConvolutionMatchesTheUnfusedGraph) {
  auto cpu = BuildEngine(NhwcConvGraph(), "cpu");
  ASSERT_TRUE(cpu);
  int nhwc = 0;
  for (const auto& node : cpu->graph().nodes) {
    EXPECT_NE(node.op_type, "Transpose");
    nhwc += node.GetString("output_layout", "") == "NHWC";
  }
  EXPECT_EQ(nhwc, 1);
  // The reference executor on the graph as built (no passes) is the ground truth.
  auto plain = runtime::ReferenceExecutor::Create(NhwcConvGraph());
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  Rng rng(3);
  auto ctx = cpu->CreateContext();
  for (int64_t batch : {1, 5}) {
    const auto inputs = RandomInputs(*cpu, batch, rng, 1.0f);
    auto want = (*plain)->Run(inputs);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    ExpectOutputsMatch(*want, RunEngine(*cpu, inputs, ctx.get()),
                       "NHWC conv batch " + std::to_string(batch));
  }
}

TEST_F(CpuBackendTest, EveryTacticMatchesReference) {
  for (const Graph& g : {TacticGraph(), LongMatMulGraph(), WideGemmGraph(), NhwcConvGraph()}) {
    auto probe = BuildEngine(g, "cpu");
    auto ref = BuildEngine(g, "reference");
    ASSERT_TRUE(probe && ref);
    int with_alternatives = 0;
    for (const auto& node : probe->graph().nodes) {
      const auto names = CpuBackend()->Tactics(probe->graph(), node, probe->options());
      if (names.size() <= 1) continue;
      ++with_alternatives;
      if (node.op_type != "FusedConv") {
        EXPECT_NE(std::find(names.begin(), names.end(), "ksplit-2048"), names.end())
            << node.Describe();
      }
      for (const auto& tactic : names) {
        const std::string what = node.Describe() + " tactic " + tactic;
        SCOPED_TRACE(what);
        BuildOptions options;
        options.backend = "cpu";
        options.tactics[node.name] = tactic;
        BuildReport report;
        auto e = Engine::Build(g, options, &report);
        ASSERT_TRUE(e.ok()) << e.status().ToString();
        bool found = false;
        for (const auto& t : report.tactics) {
          if (t.node == node.Describe()) {
            found = true;
            EXPECT_EQ(t.entry.chosen, tactic);
            EXPECT_EQ(t.source, TacticReport::Source::kPlan);
          }
        }
        EXPECT_TRUE(found);
        Rng rng(11);
        auto ctx = (*e)->CreateContext();
        // 29 rows: three row tiles of the panel GEMM, the last partial.
        for (int64_t batch : {1, 3, 8, 29}) {
          const auto inputs = RandomInputs(**e, batch, rng, 1.0f);
          ExpectOutputsMatch(RunEngine(*ref, inputs), RunEngine(**e, inputs, ctx.get()),
                             what + " batch " + std::to_string(batch));
        }
      }
    }
    EXPECT_GE(with_alternatives, 1);
  }
}

// The panel GEMM (our AVX-512 kernel) on its own: every activation its store applies, 1 and 2
// threads, row and column tails; Sigmoid and Tanh are not offered it.
TEST_F(CpuBackendTest, PanelGemmMatchesReference) {
  for (const auto& [name, attrs] : Activations()) {
    SCOPED_TRACE(name);
    const Graph g = GemmGraph(300, 45, true, 1, "FusedGemm", attrs);
    auto probe = BuildEngine(g, "cpu");
    auto ref = BuildEngine(g, "reference");
    ASSERT_TRUE(probe && ref);
    const auto& node = probe->graph().nodes.at(0);
    const auto names = CpuBackend()->Tactics(probe->graph(), node, probe->options());
    const bool offered = std::find(names.begin(), names.end(), "panel-kc256") != names.end();
    if (name == "Sigmoid" || name == "Tanh") {
      EXPECT_FALSE(offered);
      continue;
    }
    if (!offered) GTEST_SKIP() << "this CPU has no AVX-512F: the panel GEMM is not offered";
    for (int threads : {1, 2}) {
      BuildOptions options;
      options.backend = "cpu";
      options.threads = threads;
      options.tactics[node.name] = "panel-kc256";
      auto e = Engine::Build(g, options);
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      Rng rng(5);
      auto ctx = (*e)->CreateContext();
      for (int64_t batch : {1, 13, 40}) {
        const auto inputs = RandomInputs(**e, batch, rng, 1.0f);
        ExpectOutputsMatch(
            RunEngine(*ref, inputs), RunEngine(**e, inputs, ctx.get()),
            name + " threads " + std::to_string(threads) + " batch " + std::to_string(batch));
      }
    }
  }
}

TEST_F(CpuBackendTest, UnknownTacticIsRefusedWithTheNodeName) {
  auto probe = BuildEngine(LongMatMulGraph(), "cpu");
  ASSERT_TRUE(probe);
  BuildOptions options;
  options.backend = "cpu";
  options.tactics[probe->graph().nodes[0].name] = "no-such-tactic";
  auto e = Engine::Build(LongMatMulGraph(), options);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kFailedPrecondition) << e.status().ToString();
  EXPECT_NE(e.status().message().find(probe->graph().nodes[0].name), std::string::npos);
}

TEST_F(CpuBackendTest, TacticsAreTimedCachedAndKeptInPlans) {
  const std::string dir = ::testing::TempDir() + "/tactics_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string cache_path = dir + "/timing.cache";
  BuildOptions options;
  options.backend = "cpu";
  options.threads = 1;
  // Without a profile: the heuristic choice, nothing timed.
  {
    BuildReport report;
    auto e = Engine::Build(TacticGraph(), options, &report);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    ASSERT_EQ(report.tactics.size(), 2u);  // the fused conv and the fused gemm
    for (const auto& t : report.tactics) {
      EXPECT_EQ(t.source, TacticReport::Source::kDefault) << t.node;
      EXPECT_TRUE(t.entry.timings.empty());
    }
  }
  std::map<std::string, std::size_t> offered;  // node -> number of tactics offered
  {
    auto probe = BuildEngine(TacticGraph(), "cpu");
    ASSERT_TRUE(probe);
    for (const auto& node : probe->graph().nodes) {
      offered[node.Describe()] = CpuBackend()->Tactics(probe->graph(), node, options).size();
    }
  }
  options.batch_min = 1;
  options.batch_opt = 4;
  options.batch_max = 8;
  options.timing_cache = std::make_shared<TimingCache>();
  BuildReport timed;
  auto first = Engine::Build(TacticGraph(), options, &timed);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(timed.tactics.size(), 2u);
  for (const auto& t : timed.tactics) {
    EXPECT_EQ(t.source, TacticReport::Source::kTimed) << t.node;
    // conv: blocked-chunked, blocked, plain; gemm: packed, plain, ksplit-2048 and, on AVX-512
    // CPUs, panel-kc256 and panel-kc512: every tactic the backend offers was timed
    EXPECT_EQ(t.entry.timings.size(), offered.at(t.node)) << t.node;
    if (t.node.find("Conv") != std::string::npos) {
      EXPECT_EQ(offered.at(t.node), 3u);
    } else {
      EXPECT_GE(offered.at(t.node), 3u);
    }
    double best = 1e300;
    for (const auto& c : t.entry.timings) {
      EXPECT_GT(c.ms, 0) << c.tactic;
      best = std::min(best, c.ms);
    }
    for (const auto& c : t.entry.timings) {
      if (c.tactic == t.entry.chosen) {
        EXPECT_EQ(c.ms, best);  // the fastest was kept
      }
    }
  }
  EXPECT_EQ(options.timing_cache->size(), 2u);
  ASSERT_TRUE(options.timing_cache->Save(cache_path).ok());

  // A new build with the saved cache times nothing and chooses the same.
  auto loaded = TimingCache::Load(cache_path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  options.timing_cache = std::make_shared<TimingCache>(std::move(loaded).value());
  BuildReport cached;
  auto second = Engine::Build(TacticGraph(), options, &cached);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(cached.tactics.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(cached.tactics[k].source, TacticReport::Source::kCache);
    EXPECT_EQ(cached.tactics[k].entry.chosen, timed.tactics[k].entry.chosen);
  }
  // Another OPT batch is another key: timed again.
  options.batch_opt = 8;
  BuildReport other;
  ASSERT_TRUE(Engine::Build(TacticGraph(), options, &other).ok());
  for (const auto& t : other.tactics) EXPECT_EQ(t.source, TacticReport::Source::kTimed);
  EXPECT_EQ(options.timing_cache->size(), 4u);

  // A plan keeps the choices and reloads them without timing.
  const std::string plan = dir + "/model.plan";
  ASSERT_TRUE((*first)->SavePlan(plan).ok());
  auto reloaded = Engine::LoadPlan(plan);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  EXPECT_EQ((*reloaded)->options().tactics.size(), 2u);
  for (const auto& t : timed.tactics) {
    bool found = false;
    for (const auto& [node, tactic] : (*reloaded)->options().tactics) {
      found |= t.node.find("'" + node + "'") != std::string::npos && tactic == t.entry.chosen;
    }
    EXPECT_TRUE(found) << t.node;
  }
  Rng rng(5);
  const auto inputs = RandomInputs(**first, 4, rng, 1.0f);
  ExpectOutputsMatch(RunEngine(**first, inputs), RunEngine(**reloaded, inputs), "reloaded plan");

  // Damaged caches are refused with the path; a missing one is an empty cache.
  {
    std::string text;
    {
      std::ifstream in(cache_path);
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    text[text.size() / 2] ^= 0x20;
    std::ofstream(cache_path, std::ios::trunc) << text;
    auto bad = TimingCache::Load(cache_path);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(bad.status().message().find(cache_path), std::string::npos);
    std::ofstream(cache_path, std::ios::trunc) << text.substr(0, text.size() / 3);
    EXPECT_FALSE(TimingCache::Load(cache_path).ok());
  }
  auto missing = TimingCache::Load(dir + "/none.cache");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->size(), 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace larserve::runtime

// Each optimisation pass must leave the model's outputs unchanged: the optimised graph is run
// with the reference kernels on fresh random inputs and compared with the original graph
// (tolerance 1e-5 relative + 1e-6 absolute: folding changes the order of float operations).
#include <gtest/gtest.h>

#include <cmath>

#include "larserve/core/rng.h"
#include "larserve/opt/pass.h"
#include "larserve/runtime/reference_executor.h"

namespace larserve::opt {
namespace {

using graph::Attribute;
using graph::Graph;
using graph::Node;
using graph::Value;

Tensor RandomTensor(Shape shape, Rng& rng, float scale = 1.0f) {
  Tensor t = *Tensor::Create(DType::kFloat32, std::move(shape));
  for (float& v : t.Span<float>()) v = static_cast<float>(rng.Normal()) * scale;
  return t;
}

int Input(Graph& g, const std::string& name, std::vector<int64_t> dims) {
  Value v;
  v.name = name;
  v.dims = std::move(dims);
  v.has_shape = true;
  const int id = g.AddValue(std::move(v));
  g.inputs.push_back(id);
  return id;
}

int Const(Graph& g, const std::string& name, Tensor t) {
  Value v;
  v.name = name;
  v.dtype = t.dtype();
  v.dims = t.shape().dims();
  v.has_shape = true;
  v.constant = std::move(t);
  return g.AddValue(std::move(v));
}

int Tmp(Graph& g, const std::string& name, std::vector<int64_t> dims = {}) {
  Value v;
  v.name = name;
  v.dims = std::move(dims);
  v.has_shape = !v.dims.empty();
  return g.AddValue(std::move(v));
}

Attribute Ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

void AddNode(Graph& g, const std::string& op, std::vector<int> in, std::vector<int> out,
             std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = op + "_" + std::to_string(g.nodes.size());
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  g.nodes.push_back(std::move(n));
}

std::vector<Tensor> RunRef(const Graph& g, const std::vector<Tensor>& inputs) {
  auto ex = runtime::ReferenceExecutor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status().ToString();
  auto out = (*ex)->Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return *out;
}

// Optimises a copy of g with the default pipeline, checks outputs on 3 random inputs, and
// returns the optimised graph and its pass report.
Graph OptimiseAndCheck(const Graph& g, std::vector<PassReport>* report) {
  Graph opt = g;
  Status s = PassManager::Default().Run(opt, runtime::ReferenceEvaluator(), report);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Rng rng(99);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<Tensor> inputs;
    for (int i : g.inputs) {
      std::vector<int64_t> dims = g.values[i].dims;
      for (auto& d : dims) d = d < 0 ? 3 : d;
      inputs.push_back(RandomTensor(Shape(dims), rng));
    }
    auto want = RunRef(g, inputs);
    auto got = RunRef(opt, inputs);
    EXPECT_EQ(want.size(), got.size());
    for (std::size_t k = 0; k < want.size() && k < got.size(); ++k) {
      EXPECT_EQ(want[k].shape(), got[k].shape());
      if (want[k].shape() != got[k].shape()) continue;
      auto a = want[k].Span<float>();
      auto b = got[k].Span<float>();
      for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_NEAR(b[i], a[i], 1e-6 + 1e-5 * std::fabs(a[i]))
            << "output " << k << " element " << i;
      }
    }
  }
  return opt;
}

int CountOp(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.op_type == op;
  return n;
}

TEST(PassesTest, ConvBatchNormReluFoldsIntoOneFusedConv) {
  Graph g;
  g.opset = 17;
  Rng rng(1);
  const int x = Input(g, "x", {-1, 3, 10, 10});
  const int w = Const(g, "w", RandomTensor(Shape{8, 3, 3, 3}, rng));
  const int c = Tmp(g, "c");
  AddNode(g, "Conv", {x, w}, {c}, {{"pads", Ints({1, 1, 1, 1})}});
  Tensor var = RandomTensor(Shape{8}, rng);
  for (float& v : var.Span<float>()) v = std::fabs(v) + 0.5f;
  const int bn = Tmp(g, "bn");
  AddNode(
      g, "BatchNormalization",
      {c, Const(g, "s", RandomTensor(Shape{8}, rng)), Const(g, "b", RandomTensor(Shape{8}, rng)),
       Const(g, "m", RandomTensor(Shape{8}, rng)), Const(g, "v", var)},
      {bn});
  const int y = Tmp(g, "y");
  AddNode(g, "Relu", {bn}, {y});
  g.outputs = {y};
  g.RebuildProducers();
  ASSERT_TRUE(g.Verify().ok());
  std::vector<PassReport> report;
  Graph opt = OptimiseAndCheck(g, &report);
  EXPECT_EQ(opt.nodes.size(), 1u);
  EXPECT_EQ(opt.nodes[0].op_type, "FusedConv");
  EXPECT_EQ(opt.values[opt.outputs[0]].name, "y");
}

TEST(PassesTest, MatMulAddReluBecomesFusedGemm) {
  Graph g;
  g.opset = 13;
  Rng rng(2);
  const int x = Input(g, "x", {-1, 20});
  const int mm = Tmp(g, "mm"), add = Tmp(g, "add"), y = Tmp(g, "y");
  AddNode(g, "MatMul", {x, Const(g, "w", RandomTensor(Shape{20, 7}, rng))}, {mm});
  AddNode(g, "Add", {mm, Const(g, "bias", RandomTensor(Shape{7}, rng))}, {add});
  AddNode(g, "Relu", {add}, {y});
  g.outputs = {y};
  g.values[x].dims = {4, 20};  // rank-2 A with a known batch
  g.RebuildProducers();
  std::vector<PassReport> report;
  Graph opt = OptimiseAndCheck(g, &report);
  ASSERT_EQ(opt.nodes.size(), 1u);
  EXPECT_EQ(opt.nodes[0].op_type, "FusedGemm");
}

TEST(PassesTest, IdentityDropoutAndConstantSubgraphsDisappear) {
  Graph g;
  g.opset = 13;
  Rng rng(3);
  const int x = Input(g, "x", {2, 5});
  const int a = Tmp(g, "a"), b = Tmp(g, "b"), k = Tmp(g, "k"), y = Tmp(g, "y");
  AddNode(g, "Identity", {x}, {a});
  AddNode(g, "Dropout", {a}, {b});
  // k = c1 * c2 is constant: folded.
  AddNode(
      g, "Mul",
      {Const(g, "c1", RandomTensor(Shape{5}, rng)), Const(g, "c2", RandomTensor(Shape{5}, rng))},
      {k});
  AddNode(g, "Add", {b, k}, {y});
  g.outputs = {y};
  g.RebuildProducers();
  std::vector<PassReport> report;
  Graph opt = OptimiseAndCheck(g, &report);
  ASSERT_EQ(opt.nodes.size(), 1u);
  EXPECT_EQ(opt.nodes[0].op_type, "Add");
}

TEST(PassesTest, NhwcOneChannelTransposeBecomesReshapeAndTransposePairsCancel) {
  Graph g;
  g.opset = 17;
  Rng rng(4);
  const int x = Input(g, "main_input", {-1, 6, 6, 1});
  const int t1 = Tmp(g, "t1"), c = Tmp(g, "c"), t2 = Tmp(g, "t2"), t3 = Tmp(g, "t3"),
            y = Tmp(g, "y");
  AddNode(g, "Transpose", {x}, {t1}, {{"perm", Ints({0, 3, 1, 2})}});
  AddNode(g, "Conv", {t1, Const(g, "w", RandomTensor(Shape{4, 1, 3, 3}, rng))}, {c});
  AddNode(g, "Transpose", {c}, {t2}, {{"perm", Ints({0, 2, 3, 1})}});
  AddNode(g, "Transpose", {t2}, {t3}, {{"perm", Ints({0, 3, 1, 2})}});
  AddNode(g, "Relu", {t3}, {y});
  g.outputs = {y};
  g.RebuildProducers();
  // Shape inference would have filled these in on import.
  g.values[t1].dims = {-1, 1, 6, 6};
  g.values[t1].has_shape = true;
  std::vector<PassReport> report;
  Graph opt = OptimiseAndCheck(g, &report);
  EXPECT_EQ(CountOp(opt, "Transpose"), 0);
  EXPECT_EQ(CountOp(opt, "Reshape"), 1);
  EXPECT_EQ(CountOp(opt, "FusedConv"), 1);
}

TEST(PassesTest, TransposeBeforeFlattenFoldsIntoGemmWeights) {
  for (int64_t trans_b : {0, 1}) {
    Graph g;
    g.opset = 13;
    Rng rng(5 + trans_b);
    const int x = Input(g, "x", {-1, 4, 3, 5});
    const int t = Tmp(g, "t"), f = Tmp(g, "f"), y = Tmp(g, "y");
    AddNode(g, "Transpose", {x}, {t}, {{"perm", Ints({0, 2, 3, 1})}});
    AddNode(g, "Flatten", {t}, {f});
    Attribute tb;
    tb.kind = Attribute::Kind::kInt;
    tb.i = trans_b;
    const Shape wshape = trans_b ? Shape{7, 60} : Shape{60, 7};
    AddNode(
        g, "Gemm",
        {f, Const(g, "w", RandomTensor(wshape, rng)), Const(g, "b", RandomTensor(Shape{7}, rng))},
        {y}, {{"transB", tb}});
    g.outputs = {y};
    g.RebuildProducers();
    std::vector<PassReport> report;
    Graph opt = OptimiseAndCheck(g, &report);
    EXPECT_EQ(CountOp(opt, "Transpose"), 0) << "transB " << trans_b;
    EXPECT_EQ(CountOp(opt, "Gemm"), 1);
  }
}

// Conv -> Relu -> Transpose to NHWC -> Flatten -> Gemm (a Keras-style flatten): the convolution
// writes NHWC itself; the Transpose is gone and the Gemm keeps its weights. Also with the
// transposed output as the graph's output.
TEST(PassesTest, ConvTransposeToNhwcBecomesAnNhwcFusedConv) {
  for (bool to_gemm : {true, false}) {
    Graph g;
    g.opset = 13;
    Rng rng(17);
    const int x = Input(g, "x", {-1, 2, 6, 7});
    const int c = Tmp(g, "c"), r = Tmp(g, "r"), t = Tmp(g, "t");
    AddNode(g, "Conv",
            {x, Const(g, "w", RandomTensor(Shape{3, 2, 3, 3}, rng)),
             Const(g, "b", RandomTensor(Shape{3}, rng))},
            {c}, {{"kernel_shape", Ints({3, 3})}});
    AddNode(g, "Relu", {c}, {r});
    AddNode(g, "Transpose", {r}, {t}, {{"perm", Ints({0, 2, 3, 1})}});
    if (to_gemm) {
      const int f = Tmp(g, "f"), y = Tmp(g, "y");
      AddNode(g, "Flatten", {t}, {f});
      AddNode(g, "Gemm", {f, Const(g, "gw", RandomTensor(Shape{60, 5}, rng))}, {y});
      g.outputs = {y};
    } else {
      g.outputs = {t};
    }
    g.RebuildProducers();
    std::vector<PassReport> report;
    Graph opt = OptimiseAndCheck(g, &report);
    EXPECT_EQ(CountOp(opt, "Transpose"), 0) << to_gemm;
    ASSERT_EQ(CountOp(opt, "FusedConv"), 1);
    for (const auto& node : opt.nodes) {
      if (node.op_type == "FusedConv") {
        EXPECT_EQ(node.GetString("output_layout", ""), "NHWC");
      }
    }
  }
}

}  // namespace
}  // namespace larserve::opt

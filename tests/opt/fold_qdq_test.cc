// fold-qdq (explicit quantisation of QDQ models) on small hand-built graphs: which pairs fold,
// the ranges and weight scales recorded, the pairs left in place and why, the fp32 pipeline left
// alone, and the int8 cpu engine against the reference kernels running the QDQ graph as ONNX
// defines it.
//
// Tolerances: the int8 engine quantises every dense input exactly as the model's QuantizeLinear
// (same scale, round half to even, saturation), so the only differences from the QDQ graph are
// (a) the rounding of pairs that do not feed a dense node (at most s / 2 before the next op;
// here the logits pair before a Sigmoid, whose slope is at most 1/4: s / 8 on the output),
// (b) float32 rounding of the output scales and bias (about 1e-7 relative), which can move a
// value lying within that of a rounding tie to the neighbouring int8 step (rare on random data).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "larserve/core/rng.h"
#include "larserve/opt/pass.h"
#include "larserve/runtime/calibration.h"
#include "larserve/runtime/engine.h"
#include "larserve/runtime/reference_executor.h"

namespace larserve::opt {
namespace {

using graph::Attribute;
using graph::Graph;
using graph::Node;
using graph::Value;
using runtime::BuildOptions;
using runtime::CalibrationTable;
using runtime::Engine;
using runtime::Precision;

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

int Tmp(Graph& g, const std::string& name, DType dtype = DType::kFloat32,
        std::vector<int64_t> dims = {}) {
  Value v;
  v.name = name;
  v.dtype = dtype;
  v.dims = std::move(dims);
  v.has_shape = !v.dims.empty();
  return g.AddValue(std::move(v));
}

template <typename T>
Tensor Make(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t = *Tensor::Create(dtype, std::move(shape));
  std::copy(values.begin(), values.end(), t.Span<T>().begin());
  return t;
}

Tensor Scalar(float v) { return Make<float>(DType::kFloat32, Shape{}, {v}); }
Tensor ZeroPoint(DType dtype, int v, Shape shape = Shape{}) {
  if (dtype == DType::kUInt8) {
    return Make<uint8_t>(dtype, shape, std::vector<uint8_t>(shape.NumElements(), v));
  }
  return Make<int8_t>(dtype, shape, std::vector<int8_t>(shape.NumElements(), v));
}

Node& AddNode(Graph& g, const std::string& name, const std::string& op, std::vector<int> in,
              std::vector<int> out) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  g.nodes.push_back(std::move(n));
  return g.nodes.back();
}

Attribute IntAttr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}

// x -> QuantizeLinear(scale, zero point) -> DequantizeLinear(same) -> returned value. `zp` -1:
// no zero point inputs (uint8 output).
int AddPair(Graph& g, int x, const std::string& base, float scale, DType zp_type = DType::kInt8,
            int zp = 0, float dq_scale = 0) {
  const int s = Const(g, base + "_scale", Scalar(scale));
  const int s2 = dq_scale > 0 ? Const(g, base + "_dq_scale", Scalar(dq_scale)) : s;
  std::vector<int> q_in = {x, s}, dq_in = {-1, s2};
  if (zp >= 0) {
    const int z = Const(g, base + "_zero_point", ZeroPoint(zp_type, zp));
    q_in.push_back(z);
    dq_in.push_back(z);
  }
  const int q = Tmp(g, base + "_q", zp >= 0 ? zp_type : DType::kUInt8);
  const int y = Tmp(g, base + "_dq");
  AddNode(g, base + "_QuantizeLinear", "QuantizeLinear", q_in, {q});
  dq_in[0] = q;
  AddNode(g, base + "_DequantizeLinear", "DequantizeLinear", dq_in, {y});
  return y;
}

// DequantizeLinear of constant int8 weights `q` with per-tensor (one) or per-axis scales.
int AddWeights(Graph& g, const std::string& base, Shape shape, const std::vector<int8_t>& q,
               const std::vector<float>& scales, int axis) {
  const int wq = Const(g, base + "_quantized", Make<int8_t>(DType::kInt8, shape, q));
  const Shape s_shape = scales.size() == 1 ? Shape{} : Shape{static_cast<int64_t>(scales.size())};
  const int s = Const(g, base + "_scale", Make<float>(DType::kFloat32, s_shape, scales));
  const int z = Const(g, base + "_zero_point", ZeroPoint(DType::kInt8, 0, s_shape));
  const int w = Tmp(g, base + "_dq");
  Node& dq = AddNode(g, base + "_DequantizeLinear", "DequantizeLinear", {wq, s, z}, {w});
  if (scales.size() > 1) dq.attrs["axis"] = IntAttr(axis);
  return w;
}

// Random int8 weights whose largest magnitude per output channel (axis `axis` of `shape`) is
// `max_q[oc % max_q.size()]`: below 127 where requantising with max |W| / 127 would not give
// them back.
std::vector<int8_t> RandomQ(const Shape& shape, int axis, const std::vector<int>& max_q, Rng& rng) {
  const auto& d = shape.dims();
  int64_t inner = 1;
  for (std::size_t i = axis + 1; i < d.size(); ++i) inner *= d[i];
  std::vector<int8_t> q(static_cast<std::size_t>(shape.NumElements()));
  for (std::size_t e = 0; e < q.size(); ++e) {
    const int64_t oc = (static_cast<int64_t>(e) / inner) % d[axis];
    const int m = max_q[oc % max_q.size()];
    q[e] = static_cast<int8_t>(std::lround(rng.Uniform(-m, m)));
  }
  // Make sure each channel reaches its maximum.
  for (int64_t oc = 0; oc < d[axis]; ++oc)
    q[static_cast<std::size_t>(oc * inner)] = static_cast<int8_t>(max_q[oc % max_q.size()]);
  return q;
}

// The QDQ model of a small CNN as onnxruntime's quantize_static writes it (QDQ, symmetric int8,
// per-channel weights): x -> [Q/DQ] -> Conv -> [Q/DQ] -> Relu -> [Q/DQ] -> Flatten -> [Q/DQ] ->
// Gemm -> [Q/DQ] -> Sigmoid -> y. Weights deliberately have channels whose largest |q| < 127.
Graph QdqCnn(uint64_t seed = 5) {
  Rng rng(seed);
  Graph g;
  g.name = "qdq_cnn";
  g.opset = 13;
  const int x = Input(g, "x", {-1, 2, 6, 6});
  const int xq = AddPair(g, x, "x", 0.02f);
  const Shape wc{4, 2, 3, 3};
  const std::vector<float> sc = {0.004f, 0.006f, 0.005f, 0.003f};
  const int w = AddWeights(g, "conv_w", wc, RandomQ(wc, 0, {127, 60, 90, 127}, rng), sc, 0);
  std::vector<float> bias = {0.05f, -0.1f, 0.02f, 0.0f};
  const int b = Const(g, "conv_b", Make<float>(DType::kFloat32, Shape{4}, bias));
  const int c = Tmp(g, "c", DType::kFloat32, {-1, 4, 4, 4});
  AddNode(g, "conv", "Conv", {xq, w, b}, {c});
  const int cq = AddPair(g, c, "c", 0.01f);
  const int r = Tmp(g, "r", DType::kFloat32, {-1, 4, 4, 4});
  AddNode(g, "relu", "Relu", {cq}, {r});
  const int rq = AddPair(g, r, "r", 0.01f);
  const int f = Tmp(g, "f", DType::kFloat32, {-1, 64});
  AddNode(g, "flatten", "Flatten", {rq}, {f});
  const int fq = AddPair(g, f, "f", 0.01f);
  const Shape wg{64, 5};  // [K, N], transB 0: output channels along axis 1
  const std::vector<float> sg = {0.002f, 0.003f, 0.0025f, 0.002f, 0.004f};
  const int wgv = AddWeights(g, "gemm_w", wg, RandomQ(wg, 1, {127, 40, 100, 127, 70}, rng), sg, 1);
  const int gb =
      Const(g, "gemm_b", Make<float>(DType::kFloat32, Shape{5}, {0.1f, -0.2f, 0.0f, 0.05f, 0.3f}));
  const int logits = Tmp(g, "logits", DType::kFloat32, {-1, 5});
  AddNode(g, "gemm", "Gemm", {fq, wgv, gb}, {logits});
  const int lq = AddPair(g, logits, "logits", 0.004f);
  const int y = Tmp(g, "y", DType::kFloat32, {-1, 5});
  AddNode(g, "sigmoid", "Sigmoid", {lq}, {y});
  g.outputs = {y};
  EXPECT_TRUE(g.Verify().ok()) << g.Verify().ToString();
  return g;
}

int CountOp(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.op_type == op;
  return n;
}

bool LogHas(const std::vector<PassReport>& report, const std::string& pass,
            const std::string& text) {
  for (const auto& r : report) {
    if (r.pass != pass) continue;
    for (const auto& line : r.log) {
      if (line.find(text) != std::string::npos) return true;
    }
  }
  return false;
}

std::string Logs(const std::vector<PassReport>& report) {
  std::string s;
  for (const auto& r : report) {
    for (const auto& line : r.log) s += r.pass + ": " + line + "\n";
  }
  return s;
}

Tensor RandomInput(const Graph& g, int64_t batch, Rng& rng, float lo, float hi) {
  std::vector<int64_t> dims = g.values[g.inputs[0]].dims;
  for (auto& d : dims) d = d < 0 ? batch : d;
  Tensor t = *Tensor::Create(DType::kFloat32, Shape(dims));
  for (float& v : t.Span<float>()) v = static_cast<float>(rng.Uniform(lo, hi));
  return t;
}

std::vector<Tensor> RunReference(const Graph& g, const std::vector<Tensor>& inputs) {
  auto ex = runtime::ReferenceExecutor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status().ToString();
  if (!ex.ok()) return {};
  auto out = (*ex)->Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : std::vector<Tensor>{};
}

std::vector<Tensor> RunEngine(const Engine& e, const std::vector<Tensor>& inputs) {
  auto ctx = e.CreateContext();
  std::vector<Tensor> out;
  Status s = ctx->Run(inputs, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::unique_ptr<Engine> Build(const Graph& g, Precision precision,
                              std::shared_ptr<const CalibrationTable> table = nullptr,
                              runtime::BuildReport* report = nullptr) {
  BuildOptions o;
  o.backend = "cpu";
  o.precision = precision;
  o.calibration = std::move(table);
  auto e = Engine::Build(g, o, report);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(e).value() : nullptr;
}

double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e30;
  double m = 0;
  auto x = a.Span<float>();
  auto y = b.Span<float>();
  for (std::size_t i = 0; i < x.size(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(x[i]) - y[i]));
  return m;
}

// Whether oneDNN has fast int8 kernels here (the s8 source needs avx512_core, VNNI makes it
// fast); elsewhere the dense layers run fp32 and say so.
bool CpuHasFastInt8() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// The tactic of every dense node of an engine, by node description.
std::map<std::string, std::string> DenseTactics(const Engine& e) {
  std::map<std::string, std::string> out;
  for (const auto& s : e.segments()) {
    for (std::size_t k = 0; k < s.nodes.size() && k < s.tactics.size(); ++k) {
      const std::string& t = s.tactics[k];
      if (t.find("oneDNN conv") == 0 || t.find("oneDNN gemm") == 0 || t.find("oneDNN matmul") == 0)
        out[s.nodes[k]] = t;
    }
  }
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST(FoldQdqTest, FoldsSymmetricPairsAndRecordsRangesAndWeightScales) {
  Graph g = QdqCnn();
  ExplicitQuantization q;
  std::vector<PassReport> report;
  PipelineOptions po;
  po.explicit_quantization = &q;
  ASSERT_TRUE(PassManager::Default(po).Run(g, runtime::ReferenceEvaluator(), &report).ok());
  EXPECT_EQ(CountOp(g, "QuantizeLinear"), 0) << Logs(report);
  EXPECT_EQ(CountOp(g, "DequantizeLinear"), 0) << Logs(report);
  // Pairs whose readers saturate by themselves vanish: the range goes to the value the pair
  // quantised (the conv output's reaches the Gemm through Relu and Flatten, which commute with
  // the saturation).
  const std::map<std::string, float> want = {
      {"x", 127 * 0.02f}, {"c", 127 * 0.01f}, {"r", 127 * 0.01f}, {"f", 127 * 0.01f}};
  for (const auto& [name, amax] : want) {
    ASSERT_TRUE(q.activation_amax.count(name)) << name << "\n" << Logs(report);
    EXPECT_NEAR(q.activation_amax[name], amax, 1e-6 * amax) << name;
    // The kernels read s = amax / 127 back: it must be the model's scale, bit for bit.
    EXPECT_EQ(q.activation_amax[name] / 127.0f, amax / 127.0f) << name;
  }
  // The logits pair feeds a Sigmoid, which would not saturate: it becomes a Clip to
  // [-128 s, 127 s], and its range goes to the Clip's output.
  EXPECT_EQ(q.activation_amax.count("logits"), 0u);
  EXPECT_TRUE(q.activation_amax.count("logits_dq"));
  EXPECT_TRUE(LogHas(report, "fold-qdq", "into a Clip to [-0.512, 0.508]")) << Logs(report);
  EXPECT_TRUE(LogHas(report, "fold-qdq", "node 'sigmoid' (Sigmoid) would not saturate it"));
  // Weight scales per output channel, by node name.
  ASSERT_TRUE(q.weight_scales.count("conv"));
  EXPECT_EQ(q.weight_scales["conv"], (std::vector<float>{0.004f, 0.006f, 0.005f, 0.003f}));
  ASSERT_TRUE(q.weight_scales.count("gemm"));
  EXPECT_EQ(q.weight_scales["gemm"], (std::vector<float>{0.002f, 0.003f, 0.0025f, 0.002f, 0.004f}));
  EXPECT_TRUE(LogHas(report, "fold-qdq",
                     "folded node 'x_QuantizeLinear' (QuantizeLinear) -> node "
                     "'x_DequantizeLinear' (DequantizeLinear) on 'x' (int8 scale 0.02, amax 2.54)"))
      << Logs(report);
  // Everything else still fuses: Conv + Relu, Gemm + Clip.
  EXPECT_EQ(CountOp(g, "FusedConv"), 1) << Logs(report);
  EXPECT_EQ(CountOp(g, "FusedGemm"), 1) << Logs(report);
}

TEST(FoldQdqTest, PerTensorWeightScalesAndTransposedGemmWeights) {
  // Gemm transB 1 ([N, K]: output channels along axis 0) with one weight scale for all.
  Rng rng(3);
  Graph g;
  g.opset = 13;
  const int x = Input(g, "x", {-1, 16});
  const int xq = AddPair(g, x, "x", 0.05f);
  const Shape ws{3, 16};
  const int w = AddWeights(g, "w", ws, RandomQ(ws, 0, {30}, rng), {0.01f}, 0);
  const int y = Tmp(g, "y", DType::kFloat32, {-1, 3});
  AddNode(g, "dense", "Gemm", {xq, w}, {y}).attrs["transB"] = IntAttr(1);
  g.outputs = {y};
  ExplicitQuantization q;
  PassContext ctx{runtime::ReferenceEvaluator(), nullptr, &q};
  auto n = MakeFoldQdqPass()->Run(g, ctx);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(q.weight_scales["dense"], (std::vector<float>{0.01f, 0.01f, 0.01f}));
}

TEST(FoldQdqTest, LeavesPairsTheKernelsCannotExpressAndSaysWhy) {
  struct Case {
    std::string what;
    DType zp_type;
    int zp;  // -1: no zero point
    float dq_scale;
    std::string reason;
  };
  const Case cases[] = {
      {"no zero point", DType::kUInt8, -1, 0, "no zero point, so uint8 (an asymmetric range)"},
      {"uint8", DType::kUInt8, 128, 0, "uint8 zero point (an asymmetric range)"},
      {"non-zero", DType::kInt8, 3, 0, "zero point 3 (an asymmetric range)"},
      {"requantisation", DType::kInt8, 0, 0.03f,
       "node 'x_DequantizeLinear' (DequantizeLinear) has scale 0.03, not 0.02 (a "
       "requantisation)"},
  };
  for (const Case& c : cases) {
    Graph g;
    g.opset = 13;
    const int x = Input(g, "x", {-1, 4});
    const int xq = AddPair(g, x, "x", 0.02f, c.zp_type, c.zp, c.dq_scale);
    const int y = Tmp(g, "y", DType::kFloat32, {-1, 4});
    AddNode(g, "relu", "Relu", {xq}, {y});
    g.outputs = {y};
    ExplicitQuantization q;
    std::vector<std::string> log;
    PassContext ctx{runtime::ReferenceEvaluator(), &log, &q};
    auto n = MakeFoldQdqPass()->Run(g, ctx);
    ASSERT_TRUE(n.ok()) << c.what;
    EXPECT_EQ(*n, 0) << c.what;
    EXPECT_EQ(CountOp(g, "QuantizeLinear"), 1) << c.what;
    EXPECT_TRUE(q.empty()) << c.what;
    ASSERT_EQ(log.size(), 1u) << c.what;
    EXPECT_NE(log[0].find("left node 'x_QuantizeLinear' (QuantizeLinear) and its "
                          "DequantizeLinear in place: " +
                          c.reason),
              std::string::npos)
        << c.what << ": " << log[0];
    // Said once, not once per pipeline round.
    ASSERT_TRUE(MakeFoldQdqPass()->Run(g, ctx).ok());
    EXPECT_EQ(log.size(), 1u) << c.what;
  }
  // Per-axis activation scales.
  Graph g;
  g.opset = 13;
  const int x = Input(g, "x", {-1, 2});
  const int s = Const(g, "s", Make<float>(DType::kFloat32, Shape{2}, {0.1f, 0.2f}));
  const int z = Const(g, "z", ZeroPoint(DType::kInt8, 0, Shape{2}));
  const int qv = Tmp(g, "q", DType::kInt8);
  const int y = Tmp(g, "y");
  AddNode(g, "quant", "QuantizeLinear", {x, s, z}, {qv}).attrs["axis"] = IntAttr(1);
  AddNode(g, "dequant", "DequantizeLinear", {qv, s, z}, {y}).attrs["axis"] = IntAttr(1);
  g.outputs = {y};
  ExplicitQuantization q;
  std::vector<std::string> log;
  PassContext ctx{runtime::ReferenceEvaluator(), &log, &q};
  ASSERT_TRUE(MakeFoldQdqPass()->Run(g, ctx).ok());
  EXPECT_EQ(CountOp(g, "QuantizeLinear"), 1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("per-axis scale (2 values)"), std::string::npos) << log[0];
}

TEST(FoldQdqTest, PairsProducingGraphOutputsStayExact) {
  Graph g;
  g.opset = 13;
  const int x = Input(g, "x", {-1, 4});
  const int a = Tmp(g, "a", DType::kFloat32, {-1, 4});
  AddNode(g, "sigmoid", "Sigmoid", {x}, {a});
  const int y = AddPair(g, a, "out", 1.0f / 127);
  g.outputs = {y};
  ExplicitQuantization q;
  std::vector<std::string> log;
  PassContext ctx{runtime::ReferenceEvaluator(), &log, &q};
  ASSERT_TRUE(MakeFoldQdqPass()->Run(g, ctx).ok());
  EXPECT_EQ(CountOp(g, "QuantizeLinear"), 1);
  EXPECT_EQ(CountOp(g, "DequantizeLinear"), 1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("its output 'out_dq' is a graph output"), std::string::npos) << log[0];
}

TEST(FoldQdqTest, WithoutARecordTheFp32PipelineKeepsQuantizeDequantize) {
  const Graph original = QdqCnn();
  // The pass alone with nowhere to record: nothing.
  Graph g = original;
  PassContext ctx{runtime::ReferenceEvaluator(), nullptr, nullptr};
  auto n = MakeFoldQdqPass()->Run(g, ctx);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  // The default pipeline: the activation pairs stay (their exact rounding); weights fold.
  std::vector<PassReport> report;
  ASSERT_TRUE(PassManager::Default().Run(g, runtime::ReferenceEvaluator(), &report).ok());
  for (const auto& r : report) EXPECT_NE(r.pass, "fold-qdq");
  EXPECT_EQ(CountOp(g, "QuantizeLinear"), 5);
  EXPECT_EQ(CountOp(g, "DequantizeLinear"), 5);
  // fp32 and bf16 engines: same, and the outputs are the QDQ model's.
  Rng rng(8);
  const std::vector<Tensor> inputs = {RandomInput(original, 3, rng, -1.0f, 2.0f)};
  const auto want = RunReference(original, inputs);
  for (Precision p : {Precision::kFp32, Precision::kBf16}) {
    runtime::BuildReport br;
    auto e = Build(original, p, nullptr, &br);
    ASSERT_TRUE(e);
    EXPECT_EQ(CountOp(e->graph(), "QuantizeLinear"), 5);
    EXPECT_FALSE(e->options().calibration);
    if (p == Precision::kFp32) {
      const auto got = RunEngine(*e, inputs);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_LT(MaxAbsDiff(got[0], want[0]), 1e-6);
    }
  }
}

TEST(FoldQdqTest, Int8BuildOfAQdqModelNeedsNoCalibrationAndMatchesTheQdqGraph) {
  const Graph g = QdqCnn();
  runtime::BuildReport br;
  auto e = Build(g, Precision::kInt8, nullptr, &br);
  ASSERT_TRUE(e);
  ASSERT_TRUE(e->options().calibration);
  EXPECT_EQ(e->options().calibration->method, "qdq");
  EXPECT_EQ(e->options().calibration->weight_scales.size(), 2u);
  EXPECT_EQ(CountOp(e->graph(), "QuantizeLinear"), 0);
  const auto tactics = DenseTactics(*e);
  EXPECT_EQ(tactics.size(), 2u);
  if (CpuHasFastInt8()) {
    for (const auto& [node, t] : tactics) EXPECT_TRUE(EndsWith(t, " int8")) << node << ": " << t;
  }
  // Inputs reach past the input pair's range [-2.56, 2.54]: saturation is part of the model.
  Rng rng(21);
  for (int64_t batch : {1, 7, 32}) {
    const std::vector<Tensor> inputs = {RandomInput(g, batch, rng, -3.0f, 3.0f)};
    const auto want = RunReference(g, inputs);
    const auto got = RunEngine(*e, inputs);
    ASSERT_EQ(got.size(), 1u);
    const double diff = MaxAbsDiff(got[0], want[0]);
    std::printf("batch %lld: max |int8 engine - QDQ graph| = %.3g\n", static_cast<long long>(batch),
                diff);
    // The logits pair's rounding through the Sigmoid: 0.004 / 8, plus float slack.
    EXPECT_LT(diff, 0.004 / 8 + 1e-4) << "batch " << batch;
  }
  // A calibration table's ranges give way to the model's own.
  auto calibrated = std::make_shared<CalibrationTable>();
  calibrated->method = "minmax";
  calibrated->amax["x"] = 100.0f;
  calibrated->amax["unrelated"] = 1.0f;
  auto e2 = Build(g, Precision::kInt8, calibrated);
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->options().calibration->method, "minmax+qdq");
  EXPECT_EQ(e2->options().calibration->amax.at("x"), e->options().calibration->amax.at("x"));
  EXPECT_EQ(e2->options().calibration->amax.at("unrelated"), 1.0f);
}

// A Gemm (per-tensor weight scale) and a Conv (per-channel) whose int8 weights never reach 127 in
// some channels: requantising their float weights with max |W| / 127 would change them, the
// model's scales give them back exactly. Inputs on the input scale's grid make the input
// quantisation exact too, so the int8 engine computes the model's integer dot products: equal to
// the reference up to float32 rounding of the result.
struct ExactCase {
  std::string name;
  Graph qdq;     // weights from DequantizeLinear
  Graph floats;  // the same weights as float constants: no explicit scales
};

std::vector<ExactCase> ExactCases() {
  std::vector<ExactCase> out;
  for (int conv = 0; conv < 2; ++conv) {
    Rng rng(40 + conv);
    ExactCase c;
    c.name = conv ? "conv" : "gemm";
    const float sx = 1.0f / 64;
    const Shape ws = conv ? Shape{6, 3, 3, 3} : Shape{48, 8};
    const int axis = conv ? 0 : 1;
    const std::vector<float> scales =
        conv ? std::vector<float>{0.01f, 0.02f, 0.015f, 0.01f, 0.03f, 0.02f}
             : std::vector<float>{0.01f};
    const auto q =
        RandomQ(ws, axis, conv ? std::vector<int>{50, 127, 20} : std::vector<int>{50}, rng);
    for (int variant = 0; variant < 2; ++variant) {
      Graph g;
      g.opset = 13;
      const int x =
          Input(g, "x", conv ? std::vector<int64_t>{-1, 3, 5, 5} : std::vector<int64_t>{-1, 48});
      const int xq = AddPair(g, x, "x", sx);
      int w;
      if (variant == 0) {
        w = AddWeights(g, "w", ws, q, scales, axis);
      } else {
        Tensor t = *Tensor::Create(DType::kFloat32, ws);
        const int64_t inner = conv ? 27 : 1, channels = ws.dims()[axis];
        for (std::size_t e = 0; e < q.size(); ++e) {
          const int64_t oc = (static_cast<int64_t>(e) / inner) % channels;
          t.Span<float>()[e] = static_cast<float>(q[e]) * scales[scales.size() == 1 ? 0 : oc];
        }
        w = Const(g, "w", t);
      }
      const int y = Tmp(g, "y");
      AddNode(g, c.name, conv ? "Conv" : "MatMul", {xq, w}, {y});
      g.outputs = {y};
      (variant == 0 ? c.qdq : c.floats) = g;
    }
    out.push_back(std::move(c));
  }
  return out;
}

// Inputs k / 64 with integer |k| <= 127: exactly on the input pair's grid.
std::vector<Tensor> GridInputs(const Graph& g, int64_t batch, Rng& rng) {
  Tensor t = RandomInput(g, batch, rng, 0, 1);
  for (float& v : t.Span<float>()) v = static_cast<float>(std::lround(v * 254 - 127)) / 64;
  return {t};
}

double MaxRelDiff(const Tensor& got, const Tensor& want) {
  double m = 0, scale = 0;
  auto a = got.Span<float>();
  auto b = want.Span<float>();
  for (std::size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::fabs(1.0 * b[i]));
  for (std::size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(1.0 * a[i] - b[i]));
  return m / std::max(scale, 1e-30);
}

TEST(FoldQdqTest, ExplicitWeightScalesReproduceTheModelsInt8Weights) {
  for (const ExactCase& c : ExactCases()) {
    auto e = Build(c.qdq, Precision::kInt8);
    auto control = Build(c.floats, Precision::kInt8);
    ASSERT_TRUE(e && control) << c.name;
    ASSERT_EQ(e->options().calibration->weight_scales.count(c.name), 1u) << c.name;
    EXPECT_EQ(control->options().calibration->weight_scales.size(), 0u) << c.name;
    Rng rng(9);
    const auto inputs = GridInputs(c.qdq, 6, rng);
    const auto want = RunReference(c.qdq, inputs);
    const double exact = MaxRelDiff(RunEngine(*e, inputs)[0], want[0]);
    const double requantised = MaxRelDiff(RunEngine(*control, inputs)[0], want[0]);
    std::printf("%s: max error / max |output|: model's weight scales %.2g, requantised %.2g\n",
                c.name.c_str(), exact, requantised);
    EXPECT_LT(exact, 1e-6) << c.name;
    if (CpuHasFastInt8()) {
      for (const auto& [node, t] : DenseTactics(*e)) EXPECT_TRUE(EndsWith(t, " int8")) << t;
      // Without the scales the int8 weights are different ones.
      EXPECT_GT(requantised, 1e-4) << c.name;
    }
  }
}

TEST(FoldQdqTest, PlansKeepTheExplicitWeightScales) {
  const ExactCase c = ExactCases()[0];
  auto e = Build(c.qdq, Precision::kInt8);
  ASSERT_TRUE(e);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("fold_qdq_test_" + std::to_string(::getpid()) + ".plan"))
                               .string();
  ASSERT_TRUE(e->SavePlan(path).ok());
  auto loaded = Engine::LoadPlan(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const auto& table = *(*loaded)->options().calibration;
  EXPECT_EQ(table.weight_scales, e->options().calibration->weight_scales);
  EXPECT_EQ(table.amax, e->options().calibration->amax);
  Rng rng(10);
  const auto inputs = GridInputs(c.qdq, 4, rng);
  EXPECT_EQ(MaxAbsDiff(RunEngine(**loaded, inputs)[0], RunEngine(*e, inputs)[0]), 0.0);
}

TEST(FoldQdqTest, WeightScalesThatDoNotFitTheWeightsAreNotUsed) {
  // A stale record (as if a later pass had rescaled the weights): the kernel requantises.
  const ExactCase c = ExactCases()[0];
  auto table = std::make_shared<CalibrationTable>();
  table->method = "minmax";
  table->amax["x"] = 127.0f / 64;
  table->weight_scales[c.name] = std::vector<float>(8, 0.0123f);
  auto e = Build(c.floats, Precision::kInt8, table);
  ASSERT_TRUE(e);
  if (!CpuHasFastInt8()) GTEST_SKIP() << "no avx512_core + vnni: int8 tactics not checked";
  for (const auto& [node, t] : DenseTactics(*e)) {
    EXPECT_TRUE(EndsWith(t,
                         "int8 (the model's weight scales do not fit these weights: "
                         "requantised)"))
        << t;
  }
}

}  // namespace
}  // namespace larserve::opt

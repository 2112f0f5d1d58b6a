// Hand-computed cases and error handling of the nn reference kernels (src/runtime/reference/
// nn_kernels.cc). The kernels are looked up in a map filled by RegisterNnKernels alone, so the
// test does not depend on the other registration files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../src/runtime/reference/registry.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"

namespace larserve::runtime::ref {
namespace {

using graph::Attribute;
using graph::Node;

Attribute Int(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}

Attribute Ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

Attribute Float(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

Attribute String(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

Node MakeNode(std::string op, std::map<std::string, Attribute> attrs = {}, int num_outputs = 1) {
  Node n;
  n.name = "n0";
  n.op_type = std::move(op);
  n.attrs = std::move(attrs);
  for (int i = 0; i < num_outputs; ++i) n.outputs.push_back(i);
  return n;
}

template <typename T>
Tensor Make(DType dtype, Shape shape, std::vector<T> values) {
  auto t = Tensor::Create(dtype, std::move(shape));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(static_cast<std::size_t>(t->num_elements()), values.size());
  if (!values.empty()) std::memcpy(t->data(), values.data(), values.size() * sizeof(T));
  return *t;
}

Tensor F(Shape shape, std::vector<float> values) {
  return Make<float>(DType::kFloat32, std::move(shape), std::move(values));
}

// 0, 1, 2, ... in the given shape.
Tensor Iota(Shape shape, float first = 0) {
  std::vector<float> v(static_cast<std::size_t>(shape.NumElements()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = first + static_cast<float>(i);
  return F(std::move(shape), std::move(v));
}

template <typename T>
void ExpectValues(const Tensor& t, Shape shape, std::vector<T> want, double tol = 1e-6) {
  ASSERT_EQ(t.shape(), shape) << t.shape().ToString() << " vs " << shape.ToString();
  auto got = t.Span<T>();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
    } else {
      EXPECT_EQ(got[i], want[i]) << "element " << i;
    }
  }
}

void ExpectF(const Tensor& t, Shape shape, std::vector<float> want, double tol = 1e-6) {
  ASSERT_EQ(t.dtype(), DType::kFloat32);
  ExpectValues<float>(t, std::move(shape), std::move(want), tol);
}

class NnKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterNnKernels(kernels_); }

  Status Run(const Node& node, std::vector<Tensor> inputs, int64_t opset = 13) {
    auto it = kernels_.find(node.op_type);
    if (it == kernels_.end()) return NotFound("no kernel for " + node.op_type);
    outputs_.clear();
    return it->second(node, opset, inputs, outputs_);
  }

  // Runs a node expected to fail with `code`; the message must name the node.
  void ExpectError(const Node& node, std::vector<Tensor> inputs, StatusCode code,
                   const std::string& fragment = "", int64_t opset = 13) {
    Status s = Run(node, std::move(inputs), opset);
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_NE(s.message().find(node.Describe()), std::string::npos) << s.message();
    if (!fragment.empty()) {
      EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
    }
  }

  const Tensor& Out(std::size_t i = 0) { return outputs_.at(i); }

  KernelMap kernels_;
  std::vector<Tensor> outputs_;
};

TEST_F(NnKernelsTest, RegistersItsOps) {
  for (const char* op :
       {"Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "BatchNormalization", "Softmax", "LogSoftmax", "QuantizeLinear", "DequantizeLinear"}) {
    EXPECT_EQ(kernels_.count(op), 1u) << op;
  }
}

// ----------------------------------------------------------------------------------------------
// Conv

TEST_F(NnKernelsTest, ConvBasic2d) {
  // X = 0..8 as 3x3, W = 2x2 of ones: each output is the sum of a 2x2 block.
  ASSERT_TRUE(Run(MakeNode("Conv"), {Iota({1, 1, 3, 3}), F({1, 1, 2, 2}, {1, 1, 1, 1})}).ok());
  ExpectF(Out(), {1, 1, 2, 2}, {8, 12, 20, 24});
}

TEST_F(NnKernelsTest, ConvPaddedStridedWithBias) {
  // 3x3 ones kernel over 0..8 padded by 1, stride 2: each output sums the 2x2 corner blocks.
  Node n = MakeNode("Conv", {{"pads", Ints({1, 1, 1, 1})}, {"strides", Ints({2, 2})}});
  ASSERT_TRUE(
      Run(n, {Iota({1, 1, 3, 3}), F({1, 1, 3, 3}, std::vector<float>(9, 1)), F({1}, {0.5f})}).ok());
  ExpectF(Out(), {1, 1, 2, 2}, {8.5f, 12.5f, 20.5f, 24.5f});
}

TEST_F(NnKernelsTest, ConvAsymmetricPads) {
  // 1-D: pads begin 2, end 0, kernel [1, 10]: y[o] = x[o-2] + 10 * x[o-1].
  Node n = MakeNode("Conv", {{"pads", Ints({2, 0})}});
  ASSERT_TRUE(Run(n, {F({1, 1, 3}, {1, 2, 3}), F({1, 1, 2}, {1, 10})}).ok());
  ExpectF(Out(), {1, 1, 4}, {0, 10, 21, 32});
}

TEST_F(NnKernelsTest, ConvGroupedDepthwise) {
  Node n = MakeNode("Conv", {{"group", Int(2)}});
  ASSERT_TRUE(Run(n, {F({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}), F({2, 1, 1, 1}, {2, 3})}).ok());
  ExpectF(Out(), {1, 2, 2, 2}, {2, 4, 6, 8, 15, 18, 21, 24});
}

TEST_F(NnKernelsTest, ConvGroupedSeveralChannelsPerGroup) {
  // 4 input channels in 2 groups of 2; map 0 sees channels 0,1 and map 1 channels 2,3.
  Node n = MakeNode("Conv", {{"group", Int(2)}});
  ASSERT_TRUE(Run(n, {F({1, 4, 1, 1}, {1, 2, 3, 4}), F({2, 2, 1, 1}, {1, 1, 1, -1})}).ok());
  ExpectF(Out(), {1, 2, 1, 1}, {3, -1});
}

TEST_F(NnKernelsTest, ConvDilated1d) {
  Node n = MakeNode("Conv", {{"dilations", Ints({2})}});
  ASSERT_TRUE(Run(n, {F({1, 1, 5}, {1, 2, 3, 4, 5}), F({1, 1, 2}, {1, 1})}).ok());
  ExpectF(Out(), {1, 1, 3}, {4, 6, 8});
}

TEST_F(NnKernelsTest, ConvSameUpperAndLower) {
  // in 4, kernel 3, stride 2: 2 outputs and one pad, at the end (UPPER) or beginning (LOWER).
  const Tensor x = F({1, 1, 4}, {1, 2, 3, 4});
  const Tensor w = F({1, 1, 3}, {1, 1, 1});
  ASSERT_TRUE(
      Run(MakeNode("Conv", {{"auto_pad", String("SAME_UPPER")}, {"strides", Ints({2})}}), {x, w})
          .ok());
  ExpectF(Out(), {1, 1, 2}, {6, 7});
  ASSERT_TRUE(
      Run(MakeNode("Conv", {{"auto_pad", String("SAME_LOWER")}, {"strides", Ints({2})}}), {x, w})
          .ok());
  ExpectF(Out(), {1, 1, 2}, {3, 9});
}

TEST_F(NnKernelsTest, ConvValidIgnoresPads) {
  Node n = MakeNode("Conv", {{"auto_pad", String("VALID")}, {"pads", Ints({5, 5})}});
  ASSERT_TRUE(Run(n, {F({1, 1, 3}, {1, 2, 3}), F({1, 1, 2}, {1, 1})}).ok());
  ExpectF(Out(), {1, 1, 2}, {3, 5});
}

TEST_F(NnKernelsTest, Conv3dWithBatchAndMaps) {
  // Two images (all ones, all twos) and two maps (ones, minus ones) of a 2x2x2 kernel.
  std::vector<float> x(16, 1);
  std::fill(x.begin() + 8, x.end(), 2);
  std::vector<float> w(16, 1);
  std::fill(w.begin() + 8, w.end(), -1);
  ASSERT_TRUE(Run(MakeNode("Conv", {{"kernel_shape", Ints({2, 2, 2})}}),
                  {F({2, 1, 2, 2, 2}, x), F({2, 1, 2, 2, 2}, w), F({2}, {0, 100})})
                  .ok());
  ExpectF(Out(), {2, 2, 1, 1, 1}, {8, 92, 16, 84});
}

TEST_F(NnKernelsTest, ConvFloat64) {
  auto x = Make<double>(DType::kFloat64, {1, 1, 2}, {1.5, 2.5});
  auto w = Make<double>(DType::kFloat64, {1, 1, 1}, {2});
  ASSERT_TRUE(Run(MakeNode("Conv"), {x, w}).ok());
  ExpectValues<double>(Out(), {1, 1, 2}, {3, 5});
}

TEST_F(NnKernelsTest, ConvEmptyBatch) {
  auto x = Tensor::Create(DType::kFloat32, {0, 1, 3, 3});
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE(Run(MakeNode("Conv"), {*x, F({1, 1, 2, 2}, {1, 1, 1, 1})}).ok());
  EXPECT_EQ(Out().shape(), (Shape{0, 1, 2, 2}));
}

TEST_F(NnKernelsTest, ConvErrors) {
  const Tensor x = Iota({1, 2, 3, 3});
  const Tensor w = F({1, 2, 2, 2}, std::vector<float>(8, 1));
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("Conv"), {Iota({2, 3}), w}, kInvalid, "rank >= 3");
  ExpectError(MakeNode("Conv"), {x, F({1, 2, 2}, {1, 1, 1, 1})}, kInvalid, "weight W");
  ExpectError(MakeNode("Conv"), {x, F({1, 3, 2, 2}, std::vector<float>(12, 1))}, kInvalid,
              "channels per group");
  ExpectError(MakeNode("Conv", {{"group", Int(3)}}), {x, w}, kInvalid, "does not divide");
  ExpectError(MakeNode("Conv", {{"group", Int(2)}}), {x, F({1, 1, 2, 2}, {1, 1, 1, 1})}, kInvalid,
              "output channels");
  ExpectError(MakeNode("Conv", {{"group", Int(0)}}), {x, w}, kInvalid, "group");
  ExpectError(MakeNode("Conv"), {x, w, F({2}, {0, 0})}, kInvalid, "bias");
  ExpectError(MakeNode("Conv", {{"strides", Ints({1})}}), {x, w}, kInvalid, "strides");
  ExpectError(MakeNode("Conv", {{"strides", Ints({0, 1})}}), {x, w}, kInvalid, "stride");
  ExpectError(MakeNode("Conv", {{"pads", Ints({1, 1})}}), {x, w}, kInvalid, "pads");
  ExpectError(MakeNode("Conv", {{"pads", Ints({-1, 0, 0, 0})}}), {x, w}, kInvalid, "negative");
  ExpectError(MakeNode("Conv", {{"dilations", Ints({1, 0})}}), {x, w}, kInvalid, "dilation");
  ExpectError(MakeNode("Conv", {{"kernel_shape", Ints({3, 3})}}), {x, w}, kInvalid, "kernel_shape");
  ExpectError(MakeNode("Conv", {{"auto_pad", String("SAME")}}), {x, w}, kInvalid, "auto_pad");
  ExpectError(MakeNode("Conv", {{"strides", Int(2)}}), {x, w}, kInvalid, "list of ints");
  ExpectError(MakeNode("Conv"), {x, F({1, 2, 4, 4}, std::vector<float>(32, 1))}, kInvalid,
              "exceeds the padded input");
  ExpectError(MakeNode("Conv"), {x, F({1, 2, 0, 2}, {})}, kInvalid, "empty kernel");
  ExpectError(MakeNode("Conv"), {x}, kInvalid, "inputs");
  ExpectError(MakeNode("Conv"), {x, Tensor()}, kInvalid, "required");
  ExpectError(MakeNode("Conv"), {Make<int32_t>(DType::kInt32, {1, 1, 1}, {1}), w}, kInvalid,
              "INT32");
  ExpectError(MakeNode("Conv"),
              {x, Make<double>(DType::kFloat64, {1, 2, 2, 2}, std::vector<double>(8))}, kInvalid,
              "FP64");
  ExpectError(MakeNode("Conv", {}, 2), {x, w}, kInvalid, "outputs");
  auto half = Tensor::Create(DType::kFloat16, {1, 1, 2, 2});
  ExpectError(MakeNode("Conv"), {*half, *half}, StatusCode::kUnimplemented, "FP16");
}

// ----------------------------------------------------------------------------------------------
// Gemm

TEST_F(NnKernelsTest, GemmPlain) {
  const Tensor a = F({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = F({3, 2}, {1, 0, 0, 1, 1, 1});
  ASSERT_TRUE(Run(MakeNode("Gemm"), {a, b}).ok());
  ExpectF(Out(), {2, 2}, {4, 5, 10, 11});
}

TEST_F(NnKernelsTest, GemmTransposes) {
  // The same product with both operands stored transposed.
  const Tensor at = F({3, 2}, {1, 4, 2, 5, 3, 6});
  const Tensor bt = F({2, 3}, {1, 0, 1, 0, 1, 1});
  ASSERT_TRUE(Run(MakeNode("Gemm", {{"transA", Int(1)}, {"transB", Int(1)}}), {at, bt}).ok());
  ExpectF(Out(), {2, 2}, {4, 5, 10, 11});
  ASSERT_TRUE(
      Run(MakeNode("Gemm", {{"transA", Int(1)}}), {at, F({3, 2}, {1, 0, 0, 1, 1, 1})}).ok());
  ExpectF(Out(), {2, 2}, {4, 5, 10, 11});
}

TEST_F(NnKernelsTest, GemmAlphaBetaAndBroadcastC) {
  const Tensor a = F({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = F({3, 2}, {1, 0, 0, 1, 1, 1});
  Node n = MakeNode("Gemm", {{"alpha", Float(2)}, {"beta", Float(0.5f)}});
  // AB = [[4, 5], [10, 11]]; Y = 2 AB + 0.5 C.
  ASSERT_TRUE(Run(n, {a, b, F({2}, {10, 20})}).ok());
  ExpectF(Out(), {2, 2}, {13, 20, 25, 32});
  ASSERT_TRUE(Run(n, {a, b, F({2, 1}, {10, 20})}).ok());
  ExpectF(Out(), {2, 2}, {13, 15, 30, 32});
  ASSERT_TRUE(Run(n, {a, b, F({}, {2})}).ok());
  ExpectF(Out(), {2, 2}, {9, 11, 21, 23});
  ASSERT_TRUE(Run(n, {a, b, F({1, 1}, {2})}).ok());
  ExpectF(Out(), {2, 2}, {9, 11, 21, 23});
  ASSERT_TRUE(Run(n, {a, b, F({2, 2}, {2, 4, 6, 8})}).ok());
  ExpectF(Out(), {2, 2}, {9, 12, 23, 26});
}

TEST_F(NnKernelsTest, GemmErrors) {
  const Tensor a = F({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = F({3, 2}, {1, 0, 0, 1, 1, 1});
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("Gemm"), {a, a}, kInvalid, "inner dimensions");
  ExpectError(MakeNode("Gemm"), {a, b, F({3}, {1, 2, 3})}, kInvalid, "broadcast");
  ExpectError(MakeNode("Gemm"), {a, b, F({1, 1, 1}, {1})}, kInvalid, "broadcast");
  ExpectError(MakeNode("Gemm"), {Iota({1, 2, 3}), b}, kInvalid, "rank 2");
  ExpectError(MakeNode("Gemm"), {a, F({3}, {1, 2, 3})}, kInvalid, "rank 2");
  ExpectError(MakeNode("Gemm", {{"alpha", Int(2)}}), {a, b}, kInvalid, "a float");
  // C is required before opset 11.
  ExpectError(MakeNode("Gemm"), {a, b}, kInvalid, "inputs", 9);
  ExpectError(
      MakeNode("Gemm"),
      {Make<int64_t>(DType::kInt64, {1, 1}, {1}), Make<int64_t>(DType::kInt64, {1, 1}, {1})},
      StatusCode::kUnimplemented, "INT64");
}

// ----------------------------------------------------------------------------------------------
// MatMul

TEST_F(NnKernelsTest, MatMulVectorPromotion) {
  ASSERT_TRUE(Run(MakeNode("MatMul"), {F({3}, {1, 2, 3}), F({3}, {4, 5, 6})}).ok());
  ExpectF(Out(), Shape{}, {32});
  ASSERT_TRUE(Run(MakeNode("MatMul"), {F({2}, {1, 2}), F({2, 3}, {1, 2, 3, 4, 5, 6})}).ok());
  ExpectF(Out(), {3}, {9, 12, 15});
  ASSERT_TRUE(Run(MakeNode("MatMul"), {F({2, 2}, {1, 2, 3, 4}), F({2}, {1, 1})}).ok());
  ExpectF(Out(), {2}, {3, 7});
  // A 1-D operand against a batched one keeps the batch dims.
  ASSERT_TRUE(Run(MakeNode("MatMul"), {F({2}, {1, 1}), Iota({3, 2, 2})}).ok());
  ExpectF(Out(), {3, 2}, {2, 4, 10, 12, 18, 20});
}

TEST_F(NnKernelsTest, MatMulBatchedBroadcast) {
  // A[i] = (i + 1) * I of shape [2, 1, 2, 2]; B[j] of shape [3, 2, 2]: Y[i][j] = (i + 1) B[j].
  const Tensor a = F({2, 1, 2, 2}, {1, 0, 0, 1, 2, 0, 0, 2});
  const Tensor b = Iota({3, 2, 2});
  ASSERT_TRUE(Run(MakeNode("MatMul"), {a, b}).ok());
  std::vector<float> want;
  for (int i = 1; i <= 2; ++i) {
    for (int v = 0; v < 12; ++v) want.push_back(static_cast<float>(i * v));
  }
  ExpectF(Out(), {2, 3, 2, 2}, want);
}

TEST_F(NnKernelsTest, MatMulIntegers) {
  ASSERT_TRUE(Run(MakeNode("MatMul"), {Make<int32_t>(DType::kInt32, {1, 2}, {3, -4}),
                                       Make<int32_t>(DType::kInt32, {2, 1}, {5, 6})})
                  .ok());
  ExpectValues<int32_t>(Out(), {1, 1}, {-9});
  ASSERT_TRUE(Run(MakeNode("MatMul"), {Make<int64_t>(DType::kInt64, {2}, {1LL << 40, 1}),
                                       Make<int64_t>(DType::kInt64, {2}, {4, -7})})
                  .ok());
  ExpectValues<int64_t>(Out(), Shape{}, {(1LL << 42) - 7});
}

TEST_F(NnKernelsTest, MatMulErrors) {
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("MatMul"), {Iota({2, 3}), Iota({2, 3})}, kInvalid, "inner dimensions");
  ExpectError(MakeNode("MatMul"), {Iota({2, 2, 2}), Iota({3, 2, 2})}, kInvalid, "broadcast");
  ExpectError(MakeNode("MatMul"), {F({}, {1}), Iota({1})}, kInvalid, "scalar");
  ExpectError(MakeNode("MatMul"), {Iota({2}), Make<double>(DType::kFloat64, {2}, {1, 2})}, kInvalid,
              "FP64");
  ExpectError(MakeNode("MatMul"),
              {Make<uint8_t>(DType::kUInt8, {1}, {1}), Make<uint8_t>(DType::kUInt8, {1}, {1})},
              kInvalid, "UINT8");
}

// ----------------------------------------------------------------------------------------------
// MaxPool

TEST_F(NnKernelsTest, MaxPoolWithIndices) {
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({2, 2})}, {"strides", Ints({2, 2})}}, 2);
  const Tensor x = Iota({1, 1, 4, 4}, 1);
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(0), {1, 1, 2, 2}, {6, 8, 14, 16});
  ExpectValues<int64_t>(Out(1), {1, 1, 2, 2}, {5, 7, 13, 15});
  // Column-major numbering of the spatial dims: h + w * H.
  n.attrs["storage_order"] = Int(1);
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectValues<int64_t>(Out(1), {1, 1, 2, 2}, {5, 13, 7, 15});
}

TEST_F(NnKernelsTest, MaxPoolIndicesCountBatchAndChannel) {
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({2})}}, 2);
  ASSERT_TRUE(Run(n, {F({2, 2, 2}, {1, 2, 4, 3, 5, 6, 8, 7})}).ok());
  ExpectF(Out(0), {2, 2, 1}, {2, 4, 6, 8});
  ExpectValues<int64_t>(Out(1), {2, 2, 1}, {1, 2, 5, 6});
}

TEST_F(NnKernelsTest, MaxPoolSkipsOmittedIndices) {
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({2})}}, 2);
  n.outputs[1] = -1;
  ASSERT_TRUE(Run(n, {F({1, 1, 2}, {1, 2})}).ok());
  ASSERT_EQ(outputs_.size(), 2u);
  EXPECT_TRUE(Out(1).empty());
}

TEST_F(NnKernelsTest, MaxPoolCeilMode) {
  const Tensor x = F({1, 1, 5}, {1, 2, 3, 4, 5});
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({2})}, {"strides", Ints({2})}});
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(), {1, 1, 2}, {2, 4});
  n.attrs["ceil_mode"] = Int(1);
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(), {1, 1, 3}, {2, 4, 5});
}

TEST_F(NnKernelsTest, MaxPoolCeilModeDropsWindowStartingInPadding) {
  // in 4, pads [0, 1], kernel 2, stride 2: the ceil window would start at 4, in the padding.
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({2})},
                                {"strides", Ints({2})},
                                {"pads", Ints({0, 1})},
                                {"ceil_mode", Int(1)}});
  ASSERT_TRUE(Run(n, {F({1, 1, 4}, {1, 2, 3, 4})}).ok());
  ExpectF(Out(), {1, 1, 2}, {2, 4});
}

TEST_F(NnKernelsTest, MaxPoolPadsAndDilations) {
  // Windows start at -1..3 and tap start and start + 2.
  Node n = MakeNode(
      "MaxPool", {{"kernel_shape", Ints({2})}, {"dilations", Ints({2})}, {"pads", Ints({1, 1})}});
  ASSERT_TRUE(Run(n, {F({1, 1, 5}, {1, 5, 2, 4, 3})}).ok());
  ExpectF(Out(), {1, 1, 5}, {5, 2, 5, 3, 4});
}

TEST_F(NnKernelsTest, MaxPoolPaddingNeverWins) {
  // All-negative input: zero padding must not be taken as the maximum.
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({3})}, {"auto_pad", String("SAME_UPPER")}});
  ASSERT_TRUE(Run(n, {F({1, 1, 3}, {-3, -5, -2})}).ok());
  ExpectF(Out(), {1, 1, 3}, {-3, -2, -2});
}

TEST_F(NnKernelsTest, MaxPoolIntegerTypes) {
  Node n = MakeNode("MaxPool", {{"kernel_shape", Ints({2})}});
  ASSERT_TRUE(Run(n, {Make<uint8_t>(DType::kUInt8, {1, 1, 3}, {200, 7, 255})}).ok());
  ExpectValues<uint8_t>(Out(), {1, 1, 2}, {200, 255});
  ASSERT_TRUE(Run(n, {Make<int8_t>(DType::kInt8, {1, 1, 3}, {-100, -7, -128})}).ok());
  ExpectValues<int8_t>(Out(), {1, 1, 2}, {-7, -7});
}

TEST_F(NnKernelsTest, MaxPoolErrors) {
  const Tensor x = Iota({1, 1, 4, 4});
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("MaxPool"), {x}, kInvalid, "kernel_shape");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({2})}}), {x}, kInvalid, "kernel_shape");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({2, 0})}}), {x}, kInvalid, "kernel size");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({2, 2})}, {"storage_order", Int(2)}}), {x},
              kInvalid, "storage_order");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({5, 5})}}), {x}, kInvalid, "exceeds");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({2})}}), {Iota({4, 4})}, kInvalid,
              "rank >= 3");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({2, 2})}}, 3), {x}, kInvalid, "outputs");
  // Both taps of the only window (-1 and 1) miss the single input element.
  ExpectError(
      MakeNode("MaxPool",
               {{"kernel_shape", Ints({2})}, {"dilations", Ints({2})}, {"pads", Ints({1, 1})}}),
      {F({1, 1, 1}, {1})}, kInvalid, "padding");
  ExpectError(MakeNode("MaxPool", {{"kernel_shape", Ints({2})}}),
              {Make<int32_t>(DType::kInt32, {1, 1, 2}, {1, 2})}, kInvalid, "INT32");
}

// ----------------------------------------------------------------------------------------------
// AveragePool and the global pools

TEST_F(NnKernelsTest, AveragePoolPadsWithAndWithoutPadCount) {
  const Tensor x = F({1, 1, 4}, {1, 2, 3, 4});
  Node n = MakeNode("AveragePool", {{"kernel_shape", Ints({2})}, {"pads", Ints({1, 1})}});
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(), {1, 1, 5}, {1, 1.5f, 2.5f, 3.5f, 4});
  n.attrs["count_include_pad"] = Int(1);
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(), {1, 1, 5}, {0.5f, 1.5f, 2.5f, 3.5f, 2});
}

TEST_F(NnKernelsTest, AveragePoolCeilMode) {
  const Tensor x = F({1, 1, 5}, {1, 2, 3, 4, 5});
  Node n = MakeNode("AveragePool",
                    {{"kernel_shape", Ints({2})}, {"strides", Ints({2})}, {"ceil_mode", Int(1)}});
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(), {1, 1, 3}, {1.5f, 3.5f, 5});
  // The part of the last window beyond the input is not padding, so it never counts.
  n.attrs["count_include_pad"] = Int(1);
  ASSERT_TRUE(Run(n, {x}).ok());
  ExpectF(Out(), {1, 1, 3}, {1.5f, 3.5f, 5});
}

TEST_F(NnKernelsTest, AveragePoolSamePadding) {
  const Tensor x = F({1, 1, 3}, {1, 2, 3});
  ASSERT_TRUE(Run(MakeNode("AveragePool",
                           {{"kernel_shape", Ints({2})}, {"auto_pad", String("SAME_UPPER")}}),
                  {x})
                  .ok());
  ExpectF(Out(), {1, 1, 3}, {1.5f, 2.5f, 3});
  ASSERT_TRUE(Run(MakeNode("AveragePool",
                           {{"kernel_shape", Ints({2})}, {"auto_pad", String("SAME_LOWER")}}),
                  {x})
                  .ok());
  ExpectF(Out(), {1, 1, 3}, {1, 1.5f, 2.5f});
}

TEST_F(NnKernelsTest, AveragePool2dStrided) {
  Node n = MakeNode("AveragePool", {{"kernel_shape", Ints({2, 2})}, {"strides", Ints({2, 2})}});
  ASSERT_TRUE(Run(n, {Iota({1, 1, 4, 4})}).ok());
  ExpectF(Out(), {1, 1, 2, 2}, {2.5f, 4.5f, 10.5f, 12.5f});
}

TEST_F(NnKernelsTest, AveragePoolErrors) {
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("AveragePool"), {Iota({1, 1, 4})}, kInvalid, "kernel_shape");
  ExpectError(MakeNode("AveragePool", {{"kernel_shape", Ints({2})}, {"pads", Ints({1})}}),
              {Iota({1, 1, 4})}, kInvalid, "pads");
  ExpectError(MakeNode("AveragePool", {{"kernel_shape", Ints({2})}}),
              {Make<uint8_t>(DType::kUInt8, {1, 1, 2}, {1, 2})}, kInvalid, "UINT8");
}

TEST_F(NnKernelsTest, GlobalPools) {
  const Tensor x = F({1, 2, 2, 2}, {1, 2, 3, 4, -5, -6, -7, -8});
  ASSERT_TRUE(Run(MakeNode("GlobalAveragePool"), {x}).ok());
  ExpectF(Out(), {1, 2, 1, 1}, {2.5f, -6.5f});
  ASSERT_TRUE(Run(MakeNode("GlobalMaxPool"), {x}).ok());
  ExpectF(Out(), {1, 2, 1, 1}, {4, -5});
  ASSERT_TRUE(Run(MakeNode("GlobalMaxPool"), {F({1, 1, 3}, {1, 9, 2})}).ok());
  ExpectF(Out(), {1, 1, 1}, {9});
}

TEST_F(NnKernelsTest, GlobalPoolErrors) {
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("GlobalAveragePool"), {Iota({2, 2})}, kInvalid, "rank >= 3");
  auto empty = Tensor::Create(DType::kFloat32, {1, 1, 0});
  ExpectError(MakeNode("GlobalMaxPool"), {*empty}, kInvalid, "empty spatial");
}

// ----------------------------------------------------------------------------------------------
// BatchNormalization

TEST_F(NnKernelsTest, BatchNormInference) {
  Node n = MakeNode("BatchNormalization", {{"epsilon", Float(0)}});
  // Channel 0: (x - 1) / 2. Channel 1: 2 (x - 3) / 0.5 + 1.
  ASSERT_TRUE(Run(n,
                  {F({1, 2, 1, 2}, {1, 2, 3, 4}), F({2}, {1, 2}), F({2}, {0, 1}), F({2}, {1, 3}),
                   F({2}, {4, 0.25f})},
                  15)
                  .ok());
  ExpectF(Out(), {1, 2, 1, 2}, {0, 0.5f, 1, 5});
}

TEST_F(NnKernelsTest, BatchNormDefaultEpsilonAndLowRanks) {
  Node n = MakeNode("BatchNormalization");
  const float inv = 1 / std::sqrt(1 + 1e-5f);
  ASSERT_TRUE(
      Run(n, {F({2, 1}, {1, 3}), F({1}, {1}), F({1}, {0}), F({1}, {0}), F({1}, {1})}, 9).ok());
  ExpectF(Out(), {2, 1}, {inv, 3 * inv});
  // A 1-D X is (N) with one channel.
  ASSERT_TRUE(
      Run(n, {F({3}, {1, 2, 3}), F({1}, {2}), F({1}, {1}), F({1}, {1}), F({1}, {1})}, 14).ok());
  ExpectF(Out(), {3}, {1, 1 + 2 * inv, 1 + 4 * inv}, 1e-5);
}

TEST_F(NnKernelsTest, BatchNormErrors) {
  const Tensor x = Iota({1, 2, 2});
  const Tensor p = F({2}, {1, 1});
  ExpectError(MakeNode("BatchNormalization", {{"training_mode", Int(1)}}), {x, p, p, p, p},
              StatusCode::kUnimplemented, "training_mode", 15);
  ExpectError(MakeNode("BatchNormalization", {}, 5), {x, p, p, p, p}, StatusCode::kUnimplemented,
              "training", 9);
  ExpectError(MakeNode("BatchNormalization", {}, 3), {x, p, p, p, p}, StatusCode::kInvalidArgument,
              "training_mode", 15);
  ExpectError(MakeNode("BatchNormalization"), {x, p, p, F({3}, {1, 1, 1}), p},
              StatusCode::kInvalidArgument, "input_mean");
  ExpectError(MakeNode("BatchNormalization"), {x, p, p, p}, StatusCode::kInvalidArgument, "inputs");
  ExpectError(MakeNode("BatchNormalization"), {F({}, {1}), p, p, p, p},
              StatusCode::kInvalidArgument, "scalar");
  ExpectError(MakeNode("BatchNormalization"),
              {x, p, p, p, Make<int32_t>(DType::kInt32, {2}, {1, 1})}, StatusCode::kInvalidArgument,
              "input_var");
}

// ----------------------------------------------------------------------------------------------
// Softmax and LogSoftmax

TEST_F(NnKernelsTest, SoftmaxOpset11CoercesTo2d) {
  // Opset 11, default axis 1: [1, 2, 2] is normalised as one row of 4.
  const Tensor x = F({1, 2, 2}, {0, 0, 0, std::log(3.0f)});
  ASSERT_TRUE(Run(MakeNode("Softmax"), {x}, 11).ok());
  ExpectF(Out(), {1, 2, 2}, {1 / 6.0f, 1 / 6.0f, 1 / 6.0f, 0.5f});
  ASSERT_TRUE(Run(MakeNode("LogSoftmax"), {x}, 11).ok());
  ExpectF(Out(), {1, 2, 2},
          {std::log(1 / 6.0f), std::log(1 / 6.0f), std::log(1 / 6.0f), std::log(0.5f)});
}

TEST_F(NnKernelsTest, SoftmaxOpset13NormalisesOneAxis) {
  const Tensor x = F({1, 2, 2}, {0, 0, 0, std::log(3.0f)});
  // Default axis -1: rows [0, 0] and [0, ln 3].
  ASSERT_TRUE(Run(MakeNode("Softmax"), {x}, 13).ok());
  ExpectF(Out(), {1, 2, 2}, {0.5f, 0.5f, 0.25f, 0.75f});
  // axis 1 normalises the columns; at opset 11 the same axis would flatten dims 1 and 2.
  ASSERT_TRUE(Run(MakeNode("Softmax", {{"axis", Int(1)}}), {x}, 13).ok());
  ExpectF(Out(), {1, 2, 2}, {0.5f, 0.25f, 0.5f, 0.75f});
  ASSERT_TRUE(Run(MakeNode("LogSoftmax", {{"axis", Int(1)}}), {x}, 13).ok());
  ExpectF(Out(), {1, 2, 2}, {std::log(0.5f), std::log(0.25f), std::log(0.5f), std::log(0.75f)});
}

TEST_F(NnKernelsTest, SoftmaxOpset11NegativeAxisAndLargeValues) {
  // axis -1 at opset 11 is a plain last-axis softmax; large inputs must not overflow.
  ASSERT_TRUE(
      Run(MakeNode("Softmax", {{"axis", Int(-1)}}), {F({2, 2}, {1000, 1000, -1000, -1000})}, 11)
          .ok());
  ExpectF(Out(), {2, 2}, {0.5f, 0.5f, 0.5f, 0.5f});
  ASSERT_TRUE(Run(MakeNode("LogSoftmax"), {F({2}, {1000, 1000})}, 13).ok());
  ExpectF(Out(), {2}, {-std::log(2.0f), -std::log(2.0f)});
}

TEST_F(NnKernelsTest, SoftmaxFloat64) {
  ASSERT_TRUE(
      Run(MakeNode("Softmax"), {Make<double>(DType::kFloat64, {2}, {0, std::log(3.0)})}).ok());
  ExpectValues<double>(Out(), {2}, {0.25, 0.75}, 1e-12);
}

TEST_F(NnKernelsTest, SoftmaxErrors) {
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("Softmax", {{"axis", Int(3)}}), {Iota({2, 2, 2})}, kInvalid, "axis");
  ExpectError(MakeNode("Softmax", {{"axis", Int(-4)}}), {Iota({2, 2, 2})}, kInvalid, "axis", 11);
  ExpectError(MakeNode("LogSoftmax"), {F({}, {1})}, kInvalid, "scalar");
  ExpectError(MakeNode("Softmax"), {Make<int32_t>(DType::kInt32, {1}, {1})}, kInvalid, "INT32");
}

// ----------------------------------------------------------------------------------------------
// QuantizeLinear and DequantizeLinear

Tensor U8(Shape s, std::vector<uint8_t> v) {
  return Make<uint8_t>(DType::kUInt8, std::move(s), std::move(v));
}
Tensor I8(Shape s, std::vector<int8_t> v) {
  return Make<int8_t>(DType::kInt8, std::move(s), std::move(v));
}

TEST_F(NnKernelsTest, QuantizeRoundsHalfToEvenAndSaturates) {
  const Tensor x = F({8}, {0.5f, 1.5f, 2.5f, -0.5f, 254.5f, 300, -3, 1.4f});
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear"), {x, F({}, {1}), U8({}, {0})}).ok());
  ExpectValues<uint8_t>(Out(), {8}, {0, 2, 2, 0, 254, 255, 0, 1});
  // Without a zero point the output is uint8 with zero point 0.
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear"), {x, F({}, {1})}, 10).ok());
  ExpectValues<uint8_t>(Out(), {8}, {0, 2, 2, 0, 254, 255, 0, 1});
}

TEST_F(NnKernelsTest, QuantizeInt8WithZeroPointAndScale) {
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear"),
                  {F({5}, {-0.5f, 126.5f, -200, 2.5f, -3.5f}), F({}, {1}), I8({}, {1})})
                  .ok());
  ExpectValues<int8_t>(Out(), {5}, {1, 127, -128, 3, -3});
  // 3 / 2 = 1.5 -> 2 and 5 / 2 = 2.5 -> 2.
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear"), {F({2}, {3, 5}), F({1}, {2}), I8({1}, {0})}).ok());
  ExpectValues<int8_t>(Out(), {2}, {2, 2});
}

TEST_F(NnKernelsTest, QuantizePerAxis) {
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear"),
                  {F({1, 2, 2}, {1, 2, 4, 6}), F({2}, {1, 2}), U8({2}, {0, 10})})
                  .ok());
  ExpectValues<uint8_t>(Out(), {1, 2, 2}, {1, 2, 12, 13});
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear", {{"axis", Int(-1)}}),
                  {F({2, 2}, {1, 2, 4, 6}), F({2}, {1, 2}), U8({2}, {0, 10})})
                  .ok());
  ExpectValues<uint8_t>(Out(), {2, 2}, {1, 11, 4, 13});
}

TEST_F(NnKernelsTest, QuantizeInt32Input) {
  ASSERT_TRUE(Run(MakeNode("QuantizeLinear"),
                  {Make<int32_t>(DType::kInt32, {3}, {5, 7, -1000}), F({}, {2}), I8({}, {0})})
                  .ok());
  ExpectValues<int8_t>(Out(), {3}, {2, 4, -128});
}

TEST_F(NnKernelsTest, QuantizeErrors) {
  const auto kInvalid = StatusCode::kInvalidArgument;
  const Tensor x = Iota({1, 2, 2});
  ExpectError(MakeNode("QuantizeLinear"), {x, F({2}, {1, 1})}, kInvalid, "opset 13", 10);
  ExpectError(MakeNode("QuantizeLinear"), {x, F({3}, {1, 1, 1})}, kInvalid, "per-axis");
  ExpectError(MakeNode("QuantizeLinear"), {x, F({2}, {1, 1}), U8({}, {0})}, kInvalid, "zero point");
  ExpectError(MakeNode("QuantizeLinear"), {x, F({1, 2}, {1, 1})}, kInvalid, "scale");
  ExpectError(MakeNode("QuantizeLinear", {{"axis", Int(3)}}), {x, F({2}, {1, 1})}, kInvalid,
              "axis");
  ExpectError(MakeNode("QuantizeLinear"), {x, F({}, {1}), Make<int32_t>(DType::kInt32, {}, {0})},
              kInvalid, "zero point");
  ExpectError(MakeNode("QuantizeLinear"), {x, Make<double>(DType::kFloat64, {}, {1})}, kInvalid,
              "scale");
  ExpectError(MakeNode("QuantizeLinear"), {U8({1}, {1}), F({}, {1})}, kInvalid, "UINT8");
}

TEST_F(NnKernelsTest, DequantizePerTensor) {
  ASSERT_TRUE(
      Run(MakeNode("DequantizeLinear"), {U8({4}, {0, 3, 128, 255}), F({}, {2}), U8({}, {128})}, 10)
          .ok());
  ExpectF(Out(), {4}, {-256, -250, 0, 254});
  ASSERT_TRUE(Run(MakeNode("DequantizeLinear"), {I8({2}, {-128, 127}), F({}, {0.5f})}).ok());
  ExpectF(Out(), {2}, {-64, 63.5f});
}

TEST_F(NnKernelsTest, DequantizePerAxis) {
  ASSERT_TRUE(Run(MakeNode("DequantizeLinear", {{"axis", Int(0)}}),
                  {I8({2, 2}, {1, 2, 3, 4}), F({2}, {0.5f, 2}), I8({2}, {0, 1})})
                  .ok());
  ExpectF(Out(), {2, 2}, {0.5f, 1, 4, 6});
  // Default axis 1.
  ASSERT_TRUE(Run(MakeNode("DequantizeLinear"),
                  {U8({1, 3, 1}, {10, 10, 10}), F({3}, {1, 2, 3}), U8({3}, {0, 5, 10})})
                  .ok());
  ExpectF(Out(), {1, 3, 1}, {10, 10, 0});
}

TEST_F(NnKernelsTest, DequantizeInt32) {
  const Tensor x = Make<int32_t>(DType::kInt32, {2}, {-5, 10});
  ASSERT_TRUE(Run(MakeNode("DequantizeLinear"), {x, F({}, {0.5f})}).ok());
  ExpectF(Out(), {2}, {-2.5f, 5});
  ASSERT_TRUE(
      Run(MakeNode("DequantizeLinear"), {x, F({}, {0.5f}), Make<int32_t>(DType::kInt32, {}, {0})})
          .ok());
  ExpectF(Out(), {2}, {-2.5f, 5});
  ExpectError(MakeNode("DequantizeLinear"),
              {x, F({}, {0.5f}), Make<int32_t>(DType::kInt32, {}, {3})},
              StatusCode::kInvalidArgument, "zero point of 0");
}

TEST_F(NnKernelsTest, DequantizeErrors) {
  const auto kInvalid = StatusCode::kInvalidArgument;
  ExpectError(MakeNode("DequantizeLinear"), {U8({2}, {1, 2}), F({}, {1}), I8({}, {0})}, kInvalid,
              "zero point");
  ExpectError(MakeNode("DequantizeLinear"), {U8({1, 2}, {1, 2}), F({3}, {1, 1, 1})}, kInvalid,
              "per-axis");
  ExpectError(MakeNode("DequantizeLinear"), {F({2}, {1, 2}), F({}, {1})}, kInvalid, "FP32");
  ExpectError(MakeNode("DequantizeLinear"), {U8({2}, {1, 2})}, kInvalid, "inputs");
  ExpectError(MakeNode("DequantizeLinear"), {Make<int16_t>(DType::kInt16, {1}, {1}), F({}, {1})},
              StatusCode::kUnimplemented, "INT16");
}

// ----------------------------------------------------------------------------------------------
// Robustness: malformed tensors must be rejected, not read.

TEST_F(NnKernelsTest, RejectsTensorWithoutData) {
  const Tensor bogus = Tensor::View(DType::kFloat32, {1, 1, 2, 2}, nullptr);
  ExpectError(MakeNode("GlobalMaxPool"), {bogus}, StatusCode::kInvalidArgument, "no data");
  const Tensor negative = Tensor::View(DType::kFloat32, Shape{1, -1, 2}, nullptr);
  ExpectError(MakeNode("Softmax"), {negative}, StatusCode::kInvalidArgument, "negative");
}

}  // namespace
}  // namespace larserve::runtime::ref

// Reference elementwise kernels against hand-computed results: broadcasting, integer semantics,
// activations, both Clip signatures, Cast rounding, and every rejected input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../../src/runtime/reference/registry.h"

namespace larserve::runtime::ref {
namespace {

using graph::Attribute;
using graph::Node;

// The kernels of this file only: FindKernel would also need the other kernel files.
KernelFn Kernel(const std::string& op) {
  static const KernelMap map = [] {
    KernelMap m;
    RegisterElementwiseKernels(m);
    return m;
  }();
  auto it = map.find(op);
  return it == map.end() ? nullptr : it->second;
}

template <typename T>
Tensor Make(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t = *Tensor::Create(dtype, std::move(shape));
  auto span = t.Span<T>();
  EXPECT_EQ(span.size(), values.size());
  if (span.size() == values.size()) std::copy(values.begin(), values.end(), span.begin());
  return t;
}
Tensor F32(Shape shape, const std::vector<float>& v) { return Make(DType::kFloat32, shape, v); }
Tensor I32(Shape shape, const std::vector<int32_t>& v) { return Make(DType::kInt32, shape, v); }

template <typename T>
std::vector<T> Values(const Tensor& t) {
  auto s = t.Span<T>();
  return {s.begin(), s.end()};
}

Attribute IntAttr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}
Attribute FloatAttr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

Node MakeNode(const std::string& op, std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = "n0";
  n.op_type = op;
  n.outputs = {0};
  n.attrs = std::move(attrs);
  return n;
}

struct Result {
  Status status;
  std::vector<Tensor> outputs;
};

Result RunKernel(const Node& node, std::vector<Tensor> inputs, int64_t opset = 17) {
  Result r;
  KernelFn fn = Kernel(node.op_type);
  EXPECT_NE(fn, nullptr) << node.op_type;
  if (!fn) return r;
  r.status = fn(node, opset, inputs, r.outputs);
  if (r.status.ok()) {
    EXPECT_EQ(r.outputs.size(), 1u);
  }
  return r;
}

// Runs and expects success; returns the single output.
Tensor RunOk(const Node& node, std::vector<Tensor> inputs, int64_t opset = 17) {
  Result r = RunKernel(node, std::move(inputs), opset);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  return r.outputs.empty() ? Tensor() : r.outputs[0];
}

void ExpectInvalid(const Node& node, std::vector<Tensor> inputs, int64_t opset = 17) {
  Result r = RunKernel(node, std::move(inputs), opset);
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument) << r.status.ToString();
  EXPECT_NE(r.status.message().find(node.Describe()), std::string::npos) << r.status.message();
}

TEST(ElementwiseKernelsTest, RegistersEveryOp) {
  for (const char* op :
       {"Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Cast"}) {
    EXPECT_NE(Kernel(op), nullptr) << op;
  }
}

TEST(ElementwiseKernelsTest, AddSameShape) {
  Tensor y = RunOk(MakeNode("Add"), {F32({2, 2}, {1, 2, 3, 4}), F32({2, 2}, {10, 20, 30, 40})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{11, 22, 33, 44}));
}

TEST(ElementwiseKernelsTest, BroadcastRankExtension) {
  // [2,3] - [3]: B is read as [1,3] and repeated along the rows.
  Tensor y = RunOk(MakeNode("Sub"), {F32({2, 3}, {1, 2, 3, 4, 5, 6}), F32({3}, {1, 1, 2})});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 1, 1, 3, 4, 4}));
}

TEST(ElementwiseKernelsTest, BroadcastBothDirections) {
  // [2,1] * [1,3] -> [2,3]: an outer product.
  Tensor y = RunOk(MakeNode("Mul"), {F32({2, 1}, {2, 3}), F32({1, 3}, {1, 10, 100})});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{2, 20, 200, 3, 30, 300}));
  // [3,1,2] + [2,1] -> [3,2,2].
  Tensor z =
      RunOk(MakeNode("Add"), {F32({3, 1, 2}, {0, 1, 10, 11, 20, 21}), F32({2, 1}, {100, 200})});
  EXPECT_EQ(z.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(Values<float>(z),
            (std::vector<float>{100, 101, 200, 201, 110, 111, 210, 211, 120, 121, 220, 221}));
}

TEST(ElementwiseKernelsTest, BroadcastScalar) {
  Tensor y = RunOk(MakeNode("Div"), {F32({}, {12}), F32({2, 2}, {1, 2, 3, 4})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{12, 6, 4, 3}));
  Tensor z = RunOk(MakeNode("Sub"), {F32({2}, {5, 6}), F32({}, {1})});
  EXPECT_EQ(z.shape(), (Shape{2}));
  EXPECT_EQ(Values<float>(z), (std::vector<float>{4, 5}));
}

TEST(ElementwiseKernelsTest, BroadcastZeroSized) {
  Tensor y = RunOk(MakeNode("Add"), {F32({0, 3}, {}), F32({3}, {1, 2, 3})});
  EXPECT_EQ(y.shape(), (Shape{0, 3}));
  // A 1 broadcasts against 0.
  Tensor z = RunOk(MakeNode("Add"), {F32({1, 3}, {1, 2, 3}), F32({0, 1}, {})});
  EXPECT_EQ(z.shape(), (Shape{0, 3}));
}

TEST(ElementwiseKernelsTest, Float64) {
  Tensor y = RunOk(MakeNode("Div"), {Make<double>(DType::kFloat64, {2}, {1, -3}),
                                     Make<double>(DType::kFloat64, {2}, {4, 2})});
  EXPECT_EQ(y.dtype(), DType::kFloat64);
  EXPECT_EQ(Values<double>(y), (std::vector<double>{0.25, -1.5}));
}

TEST(ElementwiseKernelsTest, IntegerDivTruncatesTowardZero) {
  Tensor y = RunOk(MakeNode("Div"), {I32({4}, {7, -7, 7, -7}), I32({4}, {2, 2, -2, -2})});
  EXPECT_EQ(Values<int32_t>(y), (std::vector<int32_t>{3, -3, -3, 3}));
  Tensor z = RunOk(MakeNode("Div"), {Make<int64_t>(DType::kInt64, {2}, {-9, 9}),
                                     Make<int64_t>(DType::kInt64, {}, {4})});
  EXPECT_EQ(Values<int64_t>(z), (std::vector<int64_t>{-2, 2}));
  // MIN / -1 overflows; it wraps instead of trapping.
  const int32_t min = std::numeric_limits<int32_t>::min();
  Tensor w = RunOk(MakeNode("Div"), {I32({1}, {min}), I32({1}, {-1})});
  EXPECT_EQ(Values<int32_t>(w), (std::vector<int32_t>{min}));
}

TEST(ElementwiseKernelsTest, IntegerDivByZeroIsAnError) {
  ExpectInvalid(MakeNode("Div"), {I32({2}, {1, 2}), I32({2}, {1, 0})});
}

TEST(ElementwiseKernelsTest, SmallIntegersWrap) {
  Tensor y = RunOk(MakeNode("Sub"), {Make<uint8_t>(DType::kUInt8, {2}, {1, 200}),
                                     Make<uint8_t>(DType::kUInt8, {2}, {2, 100})});
  EXPECT_EQ(Values<uint8_t>(y), (std::vector<uint8_t>{255, 100}));
  Tensor z = RunOk(MakeNode("Add"), {Make<int8_t>(DType::kInt8, {2}, {127, -5}),
                                     Make<int8_t>(DType::kInt8, {2}, {1, 3})});
  EXPECT_EQ(Values<int8_t>(z), (std::vector<int8_t>{-128, -2}));
  Tensor w = RunOk(MakeNode("Mul"), {Make<int64_t>(DType::kInt64, {1}, {INT64_MAX}),
                                     Make<int64_t>(DType::kInt64, {1}, {2})});
  EXPECT_EQ(Values<int64_t>(w), (std::vector<int64_t>{-2}));
}

TEST(ElementwiseKernelsTest, Float16ArithmeticRoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to the even 1.
  // 1 + 3*2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties go to the even 1 + 2^-9.
  Tensor y = RunOk(MakeNode("Add"), {Make<uint16_t>(DType::kFloat16, {2}, {0x3C00, 0x3C00}),
                                     Make<uint16_t>(DType::kFloat16, {2}, {0x1000, 0x1600})});
  EXPECT_EQ(y.dtype(), DType::kFloat16);
  EXPECT_EQ(Values<uint16_t>(y), (std::vector<uint16_t>{0x3C00, 0x3C02}));
}

TEST(ElementwiseKernelsTest, BinaryRejectsBadInputs) {
  ExpectInvalid(MakeNode("Add"), {F32({2, 3}, {1, 2, 3, 4, 5, 6}), F32({2}, {1, 2})});
  ExpectInvalid(MakeNode("Mul"), {F32({2}, {1, 2}), I32({2}, {1, 2})});
  ExpectInvalid(MakeNode("Add"),
                {Make<bool>(DType::kBool, {1}, {true}), Make<bool>(DType::kBool, {1}, {true})});
  ExpectInvalid(MakeNode("Add"), {F32({1}, {1})});
  ExpectInvalid(MakeNode("Add"), {F32({1}, {1}), Tensor()});
  // A shape with an unknown dimension cannot be read.
  float buf[1] = {0};
  ExpectInvalid(MakeNode("Add"), {Tensor::View(DType::kFloat32, Shape{-1}, buf), F32({1}, {1})});
}

TEST(ElementwiseKernelsTest, Relu) {
  Tensor y = RunOk(MakeNode("Relu"), {F32({4}, {-1, 0, 2.5f, NAN})});
  auto v = Values<float>(y);
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[1], 0);
  EXPECT_EQ(v[2], 2.5f);
  EXPECT_TRUE(std::isnan(v[3]));
  Tensor z = RunOk(MakeNode("Relu"), {I32({3}, {-3, 0, 3})});
  EXPECT_EQ(Values<int32_t>(z), (std::vector<int32_t>{0, 0, 3}));
  ExpectInvalid(MakeNode("Relu"), {Make<uint8_t>(DType::kUInt8, {1}, {1})});
}

TEST(ElementwiseKernelsTest, LeakyRelu) {
  Tensor y = RunOk(MakeNode("LeakyRelu"), {F32({3}, {-2, 0, 3})});
  EXPECT_EQ(Values<float>(y), (std::vector<float>{-0.02f, 0, 3}));
  Tensor z = RunOk(MakeNode("LeakyRelu", {{"alpha", FloatAttr(0.5f)}}), {F32({2}, {-2, 4})});
  EXPECT_EQ(Values<float>(z), (std::vector<float>{-1, 4}));
  ExpectInvalid(MakeNode("LeakyRelu"), {I32({1}, {1})});
}

TEST(ElementwiseKernelsTest, SigmoidAndTanh) {
  Tensor y = RunOk(MakeNode("Sigmoid"), {F32({4}, {0, 1, -100, 100})});
  auto v = Values<float>(y);
  EXPECT_FLOAT_EQ(v[0], 0.5f);
  EXPECT_NEAR(v[1], 0.7310586f, 1e-6);
  EXPECT_NEAR(v[2], 0.0f, 1e-30);
  EXPECT_FALSE(std::isnan(v[2]));
  EXPECT_EQ(v[3], 1.0f);
  Tensor t = RunOk(MakeNode("Tanh"), {Make<double>(DType::kFloat64, {2}, {0.5, -20})});
  EXPECT_DOUBLE_EQ(Values<double>(t)[0], std::tanh(0.5));
  EXPECT_EQ(Values<double>(t)[1], -1.0);
  // 16-bit floats go through float: tanh(0) = 0, sigmoid(0) = 0.5 (0x3800).
  Tensor h = RunOk(MakeNode("Sigmoid"), {Make<uint16_t>(DType::kFloat16, {1}, {0})});
  EXPECT_EQ(Values<uint16_t>(h)[0], 0x3800);
  ExpectInvalid(MakeNode("Sigmoid"), {I32({1}, {1})});
  ExpectInvalid(MakeNode("Tanh"), {Make<int64_t>(DType::kInt64, {1}, {1})});
}

TEST(ElementwiseKernelsTest, ClipBeforeOpset11UsesAttributes) {
  Node n = MakeNode("Clip", {{"min", FloatAttr(-1)}, {"max", FloatAttr(2)}});
  Tensor y = RunOk(n, {F32({4}, {-5, 0, 1.5f, 9})}, /*opset=*/6);
  EXPECT_EQ(Values<float>(y), (std::vector<float>{-1, 0, 1.5f, 2}));
  // Defaults are the float limits, so only infinities change.
  Tensor z = RunOk(MakeNode("Clip"), {F32({2}, {-INFINITY, 3})}, /*opset=*/6);
  EXPECT_EQ(Values<float>(z), (std::vector<float>{std::numeric_limits<float>::lowest(), 3}));
  ExpectInvalid(MakeNode("Clip"), {I32({1}, {1})}, /*opset=*/6);
}

TEST(ElementwiseKernelsTest, ClipFromOpset11UsesOptionalInputs) {
  const Tensor x = F32({5}, {-5, -1, 0, 1, 5});
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Clip"), {x, F32({}, {-2}), F32({}, {2})}, 11)),
            (std::vector<float>{-2, -1, 0, 1, 2}));
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Clip"), {x, F32({}, {0})}, 13)),
            (std::vector<float>{0, 0, 0, 1, 5}));
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Clip"), {x, Tensor(), F32({}, {0})}, 13)),
            (std::vector<float>{-5, -1, 0, 0, 0}));
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Clip"), {x}, 13)), (std::vector<float>{-5, -1, 0, 1, 5}));
  // min > max: every element becomes max.
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Clip"), {x, F32({}, {3}), F32({}, {1})}, 13)),
            (std::vector<float>{1, 1, 1, 1, 1}));
  // The bound attributes of old opsets are ignored.
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Clip", {{"min", FloatAttr(0)}}), {x}, 11)),
            (std::vector<float>{-5, -1, 0, 1, 5}));
  Tensor i8 = RunOk(
      MakeNode("Clip"),
      {Make<int8_t>(DType::kInt8, {3}, {-128, 5, 127}), Make<int8_t>(DType::kInt8, {}, {-3})}, 12);
  EXPECT_EQ(Values<int8_t>(i8), (std::vector<int8_t>{-3, 5, 127}));
}

TEST(ElementwiseKernelsTest, ClipRejectsBadBounds) {
  const Tensor x = F32({2}, {1, 2});
  ExpectInvalid(MakeNode("Clip"), {x, F32({2}, {0, 1})}, 13);
  ExpectInvalid(MakeNode("Clip"), {x, Make<double>(DType::kFloat64, {}, {0})}, 13);
  ExpectInvalid(MakeNode("Clip"), {Make<bool>(DType::kBool, {1}, {true})}, 13);
}

Node CastTo(int64_t onnx_type) { return MakeNode("Cast", {{"to", IntAttr(onnx_type)}}); }

TEST(ElementwiseKernelsTest, CastFloatToIntTruncates) {
  const Tensor x = F32({5}, {-1.7f, -0.5f, 0, 2.9f, 100});
  EXPECT_EQ(Values<int32_t>(RunOk(CastTo(6), {x})), (std::vector<int32_t>{-1, 0, 0, 2, 100}));
  EXPECT_EQ(Values<int64_t>(RunOk(CastTo(7), {x})), (std::vector<int64_t>{-1, 0, 0, 2, 100}));
  // Out of range is undefined in ONNX; ours saturates and maps NaN to 0.
  Tensor y = RunOk(CastTo(2), {F32({3}, {-3, 300, NAN})});
  EXPECT_EQ(y.dtype(), DType::kUInt8);
  EXPECT_EQ(Values<uint8_t>(y), (std::vector<uint8_t>{0, 255, 0}));
}

TEST(ElementwiseKernelsTest, CastIntegersAndBool) {
  Tensor y = RunOk(CastTo(3), {I32({3}, {300, -129, 5})});
  EXPECT_EQ(y.dtype(), DType::kInt8);
  EXPECT_EQ(Values<int8_t>(y), (std::vector<int8_t>{44, 127, 5}));
  Tensor b = RunOk(CastTo(9), {F32({4}, {0, -0.0f, 0.25f, NAN})});
  EXPECT_EQ(b.dtype(), DType::kBool);
  EXPECT_EQ(Values<bool>(b), (std::vector<bool>{false, false, true, true}));
  Tensor f = RunOk(CastTo(11), {Make<bool>(DType::kBool, {2}, {true, false})});
  EXPECT_EQ(Values<double>(f), (std::vector<double>{1, 0}));
  Tensor s = RunOk(CastTo(5), {Make<uint16_t>(DType::kUInt16, {2}, {65535, 7})});
  EXPECT_EQ(Values<int16_t>(s), (std::vector<int16_t>{-1, 7}));
  Tensor i = RunOk(CastTo(1), {Make<int64_t>(DType::kInt64, {2}, {-3, 16777217})});
  EXPECT_EQ(Values<float>(i), (std::vector<float>{-3, 16777216}));
}

TEST(ElementwiseKernelsTest, CastToFloat16RoundsToNearestEven) {
  const float kTie = 1.0f + std::ldexp(1.0f, -11);  // halfway between 1 and 1 + 2^-10
  Tensor y =
      RunOk(CastTo(10),
            {F32({9}, {1, kTie, kTie + std::ldexp(1.0f, -20), -2, 65519, 65520,
                       std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), 3 * std::ldexp(1.0f, -25)})});
  EXPECT_EQ(y.dtype(), DType::kFloat16);
  EXPECT_EQ(Values<uint16_t>(y), (std::vector<uint16_t>{
                                     0x3C00,  // 1
                                     0x3C00,  // tie -> even
                                     0x3C01,  // just above the tie rounds up
                                     0xC000,  // -2
                                     0x7BFF,  // 65519 -> 65504, the largest half
                                     0x7C00,  // 65520 is the tie with 65536: infinity
                                     0x0001,  // smallest subnormal
                                     0x0000,  // half of it ties to even zero
                                     0x0002,  // 1.5 subnormal ulps ties to even 2
                                 }));
  // From double directly: via float, 1 + 2^-11 + 2^-40 would first round onto the tie and then
  // down to 1.
  Tensor d = RunOk(CastTo(10), {Make<double>(DType::kFloat64, {1},
                                             {1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)})});
  EXPECT_EQ(Values<uint16_t>(d)[0], 0x3C01);
  Tensor n = RunOk(CastTo(10), {F32({3}, {INFINITY, -INFINITY, NAN})});
  EXPECT_EQ(Values<uint16_t>(n)[0], 0x7C00);
  EXPECT_EQ(Values<uint16_t>(n)[1], 0xFC00);
  EXPECT_EQ(Values<uint16_t>(n)[2] & 0x7C00, 0x7C00);
  EXPECT_NE(Values<uint16_t>(n)[2] & 0x03FF, 0);
}

TEST(ElementwiseKernelsTest, CastFromFloat16) {
  Tensor y = RunOk(
      CastTo(1), {Make<uint16_t>(DType::kFloat16, {5}, {0x3C00, 0xC500, 0x0001, 0x7BFF, 0xFC00})});
  EXPECT_EQ(Values<float>(y), (std::vector<float>{1, -5, std::ldexp(1.0f, -24), 65504, -INFINITY}));
  Tensor i = RunOk(CastTo(6), {Make<uint16_t>(DType::kFloat16, {2}, {0x4170, 0xC170})});
  EXPECT_EQ(Values<int32_t>(i), (std::vector<int32_t>{2, -2}));  // +-2.71875 truncated
}

TEST(ElementwiseKernelsTest, CastBFloat16) {
  // 0x3ef5eeb0 lies above the midpoint of bfloat16 neighbours 0x3ef5 and 0x3ef6.
  uint32_t bits = 0x3ef5eeb0;
  float f;
  std::memcpy(&f, &bits, 4);
  Tensor y = RunOk(CastTo(16), {F32({2}, {f, 1})});
  EXPECT_EQ(y.dtype(), DType::kBFloat16);
  EXPECT_EQ(Values<uint16_t>(y), (std::vector<uint16_t>{0x3ef6, 0x3f80}));
  // 2^60 + 2^52 + 1 is just above a bfloat16 tie; a plain int64 -> double conversion would land
  // exactly on the tie and round down.
  Tensor z =
      RunOk(CastTo(16),
            {Make<int64_t>(DType::kInt64, {1}, {(int64_t{1} << 60) + (int64_t{1} << 52) + 1})});
  EXPECT_EQ(Values<uint16_t>(z)[0], 0x5D81);
}

TEST(ElementwiseKernelsTest, CastErrors) {
  const Tensor x = F32({1}, {1});
  ExpectInvalid(MakeNode("Cast"), {x});
  ExpectInvalid(CastTo(99), {x});
  Result r = RunKernel(CastTo(8), {x});
  EXPECT_EQ(r.status.code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace larserve::runtime::ref

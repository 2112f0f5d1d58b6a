// Reference shape and layout kernels against hand-computed results, for both the attribute and
// the input form of version-dependent operands, and every rejected input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
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
    RegisterTensorKernels(m);
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
Tensor I64(Shape shape, const std::vector<int64_t>& v) { return Make(DType::kInt64, shape, v); }
// 0, 1, 2, ... n-1 as float, shaped.
Tensor Iota(Shape shape) {
  Tensor t = *Tensor::Create(DType::kFloat32, std::move(shape));
  float v = 0;
  for (float& x : t.Span<float>()) x = v++;
  return t;
}

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
Attribute IntsAttr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
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
  return r;
}

Tensor RunOk(const Node& node, std::vector<Tensor> inputs, int64_t opset = 17) {
  Result r = RunKernel(node, std::move(inputs), opset);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  return r.outputs.empty() ? Tensor() : r.outputs[0];
}

void ExpectCode(StatusCode code, const Node& node, std::vector<Tensor> inputs, int64_t opset = 17) {
  Result r = RunKernel(node, std::move(inputs), opset);
  EXPECT_EQ(r.status.code(), code) << r.status.ToString();
  EXPECT_NE(r.status.message().find(node.Describe()), std::string::npos) << r.status.message();
}
void ExpectInvalid(const Node& node, std::vector<Tensor> inputs, int64_t opset = 17) {
  ExpectCode(StatusCode::kInvalidArgument, node, std::move(inputs), opset);
}

TEST(TensorKernelsTest, RegistersEveryOp) {
  for (const char* op : {"Flatten", "Reshape", "Transpose", "Concat", "Shape", "Gather",
                         "Unsqueeze", "Squeeze", "Identity", "Dropout", "Constant"}) {
    EXPECT_NE(Kernel(op), nullptr) << op;
  }
}

TEST(TensorKernelsTest, Flatten) {
  const Tensor x = Iota({2, 3, 4});
  EXPECT_EQ(RunOk(MakeNode("Flatten"), {x}).shape(), (Shape{2, 12}));
  EXPECT_EQ(RunOk(MakeNode("Flatten", {{"axis", IntAttr(0)}}), {x}).shape(), (Shape{1, 24}));
  EXPECT_EQ(RunOk(MakeNode("Flatten", {{"axis", IntAttr(3)}}), {x}).shape(), (Shape{24, 1}));
  Tensor y = RunOk(MakeNode("Flatten", {{"axis", IntAttr(-1)}}), {x});
  EXPECT_EQ(y.shape(), (Shape{6, 4}));
  EXPECT_EQ(Values<float>(y), Values<float>(x));
  EXPECT_EQ(RunOk(MakeNode("Flatten", {{"axis", IntAttr(-3)}}), {x}).shape(), (Shape{1, 24}));
  ExpectInvalid(MakeNode("Flatten", {{"axis", IntAttr(4)}}), {x});
  ExpectInvalid(MakeNode("Flatten", {{"axis", IntAttr(-4)}}), {x});
  ExpectInvalid(MakeNode("Flatten"), {});
}

TEST(TensorKernelsTest, ReshapeZeroCopiesAndMinusOneInfers) {
  const Tensor x = Iota({2, 3, 4});
  Tensor y = RunOk(MakeNode("Reshape"), {x, I64({2}, {0, -1})});
  EXPECT_EQ(y.shape(), (Shape{2, 12}));
  EXPECT_EQ(Values<float>(y), Values<float>(x));
  EXPECT_EQ(RunOk(MakeNode("Reshape"), {x, I64({3}, {-1, 0, 2})}).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(RunOk(MakeNode("Reshape"), {x, I64({1}, {-1})}).shape(), (Shape{24}));
  EXPECT_EQ(RunOk(MakeNode("Reshape"), {x, I64({4}, {1, 2, 12, 1})}).shape(), (Shape{1, 2, 12, 1}));
  // To a scalar and back.
  EXPECT_EQ(RunOk(MakeNode("Reshape"), {F32({1, 1}, {5}), I64({0}, {})}).shape(), (Shape{}));
}

TEST(TensorKernelsTest, ReshapeAllowZero) {
  const Tensor empty = F32({0, 3}, {});
  Node allow = MakeNode("Reshape", {{"allowzero", IntAttr(1)}});
  // With allowzero a 0 is a literal zero-sized dimension...
  EXPECT_EQ(RunOk(allow, {empty, I64({2}, {3, 0})}, 14).shape(), (Shape{3, 0}));
  // ...and without it (or before opset 14) it copies the input dimension.
  EXPECT_EQ(RunOk(MakeNode("Reshape"), {Iota({2, 3}), I64({2}, {0, 3})}, 14).shape(),
            (Shape{2, 3}));
  EXPECT_EQ(RunOk(allow, {Iota({2, 3}), I64({2}, {0, 3})}, 13).shape(), (Shape{2, 3}));
  ExpectInvalid(allow, {Iota({2, 3}), I64({2}, {0, 3})}, 14);
  ExpectInvalid(allow, {empty, I64({2}, {0, -1})}, 14);
}

TEST(TensorKernelsTest, ReshapeRejectsBadTargets) {
  const Tensor x = Iota({2, 3});
  ExpectInvalid(MakeNode("Reshape"), {x, I64({2}, {-1, -1})});
  ExpectInvalid(MakeNode("Reshape"), {x, I64({2}, {-2, 3})});
  ExpectInvalid(MakeNode("Reshape"), {x, I64({2}, {4, 2})});
  ExpectInvalid(MakeNode("Reshape"), {x, I64({2}, {4, -1})});
  ExpectInvalid(MakeNode("Reshape"), {x, I64({3}, {1, 6, 0})});  // no input dim 2 to copy
  ExpectInvalid(MakeNode("Reshape"), {x, I64({2}, {1LL << 62, 1LL << 62})});
  ExpectInvalid(MakeNode("Reshape"), {F32({0, 3}, {}), I64({2}, {0, -1})});
  ExpectInvalid(MakeNode("Reshape"), {x, Make<int32_t>(DType::kInt32, {2}, {3, 2})});
  ExpectInvalid(MakeNode("Reshape"), {x, I64({1, 2}, {3, 2})});
  ExpectInvalid(MakeNode("Reshape"), {x});
}

TEST(TensorKernelsTest, Transpose) {
  Tensor y = RunOk(MakeNode("Transpose"), {Iota({2, 3})});
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // out[i][j][k] = x[j][k][i] for perm [2, 0, 1].
  Tensor z = RunOk(MakeNode("Transpose", {{"perm", IntsAttr({2, 0, 1})}}), {Iota({2, 2, 3})});
  EXPECT_EQ(z.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(Values<float>(z), (std::vector<float>{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}));
  // Any dtype: bytes move as whole elements.
  Tensor h = RunOk(MakeNode("Transpose"),
                   {Make<uint16_t>(DType::kFloat16, {2, 2}, {0x1111, 0x2222, 0x3333, 0x4444})});
  EXPECT_EQ(h.dtype(), DType::kFloat16);
  EXPECT_EQ(Values<uint16_t>(h), (std::vector<uint16_t>{0x1111, 0x3333, 0x2222, 0x4444}));
  Tensor b = RunOk(MakeNode("Transpose"), {Make<bool>(DType::kBool, {1, 2}, {true, false})});
  EXPECT_EQ(b.shape(), (Shape{2, 1}));
  EXPECT_EQ(Values<bool>(b), (std::vector<bool>{true, false}));
}

TEST(TensorKernelsTest, TransposeRejectsBadPerm) {
  const Tensor x = Iota({2, 3});
  ExpectInvalid(MakeNode("Transpose", {{"perm", IntsAttr({0, 0})}}), {x});
  ExpectInvalid(MakeNode("Transpose", {{"perm", IntsAttr({0, 2})}}), {x});
  ExpectInvalid(MakeNode("Transpose", {{"perm", IntsAttr({-1, 0})}}), {x});
  ExpectInvalid(MakeNode("Transpose", {{"perm", IntsAttr({1, 0, 2})}}), {x});
}

TEST(TensorKernelsTest, Concat) {
  const Tensor a = Iota({2, 2});
  const Tensor b = F32({2, 1}, {10, 11});
  Tensor y = RunOk(MakeNode("Concat", {{"axis", IntAttr(1)}}), {a, b});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 1, 10, 2, 3, 11}));
  Tensor z = RunOk(MakeNode("Concat", {{"axis", IntAttr(-2)}}), {a, F32({1, 2}, {7, 8}), a});
  EXPECT_EQ(z.shape(), (Shape{5, 2}));
  EXPECT_EQ(Values<float>(z), (std::vector<float>{0, 1, 2, 3, 7, 8, 0, 1, 2, 3}));
  Tensor e = RunOk(MakeNode("Concat", {{"axis", IntAttr(0)}}), {I64({0}, {}), I64({2}, {4, 5})});
  EXPECT_EQ(Values<int64_t>(e), (std::vector<int64_t>{4, 5}));
}

TEST(TensorKernelsTest, ConcatRejectsBadInputs) {
  const Tensor a = Iota({2, 2});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(0)}}), {a, F32({2, 1}, {1, 2})});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(0)}}), {a, Iota({2, 2, 1})});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(0)}}), {a, I64({2, 2}, {1, 2, 3, 4})});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(2)}}), {a, a});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(-3)}}), {a, a});
  ExpectInvalid(MakeNode("Concat"), {a, a});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(0)}}), {F32({}, {1}), F32({}, {2})});
  ExpectInvalid(MakeNode("Concat", {{"axis", IntAttr(0)}}), {});
}

TEST(TensorKernelsTest, Shape) {
  const Tensor x = Iota({2, 3, 4, 5});
  Tensor y = RunOk(MakeNode("Shape"), {x}, 13);
  EXPECT_EQ(y.dtype(), DType::kInt64);
  EXPECT_EQ(Values<int64_t>(y), (std::vector<int64_t>{2, 3, 4, 5}));
  auto slice = [&](std::map<std::string, Attribute> attrs) {
    return Values<int64_t>(RunOk(MakeNode("Shape", std::move(attrs)), {x}, 15));
  };
  EXPECT_EQ(slice({{"start", IntAttr(1)}}), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(slice({{"end", IntAttr(-1)}}), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(slice({{"start", IntAttr(1)}, {"end", IntAttr(3)}}), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(slice({{"start", IntAttr(-10)}}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(slice({{"end", IntAttr(10)}}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(slice({{"start", IntAttr(3)}, {"end", IntAttr(1)}}), (std::vector<int64_t>{}));
  // Before opset 15 start/end do not exist.
  EXPECT_EQ(Values<int64_t>(RunOk(MakeNode("Shape", {{"start", IntAttr(1)}}), {x}, 14)).size(), 4u);
  EXPECT_EQ(RunOk(MakeNode("Shape"), {F32({}, {1})}).shape(), (Shape{0}));
}

TEST(TensorKernelsTest, GatherAxis0NegativeIndices) {
  const Tensor data = Iota({3, 2});
  Tensor y = RunOk(MakeNode("Gather"), {data, I64({2, 2}, {0, -1, 2, -3})});
  EXPECT_EQ(y.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{0, 1, 4, 5, 4, 5, 0, 1}));
  // A scalar index removes the axis.
  Tensor s = RunOk(MakeNode("Gather"), {data, I64({}, {1})});
  EXPECT_EQ(s.shape(), (Shape{2}));
  EXPECT_EQ(Values<float>(s), (std::vector<float>{2, 3}));
}

TEST(TensorKernelsTest, GatherAxis1Int32Indices) {
  const Tensor data = Iota({2, 3});
  Tensor y = RunOk(MakeNode("Gather", {{"axis", IntAttr(1)}}),
                   {data, Make<int32_t>(DType::kInt32, {2}, {2, 0})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{2, 0, 5, 3}));
  Tensor u = RunOk(MakeNode("Gather", {{"axis", IntAttr(-1)}}),
                   {Make<uint8_t>(DType::kUInt8, {1, 3}, {7, 8, 9}), I64({1}, {-1})});
  EXPECT_EQ(u.dtype(), DType::kUInt8);
  EXPECT_EQ(Values<uint8_t>(u), (std::vector<uint8_t>{9}));
}

TEST(TensorKernelsTest, GatherRejectsBadInputs) {
  const Tensor data = Iota({3, 2});
  ExpectInvalid(MakeNode("Gather"), {data, I64({1}, {3})});
  ExpectInvalid(MakeNode("Gather"), {data, I64({1}, {-4})});
  ExpectInvalid(MakeNode("Gather"), {data, F32({1}, {0})});
  ExpectInvalid(MakeNode("Gather", {{"axis", IntAttr(2)}}), {data, I64({1}, {0})});
  ExpectInvalid(MakeNode("Gather"), {F32({}, {1}), I64({1}, {0})});
}

TEST(TensorKernelsTest, UnsqueezeAttributeBeforeOpset13) {
  const Tensor x = Iota({2, 3});
  Tensor y = RunOk(MakeNode("Unsqueeze", {{"axes", IntsAttr({0, 3})}}), {x}, 11);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 3, 1}));
  EXPECT_EQ(Values<float>(y), Values<float>(x));
  EXPECT_EQ(RunOk(MakeNode("Unsqueeze", {{"axes", IntsAttr({-1})}}), {x}, 11).shape(),
            (Shape{2, 3, 1}));
  ExpectInvalid(MakeNode("Unsqueeze"), {x}, 11);
  ExpectInvalid(MakeNode("Unsqueeze", {{"axes", IntsAttr({1, 1})}}), {x}, 11);
  ExpectInvalid(MakeNode("Unsqueeze", {{"axes", IntsAttr({3})}}), {x}, 11);
}

TEST(TensorKernelsTest, UnsqueezeInputFromOpset13) {
  const Tensor x = Iota({2, 3});
  // Negative axes count in the output rank (4): -1 is the last, -4 the first.
  EXPECT_EQ(RunOk(MakeNode("Unsqueeze"), {x, I64({2}, {-1, -4})}, 13).shape(), (Shape{1, 2, 3, 1}));
  EXPECT_EQ(RunOk(MakeNode("Unsqueeze"), {x, I64({2}, {2, 1})}, 13).shape(), (Shape{2, 1, 1, 3}));
  EXPECT_EQ(RunOk(MakeNode("Unsqueeze"), {F32({}, {1}), I64({1}, {0})}, 13).shape(), (Shape{1}));
  ExpectInvalid(MakeNode("Unsqueeze"), {x}, 13);
  ExpectInvalid(MakeNode("Unsqueeze"), {x, I64({1}, {-5})}, 13);
  ExpectInvalid(MakeNode("Unsqueeze"), {x, Make<int32_t>(DType::kInt32, {1}, {0})}, 13);
  // The attribute no longer exists.
  ExpectInvalid(MakeNode("Unsqueeze", {{"axes", IntsAttr({0})}}), {x}, 13);
}

TEST(TensorKernelsTest, SqueezeBothOpsetStyles) {
  const Tensor x = Iota({1, 3, 1, 2});
  EXPECT_EQ(RunOk(MakeNode("Squeeze", {{"axes", IntsAttr({0})}}), {x}, 11).shape(),
            (Shape{3, 1, 2}));
  EXPECT_EQ(RunOk(MakeNode("Squeeze"), {x}, 11).shape(), (Shape{3, 2}));
  Tensor y = RunOk(MakeNode("Squeeze"), {x, I64({1}, {-2})}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(Values<float>(y), Values<float>(x));
  EXPECT_EQ(RunOk(MakeNode("Squeeze"), {x, Tensor()}, 13).shape(), (Shape{3, 2}));
  EXPECT_EQ(RunOk(MakeNode("Squeeze"), {F32({1, 1}, {4})}, 13).shape(), (Shape{}));
}

TEST(TensorKernelsTest, SqueezeRejectsBadAxes) {
  const Tensor x = Iota({1, 3, 1, 2});
  ExpectInvalid(MakeNode("Squeeze", {{"axes", IntsAttr({1})}}), {x}, 11);
  ExpectInvalid(MakeNode("Squeeze"), {x, I64({1}, {3})}, 13);
  ExpectInvalid(MakeNode("Squeeze"), {x, I64({1}, {4})}, 13);
  ExpectInvalid(MakeNode("Squeeze"), {x, I64({2}, {0, -4})}, 13);
}

TEST(TensorKernelsTest, IdentityCopies) {
  const Tensor x = Make<int64_t>(DType::kInt64, {2}, {5, 6});
  Tensor y = RunOk(MakeNode("Identity"), {x});
  EXPECT_EQ(Values<int64_t>(y), (std::vector<int64_t>{5, 6}));
  EXPECT_NE(y.data(), x.data());
  ExpectInvalid(MakeNode("Identity"), {Tensor()});
}

Node DropoutWithMask() {
  Node n = MakeNode("Dropout");
  n.outputs = {1, 2};
  return n;
}

TEST(TensorKernelsTest, DropoutInferenceAndMask) {
  const Tensor x = F32({2, 2}, {1, -2, 3, -4});
  Result r = RunKernel(DropoutWithMask(), {x, F32({}, {0.3f})}, 13);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(Values<float>(r.outputs[0]), Values<float>(x));
  EXPECT_EQ(r.outputs[1].dtype(), DType::kBool);
  EXPECT_EQ(r.outputs[1].shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<bool>(r.outputs[1]), (std::vector<bool>{true, true, true, true}));
  // Without a mask output only the data comes back.
  Result plain = RunKernel(MakeNode("Dropout"), {x}, 13);
  ASSERT_TRUE(plain.status.ok());
  EXPECT_EQ(plain.outputs.size(), 1u);
  // Opset 11: ratio is an attribute, and there is no training_mode.
  Result old = RunKernel(MakeNode("Dropout", {{"ratio", FloatAttr(0.2f)}}), {x}, 11);
  ASSERT_TRUE(old.status.ok());
  EXPECT_EQ(Values<float>(old.outputs[0]), Values<float>(x));
}

TEST(TensorKernelsTest, DropoutTrainingMode) {
  const Tensor x = F32({2}, {1, 2});
  const Tensor yes = Make<bool>(DType::kBool, {}, {true});
  const Tensor no = Make<bool>(DType::kBool, {}, {false});
  EXPECT_TRUE(RunKernel(MakeNode("Dropout"), {x, F32({}, {0.5f}), no}, 13).status.ok());
  // Training with ratio 0 keeps everything, so it is supported.
  EXPECT_TRUE(RunKernel(MakeNode("Dropout"), {x, F32({}, {0}), yes}, 13).status.ok());
  ExpectCode(StatusCode::kUnimplemented, MakeNode("Dropout"), {x, Tensor(), yes}, 13);
  ExpectInvalid(MakeNode("Dropout"), {x, F32({}, {1.5f})}, 13);
  // float16 ratios: 0x3800 is 0.5, 0x4000 is 2.
  EXPECT_TRUE(RunKernel(MakeNode("Dropout"), {x, Make<uint16_t>(DType::kFloat16, {}, {0x3800})}, 13)
                  .status.ok());
  ExpectInvalid(MakeNode("Dropout"), {x, Make<uint16_t>(DType::kFloat16, {}, {0x4000})}, 13);
  ExpectInvalid(MakeNode("Dropout"), {x, I64({}, {0})}, 13);
  ExpectInvalid(MakeNode("Dropout"), {x, Tensor(), F32({}, {1})}, 13);
}

TEST(TensorKernelsTest, ConstantValueAttributes) {
  Attribute t;
  t.kind = Attribute::Kind::kTensor;
  t.t = Make<int32_t>(DType::kInt32, {2}, {3, 4});
  Tensor y = RunOk(MakeNode("Constant", {{"value", t}}), {});
  EXPECT_EQ(y.dtype(), DType::kInt32);
  EXPECT_EQ(Values<int32_t>(y), (std::vector<int32_t>{3, 4}));
  EXPECT_NE(y.data(), t.t.data());

  Tensor f = RunOk(MakeNode("Constant", {{"value_float", FloatAttr(2.5f)}}), {});
  EXPECT_EQ(f.shape(), (Shape{}));
  EXPECT_EQ(Values<float>(f), (std::vector<float>{2.5f}));
  Attribute fs;
  fs.kind = Attribute::Kind::kFloats;
  fs.floats = {1, 2};
  EXPECT_EQ(Values<float>(RunOk(MakeNode("Constant", {{"value_floats", fs}}), {})),
            (std::vector<float>{1, 2}));
  Tensor i = RunOk(MakeNode("Constant", {{"value_int", IntAttr(-7)}}), {});
  EXPECT_EQ(i.dtype(), DType::kInt64);
  EXPECT_EQ(i.shape(), (Shape{}));
  EXPECT_EQ(Values<int64_t>(i), (std::vector<int64_t>{-7}));
  Tensor is = RunOk(MakeNode("Constant", {{"value_ints", IntsAttr({1, 2, 3})}}), {});
  EXPECT_EQ(is.shape(), (Shape{3}));
  EXPECT_EQ(Values<int64_t>(is), (std::vector<int64_t>{1, 2, 3}));
}

TEST(TensorKernelsTest, ConstantErrors) {
  Attribute s;
  s.kind = Attribute::Kind::kString;
  s.s = "hi";
  ExpectCode(StatusCode::kUnimplemented, MakeNode("Constant", {{"value_string", s}}), {});
  Attribute sparse;
  sparse.kind = Attribute::Kind::kTensor;
  ExpectCode(StatusCode::kUnimplemented, MakeNode("Constant", {{"sparse_value", sparse}}), {});
  ExpectInvalid(MakeNode("Constant"), {});
  ExpectInvalid(MakeNode("Constant", {{"value_int", IntAttr(1)}, {"value_float", FloatAttr(1)}}),
                {});
  ExpectInvalid(MakeNode("Constant", {{"value", IntAttr(1)}}), {});
  ExpectInvalid(MakeNode("Constant", {{"value_ints", IntAttr(1)}}), {});
}

}  // namespace
}  // namespace larserve::runtime::ref

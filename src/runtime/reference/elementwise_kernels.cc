// Reference elementwise kernels: Add/Sub/Mul/Div with numpy broadcasting, the activations Relu,
// LeakyRelu, Sigmoid and Tanh, Clip and Cast. One plain loop per op; every optimised backend is
// compared with these, so clarity wins over speed.
//
// 16-bit floats (float16, bfloat16) are stored as bit patterns and computed in float: for + - * /
// a float result rounded once more to 16 bits equals the correctly rounded 16-bit result (float has
// more than twice the precision plus two bits), and for the activations the difference is far
// below any tolerance a 16-bit model is judged by.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernel_util.h"
#include "registry.h"

namespace larserve::runtime::ref {
namespace {

struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T>
constexpr bool kIsNarrowFloat = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// Exponent and explicit mantissa widths of the 16-bit formats.
template <typename T>
constexpr int kMantBits = std::is_same_v<T, Float16> ? 10 : 7;
template <typename T>
constexpr int kExpBits = std::is_same_v<T, Float16> ? 5 : 8;

// Rounds x to the binary float format with `mant_bits` explicit mantissa bits and `exp_bits`
// exponent bits (IEEE layout, ties to even, gradual underflow, overflow to infinity) and returns
// its bit pattern. Going straight from double avoids the double rounding of double->float->half.
uint16_t RoundToNarrowFloat(double x, int mant_bits, int exp_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint32_t sign = std::signbit(x) ? 1u << (mant_bits + exp_bits) : 0u;
  const uint32_t exp_all_ones = ((1u << exp_bits) - 1) << mant_bits;
  if (std::isnan(x)) return static_cast<uint16_t>(sign | exp_all_ones | (1u << (mant_bits - 1)));
  const double a = std::fabs(x);
  if (std::isinf(a)) return static_cast<uint16_t>(sign | exp_all_ones);
  const int min_exp = 1 - bias;  // exponent of the smallest normal number
  const bool subnormal = a < std::ldexp(1.0, min_exp);
  int e = min_exp;  // a lies in [2^e, 2^(e+1)), or below 2^min_exp when subnormal
  if (!subnormal) {
    std::frexp(a, &e);
    e -= 1;
  }
  // q = a in units of the target's last mantissa place; scaling by a power of two is exact.
  const double q = std::ldexp(a, mant_bits - e);
  double r = std::floor(q);
  const double frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1.0;
  uint32_t m = static_cast<uint32_t>(r);
  // A subnormal that rounds up to 2^mant_bits becomes the smallest normal, whose encoding is
  // exactly that integer, so subnormals need no special exponent handling.
  if (subnormal) return static_cast<uint16_t>(sign | m);
  if (m == (2u << mant_bits)) {
    m >>= 1;
    e += 1;
  }
  const int biased = e + bias;
  if (biased >= (1 << exp_bits) - 1) return static_cast<uint16_t>(sign | exp_all_ones);
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(biased) << mant_bits) |
                               (m - (1u << mant_bits)));
}

double NarrowFloatToDouble(uint16_t bits, int mant_bits, int exp_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const bool negative = (bits >> (mant_bits + exp_bits)) & 1;
  const int exp = (bits >> mant_bits) & ((1 << exp_bits) - 1);
  const int mant = bits & ((1 << mant_bits) - 1);
  double v;
  if (exp == (1 << exp_bits) - 1) {
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else if (exp == 0) {
    v = std::ldexp(mant, 1 - bias - mant_bits);
  } else {
    v = std::ldexp(mant + (1 << mant_bits), exp - bias - mant_bits);
  }
  return negative ? -v : v;
}

template <typename T>
double NarrowToDouble(T v) {
  return NarrowFloatToDouble(v.bits, kMantBits<T>, kExpBits<T>);
}
template <typename T>
T NarrowFromDouble(double v) {
  return T{RoundToNarrowFloat(v, kMantBits<T>, kExpBits<T>)};
}

// int64 -> double for a later rounding to at most 24 bits. Above 2^53 the plain conversion
// rounds, and a second rounding can then go the wrong way at a tie; rounding to odd at 53 bits
// first (keep the truncated bits' "any set" as the last bit) makes the later rounding exact.
double Int64ToDoubleForNarrowing(int64_t v) {
  uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  int shift = 0;
  if (std::bit_width(mag) > 53) {
    shift = std::bit_width(mag) - 53;
    const bool sticky = (mag & ((uint64_t{1} << shift) - 1)) != 0;
    mag = (mag >> shift) | (sticky ? 1 : 0);
  }
  const double d = std::ldexp(static_cast<double>(mag), shift);
  return v < 0 ? -d : d;
}

// Float to integer: truncation toward zero as ONNX specifies. Out-of-range values are undefined
// in ONNX and undefined behaviour in C++, so they saturate (NaN gives 0) rather than trap.
template <typename To>
To FloatToInt(double v) {
  if (std::isnan(v)) return To{0};
  const double t = std::trunc(v);
  if (t <= static_cast<double>(std::numeric_limits<To>::lowest()))
    return std::numeric_limits<To>::lowest();
  if (t >= static_cast<double>(std::numeric_limits<To>::max()))
    return std::numeric_limits<To>::max();
  return static_cast<To>(t);
}

// One element of Cast. Integer-to-integer wraps (two's complement), like numpy's astype.
template <typename To, typename From>
To Convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (kIsNarrowFloat<From>) {
    // Widening a 16-bit float to double is exact, so this is a single rounding.
    return Convert<To, double>(NarrowToDouble(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From{0};
  } else if constexpr (std::is_same_v<From, bool>) {
    return Convert<To, int32_t>(v ? 1 : 0);
  } else if constexpr (kIsNarrowFloat<To>) {
    if constexpr (std::is_same_v<From, int64_t>) {
      return NarrowFromDouble<To>(Int64ToDoubleForNarrowing(v));
    } else {
      return NarrowFromDouble<To>(static_cast<double>(v));
    }
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return FloatToInt<To>(static_cast<double>(v));
  } else {
    return static_cast<To>(v);
  }
}

// Arithmetic type of a storage type: 16-bit floats compute in float.
template <typename T>
using ComputeT = std::conditional_t<kIsNarrowFloat<T>, float, T>;

template <typename T>
ComputeT<T> Load(T v) {
  if constexpr (kIsNarrowFloat<T>) {
    return static_cast<float>(NarrowToDouble(v));
  } else {
    return v;
  }
}
template <typename T>
T Store(ComputeT<T> v) {
  if constexpr (kIsNarrowFloat<T>) {
    return NarrowFromDouble<T>(v);
  } else {
    return v;
  }
}

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with the storage type of `dtype`; f returns Status.
template <typename F>
Status VisitDType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(TypeTag<float>{});
    case DType::kFloat16:
      return f(TypeTag<Float16>{});
    case DType::kBFloat16:
      return f(TypeTag<BFloat16>{});
    case DType::kFloat64:
      return f(TypeTag<double>{});
    case DType::kInt8:
      return f(TypeTag<int8_t>{});
    case DType::kUInt8:
      return f(TypeTag<uint8_t>{});
    case DType::kInt16:
      return f(TypeTag<int16_t>{});
    case DType::kUInt16:
      return f(TypeTag<uint16_t>{});
    case DType::kInt32:
      return f(TypeTag<int32_t>{});
    case DType::kInt64:
      return f(TypeTag<int64_t>{});
    case DType::kBool:
      return f(TypeTag<bool>{});
  }
  return InvalidArgument("unknown dtype " + std::to_string(static_cast<int>(dtype)));
}

using internal::CheckTensor;
using internal::Input;
using internal::Invalid;
using internal::IsPresent;
using internal::OptionalInput;

// Numpy multidirectional broadcasting: align trailing dimensions; each pair must match or
// one of them be 1.
StatusOr<Shape> BroadcastShape(const graph::Node& node, const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.rank() ? 1 : a[i - (rank - a.rank())];
    const int64_t db = i < rank - b.rank() ? 1 : b[i - (rank - b.rank())];
    if (da != db && da != 1 && db != 1) {
      return Invalid(node, "shapes " + a.ToString() + " and " + b.ToString() +
                               " cannot be broadcast together");
    }
    out[i] = da == 1 ? db : da;
  }
  return Shape(std::move(out));
}

// Element strides of `in` as seen through the broadcast output shape: 0 along broadcast
// dimensions, so that offset = sum(index[d] * stride[d]).
std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.rank(), 0);
  int64_t stride = 1;
  for (std::size_t k = 0; k < in.rank(); ++k) {
    const std::size_t din = in.rank() - 1 - k;
    const std::size_t dout = out.rank() - 1 - k;
    strides[dout] = in[din] == 1 ? 0 : stride;
    stride *= in[din];
  }
  return strides;
}

enum class BinaryOp { kAdd, kSub, kMul, kDiv };

// Integer arithmetic wraps modulo 2^bits (as numpy does) instead of overflowing, which would be
// undefined behaviour for signed types.
template <typename T>
T WrapAdd(T x, T y) {
  return static_cast<T>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y));
}
template <typename T>
T WrapSub(T x, T y) {
  return static_cast<T>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y));
}
template <typename T>
T WrapMul(T x, T y) {
  return static_cast<T>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y));
}

template <typename T>
Status BinaryLoop(const graph::Node& node, BinaryOp op, const Tensor& a, const Tensor& b,
                  Tensor& out) {
  const Shape& shape = out.shape();
  const std::vector<int64_t> sa = BroadcastStrides(a.shape(), shape);
  const std::vector<int64_t> sb = BroadcastStrides(b.shape(), shape);
  auto pa = a.Span<T>();
  auto pb = b.Span<T>();
  auto po = out.Span<T>();
  const int64_t n = out.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, ia = 0, ib = 0;
    for (std::size_t d = shape.rank(); d-- > 0;) {
      const int64_t c = rem % shape[d];
      rem /= shape[d];
      ia += c * sa[d];
      ib += c * sb[d];
    }
    const ComputeT<T> x = Load(pa[ia]);
    const ComputeT<T> y = Load(pb[ib]);
    ComputeT<T> r{};
    if constexpr (std::is_integral_v<ComputeT<T>>) {
      switch (op) {
        case BinaryOp::kAdd:
          r = WrapAdd(x, y);
          break;
        case BinaryOp::kSub:
          r = WrapSub(x, y);
          break;
        case BinaryOp::kMul:
          r = WrapMul(x, y);
          break;
        case BinaryOp::kDiv:
          // Both traps in C++: report x/0, and let MIN / -1 wrap to MIN like the other ops.
          if (y == 0) return Invalid(node, "integer division by zero");
          if (std::is_signed_v<T> && y == static_cast<T>(-1)) {
            r = WrapSub(T{0}, x);
          } else {
            r = static_cast<T>(x / y);  // C++ truncates toward zero, as ONNX integer Div does
          }
          break;
      }
    } else {
      switch (op) {
        case BinaryOp::kAdd:
          r = x + y;
          break;
        case BinaryOp::kSub:
          r = x - y;
          break;
        case BinaryOp::kMul:
          r = x * y;
          break;
        case BinaryOp::kDiv:
          r = x / y;
          break;
      }
    }
    po[i] = Store<T>(r);
  }
  return Status::Ok();
}

Status Binary(BinaryOp op, const graph::Node& node, std::span<const Tensor> inputs,
              std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* a, Input(node, inputs, 0, "A"));
  ASSIGN_OR_RETURN(const Tensor* b, Input(node, inputs, 1, "B"));
  if (a->dtype() != b->dtype()) {
    return Invalid(node, "input dtypes differ: " + std::string(DTypeName(a->dtype())) + " and " +
                             std::string(DTypeName(b->dtype())));
  }
  if (a->dtype() == DType::kBool) return Invalid(node, "arithmetic on BOOL is not defined");
  ASSIGN_OR_RETURN(Shape shape, BroadcastShape(node, a->shape(), b->shape()));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(a->dtype(), std::move(shape)));
  RETURN_IF_ERROR(VisitDType(a->dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) {
      return Status::Ok();  // rejected above; bool arithmetic does not compile cleanly
    } else {
      return BinaryLoop<T>(node, op, *a, *b, out);
    }
  }));
  outputs.clear();
  outputs.push_back(std::move(out));
  return Status::Ok();
}

Status AddKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                 std::vector<Tensor>& outputs) {
  return Binary(BinaryOp::kAdd, node, inputs, outputs);
}
Status SubKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                 std::vector<Tensor>& outputs) {
  return Binary(BinaryOp::kSub, node, inputs, outputs);
}
Status MulKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                 std::vector<Tensor>& outputs) {
  return Binary(BinaryOp::kMul, node, inputs, outputs);
}
Status DivKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                 std::vector<Tensor>& outputs) {
  return Binary(BinaryOp::kDiv, node, inputs, outputs);
}

bool IsFloatDType(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat64 || d == DType::kFloat16 ||
         d == DType::kBFloat16;
}
bool IsSignedIntDType(DType d) {
  return d == DType::kInt8 || d == DType::kInt16 || d == DType::kInt32 || d == DType::kInt64;
}

// Applies fn (on the compute type) to every element of input 0; the output has its shape and
// dtype. `allowed` is the op's ONNX type constraint.
template <typename Fn>
Status Unary(const graph::Node& node, std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
             bool (*allowed)(DType), Fn fn) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "X"));
  if (!allowed(x->dtype())) {
    return Invalid(node, "dtype " + std::string(DTypeName(x->dtype())) + " is not supported");
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(x->dtype(), x->shape()));
  RETURN_IF_ERROR(VisitDType(x->dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool> || std::is_unsigned_v<T>) {
      return Status::Ok();  // excluded by `allowed`
    } else {
      auto in = x->Span<T>();
      auto o = out.Span<T>();
      for (std::size_t i = 0; i < in.size(); ++i) o[i] = Store<T>(fn(Load(in[i])));
      return Status::Ok();
    }
  }));
  outputs.clear();
  outputs.push_back(std::move(out));
  return Status::Ok();
}

Status ReluKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                  std::vector<Tensor>& outputs) {
  // Signed integers joined the type list in opset 14; accepting them earlier is harmless.
  return Unary(
      node, inputs, outputs, [](DType d) { return IsFloatDType(d) || IsSignedIntDType(d); },
      [](auto v) {
        using C = decltype(v);
        // Written so that NaN passes through, as max(x, 0) does in numpy.
        return v < C{0} ? C{0} : v;
      });
}

Status LeakyReluKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                       std::vector<Tensor>& outputs) {
  const float alpha = node.GetFloat("alpha", 0.01f);
  return Unary(node, inputs, outputs, IsFloatDType, [alpha](auto v) {
    using C = decltype(v);
    return v < C{0} ? static_cast<C>(alpha) * v : v;
  });
}

Status SigmoidKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs) {
  return Unary(node, inputs, outputs, IsFloatDType, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_floating_point_v<C>) {
      // Two branches so that exp never overflows into inf/inf for large |x|.
      if (v >= C{0}) return C{1} / (C{1} + std::exp(-v));
      const C e = std::exp(v);
      return e / (C{1} + e);
    } else {
      return v;  // unreachable: integer dtypes are rejected
    }
  });
}

Status TanhKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                  std::vector<Tensor>& outputs) {
  return Unary(node, inputs, outputs, IsFloatDType, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_floating_point_v<C>) {
      return std::tanh(v);
    } else {
      return v;  // unreachable: integer dtypes are rejected
    }
  });
}

template <typename T>
void ClipLoop(const Tensor& x, Tensor& out, ComputeT<T> lo, ComputeT<T> hi) {
  auto in = x.Span<T>();
  auto o = out.Span<T>();
  for (std::size_t i = 0; i < in.size(); ++i) {
    ComputeT<T> v = Load(in[i]);
    // Comparisons arranged so that NaN passes through, and min > max yields max, as ONNX says.
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    o[i] = Store<T>(v);
  }
}

// Clip bound input: a scalar of X's dtype (shape [1] is accepted too, as onnxruntime does).
Status CheckClipBound(const graph::Node& node, const Tensor& bound, DType dtype,
                      std::string_view what) {
  if (bound.dtype() != dtype) {
    return Invalid(node, std::string(what) + " has dtype " + std::string(DTypeName(bound.dtype())) +
                             ", input has " + std::string(DTypeName(dtype)));
  }
  const bool scalar =
      bound.shape().rank() == 0 || (bound.shape().rank() == 1 && bound.shape()[0] == 1);
  if (!scalar) {
    return Invalid(node,
                   std::string(what) + " must be a scalar, got shape " + bound.shape().ToString());
  }
  return Status::Ok();
}

Status ClipKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                  std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "input"));
  const DType dtype = x->dtype();
  if (dtype == DType::kBool) return Invalid(node, "dtype BOOL is not supported");
  if (opset < 11 && !IsFloatDType(dtype)) {
    return Invalid(node,
                   "dtype " + std::string(DTypeName(dtype)) + " is not supported before opset 11");
  }
  const Tensor* min = nullptr;
  const Tensor* max = nullptr;
  if (opset >= 11) {
    ASSIGN_OR_RETURN(min, OptionalInput(node, inputs, 1, "min"));
    ASSIGN_OR_RETURN(max, OptionalInput(node, inputs, 2, "max"));
    if (min) RETURN_IF_ERROR(CheckClipBound(node, *min, dtype, "min"));
    if (max) RETURN_IF_ERROR(CheckClipBound(node, *max, dtype, "max"));
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(dtype, x->shape()));
  RETURN_IF_ERROR(VisitDType(dtype, [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    if constexpr (std::is_same_v<T, bool>) {
      return Status::Ok();  // rejected above
    } else {
      // An omitted bound clamps nothing (numpy's clip with None), so +-inf stay infinite.
      C lo = std::numeric_limits<C>::has_infinity ? -std::numeric_limits<C>::infinity()
                                                  : std::numeric_limits<C>::lowest();
      C hi = std::numeric_limits<C>::has_infinity ? std::numeric_limits<C>::infinity()
                                                  : std::numeric_limits<C>::max();
      if (opset < 11) {
        // Before opset 11 the bounds are float attributes whose documented defaults are the
        // float limits.
        if constexpr (std::is_floating_point_v<C>) {
          lo = static_cast<C>(node.GetFloat("min", std::numeric_limits<float>::lowest()));
          hi = static_cast<C>(node.GetFloat("max", std::numeric_limits<float>::max()));
        }
      } else {
        if (min) lo = Load(min->Span<T>()[0]);
        if (max) hi = Load(max->Span<T>()[0]);
      }
      ClipLoop<T>(*x, out, lo, hi);
      return Status::Ok();
    }
  }));
  outputs.clear();
  outputs.push_back(std::move(out));
  return Status::Ok();
}

// ONNX TensorProto.DataType -> DType, for the types Cast handles.
StatusOr<DType> DTypeFromOnnx(const graph::Node& node, int64_t onnx_type) {
  switch (onnx_type) {
    case 1:
      return DType::kFloat32;
    case 2:
      return DType::kUInt8;
    case 3:
      return DType::kInt8;
    case 4:
      return DType::kUInt16;
    case 5:
      return DType::kInt16;
    case 6:
      return DType::kInt32;
    case 7:
      return DType::kInt64;
    case 9:
      return DType::kBool;
    case 10:
      return DType::kFloat16;
    case 11:
      return DType::kFloat64;
    case 16:
      return DType::kBFloat16;
    case 8:
      return Unimplemented(node.Describe() + ": Cast to STRING is not supported");
    case 12:
      return Unimplemented(node.Describe() + ": Cast to UINT32 is not supported");
    case 13:
      return Unimplemented(node.Describe() + ": Cast to UINT64 is not supported");
    case 14:
    case 15:
      return Unimplemented(node.Describe() + ": Cast to complex types is not supported");
    default:
      return Invalid(node, "attribute 'to' = " + std::to_string(onnx_type) +
                               " is not an ONNX tensor data type");
  }
}

Status CastKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                  std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "input"));
  if (!node.Has("to")) return Invalid(node, "missing required attribute 'to'");
  ASSIGN_OR_RETURN(const DType to, DTypeFromOnnx(node, node.GetInt("to", 0)));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(to, x->shape()));
  RETURN_IF_ERROR(VisitDType(x->dtype(), [&](auto from_tag) -> Status {
    using From = typename decltype(from_tag)::type;
    return VisitDType(to, [&](auto to_tag) -> Status {
      using To = typename decltype(to_tag)::type;
      auto in = x->Span<From>();
      auto o = out.Span<To>();
      for (std::size_t i = 0; i < in.size(); ++i) o[i] = Convert<To, From>(in[i]);
      return Status::Ok();
    });
  }));
  outputs.clear();
  outputs.push_back(std::move(out));
  return Status::Ok();
}

}  // namespace

void RegisterElementwiseKernels(KernelMap& m) {
  m["Add"] = &AddKernel;
  m["Sub"] = &SubKernel;
  m["Mul"] = &MulKernel;
  m["Div"] = &DivKernel;
  m["Relu"] = &ReluKernel;
  m["LeakyRelu"] = &LeakyReluKernel;
  m["Sigmoid"] = &SigmoidKernel;
  m["Tanh"] = &TanhKernel;
  m["Clip"] = &ClipKernel;
  m["Cast"] = &CastKernel;
}

}  // namespace larserve::runtime::ref

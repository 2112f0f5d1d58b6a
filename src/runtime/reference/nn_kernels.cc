// Reference kernels of the neural-network ops: Conv, Gemm, MatMul, the pools,
// BatchNormalization, Softmax/LogSoftmax and QuantizeLinear/DequantizeLinear.
//
// These are the ground truth that optimised backends are compared with, so they are plain loops
// that favour being obviously correct over speed, and float32 reductions accumulate in double so
// that the reference itself contributes as little rounding error as possible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "registry.h"

namespace larserve::runtime::ref {
namespace {

using graph::Attribute;
using graph::Node;
using Dims = std::vector<int64_t>;

// ---------------------------------------------------------------------------------------------
// Errors, attributes, inputs and outputs.

Status Invalid(const Node& node, const std::string& what) {
  return InvalidArgument(node.Describe() + ": " + what);
}

Status Unsupported(const Node& node, const std::string& what) {
  return Unimplemented(node.Describe() + ": " + what);
}

std::string Str(int64_t v) { return std::to_string(v); }
std::string DimsStr(const Dims& d) { return Shape(d).ToString(); }
std::string DTypeStr(DType d) { return std::string(DTypeName(d)); }

// Attributes are typed in ONNX; a mistyped one would otherwise read as the zero value of the
// field the accessor looks at, silently changing the semantics.
Status CheckAttrKind(const Node& node, std::string_view key, Attribute::Kind kind,
                     const char* kind_name) {
  auto it = node.attrs.find(std::string(key));
  if (it != node.attrs.end() && it->second.kind != kind) {
    return Invalid(node, "attribute '" + std::string(key) + "' must be " + kind_name);
  }
  return Status::Ok();
}

StatusOr<int64_t> IntAttr(const Node& node, std::string_view key, int64_t fallback) {
  RETURN_IF_ERROR(CheckAttrKind(node, key, Attribute::Kind::kInt, "an int"));
  return node.GetInt(key, fallback);
}

StatusOr<float> FloatAttr(const Node& node, std::string_view key, float fallback) {
  RETURN_IF_ERROR(CheckAttrKind(node, key, Attribute::Kind::kFloat, "a float"));
  return node.GetFloat(key, fallback);
}

StatusOr<std::string> StringAttr(const Node& node, std::string_view key,
                                 std::string_view fallback) {
  RETURN_IF_ERROR(CheckAttrKind(node, key, Attribute::Kind::kString, "a string"));
  return node.GetString(key, fallback);
}

StatusOr<Dims> IntsAttr(const Node& node, std::string_view key, Dims fallback) {
  RETURN_IF_ERROR(CheckAttrKind(node, key, Attribute::Kind::kInts, "a list of ints"));
  return node.GetInts(key, std::move(fallback));
}

// An omitted optional input is a default Tensor: no data and rank 0. A zero-element tensor has
// no data either, but it has a rank of at least 1, and a scalar has data.
bool Present(const Tensor& t) { return !t.empty() || t.shape().rank() > 0; }

const Tensor* OptionalInput(std::span<const Tensor> inputs, std::size_t i) {
  return i < inputs.size() && Present(inputs[i]) ? &inputs[i] : nullptr;
}

// Checks the number of inputs, that inputs [0, required) are present and that every present
// input has a buffer matching its shape, so that the kernels can index spans freely.
Status CheckInputs(const Node& node, std::span<const Tensor> inputs, std::size_t required,
                   std::size_t max) {
  if (inputs.size() < required || inputs.size() > max) {
    const std::string want = required == max ? Str(required) : Str(required) + " to " + Str(max);
    return Invalid(node, "expects " + want + " inputs, got " + Str(inputs.size()));
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!Present(t)) {
      if (i < required) return Invalid(node, "input " + Str(i) + " is required but missing");
      continue;
    }
    // Checked here, before anything multiplies dimensions: a zero dimension lets a tensor
    // exist whose other dimensions multiply past int64.
    int64_t product = 1;
    for (int64_t d : t.shape().dims()) {
      if (d < 0) {
        return Invalid(node,
                       "input " + Str(i) + " has a negative dimension " + t.shape().ToString());
      }
      if (d != 0 && __builtin_mul_overflow(product, d, &product)) {
        return Invalid(node, "input " + Str(i) + " has dimensions " + t.shape().ToString() +
                                 " whose product overflows");
      }
    }
    if (t.num_elements() > 0 && t.data() == nullptr) {
      return Invalid(node,
                     "input " + Str(i) + " of shape " + t.shape().ToString() + " has no data");
    }
  }
  return Status::Ok();
}

// Sizes `outputs` to the node's output count; at least one, since a node built by hand may list
// no outputs at all. Outputs the node omits stay empty.
Status PrepareOutputs(const Node& node, std::vector<Tensor>& outputs, std::size_t max) {
  if (node.outputs.size() > max) {
    return Invalid(
        node, "has " + Str(node.outputs.size()) + " outputs, at most " + Str(max) + " allowed");
  }
  outputs.assign(std::max<std::size_t>(1, node.outputs.size()), Tensor());
  return Status::Ok();
}

// Tensor::Create with the node named in the error (a huge output from extreme attributes).
StatusOr<Tensor> Allocate(const Node& node, DType dtype, Shape shape) {
  auto t = Tensor::Create(dtype, std::move(shape));
  if (!t.ok()) return t.status().WithContext(node.Describe());
  return t;
}

bool WantsOutput(const Node& node, std::size_t i) {
  return i < node.outputs.size() && node.outputs[i] >= 0;
}

bool OneOf(DType d, std::initializer_list<DType> set) {
  return std::find(set.begin(), set.end(), d) != set.end();
}

constexpr std::initializer_list<DType> kFloatTypes = {DType::kFloat32, DType::kFloat64};
// ONNX allows these for the float ops, but the reference does not compute in them.
constexpr std::initializer_list<DType> kHalfTypes = {DType::kFloat16, DType::kBFloat16};

// A type ONNX allows for the op but this reference does not cover is Unimplemented; any other
// type the op does not support is an invalid model.
Status CheckDType(const Node& node, const std::string& what, DType got,
                  std::initializer_list<DType> supported,
                  std::initializer_list<DType> onnx_only = kHalfTypes) {
  if (OneOf(got, supported)) return Status::Ok();
  if (OneOf(got, onnx_only)) {
    return Unsupported(node, what + " of type " + DTypeStr(got) + " is not supported");
  }
  return Invalid(node, what + " has type " + DTypeStr(got) + ", which the op does not accept");
}

Status CheckSameDType(const Node& node, const std::string& what, const Tensor& t, DType want) {
  if (t.dtype() != want) {
    return Invalid(node, what + " has type " + DTypeStr(t.dtype()) + ", expected " +
                             DTypeStr(want) + " like the first input");
  }
  return Status::Ok();
}

StatusOr<int64_t> NormalizeAxis(const Node& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return Invalid(node,
                   "axis " + Str(axis) + " is out of range for an input of rank " + Str(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

int64_t Product(const Dims& d, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= d[i];
  return p;
}

// Steps a row-major multi-index through the box [lo, hi] (inclusive per axis); false once it has
// passed the last index.
bool NextInBox(Dims& idx, const Dims& lo, const Dims& hi) {
  for (std::size_t i = idx.size(); i-- > 0;) {
    if (++idx[i] <= hi[i]) return true;
    idx[i] = lo[i];
  }
  return false;
}

void Unravel(int64_t linear, const Dims& dims, Dims& idx) {
  idx.resize(dims.size());
  for (std::size_t i = dims.size(); i-- > 0;) {
    idx[i] = linear % dims[i];
    linear /= dims[i];
  }
}

// ---------------------------------------------------------------------------------------------
// Sliding windows, shared by Conv and the pools.

struct Window {
  Dims in;  // input spatial sizes
  Dims kernel, strides, dilations, pad_begin, pad_end;
  Dims out;  // output spatial sizes
};

// Resolves strides, dilations, pads and auto_pad for an input of spatial sizes `in`, and the
// output sizes (ONNX's formulas, with the later clarification that in ceil_mode a window that
// would start in the right padding is dropped, as PyTorch does).
Status ResolveWindow(const Node& node, const Dims& in, const Dims& kernel, bool ceil_mode,
                     Window& w) {
  const std::size_t n = in.size();
  w.in = in;
  w.kernel = kernel;
  ASSIGN_OR_RETURN(w.strides, IntsAttr(node, "strides", Dims(n, 1)));
  ASSIGN_OR_RETURN(w.dilations, IntsAttr(node, "dilations", Dims(n, 1)));
  ASSIGN_OR_RETURN(Dims pads, IntsAttr(node, "pads", Dims(2 * n, 0)));
  ASSIGN_OR_RETURN(std::string auto_pad, StringAttr(node, "auto_pad", "NOTSET"));
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  const bool explicit_pads = auto_pad == "NOTSET";
  if (!same && !explicit_pads && auto_pad != "VALID") {
    return Invalid(node, "auto_pad '" + auto_pad + "' is not one of NOTSET, SAME_UPPER, " +
                             "SAME_LOWER, VALID");
  }
  if (w.kernel.size() != n) {
    return Invalid(node, "kernel_shape has " + Str(w.kernel.size()) + " values, expected " +
                             Str(n) + " (one per spatial axis)");
  }
  if (w.strides.size() != n) {
    return Invalid(node, "strides has " + Str(w.strides.size()) + " values, expected " + Str(n));
  }
  if (w.dilations.size() != n) {
    return Invalid(node,
                   "dilations has " + Str(w.dilations.size()) + " values, expected " + Str(n));
  }
  // pads are ignored under auto_pad (ONNX forbids combining them), so only checked when used.
  if (explicit_pads && pads.size() != 2 * n) {
    return Invalid(node, "pads has " + Str(pads.size()) + " values, expected " + Str(2 * n));
  }
  w.pad_begin.assign(n, 0);
  w.pad_end.assign(n, 0);
  w.out.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    if (w.kernel[i] < 1) return Invalid(node, "kernel size " + Str(w.kernel[i]) + " is not >= 1");
    if (w.strides[i] < 1) return Invalid(node, "stride " + Str(w.strides[i]) + " is not >= 1");
    if (w.dilations[i] < 1) {
      return Invalid(node, "dilation " + Str(w.dilations[i]) + " is not >= 1");
    }
    if (explicit_pads && (pads[i] < 0 || pads[i + n] < 0)) {
      return Invalid(node, "pads " + DimsStr(pads) + " has a negative value");
    }
    int64_t extent = 0;  // of the dilated kernel
    if (__builtin_mul_overflow(w.kernel[i] - 1, w.dilations[i], &extent) ||
        __builtin_add_overflow(extent, 1, &extent)) {
      return Invalid(node, "dilated kernel extent overflows on spatial axis " + Str(i));
    }
    const int64_t s = w.strides[i];
    if (same) {
      w.out[i] = in[i] / s + (in[i] % s != 0);
      int64_t total = 0;
      if (__builtin_add_overflow((w.out[i] - 1) * s, extent, &total)) {
        return Invalid(node, "padding overflows on spatial axis " + Str(i));
      }
      total = std::max<int64_t>(0, total - in[i]);
      // The odd pad goes at the end for SAME_UPPER and at the beginning for SAME_LOWER.
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (explicit_pads) {
      w.pad_begin[i] = pads[i];
      w.pad_end[i] = pads[i + n];
    }
    int64_t padded = 0;
    if (__builtin_add_overflow(in[i], w.pad_begin[i], &padded) ||
        __builtin_add_overflow(padded, w.pad_end[i], &padded)) {
      return Invalid(node, "padded size overflows on spatial axis " + Str(i));
    }
    if (padded < extent) {
      return Invalid(node, "dilated kernel extent " + Str(extent) +
                               " exceeds the padded input size " + Str(padded) +
                               " on spatial axis " + Str(i));
    }
    const int64_t span = padded - extent;
    w.out[i] = span / s + 1;
    // ceil_mode adds the partial window at the end, unless it would start in the right padding.
    int64_t extra_start = 0;  // of the partial window, relative to the padded input
    if (ceil_mode && span % s != 0 && !__builtin_add_overflow(span - span % s, s, &extra_start) &&
        extra_start < in[i] + w.pad_begin[i]) {
      ++w.out[i];
    }
  }
  return Status::Ok();
}

// The taps of one output position's window: per spatial axis, the range [lo, hi] of kernel
// indices whose input coordinate start + k * dilation falls inside the input. Computing ranges
// instead of testing every tap keeps the work bounded by the input even for huge kernels or pads.
struct Taps {
  Dims start, lo, hi;
  bool empty = false;
};

void WindowTaps(const Window& w, const Dims& out_idx, Taps& t) {
  const std::size_t n = w.in.size();
  t.start.resize(n);
  t.lo.resize(n);
  t.hi.resize(n);
  t.empty = false;
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t start = out_idx[i] * w.strides[i] - w.pad_begin[i];
    const int64_t d = w.dilations[i];
    t.start[i] = start;
    // ceil(-start / d), written so that a huge dilation cannot overflow.
    t.lo[i] = start >= 0 ? 0 : -start / d + (-start % d != 0);
    const int64_t room = w.in[i] - 1 - start;
    t.hi[i] = room < 0 ? -1 : std::min(w.kernel[i] - 1, room / d);
    if (t.lo[i] > t.hi[i]) t.empty = true;
  }
}

// Visits every in-input tap of a window as (kernel offset, input offset), both row-major
// linear offsets within one channel.
template <typename F>
void ForEachTap(const Window& w, const Taps& t, Dims& k, F&& f) {
  if (t.empty) return;
  k = t.lo;
  do {
    int64_t k_off = 0;
    int64_t in_off = 0;
    for (std::size_t i = 0; i < k.size(); ++i) {
      k_off = k_off * w.kernel[i] + k[i];
      in_off = in_off * w.in[i] + t.start[i] + k[i] * w.dilations[i];
    }
    f(k_off, in_off);
  } while (NextInBox(k, t.lo, t.hi));
}

// ---------------------------------------------------------------------------------------------
// Conv

template <typename T>
void ConvLoops(const Window& w, int64_t batch, int64_t channels, int64_t maps, int64_t group,
               std::span<const T> x, std::span<const T> wt, const T* bias, std::span<T> y) {
  // With no batch or no maps the spatial output sizes may be huge (and their product overflow)
  // while there is nothing to compute.
  if (y.empty()) return;
  const int64_t in_size = Product(w.in, 0, w.in.size());
  const int64_t k_size = Product(w.kernel, 0, w.kernel.size());
  const int64_t out_size = Product(w.out, 0, w.out.size());
  const int64_t c_per_group = channels / group;
  const int64_t m_per_group = maps / group;
  Dims out_idx;
  Dims k;
  Taps taps;
  std::vector<std::pair<int64_t, int64_t>> tap_list;
  for (int64_t o = 0; o < out_size; ++o) {
    Unravel(o, w.out, out_idx);
    WindowTaps(w, out_idx, taps);
    tap_list.clear();
    ForEachTap(w, taps, k,
               [&](int64_t k_off, int64_t in_off) { tap_list.emplace_back(k_off, in_off); });
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t m = 0; m < maps; ++m) {
        const int64_t g = m / m_per_group;
        double acc = bias ? static_cast<double>(bias[m]) : 0.0;
        for (int64_t c = 0; c < c_per_group; ++c) {
          const int64_t x_base = (b * channels + g * c_per_group + c) * in_size;
          const int64_t w_base = (m * c_per_group + c) * k_size;
          for (const auto& [k_off, in_off] : tap_list) {
            acc +=
                static_cast<double>(x[x_base + in_off]) * static_cast<double>(wt[w_base + k_off]);
          }
        }
        y[(b * maps + m) * out_size + o] = static_cast<T>(acc);
      }
    }
  }
}

Status Conv(const Node& node, int64_t opset, std::span<const Tensor> inputs,
            std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 2, 3));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& x = inputs[0];
  const Tensor& wt = inputs[1];
  const Tensor* bias = OptionalInput(inputs, 2);
  RETURN_IF_ERROR(CheckDType(node, "input X", x.dtype(), kFloatTypes));
  RETURN_IF_ERROR(CheckSameDType(node, "weight W", wt, x.dtype()));
  if (bias) RETURN_IF_ERROR(CheckSameDType(node, "bias B", *bias, x.dtype()));
  const Dims& xd = x.shape().dims();
  const Dims& wd = wt.shape().dims();
  if (xd.size() < 3) {
    return Invalid(node,
                   "input X has shape " + DimsStr(xd) + "; expected rank >= 3 (N, C, spatial...)");
  }
  if (wd.size() != xd.size()) {
    return Invalid(node, "weight W has shape " + DimsStr(wd) + "; expected rank " + Str(xd.size()) +
                             " like X " + DimsStr(xd));
  }
  ASSIGN_OR_RETURN(int64_t group, IntAttr(node, "group", 1));
  if (group < 1) return Invalid(node, "group " + Str(group) + " is not >= 1");
  const int64_t channels = xd[1];
  const int64_t maps = wd[0];
  if (channels % group != 0) {
    return Invalid(
        node, "group " + Str(group) + " does not divide the " + Str(channels) + " input channels");
  }
  if (maps % group != 0) {
    return Invalid(node, "group " + Str(group) + " does not divide the " + Str(maps) +
                             " output channels of W " + DimsStr(wd));
  }
  if (wd[1] != channels / group) {
    return Invalid(node, "weight W " + DimsStr(wd) + " has " + Str(wd[1]) +
                             " channels per group, expected " + Str(channels / group) + " (" +
                             Str(channels) + " input channels / group " + Str(group) + ")");
  }
  const Dims w_kernel(wd.begin() + 2, wd.end());
  for (int64_t k : w_kernel) {
    if (k < 1) return Invalid(node, "weight W " + DimsStr(wd) + " has an empty kernel");
  }
  if (node.Has("kernel_shape")) {
    ASSIGN_OR_RETURN(Dims ks, IntsAttr(node, "kernel_shape", {}));
    if (ks != w_kernel) {
      return Invalid(node, "kernel_shape " + DimsStr(ks) +
                               " does not match the spatial dims of W " + DimsStr(wd));
    }
  }
  if (bias && (bias->shape().rank() != 1 || bias->shape()[0] != maps)) {
    return Invalid(
        node, "bias B has shape " + bias->shape().ToString() + ", expected [" + Str(maps) + "]");
  }
  Window w;
  RETURN_IF_ERROR(ResolveWindow(node, Dims(xd.begin() + 2, xd.end()), w_kernel, false, w));
  Dims yd = {xd[0], maps};
  yd.insert(yd.end(), w.out.begin(), w.out.end());
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, x.dtype(), Shape(yd)));
  if (x.dtype() == DType::kFloat32) {
    ConvLoops<float>(w, xd[0], channels, maps, group, x.Span<float>(), wt.Span<float>(),
                     bias ? bias->Span<float>().data() : nullptr, outputs[0].Span<float>());
  } else {
    ConvLoops<double>(w, xd[0], channels, maps, group, x.Span<double>(), wt.Span<double>(),
                      bias ? bias->Span<double>().data() : nullptr, outputs[0].Span<double>());
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Gemm and MatMul

template <typename T>
void GemmLoops(int64_t m_size, int64_t n_size, int64_t k_size, bool trans_a, bool trans_b,
               double alpha, double beta, std::span<const T> a, std::span<const T> b,
               const Tensor* c, std::span<T> y) {
  // C is unidirectionally broadcast to [M, N]: a dimension of 1 repeats.
  int64_t c_rows = 1;
  int64_t c_cols = 1;
  const T* c_data = c ? c->Span<T>().data() : nullptr;
  if (c) {
    const Dims& cd = c->shape().dims();
    if (!cd.empty()) c_cols = cd.back();
    if (cd.size() == 2) c_rows = cd[0];
  }
  for (int64_t i = 0; i < m_size; ++i) {
    for (int64_t j = 0; j < n_size; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < k_size; ++k) {
        const T av = trans_a ? a[k * m_size + i] : a[i * k_size + k];
        const T bv = trans_b ? b[j * k_size + k] : b[k * n_size + j];
        acc += static_cast<double>(av) * static_cast<double>(bv);
      }
      double v = alpha * acc;
      if (c) {
        const int64_t ci = (c_rows == 1 ? 0 : i) * c_cols + (c_cols == 1 ? 0 : j);
        v += beta * static_cast<double>(c_data[ci]);
      }
      y[i * n_size + j] = static_cast<T>(v);
    }
  }
}

Status Gemm(const Node& node, int64_t opset, std::span<const Tensor> inputs,
            std::vector<Tensor>& outputs) {
  // C became optional in opset 11.
  RETURN_IF_ERROR(CheckInputs(node, inputs, opset >= 11 ? 2 : 3, 3));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& a = inputs[0];
  const Tensor& b = inputs[1];
  const Tensor* c = OptionalInput(inputs, 2);
  RETURN_IF_ERROR(CheckDType(node, "input A", a.dtype(), kFloatTypes,
                             {DType::kFloat16, DType::kBFloat16, DType::kInt32, DType::kInt64}));
  RETURN_IF_ERROR(CheckSameDType(node, "input B", b, a.dtype()));
  if (c) RETURN_IF_ERROR(CheckSameDType(node, "input C", *c, a.dtype()));
  ASSIGN_OR_RETURN(int64_t trans_a, IntAttr(node, "transA", 0));
  ASSIGN_OR_RETURN(int64_t trans_b, IntAttr(node, "transB", 0));
  ASSIGN_OR_RETURN(float alpha, FloatAttr(node, "alpha", 1.0f));
  ASSIGN_OR_RETURN(float beta, FloatAttr(node, "beta", 1.0f));
  const Dims& ad = a.shape().dims();
  const Dims& bd = b.shape().dims();
  if (ad.size() != 2)
    return Invalid(node, "input A has shape " + DimsStr(ad) + "; expected rank 2");
  if (bd.size() != 2)
    return Invalid(node, "input B has shape " + DimsStr(bd) + "; expected rank 2");
  const int64_t m_size = trans_a ? ad[1] : ad[0];
  const int64_t k_size = trans_a ? ad[0] : ad[1];
  const int64_t kb_size = trans_b ? bd[1] : bd[0];
  const int64_t n_size = trans_b ? bd[0] : bd[1];
  if (k_size != kb_size) {
    return Invalid(node, "inner dimensions differ: A " + DimsStr(ad) +
                             (trans_a ? " (transposed)" : "") + " and B " + DimsStr(bd) +
                             (trans_b ? " (transposed)" : ""));
  }
  if (c) {
    const Dims& cd = c->shape().dims();
    bool ok = cd.size() <= 2;
    if (ok && !cd.empty()) ok = cd.back() == 1 || cd.back() == n_size;
    if (ok && cd.size() == 2) ok = cd[0] == 1 || cd[0] == m_size;
    if (!ok) {
      return Invalid(node, "input C of shape " + DimsStr(cd) + " does not broadcast to [" +
                               Str(m_size) + "," + Str(n_size) + "]");
    }
  }
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, a.dtype(), Shape{m_size, n_size}));
  if (a.dtype() == DType::kFloat32) {
    GemmLoops<float>(m_size, n_size, k_size, trans_a, trans_b, alpha, beta, a.Span<float>(),
                     b.Span<float>(), c, outputs[0].Span<float>());
  } else {
    GemmLoops<double>(m_size, n_size, k_size, trans_a, trans_b, alpha, beta, a.Span<double>(),
                      b.Span<double>(), c, outputs[0].Span<double>());
  }
  return Status::Ok();
}

// Float products accumulate in double; integer ones in uint64_t, whose wrap-around is defined
// and, converted back, equals the two's-complement wrap of the narrower type.
template <typename T>
struct MatMulAccum {
  using type = double;
};
template <>
struct MatMulAccum<int32_t> {
  using type = uint64_t;
};
template <>
struct MatMulAccum<int64_t> {
  using type = uint64_t;
};

template <typename T>
T MatMulResult(typename MatMulAccum<T>::type acc) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<int64_t>(acc));
  } else {
    return static_cast<T>(acc);
  }
}

template <typename T>
void MatMulLoops(const Dims& batch, const Dims& a_batch, const Dims& b_batch, int64_t m_size,
                 int64_t k_size, int64_t n_size, std::span<const T> a, std::span<const T> b,
                 std::span<T> y) {
  using Acc = typename MatMulAccum<T>::type;
  // An empty output may still have a huge batch count (when M or N is 0); nothing to do.
  if (y.empty()) return;
  const int64_t batches = Product(batch, 0, batch.size());
  Dims idx;
  for (int64_t bi = 0; bi < batches; ++bi) {
    Unravel(bi, batch, idx);
    // Operand batch dims are right-aligned with the output's; a dim of 1 broadcasts.
    int64_t a_mat = 0;
    int64_t b_mat = 0;
    const std::size_t a_skip = batch.size() - a_batch.size();
    const std::size_t b_skip = batch.size() - b_batch.size();
    for (std::size_t i = 0; i < a_batch.size(); ++i) {
      a_mat = a_mat * a_batch[i] + (a_batch[i] == 1 ? 0 : idx[i + a_skip]);
    }
    for (std::size_t i = 0; i < b_batch.size(); ++i) {
      b_mat = b_mat * b_batch[i] + (b_batch[i] == 1 ? 0 : idx[i + b_skip]);
    }
    const T* ap = a.data() + a_mat * m_size * k_size;
    const T* bp = b.data() + b_mat * k_size * n_size;
    T* yp = y.data() + bi * m_size * n_size;
    for (int64_t i = 0; i < m_size; ++i) {
      for (int64_t j = 0; j < n_size; ++j) {
        Acc acc = 0;
        for (int64_t k = 0; k < k_size; ++k) {
          acc += static_cast<Acc>(ap[i * k_size + k]) * static_cast<Acc>(bp[k * n_size + j]);
        }
        yp[i * n_size + j] = MatMulResult<T>(acc);
      }
    }
  }
}

Status MatMul(const Node& node, int64_t opset, std::span<const Tensor> inputs,
              std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 2, 2));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& a = inputs[0];
  const Tensor& b = inputs[1];
  RETURN_IF_ERROR(CheckDType(node, "input A", a.dtype(),
                             {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64}));
  RETURN_IF_ERROR(CheckSameDType(node, "input B", b, a.dtype()));
  const Dims& ad = a.shape().dims();
  const Dims& bd = b.shape().dims();
  if (ad.empty() || bd.empty()) {
    return Invalid(node, "inputs of shapes " + DimsStr(ad) + " and " + DimsStr(bd) +
                             " include a scalar; MatMul needs rank >= 1");
  }
  // numpy: a 1-D A is a row [1, K] and a 1-D B a column [K, 1]; the added dim is dropped after.
  const bool a_vec = ad.size() == 1;
  const bool b_vec = bd.size() == 1;
  const int64_t m_size = a_vec ? 1 : ad[ad.size() - 2];
  const int64_t k_size = ad.back();
  const int64_t kb_size = b_vec ? bd[0] : bd[bd.size() - 2];
  const int64_t n_size = b_vec ? 1 : bd.back();
  if (k_size != kb_size) {
    return Invalid(node, "inner dimensions differ: A " + DimsStr(ad) + " and B " + DimsStr(bd));
  }
  const Dims a_batch(ad.begin(), ad.end() - (a_vec ? 1 : 2));
  const Dims b_batch(bd.begin(), bd.end() - (b_vec ? 1 : 2));
  Dims batch(std::max(a_batch.size(), b_batch.size()), 1);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::size_t from_end = batch.size() - 1 - i;
    const int64_t da = from_end < a_batch.size() ? a_batch[a_batch.size() - 1 - from_end] : 1;
    const int64_t db = from_end < b_batch.size() ? b_batch[b_batch.size() - 1 - from_end] : 1;
    if (da != db && da != 1 && db != 1) {
      return Invalid(node, "batch dimensions of A " + DimsStr(ad) + " and B " + DimsStr(bd) +
                               " do not broadcast");
    }
    batch[i] = da == 1 ? db : da;
  }
  Dims yd = batch;
  if (!a_vec) yd.push_back(m_size);
  if (!b_vec) yd.push_back(n_size);
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, a.dtype(), Shape(yd)));
  switch (a.dtype()) {
    case DType::kFloat32:
      MatMulLoops<float>(batch, a_batch, b_batch, m_size, k_size, n_size, a.Span<float>(),
                         b.Span<float>(), outputs[0].Span<float>());
      break;
    case DType::kFloat64:
      MatMulLoops<double>(batch, a_batch, b_batch, m_size, k_size, n_size, a.Span<double>(),
                          b.Span<double>(), outputs[0].Span<double>());
      break;
    case DType::kInt32:
      MatMulLoops<int32_t>(batch, a_batch, b_batch, m_size, k_size, n_size, a.Span<int32_t>(),
                           b.Span<int32_t>(), outputs[0].Span<int32_t>());
      break;
    default:
      MatMulLoops<int64_t>(batch, a_batch, b_batch, m_size, k_size, n_size, a.Span<int64_t>(),
                           b.Span<int64_t>(), outputs[0].Span<int64_t>());
      break;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Pools

// Common checks of MaxPool and AveragePool: X of rank >= 3 and the window geometry.
Status ResolvePool(const Node& node, const Tensor& x, Window& w) {
  const Dims& xd = x.shape().dims();
  if (xd.size() < 3) {
    return Invalid(node,
                   "input X has shape " + DimsStr(xd) + "; expected rank >= 3 (N, C, spatial...)");
  }
  if (!node.Has("kernel_shape")) return Invalid(node, "the kernel_shape attribute is required");
  ASSIGN_OR_RETURN(Dims kernel, IntsAttr(node, "kernel_shape", {}));
  ASSIGN_OR_RETURN(int64_t ceil_mode, IntAttr(node, "ceil_mode", 0));
  return ResolveWindow(node, Dims(xd.begin() + 2, xd.end()), kernel, ceil_mode != 0, w);
}

Status EmptyWindow(const Node& node, const Dims& out_idx) {
  return Invalid(node, "the pooling window at output position " + DimsStr(out_idx) +
                           " lies entirely in the padding");
}

template <typename T>
Status MaxPoolLoops(const Node& node, const Window& w, int64_t planes, bool column_major,
                    std::span<const T> x, std::span<T> y, int64_t* indices) {
  if (y.empty()) return Status::Ok();  // see ConvLoops
  const int64_t in_size = Product(w.in, 0, w.in.size());
  const int64_t out_size = Product(w.out, 0, w.out.size());
  Dims out_idx;
  Dims k;
  Dims coords;
  Taps taps;
  std::vector<int64_t> tap_list;
  for (int64_t o = 0; o < out_size; ++o) {
    Unravel(o, w.out, out_idx);
    WindowTaps(w, out_idx, taps);
    tap_list.clear();
    ForEachTap(w, taps, k, [&](int64_t, int64_t in_off) { tap_list.push_back(in_off); });
    if (tap_list.empty()) return EmptyWindow(node, out_idx);
    for (int64_t p = 0; p < planes; ++p) {
      const T* xp = x.data() + p * in_size;
      // The first maximum wins ties, as in ONNX's reference and onnxruntime.
      int64_t best = tap_list[0];
      for (int64_t off : tap_list) {
        if (xp[off] > xp[best]) best = off;
      }
      y[p * out_size + o] = xp[best];
      if (indices) {
        int64_t spatial = best;
        if (column_major) {
          // storage_order 1 numbers only the spatial dims column-major; N and C stay outermost.
          Unravel(best, w.in, coords);
          spatial = 0;
          for (std::size_t i = coords.size(); i-- > 0;) spatial = spatial * w.in[i] + coords[i];
        }
        indices[p * out_size + o] = p * in_size + spatial;
      }
    }
  }
  return Status::Ok();
}

Status MaxPool(const Node& node, int64_t opset, std::span<const Tensor> inputs,
               std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 1, 1));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 2));
  const Tensor& x = inputs[0];
  RETURN_IF_ERROR(CheckDType(node, "input X", x.dtype(),
                             {DType::kFloat32, DType::kFloat64, DType::kInt8, DType::kUInt8}));
  Window w;
  RETURN_IF_ERROR(ResolvePool(node, x, w));
  ASSIGN_OR_RETURN(int64_t storage_order, IntAttr(node, "storage_order", 0));
  if (storage_order != 0 && storage_order != 1) {
    return Invalid(node, "storage_order " + Str(storage_order) + " is not 0 or 1");
  }
  const Dims& xd = x.shape().dims();
  Dims yd = {xd[0], xd[1]};
  yd.insert(yd.end(), w.out.begin(), w.out.end());
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, x.dtype(), Shape(yd)));
  int64_t* indices = nullptr;
  if (WantsOutput(node, 1)) {
    ASSIGN_OR_RETURN(outputs[1], Allocate(node, DType::kInt64, Shape(yd)));
    indices = outputs[1].Span<int64_t>().data();
  }
  const int64_t planes = xd[0] * xd[1];
  const bool column_major = storage_order == 1;
  switch (x.dtype()) {
    case DType::kFloat32:
      return MaxPoolLoops<float>(node, w, planes, column_major, x.Span<float>(),
                                 outputs[0].Span<float>(), indices);
    case DType::kFloat64:
      return MaxPoolLoops<double>(node, w, planes, column_major, x.Span<double>(),
                                  outputs[0].Span<double>(), indices);
    case DType::kInt8:
      return MaxPoolLoops<int8_t>(node, w, planes, column_major, x.Span<int8_t>(),
                                  outputs[0].Span<int8_t>(), indices);
    default:
      return MaxPoolLoops<uint8_t>(node, w, planes, column_major, x.Span<uint8_t>(),
                                   outputs[0].Span<uint8_t>(), indices);
  }
}

template <typename T>
Status AveragePoolLoops(const Node& node, const Window& w, int64_t planes, bool include_pad,
                        std::span<const T> x, std::span<T> y) {
  if (y.empty()) return Status::Ok();  // see ConvLoops
  const int64_t in_size = Product(w.in, 0, w.in.size());
  const int64_t out_size = Product(w.out, 0, w.out.size());
  Dims out_idx;
  Dims k;
  Taps taps;
  std::vector<int64_t> tap_list;
  for (int64_t o = 0; o < out_size; ++o) {
    Unravel(o, w.out, out_idx);
    WindowTaps(w, out_idx, taps);
    tap_list.clear();
    ForEachTap(w, taps, k, [&](int64_t, int64_t in_off) { tap_list.push_back(in_off); });
    // count_include_pad counts the taps inside the explicitly padded input, but not those a
    // ceil_mode window hangs beyond it (as onnxruntime and PyTorch do).
    // The count is a double: with huge kernels and pads it may exceed int64.
    double count = static_cast<double>(tap_list.size());
    if (include_pad) {
      count = 1;
      for (std::size_t i = 0; i < w.in.size(); ++i) {
        const int64_t room = w.in[i] + w.pad_end[i] - 1 - taps.start[i];
        count *=
            room < 0 ? 0 : static_cast<double>(std::min(w.kernel[i], room / w.dilations[i] + 1));
      }
    }
    if (count == 0) return EmptyWindow(node, out_idx);
    for (int64_t p = 0; p < planes; ++p) {
      const T* xp = x.data() + p * in_size;
      double sum = 0;
      for (int64_t off : tap_list) sum += static_cast<double>(xp[off]);
      y[p * out_size + o] = static_cast<T>(sum / count);
    }
  }
  return Status::Ok();
}

Status AveragePool(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                   std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 1, 1));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& x = inputs[0];
  RETURN_IF_ERROR(CheckDType(node, "input X", x.dtype(), kFloatTypes));
  Window w;
  RETURN_IF_ERROR(ResolvePool(node, x, w));
  ASSIGN_OR_RETURN(int64_t count_include_pad, IntAttr(node, "count_include_pad", 0));
  const Dims& xd = x.shape().dims();
  Dims yd = {xd[0], xd[1]};
  yd.insert(yd.end(), w.out.begin(), w.out.end());
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, x.dtype(), Shape(yd)));
  const int64_t planes = xd[0] * xd[1];
  if (x.dtype() == DType::kFloat32) {
    return AveragePoolLoops<float>(node, w, planes, count_include_pad != 0, x.Span<float>(),
                                   outputs[0].Span<float>());
  }
  return AveragePoolLoops<double>(node, w, planes, count_include_pad != 0, x.Span<double>(),
                                  outputs[0].Span<double>());
}

template <typename T>
void GlobalPoolLoops(bool average, int64_t planes, int64_t size, std::span<const T> x,
                     std::span<T> y) {
  for (int64_t p = 0; p < planes; ++p) {
    const T* xp = x.data() + p * size;
    if (average) {
      double sum = 0;
      for (int64_t i = 0; i < size; ++i) sum += static_cast<double>(xp[i]);
      y[p] = static_cast<T>(sum / static_cast<double>(size));
    } else {
      T best = xp[0];
      for (int64_t i = 1; i < size; ++i) {
        if (xp[i] > best) best = xp[i];
      }
      y[p] = best;
    }
  }
}

Status GlobalPool(const Node& node, std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
                  bool average) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 1, 1));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& x = inputs[0];
  RETURN_IF_ERROR(CheckDType(node, "input X", x.dtype(), kFloatTypes));
  const Dims& xd = x.shape().dims();
  if (xd.size() < 3) {
    return Invalid(node,
                   "input X has shape " + DimsStr(xd) + "; expected rank >= 3 (N, C, spatial...)");
  }
  const int64_t size = Product(xd, 2, xd.size());
  if (size == 0) return Invalid(node, "input X " + DimsStr(xd) + " has an empty spatial extent");
  Dims yd = xd;
  std::fill(yd.begin() + 2, yd.end(), 1);
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, x.dtype(), Shape(yd)));
  const int64_t planes = xd[0] * xd[1];
  if (x.dtype() == DType::kFloat32) {
    GlobalPoolLoops<float>(average, planes, size, x.Span<float>(), outputs[0].Span<float>());
  } else {
    GlobalPoolLoops<double>(average, planes, size, x.Span<double>(), outputs[0].Span<double>());
  }
  return Status::Ok();
}

Status GlobalAveragePool(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                         std::vector<Tensor>& outputs) {
  return GlobalPool(node, inputs, outputs, true);
}

Status GlobalMaxPool(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs) {
  return GlobalPool(node, inputs, outputs, false);
}

// ---------------------------------------------------------------------------------------------
// BatchNormalization (inference)

std::vector<double> ToDoubles(const Tensor& t) {
  std::vector<double> out;
  if (t.dtype() == DType::kFloat32) {
    for (float v : t.Span<float>()) out.push_back(v);
  } else {
    for (double v : t.Span<double>()) out.push_back(v);
  }
  return out;
}

template <typename T>
void BatchNormLoops(int64_t batch, int64_t channels, int64_t inner, const std::vector<double>& mul,
                    const std::vector<double>& add, std::span<const T> x, std::span<T> y) {
  if (y.empty()) return;  // the loop bounds may multiply to a huge count around a zero dim
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t base = (b * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        y[base + i] = static_cast<T>(static_cast<double>(x[base + i]) * mul[c] + add[c]);
      }
    }
  }
}

Status BatchNormalization(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                          std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 5, 5));
  ASSIGN_OR_RETURN(int64_t training_mode, IntAttr(node, "training_mode", 0));
  if (training_mode != 0) {
    return Unsupported(node, "training_mode=1 (batch statistics) is not supported");
  }
  // Before opset 14 the training outputs (mean, var, saved_mean, saved_var) selected training;
  // from opset 14 running_mean/var exist only with training_mode=1.
  std::size_t extra_outputs = 0;
  for (std::size_t i = 1; i < node.outputs.size(); ++i) extra_outputs += WantsOutput(node, i);
  if (extra_outputs > 0) {
    if (opset < 14) return Unsupported(node, "training outputs (mean, var, ...) are not supported");
    return Invalid(node, "running_mean/running_var outputs require training_mode=1");
  }
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, opset < 14 ? 5 : 3));
  const Tensor& x = inputs[0];
  RETURN_IF_ERROR(CheckDType(node, "input X", x.dtype(), kFloatTypes));
  const Dims& xd = x.shape().dims();
  if (xd.empty()) return Invalid(node, "input X is a scalar; expected (N, C, ...) or (N)");
  // A 1-D input is (N) with a single channel.
  const int64_t channels = xd.size() >= 2 ? xd[1] : 1;
  const int64_t inner = xd.size() >= 2 ? Product(xd, 2, xd.size()) : 1;
  static constexpr const char* kParamNames[] = {"scale", "B", "input_mean", "input_var"};
  std::vector<double> params[4];
  for (int i = 0; i < 4; ++i) {
    const Tensor& p = inputs[i + 1];
    // Opset 15 lets the parameters differ in type from X.
    RETURN_IF_ERROR(
        CheckDType(node, std::string("input ") + kParamNames[i], p.dtype(), kFloatTypes));
    if (p.shape().rank() != 1 || p.shape()[0] != channels) {
      return Invalid(node, std::string("input ") + kParamNames[i] + " has shape " +
                               p.shape().ToString() + ", expected [" + Str(channels) + "]");
    }
    params[i] = ToDoubles(p);
  }
  ASSIGN_OR_RETURN(float epsilon, FloatAttr(node, "epsilon", 1e-5f));
  // Y = scale * (X - mean) / sqrt(var + epsilon) + B, folded per channel into X * mul + add.
  std::vector<double> mul(channels);
  std::vector<double> add(channels);
  for (int64_t c = 0; c < channels; ++c) {
    mul[c] = params[0][c] / std::sqrt(params[3][c] + static_cast<double>(epsilon));
    add[c] = params[1][c] - params[2][c] * mul[c];
  }
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, x.dtype(), x.shape()));
  if (x.dtype() == DType::kFloat32) {
    BatchNormLoops<float>(xd[0], channels, inner, mul, add, x.Span<float>(),
                          outputs[0].Span<float>());
  } else {
    BatchNormLoops<double>(xd[0], channels, inner, mul, add, x.Span<double>(),
                           outputs[0].Span<double>());
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Softmax and LogSoftmax

template <typename T>
void SoftmaxLoops(bool log, int64_t outer, int64_t len, int64_t inner, std::span<const T> x,
                  std::span<T> y) {
  if (y.empty()) return;  // the loop bounds may multiply to a huge count around a zero dim
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * len * inner + i;
      // Subtracting the max keeps exp() from overflowing; it cancels out mathematically.
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < len; ++j)
        max = std::max(max, static_cast<double>(x[base + j * inner]));
      double sum = 0;
      for (int64_t j = 0; j < len; ++j)
        sum += std::exp(static_cast<double>(x[base + j * inner]) - max);
      const double log_sum = std::log(sum);
      for (int64_t j = 0; j < len; ++j) {
        const double shifted = static_cast<double>(x[base + j * inner]) - max;
        y[base + j * inner] = static_cast<T>(log ? shifted - log_sum : std::exp(shifted) / sum);
      }
    }
  }
}

Status SoftmaxCommon(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs, bool log) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 1, 1));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& x = inputs[0];
  RETURN_IF_ERROR(CheckDType(node, "input", x.dtype(), kFloatTypes));
  const Dims& xd = x.shape().dims();
  const int64_t rank = static_cast<int64_t>(xd.size());
  if (rank == 0) return Invalid(node, "input is a scalar; expected rank >= 1");
  // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row normalised;
  // from 13 the normalisation runs along the single `axis` (default -1).
  const bool coerce_2d = opset < 13;
  ASSIGN_OR_RETURN(int64_t axis_attr, IntAttr(node, "axis", coerce_2d ? 1 : -1));
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, axis_attr, rank));
  const int64_t outer = Product(xd, 0, axis);
  const int64_t len = coerce_2d ? Product(xd, axis, xd.size()) : xd[axis];
  const int64_t inner = coerce_2d ? 1 : Product(xd, axis + 1, xd.size());
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, x.dtype(), x.shape()));
  if (x.dtype() == DType::kFloat32) {
    SoftmaxLoops<float>(log, outer, len, inner, x.Span<float>(), outputs[0].Span<float>());
  } else {
    SoftmaxLoops<double>(log, outer, len, inner, x.Span<double>(), outputs[0].Span<double>());
  }
  return Status::Ok();
}

Status Softmax(const Node& node, int64_t opset, std::span<const Tensor> inputs,
               std::vector<Tensor>& outputs) {
  return SoftmaxCommon(node, opset, inputs, outputs, false);
}

Status LogSoftmax(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                  std::vector<Tensor>& outputs) {
  return SoftmaxCommon(node, opset, inputs, outputs, true);
}

// ---------------------------------------------------------------------------------------------
// QuantizeLinear and DequantizeLinear

// How scale and zero point map onto the elements of x: one value for all (per-tensor), or one
// per index along `axis` (per-axis, opset 13+), element e using (e / inner) % axis_dim.
struct QuantParams {
  bool per_axis = false;
  int64_t inner = 1;
  int64_t axis_dim = 1;
  int64_t Index(int64_t e) const { return per_axis ? (e / inner) % axis_dim : 0; }
};

Status ResolveQuantParams(const Node& node, int64_t opset, const Tensor& x, const Tensor& scale,
                          const Tensor* zero_point, QuantParams& q) {
  if (node.Has("block_size")) {
    ASSIGN_OR_RETURN(int64_t block_size, IntAttr(node, "block_size", 0));
    if (block_size != 0) return Unsupported(node, "blocked quantization is not supported");
  }
  if (scale.dtype() != DType::kFloat32) {
    return CheckDType(node, "scale", scale.dtype(), {DType::kFloat32});
  }
  // One-element scale and zero point are both per-tensor whatever their ranks: onnxruntime's
  // quantize_static writes a [1] scale with a scalar zero point for per-channel biases of one
  // channel.
  if (zero_point && zero_point->shape() != scale.shape() &&
      !(zero_point->num_elements() == 1 && scale.num_elements() == 1)) {
    return Invalid(node, "zero point of shape " + zero_point->shape().ToString() +
                             " differs from the scale's " + scale.shape().ToString());
  }
  const Dims& sd = scale.shape().dims();
  // A one-element 1-D scale is per-tensor, as onnxruntime reads it.
  if (sd.empty() || (sd.size() == 1 && sd[0] == 1)) return Status::Ok();
  if (sd.size() != 1) {
    return Invalid(
        node, "scale has shape " + DimsStr(sd) + "; expected a scalar or a 1-D per-axis vector");
  }
  if (opset < 13) {
    return Invalid(node, "scale has shape " + DimsStr(sd) +
                             "; before opset 13 only a per-tensor scalar scale is allowed");
  }
  const Dims& xd = x.shape().dims();
  ASSIGN_OR_RETURN(int64_t axis_attr, IntAttr(node, "axis", 1));
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, axis_attr, static_cast<int64_t>(xd.size())));
  if (sd[0] != xd[axis]) {
    return Invalid(node, "per-axis scale has " + Str(sd[0]) + " values but axis " + Str(axis) +
                             " of input " + DimsStr(xd) + " has size " + Str(xd[axis]));
  }
  q.per_axis = true;
  q.axis_dim = xd[axis];
  q.inner = Product(xd, axis + 1, xd.size());
  return Status::Ok();
}

// Rounds half to even (numpy's rint, the ONNX rule) regardless of the FP rounding mode.
double RoundHalfEven(double v) {
  // std::round takes halves away from zero; a half goes to the even neighbour instead.
  if (std::abs(v - std::trunc(v)) == 0.5) return 2.0 * std::round(v / 2.0);
  return std::round(v);
}

template <typename Q, typename X>
void QuantizeLoops(const QuantParams& q, std::span<const X> x, std::span<const float> scale,
                   const Tensor* zero_point, std::span<Q> y) {
  constexpr double kLo = std::numeric_limits<Q>::min();
  constexpr double kHi = std::numeric_limits<Q>::max();
  for (std::size_t e = 0; e < x.size(); ++e) {
    const int64_t p = q.Index(static_cast<int64_t>(e));
    const double zp = zero_point ? static_cast<double>(zero_point->Span<Q>()[p]) : 0.0;
    // float32 input divides in float32 as the ONNX reference and onnxruntime do, so that ties
    // land where theirs do; int32 input divides in double (numpy promotes int32 / float32).
    double v;
    if constexpr (std::is_same_v<X, float>) {
      v = static_cast<double>(x[e] / scale[p]);
    } else {
      v = static_cast<double>(x[e]) / static_cast<double>(scale[p]);
    }
    // NaN has no integer value; it maps to the zero point (real value 0).
    const double r = std::isnan(v) ? zp : RoundHalfEven(v) + zp;
    y[e] = static_cast<Q>(std::clamp(r, kLo, kHi));
  }
}

Status QuantizeLinear(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                      std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 2, 3));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& x = inputs[0];
  const Tensor& scale = inputs[1];
  const Tensor* zero_point = OptionalInput(inputs, 2);
  RETURN_IF_ERROR(CheckDType(node, "input x", x.dtype(), {DType::kFloat32, DType::kInt32}));
  if (node.Has("output_dtype")) {
    return Unsupported(node, "the output_dtype attribute is not supported");
  }
  const DType out_type = zero_point ? zero_point->dtype() : DType::kUInt8;
  RETURN_IF_ERROR(CheckDType(node, "zero point", out_type, {DType::kUInt8, DType::kInt8},
                             {DType::kUInt16, DType::kInt16}));
  QuantParams q;
  RETURN_IF_ERROR(ResolveQuantParams(node, opset, x, scale, zero_point, q));
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, out_type, x.shape()));
  const auto s = scale.Span<float>();
  if (x.dtype() == DType::kFloat32) {
    if (out_type == DType::kUInt8) {
      QuantizeLoops<uint8_t, float>(q, x.Span<float>(), s, zero_point, outputs[0].Span<uint8_t>());
    } else {
      QuantizeLoops<int8_t, float>(q, x.Span<float>(), s, zero_point, outputs[0].Span<int8_t>());
    }
  } else {
    if (out_type == DType::kUInt8) {
      QuantizeLoops<uint8_t, int32_t>(q, x.Span<int32_t>(), s, zero_point,
                                      outputs[0].Span<uint8_t>());
    } else {
      QuantizeLoops<int8_t, int32_t>(q, x.Span<int32_t>(), s, zero_point,
                                     outputs[0].Span<int8_t>());
    }
  }
  return Status::Ok();
}

template <typename Q>
void DequantizeLoops(const QuantParams& q, std::span<const Q> x, std::span<const float> scale,
                     const Tensor* zero_point, std::span<float> y) {
  for (std::size_t e = 0; e < x.size(); ++e) {
    const int64_t p = q.Index(static_cast<int64_t>(e));
    const int64_t zp = zero_point ? static_cast<int64_t>(zero_point->Span<Q>()[p]) : 0;
    // Integer difference first (exact), then one float32 multiply, as onnxruntime computes it.
    y[e] = static_cast<float>(static_cast<int64_t>(x[e]) - zp) * scale[p];
  }
}

Status DequantizeLinear(const Node& node, int64_t opset, std::span<const Tensor> inputs,
                        std::vector<Tensor>& outputs) {
  RETURN_IF_ERROR(CheckInputs(node, inputs, 2, 3));
  RETURN_IF_ERROR(PrepareOutputs(node, outputs, 1));
  const Tensor& x = inputs[0];
  const Tensor& scale = inputs[1];
  const Tensor* zero_point = OptionalInput(inputs, 2);
  RETURN_IF_ERROR(CheckDType(node, "input x", x.dtype(),
                             {DType::kUInt8, DType::kInt8, DType::kInt32},
                             {DType::kUInt16, DType::kInt16}));
  if (zero_point) RETURN_IF_ERROR(CheckSameDType(node, "zero point", *zero_point, x.dtype()));
  QuantParams q;
  RETURN_IF_ERROR(ResolveQuantParams(node, opset, x, scale, zero_point, q));
  if (zero_point && x.dtype() == DType::kInt32) {
    for (int32_t z : zero_point->Span<int32_t>()) {
      if (z != 0) return Invalid(node, "an int32 input requires a zero point of 0, got " + Str(z));
    }
  }
  ASSIGN_OR_RETURN(outputs[0], Allocate(node, DType::kFloat32, x.shape()));
  const auto s = scale.Span<float>();
  auto y = outputs[0].Span<float>();
  switch (x.dtype()) {
    case DType::kUInt8:
      DequantizeLoops<uint8_t>(q, x.Span<uint8_t>(), s, zero_point, y);
      break;
    case DType::kInt8:
      DequantizeLoops<int8_t>(q, x.Span<int8_t>(), s, zero_point, y);
      break;
    default:
      DequantizeLoops<int32_t>(q, x.Span<int32_t>(), s, zero_point, y);
      break;
  }
  return Status::Ok();
}

}  // namespace

void RegisterNnKernels(KernelMap& m) {
  m["Conv"] = &Conv;
  m["Gemm"] = &Gemm;
  m["MatMul"] = &MatMul;
  m["MaxPool"] = &MaxPool;
  m["AveragePool"] = &AveragePool;
  m["GlobalAveragePool"] = &GlobalAveragePool;
  m["GlobalMaxPool"] = &GlobalMaxPool;
  m["BatchNormalization"] = &BatchNormalization;
  m["Softmax"] = &Softmax;
  m["LogSoftmax"] = &LogSoftmax;
  m["QuantizeLinear"] = &QuantizeLinear;
  m["DequantizeLinear"] = &DequantizeLinear;
}

}  // namespace larserve::runtime::ref

// Reference shape and layout kernels: Flatten, Reshape, Transpose, Concat, Shape, Gather,
// Unsqueeze, Squeeze, Identity, Dropout (inference) and Constant.
//
// These ops move elements without looking at them, so they work on every dtype by copying
// DTypeSize(dtype) bytes per element. Outputs never alias inputs: callers may write to an
// output buffer without disturbing the value it came from.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernel_util.h"
#include "registry.h"

namespace larserve::runtime::ref {
namespace {

using internal::CheckTensor;
using internal::Input;
using internal::Invalid;
using internal::IsPresent;
using internal::OptionalInput;

std::string DimsToString(const std::vector<int64_t>& dims) { return Shape(dims).ToString(); }

// Maps axis from [-rank, rank) (or [-rank, rank] when `inclusive_end`) onto [0, rank).
StatusOr<int64_t> NormalizeAxis(const graph::Node& node, int64_t axis, int64_t rank,
                                bool inclusive_end = false) {
  const int64_t hi = inclusive_end ? rank : rank - 1;
  if (axis < -rank || axis > hi) {
    return Invalid(
        node, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

int64_t Product(const std::vector<int64_t>& dims, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= dims[i];
  return p;
}

// A new tensor holding x's bytes under another shape of the same element count.
StatusOr<Tensor> CopyWithShape(const Tensor& x, Shape shape) {
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(x.dtype(), std::move(shape)));
  if (out.num_bytes() != 0) std::memcpy(out.data(), x.data(), out.num_bytes());
  return out;
}

// The values of a 1-D (or, where `allow_scalar`, 0-D) int64 tensor such as Reshape's shape.
StatusOr<std::vector<int64_t>> ReadInt64s(const graph::Node& node, const Tensor& t,
                                          std::string_view what, bool allow_scalar) {
  if (t.dtype() != DType::kInt64) {
    return Invalid(node,
                   std::string(what) + " must be INT64, got " + std::string(DTypeName(t.dtype())));
  }
  if (t.shape().rank() != 1 && !(allow_scalar && t.shape().rank() == 0)) {
    return Invalid(node, std::string(what) + " must be 1-D, got shape " + t.shape().ToString());
  }
  auto s = t.Span<int64_t>();
  return std::vector<int64_t>(s.begin(), s.end());
}

Status Single(std::vector<Tensor>& outputs, Tensor out) {
  outputs.clear();
  outputs.push_back(std::move(out));
  return Status::Ok();
}

Status FlattenKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "input"));
  const auto& dims = x->shape().dims();
  const int64_t rank = static_cast<int64_t>(dims.size());
  ASSIGN_OR_RETURN(const int64_t axis,
                   NormalizeAxis(node, node.GetInt("axis", 1), rank, /*inclusive_end=*/true));
  const auto a = static_cast<std::size_t>(axis);
  ASSIGN_OR_RETURN(Tensor out,
                   CopyWithShape(*x, Shape{Product(dims, 0, a), Product(dims, a, dims.size())}));
  return Single(outputs, std::move(out));
}

Status ReshapeKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "data"));
  ASSIGN_OR_RETURN(const Tensor* shape_t, Input(node, inputs, 1, "shape"));
  ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                   ReadInt64s(node, *shape_t, "shape", /*allow_scalar=*/false));
  const bool allowzero = opset >= 14 && node.GetInt("allowzero", 0) != 0;
  const auto& in = x->shape().dims();
  int infer = -1;  // index of the -1 entry
  bool has_zero = false;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (infer >= 0) return Invalid(node, "shape " + DimsToString(dims) + " has more than one -1");
      infer = static_cast<int>(i);
    } else if (dims[i] < -1) {
      return Invalid(node, "shape " + DimsToString(dims) + " has a negative entry");
    } else if (dims[i] == 0) {
      has_zero = true;
      if (!allowzero) {
        if (i >= in.size()) {
          return Invalid(node, "shape " + DimsToString(dims) + " copies dimension " +
                                   std::to_string(i) + " of input shape " + x->shape().ToString() +
                                   ", which has no such dimension");
        }
        dims[i] = in[i];
      }
    }
  }
  if (allowzero && has_zero && infer >= 0) {
    return Invalid(node, "shape " + DimsToString(dims) + " has both 0 and -1 with allowzero=1");
  }
  // Product of the known entries, refusing overflow: a huge target cannot match the input.
  const int64_t count = x->num_elements();
  int64_t known = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (static_cast<int>(i) == infer) continue;
    if (__builtin_mul_overflow(known, dims[i], &known)) {
      return Invalid(node, "shape " + DimsToString(dims) + " has too many elements");
    }
  }
  if (infer >= 0) {
    if (known == 0 || count % known != 0) {
      return Invalid(node, "cannot infer the -1 in shape " + DimsToString(dims) +
                               " for an input of shape " + x->shape().ToString());
    }
    dims[infer] = count / known;
  } else if (known != count) {
    return Invalid(node, "cannot reshape " + x->shape().ToString() + " to " + DimsToString(dims) +
                             ": element counts differ");
  }
  ASSIGN_OR_RETURN(Tensor out, CopyWithShape(*x, Shape(std::move(dims))));
  return Single(outputs, std::move(out));
}

Status TransposeKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                       std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "data"));
  const auto& in = x->shape().dims();
  const std::size_t rank = in.size();
  std::vector<int64_t> perm;
  if (node.Has("perm")) {
    perm = node.GetInts("perm");
  } else {
    for (std::size_t i = rank; i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  }
  std::vector<bool> seen(rank, false);
  bool valid = perm.size() == rank;
  for (std::size_t i = 0; valid && i < rank; ++i) {
    valid = perm[i] >= 0 && perm[i] < static_cast<int64_t>(rank) && !seen[perm[i]];
    if (valid) seen[perm[i]] = true;
  }
  if (!valid) {
    return Invalid(node, "perm " + DimsToString(perm) + " is not a permutation of the " +
                             std::to_string(rank) + " axes of input shape " +
                             x->shape().ToString());
  }
  std::vector<int64_t> in_strides(rank, 1);
  for (std::size_t d = rank; d-- > 1;) in_strides[d - 1] = in_strides[d] * in[d];
  std::vector<int64_t> out_dims(rank);
  for (std::size_t i = 0; i < rank; ++i) out_dims[i] = in[perm[i]];
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(x->dtype(), Shape(out_dims)));
  const std::size_t esize = DTypeSize(x->dtype());
  const auto* src = static_cast<const char*>(x->data());
  auto* dst = static_cast<char*>(out.data());
  const int64_t n = out.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    // Output axis d walks input axis perm[d].
    int64_t rem = i, offset = 0;
    for (std::size_t d = rank; d-- > 0;) {
      offset += (rem % out_dims[d]) * in_strides[perm[d]];
      rem /= out_dims[d];
    }
    std::memcpy(dst + i * esize, src + offset * esize, esize);
  }
  return Single(outputs, std::move(out));
}

Status ConcatKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                    std::vector<Tensor>& outputs) {
  if (inputs.empty()) return Invalid(node, "needs at least one input");
  if (!node.Has("axis")) return Invalid(node, "missing required attribute 'axis'");
  std::vector<const Tensor*> xs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, i, "#" + std::to_string(i)));
    xs.push_back(x);
  }
  const Tensor& first = *xs[0];
  const auto& dims0 = first.shape().dims();
  const int64_t rank = static_cast<int64_t>(dims0.size());
  if (rank == 0) return Invalid(node, "cannot concatenate scalars");
  ASSIGN_OR_RETURN(const int64_t axis_i, NormalizeAxis(node, node.GetInt("axis", 0), rank));
  const auto axis = static_cast<std::size_t>(axis_i);
  std::vector<int64_t> out_dims = dims0;
  out_dims[axis] = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const auto& dims = xs[i]->shape().dims();
    if (xs[i]->dtype() != first.dtype()) {
      return Invalid(node, "input #" + std::to_string(i) + " has dtype " +
                               std::string(DTypeName(xs[i]->dtype())) + ", input #0 has " +
                               std::string(DTypeName(first.dtype())));
    }
    bool compatible = dims.size() == dims0.size();
    for (std::size_t d = 0; compatible && d < dims.size(); ++d) {
      compatible = d == axis || dims[d] == dims0[d];
    }
    if (!compatible) {
      return Invalid(node, "input #" + std::to_string(i) + " has shape " +
                               xs[i]->shape().ToString() + ", incompatible with input #0 shape " +
                               first.shape().ToString() + " along axis " + std::to_string(axis));
    }
    out_dims[axis] += dims[axis];
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(first.dtype(), Shape(out_dims)));
  // Viewed as [outer, dims[axis] * inner], each input contributes one contiguous row chunk per
  // outer index, and the output rows are those chunks side by side.
  const std::size_t esize = DTypeSize(first.dtype());
  const int64_t outer = Product(dims0, 0, axis);
  const int64_t inner = Product(dims0, axis + 1, dims0.size());
  auto* dst = static_cast<char*>(out.data());
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* x : xs) {
      const int64_t chunk = x->shape()[axis] * inner;
      const auto* src = static_cast<const char*>(x->data()) + o * chunk * esize;
      if (chunk != 0) std::memcpy(dst, src, chunk * esize);
      dst += chunk * esize;
    }
  }
  return Single(outputs, std::move(out));
}

Status ShapeKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                   std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "data"));
  const auto& dims = x->shape().dims();
  const int64_t rank = static_cast<int64_t>(dims.size());
  int64_t start = 0, end = rank;
  if (opset >= 15) {
    // Out-of-range start/end are clamped, not rejected (ONNX Shape-15).
    auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
    start = clamp(node.GetInt("start", 0));
    if (node.Has("end")) end = clamp(node.GetInt("end", rank));
  }
  const int64_t n = std::max<int64_t>(end - start, 0);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(DType::kInt64, Shape{n}));
  auto o = out.Span<int64_t>();
  for (int64_t i = 0; i < n; ++i) o[i] = dims[start + i];
  return Single(outputs, std::move(out));
}

Status GatherKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                    std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* data, Input(node, inputs, 0, "data"));
  ASSIGN_OR_RETURN(const Tensor* indices, Input(node, inputs, 1, "indices"));
  const auto& dims = data->shape().dims();
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (rank == 0) return Invalid(node, "data must have rank >= 1");
  ASSIGN_OR_RETURN(const int64_t axis_i, NormalizeAxis(node, node.GetInt("axis", 0), rank));
  const auto axis = static_cast<std::size_t>(axis_i);
  std::vector<int64_t> idx;
  if (indices->dtype() == DType::kInt64) {
    auto s = indices->Span<int64_t>();
    idx.assign(s.begin(), s.end());
  } else if (indices->dtype() == DType::kInt32) {
    auto s = indices->Span<int32_t>();
    idx.assign(s.begin(), s.end());
  } else {
    return Invalid(
        node, "indices must be INT32 or INT64, got " + std::string(DTypeName(indices->dtype())));
  }
  const int64_t axis_dim = dims[axis];
  for (int64_t& i : idx) {
    if (i < -axis_dim || i >= axis_dim) {
      return Invalid(node, "index " + std::to_string(i) + " is out of range for axis " +
                               std::to_string(axis) + " of size " + std::to_string(axis_dim));
    }
    if (i < 0) i += axis_dim;
  }
  // Output shape: data.shape[:axis] + indices.shape + data.shape[axis+1:].
  std::vector<int64_t> out_dims(dims.begin(), dims.begin() + axis);
  out_dims.insert(out_dims.end(), indices->shape().dims().begin(), indices->shape().dims().end());
  out_dims.insert(out_dims.end(), dims.begin() + axis + 1, dims.end());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(data->dtype(), Shape(std::move(out_dims))));
  const std::size_t esize = DTypeSize(data->dtype());
  const int64_t outer = Product(dims, 0, axis);
  const int64_t inner_bytes = Product(dims, axis + 1, dims.size()) * static_cast<int64_t>(esize);
  const auto* src = static_cast<const char*>(data->data());
  auto* dst = static_cast<char*>(out.data());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i : idx) {
      if (inner_bytes != 0) std::memcpy(dst, src + (o * axis_dim + i) * inner_bytes, inner_bytes);
      dst += inner_bytes;
    }
  }
  return Single(outputs, std::move(out));
}

// Squeeze/Unsqueeze axes: the `axes` attribute before opset 13, the second input from 13 on.
StatusOr<std::vector<int64_t>> SqueezeAxes(const graph::Node& node, int64_t opset,
                                           std::span<const Tensor> inputs, bool* given) {
  if (opset < 13) {
    *given = node.Has("axes");
    return node.GetInts("axes");
  }
  ASSIGN_OR_RETURN(const Tensor* axes, OptionalInput(node, inputs, 1, "axes"));
  *given = axes != nullptr;
  if (!axes) return std::vector<int64_t>{};
  return ReadInt64s(node, *axes, "axes", /*allow_scalar=*/true);
}

// Normalises `axes` against `rank` and rejects duplicates.
StatusOr<std::vector<bool>> AxisSet(const graph::Node& node, const std::vector<int64_t>& axes,
                                    int64_t rank) {
  std::vector<bool> set(rank, false);
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(const int64_t n, NormalizeAxis(node, a, rank));
    if (set[n]) return Invalid(node, "axes " + DimsToString(axes) + " repeat an axis");
    set[n] = true;
  }
  return set;
}

Status UnsqueezeKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                       std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "data"));
  bool given = false;
  ASSIGN_OR_RETURN(const std::vector<int64_t> axes, SqueezeAxes(node, opset, inputs, &given));
  if (!given) return Invalid(node, "axes are required");
  const auto& in = x->shape().dims();
  // Negative axes count from the end of the output.
  const int64_t out_rank = static_cast<int64_t>(in.size() + axes.size());
  ASSIGN_OR_RETURN(const std::vector<bool> inserted, AxisSet(node, axes, out_rank));
  std::vector<int64_t> out_dims;
  std::size_t next = 0;
  for (int64_t d = 0; d < out_rank; ++d) out_dims.push_back(inserted[d] ? 1 : in[next++]);
  ASSIGN_OR_RETURN(Tensor out, CopyWithShape(*x, Shape(std::move(out_dims))));
  return Single(outputs, std::move(out));
}

Status SqueezeKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "data"));
  bool given = false;
  ASSIGN_OR_RETURN(const std::vector<int64_t> axes, SqueezeAxes(node, opset, inputs, &given));
  const auto& in = x->shape().dims();
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<bool> removed(rank, false);
  if (given) {
    ASSIGN_OR_RETURN(removed, AxisSet(node, axes, rank));
  } else {
    for (int64_t d = 0; d < rank; ++d) removed[d] = in[d] == 1;
  }
  std::vector<int64_t> out_dims;
  for (int64_t d = 0; d < rank; ++d) {
    if (!removed[d]) {
      out_dims.push_back(in[d]);
    } else if (in[d] != 1) {
      return Invalid(node, "cannot squeeze axis " + std::to_string(d) + " of size " +
                               std::to_string(in[d]) + " in shape " + x->shape().ToString());
    }
  }
  ASSIGN_OR_RETURN(Tensor out, CopyWithShape(*x, Shape(std::move(out_dims))));
  return Single(outputs, std::move(out));
}

Status IdentityKernel(const graph::Node& node, int64_t, std::span<const Tensor> inputs,
                      std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "input"));
  ASSIGN_OR_RETURN(Tensor out, CopyWithShape(*x, x->shape()));
  return Single(outputs, std::move(out));
}

// Reads a scalar (or one-element) input of one of the float dtypes as a double.
StatusOr<double> ReadFloatScalar(const graph::Node& node, const Tensor& t, std::string_view what) {
  if (t.num_elements() != 1) {
    return Invalid(node,
                   std::string(what) + " must be a scalar, got shape " + t.shape().ToString());
  }
  switch (t.dtype()) {
    case DType::kFloat32:
      return t.Span<float>()[0];
    case DType::kFloat64:
      return t.Span<double>()[0];
    case DType::kFloat16: {
      const uint16_t bits = t.Span<uint16_t>()[0];
      const int exp = (bits >> 10) & 0x1f;
      const int mant = bits & 0x3ff;
      double v = exp == 0    ? std::ldexp(mant, -24)
                 : exp == 31 ? (mant ? std::nan("") : HUGE_VAL)
                             : std::ldexp(mant + 1024, exp - 25);
      return (bits & 0x8000) ? -v : v;
    }
    case DType::kBFloat16: {
      // bfloat16 is the top half of a float32.
      const uint32_t bits = uint32_t{t.Span<uint16_t>()[0]} << 16;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    default:
      return Invalid(node, std::string(what) + " must be a float type, got " +
                               std::string(DTypeName(t.dtype())));
  }
}

Status DropoutKernel(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                     std::vector<Tensor>& outputs) {
  ASSIGN_OR_RETURN(const Tensor* x, Input(node, inputs, 0, "data"));
  double ratio = node.GetFloat("ratio", 0.5f);
  bool training = false;
  if (opset >= 12) {
    ratio = 0.5;
    ASSIGN_OR_RETURN(const Tensor* ratio_t, OptionalInput(node, inputs, 1, "ratio"));
    ASSIGN_OR_RETURN(const Tensor* mode_t, OptionalInput(node, inputs, 2, "training_mode"));
    if (ratio_t) {
      ASSIGN_OR_RETURN(ratio, ReadFloatScalar(node, *ratio_t, "ratio"));
    }
    if (mode_t) {
      if (mode_t->dtype() != DType::kBool || mode_t->num_elements() != 1) {
        return Invalid(node, "training_mode must be a BOOL scalar, got " +
                                 std::string(DTypeName(mode_t->dtype())) + " " +
                                 mode_t->shape().ToString());
      }
      training = mode_t->Span<bool>()[0];
    }
  }
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    return Invalid(node, "ratio " + std::to_string(ratio) + " is outside [0, 1)");
  }
  // With ratio 0 training drops nothing and scales by 1, so it equals inference.
  if (training && ratio != 0.0) {
    return Unimplemented(node.Describe() + ": training-mode dropout is not supported");
  }
  ASSIGN_OR_RETURN(Tensor out, CopyWithShape(*x, x->shape()));
  RETURN_IF_ERROR(Single(outputs, std::move(out)));
  if (node.outputs.size() >= 2) {
    Tensor mask;
    if (node.outputs[1] >= 0) {
      if (opset < 10) {
        return Unimplemented(node.Describe() +
                             ": the mask output before opset 10 is not supported");
      }
      ASSIGN_OR_RETURN(mask, Tensor::Create(DType::kBool, x->shape()));
      for (bool& m : mask.Span<bool>()) m = true;
    }
    outputs.push_back(std::move(mask));
  }
  return Status::Ok();
}

Status ConstantKernel(const graph::Node& node, int64_t, std::span<const Tensor>,
                      std::vector<Tensor>& outputs) {
  using Kind = graph::Attribute::Kind;
  static constexpr const char* kKeys[] = {"value",         "value_float", "value_floats",
                                          "value_int",     "value_ints",  "value_string",
                                          "value_strings", "sparse_value"};
  std::string key;
  for (const char* k : kKeys) {
    if (!node.Has(k)) continue;
    if (!key.empty()) {
      return Invalid(node, "has both '" + key + "' and '" + k + "'; exactly one is allowed");
    }
    key = k;
  }
  if (key.empty()) return Invalid(node, "needs one of the value attributes");
  if (key == "value_string" || key == "value_strings") {
    return Unimplemented(node.Describe() + ": string constants are not supported");
  }
  if (key == "sparse_value") {
    return Unimplemented(node.Describe() + ": sparse constants are not supported");
  }
  const graph::Attribute& attr = node.attrs.find(key)->second;
  const Kind expected = key == "value"          ? Kind::kTensor
                        : key == "value_float"  ? Kind::kFloat
                        : key == "value_floats" ? Kind::kFloats
                        : key == "value_int"    ? Kind::kInt
                                                : Kind::kInts;
  if (attr.kind != expected) return Invalid(node, "attribute '" + key + "' has the wrong kind");
  Tensor out;
  if (key == "value") {
    const Tensor& t = attr.t;
    if (t.empty()) return Invalid(node, "attribute 'value' holds no tensor");
    RETURN_IF_ERROR(CheckTensor(node, t, "attribute 'value'"));
    ASSIGN_OR_RETURN(out, CopyWithShape(t, t.shape()));
  } else if (key == "value_float") {
    ASSIGN_OR_RETURN(out, Tensor::Create(DType::kFloat32, Shape{}));
    out.Span<float>()[0] = attr.f;
  } else if (key == "value_floats") {
    ASSIGN_OR_RETURN(
        out, Tensor::Create(DType::kFloat32, Shape{static_cast<int64_t>(attr.floats.size())}));
    std::copy(attr.floats.begin(), attr.floats.end(), out.Span<float>().begin());
  } else if (key == "value_int") {
    ASSIGN_OR_RETURN(out, Tensor::Create(DType::kInt64, Shape{}));
    out.Span<int64_t>()[0] = attr.i;
  } else {
    ASSIGN_OR_RETURN(out,
                     Tensor::Create(DType::kInt64, Shape{static_cast<int64_t>(attr.ints.size())}));
    std::copy(attr.ints.begin(), attr.ints.end(), out.Span<int64_t>().begin());
  }
  return Single(outputs, std::move(out));
}

}  // namespace

void RegisterTensorKernels(KernelMap& m) {
  m["Flatten"] = &FlattenKernel;
  m["Reshape"] = &ReshapeKernel;
  m["Transpose"] = &TransposeKernel;
  m["Concat"] = &ConcatKernel;
  m["Shape"] = &ShapeKernel;
  m["Gather"] = &GatherKernel;
  m["Unsqueeze"] = &UnsqueezeKernel;
  m["Squeeze"] = &SqueezeKernel;
  m["Identity"] = &IdentityKernel;
  m["Dropout"] = &DropoutKernel;
  m["Constant"] = &ConstantKernel;
}

}  // namespace larserve::runtime::ref

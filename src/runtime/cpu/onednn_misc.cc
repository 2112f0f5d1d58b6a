// oneDNN kernels of the lighter ops: MaxPool / AveragePool / GlobalAveragePool (pooling),
// Softmax, Relu / LeakyRelu / Sigmoid / Tanh / Clip (eltwise), Add / Sub / Mul / Div (binary),
// Concat, BatchNormalization (inference), Transpose (reorder), and Reshape / Flatten, which
// are views of their input (no data movement) unless their output leaves the graph.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "onednn_common.h"
#include "onednn_kernels.h"

namespace larserve::runtime::cpu {
namespace {

using dnnl::memory;
using Kind = graph::Attribute::Kind;
using Tag = memory::format_tag;

constexpr auto kF32 = memory::data_type::f32;

std::string DimsStr(const Dims& d) { return Shape(d).ToString(); }

bool OneOutput(const graph::Node& node) { return node.outputs.size() == 1; }

bool KnownRankIs(const graph::Graph& g, int v, std::size_t rank) {
  return !g.values[v].has_shape || g.values[v].dims.size() == rank;
}

// ---------------------------------------------------------------------------------------------
// Pools: 2-D MaxPool and AveragePool (no dilation, ceil_mode 0), GlobalAveragePool.

bool SupportsPool(const graph::Graph& g, const graph::Node& node) {
  const bool max = node.op_type == "MaxPool";
  if (node.inputs.size() != 1 || !IsF32(g, node.inputs[0])) return false;
  // MaxPool's optional Indices output is not computed here.
  const bool outputs_ok =
      node.outputs.size() == 1 || (max && node.outputs.size() == 2 && node.outputs[1] < 0);
  if (!outputs_ok) return false;
  if (!KnownRankIs(g, node.inputs[0], 4)) return false;
  if (!AttrIs(node, "kernel_shape", Kind::kInts)) return false;
  const Dims kernel = node.GetInts("kernel_shape");
  if (kernel.size() != 2 || kernel[0] < 1 || kernel[1] < 1) return false;
  for (const char* key : {"ceil_mode", "count_include_pad", "storage_order"}) {
    if (node.Has(key) && !AttrIs(node, key, Kind::kInt)) return false;
  }
  if (node.GetInt("ceil_mode", 0) != 0) return false;
  if (!WindowAttrsOk(node)) return false;
  for (int64_t d : node.GetInts("dilations", {1, 1})) {
    if (d != 1) return false;
  }
  // A window entirely in the padding is an error in the reference; explicit pads smaller than
  // the kernel rule it out (SAME padding never exceeds kernel - 1).
  if (node.GetString("auto_pad", "NOTSET") == "NOTSET") {
    const Dims pads = node.GetInts("pads", {0, 0, 0, 0});
    for (std::size_t i = 0; i < 4; ++i) {
      if (pads[i] >= kernel[i % 2]) return false;
    }
  }
  return true;
}

class PoolKernel : public OneDnnKernel {
 public:
  PoolKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, node.op_type == "MaxPool" ? "max pool" : "avg pool") {
    if (node.op_type == "MaxPool") {
      alg_ = dnnl::algorithm::pooling_max;
    } else if (node.GetInt("count_include_pad", 0) != 0) {
      alg_ = dnnl::algorithm::pooling_avg_include_padding;
    } else {
      alg_ = dnnl::algorithm::pooling_avg_exclude_padding;
    }
  }

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    if (xd.size() != 4) {
      return InvalidArgument(node_.Describe() + ": input " + DimsStr(xd) +
                             " must have rank 4 for a 2-D pool");
    }
    Window2d w;
    RETURN_IF_ERROR(ResolveWindow2d(node_, {xd[2], xd[3]}, node_.GetInts("kernel_shape"), &w));
    const Dims yd = {xd[0], xd[1], w.out[0], w.out[1]};
    plan.outputs = {yd};
    if (Volume(yd) == 0) return Status::Ok();
    const memory::desc x_md = PlainDesc(xd), y_md = PlainDesc(yd);
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg_, x_md, y_md, w.strides,
                                  w.kernel, w.pad_l, w.pad_r);
    dnnl::pooling_forward::primitive_desc pd(d, MakeAttr({}), CpuEngine());
    plan.NoteImpl("", pd.impl_info_str());
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, plan.Bind(x_md, Source::kInput, 0)},
                                            {DNNL_ARG_DST, plan.Bind(y_md, Source::kOutput, 0)}};
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::pooling_forward(pd), std::move(args));
    return Status::Ok();
  }

 private:
  dnnl::algorithm alg_;
};

bool SupportsGlobalAveragePool(const graph::Graph& g, const graph::Node& node) {
  return node.inputs.size() == 1 && OneOutput(node) && IsF32(g, node.inputs[0]);
}

class GlobalAveragePoolKernel : public OneDnnKernel {
 public:
  GlobalAveragePoolKernel(const graph::Graph& g, const graph::Node& node,
                          const BuildOptions& options)
      : OneDnnKernel(g, node, options, "global avg pool") {}

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    if (xd.size() < 3) {
      return InvalidArgument(node_.Describe() + ": input " + DimsStr(xd) +
                             " must have rank >= 3 (N, C, spatial...)");
    }
    const int64_t size = Volume(Dims(xd.begin() + 2, xd.end()));
    if (size == 0) {
      return InvalidArgument(node_.Describe() + ": input " + DimsStr(xd) +
                             " has an empty spatial extent");
    }
    Dims yd = xd;
    std::fill(yd.begin() + 2, yd.end(), 1);
    plan.outputs = {yd};
    if (Volume(yd) == 0) return Status::Ok();
    // Any number of spatial axes, seen as one: a pooling window over [N, C, size, 1].
    const memory::desc x_md = PlainDesc({xd[0], xd[1], size, 1});
    const memory::desc y_md = PlainDesc({xd[0], xd[1], 1, 1});
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference,
                                  dnnl::algorithm::pooling_avg_exclude_padding, x_md, y_md, {1, 1},
                                  {size, 1}, {0, 0}, {0, 0});
    dnnl::pooling_forward::primitive_desc pd(d, MakeAttr({}), CpuEngine());
    plan.NoteImpl("", pd.impl_info_str());
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, plan.Bind(x_md, Source::kInput, 0)},
                                            {DNNL_ARG_DST, plan.Bind(y_md, Source::kOutput, 0)}};
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::pooling_forward(pd), std::move(args));
    return Status::Ok();
  }
};

// ---------------------------------------------------------------------------------------------
// Softmax: one axis from opset 13; before, the input coerced to 2-D at `axis`, which on a
// row-major tensor is a softmax along axis 1 of the [outer, inner] view.

bool SupportsSoftmax(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() != 1 || !OneOutput(node) || !IsF32(g, node.inputs[0])) return false;
  return !node.Has("axis") || AttrIs(node, "axis", Kind::kInt);
}

class SoftmaxKernel : public OneDnnKernel {
 public:
  SoftmaxKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, "softmax") {}

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    const int64_t rank = static_cast<int64_t>(xd.size());
    if (rank == 0) return InvalidArgument(node_.Describe() + ": input is a scalar");
    const bool coerce_2d = opset_ < 13;
    int64_t axis = node_.GetInt("axis", coerce_2d ? 1 : -1);
    if (axis < -rank || axis >= rank) {
      return InvalidArgument(node_.Describe() + ": axis " + std::to_string(axis) +
                             " is out of range for an input of rank " + std::to_string(rank));
    }
    if (axis < 0) axis += rank;
    plan.outputs = {xd};
    if (Volume(xd) == 0) return Status::Ok();
    Dims view = xd;
    if (coerce_2d) {
      view = {Volume(Dims(xd.begin(), xd.begin() + axis)),
              Volume(Dims(xd.begin() + axis, xd.end()))};
      axis = 1;
    }
    if (view.size() > DNNL_MAX_NDIMS) {
      plan.fallback = true;
      return Status::Ok();
    }
    const memory::desc md = PlainDesc(view);
    // softmax_forward subtracts the maximum first (oneDNN's "accurate" softmax).
    dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, md, static_cast<int>(axis));
    dnnl::softmax_forward::primitive_desc pd(d, MakeAttr({}), CpuEngine());
    plan.NoteImpl("", pd.impl_info_str());
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, plan.Bind(md, Source::kInput, 0)},
                                            {DNNL_ARG_DST, plan.Bind(md, Source::kOutput, 0)}};
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::softmax_forward(pd), std::move(args));
    return Status::Ok();
  }
};

// ---------------------------------------------------------------------------------------------
// Standalone activations as eltwise over the flattened tensor.

// Clip's bounds: attributes before opset 11, constant scalar inputs from 11.
bool ClipBounds(const graph::Graph& g, const graph::Node& node, float* lo, float* hi) {
  if (g.opset < 11) {
    for (const char* key : {"min", "max"}) {
      if (node.Has(key) && !AttrIs(node, key, Kind::kFloat)) return false;
    }
    // The documented defaults before opset 11 are the float limits, not infinities.
    *lo = node.GetFloat("min", std::numeric_limits<float>::lowest());
    *hi = node.GetFloat("max", std::numeric_limits<float>::max());
  } else {
    *lo = -std::numeric_limits<float>::infinity();
    *hi = std::numeric_limits<float>::infinity();
    for (std::size_t i = 1; i < node.inputs.size(); ++i) {
      if (node.inputs[i] < 0) continue;
      const Tensor* t = ConstF32(g, node.inputs[i]);
      const bool scalar =
          t && (t->shape().rank() == 0 || (t->shape().rank() == 1 && t->shape()[0] == 1));
      if (!scalar) return false;
      (i == 1 ? *lo : *hi) = t->Span<float>()[0];
    }
  }
  // ONNX's min > max (result: max everywhere) is not what oneDNN's clip computes.
  return *lo <= *hi;
}

bool SupportsEltwise(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.empty() || !OneOutput(node) || !IsF32(g, node.inputs[0])) return false;
  if (node.op_type == "Clip") {
    if (node.inputs.size() > 3) return false;
    float lo = 0, hi = 0;
    return ClipBounds(g, node, &lo, &hi);
  }
  if (node.inputs.size() != 1) return false;
  if (node.op_type == "LeakyRelu") return !node.Has("alpha") || AttrIs(node, "alpha", Kind::kFloat);
  return true;
}

class EltwiseKernel : public OneDnnKernel {
 public:
  EltwiseKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, "eltwise") {
    const std::string& op = node.op_type;
    if (op == "Relu") {
      alg_ = dnnl::algorithm::eltwise_relu;
    } else if (op == "LeakyRelu") {
      alg_ = dnnl::algorithm::eltwise_relu;
      alpha_ = node.GetFloat("alpha", 0.01f);
    } else if (op == "Sigmoid") {
      alg_ = dnnl::algorithm::eltwise_logistic;
    } else if (op == "Tanh") {
      alg_ = dnnl::algorithm::eltwise_tanh;
    } else {
      alg_ = dnnl::algorithm::eltwise_clip;
      ClipBounds(g, node, &alpha_, &beta_);
    }
  }

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    plan.outputs = {xd};
    const int64_t n = Volume(xd);
    if (n == 0) return Status::Ok();
    const memory::desc md = PlainDesc({n});
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, alg_, md, alpha_, beta_);
    dnnl::eltwise_forward::primitive_desc pd(d, MakeAttr({}), CpuEngine());
    plan.NoteImpl("", pd.impl_info_str());
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, plan.Bind(md, Source::kInput, 0)},
                                            {DNNL_ARG_DST, plan.Bind(md, Source::kOutput, 0)}};
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::eltwise_forward(pd), std::move(args));
    return Status::Ok();
  }

 private:
  dnnl::algorithm alg_;
  float alpha_ = 0;
  float beta_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Add, Sub, Mul, Div with numpy broadcasting. oneDNN broadcasts only its second source, so the
// operand with the output's shape goes first (swapping A and B for Add and Mul); shapes where
// both operands broadcast are left to the reference kernel.

// Whether an operand of shape `a` has the full broadcast shape against `b` (right-aligned, -1 =
// unknown, assumed to be the batch both share or the size the other side needs).
bool Covers(const Dims& a, const Dims& b) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    const int64_t db = b[b.size() - 1 - i];
    const int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    if (db != 1 && da == 1) return false;
  }
  return true;
}

bool SupportsBinary(const graph::Graph& g, const graph::Node& node) {
  // Before opset 7 broadcasting was explicit (attributes broadcast, axis).
  if (g.opset < 7 || node.Has("broadcast") || node.Has("axis")) return false;
  if (node.inputs.size() != 2 || !OneOutput(node) || !IsF32(g, node.inputs[0]) ||
      !IsF32(g, node.inputs[1]))
    return false;
  // Declared shapes that need both operands broadcast (or A broadcast for Sub and Div) are
  // left to the reference backend; undeclared ones are decided per call.
  const graph::Value& a = g.values[node.inputs[0]];
  const graph::Value& b = g.values[node.inputs[1]];
  if (!(a.constant || a.has_shape) || !(b.constant || b.has_shape)) return true;
  const Dims ad = a.constant ? a.constant->shape().dims() : a.dims;
  const Dims bd = b.constant ? b.constant->shape().dims() : b.dims;
  const bool commutative = node.op_type == "Add" || node.op_type == "Mul";
  return Covers(ad, bd) || (commutative && Covers(bd, ad));
}

class BinaryKernel : public OneDnnKernel {
 public:
  BinaryKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, "binary") {
    const std::string& op = node.op_type;
    commutative_ = op == "Add" || op == "Mul";
    alg_ = op == "Add"   ? dnnl::algorithm::binary_add
           : op == "Sub" ? dnnl::algorithm::binary_sub
           : op == "Mul" ? dnnl::algorithm::binary_mul
                         : dnnl::algorithm::binary_div;
  }

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& ad = *shapes[0];
    const Dims& bd = *shapes[1];
    const std::size_t rank = std::max({ad.size(), bd.size(), std::size_t{1}});
    auto pad = [rank](const Dims& d) {
      Dims p(rank - d.size(), 1);
      p.insert(p.end(), d.begin(), d.end());
      return p;
    };
    const Dims a = pad(ad), b = pad(bd);
    Dims out(rank);
    for (std::size_t i = 0; i < rank; ++i) {
      if (a[i] != b[i] && a[i] != 1 && b[i] != 1) {
        return InvalidArgument(node_.Describe() + ": shapes " + DimsStr(ad) + " and " +
                               DimsStr(bd) + " cannot be broadcast together");
      }
      out[i] = a[i] == 1 ? b[i] : a[i];
    }
    // The output has the broadcast rank (a scalar stays a scalar).
    Dims out_shape(out.end() - static_cast<std::ptrdiff_t>(std::max(ad.size(), bd.size())),
                   out.end());
    plan.outputs = {out_shape};
    if (Volume(out) == 0) return Status::Ok();
    int first = 0;
    if (a != out) {
      if (!commutative_ || b != out || rank > DNNL_MAX_NDIMS) {
        plan.fallback = true;
        return Status::Ok();
      }
      first = 1;
    }
    if (rank > DNNL_MAX_NDIMS) {
      plan.fallback = true;
      return Status::Ok();
    }
    const memory::desc src0 = PlainDesc(first == 0 ? a : b);
    const memory::desc src1 = PlainDesc(first == 0 ? b : a);
    const memory::desc dst = PlainDesc(out);
    dnnl::binary::desc d(alg_, src0, src1, dst);
    dnnl::binary::primitive_desc pd(d, MakeAttr({}), CpuEngine());
    plan.NoteImpl("", pd.impl_info_str());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_0, plan.Bind(src0, Source::kInput, first)},
        {DNNL_ARG_SRC_1, plan.Bind(src1, Source::kInput, 1 - first)},
        {DNNL_ARG_DST, plan.Bind(dst, Source::kOutput, 0)}};
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::binary(pd), std::move(args));
    return Status::Ok();
  }

 private:
  bool commutative_ = false;
  dnnl::algorithm alg_;
};

// ---------------------------------------------------------------------------------------------
// Concat

bool SupportsConcat(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.empty() || !OneOutput(node) || !AttrIs(node, "axis", Kind::kInt)) return false;
  for (int v : node.inputs) {
    if (!IsF32(g, v)) return false;
  }
  return true;
}

class ConcatKernel : public OneDnnKernel {
 public:
  ConcatKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, "concat") {}

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    for (const Dims* s : shapes) {
      if (!s) return InvalidArgument(node_.Describe() + ": an input is missing");
    }
    const Dims& d0 = *shapes[0];
    const int64_t rank = static_cast<int64_t>(d0.size());
    if (rank == 0) return InvalidArgument(node_.Describe() + ": cannot concatenate scalars");
    int64_t axis = node_.GetInt("axis", 0);
    if (axis < -rank || axis >= rank) {
      return InvalidArgument(node_.Describe() + ": axis " + std::to_string(axis) +
                             " is out of range for rank " + std::to_string(rank));
    }
    if (axis < 0) axis += rank;
    Dims out = d0;
    out[axis] = 0;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const Dims& d = *shapes[i];
      bool ok = d.size() == d0.size();
      for (std::size_t k = 0; ok && k < d.size(); ++k) {
        ok = static_cast<int64_t>(k) == axis || d[k] == d0[k];
      }
      if (!ok) {
        return InvalidArgument(node_.Describe() + ": input #" + std::to_string(i) + " has shape " +
                               DimsStr(d) + ", incompatible with input #0 shape " + DimsStr(d0) +
                               " along axis " + std::to_string(axis));
      }
      out[axis] += d[axis];
    }
    plan.outputs = {out};
    if (Volume(out) == 0) return Status::Ok();
    if (out.size() > DNNL_MAX_NDIMS) {
      plan.fallback = true;
      return Status::Ok();
    }
    // Empty inputs contribute nothing (and oneDNN rejects zero-sized sources).
    std::vector<memory::desc> srcs;
    std::vector<int> which;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      if (Volume(*shapes[i]) == 0) continue;
      srcs.push_back(PlainDesc(*shapes[i]));
      which.push_back(static_cast<int>(i));
    }
    const memory::desc dst = PlainDesc(out);
    dnnl::concat::primitive_desc pd(dst, static_cast<int>(axis), srcs, CpuEngine(), MakeAttr({}));
    plan.NoteImpl("", pd.impl_info_str());
    std::unordered_map<int, memory> args = {{DNNL_ARG_DST, plan.Bind(dst, Source::kOutput, 0)}};
    for (std::size_t k = 0; k < srcs.size(); ++k) {
      args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(k)] =
          plan.Bind(srcs[k], Source::kInput, which[k]);
    }
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::concat(pd), std::move(args));
    return Status::Ok();
  }
};

// ---------------------------------------------------------------------------------------------
// BatchNormalization (inference) with constant parameters.

bool SupportsBatchNorm(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() != 5 || node.outputs.empty() || !IsF32(g, node.inputs[0])) return false;
  for (std::size_t i = 1; i < node.outputs.size(); ++i) {
    if (node.outputs[i] >= 0) return false;  // training outputs
  }
  if (node.Has("training_mode") &&
      (!AttrIs(node, "training_mode", Kind::kInt) || node.GetInt("training_mode", 0) != 0))
    return false;
  if (node.Has("epsilon") && !AttrIs(node, "epsilon", Kind::kFloat)) return false;
  // Before opset 9 spatial=0 meant per-element statistics.
  if (node.Has("spatial") && node.GetInt("spatial", 1) != 1) return false;
  const graph::Value& x = g.values[node.inputs[0]];
  if (!x.has_shape || x.dims.size() < 2) return false;
  int64_t channels = -1;
  for (int i = 1; i < 5; ++i) {
    const Tensor* p = ConstF32(g, node.inputs[i]);
    if (!p || p->shape().rank() != 1) return false;
    if (channels >= 0 && p->shape()[0] != channels) return false;
    channels = p->shape()[0];
  }
  return x.dims[1] < 0 || x.dims[1] == channels;
}

class BatchNormKernel : public OneDnnKernel {
 public:
  BatchNormKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, "batchnorm"),
        scale_(*ConstF32(g, node.inputs[1])),
        shift_(*ConstF32(g, node.inputs[2])),
        mean_(*ConstF32(g, node.inputs[3])),
        var_(*ConstF32(g, node.inputs[4])),
        epsilon_(node.GetFloat("epsilon", 1e-5f)) {}

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    const int64_t channels = scale_.shape()[0];
    if (xd.size() < 2 || xd[1] != channels) {
      return InvalidArgument(node_.Describe() + ": input " + DimsStr(xd) + " does not have " +
                             std::to_string(channels) + " channels on axis 1");
    }
    plan.outputs = {xd};
    if (Volume(xd) == 0) return Status::Ok();
    // Any rank >= 2 as [N, C, spatial, 1]: the statistics are per channel either way.
    const memory::desc md = PlainDesc({xd[0], channels, Volume(Dims(xd.begin() + 2, xd.end())), 1});
    const auto flags = dnnl::normalization_flags::use_global_stats |
                       dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_inference, md, epsilon_,
                                              flags);
    dnnl::batch_normalization_forward::primitive_desc pd(d, MakeAttr({}), CpuEngine());
    plan.NoteImpl("", pd.impl_info_str());
    const memory::desc c_md({channels}, kF32, Tag::a);
    auto param = [&](const Tensor& t) {
      return memory(c_md, CpuEngine(), const_cast<void*>(t.data()));
    };
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, plan.Bind(md, Source::kInput, 0)},
                                            {DNNL_ARG_DST, plan.Bind(md, Source::kOutput, 0)},
                                            {DNNL_ARG_MEAN, param(mean_)},
                                            {DNNL_ARG_VARIANCE, param(var_)},
                                            {DNNL_ARG_SCALE, param(scale_)},
                                            {DNNL_ARG_SHIFT, param(shift_)}};
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::batch_normalization_forward(pd), std::move(args));
    return Status::Ok();
  }

 private:
  Tensor scale_, shift_, mean_, var_;
  float epsilon_;
};

// ---------------------------------------------------------------------------------------------
// Transpose as a reorder into a destination whose strides are the permuted output strides.

bool SupportsTranspose(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() != 1 || !OneOutput(node) || !IsF32(g, node.inputs[0])) return false;
  return !node.Has("perm") || AttrIs(node, "perm", Kind::kInts);
}

class TransposeKernel : public OneDnnKernel {
 public:
  TransposeKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options)
      : OneDnnKernel(g, node, options, "transpose") {}

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    const std::size_t rank = xd.size();
    Dims perm = node_.GetInts("perm");
    if (!node_.Has("perm")) {
      for (std::size_t i = rank; i-- > 0;) perm.push_back(static_cast<int64_t>(i));
    }
    std::vector<bool> seen(rank, false);
    bool valid = perm.size() == rank;
    for (std::size_t i = 0; valid && i < rank; ++i) {
      valid = perm[i] >= 0 && perm[i] < static_cast<int64_t>(rank) && !seen[perm[i]];
      if (valid) seen[perm[i]] = true;
    }
    if (!valid) {
      return InvalidArgument(node_.Describe() + ": perm " + DimsStr(perm) +
                             " is not a permutation of the axes of input shape " + DimsStr(xd));
    }
    Dims out(rank);
    for (std::size_t i = 0; i < rank; ++i) out[i] = xd[perm[i]];
    plan.outputs = {out};
    if (Volume(out) == 0) return Status::Ok();
    if (rank > DNNL_MAX_NDIMS) {
      plan.fallback = true;
      return Status::Ok();
    }
    const memory::desc x_md = PlainDesc(xd);
    memory::desc y_md = x_md;
    if (rank > 0) {
      // Output axis i is input axis perm[i]: the destination, indexed like the input, steps
      // through memory with the output's stride of axis i along input axis perm[i].
      Dims out_strides(rank, 1), strides(rank, 1);
      for (std::size_t i = rank - 1; i-- > 0;) out_strides[i] = out_strides[i + 1] * out[i + 1];
      for (std::size_t i = 0; i < rank; ++i) strides[perm[i]] = out_strides[i];
      y_md = memory::desc(xd, kF32, strides);
    }
    plan.AddReorder(plan.Bind(x_md, Source::kInput, 0), plan.Bind(y_md, Source::kOutput, 0),
                    "reorder");
    return Status::Ok();
  }
};

// ---------------------------------------------------------------------------------------------
// Reshape and Flatten: a new shape on the same bytes. A view of the input, except for a graph
// output, which is copied so that the caller never gets memory that aliases an input or a
// per-context buffer.

bool SupportsReshape(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() != 2 || !OneOutput(node) || !IsF32(g, node.inputs[0])) return false;
  if (node.Has("allowzero") && !AttrIs(node, "allowzero", Kind::kInt)) return false;
  const int s = node.inputs[1];
  return s >= 0 && g.IsConstant(s) && g.values[s].constant->dtype() == DType::kInt64 &&
         g.values[s].constant->shape().rank() == 1;
}

bool SupportsFlatten(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() != 1 || !OneOutput(node) || !IsF32(g, node.inputs[0])) return false;
  return !node.Has("axis") || AttrIs(node, "axis", Kind::kInt);
}

class ViewKernel : public NodeKernel {
 public:
  ViewKernel(const graph::Graph& g, const graph::Node& node)
      : node_(node), opset_(g.opset), copy_(IsGraphOutput(g, node.outputs[0])) {
    if (node.op_type == "Reshape") {
      auto s = g.values[node.inputs[1]].constant->Span<int64_t>();
      target_.assign(s.begin(), s.end());
    }
  }

  Status Run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs,
             KernelState*) const override {
    if (inputs.empty() || inputs[0].empty())
      return InvalidArgument(node_.Describe() + ": missing input");
    const Tensor& x = inputs[0];
    Dims dims;
    RETURN_IF_ERROR(node_.op_type == "Reshape" ? ReshapeDims(x.shape().dims(), &dims)
                                               : FlattenDims(x.shape().dims(), &dims));
    outputs.clear();
    if (!copy_) {
      ASSIGN_OR_RETURN(Tensor view, x.Reinterpret(x.dtype(), Shape(std::move(dims))));
      outputs.push_back(std::move(view));
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Tensor out, Tensor::Create(x.dtype(), Shape(std::move(dims))));
    if (out.num_bytes() != x.num_bytes()) {
      return InvalidArgument(node_.Describe() + ": cannot reshape " + x.shape().ToString() +
                             " to " + out.shape().ToString());
    }
    if (out.num_bytes() != 0) std::memcpy(out.data(), x.data(), out.num_bytes());
    outputs.push_back(std::move(out));
    return Status::Ok();
  }

  std::string Describe() const override {
    return copy_ ? "copy (graph output)" : "view (no data movement)";
  }

 private:
  // Reshape's target as the reference computes it: 0 copies the input dim (unless allowzero),
  // one -1 is inferred.
  Status ReshapeDims(const Dims& in, Dims* out) const {
    Dims dims = target_;
    const bool allowzero = opset_ >= 14 && node_.GetInt("allowzero", 0) != 0;
    int infer = -1;
    bool has_zero = false;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == -1) {
        if (infer >= 0) return InvalidArgument(node_.Describe() + ": shape has more than one -1");
        infer = static_cast<int>(i);
      } else if (dims[i] < -1) {
        return InvalidArgument(node_.Describe() + ": shape " + DimsStr(target_) +
                               " has a negative entry");
      } else if (dims[i] == 0) {
        has_zero = true;
        if (!allowzero) {
          if (i >= in.size()) {
            return InvalidArgument(node_.Describe() + ": shape " + DimsStr(target_) +
                                   " copies a dimension the input " + DimsStr(in) + " lacks");
          }
          dims[i] = in[i];
        }
      }
    }
    if (allowzero && has_zero && infer >= 0) {
      return InvalidArgument(node_.Describe() + ": shape has both 0 and -1 with allowzero=1");
    }
    const int64_t count = Volume(in);
    int64_t known = 1;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (static_cast<int>(i) == infer) continue;
      if (__builtin_mul_overflow(known, dims[i], &known)) {
        return InvalidArgument(node_.Describe() + ": shape has too many elements");
      }
    }
    if (infer >= 0) {
      if (known == 0 || count % known != 0) {
        return InvalidArgument(node_.Describe() + ": cannot infer the -1 in shape " +
                               DimsStr(target_) + " for an input of shape " + DimsStr(in));
      }
      dims[infer] = count / known;
    } else if (known != count) {
      return InvalidArgument(node_.Describe() + ": cannot reshape " + DimsStr(in) + " to " +
                             DimsStr(dims) + ": element counts differ");
    }
    *out = std::move(dims);
    return Status::Ok();
  }

  Status FlattenDims(const Dims& in, Dims* out) const {
    const int64_t rank = static_cast<int64_t>(in.size());
    int64_t axis = node_.GetInt("axis", 1);
    if (axis < -rank || axis > rank) {
      return InvalidArgument(node_.Describe() + ": axis " + std::to_string(axis) +
                             " is out of range for rank " + std::to_string(rank));
    }
    if (axis < 0) axis += rank;
    *out = {Volume(Dims(in.begin(), in.begin() + axis)), Volume(Dims(in.begin() + axis, in.end()))};
    return Status::Ok();
  }

  graph::Node node_;
  int64_t opset_;
  bool copy_;
  Dims target_;
};

template <typename K>
StatusOr<std::unique_ptr<NodeKernel>> Compile(const graph::Graph& g, const graph::Node& node,
                                              const BuildOptions& options) {
  try {
    auto kernel = std::make_unique<K>(g, node, options);
    RETURN_IF_ERROR(kernel->Prepare(g));
    return std::unique_ptr<NodeKernel>(std::move(kernel));
  } catch (...) {
    return CurrentExceptionStatus(node.Describe());
  }
}

StatusOr<std::unique_ptr<NodeKernel>> CompileView(const graph::Graph& g, const graph::Node& node,
                                                  const BuildOptions&) {
  return std::unique_ptr<NodeKernel>(new ViewKernel(g, node));
}

constexpr OpSupport kMiscOps[] = {
    {"", "MaxPool", &SupportsPool, &Compile<PoolKernel>},
    {"", "AveragePool", &SupportsPool, &Compile<PoolKernel>},
    {"", "GlobalAveragePool", &SupportsGlobalAveragePool, &Compile<GlobalAveragePoolKernel>},
    {"", "Softmax", &SupportsSoftmax, &Compile<SoftmaxKernel>},
    {"", "Relu", &SupportsEltwise, &Compile<EltwiseKernel>},
    {"", "LeakyRelu", &SupportsEltwise, &Compile<EltwiseKernel>},
    {"", "Sigmoid", &SupportsEltwise, &Compile<EltwiseKernel>},
    {"", "Tanh", &SupportsEltwise, &Compile<EltwiseKernel>},
    {"", "Clip", &SupportsEltwise, &Compile<EltwiseKernel>},
    {"", "Add", &SupportsBinary, &Compile<BinaryKernel>},
    {"", "Sub", &SupportsBinary, &Compile<BinaryKernel>},
    {"", "Mul", &SupportsBinary, &Compile<BinaryKernel>},
    {"", "Div", &SupportsBinary, &Compile<BinaryKernel>},
    {"", "Concat", &SupportsConcat, &Compile<ConcatKernel>},
    {"", "BatchNormalization", &SupportsBatchNorm, &Compile<BatchNormKernel>},
    {"", "Transpose", &SupportsTranspose, &Compile<TransposeKernel>},
    {"", "Reshape", &SupportsReshape, &CompileView},
    {"", "Flatten", &SupportsFlatten, &CompileView},
};

}  // namespace

std::span<const OpSupport> MiscOps() { return kMiscOps; }

}  // namespace larserve::runtime::cpu

// oneDNN kernels of the compute-heavy ops: Conv / FusedConv (convolution_forward) and Gemm /
// FusedGemm / MatMul (matmul), with the fused activation as an eltwise post-op and constant
// weights packed once per kernel into the layout the chosen implementation wants. In bf16 builds
// (on CPUs with native bf16) source and weights are bf16: the f32 input is converted by a
// reorder into a per-context workspace, weights are packed once as bf16; accumulation, bias and
// output stay f32.
//
// INT8 builds (as TensorRT): a dense node whose input has a calibrated range (BuildOptions::
// calibration, amax per value) and whose weights (and bias) are constants takes its source as
// symmetric per-tensor s8 (x_q = round(x / s_x), s_x = amax / 127, saturated; a reorder with
// output scale 1/s_x into a per-context workspace) and its weights as symmetric per-output-
// channel s8 (s_w[oc] = max |W[oc, ...]| / 127, quantised once at build time); oneDNN
// accumulates in s32 and writes f32 through the output scales s_x * s_w[oc]. oneDNN 2.x adds
// the bias before the output scales, so the f32 bias is stored divided by them; the fused
// activation is a post-op on the scaled result, as in fp32. Other nodes run fp32 and say why.
// QDQ models (opt/fold_qdq.cc): the model's own weight scales (CalibrationTable::weight_scales)
// replace max |W| / 127, so that the int8 weights are the model's, exactly.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "larserve/runtime/calibration.h"
#include "onednn_common.h"
#include "onednn_kernels.h"
#include "panel_gemm.h"

namespace larserve::runtime::cpu {
namespace {

using dnnl::memory;
using Kind = graph::Attribute::Kind;
using Tag = memory::format_tag;

constexpr auto kF32 = memory::data_type::f32;
constexpr auto kBf16 = memory::data_type::bf16;
constexpr auto kS8 = memory::data_type::s8;

// Whether a dense kernel computes in bf16 (source and weights bf16, f32 accumulation, bias and
// output), and the note its tactic carries about it.
bool UseBf16(const BuildOptions& options) {
  return options.precision == Precision::kBf16 && CpuHasBf16();
}
std::string PrecisionNote(const BuildOptions& options) {
  if (options.precision != Precision::kBf16) return "";
  return UseBf16(options) ? "bf16" : "fp32 (no bf16 on this CPU)";
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// INT8 parameters of a dense kernel, fixed at build time.
struct Int8Params {
  float src_scale = 1;                    // s_x = amax / 127
  std::vector<float> out_scales;          // per output channel: s_x * s_w[oc]
  std::unique_ptr<ConstWeights> weights;  // s8 weights in the user layout
  Tensor bias;                            // f32 bias / out_scales; empty without a bias
};

// The source range for int8, or 0 with `note` saying why the node runs fp32 instead.
float Int8Amax(const graph::Graph& g, const graph::Node& node, const BuildOptions& options,
               std::string* note) {
  if (!options.calibration) {
    *note = "fp32 (no calibration table)";
    return 0;
  }
  const std::string& name = g.values[node.inputs[0]].name;
  const auto it = options.calibration->amax.find(name);
  if (it == options.calibration->amax.end() || !(it->second > 0) || !std::isfinite(it->second)) {
    *note = "fp32 (no calibration for input '" + name + "')";
    return 0;
  }
  if (!ConstF32(g, node.inputs[1])) {
    *note = "fp32 (weights not constant)";
    return 0;
  }
  if (node.inputs.size() == 3 && node.inputs[2] >= 0 && !ConstF32(g, node.inputs[2])) {
    *note = "fp32 (bias not constant)";
    return 0;
  }
  *note = "int8";
  return it->second;
}

// --- explicit weight scales (QDQ models) ---
// The weight scales a QDQ model gave this node (fold-qdq), or null.
const std::vector<float>* ExplicitWeightScales(const graph::Node& node,
                                               const BuildOptions& options) {
  if (!options.calibration) return nullptr;
  const auto& m = options.calibration->weight_scales;
  const auto it = m.find(node.name);
  return it == m.end() ? nullptr : &it->second;
}

// Whether `scales` reproduce the weights: every w / s_w[oc] an integer of [-128, 127] up to
// float rounding. Weights folded from DequantizeLinear are s_w * q exactly; a pass that changed
// them afterwards (batch-norm folding, say) makes the record stale, and then it is not used.
bool ScalesReproduce(const std::vector<float>& scales, const float* src, int64_t channels,
                     int64_t inner, int64_t oc_stride, int64_t i_stride) {
  if (static_cast<int64_t>(scales.size()) != channels) return false;
  for (int64_t oc = 0; oc < channels; ++oc) {
    const float s = scales[static_cast<std::size_t>(oc)];
    if (!(s > 0) || !std::isfinite(s)) return false;
    for (int64_t i = 0; i < inner; ++i) {
      const float r = src[oc * oc_stride + i * i_stride] / s;
      if (!(std::fabs(r - std::nearbyint(r)) <= 1e-3f) || r < -128.5f || r > 127.5f) return false;
    }
  }
  return true;
}
// --- end explicit weight scales ---

// Quantises weights symmetric per output channel: `w` holds `channels` output channels, element
// (oc, i) at oc * oc_stride + i * i_stride for i < inner. `user_md` describes the s8 result
// in the same layout as `w`. `bias` (may be empty) has one value per channel. `explicit_scales`
// (may be null): a QDQ model's scales, used where they reproduce `w` (else `note` says so).
Int8Params QuantizeWeights(float amax, const Tensor& w, int64_t channels, int64_t inner,
                           int64_t oc_stride, int64_t i_stride, const memory::desc& user_md,
                           const Tensor& bias, const std::vector<float>* explicit_scales,
                           std::string* note) {
  Int8Params p;
  p.src_scale = amax / 127.0f;
  auto q = Tensor::Create(DType::kInt8, w.shape());
  if (!q.ok()) throw std::bad_alloc();
  const float* src = static_cast<const float*>(w.data());
  auto* dst = static_cast<int8_t*>(q->data());
  const bool given = explicit_scales &&
                     ScalesReproduce(*explicit_scales, src, channels, inner, oc_stride, i_stride);
  if (explicit_scales && !given)
    *note += " (the model's weight scales do not fit these weights: requantised)";
  // The model's int8 weights may use -128; computed scales stay symmetric.
  const float lo = given ? -128.0f : -127.0f;
  p.out_scales.resize(static_cast<std::size_t>(channels));
  for (int64_t oc = 0; oc < channels; ++oc) {
    float max_abs = 0;
    for (int64_t i = 0; i < inner && !given; ++i) {
      max_abs = std::max(max_abs, std::fabs(src[oc * oc_stride + i * i_stride]));
    }
    const float s_w = given ? (*explicit_scales)[static_cast<std::size_t>(oc)]
                      : max_abs > 0 && std::isfinite(max_abs) ? max_abs / 127.0f
                                                              : 1.0f;
    for (int64_t i = 0; i < inner; ++i) {
      const float v = std::nearbyint(src[oc * oc_stride + i * i_stride] / s_w);
      dst[oc * oc_stride + i * i_stride] = static_cast<int8_t>(std::clamp(v, lo, 127.0f));
    }
    p.out_scales[oc] = p.src_scale * s_w;
  }
  p.weights = std::make_unique<ConstWeights>(*q, user_md);
  if (!bias.empty()) {
    auto b = Tensor::Create(DType::kFloat32, Shape{channels});
    if (!b.ok()) throw std::bad_alloc();
    const float* bs = static_cast<const float*>(bias.data());
    auto* bd = static_cast<float*>(b->data());
    for (int64_t oc = 0; oc < channels; ++oc) bd[oc] = bs[oc] / p.out_scales[oc];
    p.bias = *b;
  }
  return p;
}

// The attributes of a dense primitive: MakeAttr's, plus per-output-channel output scales on
// dst dimension 1 for int8.
dnnl::primitive_attr DenseAttr(const Activation& act, const Int8Params* int8) {
  dnnl::primitive_attr attr = MakeAttr(act);
  if (int8) attr.set_output_scales(1 << 1, int8->out_scales);
  return attr;
}

// The f32 -> s8 source reorder (scale 1 / s_x, round to nearest even, saturate).
dnnl::reorder::primitive_desc QuantizeReorder(const memory::desc& from, const memory::desc& to,
                                              float src_scale) {
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {1.0f / src_scale});
  return dnnl::reorder::primitive_desc(CpuEngine(), from, CpuEngine(), to, attr);
}

// ---------------------------------------------------------------------------------------------
// Conv and FusedConv: 2-D, any groups, strides, pads, dilations, auto_pad; optional bias.

bool SupportsConv(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() < 2 || node.inputs.size() > 3 || node.outputs.size() != 1) return false;
  if (!IsF32(g, node.inputs[0]) || !IsF32(g, node.inputs[1])) return false;
  const bool has_bias = node.inputs.size() == 3 && node.inputs[2] >= 0;
  if (has_bias && !IsF32(g, node.inputs[2])) return false;
  // Input and weights of rank 4 (2-D convolution); the weights' rank from its constant or its
  // declared shape.
  for (int v : {node.inputs[0], node.inputs[1]}) {
    const graph::Value& val = g.values[v];
    const std::size_t rank = val.constant ? val.constant->shape().rank() : val.dims.size();
    if ((!val.constant && !val.has_shape) || rank != 4) return false;
  }
  if (node.Has("group") && !AttrIs(node, "group", Kind::kInt)) return false;
  if (node.GetInt("group", 1) < 1) return false;
  if (node.Has("kernel_shape")) {
    if (!AttrIs(node, "kernel_shape", Kind::kInts)) return false;
    if (const Tensor* w = ConstF32(g, node.inputs[1])) {
      const Dims& wd = w->shape().dims();
      if (node.GetInts("kernel_shape") != Dims(wd.begin() + 2, wd.end())) return false;
    } else if (node.GetInts("kernel_shape").size() != 2) {
      return false;
    }
  }
  if (!WindowAttrsOk(node)) return false;
  // FusedConv may write NHWC (opt/fuse_conv_transpose.cc).
  if (node.Has("output_layout")) {
    if (!AttrIs(node, "output_layout", Kind::kString)) return false;
    const std::string layout = node.GetString("output_layout", "");
    if (layout != "NCHW" && layout != "NHWC") return false;
  }
  Activation act;
  return ParseActivation(node, &act);
}

// Convolution tactics (timed at build time, runtime/tactics.h):
//   blocked-chunked  layouts chosen by oneDNN (blocked or brgemm), the batch run in chunks
//                    whose blocked intermediate fits the L2 cache (the heuristic default)
//   blocked          the same layouts, the whole batch in one call
//   plain            NCHW source and destination (no reorders around the convolution)
enum class ConvTactic { kBlockedChunked, kBlocked, kPlain };
constexpr std::pair<ConvTactic, const char*> kConvTactics[] = {
    {ConvTactic::kBlockedChunked, "blocked-chunked"},
    {ConvTactic::kBlocked, "blocked"},
    {ConvTactic::kPlain, "plain"}};

class ConvKernel : public OneDnnKernel {
 public:
  ConvKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options,
             ConvTactic tactic = ConvTactic::kBlockedChunked)
      : OneDnnKernel(g, node, options, "conv"),
        tactic_(tactic),
        group_(node.GetInt("group", 1)),
        has_bias_(node.inputs.size() == 3 && node.inputs[2] >= 0),
        bf16_(UseBf16(options)),
        nhwc_out_(node.GetString("output_layout", "NCHW") == "NHWC") {
    precision_note_ = PrecisionNote(options);
    ParseActivation(node, &act_);
    if (const Tensor* w = ConstF32(g, node.inputs[1])) {
      const Dims wd = w->shape().dims();
      weights_.emplace(*w, memory::desc(WeightDims(wd), kF32, group_ > 1 ? Tag::goihw : Tag::oihw));
    }
    if (has_bias_) {
      if (const Tensor* b = ConstF32(g, node.inputs[2])) bias_ = *b;
    }
    if (options.precision == Precision::kInt8) {
      if (const float amax = Int8Amax(g, node, options, &precision_note_); amax > 0) {
        const Tensor& w = *ConstF32(g, node.inputs[1]);
        const Dims wd = w.shape().dims();
        const int64_t inner = wd[1] * wd[2] * wd[3];
        int8_ =
            QuantizeWeights(amax, w, wd[0], inner, inner, 1,
                            memory::desc(WeightDims(wd), kS8, group_ > 1 ? Tag::goihw : Tag::oihw),
                            bias_, ExplicitWeightScales(node, options), &precision_note_);
      }
    }
  }

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& xd = *shapes[0];
    const Dims& wd = *shapes[1];
    if (xd.size() != 4 || wd.size() != 4) {
      return InvalidArgument(node_.Describe() + ": input " + Shape(xd).ToString() +
                             " and weights " + Shape(wd).ToString() + " must both have rank 4");
    }
    const int64_t n = xd[0], c = xd[1], m = wd[0];
    if (m % group_ != 0 || c != wd[1] * group_) {
      return InvalidArgument(node_.Describe() + ": weights " + Shape(wd).ToString() +
                             " do not match input " + Shape(xd).ToString() + " with group " +
                             std::to_string(group_));
    }
    if (has_bias_ && (!shapes[2] || *shapes[2] != Dims{m})) {
      return InvalidArgument(node_.Describe() + ": bias must have shape [" + std::to_string(m) +
                             "]");
    }
    if (node_.Has("kernel_shape") && node_.GetInts("kernel_shape") != Dims{wd[2], wd[3]}) {
      return InvalidArgument(node_.Describe() + ": kernel_shape does not match the weights " +
                             Shape(wd).ToString());
    }
    Window2d w;
    RETURN_IF_ERROR(ResolveWindow2d(node_, {xd[2], xd[3]}, {wd[2], wd[3]}, &w));
    const Dims yd = {n, m, w.out[0], w.out[1]};
    plan.outputs = {nhwc_out_ ? Dims{n, w.out[0], w.out[1], m} : yd};
    if (Volume(yd) == 0 || Volume(xd) == 0) return Status::Ok();  // nothing to compute

    const Dims dil = {w.dilations[0] - 1, w.dilations[1] - 1};  // oneDNN counts gaps
    const memory::desc b_md = has_bias_ ? memory::desc({m}, kF32, Tag::a) : memory::desc();
    using Pd = dnnl::convolution_forward::primitive_desc;
    // Source and weights in `dt` (bf16, s8 or f32); bias and output always f32. A bf16 or s8
    // source is converted from the f32 input by the src reorder below.
    memory::data_type dt = int8_ ? kS8 : bf16_ ? kBf16 : kF32;
    auto make_pd = [&](int64_t batch, bool blocked) {
      const dnnl::primitive_attr attr = DenseAttr(act_, dt == kS8 ? &*int8_ : nullptr);
      const Dims x = {batch, c, xd[2], xd[3]}, y = {batch, m, w.out[0], w.out[1]};
      const memory::desc x_md = blocked      ? memory::desc(x, dt, Tag::any)
                                : dt == kF32 ? PlainDesc(x)
                                             : memory::desc(x, dt, Tag::nchw);
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x_md,
          memory::desc(WeightDims(wd), dt, Tag::any), b_md,
          blocked && !nhwc_out_ ? memory::desc(y, kF32, Tag::any) : UserDst(y), w.strides, dil,
          w.pad_l, w.pad_r);
      return Pd(d, attr, CpuEngine(), true);
    };
    // Layouts chosen by oneDNN (format `any`) give the fast implementations (blocked or
    // brgemm); plain NCHW is the fallback when those would leave only the reference kernel.
    bool blocked = true;
    auto choose = [&]() {
      if (tactic_ == ConvTactic::kPlain) {
        // Plain layouts unless oneDNN has only its reference loops for them (an NHWC
        // destination from an NCHW source, for one): those are orders of magnitude slower.
        blocked = false;
        if (Pd plain = make_pd(n, false); plain && !StartsWith(plain.impl_info_str(), "ref")) {
          return plain;
        }
      }
      blocked = true;
      Pd best = make_pd(n, true);
      if (!best || StartsWith(best.impl_info_str(), "ref")) {
        Pd plain = make_pd(n, false);
        if (plain && !StartsWith(plain.impl_info_str(), "ref")) {
          best = plain;
          blocked = false;
        }
      }
      return best;
    };
    Pd pd = choose();
    // bf16 and int8 only where oneDNN has an optimised implementation; otherwise this layer runs
    // fp32.
    const memory::data_type wanted = dt;
    const bool reduced_fallback = dt != kF32 && (!pd || StartsWith(pd.impl_info_str(), "ref"));
    if (reduced_fallback) {
      dt = kF32;
      pd = choose();
    }
    if (!pd) {
      plan.fallback = true;
      return Status::Ok();
    }
    plan.NoteImpl("", pd.impl_info_str());
    if (reduced_fallback) {
      plan.NoteImpl(
          "", wanted == kS8 ? "(no int8 implementation: fp32)" : "(no bf16 implementation: fp32)");
    }
    const bool s8 = dt == kS8;
    // With reorders to and from blocked layouts, the batch goes through in chunks small enough
    // for the blocked intermediate to stay in the core's L2 cache between the convolution
    // writing it and the reorder reading it, instead of a round trip through DRAM.
    int64_t chunk = n;
    if (tactic_ == ConvTactic::kBlockedChunked &&
        (pd.src_desc() != PlainDesc(xd) || pd.dst_desc() != UserDst(yd))) {
      const int64_t per_image =
          static_cast<int64_t>(std::max(pd.src_desc().get_size(), pd.dst_desc().get_size()) / n);
      chunk = std::clamp<int64_t>(
          kChunkBytesPerThread * plan.threads / std::max<int64_t>(per_image, 1), 1, n);
    }
    memory bias;
    if (has_bias_) {
      const Tensor& b = s8 ? int8_->bias : bias_;
      bias = b.empty() ? plan.Bind(b_md, Source::kInput, 2)
                       : memory(b_md, CpuEngine(), const_cast<void*>(b.data()));
    }
    // Weights computed at run time are repacked once per call, before the chunks that use them.
    memory runtime_w;
    if (!weights_) {
      runtime_w = plan.Bind(memory::desc(WeightDims(wd), kF32, group_ > 1 ? Tag::goihw : Tag::oihw),
                            Source::kInput, 1);
    }
    std::vector<memory> packed_w;  // per distinct weights layout, for runtime weights
    auto weights_for = [&](const memory::desc& want) -> memory {
      if (s8) return int8_->weights->Get(want);
      if (weights_) return weights_->Get(want);
      if (want == runtime_w.get_desc()) return runtime_w;
      for (const memory& p : packed_w) {
        if (p.get_desc() == want) return p;
      }
      packed_w.push_back(plan.Workspace(want));
      plan.AddReorder(runtime_w, packed_w.back(), "weights reorder");
      return packed_w.back();
    };
    const std::size_t x_image = static_cast<std::size_t>(c * xd[2] * xd[3]) * sizeof(float);
    const std::size_t y_image = static_cast<std::size_t>(m * w.out[0] * w.out[1]) * sizeof(float);
    // One set of primitives (and workspaces) per distinct chunk size: the chunk and the rest.
    struct Piece {
      int64_t batch;
      Pd pd;
      dnnl::primitive conv, x_reorder, y_reorder;
      std::unordered_map<int, memory> args;  // weights, bias, scratchpad, blocked src/dst
    };
    std::vector<Piece> pieces;
    pieces.reserve(2);  // references into it stay valid
    auto piece_for = [&](int64_t batch) -> Piece& {
      for (Piece& p : pieces) {
        if (p.batch == batch) return p;
      }
      Piece p{batch, batch == n ? pd : make_pd(batch, blocked), {}, {}, {}, {}};
      if (!p.pd) throw dnnl::error(dnnl_unimplemented, "no convolution for a batch chunk");
      p.conv = dnnl::convolution_forward(p.pd);
      p.args[DNNL_ARG_WEIGHTS] = weights_for(p.pd.weights_desc());
      if (has_bias_) p.args[DNNL_ARG_BIAS] = bias;
      const bool first = pieces.empty();
      const Dims x = {batch, c, xd[2], xd[3]}, y = {batch, m, w.out[0], w.out[1]};
      if (p.pd.src_desc() != PlainDesc(x)) {
        p.args[DNNL_ARG_SRC] = plan.Workspace(p.pd.src_desc());
        const dnnl::reorder::primitive_desc r =
            s8 ? QuantizeReorder(PlainDesc(x), p.pd.src_desc(), int8_->src_scale)
               : dnnl::reorder::primitive_desc(CpuEngine(), PlainDesc(x), CpuEngine(),
                                               p.pd.src_desc());
        if (first) plan.NoteImpl("src reorder", r.impl_info_str());
        p.x_reorder = dnnl::reorder(r);
      }
      if (p.pd.dst_desc() != UserDst(y)) {
        p.args[DNNL_ARG_DST] = plan.Workspace(p.pd.dst_desc());
        dnnl::reorder::primitive_desc r(CpuEngine(), p.pd.dst_desc(), CpuEngine(), UserDst(y));
        if (first) plan.NoteImpl("dst reorder", r.impl_info_str());
        p.y_reorder = dnnl::reorder(r);
      }
      plan.AddScratchpad(p.pd.scratchpad_desc(), p.args);
      pieces.push_back(std::move(p));
      return pieces.back();
    };
    for (int64_t n0 = 0; n0 < n; n0 += chunk) {
      const int64_t batch = std::min(chunk, n - n0);
      Piece& p = piece_for(batch);
      const Dims x = {batch, c, xd[2], xd[3]}, y = {batch, m, w.out[0], w.out[1]};
      const memory x_user = plan.Bind(PlainDesc(x), Source::kInput, 0, n0 * x_image);
      const memory y_user = plan.Bind(UserDst(y), Source::kOutput, 0, n0 * y_image);
      std::unordered_map<int, memory> args = p.args;
      if (p.x_reorder) {
        plan.Add(p.x_reorder, {{DNNL_ARG_FROM, x_user}, {DNNL_ARG_TO, args[DNNL_ARG_SRC]}});
      } else {
        args[DNNL_ARG_SRC] = x_user;
      }
      if (!p.y_reorder) args[DNNL_ARG_DST] = y_user;
      const memory y_blocked = p.y_reorder ? args[DNNL_ARG_DST] : memory();
      plan.Add(p.conv, std::move(args));
      if (p.y_reorder) plan.Add(p.y_reorder, {{DNNL_ARG_FROM, y_blocked}, {DNNL_ARG_TO, y_user}});
    }
    if (chunk < n) plan.NoteImpl("in batch chunks of", std::to_string(chunk));
    return Status::Ok();
  }

 private:
  // ONNX weights [M, C/G, KH, KW]; oneDNN wants [G, M/G, C/G, KH, KW] for grouped convolution
  // (the same bytes).
  Dims WeightDims(const Dims& wd) const {
    if (group_ == 1) return wd;
    return {group_, wd[0] / group_, wd[1], wd[2], wd[3]};
  }

  // The output as the node declares it, for logical [N, C, H, W] dims: NCHW, or NHWC
  // (output_layout, the same bytes as the Transpose it replaced would have made).
  memory::desc UserDst(const Dims& y) const {
    return nhwc_out_ ? memory::desc(y, kF32, Tag::nhwc) : PlainDesc(y);
  }

  // Cache budget per thread for the blocked intermediate of one batch chunk (a share of L2).
  static constexpr int64_t kChunkBytesPerThread = int64_t{1} << 20;

  ConvTactic tactic_;
  int64_t group_;
  bool has_bias_;
  bool bf16_;
  bool nhwc_out_;  // output_layout NHWC: the output is [N, H, W, C]
  Activation act_;
  std::optional<ConstWeights> weights_;
  Tensor bias_;                     // empty unless a constant
  std::optional<Int8Params> int8_;  // set when this layer runs int8
};

// ---------------------------------------------------------------------------------------------
// Gemm / FusedGemm (transA 0, alpha 1, beta 1, C [N] or [1, N]) and 2-D MatMul, as oneDNN
// matmul: dst[M, N] = src[M, K] x weights[K, N] + bias[1, N].

// The shape of a value as far as the graph knows it; false if unknown.
bool KnownRank(const graph::Graph& g, int v, std::size_t rank) {
  const graph::Value& val = g.values[v];
  if (val.constant) return val.constant->shape().rank() == rank;
  return val.has_shape && val.dims.size() == rank;
}

bool SupportsGemm(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.size() < 2 || node.inputs.size() > 3 || node.outputs.size() != 1) return false;
  if (!IsF32(g, node.inputs[0]) || !IsF32(g, node.inputs[1])) return false;
  for (const char* key : {"transA", "transB"}) {
    if (node.Has(key) && !AttrIs(node, key, Kind::kInt)) return false;
  }
  for (const char* key : {"alpha", "beta"}) {
    if (node.Has(key) && !AttrIs(node, key, Kind::kFloat)) return false;
  }
  // Before opset 7 Gemm broadcast C only on request; before 11 C was required.
  if (g.opset < 7 || node.Has("broadcast")) return false;
  const int64_t trans_b = node.GetInt("transB", 0);
  if (node.GetInt("transA", 0) != 0 || (trans_b != 0 && trans_b != 1)) return false;
  if (node.GetFloat("alpha", 1.0f) != 1.0f) return false;
  if (!KnownRank(g, node.inputs[0], 2) || !KnownRank(g, node.inputs[1], 2)) return false;
  const bool has_c = node.inputs.size() == 3 && node.inputs[2] >= 0;
  if (!has_c && g.opset < 11) return false;
  if (has_c) {
    if (node.GetFloat("beta", 1.0f) != 1.0f || !IsF32(g, node.inputs[2])) return false;
    // C must be a row vector [N] or [1, N] (checked again at run time when not a constant).
    const graph::Value& c = g.values[node.inputs[2]];
    const Dims cd = c.constant ? c.constant->shape().dims() : c.dims;
    if (!c.constant && !c.has_shape) return false;
    const bool row = cd.size() == 1 || (cd.size() == 2 && cd[0] == 1);
    if (!row) return false;
    // [N] itself, not a [1] broadcast over N (the reference kernel handles that).
    const graph::Value& b = g.values[node.inputs[1]];
    const Dims bd = b.constant ? b.constant->shape().dims() : b.dims;
    const int64_t n = trans_b ? bd[0] : bd[1];
    if (cd.back() != n && !(cd.back() < 0 || n < 0)) return false;
  }
  Activation act;
  return ParseActivation(node, &act);
}

bool SupportsMatMul(const graph::Graph& g, const graph::Node& node) {
  return node.inputs.size() == 2 && node.outputs.size() == 1 && IsF32(g, node.inputs[0]) &&
         IsF32(g, node.inputs[1]) && KnownRank(g, node.inputs[0], 2) &&
         KnownRank(g, node.inputs[1], 2);
}

// Matmul tactics (timed at build time, runtime/tactics.h):
//   packed      constant weights packed once into the layout oneDNN picks (the default)
//   plain       weights read in their stored layout (oneDNN's GEMM-based implementation)
//   ksplit-K    fp32 with constant weights and a long inner dimension: the product is summed
//               over chunks of K columns (sum post-op), each chunk's weights packed, so that
//               the slice of the source and the weights of one chunk stay in cache
//   panel-kcK   fp32 with constant weights on AVX-512 CPUs: our own GEMM (panel_gemm.h), K
//               blocks of K columns; activations none, Relu, LeakyRelu and Clip
enum class GemmTactic { kPacked, kPlain, kKSplit, kPanel };
constexpr int64_t kKSplitChunks[] = {2048, 8192};
constexpr int64_t kPanelBlocks[] = {256, 512};

// The panel GEMM's store applies these activations; others (Sigmoid, Tanh) are not offered it.
std::optional<PanelActivation> PanelActivationOf(const Activation& act) {
  if (!act.present) return PanelActivation::kNone;
  if (act.alg == dnnl::algorithm::eltwise_relu) return PanelActivation::kRelu;
  if (act.alg == dnnl::algorithm::eltwise_clip) return PanelActivation::kClip;
  return std::nullopt;
}

class MatMulKernel : public OneDnnKernel {
 public:
  MatMulKernel(const graph::Graph& g, const graph::Node& node, const BuildOptions& options,
               bool gemm, GemmTactic tactic = GemmTactic::kPacked, int64_t k_chunk = 0)
      : OneDnnKernel(g, node, options, gemm ? "gemm" : "matmul"),
        tactic_(tactic),
        k_chunk_(k_chunk),
        trans_b_(gemm && node.GetInt("transB", 0) == 1),
        has_c_(gemm && node.inputs.size() == 3 && node.inputs[2] >= 0),
        bf16_(UseBf16(options)) {
    precision_note_ = PrecisionNote(options);
    if (gemm) ParseActivation(node, &act_);
    if (const Tensor* b = ConstF32(g, node.inputs[1])) {
      weights_.emplace(*b, UserWeights(b->shape().dims(), kF32));
      if (tactic_ == GemmTactic::kPanel && options.precision == Precision::kFp32 &&
          PanelActivationOf(act_) && PanelGemm::Available()) {
        const Dims bd = b->shape().dims();
        const int64_t k = trans_b_ ? bd[1] : bd[0], n = trans_b_ ? bd[0] : bd[1];
        panel_.emplace(static_cast<const float*>(b->data()), k, n, trans_b_, k_chunk_);
      }
      if (tactic_ == GemmTactic::kKSplit) {
        // One packable slice of the weights per K chunk, as [kc, N] views of B.
        const Dims bd = b->shape().dims();
        const int64_t k = trans_b_ ? bd[1] : bd[0], n = trans_b_ ? bd[0] : bd[1];
        for (int64_t k0 = 0; k0 < k; k0 += k_chunk_) {
          const int64_t kc = std::min(k_chunk_, k - k0);
          const memory::desc md = trans_b_ ? memory::desc({kc, n}, kF32, memory::dims{1, k})
                                           : memory::desc({kc, n}, kF32, memory::dims{n, 1});
          const std::size_t offset =
              static_cast<std::size_t>(trans_b_ ? k0 : k0 * n) * sizeof(float);
          k_chunk_weights_.push_back(std::make_unique<ConstWeights>(*b, md, offset));
        }
      }
    }
    if (has_c_) {
      if (const Tensor* c = ConstF32(g, node.inputs[2])) bias_ = *c;
    }
    if (options.precision == Precision::kInt8) {
      if (const float amax = Int8Amax(g, node, options, &precision_note_); amax > 0) {
        const Tensor& b = *ConstF32(g, node.inputs[1]);
        const Dims bd = b.shape().dims();
        // Output channel n: row n of B [N, K] (transB), else column n of B [K, N].
        const int64_t k = trans_b_ ? bd[1] : bd[0], n = trans_b_ ? bd[0] : bd[1];
        const std::vector<float>* given = ExplicitWeightScales(node, options);
        int8_ = trans_b_ ? QuantizeWeights(amax, b, n, k, k, 1, UserWeights(bd, kS8), bias_, given,
                                           &precision_note_)
                         : QuantizeWeights(amax, b, n, k, 1, n, UserWeights(bd, kS8), bias_, given,
                                           &precision_note_);
      }
    }
  }

 protected:
  Status MakePlan(std::span<const Dims* const> shapes, Plan& plan) const override {
    const Dims& ad = *shapes[0];
    const Dims& bd = *shapes[1];
    if (ad.size() != 2 || bd.size() != 2) {
      return InvalidArgument(node_.Describe() + ": inputs " + Shape(ad).ToString() + " and " +
                             Shape(bd).ToString() + " must both have rank 2");
    }
    const int64_t m = ad[0], k = ad[1];
    const int64_t kb = trans_b_ ? bd[1] : bd[0], n = trans_b_ ? bd[0] : bd[1];
    if (k != kb) {
      return InvalidArgument(node_.Describe() + ": inner dimensions differ: A " +
                             Shape(ad).ToString() + " and B " + Shape(bd).ToString() +
                             (trans_b_ ? " (transposed)" : ""));
    }
    if (has_c_) {
      const Dims& cd = *shapes[2];
      const bool row =
          (cd.size() == 1 && cd[0] == n) || (cd.size() == 2 && cd[0] == 1 && cd[1] == n);
      // Other broadcastable shapes of C are left to the reference kernel.
      if (!row) {
        plan.fallback = true;
        return Status::Ok();
      }
    }
    plan.outputs = {{m, n}};
    if (m == 0 || n == 0) return Status::Ok();
    if (k == 0) {
      // An empty sum: C (or zeros) plus the activation; rare enough for the reference kernel.
      plan.fallback = true;
      return Status::Ok();
    }
    const memory::desc a_md = PlainDesc(ad);
    const memory::desc y_md = PlainDesc({m, n});
    const memory::desc w_user = UserWeights(bd, kF32);
    const memory::desc c_md = has_c_ ? memory::desc({1, n}, kF32, Tag::ab) : memory::desc();
    if (tactic_ == GemmTactic::kKSplit && !k_chunk_weights_.empty() && !int8_ && !bf16_) {
      return MakeKSplitPlan(m, k, n, y_md, c_md, plan);
    }
    if (panel_ && !int8_ && !bf16_ && panel_->k() == k && panel_->n() == n) {
      return MakePanelPlan(m, a_md, y_md, c_md, plan);
    }
    // Source and weights in `dt` (bf16, s8 or f32); bias and output always f32.
    auto make_pd = [&](memory::data_type dt) {
      const dnnl::primitive_attr attr = DenseAttr(act_, dt == kS8 ? &*int8_ : nullptr);
      const memory::desc a = dt == kF32 ? a_md : memory::desc(ad, dt, Tag::ab);
      // Constant weights: let oneDNN pick a packed layout (made once by ConstWeights), unless
      // the tactic reads them as stored.
      const memory::desc w = weights_ && tactic_ != GemmTactic::kPlain
                                 ? memory::desc({k, n}, dt, Tag::any)
                                 : UserWeights(bd, dt);
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, w, c_md, y_md), attr, CpuEngine(),
                                          true);
    };
    dnnl::matmul::primitive_desc pd;
    // bf16 and int8 only where oneDNN has an optimised implementation; otherwise this layer
    // runs fp32.
    const memory::data_type wanted = int8_ ? kS8 : bf16_ ? kBf16 : kF32;
    bool reduced_fallback = false;
    if (wanted != kF32) {
      pd = make_pd(wanted);
      reduced_fallback = !pd || StartsWith(pd.impl_info_str(), "ref");
    }
    if (wanted == kF32 || reduced_fallback) pd = make_pd(kF32);
    if (!pd) throw dnnl::error(dnnl_unimplemented, "no matmul implementation");
    const bool s8 = wanted == kS8 && !reduced_fallback;
    plan.NoteImpl("", pd.impl_info_str());
    if (reduced_fallback) {
      plan.NoteImpl(
          "", wanted == kS8 ? "(no int8 implementation: fp32)" : "(no bf16 implementation: fp32)");
    }
    // Inputs in another type or layout than the primitive's are converted into workspaces
    // (reused by every run of this context) before it runs.
    memory src = plan.Bind(a_md, Source::kInput, 0);
    if (s8) {
      memory converted = plan.Workspace(pd.src_desc());
      const auto r = QuantizeReorder(a_md, pd.src_desc(), int8_->src_scale);
      plan.NoteImpl("src reorder", r.impl_info_str());
      plan.Add(dnnl::reorder(r), {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, converted}});
      src = converted;
    } else if (pd.src_desc() != a_md) {
      memory converted = plan.Workspace(pd.src_desc());
      plan.AddReorder(src, converted, "src reorder");
      src = converted;
    }
    memory weights;
    if (s8) {
      weights = int8_->weights->Get(pd.weights_desc());
    } else if (weights_) {
      weights = weights_->Get(pd.weights_desc());
    } else {
      weights = plan.Bind(w_user, Source::kInput, 1);
      if (pd.weights_desc() != w_user) {
        memory converted = plan.Workspace(pd.weights_desc());
        plan.AddReorder(weights, converted, "weights reorder");
        weights = converted;
      }
    }
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                            {DNNL_ARG_WEIGHTS, weights},
                                            {DNNL_ARG_DST, plan.Bind(y_md, Source::kOutput, 0)}};
    if (has_c_) {
      const Tensor& c = s8 ? int8_->bias : bias_;
      args[DNNL_ARG_BIAS] = c.empty() ? plan.Bind(c_md, Source::kInput, 2)
                                      : memory(c_md, CpuEngine(), const_cast<void*>(c.data()));
    }
    plan.AddScratchpad(pd.scratchpad_desc(), args);
    plan.Add(dnnl::matmul(pd), std::move(args));
    return Status::Ok();
  }

 private:
  // dst = sum over K chunks j of src[:, chunk j] x weights[chunk j, :]: the first chunk adds the
  // bias, later ones accumulate into dst (sum post-op), the last applies the activation.
  Status MakeKSplitPlan(int64_t m, int64_t k, int64_t n, const memory::desc& y_md,
                        const memory::desc& c_md, Plan& plan) const {
    const memory dst = plan.Bind(y_md, Source::kOutput, 0);
    memory bias;
    if (has_c_) {
      bias = bias_.empty() ? plan.Bind(c_md, Source::kInput, 2)
                           : memory(c_md, CpuEngine(), const_cast<void*>(bias_.data()));
    }
    const std::size_t chunks = k_chunk_weights_.size();
    for (std::size_t j = 0; j < chunks; ++j) {
      const int64_t k0 = static_cast<int64_t>(j) * k_chunk_;
      const int64_t kc = std::min(k_chunk_, k - k0);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::post_ops po;
      if (j > 0) po.append_sum(1.0f);
      if (j + 1 == chunks && act_.present) po.append_eltwise(1.0f, act_.alg, act_.alpha, act_.beta);
      attr.set_post_ops(po);
      // Columns [k0, k0 + kc) of the row-major source: a strided view, no copy.
      const memory::desc a_j({m, kc}, kF32, memory::dims{k, 1});
      const bool with_bias = j == 0 && has_c_;
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_j, memory::desc({kc, n}, kF32, Tag::any),
                                                         with_bias ? c_md : memory::desc(), y_md),
                                      attr, CpuEngine());
      if (j == 0) {
        plan.NoteImpl("", pd.impl_info_str());
        plan.NoteImpl("in K chunks of", std::to_string(k_chunk_));
      }
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, plan.Bind(a_j, Source::kInput, 0, static_cast<std::size_t>(k0) * 4)},
          {DNNL_ARG_WEIGHTS, k_chunk_weights_[j]->Get(pd.weights_desc())},
          {DNNL_ARG_DST, dst}};
      if (with_bias) args[DNNL_ARG_BIAS] = bias;
      plan.AddScratchpad(pd.scratchpad_desc(), args);
      plan.Add(dnnl::matmul(pd), std::move(args));
    }
    return Status::Ok();
  }

  // dst = act(src x B + bias) by our panel GEMM, on this call's OpenMP threads (ThreadScope).
  Status MakePanelPlan(int64_t m, const memory::desc& a_md, const memory::desc& y_md,
                       const memory::desc& c_md, Plan& plan) const {
    const memory src = plan.Bind(a_md, Source::kInput, 0);
    const memory dst = plan.Bind(y_md, Source::kOutput, 0);
    memory bias;
    if (has_c_) {
      bias = bias_.empty() ? plan.Bind(c_md, Source::kInput, 2)
                           : memory(c_md, CpuEngine(), const_cast<void*>(bias_.data()));
    }
    plan.NoteImpl("", "larserve:panel_gemm:avx512");
    plan.NoteImpl("in K blocks of", std::to_string(panel_->kc()));
    const PanelGemm* gemm = &*panel_;
    const PanelActivation act = *PanelActivationOf(act_);
    const float alpha = act_.alpha, beta = act_.beta;
    const int64_t k = panel_->k(), n = panel_->n();
    plan.AddCustom([=] {
      gemm->Run(static_cast<const float*>(src.get_data_handle()), m, k,
                bias ? static_cast<const float*>(bias.get_data_handle()) : nullptr,
                static_cast<float*>(dst.get_data_handle()), n, act, alpha, beta,
                omp_get_max_threads());
    });
    return Status::Ok();
  }

  // B as stored, seen as the [K, N] weights: row-major [K, N], or [N, K] read transposed.
  memory::desc UserWeights(const Dims& bd, memory::data_type dt) const {
    if (trans_b_) return memory::desc({bd[1], bd[0]}, dt, Tag::ba);
    return memory::desc(bd, dt, Tag::ab);
  }

  GemmTactic tactic_;
  int64_t k_chunk_;  // kKSplit: K chunk; kPanel: K block
  bool trans_b_;
  bool has_c_;
  bool bf16_;
  Activation act_;
  std::optional<ConstWeights> weights_;
  std::vector<std::unique_ptr<ConstWeights>> k_chunk_weights_;  // kKSplit: one per K chunk
  std::optional<PanelGemm> panel_;                              // kPanel: B packed in panels
  Tensor bias_;                                                 // empty unless a constant
  std::optional<Int8Params> int8_;                              // set when this layer runs int8
};

template <typename K, typename... Extra>
StatusOr<std::unique_ptr<NodeKernel>> Make(const graph::Graph& g, const graph::Node& node,
                                           const BuildOptions& options, Extra... extra) {
  try {
    auto kernel = std::make_unique<K>(g, node, options, extra...);
    RETURN_IF_ERROR(kernel->Prepare(g));
    return std::unique_ptr<NodeKernel>(std::move(kernel));
  } catch (...) {
    return CurrentExceptionStatus(node.Describe());
  }
}

StatusOr<std::unique_ptr<NodeKernel>> CompileConv(const graph::Graph& g, const graph::Node& node,
                                                  const BuildOptions& options) {
  return Make<ConvKernel>(g, node, options);
}

std::vector<std::string> ConvTactics(const graph::Graph&, const graph::Node&, const BuildOptions&) {
  std::vector<std::string> names;
  for (const auto& [t, name] : kConvTactics) names.emplace_back(name);
  return names;
}

StatusOr<std::unique_ptr<NodeKernel>> CompileConvTactic(const graph::Graph& g,
                                                        const graph::Node& node,
                                                        const BuildOptions& options,
                                                        std::string_view tactic) {
  for (const auto& [t, name] : kConvTactics) {
    if (tactic == name) return Make<ConvKernel>(g, node, options, t);
  }
  return InvalidArgument(node.Describe() + ": unknown convolution tactic '" + std::string(tactic) +
                         "'");
}

// The ksplit tactics apply to fp32 products with constant weights and a K long enough for at
// least two chunks.
std::vector<std::string> GemmTactics(const graph::Graph& g, const graph::Node& node,
                                     const BuildOptions& options) {
  std::vector<std::string> names = {"packed", "plain"};
  const Tensor* b = ConstF32(g, node.inputs[1]);
  if (!b || options.precision != Precision::kFp32 || b->shape().rank() != 2) return names;
  const bool trans_b = node.op_type != "MatMul" && node.GetInt("transB", 0) == 1;
  const int64_t k = b->shape()[trans_b ? 1 : 0];
  for (int64_t chunk : kKSplitChunks) {
    if (k >= 2 * chunk) names.push_back("ksplit-" + std::to_string(chunk));
  }
  Activation act;
  const bool act_ok =
      node.op_type == "MatMul" || (ParseActivation(node, &act) && PanelActivationOf(act));
  if (act_ok && PanelGemm::Available()) {
    for (int64_t block : kPanelBlocks) names.push_back("panel-kc" + std::to_string(block));
  }
  return names;
}

StatusOr<std::unique_ptr<NodeKernel>> CompileGemmTactic(const graph::Graph& g,
                                                        const graph::Node& node,
                                                        const BuildOptions& options,
                                                        std::string_view tactic) {
  const bool gemm = node.op_type != "MatMul";
  if (tactic == "packed") return Make<MatMulKernel>(g, node, options, gemm, GemmTactic::kPacked);
  if (tactic == "plain") return Make<MatMulKernel>(g, node, options, gemm, GemmTactic::kPlain);
  for (int64_t chunk : kKSplitChunks) {
    if (tactic == "ksplit-" + std::to_string(chunk)) {
      const std::vector<std::string> offered = GemmTactics(g, node, options);
      if (std::find(offered.begin(), offered.end(), tactic) == offered.end()) break;
      return Make<MatMulKernel>(g, node, options, gemm, GemmTactic::kKSplit, chunk);
    }
  }
  for (int64_t block : kPanelBlocks) {
    if (tactic == "panel-kc" + std::to_string(block)) {
      const std::vector<std::string> offered = GemmTactics(g, node, options);
      if (std::find(offered.begin(), offered.end(), tactic) == offered.end()) break;
      return Make<MatMulKernel>(g, node, options, gemm, GemmTactic::kPanel, block);
    }
  }
  return InvalidArgument(node.Describe() + ": tactic '" + std::string(tactic) +
                         "' does not apply (available: packed, plain, ksplit-N for fp32 "
                         "products with constant weights and long K, panel-kcN for fp32 "
                         "products with constant weights on AVX-512 CPUs)");
}

StatusOr<std::unique_ptr<NodeKernel>> CompileGemm(const graph::Graph& g, const graph::Node& node,
                                                  const BuildOptions& options) {
  return Make<MatMulKernel>(g, node, options, true);
}

StatusOr<std::unique_ptr<NodeKernel>> CompileMatMul(const graph::Graph& g, const graph::Node& node,
                                                    const BuildOptions& options) {
  return Make<MatMulKernel>(g, node, options, false);
}

// Plain Conv and Gemm carry no activation attributes; SupportsConv/SupportsGemm would accept
// stray ones as a fused activation, which the reference Conv/Gemm kernels do not apply.
bool SupportsPlainConv(const graph::Graph& g, const graph::Node& node) {
  return !node.Has("activation") && SupportsConv(g, node);
}
bool SupportsPlainGemm(const graph::Graph& g, const graph::Node& node) {
  return !node.Has("activation") && SupportsGemm(g, node);
}

constexpr OpSupport kDenseOps[] = {
    {"", "Conv", &SupportsPlainConv, &CompileConv, &ConvTactics, &CompileConvTactic},
    {"larserve", "FusedConv", &SupportsConv, &CompileConv, &ConvTactics, &CompileConvTactic},
    {"", "Gemm", &SupportsPlainGemm, &CompileGemm, &GemmTactics, &CompileGemmTactic},
    {"larserve", "FusedGemm", &SupportsGemm, &CompileGemm, &GemmTactics, &CompileGemmTactic},
    {"", "MatMul", &SupportsMatMul, &CompileMatMul, &GemmTactics, &CompileGemmTactic},
};

}  // namespace

std::span<const OpSupport> DenseOps() { return kDenseOps; }

}  // namespace larserve::runtime::cpu

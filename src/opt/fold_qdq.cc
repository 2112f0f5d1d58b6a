// fold-qdq: explicit quantisation (QDQ models, e.g. onnxruntime's quantize_static with
// QuantFormat.QDQ), as TensorRT's explicit-precision mode. In the pipeline of int8 builds only:
// at other precisions the Q/DQ nodes stay and run with their exact ONNX rounding.
//
// Activations: x -> QuantizeLinear(s, zero point 0, int8) -> DequantizeLinear(s, 0) -> y, with
// one scale for the whole tensor, becomes x (readers of y read x), and amax = 127 s is recorded
// for x (ExplicitQuantization::activation_amax). An int8 kernel reading x quantises it exactly as
// the QuantizeLinear did: same scale, round half to even, saturation to [-128, 127]. The pair is
// removed only where nothing but its rounding is lost: every reader of y is an int8 dense input,
// the QuantizeLinear of a pair with a scale <= s, or an op that commutes with the saturation
// (Relu, data movement, MaxPool) read only by such pairs. Otherwise (a Softmax or an Add reads
// y, say; or a dense node reads x itself, which the model runs unquantised; or x already has
// another range) the pair becomes Clip(x, -128 s, 127 s) -> y, which keeps the saturation and is
// fused into a preceding Conv/Gemm where possible, and the range is recorded for y. Either way a
// reader that is not an int8 kernel misses only the pair's rounding, at most s / 2.
// Left in place, with the reason logged once:
//   - uint8 output (no zero point, or a uint8 one) or a non-zero zero point: asymmetric ranges,
//     which the kernels' symmetric s8 activations cannot express;
//   - per-axis activation scales: the kernels take one scale per activation tensor;
//   - a DequantizeLinear with another scale than its QuantizeLinear (a requantisation), or a
//     quantised tensor read by anything but DequantizeLinear;
//   - pairs whose output is a graph output: no later kernel quantises it, so folding would leave
//     the model's output unrounded (a step of the output's grid is what a user of a quantised
//     model compares against). They run on the reference backend, exactly, and cost little:
//     outputs are small.
//
// Weights: DequantizeLinear(constant int8 W_q, s_w per tensor or per output channel, zero point
// 0) read as the weights of a Conv / Gemm / MatMul: s_w, one value per output channel, is
// recorded under the dense node's name (ExplicitQuantization::weight_scales) and the node is left
// to constant folding, which makes the float weights s_w * q exactly. The cpu int8 kernels then
// quantise those weights with s_w and get q back exactly; requantising with max |W| / 127 per
// channel would not wherever a channel has no |q| = 127 (per-tensor scales, always-small rows).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "larserve/opt/pass.h"
#include "pass_util.h"

namespace larserve::opt {
namespace {

using internal::IsGraphOutput;

// The values of a float32 constant; false if v is not one.
bool ConstFloats(const graph::Graph& g, int v, std::vector<float>* out) {
  if (!g.IsConstant(v) || g.values[v].constant->dtype() != DType::kFloat32) return false;
  const auto s = g.values[v].constant->Span<float>();
  out->assign(s.begin(), s.end());
  return true;
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

// Why the zero point input `zp` (may be -1: absent) of a Q/DQ node is not a symmetric int8 one,
// or "". Without a zero point, QuantizeLinear produces uint8 and DequantizeLinear reads its input
// type with zero 0.
std::string ZeroPointProblem(const graph::Graph& g, int zp, bool absent_means_uint8) {
  if (zp < 0) return absent_means_uint8 ? "no zero point, so uint8 (an asymmetric range)" : "";
  if (!g.IsConstant(zp)) return "the zero point is not a constant";
  const Tensor& t = *g.values[zp].constant;
  if (t.dtype() == DType::kUInt8) return "uint8 zero point (an asymmetric range)";
  if (t.dtype() != DType::kInt8) return "zero point of another type than int8";
  for (int8_t z : t.Span<int8_t>()) {
    if (z != 0) return "zero point " + std::to_string(z) + " (an asymmetric range)";
  }
  return "";
}

// Attributes of newer opsets that change what a Q/DQ node means; "" if none is set.
std::string AttributeProblem(const graph::Node& node) {
  if (node.GetInt("block_size", 0) != 0) return "blocked quantisation (block_size)";
  // output_dtype (opset 21): int8 is TensorProto type 3; DequantizeLinear's float is 1.
  const int64_t want = node.op_type == "QuantizeLinear" ? 3 : 1;
  if (node.Has("output_dtype") && node.GetInt("output_dtype", want) != want)
    return "output_dtype " + std::to_string(node.GetInt("output_dtype", 0));
  return "";
}

// The one scale of a per-tensor Q/DQ node, or 0 with `why` set.
float PerTensorScale(const graph::Graph& g, const graph::Node& node, std::string* why) {
  std::vector<float> s;
  if (node.inputs.size() < 2 || !ConstFloats(g, node.inputs[1], &s)) {
    *why = "its scale is not a float32 constant";
    return 0;
  }
  if (s.size() != 1) {
    *why = "per-axis scale (" + std::to_string(s.size()) +
           " values); the int8 kernels take one scale per activation tensor";
    return 0;
  }
  if (!(s[0] > 0) || !std::isfinite(s[0])) {
    *why = "scale " + Num(s[0]) + " is not positive and finite";
    return 0;
  }
  return s[0];
}

// amax for scale s as the kernels read it back (s_x = amax / 127 in float): 127 s, moved by an
// ulp or two where that makes the division give s itself, so that the kernel quantises with the
// model's scale bit for bit.
float AmaxForScale(float s) {
  const float a = 127.0f * s;
  float down = a, up = a;
  for (int k = 0; k < 4; ++k) {
    if (down / 127.0f == s) return down;
    if (up / 127.0f == s) return up;
    down = std::nextafter(down, 0.0f);
    up = std::nextafter(up, std::numeric_limits<float>::infinity());
  }
  return a;
}

// The axis of a dense node's weights (input 1) that indexes its output channels, or -1 if the
// node is not a dense op whose int8 kernel takes per-output-channel weight scales.
int OutputChannelAxis(const graph::Node& node, const Tensor& weights) {
  const bool onnx = node.domain.empty(), ours = node.domain == "larserve";
  if ((onnx && node.op_type == "Conv") || (ours && node.op_type == "FusedConv"))
    return weights.shape().rank() >= 3 ? 0 : -1;
  if ((onnx && node.op_type == "Gemm") || (ours && node.op_type == "FusedGemm"))
    return weights.shape().rank() == 2 ? (node.GetInt("transB", 0) != 0 ? 0 : 1) : -1;
  if (onnx && node.op_type == "MatMul") return weights.shape().rank() == 2 ? 1 : -1;
  return -1;
}

class FoldQdqPass : public Pass {
 public:
  std::string_view name() const override { return "fold-qdq"; }

  StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const override {
    if (!ctx.quantization) return 0;  // nothing could carry the ranges to the kernels
    RecordWeightScales(g, ctx);
    return FoldActivationPairs(g, ctx);
  }

 private:
  // The pass runs once per pipeline round: a pair left in place is explained once.
  static void LogOnce(const PassContext& ctx, std::string line) {
    if (ctx.log && std::find(ctx.log->begin(), ctx.log->end(), line) != ctx.log->end()) return;
    ctx.Log(std::move(line));
  }

  static int FoldActivationPairs(graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    std::vector<bool> dead(g.nodes.size(), false);
    int count = 0;
    for (std::size_t n = 0; n < g.nodes.size(); ++n) {
      const graph::Node& q = g.nodes[n];
      if (q.op_type != "QuantizeLinear" || !q.domain.empty() || q.inputs.size() < 2 ||
          q.outputs.size() != 1 || q.inputs[0] < 0 || q.outputs[0] < 0)
        continue;
      const int x = q.inputs[0], qo = q.outputs[0];
      // A constant's pair is constant folding's (exactly); a pair with no DequantizeLinear
      // reader is not a pair.
      if (g.IsConstant(x) || consumers[qo].empty()) continue;
      if (std::string why = Problem(g, q, consumers, qo); !why.empty()) {
        LogOnce(ctx, "left " + q.Describe() + " and its DequantizeLinear in place: " + why);
        continue;
      }
      const float s = FoldableScale(g, q, consumers);
      const float amax = AmaxForScale(s);
      const std::string xname = g.values[x].name;
      auto& table = ctx.quantization->activation_amax;
      // Removing the pair makes its readers read x and quantise it with this range. A Clip to
      // the pair's range [-128 s, 127 s] replaces it instead where that would lose more than
      // the rounding: a reader that does not saturate to the range itself, another range
      // already recorded for x, or a dense node reading x directly, which the model runs
      // unquantised.
      std::string clip_because;
      for (int d : consumers[qo]) {
        if (clip_because.empty())
          clip_because = UnsaturatedReader(g, consumers, g.nodes[d].outputs[0], s);
      }
      if (auto it = table.find(xname);
          clip_because.empty() && it != table.end() && it->second != amax) {
        clip_because =
            "'" + xname + "' already has range " + Num(it->second) + " from another pair";
      }
      if (clip_because.empty()) clip_because = DenseReaderOutsidePair(g, consumers, x);
      std::string dqs;
      for (int d : consumers[qo]) {
        dqs += (dqs.empty() ? "" : ", ") + g.nodes[d].Describe();
        const int y = g.nodes[d].outputs[0];
        if (clip_because.empty()) {
          ReplaceAllUses(g, y, x);
          dead[d] = true;
        } else {
          MakeClip(g, g.nodes[d], x, -128.0f * s, 127.0f * s);
          table[g.values[y].name] = amax;
        }
      }
      if (clip_because.empty()) table[xname] = amax;
      dead[n] = true;
      ++count;
      const std::string what = "folded " + q.Describe() + " -> " + dqs + " on '" + xname +
                               "' (int8 scale " + Num(s) + ", amax " + Num(amax) + ")";
      ctx.Log(clip_because.empty()
                  ? what
                  : what + " into a Clip to [" + Num(-128.0f * s) + ", " + Num(127.0f * s) +
                        "] that keeps its saturation: " + clip_because);
    }
    if (count) internal::RemoveNodes(g, dead);
    return count;
  }

  // The scale of a foldable pair (Problem() is ""), else 0.
  static float FoldableScale(const graph::Graph& g, const graph::Node& q,
                             const std::vector<std::vector<int>>& consumers) {
    if (q.op_type != "QuantizeLinear" || !q.domain.empty() || q.inputs.size() < 2 ||
        q.outputs.size() != 1 || q.outputs[0] < 0 || q.inputs[0] < 0 || g.IsConstant(q.inputs[0]) ||
        consumers[q.outputs[0]].empty() || !Problem(g, q, consumers, q.outputs[0]).empty())
      return 0;
    std::string why;
    return PerTensorScale(g, q, &why);
  }

  // Whether `node` is a dense op that reads v as its input (and only there) with weights that
  // are or will be constant: its int8 kernel quantises v, saturating as QuantizeLinear does.
  static bool DenseInput(const graph::Graph& g, const graph::Node& node, int v) {
    const bool onnx = node.domain.empty(), ours = node.domain == "larserve";
    const bool dense =
        (onnx && (node.op_type == "Conv" || node.op_type == "Gemm" || node.op_type == "MatMul")) ||
        (ours && (node.op_type == "FusedConv" || node.op_type == "FusedGemm"));
    if (!dense || node.inputs.size() < 2 || node.inputs[0] != v || node.GetInt("transA", 0) != 0)
      return false;
    for (std::size_t i = 1; i < node.inputs.size(); ++i) {
      if (node.inputs[i] == v) return false;
    }
    const int w = node.inputs[1];
    if (g.IsConstant(w)) return true;
    const int p = g.values[w].producer;
    return p >= 0 && g.nodes[p].op_type == "DequantizeLinear" && g.nodes[p].domain.empty() &&
           !g.nodes[p].inputs.empty() && g.IsConstant(g.nodes[p].inputs[0]);
  }

  // The first reader of y (a pair's output, scale s) that would not saturate y to the pair's
  // range [-128 s, 127 s] or a narrower one by itself, described; "" if every reader does:
  //   - a dense node reading y as its input (DenseInput);
  //   - the QuantizeLinear of another foldable pair with a scale <= s;
  //   - an op that commutes with the saturation (data movement, max pooling, Relu -- for Relu,
  //     Relu(clip(v, lo, hi)) = clip(Relu(v), 0, hi)) whose output only such pairs read.
  static std::string UnsaturatedReader(const graph::Graph& g,
                                       const std::vector<std::vector<int>>& consumers, int y,
                                       float s) {
    if (IsGraphOutput(g, y)) return "its output is a graph output";
    auto narrower_pair = [&](const graph::Node& r) {
      const float s2 = FoldableScale(g, r, consumers);
      return s2 > 0 && s2 <= s;
    };
    for (int c : consumers[y]) {
      const graph::Node& r = g.nodes[c];
      if (DenseInput(g, r, y) || narrower_pair(r)) continue;
      static const char* const kCommuting[] = {"Relu",    "Transpose", "Reshape",
                                               "Flatten", "Squeeze",   "Unsqueeze",
                                               "MaxPool", "Identity",  "Dropout"};
      bool commutes = r.domain.empty() && !r.inputs.empty() && r.inputs[0] == y &&
                      !r.outputs.empty() && r.outputs[0] >= 0 && !IsGraphOutput(g, r.outputs[0]) &&
                      !consumers[r.outputs[0]].empty();
      commutes = commutes && std::find(std::begin(kCommuting), std::end(kCommuting), r.op_type) !=
                                 std::end(kCommuting);
      for (std::size_t i = 1; commutes && i < r.inputs.size(); ++i) commutes = r.inputs[i] != y;
      for (std::size_t i = 1; commutes && i < r.outputs.size(); ++i) {
        // MaxPool's indices, Dropout's mask: unused or the op is not a pure reshuffle.
        commutes = r.outputs[i] < 0 || consumers[r.outputs[i]].empty();
      }
      for (int c2 : commutes ? consumers[r.outputs[0]] : std::vector<int>{}) {
        commutes = commutes && narrower_pair(g.nodes[c2]);
      }
      if (!commutes) return r.Describe() + " would not saturate it";
    }
    return "";
  }

  // A dense node that reads x itself (not through a pair) as its input, described, or "".
  // `consumers` are the readers before this pass rewired any: readers of pairs already folded
  // onto x read it quantised.
  static std::string DenseReaderOutsidePair(const graph::Graph& g,
                                            const std::vector<std::vector<int>>& consumers, int x) {
    for (int c : consumers[x]) {
      if (DenseInput(g, g.nodes[c], x))
        return g.nodes[c].Describe() + " reads '" + g.values[x].name + "' unquantised";
    }
    return "";
  }

  // Turns `node` (a DequantizeLinear) into Clip(x, lo, hi), keeping its name and output.
  static void MakeClip(graph::Graph& g, graph::Node& node, int x, float lo, float hi) {
    node.op_type = "Clip";
    node.attrs.clear();
    if (g.opset < 11) {  // bounds were attributes before opset 11
      graph::Attribute a;
      a.kind = graph::Attribute::Kind::kFloat;
      a.f = lo;
      node.attrs["min"] = a;
      a.f = hi;
      node.attrs["max"] = a;
      node.inputs = {x};
      return;
    }
    auto scalar = [&](const std::string& base, float v) {
      graph::Value c;
      c.name = internal::UniqueName(g, base);
      c.dtype = DType::kFloat32;
      c.has_shape = true;
      Tensor t = *Tensor::Create(DType::kFloat32, Shape{});
      t.Span<float>()[0] = v;
      c.constant = std::move(t);
      return g.AddValue(std::move(c));
    };
    const int lo_v = scalar(node.name + "_min", lo);
    const int hi_v = scalar(node.name + "_max", hi);
    node.inputs = {x, lo_v, hi_v};
  }

  // Why the QuantizeLinear q and its readers are not a foldable symmetric int8 pair, or "".
  static std::string Problem(const graph::Graph& g, const graph::Node& q,
                             const std::vector<std::vector<int>>& consumers, int qo) {
    if (g.values[q.inputs[0]].dtype != DType::kFloat32) return "its input is not float32";
    if (std::string a = AttributeProblem(q); !a.empty()) return a;
    std::string why;
    const float s = PerTensorScale(g, q, &why);
    if (s == 0) return why;
    if (std::string z = ZeroPointProblem(g, q.inputs.size() > 2 ? q.inputs[2] : -1, true);
        !z.empty())
      return z;
    if (IsGraphOutput(g, qo)) return "the quantised tensor is a graph output";
    for (int d : consumers[qo]) {
      const graph::Node& dq = g.nodes[d];
      if (dq.op_type != "DequantizeLinear" || !dq.domain.empty() || dq.inputs[0] != qo ||
          dq.outputs.size() != 1 || dq.outputs[0] < 0) {
        return "the quantised tensor is also read by " + dq.Describe();
      }
      if (std::string a = AttributeProblem(dq); !a.empty()) return dq.Describe() + ": " + a;
      const float ds = PerTensorScale(g, dq, &why);
      if (ds == 0) return dq.Describe() + ": " + why;
      if (ds != s) {
        return dq.Describe() + " has scale " + Num(ds) + ", not " + Num(s) + " (a requantisation)";
      }
      if (std::string z = ZeroPointProblem(g, dq.inputs.size() > 2 ? dq.inputs[2] : -1, false);
          !z.empty())
        return dq.Describe() + ": " + z;
      if (IsGraphOutput(g, dq.outputs[0])) {
        return "its output '" + g.values[dq.outputs[0]].name +
               "' is a graph output, whose quantisation no later kernel would reproduce";
      }
    }
    return "";
  }

  // DequantizeLinear of constant int8 weights read by dense nodes: their per-output-channel
  // scales, recorded under the dense node's name. The graph is not changed (constant folding
  // makes the weights float next), so this counts no rewrite.
  static void RecordWeightScales(const graph::Graph& g, const PassContext& ctx) {
    const auto consumers = g.Consumers();
    for (const graph::Node& dq : g.nodes) {
      if (dq.op_type != "DequantizeLinear" || !dq.domain.empty() || dq.inputs.size() < 2 ||
          dq.outputs.size() != 1 || dq.outputs[0] < 0 || !g.IsConstant(dq.inputs[0]))
        continue;
      const Tensor& wq = *g.values[dq.inputs[0]].constant;
      // int32 inputs are biases (scale s_x * s_w): constant folding makes them float, and the
      // kernels take float biases.
      if (wq.dtype() != DType::kInt8 && wq.dtype() != DType::kUInt8) continue;
      const int w = dq.outputs[0];
      std::string why;
      std::vector<float> s;
      if (wq.dtype() == DType::kUInt8) {
        why = "uint8 weights (an asymmetric range)";
      } else if (std::string a = AttributeProblem(dq); !a.empty()) {
        why = a;
      } else if (dq.inputs.size() < 2 || !ConstFloats(g, dq.inputs[1], &s) || s.empty()) {
        why = "its scale is not a float32 constant";
      } else if (std::string z =
                     ZeroPointProblem(g, dq.inputs.size() > 2 ? dq.inputs[2] : -1, false);
                 !z.empty()) {
        why = z;
      } else {
        for (float v : s) {
          if (!(v > 0) || !std::isfinite(v)) why = "a scale is not positive and finite";
        }
      }
      int readers = 0;
      for (int c : consumers[w]) {
        const graph::Node& node = g.nodes[c];
        if (node.inputs.size() < 2 || node.inputs[1] != w) continue;
        const int axis = OutputChannelAxis(node, wq);
        if (axis < 0) continue;
        ++readers;
        std::string problem = why;
        const int64_t channels = wq.shape()[axis];
        if (problem.empty() && s.size() != 1) {
          // Per-axis: the axis must be the node's output channels for the kernel's per-channel
          // scales to express it.
          const int64_t rank = static_cast<int64_t>(wq.shape().rank());
          int64_t a = dq.GetInt("axis", 1);
          if (a < 0) a += rank;
          if (a != axis || static_cast<int64_t>(s.size()) != channels) {
            problem = "per-axis scales along axis " + std::to_string(a) +
                      ", not the output channels (axis " + std::to_string(axis) + ")";
          }
        }
        if (!problem.empty()) {
          LogOnce(ctx, "weights of " + node.Describe() + " from " + dq.Describe() + ": " + problem +
                           "; the int8 kernel requantises them with max |W| / 127");
          continue;
        }
        std::vector<float> per_channel =
            s.size() == 1 ? std::vector<float>(static_cast<std::size_t>(channels), s[0]) : s;
        auto& table = ctx.quantization->weight_scales;
        if (auto it = table.find(node.name); it != table.end() && it->second == per_channel)
          continue;  // recorded in an earlier round
        table[node.name] = std::move(per_channel);
        ctx.Log("recorded the int8 weight scales of " + dq.Describe() + " for " + node.Describe() +
                ": " +
                (s.size() == 1 ? "per tensor, " + Num(s[0])
                               : std::to_string(channels) + " output channels"));
      }
      if (readers == 0) {
        LogOnce(ctx, dq.Describe() +
                         ": constant int8 tensor not read as the weights of a Conv, Gemm or "
                         "MatMul; constant folding makes it float");
      }
    }
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFoldQdqPass() { return std::make_unique<FoldQdqPass>(); }

}  // namespace larserve::opt

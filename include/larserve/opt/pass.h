#pragma once
// Graph optimisation passes and the pass manager. One pass, one file (src/opt/*.cc): a pass
// says which ops it targets, matches cheaply, rewrites, and logs what it did in words. The
// manager verifies the graph after every pass, so a broken rewrite is caught at the pass that
// made it.
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"

namespace larserve::opt {

// Evaluates one node on constant inputs (the runtime's reference kernels); injected so that
// the optimiser does not depend on the runtime.
using NodeEvaluator =
    std::function<Status(const graph::Node& node, int64_t opset, std::span<const Tensor> inputs,
                         std::vector<Tensor>& outputs)>;

// Explicit quantisation (TensorRT's "explicit precision"): what the QuantizeLinear /
// DequantizeLinear nodes of a QDQ model said, recorded by fold-qdq as it removes them so that the
// int8 kernels can reproduce it. Engine::Build merges it into BuildOptions::calibration, where it
// takes precedence over calibrated ranges.
struct ExplicitQuantization {
  // Value name -> amax (127 * scale) of a symmetric per-tensor int8 activation pair that was
  // removed: readers of the pair's output now read this value and quantise it with this range.
  std::map<std::string, float> activation_amax;
  // Dense node name (Conv, Gemm, MatMul; their fused forms keep the name) -> the int8 scale of
  // its weights per output channel, from the DequantizeLinear that produced them. Keyed by node,
  // not by weight value, because later passes may replace the weights by a permuted copy
  // (fold-transpose-into-gemm), which keeps the per-output-channel scales but not the name.
  std::map<std::string, std::vector<float>> weight_scales;
  bool empty() const { return activation_amax.empty() && weight_scales.empty(); }
};

struct PassContext {
  NodeEvaluator evaluate;         // required by constant folding
  std::vector<std::string>* log;  // one line per rewrite; may be null
  // Where fold-qdq records the quantisation it removes; null: it removes nothing, since nothing
  // would carry the ranges to the kernels.
  ExplicitQuantization* quantization = nullptr;
  void Log(std::string line) const {
    if (log) log->push_back(std::move(line));
  }
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  // Rewrites g in place; returns the number of rewrites made.
  virtual StatusOr<int> Run(graph::Graph& g, const PassContext& ctx) const = 0;
};

std::unique_ptr<Pass> MakeEliminateIdentityPass();   // Identity, inference Dropout, no-op Cast
std::unique_ptr<Pass> MakeDeadCodePass();            // unused nodes and constants
std::unique_ptr<Pass> MakeConstantFoldingPass();     // nodes whose inputs are all constant
std::unique_ptr<Pass> MakeFoldBatchNormPass();       // Conv -> BatchNormalization into the Conv
std::unique_ptr<Pass> MakeFuseBiasActivationPass();  // Conv/Gemm/MatMul + Add + activation
std::unique_ptr<Pass> MakeTransposeReshapePass();    // cancel/merge/simplify layout ops
std::unique_ptr<Pass> MakeFuseConvTransposePass();   // Conv -> Transpose to NHWC: NHWC output
std::unique_ptr<Pass> MakeFoldTransposeIntoGemmPass();  // Transpose -> Flatten -> Gemm: permute weights
// Int8 builds only: symmetric int8 QuantizeLinear -> DequantizeLinear pairs -> ranges, weight
// DequantizeLinear -> weight scales (PassContext::quantization).
std::unique_ptr<Pass> MakeFoldQdqPass();

struct PassReport {
  std::string pass;
  int rewrites = 0;
  double milliseconds = 0;
  std::vector<std::string> log;
};

struct PipelineOptions {
  // Non-null (int8 builds): run fold-qdq and record there what the Q/DQ nodes meant. Null: Q/DQ
  // nodes stay and run with their exact ONNX rounding.
  ExplicitQuantization* explicit_quantization = nullptr;
};

class PassManager {
 public:
  void Add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  // Runs the passes in order, repeating the whole list until nothing changes (at most
  // max_rounds). Verifies the graph after each pass.
  Status Run(graph::Graph& g, const NodeEvaluator& evaluate, std::vector<PassReport>* report,
             int max_rounds = 4) const;

  // The default pipeline, in TensorRT's order: clean up, [fold Q/DQ,] fold constants, fold batch
  // norm, fuse.
  static PassManager Default(const PipelineOptions& options = {});

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
  ExplicitQuantization* quantization_ = nullptr;  // handed to every pass in PassContext
};

// Removes values no node or output refers to and renumbers the rest.
void CompactValues(graph::Graph& g);
// Makes every reader of value `from` read `to` instead (graph outputs included).
void ReplaceAllUses(graph::Graph& g, int from, int to);

}  // namespace larserve::opt

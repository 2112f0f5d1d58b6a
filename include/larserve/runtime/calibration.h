#pragma once
// INT8 calibration (TensorRT's IInt8EntropyCalibrator2 / MinMax / percentile calibrators): run
// the FP32 model on sample data, record the distribution of every activation, and choose for
// each one the range [-amax, amax] that int8 (scale = amax / 127) should cover.
//
//   min-max     amax = max |x| seen
//   percentile  amax = the given percentile of |x| (e.g. 99.99)
//   entropy     amax minimising the KL divergence between the |x| histogram and its 128-level
//               quantisation, with the tail folded into the last bin (TensorRT's algorithm)
//
// The result is a CalibrationTable, saved as a calibration cache file (docs/formats.md) so that
// rebuilding a plan does not need the data again.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"
#include "larserve/opt/pass.h"

namespace larserve::runtime {

enum class CalibrationMethod { kEntropy, kMinMax, kPercentile };
std::string_view CalibrationMethodName(CalibrationMethod m);
StatusOr<CalibrationMethod> CalibrationMethodFromName(std::string_view name);

struct CalibrationOptions {
  CalibrationMethod method = CalibrationMethod::kEntropy;
  double percentile = 99.99;  // for kPercentile
  int bins = 2048;            // histogram bins over [0, max |x|]
};

struct CalibrationTable {
  std::string method;
  std::map<std::string, float> amax;  // per value (graph inputs and node outputs, float32 only)
  // Explicit int8 weight scales (QDQ models, see WithExplicitQuantization): dense node name ->
  // scale per output channel. The cpu int8 kernels quantise such a node's weights with exactly
  // these scales, which give back the model's int8 weights, instead of max |W| / 127 per channel.
  // Empty in calibrated tables; stored in plans, not in calibration cache files.
  std::map<std::string, std::vector<float>> weight_scales;

  Status Save(const std::string& path) const;
  static StatusOr<CalibrationTable> Load(const std::string& path);
};

// The table of an int8 build of a model with explicit quantisation (opt::ExplicitQuantization,
// from fold-qdq): `base` (may be null: a QDQ model needs no calibration data) with the explicit
// ranges replacing calibrated ones of the same values -- the model states its own quantisation --
// and the explicit weight scales. method is base's with "+qdq" appended, or "qdq".
std::shared_ptr<const CalibrationTable> WithExplicitQuantization(
    const std::shared_ptr<const CalibrationTable>& base, const opt::ExplicitQuantization& q);

// Runs `graph` (any graph the reference backend runs; normally the optimised one) on every
// batch of inputs (one Tensor per graph input per batch) and computes the table.
StatusOr<CalibrationTable> Calibrate(const graph::Graph& graph,
                                     const std::vector<std::vector<Tensor>>& batches,
                                     const CalibrationOptions& options);

// The threshold choice alone, on a histogram of |x| with bins of equal width over [0, max]:
// exposed for tests.
float EntropyThreshold(const std::vector<double>& histogram, float max_abs);
float PercentileThreshold(const std::vector<double>& histogram, float max_abs, double percentile);

}  // namespace larserve::runtime

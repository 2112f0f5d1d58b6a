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
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"

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

  Status Save(const std::string& path) const;
  static StatusOr<CalibrationTable> Load(const std::string& path);
};

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

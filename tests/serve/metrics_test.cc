// The Prometheus text of the metrics endpoint, from hand-made statistics: Triton's family names,
// help texts and types, one line per model version with escaped labels, durations in
// microseconds. (The endpoint itself is tested end to end in tests/python/test_serve_http.py.)
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "larserve/serve/metrics.h"

namespace larserve::serve {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool Contains(const std::vector<std::string>& lines, const std::string& line) {
  for (const auto& l : lines) {
    if (l == line) return true;
  }
  return false;
}

TEST(Metrics, TritonFamiliesWithModelAndVersionLabels) {
  ModelStats a;
  a.success = {10, 5'000'000};  // 5 ms in all
  a.fail = {2, 1'000};
  a.queue = {10, 1'500'000};
  a.compute_input = {10, 20'999};  // rounded down to whole microseconds
  a.compute_infer = {10, 3'000'000};
  a.compute_output = {10, 7'000};
  a.inference_count = 40;
  a.execution_count = 4;
  a.pending = 3;
  ModelStats b;
  const std::string text =
      FormatPrometheusMetrics({{"emtrkmichel", "1", a}, {"we\"ird\\name\n", "2", b}});
  const auto lines = Lines(text);
  EXPECT_TRUE(Contains(lines,
                       "# HELP nv_inference_request_success Number of successful inference "
                       "requests, all batch sizes"));
  EXPECT_TRUE(Contains(lines, "# TYPE nv_inference_request_success counter"));
  EXPECT_TRUE(Contains(lines, "# TYPE nv_inference_pending_request_count gauge"));
  EXPECT_TRUE(Contains(lines,
                       "# HELP nv_inference_compute_output_duration_us Cumulative inference "
                       "compute output duration in microseconds (does not include cached "
                       "requests)"));
  const std::string l = "{model=\"emtrkmichel\",version=\"1\"} ";
  EXPECT_TRUE(Contains(lines, "nv_inference_request_success" + l + "10"));
  EXPECT_TRUE(Contains(lines, "nv_inference_request_failure" + l + "2"));
  EXPECT_TRUE(Contains(lines, "nv_inference_count" + l + "40"));
  EXPECT_TRUE(Contains(lines, "nv_inference_exec_count" + l + "4"));
  EXPECT_TRUE(Contains(lines, "nv_inference_pending_request_count" + l + "3"));
  EXPECT_TRUE(Contains(lines, "nv_inference_request_duration_us" + l + "5000"));
  EXPECT_TRUE(Contains(lines, "nv_inference_queue_duration_us" + l + "1500"));
  EXPECT_TRUE(Contains(lines, "nv_inference_compute_input_duration_us" + l + "20"));
  EXPECT_TRUE(Contains(lines, "nv_inference_compute_infer_duration_us" + l + "3000"));
  EXPECT_TRUE(Contains(lines, "nv_inference_compute_output_duration_us" + l + "7"));
  // Label values escape backslash, quote and line feed; the text stays one sample per line.
  EXPECT_TRUE(
      Contains(lines, "nv_inference_count{model=\"we\\\"ird\\\\name\\n\",version=\"2\"} 0"));
  // Ten families, each with HELP, TYPE and two samples.
  EXPECT_EQ(lines.size(), 10u * 4u);
  EXPECT_EQ(text.back(), '\n');
}

TEST(Metrics, NoModelsStillDescribesTheFamilies) {
  const auto lines = Lines(FormatPrometheusMetrics({}));
  EXPECT_EQ(lines.size(), 20u);
  EXPECT_TRUE(Contains(lines, "# TYPE nv_inference_count counter"));
}

}  // namespace
}  // namespace larserve::serve

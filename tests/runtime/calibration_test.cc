#include "larserve/runtime/calibration.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "larserve/core/rng.h"

namespace larserve::runtime {
namespace {

std::string Temp(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (std::to_string(getpid()) + "_" + name))
      .string();
}

// |x| histogram of N(0,1) samples plus rare large outliers, over [0, max].
std::vector<double> GaussianWithOutliers(int bins, float* max_abs) {
  Rng rng(3);
  std::vector<float> xs;
  for (int i = 0; i < 400000; ++i) xs.push_back(static_cast<float>(std::fabs(rng.Normal())));
  for (int i = 0; i < 20; ++i) xs.push_back(40.0f + static_cast<float>(rng.Uniform()) * 10.0f);
  *max_abs = *std::max_element(xs.begin(), xs.end());
  std::vector<double> h(bins, 0.0);
  for (float x : xs) h[std::min(bins - 1, static_cast<int>(x / *max_abs * bins))] += 1;
  return h;
}

TEST(CalibrationTest, ThresholdsIgnoreRareOutliersExceptMinMax) {
  float max_abs = 0;
  const auto h = GaussianWithOutliers(2048, &max_abs);
  EXPECT_GT(max_abs, 40.0f);
  // The 99.99th percentile of |N(0,1)| is 3.89.
  EXPECT_NEAR(PercentileThreshold(h, max_abs, 99.99), 3.89, 0.15);
  // The KL-optimal clipping of a Gaussian for 128 levels lies around 3-6 sigma, far below the
  // outliers.
  const float e = EntropyThreshold(h, max_abs);
  EXPECT_GT(e, 2.5f);
  EXPECT_LT(e, 8.0f);
}

graph::Graph ReluGraph() {
  graph::Graph g;
  g.opset = 13;
  graph::Value x;
  x.name = "x";
  x.dims = {-1, 8};
  x.has_shape = true;
  g.inputs.push_back(g.AddValue(x));
  graph::Value y;
  y.name = "y\twith tab";  // names are escaped in the cache file
  const int yi = g.AddValue(y);
  graph::Node n;
  n.name = "relu";
  n.op_type = "Relu";
  n.inputs = {0};
  n.outputs = {yi};
  g.nodes.push_back(n);
  g.outputs = {yi};
  g.RebuildProducers();
  return g;
}

TEST(CalibrationTest, MinMaxOfAGraph) {
  std::vector<std::vector<Tensor>> batches;
  Rng rng(1);
  float max_abs = 0;
  for (int b = 0; b < 3; ++b) {
    Tensor t = *Tensor::Create(DType::kFloat32, Shape{16, 8});
    for (float& v : t.Span<float>()) {
      v = static_cast<float>(rng.Uniform(-1.0, 3.0));
      max_abs = std::max(max_abs, std::fabs(v));
    }
    batches.push_back({t});
  }
  CalibrationOptions o;
  o.method = CalibrationMethod::kMinMax;
  auto table = Calibrate(ReluGraph(), batches, o);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->amax.at("x"), max_abs);
  EXPECT_EQ(table->amax.at("y\twith tab"), max_abs);  // relu keeps the positive maximum
  o.method = CalibrationMethod::kEntropy;
  auto entropy = Calibrate(ReluGraph(), batches, o);
  ASSERT_TRUE(entropy.ok()) << entropy.status().ToString();
  EXPECT_LE(entropy->amax.at("x"), max_abs * 1.001f);
}

TEST(CalibrationTest, CacheFileRoundTripAndCorruption) {
  CalibrationTable t;
  t.method = "entropy";
  t.amax = {{"a", 1.25f}, {"em_trk_none_netout/Softmax", 0.999f}, {"odd\tname%", 3.0e-3f}};
  const std::string path = Temp("calib.cache");
  ASSERT_TRUE(t.Save(path).ok());
  auto back = CalibrationTable::Load(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->method, "entropy");
  EXPECT_EQ(back->amax, t.amax);  // bit-exact: ranges are written as hex floats

  std::stringstream ss;
  ss << std::ifstream(path).rdbuf();
  std::string text = ss.str();
  text[text.find("1.4")] = '9';  // change a value: the checksum catches it
  std::ofstream(path, std::ios::trunc) << text;
  EXPECT_EQ(CalibrationTable::Load(path).status().code(), StatusCode::kDataLoss);
  std::ofstream(path, std::ios::trunc) << text.substr(0, text.size() / 2);
  EXPECT_FALSE(CalibrationTable::Load(path).ok());
  std::ofstream(path, std::ios::trunc) << "TensorRT calibration cache\n";
  EXPECT_EQ(CalibrationTable::Load(path).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CalibrationTable::Load(Temp("none.cache")).status().code(), StatusCode::kNotFound);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace larserve::runtime

#include "larserve/sim/config.h"

#include <gtest/gtest.h>

namespace larserve::sim {
namespace {

TEST(SimConfigTest, DefaultsAreValidAndRoundTrip) {
  SimConfig c;
  ASSERT_TRUE(c.Validate().ok()) << c.Validate().ToString();
  SimConfig d;
  d.detector.apas = 6;
  ASSERT_TRUE(d.MergeJson(c.ToJson()).ok());
  EXPECT_EQ(d.detector.apas, 1);
  EXPECT_EQ(d.ToJson(), c.ToJson());
}

TEST(SimConfigTest, MergeOverridesSubset) {
  SimConfig c;
  ASSERT_TRUE(
      c.MergeJson(
           R"({"argon": {"electron_lifetime_ms": 3.0}, "beam": {"species": ["mu+"], "weights": [1]}})")
          .ok());
  EXPECT_EQ(c.argon.electron_lifetime_ms, 3.0);
  EXPECT_EQ(c.beam.species.size(), 1u);
  EXPECT_EQ(c.detector.n_ticks, 6000);
  EXPECT_TRUE(c.Validate().ok());
}

TEST(SimConfigTest, UnknownKeysAndTypesNamed) {
  SimConfig c;
  Status s = c.MergeJson(R"({"argon": {"lifetime": 3}})");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("argon.lifetime"), std::string::npos) << s.message();
  s = c.MergeJson(R"({"detectr": {}})");
  EXPECT_NE(s.message().find("detectr"), std::string::npos) << s.message();
  s = c.MergeJson(R"({"detector": {"apas": "six"}})");
  EXPECT_NE(s.message().find("detector.apas"), std::string::npos) << s.message();
  s = c.MergeJson(R"({"detector": {"wire_pitch_mm": [1, 2]}})");
  EXPECT_FALSE(s.ok());
  s = c.MergeJson("{not json");
  EXPECT_NE(s.message().find("not valid JSON"), std::string::npos) << s.message();
}

TEST(SimConfigTest, ImpossibleValuesNamed) {
  struct Case {
    const char* json;
    const char* key;
  };
  for (const Case& k :
       {Case{R"({"argon": {"electron_lifetime_ms": -3}})", "argon.electron_lifetime_ms"},
        Case{R"({"detector": {"apas": 5}})", "detector.apas"},
        Case{R"({"detector": {"trigger_tick": 7000}})", "detector.trigger_tick"},
        Case{R"({"beam": {"species": ["kaon"], "weights": [1]}})", "beam.species"},
        Case{R"({"beam": {"weights": [1, 2]}})", "beam.weights"},
        Case{R"({"readout": {"noise_enc_electrons": [1000, -1, 1000]}})",
             "readout.noise_enc_electrons"},
        Case{R"({"cosmics": {"min_momentum_gev": 10, "max_momentum_gev": 5}})",
             "cosmics.max_momentum_gev"}}) {
    SimConfig c;
    ASSERT_TRUE(c.MergeJson(k.json).ok()) << k.json;
    Status s = c.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << k.json;
    EXPECT_NE(s.message().find(k.key), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace larserve::sim

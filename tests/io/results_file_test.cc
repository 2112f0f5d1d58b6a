#include "larserve/io/results_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

namespace larserve::io {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (std::to_string(getpid()) + "_" + name))
      .string();
}

// /hits/truth_kinetic_mev (the size delta-ray scheme's input) is written and read back, NaN
// for hits without a particle; a file from before the column existed reads as NaN.
TEST(ResultsFile, TruthKineticEnergyRoundTrip) {
  const std::string path = TempPath("results_kinetic.h5");
  std::vector<HitResult> hits(3);
  for (int i = 0; i < 3; ++i) {
    hits[i].wire = 10 + i;
    hits[i].category = static_cast<uint8_t>(i == 2 ? 0 : 4);
    hits[i].truth_id = i == 2 ? -1 : i;
  }
  hits[0].truth_kinetic_mev = 2.5f;
  hits[1].truth_kinetic_mev = 12.0f;
  EXPECT_TRUE(std::isnan(hits[2].truth_kinetic_mev));  // the default: no particle
  {
    ResultsFileInfo info;
    info.has_truth = true;
    auto w = ResultsFileWriter::Create(path, info);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->AppendEvent(hits).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  auto r = ReadResultsFile(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->hits.size(), 3u);
  EXPECT_EQ(r->hits[0].truth_kinetic_mev, 2.5f);
  EXPECT_EQ(r->hits[1].truth_kinetic_mev, 12.0f);
  EXPECT_TRUE(std::isnan(r->hits[2].truth_kinetic_mev));
  EXPECT_EQ(r->hits[1].wire, 11);

  // Remove the column, as in a file written before it existed.
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "hits/truth_kinetic_mev", H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  auto old = ReadResultsFile(path);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  ASSERT_EQ(old->hits.size(), 3u);
  for (const HitResult& h : old->hits) EXPECT_TRUE(std::isnan(h.truth_kinetic_mev));
  EXPECT_EQ(old->hits[1].wire, 11);
}

}  // namespace
}  // namespace larserve::io

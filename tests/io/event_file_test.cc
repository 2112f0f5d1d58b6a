#include "larserve/io/event_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "larserve/core/thread_pool.h"
#include "larserve/sim/simulator.h"

namespace larserve::io {
namespace {

// ctest runs the tests of this binary in parallel processes: keep their files apart.
std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (std::to_string(getpid()) + "_" + name))
      .string();
}

std::vector<char> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteBytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Status WriteRun(const std::string& path, uint64_t seed, int events, int threads) {
  sim::SimConfig config;
  ASSIGN_OR_RETURN(auto s, sim::Simulator::Create(config));
  ASSIGN_OR_RETURN(auto w,
                   EventFileWriter::Create(path, config, s->geometry(), seed, WriterOptions()));
  ThreadPool pool(threads);
  for (int i = 0; i < events; ++i) RETURN_IF_ERROR(w->Write(s->Simulate(seed, i, &pool)));
  return w->Close();
}

class EventFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::string(TempPath("events_roundtrip.h5"));
    ASSERT_TRUE(WriteRun(*path_, 5, 2, 2).ok());
  }
  static void TearDownTestSuite() { delete path_; }
  static std::string* path_;
};
std::string* EventFileTest::path_ = nullptr;

TEST_F(EventFileTest, RoundTripIsExact) {
  auto sim = sim::Simulator::Create(sim::SimConfig());
  ASSERT_TRUE(sim.ok());
  auto r = EventFileReader::Open(*path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->num_events(), 2);
  EXPECT_TRUE((*r)->info().complete);
  EXPECT_EQ((*r)->info().run_seed, 5u);
  EXPECT_EQ((*r)->info().channels[2], 960);
  auto ev = (*r)->ReadEvent(1);
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  sim::SimEvent want = (*sim)->Simulate(5, 1, nullptr);
  EXPECT_EQ(ev->seed, want.seed);
  ASSERT_EQ(ev->particles.size(), want.particles.size());
  EXPECT_EQ(ev->particles.back().pdg, want.particles.back().pdg);
  EXPECT_EQ(ev->particles.back().edep_mev, want.particles.back().edep_mev);
  ASSERT_EQ(ev->planes.size(), 3u);
  for (int p = 0; p < 3; ++p) {
    EXPECT_EQ(ev->planes[p].signal, want.planes[p].signal);
    EXPECT_EQ(ev->planes[p].roi_offset, want.planes[p].roi_offset);
    EXPECT_EQ(ev->planes[p].truth_tick, want.planes[p].truth_tick);
    EXPECT_EQ(ev->planes[p].truth_charge, want.planes[p].truth_charge);
  }
  EXPECT_EQ((*r)->ReadEvent(2).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*r)->ReadPlane(0, 1, 0).status().code(), StatusCode::kOutOfRange);
}

TEST_F(EventFileTest, SameSeedGivesIdenticalFilesWhateverTheThreads) {
  const std::string again = TempPath("events_again.h5");
  ASSERT_TRUE(WriteRun(again, 5, 2, 1).ok());
  EXPECT_TRUE(ReadBytes(*path_) == ReadBytes(again)) << "files differ";
  const std::string other = TempPath("events_other.h5");
  ASSERT_TRUE(WriteRun(other, 6, 2, 1).ok());
  EXPECT_FALSE(ReadBytes(*path_) == ReadBytes(other));
}

TEST_F(EventFileTest, MissingNotHdf5AndTruncatedFilesAreRefused) {
  EXPECT_EQ(EventFileReader::Open(TempPath("nope.h5")).status().code(), StatusCode::kNotFound);
  const std::string text = TempPath("text.h5");
  WriteBytes(text, std::vector<char>(1000, 'x'));
  auto r = EventFileReader::Open(text);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not an HDF5 file"), std::string::npos)
      << r.status().message();
  const auto bytes = ReadBytes(*path_);
  for (double frac : {0.02, 0.3, 0.7, 0.99}) {
    const std::string cut = TempPath("truncated.h5");
    WriteBytes(cut, std::vector<char>(bytes.begin(),
                                      bytes.begin() + static_cast<long>(bytes.size() * frac)));
    auto t = EventFileReader::Open(cut);
    if (t.ok()) {  // the header survived: reading the events must then fail cleanly
      bool failed = false;
      for (int64_t i = 0; i < (*t)->num_events(); ++i) failed |= !(*t)->ReadEvent(i).ok();
      EXPECT_TRUE(failed) << "truncated at " << frac << " but every event read";
    } else {
      EXPECT_FALSE(t.status().message().empty());
    }
  }
}

TEST_F(EventFileTest, CorruptDataIsDetectedByChecksums) {
  auto bytes = ReadBytes(*path_);
  // Flip bytes across the body of the file (the stored signal and truth are most of it):
  // every corruption must be reported, never returned as data.
  int detected = 0, trials = 0;
  for (double frac : {0.2, 0.35, 0.5, 0.65, 0.8}) {
    auto copy = bytes;
    const std::size_t at = static_cast<std::size_t>(copy.size() * frac);
    for (std::size_t k = 0; k < 16; ++k) copy[at + k] ^= 0x5a;
    const std::string bad = TempPath("corrupt.h5");
    WriteBytes(bad, copy);
    ++trials;
    auto r = EventFileReader::Open(bad);
    if (!r.ok()) {
      ++detected;
      continue;
    }
    bool failed = false;
    for (int64_t i = 0; i < (*r)->num_events(); ++i) {
      auto ev = (*r)->ReadEvent(i);
      if (!ev.ok()) {
        failed = true;
        EXPECT_FALSE(ev.status().message().empty());
      }
    }
    detected += failed;
  }
  EXPECT_EQ(detected, trials);
}

TEST_F(EventFileTest, CorruptHeaderIsDetected) {
  // Object headers carry checksums: a flipped byte in the root attributes is reported.
  auto bytes = ReadBytes(*path_);
  const std::string needle = kEventsFormat;
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  ASSERT_NE(it, bytes.end());
  *it = 'X';
  const std::string bad = TempPath("bad_header.h5");
  WriteBytes(bad, bytes);
  EXPECT_FALSE(EventFileReader::Open(bad).ok());
}

TEST_F(EventFileTest, OtherHdf5FilesAreRefused) {
  // A valid HDF5 file that is not an events file: no format attribute, then a different one.
  const std::string other = TempPath("other.h5");
  for (const char* format : {static_cast<const char*>(nullptr), "larserve-patches"}) {
    hid_t f = H5Fcreate(other.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    if (format) {
      hid_t type = H5Tcopy(H5T_C_S1);
      H5Tset_size(type, std::strlen(format));
      hid_t space = H5Screate(H5S_SCALAR);
      hid_t attr = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(attr, type, format);
      H5Aclose(attr);
      H5Sclose(space);
      H5Tclose(type);
    }
    H5Fclose(f);
    auto r = EventFileReader::Open(other);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("not a larserve events file"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace larserve::io

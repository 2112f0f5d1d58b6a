#include "larserve/io/patch_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "larserve/core/rng.h"

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

PatchFileInfo SmallHeader() {
  PatchFileInfo h;
  h.source = "events.h5";
  h.patch_wires = 4;
  h.patch_drifts = 6;
  h.zero_level = 0;
  h.selection = R"({"balance":"train","seed":3})";
  h.block_rows = 7;  // small blocks: appends and reads cross block boundaries
  return h;
}

PatchRecord Record(int i) {
  static const sim::Category cats[] = {sim::Category::kNone, sim::Category::kTrack,
                                       sim::Category::kShower, sim::Category::kMichel,
                                       sim::Category::kDelta};
  PatchRecord r;
  const sim::Category c = cats[i % 5];
  r.category = static_cast<uint8_t>(c);
  r.label = static_cast<uint8_t>(LabelOfCategory(c));
  r.michel = c == sim::Category::kMichel;
  r.kind = (c == sim::Category::kNone && i % 2 == 0) ? 1 : 0;
  r.plane = static_cast<uint8_t>(i % 3);
  r.apa = static_cast<int16_t>(i % 6);
  r.wire = 10 * i;
  r.event = i / 10;
  r.peak_tick = 3.25f * i;
  r.integral = 100.0f + i;
  r.truth_fraction = c == sim::Category::kNone ? 0.0f : 0.5f + 0.01f * (i % 50);
  return r;
}

bool SameRecord(const PatchRecord& a, const PatchRecord& b) {
  return a.label == b.label && a.michel == b.michel && a.category == b.category &&
         a.plane == b.plane && a.kind == b.kind && a.apa == b.apa && a.wire == b.wire &&
         a.event == b.event && a.peak_tick == b.peak_tick && a.integral == b.integral &&
         a.truth_fraction == b.truth_fraction;
}

// Writes n patches in appends of varying size; returns the pixels written.
std::vector<float> WriteFile(const std::string& path, int n, int compression = 1) {
  PatchWriterOptions opt;
  opt.compression_level = compression;
  auto w = PatchFileWriter::Create(path, SmallHeader(), opt);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  std::vector<float> all;
  Rng rng(11);
  int done = 0, step = 1;
  while (done < n) {
    const int m = std::min(step, n - done);
    std::vector<float> px(m * 24);
    for (float& x : px) x = static_cast<float>(rng.Normal(0, 5));
    std::vector<PatchRecord> recs;
    for (int i = 0; i < m; ++i) recs.push_back(Record(done + i));
    EXPECT_TRUE((*w)->Append(px, recs).ok());
    all.insert(all.end(), px.begin(), px.end());
    done += m;
    step = step % 9 + 2;  // 1, 3, 5, 7, 9, 2, 4, ...
  }
  EXPECT_EQ((*w)->num_patches(), n);
  EXPECT_TRUE((*w)->Close().ok());
  return all;
}

TEST(PatchFile, RoundTrip) {
  const std::string path = TempPath("patches_roundtrip.h5");
  const int n = 53;  // 7 full blocks of 7 and a partial one
  const std::vector<float> pixels = WriteFile(path, n);
  auto r = PatchFileReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const PatchFileInfo& info = (*r)->info();
  EXPECT_EQ(info.num_patches, n);
  EXPECT_TRUE(info.complete);
  EXPECT_EQ(info.schema_version, kPatchesSchemaVersion);
  EXPECT_EQ(info.source, "events.h5");
  EXPECT_EQ(info.patch_wires, 4);
  EXPECT_EQ(info.patch_drifts, 6);
  EXPECT_EQ(info.drift_window, 6);
  EXPECT_EQ(info.adc_min, -10.0f);
  EXPECT_EQ(info.out_max, 15.0f);
  EXPECT_EQ(info.selection, R"({"balance":"train","seed":3})");
  EXPECT_EQ(info.class_names, "track,em,none");
  std::vector<float> px;
  std::vector<PatchRecord> recs;
  for (auto [b, e] : std::vector<std::pair<int, int>>{
           {0, 53}, {0, 1}, {5, 9}, {6, 7}, {7, 14}, {13, 50}, {52, 53}, {20, 20}}) {
    ASSERT_TRUE((*r)->Read(b, e, &px, &recs).ok()) << b << " " << e;
    ASSERT_EQ(recs.size(), static_cast<std::size_t>(e - b));
    ASSERT_EQ(px.size(), static_cast<std::size_t>(e - b) * 24);
    EXPECT_TRUE(std::equal(px.begin(), px.end(), pixels.begin() + b * 24)) << b << " " << e;
    for (int i = b; i < e; ++i) EXPECT_TRUE(SameRecord(recs[i - b], Record(i))) << i;
  }
  EXPECT_EQ((*r)->Read(50, 54, &px, &recs).code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*r)->Read(-1, 3, &px, &recs).code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*r)->Read(4, 3, &px, &recs).code(), StatusCode::kOutOfRange);
}

// --delta-rays em: delta rays are labelled em, the file says so, and a record labelled by the
// other scheme is refused on write (and would be on read).
TEST(PatchFile, DeltaRaySchemeIsStoredAndEnforced) {
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, DeltaRays::kEm), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kTrack, DeltaRays::kEm), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kMichel, DeltaRays::kEm), PatchLabel::kEm);
  EXPECT_EQ(*ParseDeltaRays("em"), DeltaRays::kEm);
  EXPECT_EQ(*ParseDeltaRays("track"), DeltaRays::kTrack);
  EXPECT_EQ(ParseDeltaRays("shower").status().code(), StatusCode::kInvalidArgument);

  const std::string path = TempPath("patches_delta_em.h5");
  PatchFileInfo h = SmallHeader();
  h.delta_rays = DeltaRays::kEm;
  auto w = PatchFileWriter::Create(path, h, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::vector<float> px(24, 1.0f);
  PatchRecord delta = Record(4);  // category delta
  ASSERT_EQ(delta.category, static_cast<uint8_t>(sim::Category::kDelta));
  const Status wrong = (*w)->Append(px, std::vector<PatchRecord>{delta});  // labelled track
  EXPECT_EQ(wrong.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("delta rays em"), std::string::npos) << wrong.message();
  delta.label = static_cast<uint8_t>(PatchLabel::kEm);
  ASSERT_TRUE((*w)->Append(px, std::vector<PatchRecord>{delta}).ok());
  ASSERT_TRUE((*w)->Close().ok());
  auto r = PatchFileReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->info().delta_rays, DeltaRays::kEm);
  std::vector<float> got;
  std::vector<PatchRecord> recs;
  ASSERT_TRUE((*r)->Read(0, 1, &got, &recs).ok());
  EXPECT_EQ(recs.at(0).label, static_cast<uint8_t>(PatchLabel::kEm));
}

TEST(PatchFile, EmptyFile) {
  const std::string path = TempPath("patches_empty.h5");
  WriteFile(path, 0);
  auto r = PatchFileReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->num_patches(), 0);
  std::vector<float> px;
  std::vector<PatchRecord> recs;
  EXPECT_TRUE((*r)->Read(0, 0, &px, &recs).ok());
}

TEST(PatchFile, WriterNotClosedLeavesAnIncompleteFile) {
  const std::string path = TempPath("patches_incomplete.h5");
  {
    auto w = PatchFileWriter::Create(path, SmallHeader(), {});
    ASSERT_TRUE(w.ok());
    std::vector<PatchRecord> recs;
    for (int i = 0; i < 10; ++i) recs.push_back(Record(i));
    ASSERT_TRUE((*w)->Append(std::vector<float>(10 * 24, 1.0f), recs).ok());
  }  // destroyed without Close: an error path of the caller
  auto r = PatchFileReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE((*r)->info().complete);
  EXPECT_EQ((*r)->num_patches(), 10);
  std::vector<float> px;
  std::vector<PatchRecord> recs;
  EXPECT_TRUE((*r)->Read(0, 10, &px, &recs).ok());
}

TEST(PatchFile, WriterRefusesBadInput) {
  const std::string path = TempPath("patches_bad.h5");
  PatchFileInfo h = SmallHeader();
  h.patch_wires = 0;
  EXPECT_EQ(PatchFileWriter::Create(path, h, {}).status().code(), StatusCode::kInvalidArgument);
  h = SmallHeader();
  h.adc_max = h.adc_min;
  EXPECT_FALSE(PatchFileWriter::Create(path, h, {}).ok());
  auto unwritable = PatchFileWriter::Create(TempPath("no/such/dir/p.h5"), SmallHeader(), {});
  ASSERT_FALSE(unwritable.ok());
  EXPECT_NE(unwritable.status().message().find("cannot create"), std::string::npos);

  auto w = PatchFileWriter::Create(path, SmallHeader(), {});
  ASSERT_TRUE(w.ok());
  std::vector<float> px(24);
  PatchRecord r = Record(1);
  r.label = 1;  // a track labelled em
  auto s = (*w)->Append(px, std::vector<PatchRecord>{r});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("label"), std::string::npos) << s.message();
  r = Record(2);
  r.kind = 1;  // an empty patch must have category none
  EXPECT_FALSE((*w)->Append(px, std::vector<PatchRecord>{r}).ok());
  EXPECT_FALSE((*w)->Append(std::vector<float>(23), std::vector<PatchRecord>{Record(1)}).ok());
  EXPECT_TRUE((*w)->Close().ok());
}

TEST(PatchFile, MissingOtherAndTruncatedFilesAreRefused) {
  EXPECT_EQ(PatchFileReader::Open(TempPath("nope.h5")).status().code(), StatusCode::kNotFound);
  const std::string text = TempPath("patches_text.h5");
  WriteBytes(text, std::vector<char>(1000, 'x'));
  auto r = PatchFileReader::Open(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not an HDF5 file"), std::string::npos);

  const std::string path = TempPath("patches_full.h5");
  WriteFile(path, 60, 0);
  const auto bytes = ReadBytes(path);
  for (double frac : {0.02, 0.3, 0.6, 0.9, 0.99}) {
    const std::string cut = TempPath("patches_truncated.h5");
    WriteBytes(cut, std::vector<char>(bytes.begin(),
                                      bytes.begin() + static_cast<long>(bytes.size() * frac)));
    auto t = PatchFileReader::Open(cut);
    if (t.ok()) {  // the header survived: reading the patches must then fail cleanly
      std::vector<float> px;
      std::vector<PatchRecord> recs;
      const Status s = (*t)->Read(0, (*t)->num_patches(), &px, &recs);
      EXPECT_FALSE(s.ok()) << "truncated at " << frac << " but every patch read";
    } else {
      EXPECT_NE(t.status().message().find("patch file"), std::string::npos) << t.status().message();
    }
  }
}

TEST(PatchFile, CorruptDataIsDetected) {
  const std::string path = TempPath("patches_corrupt_src.h5");
  WriteFile(path, 200, 0);  // uncompressed random pixels: most of the file is patch data
  const auto bytes = ReadBytes(path);
  int detected = 0, trials = 0;
  for (double frac : {0.15, 0.3, 0.45, 0.6, 0.75, 0.9}) {
    auto copy = bytes;
    const std::size_t at = static_cast<std::size_t>(copy.size() * frac);
    for (std::size_t k = 0; k < 8; ++k) copy[at + k] ^= 0x5a;
    const std::string bad = TempPath("patches_corrupt.h5");
    WriteBytes(bad, copy);
    ++trials;
    auto r = PatchFileReader::Open(bad);
    if (!r.ok()) {
      ++detected;
      continue;
    }
    std::vector<float> px;
    std::vector<PatchRecord> recs;
    const Status s = (*r)->Read(0, (*r)->num_patches(), &px, &recs);
    if (!s.ok()) {
      ++detected;
      EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
      EXPECT_NE(s.message().find("corrupt"), std::string::npos) << s.message();
    }
  }
  EXPECT_EQ(detected, trials);
}

TEST(PatchFile, ChangedValuesAreCaughtByTheBlockCrc) {
  // Rewrite one value through HDF5 itself, so its own chunk checksums stay valid (as a damaged
  // chunk index returning other data would): the block CRC must still refuse the block, and
  // only ranges that touch that block.
  const std::string path = TempPath("patches_crc.h5");
  WriteFile(path, 30);
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t ds = H5Dopen2(f, "wire", H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    const hsize_t start[1] = {16}, count[1] = {1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    hid_t mem = H5Screate_simple(1, count, nullptr);
    const int32_t value = 12345;
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &value), 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
  }
  auto r = PatchFileReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> px;
  std::vector<PatchRecord> recs;
  const Status s = (*r)->Read(15, 17, &px, &recs);  // block 2 holds patches 14-20
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("CRC-32"), std::string::npos) << s.message();
  EXPECT_TRUE((*r)->Read(0, 14, &px, &recs).ok());
  EXPECT_TRUE((*r)->Read(21, 30, &px, &recs).ok());
}

TEST(PatchFile, OtherHdf5FilesAreRefused) {
  // A valid HDF5 file with another format attribute (an events file's), and one without any.
  const std::string other = TempPath("patches_other.h5");
  for (const char* format : {"larserve-events", static_cast<const char*>(nullptr)}) {
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
    auto r = PatchFileReader::Open(other);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("not a larserve patch file"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace larserve::io

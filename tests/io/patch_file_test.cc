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
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, DeltaRays::Em()), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kTrack, DeltaRays::Em()), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kMichel, DeltaRays::Em()), PatchLabel::kEm);
  EXPECT_EQ(*ParseDeltaRays("em"), DeltaRays::Em());
  EXPECT_EQ(*ParseDeltaRays("track"), DeltaRays::Track());
  EXPECT_EQ(ParseDeltaRays("shower").status().code(), StatusCode::kInvalidArgument);

  const std::string path = TempPath("patches_delta_em.h5");
  PatchFileInfo h = SmallHeader();
  h.delta_rays = DeltaRays::Em();
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
  EXPECT_EQ((*r)->info().delta_rays, DeltaRays::Em());
  std::vector<float> got;
  std::vector<PatchRecord> recs;
  ASSERT_TRUE((*r)->Read(0, 1, &got, &recs).ok());
  EXPECT_EQ(recs.at(0).label, static_cast<uint8_t>(PatchLabel::kEm));
}

// --delta-rays size:E: a delta ray whose electron had less than E MeV at creation is track,
// one at or above E em; the other categories as in the other schemes.
TEST(PatchFile, SizeDeltaRaySchemeLabels) {
  const DeltaRays size5 = DeltaRays::Size(5.0f);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, size5, 1.5f), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, size5, 4.999f), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, size5, 5.0f), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, size5, 12.0f), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, size5), PatchLabel::kEm);  // unknown energy
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, DeltaRays::Size(2.0f), 3.0f), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kTrack, size5, 1.0f), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kTrack, size5, 100.0f), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kShower, size5, 1.0f), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kMichel, size5, 1.0f), PatchLabel::kEm);
  EXPECT_EQ(LabelOfCategory(sim::Category::kNone, size5, 1.0f), PatchLabel::kNone);
  // The other schemes ignore the energy.
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, DeltaRays::Track(), 50.0f), PatchLabel::kTrack);
  EXPECT_EQ(LabelOfCategory(sim::Category::kDelta, DeltaRays::Em(), 1.0f), PatchLabel::kEm);
}

TEST(PatchFile, ParseDeltaRaysSize) {
  auto five = ParseDeltaRays("size:5");
  ASSERT_TRUE(five.ok()) << five.status().ToString();
  EXPECT_EQ(five->scheme, DeltaRays::Scheme::kSize);
  EXPECT_EQ(five->size_mev, 5.0f);
  EXPECT_EQ(DeltaRaysName(*five), "size:5");
  EXPECT_EQ(DeltaRaysName(*ParseDeltaRays("size:2.5")), "size:2.5");
  EXPECT_EQ(DeltaRaysName(*ParseDeltaRays("size:0.1")), "size:0.1");
  EXPECT_EQ(DeltaRaysName(*ParseDeltaRays("size:5.0")), "size:5");
  EXPECT_EQ(DeltaRaysName(DeltaRays::Track()), "track");
  EXPECT_EQ(DeltaRaysName(DeltaRays::Em()), "em");
  for (const char* bad : {"size:", "size:-1", "size:0", "size:abc", "size:5MeV", "size: 5",
                          "size:nan", "size:inf", "size:1e99", "foo", "", "Size:5", "track:5"}) {
    auto r = ParseDeltaRays(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("'" + std::string(bad) + "'"), std::string::npos)
        << r.status().message();
  }
  EXPECT_NE(ParseDeltaRays("foo").status().message().find("size:E"), std::string::npos);
  EXPECT_NE(ParseDeltaRays("size:-1").status().message().find("positive"), std::string::npos);
}

// The file records "size:5"; delta records may be labelled track or em (their energy is not
// stored), never none; the other categories are still checked against the label.
TEST(PatchFile, SizeDeltaRaySchemeRoundTrip) {
  const std::string path = TempPath("patches_delta_size.h5");
  PatchFileInfo h = SmallHeader();
  h.delta_rays = DeltaRays::Size(5.0f);
  auto w = PatchFileWriter::Create(path, h, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::vector<float> px(24, 1.0f);
  PatchRecord small = Record(4), large = Record(9);  // category delta
  ASSERT_EQ(small.category, static_cast<uint8_t>(sim::Category::kDelta));
  small.label = static_cast<uint8_t>(LabelOfCategory(sim::Category::kDelta, h.delta_rays, 1.0f));
  large.label = static_cast<uint8_t>(LabelOfCategory(sim::Category::kDelta, h.delta_rays, 20.0f));
  ASSERT_EQ(small.label, static_cast<uint8_t>(PatchLabel::kTrack));
  ASSERT_EQ(large.label, static_cast<uint8_t>(PatchLabel::kEm));
  PatchRecord none = small;
  none.label = static_cast<uint8_t>(PatchLabel::kNone);
  const Status wrong = (*w)->Append(px, std::vector<PatchRecord>{none});
  EXPECT_EQ(wrong.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("size:5"), std::string::npos) << wrong.message();
  PatchRecord shower = Record(2);
  shower.label = static_cast<uint8_t>(PatchLabel::kTrack);  // shower is em in every scheme
  EXPECT_EQ((*w)->Append(px, std::vector<PatchRecord>{shower}).code(),
            StatusCode::kInvalidArgument);
  std::vector<PatchRecord> recs = {Record(1), small, large, Record(2), Record(3)};
  std::vector<float> pxs(24 * recs.size(), 1.0f);
  ASSERT_TRUE((*w)->Append(pxs, recs).ok());
  ASSERT_TRUE((*w)->Close().ok());

  // The attribute as h5py sees it.
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t a = H5Aopen_by_name(f, "/", "delta_rays", H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(a, 0);
    hid_t t = H5Aget_type(a);
    std::string value;
    if (H5Tis_variable_str(t) > 0) {
      char* s = nullptr;
      ASSERT_GE(H5Aread(a, t, &s), 0);
      value = s;
      H5free_memory(s);
    } else {
      value.resize(H5Tget_size(t));
      ASSERT_GE(H5Aread(a, t, value.data()), 0);
      value.resize(std::strlen(value.c_str()));
    }
    EXPECT_EQ(value, "size:5");
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
  }
  auto r = PatchFileReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->info().delta_rays, DeltaRays::Size(5.0f));
  std::vector<float> got;
  std::vector<PatchRecord> back;
  ASSERT_TRUE((*r)->Read(0, 5, &got, &back).ok());
  ASSERT_EQ(back.size(), 5u);
  for (std::size_t i = 0; i < recs.size(); ++i) EXPECT_TRUE(SameRecord(back[i], recs[i])) << i;

  // A header with a bad threshold is refused.
  h.delta_rays = DeltaRays::Size(-1.0f);
  auto bad = PatchFileWriter::Create(TempPath("patches_delta_bad.h5"), h, {});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
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

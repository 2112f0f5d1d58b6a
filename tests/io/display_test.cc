#include "larserve/io/display.h"

#include <png.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace larserve::io {
namespace {

using sim::Category;

constexpr int kChannels = 200;
constexpr int kTicks = 1000;
constexpr int kTrackId = 0;
constexpr int kMichelId = 1;

// Tick at which the synthetic track crosses channel ch (20 <= ch < 180).
int TrackTick(int ch) { return 100 + 4 * (ch - 20); }

void AddPulse(sim::PlaneData* p, int ch, int centre, int id, float peak) {
  const int start = centre - 10, length = 21;
  p->roi_channel.push_back(ch);
  p->roi_start.push_back(start);
  p->roi_length.push_back(length);
  p->roi_offset.push_back(static_cast<int64_t>(p->signal.size()));
  for (int i = 0; i < length; ++i) {
    const float dt = static_cast<float>(start + i - centre);
    const float v = peak * std::exp(-0.5f * dt * dt / 4.0f);
    p->signal.push_back(v);
    if (v > 1.0f) {
      p->truth_channel.push_back(static_cast<uint16_t>(ch));
      p->truth_tick.push_back(static_cast<uint16_t>(start + i));
      p->truth_id.push_back(id);
      p->truth_charge.push_back(v * 300.0f);
    }
  }
}

// A diagonal muon track over channels 20-179 ending in a Michel electron on channels 180-189.
sim::PlaneData MakePlane() {
  sim::PlaneData p;
  p.n_channels = kChannels;
  p.n_ticks = kTicks;
  p.noise_rms_adc = 0.5f;
  for (int ch = 20; ch < 180; ++ch) AddPulse(&p, ch, TrackTick(ch), kTrackId, 20.0f);
  for (int ch = 180; ch < 190; ++ch)
    AddPulse(&p, ch, TrackTick(179) - 3 * (ch - 179), kMichelId, 25.0f);
  return p;
}

std::vector<sim::TruthParticle> MakeParticles() {
  std::vector<sim::TruthParticle> particles(2);
  particles[kTrackId].id = kTrackId;
  particles[kTrackId].pdg = 13;
  particles[kTrackId].category = Category::kTrack;
  particles[kMichelId].id = kMichelId;
  particles[kMichelId].pdg = -11;
  particles[kMichelId].category = Category::kMichel;
  return particles;
}

struct Pixel {
  int r, g, b;
};

Pixel At(const Image& image, int x, int y) {
  const size_t i = (static_cast<size_t>(y) * image.width + x) * 3;
  return {image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]};
}

bool IsWhite(Pixel p) { return p.r == 255 && p.g == 255 && p.b == 255; }

TEST(RenderPlaneTest, AutomaticGeometry) {
  const sim::PlaneData plane = MakePlane();
  const auto particles = MakeParticles();
  // 200 channels -> 4 px per channel; 1000 ticks fit without downsampling.
  auto image = RenderPlane(plane, particles, {});
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 800);
  EXPECT_EQ(image->height, 1000);
  EXPECT_EQ(image->rgb.size(), 800u * 1000u * 3u);

  // A zoom of 100 channels x 300 ticks: 8 px per channel, rows stretched to keep the aspect.
  DisplayOptions zoom;
  zoom.channel_lo = 50;
  zoom.channel_hi = 150;
  zoom.tick_lo = 200;
  zoom.tick_hi = 500;
  image = RenderPlane(plane, particles, zoom);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 800);
  EXPECT_EQ(image->height, 600);

  // A full-size plane: 4 ticks per row to stay within 1500 rows, one pixel per channel.
  sim::PlaneData big;
  big.n_channels = 960;
  big.n_ticks = 6000;
  image = RenderPlane(big, {}, {});
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 960);
  EXPECT_EQ(image->height, 1500);
}

TEST(RenderPlaneTest, ExplicitGeometry) {
  DisplayOptions o;
  o.scale = 2;
  o.tick_downsample = 10;
  auto image = RenderPlane(MakePlane(), MakeParticles(), o);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 400);
  // 100 rows of 10 ticks, each 5 px tall (2 px per channel at 4 ticks per channel width).
  EXPECT_EQ(image->height, 500);
}

TEST(RenderPlaneTest, TruthColours) {
  DisplayOptions o;
  o.truth = true;
  o.title = "Event 7 apa 0 plane 2 (collection)";
  auto image = RenderPlane(MakePlane(), MakeParticles(), o);
  ASSERT_TRUE(image.ok()) << image.status().ToString();

  // On the track (channel 100) the pixel is track blue.
  const Pixel track = At(*image, 100 * 4 + 1, TrackTick(100));
  EXPECT_GT(track.b, 150);
  EXPECT_GT(track.b, track.g + 60);
  EXPECT_GT(track.g, track.r);

  // On the Michel (channel 185) the pixel is green.
  const Pixel michel = At(*image, 185 * 4 + 1, TrackTick(179) - 3 * (185 - 179));
  EXPECT_GT(michel.g, michel.r + 60);
  EXPECT_GT(michel.g, michel.b + 60);

  // Far from any charge and from the overlays: white.
  EXPECT_TRUE(IsWhite(At(*image, 100 * 4 + 1, 800)));
  EXPECT_TRUE(IsWhite(At(*image, 60 * 4, 600)));
}

TEST(RenderPlaneTest, NoiseWithoutTruthIsGrey) {
  sim::PlaneData plane = MakePlane();
  // A lone bump on channel 10 with no truth pixels.
  plane.roi_channel.push_back(10);
  plane.roi_start.push_back(700);
  plane.roi_length.push_back(3);
  plane.roi_offset.push_back(static_cast<int64_t>(plane.signal.size()));
  plane.signal.insert(plane.signal.end(), {3.0f, 6.0f, 3.0f});
  DisplayOptions o;
  o.truth = true;
  auto image = RenderPlane(plane, MakeParticles(), o);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  const Pixel p = At(*image, 10 * 4 + 1, 701);
  EXPECT_FALSE(IsWhite(p));
  EXPECT_EQ(p.r, p.g);
  EXPECT_EQ(p.g, p.b);
}

TEST(RenderPlaneTest, ChargeMode) {
  auto image = RenderPlane(MakePlane(), MakeParticles(), {});
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  const Pixel track = At(*image, 100 * 4 + 1, TrackTick(100));
  EXPECT_FALSE(IsWhite(track));
  EXPECT_LT(track.r + track.g + track.b, 3 * 200);
  EXPECT_TRUE(IsWhite(At(*image, 100 * 4 + 1, 800)));
}

TEST(RenderPlaneTest, DownsamplingKeepsThinTracks) {
  // A single-tick spike must survive 10x downsampling.
  sim::PlaneData plane;
  plane.n_channels = 200;
  plane.n_ticks = 1000;
  plane.roi_channel = {50};
  plane.roi_start = {503};
  plane.roi_length = {1};
  plane.roi_offset = {0};
  plane.signal = {20.0f};
  DisplayOptions o;
  o.tick_downsample = 10;
  o.scale = 4;
  auto image = RenderPlane(plane, {}, o);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_EQ(image->height % 100, 0);
  const int row_px = image->height / 100;
  EXPECT_FALSE(IsWhite(At(*image, 50 * 4 + 1, 50 * row_px)));
}

TEST(RenderPlaneTest, TinyPlanesDoNotBreakTheOverlays) {
  for (const auto& [channels, ticks] : {std::pair{1, 1}, std::pair{3, 5}, std::pair{30, 2}}) {
    sim::PlaneData plane;
    plane.n_channels = channels;
    plane.n_ticks = ticks;
    plane.roi_channel = {0};
    plane.roi_start = {0};
    plane.roi_length = {1};
    plane.roi_offset = {0};
    plane.signal = {-4.0f};
    for (const bool truth : {false, true}) {
      DisplayOptions o;
      o.truth = truth;
      o.title = "a rather long title that cannot possibly fit";
      auto image = RenderPlane(plane, {}, o);
      ASSERT_TRUE(image.ok()) << image.status().ToString();
      EXPECT_GE(image->width, channels);
      EXPECT_GE(image->height, 1);
      EXPECT_EQ(image->rgb.size(), static_cast<size_t>(image->width) * image->height * 3);
    }
  }
}

TEST(RenderPlaneTest, RejectsBadOptions) {
  const sim::PlaneData plane = MakePlane();
  const auto particles = MakeParticles();
  auto expect_invalid = [&](const DisplayOptions& o, const char* what) {
    auto image = RenderPlane(plane, particles, o);
    ASSERT_FALSE(image.ok()) << what;
    EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument) << what;
    EXPECT_FALSE(image.status().message().empty()) << what;
  };
  DisplayOptions o;
  o.channel_hi = kChannels + 1;
  expect_invalid(o, "channel_hi past the plane");
  o = {};
  o.channel_lo = -2;
  expect_invalid(o, "channel_lo negative");
  o = {};
  o.channel_lo = 50;
  o.channel_hi = 50;
  expect_invalid(o, "empty channel window");
  o = {};
  o.tick_lo = 600;
  o.tick_hi = 500;
  expect_invalid(o, "reversed tick window");
  o = {};
  o.tick_hi = kTicks + 5;
  expect_invalid(o, "tick_hi past the plane");
  o = {};
  o.tick_downsample = -1;
  expect_invalid(o, "negative tick_downsample");
  o = {};
  o.scale = -3;
  expect_invalid(o, "negative scale");
  o = {};
  o.adc_max = 0.0f;
  expect_invalid(o, "zero adc_max");

  o = {};
  o.channel_hi = kChannels + 1;
  auto image = RenderPlane(plane, particles, o);
  EXPECT_NE(image.status().message().find("201"), std::string::npos) << image.status().message();
}

TEST(RenderPlaneTest, RejectsCorruptPlane) {
  const auto particles = MakeParticles();
  auto expect_invalid = [&](const sim::PlaneData& p, const char* what) {
    auto image = RenderPlane(p, particles, {});
    ASSERT_FALSE(image.ok()) << what;
    EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument) << what;
  };
  sim::PlaneData p = MakePlane();
  p.roi_offset[5] = static_cast<int64_t>(p.signal.size());
  expect_invalid(p, "ROI offset past the signal");
  p = MakePlane();
  p.roi_offset[5] = -1;
  expect_invalid(p, "negative ROI offset");
  p = MakePlane();
  p.roi_length.pop_back();
  expect_invalid(p, "ROI arrays of different lengths");
  p = MakePlane();
  p.roi_start[0] = kTicks - 3;
  expect_invalid(p, "ROI past the last tick");
  p = MakePlane();
  p.roi_channel[0] = kChannels;
  expect_invalid(p, "ROI channel outside the plane");
  p = MakePlane();
  p.truth_charge.pop_back();
  expect_invalid(p, "truth arrays of different lengths");
  p = MakePlane();
  p.truth_channel[0] = kChannels;
  expect_invalid(p, "truth channel outside the plane");
  p = MakePlane();
  p.truth_tick[0] = kTicks;
  expect_invalid(p, "truth tick outside the plane");
  p = MakePlane();
  p.truth_id[0] = 2;
  expect_invalid(p, "truth id past the particles");
  p = MakePlane();
  p.n_ticks = 0;
  expect_invalid(p, "empty plane");
}

TEST(WritePngTest, WritesReadablePng) {
  DisplayOptions o;
  o.truth = true;
  o.title = "display test";
  auto image = RenderPlane(MakePlane(), MakeParticles(), o);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  const std::string path = ::testing::TempDir() + "/larserve_display_test.png";
  const Status status = WritePng(path, *image);
  ASSERT_TRUE(status.ok()) << status.ToString();

  std::ifstream in(path, std::ios::binary);
  char header[8] = {};
  in.read(header, sizeof(header));
  ASSERT_EQ(in.gcount(), 8);
  const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_EQ(std::memcmp(header, kSignature, 8), 0);

  // Read it back and compare the pixels.
  png_image read{};
  read.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&read, path.c_str())) << read.message;
  read.format = PNG_FORMAT_RGB;
  EXPECT_EQ(static_cast<int>(read.width), image->width);
  EXPECT_EQ(static_cast<int>(read.height), image->height);
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(read));
  ASSERT_TRUE(png_image_finish_read(&read, nullptr, pixels.data(), 0, nullptr)) << read.message;
  EXPECT_EQ(pixels, image->rgb);
  std::filesystem::remove(path);
}

TEST(WritePngTest, MissingDirectoryFails) {
  Image image{2, 2, std::vector<uint8_t>(12, 128)};
  const std::string path = ::testing::TempDir() + "/larserve_no_such_dir/picture.png";
  const Status status = WritePng(path, image);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
}

TEST(WritePngTest, RejectsInconsistentImage) {
  Image image{4, 4, std::vector<uint8_t>(10, 0)};
  const Status status = WritePng(::testing::TempDir() + "/larserve_bad.png", image);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
}

TEST(WritePngTest, WriteErrorIsReported) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  Image image{64, 64, std::vector<uint8_t>(64 * 64 * 3, 7)};
  const Status status = WritePng("/dev/full", image);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/dev/full"), std::string::npos) << status.message();
  EXPECT_TRUE(std::filesystem::exists("/dev/full"));
}

}  // namespace
}  // namespace larserve::io

#include "larserve/io/display.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <limits>
#include <new>
#include <string_view>
#include <system_error>

namespace larserve::io {
namespace {

using sim::Category;

// Automatic geometry. A full 960 x 6000 plane fits in kMaxAutoRows at 4 ticks per row and one
// pixel per channel, so one channel is as wide as 4 ticks are tall. Zoomed views keep that
// aspect (kTicksPerChannelWidth) so a track has the same slope on screen at every zoom level.
constexpr int kMaxAutoRows = 1500;
constexpr int kMinAutoWidth = 800;
constexpr int kTicksPerChannelWidth = 4;
constexpr int kMaxScale = 64;
// Hard limits so that a large explicit scale cannot ask for gigabytes of pixels.
constexpr int kMaxImageSide = 32768;
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

struct Rgb {
  uint8_t r, g, b;
};

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kInk{25, 25, 30};
constexpr Rgb kFrame{150, 150, 155};
constexpr Rgb kNoiseGrey{110, 110, 110};
constexpr Rgb kNegativeGrey{125, 125, 140};
constexpr Rgb kTrackBlue{30, 90, 220};
constexpr Rgb kShowerOrange{240, 140, 20};
constexpr Rgb kMichelGreen{20, 170, 60};
constexpr Rgb kDeltaCyan{0, 190, 200};

Rgb Lerp(Rgb a, Rgb b, float t) {
  t = std::clamp(t, 0.0f, 1.0f);
  auto mix = [t](uint8_t x, uint8_t y) {
    return static_cast<uint8_t>(std::lround(x + (static_cast<float>(y) - x) * t));
  };
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

Rgb Scale(Rgb c, float f) {
  auto mul = [f](uint8_t x) { return static_cast<uint8_t>(std::lround(x * f)); };
  return {mul(c.r), mul(c.g), mul(c.b)};
}

// Charge scale on a white background: faint blue for noise-level charge, saturated blue around
// a MIP (about 2/3 of the default adc_max), then through crimson to near-black for the dense
// charge of showers and Bragg peaks. Lightness falls monotonically, so it also reads in grey.
struct ColourStop {
  float at;
  Rgb colour;
};
constexpr ColourStop kChargeScale[] = {
    {0.00f, {255, 255, 255}}, {0.08f, {205, 225, 248}}, {0.30f, {95, 150, 230}},
    {0.60f, {25, 55, 185}},   {0.80f, {140, 20, 90}},   {1.00f, {45, 0, 15}},
};

Rgb ChargeScaleColour(float a) {
  a = std::clamp(a, 0.0f, 1.0f);
  for (size_t i = 1; i < std::size(kChargeScale); ++i) {
    const ColourStop& lo = kChargeScale[i - 1];
    const ColourStop& hi = kChargeScale[i];
    if (a <= hi.at) return Lerp(lo.colour, hi.colour, (a - lo.at) / (hi.at - lo.at));
  }
  return kChargeScale[std::size(kChargeScale) - 1].colour;
}

Rgb ChargeColour(float v, float adc_max) {
  if (v >= 0) return ChargeScaleColour(v / adc_max);
  // Induction-plane undershoots carry no new information, so they are kept faint.
  return Lerp(kWhite, kNegativeGrey, 0.5f * std::sqrt(std::min(1.0f, -v / adc_max)));
}

// Returns false for kNone and for values outside the enum (a corrupt file must not crash us).
bool CategoryColour(Category c, Rgb* colour) {
  switch (c) {
    case Category::kTrack:
      *colour = kTrackBlue;
      return true;
    case Category::kShower:
      *colour = kShowerOrange;
      return true;
    case Category::kMichel:
      *colour = kMichelGreen;
      return true;
    case Category::kDelta:
      *colour = kDeltaCyan;
      return true;
    case Category::kNone:
      break;
  }
  return false;
}

// The square root lifts the low-charge edges of a track so its full width keeps its hue; the
// floor keeps truth pixels visible where the signal is tiny. Above adc_max the colour darkens
// so that dense charge (Bragg peaks, shower cores) still shows structure.
Rgb TruthColour(Rgb category, float v, float adc_max) {
  const float a = std::abs(v) / adc_max;
  const Rgb c = Lerp(kWhite, category, 0.25f + 0.75f * std::sqrt(std::min(1.0f, a)));
  if (a <= 1.0f) return c;
  return Scale(c, 1.0f - 0.45f * std::min(1.0f, (a - 1.0f) / 2.0f));
}

Rgb NoiseColour(float v, float adc_max) {
  if (v == 0.0f) return kWhite;
  const float a = std::min(1.0f, std::abs(v) / adc_max);
  return Lerp(kWhite, kNoiseGrey, 0.1f + 0.9f * std::sqrt(a));
}

// ---------------------------------------------------------------------------------------------
// A 5x7 bitmap font. Each glyph is 7 rows of 5 bits, the most significant bit on the left.

constexpr int kGlyphWidth = 5;
constexpr int kGlyphHeight = 7;
constexpr int kGlyphAdvance = kGlyphWidth + 1;

struct Glyph {
  char c;
  uint8_t rows[kGlyphHeight];
};

constexpr Glyph kFont[] = {
    {' ', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000}},
    {'A', {0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
    {'B', {0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110}},
    {'C', {0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110}},
    {'D', {0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100}},
    {'E', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111}},
    {'F', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000}},
    {'G', {0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111}},
    {'H', {0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
    {'I', {0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
    {'J', {0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100}},
    {'K', {0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001}},
    {'L', {0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111}},
    {'M', {0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001}},
    {'N', {0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001}},
    {'O', {0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
    {'P', {0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000}},
    {'Q', {0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101}},
    {'R', {0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001}},
    {'S', {0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110}},
    {'T', {0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100}},
    {'U', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
    {'V', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100}},
    {'W', {0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010}},
    {'X', {0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001}},
    {'Y', {0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100}},
    {'Z', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111}},
    {'0', {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110}},
    {'1', {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
    {'2', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111}},
    {'3', {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110}},
    {'4', {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010}},
    {'5', {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110}},
    {'6', {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110}},
    {'7', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000}},
    {'8', {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110}},
    {'9', {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100}},
    {':', {0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000}},
    {'.', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100}},
    {',', {0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000}},
    {'-', {0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000}},
    {'+', {0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000}},
    {'=', {0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000}},
    {'/', {0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000}},
    {'(', {0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010}},
    {')', {0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000}},
    {'[', {0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110}},
    {']', {0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110}},
    {'<', {0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010}},
    {'>', {0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000}},
    {'_', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111}},
    {'%', {0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011}},
    {'#', {0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010}},
    {'*', {0b00000, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0b00000}},
    {'\'', {0b01100, 0b00100, 0b01000, 0b00000, 0b00000, 0b00000, 0b00000}},
    {'!', {0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100}},
    {'?', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100}},
};

const Glyph& GlyphFor(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  const Glyph* unknown = nullptr;
  for (const Glyph& g : kFont) {
    if (g.c == c) return g;
    if (g.c == '?') unknown = &g;
  }
  return *unknown;
}

int TextWidth(std::string_view text, int px) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * kGlyphAdvance - 1) * px;
}

// Drawing onto an Image; every primitive clips, so overlays on tiny images are merely cut off.
class Canvas {
 public:
  explicit Canvas(Image* image) : image_(*image) {}

  void Fill(int x, int y, int w, int h, Rgb c) {
    ForEachClipped(x, y, w, h, [c](uint8_t* p) {
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    });
  }

  void Blend(int x, int y, int w, int h, Rgb c, float alpha) {
    ForEachClipped(x, y, w, h, [c, alpha](uint8_t* p) {
      const Rgb mixed = Lerp({p[0], p[1], p[2]}, c, alpha);
      p[0] = mixed.r;
      p[1] = mixed.g;
      p[2] = mixed.b;
    });
  }

  void Outline(int x, int y, int w, int h, Rgb c) {
    Fill(x, y, w, 1, c);
    Fill(x, y + h - 1, w, 1, c);
    Fill(x, y, 1, h, c);
    Fill(x + w - 1, y, 1, h, c);
  }

  // Text with its top-left corner at (x, y); each font pixel becomes px x px image pixels.
  void Text(int x, int y, std::string_view text, int px, Rgb c) {
    for (char ch : text) {
      const Glyph& g = GlyphFor(ch);
      for (int row = 0; row < kGlyphHeight; ++row) {
        for (int col = 0; col < kGlyphWidth; ++col) {
          if (g.rows[row] & (1u << (kGlyphWidth - 1 - col))) {
            Fill(x + col * px, y + row * px, px, px, c);
          }
        }
      }
      x += kGlyphAdvance * px;
    }
  }

 private:
  template <typename F>
  void ForEachClipped(int x, int y, int w, int h, F f) {
    const int x0 = std::max(x, 0), x1 = std::min(x + w, image_.width);
    const int y0 = std::max(y, 0), y1 = std::min(y + h, image_.height);
    for (int yy = y0; yy < y1; ++yy) {
      uint8_t* row = image_.rgb.data() + (static_cast<size_t>(yy) * image_.width) * 3;
      for (int xx = x0; xx < x1; ++xx) f(row + static_cast<size_t>(xx) * 3);
    }
  }

  Image& image_;
};

// Text scale and spacing shared by all overlays, chosen from the image width so labels stay
// legible on large pictures without covering small ones.
struct Style {
  int px;      // font pixel size
  int margin;  // distance of the boxes from the image edge
  int pad;     // space between a box's edge and its content
};

Style StyleFor(int width) {
  const int px = width >= 1800 ? 3 : width >= 480 ? 2 : 1;
  return {px, 4 * px, 3 * px};
}

// A translucent white panel so text stays readable over charge; it is not opaque so the
// event underneath is still hinted at.
void Panel(Canvas& canvas, int x, int y, int w, int h) {
  canvas.Blend(x, y, w, h, kWhite, 0.82f);
  canvas.Outline(x, y, w, h, kFrame);
}

void Label(Canvas& canvas, const Style& s, int x, int y, std::string_view text) {
  const int w = TextWidth(text, s.px) + 2 * s.pad;
  const int h = kGlyphHeight * s.px + 2 * s.pad;
  Panel(canvas, x, y, w, h);
  canvas.Text(x + s.pad, y + s.pad, text, s.px, kInk);
}

struct LegendEntry {
  std::string_view name;
  Rgb colour;
};
constexpr LegendEntry kLegend[] = {
    {"TRACK", kTrackBlue}, {"SHOWER", kShowerOrange}, {"MICHEL", kMichelGreen},
    {"DELTA", kDeltaCyan}, {"NOISE", kNoiseGrey},
};

// Gaps in font pixels: between a swatch and its label, and between legend lines.
constexpr int kSwatchGap = 4;
constexpr int kLineGap = 4;

int LegendWidth(const Style& s) {
  int label = 0;
  for (const LegendEntry& e : kLegend) label = std::max(label, TextWidth(e.name, s.px));
  return 2 * s.pad + kGlyphHeight * s.px + kSwatchGap * s.px + label;
}

// Vertical list of colour swatches in the top-right corner.
void DrawLegend(Canvas& canvas, const Style& s, int image_width) {
  const int line = (kGlyphHeight + kLineGap) * s.px;
  const int w = LegendWidth(s);
  const int h = 2 * s.pad + static_cast<int>(std::size(kLegend)) * line - kLineGap * s.px;
  const int x = image_width - s.margin - w;
  const int y = s.margin;
  Panel(canvas, x, y, w, h);
  const int swatch = kGlyphHeight * s.px;
  for (size_t i = 0; i < std::size(kLegend); ++i) {
    const int yy = y + s.pad + static_cast<int>(i) * line;
    canvas.Fill(x + s.pad, yy, swatch, swatch, kLegend[i].colour);
    canvas.Outline(x + s.pad, yy, swatch, swatch, Scale(kLegend[i].colour, 0.7f));
    canvas.Text(x + s.pad + swatch + kSwatchGap * s.px, yy, kLegend[i].name, s.px, kInk);
  }
}

std::string FormatAdc(float v) {
  char buf[32];
  if (std::abs(v - std::round(v)) < 0.05f) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
  }
  return buf;
}

int ColourBarLength(const Style& s) { return 40 * s.px; }

int ColourBarWidth(const Style& s, std::string_view lo, std::string_view hi) {
  return 2 * s.pad + TextWidth(lo, s.px) + ColourBarLength(s) + TextWidth(hi, s.px) +
         2 * kSwatchGap * s.px;
}

// "0 [gradient] 30 ADC" in the top-right corner, the key to the charge colour scale.
void DrawColourBar(Canvas& canvas, const Style& s, int image_width, float adc_max) {
  const std::string lo = "0";
  const std::string hi = FormatAdc(adc_max) + " ADC";
  const int w = ColourBarWidth(s, lo, hi);
  const int h = kGlyphHeight * s.px + 2 * s.pad;
  const int x = image_width - s.margin - w;
  const int y = s.margin;
  Panel(canvas, x, y, w, h);
  int cx = x + s.pad;
  canvas.Text(cx, y + s.pad, lo, s.px, kInk);
  cx += TextWidth(lo, s.px) + kSwatchGap * s.px;
  const int length = ColourBarLength(s);
  for (int i = 0; i < length; ++i) {
    const float a = (i + 0.5f) / length;
    canvas.Fill(cx + i, y + s.pad, 1, kGlyphHeight * s.px, ChargeScaleColour(a));
  }
  canvas.Outline(cx - 1, y + s.pad - 1, length + 2, kGlyphHeight * s.px + 2, kFrame);
  cx += length + kSwatchGap * s.px;
  canvas.Text(cx, y + s.pad, hi, s.px, kInk);
}

// ---------------------------------------------------------------------------------------------
// Validation and geometry.

struct Geometry {
  int ch_lo, ch_hi, tick_lo, tick_hi;
  int downsample;  // ticks per data row
  int rows;        // data rows
  int scale;       // image pixels per channel
  int row_scale;   // image pixels per data row
};

Status ResolveRange(std::string_view what, int lo, int hi, int n, int* out_lo, int* out_hi) {
  const int rlo = lo == -1 ? 0 : lo;
  const int rhi = hi == -1 ? n : hi;
  if (rlo < 0 || rhi > n || rlo >= rhi) {
    return InvalidArgument(std::string(what) + " window [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + ") is invalid: need 0 <= " + std::string(what) +
                           "_lo < " + std::string(what) + "_hi <= " + std::to_string(n) +
                           " (-1 selects the full range)");
  }
  *out_lo = rlo;
  *out_hi = rhi;
  return Status::Ok();
}

int CeilDiv(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

StatusOr<Geometry> ResolveGeometry(const sim::PlaneData& plane, const DisplayOptions& o) {
  if (plane.n_channels <= 0 || plane.n_ticks <= 0) {
    return InvalidArgument("plane is empty: n_channels = " + std::to_string(plane.n_channels) +
                           ", n_ticks = " + std::to_string(plane.n_ticks) + " (both must be >= 1)");
  }
  Geometry g{};
  RETURN_IF_ERROR(
      ResolveRange("channel", o.channel_lo, o.channel_hi, plane.n_channels, &g.ch_lo, &g.ch_hi));
  RETURN_IF_ERROR(
      ResolveRange("tick", o.tick_lo, o.tick_hi, plane.n_ticks, &g.tick_lo, &g.tick_hi));
  if (o.tick_downsample < 0) {
    return InvalidArgument("tick_downsample = " + std::to_string(o.tick_downsample) +
                           " is invalid: need >= 0 (0 chooses automatically)");
  }
  if (o.scale < 0 || o.scale > kMaxScale) {
    return InvalidArgument("scale = " + std::to_string(o.scale) +
                           " is invalid: need 0 <= scale <= " + std::to_string(kMaxScale) +
                           " (0 chooses automatically)");
  }
  if (!(o.adc_max > 0.0f) || !std::isfinite(o.adc_max)) {
    return InvalidArgument("adc_max = " + std::to_string(o.adc_max) +
                           " is invalid: need a finite value > 0");
  }
  const int channels = g.ch_hi - g.ch_lo;
  const int ticks = g.tick_hi - g.tick_lo;
  // Only as much downsampling as needed to fit: every dropped tick loses resolution.
  g.downsample = o.tick_downsample > 0 ? o.tick_downsample : CeilDiv(ticks, kMaxAutoRows);
  g.rows = CeilDiv(ticks, g.downsample);
  g.scale = o.scale > 0 ? o.scale : std::clamp(CeilDiv(kMinAutoWidth, channels), 1, kMaxScale);
  // Stretch rows to the aspect of the full-plane view, but never past kMaxAutoRows pixels:
  // replicating rows adds no information, so it must not make a picture unwieldy.
  const int aspect_rows = static_cast<int>(
      std::lround(static_cast<double>(g.scale) * g.downsample / kTicksPerChannelWidth));
  g.row_scale = std::clamp(aspect_rows, 1, std::max(1, kMaxAutoRows / g.rows));

  const int64_t width = int64_t{channels} * g.scale;
  const int64_t height = int64_t{g.rows} * g.row_scale;
  if (width > kMaxImageSide || height > kMaxImageSide || width * height > kMaxImagePixels) {
    return InvalidArgument("the image would be " + std::to_string(width) + " x " +
                           std::to_string(height) + " pixels; the limit is " +
                           std::to_string(kMaxImageSide) + " per side and " +
                           std::to_string(kMaxImagePixels) +
                           " in total (lower scale, raise tick_downsample or narrow the window)");
  }
  return g;
}

Status ValidatePlane(const sim::PlaneData& p, size_t n_particles) {
  const size_t n_roi = p.roi_channel.size();
  if (p.roi_start.size() != n_roi || p.roi_length.size() != n_roi || p.roi_offset.size() != n_roi) {
    return InvalidArgument("corrupt plane: ROI arrays differ in length (channel " +
                           std::to_string(n_roi) + ", start " + std::to_string(p.roi_start.size()) +
                           ", length " + std::to_string(p.roi_length.size()) + ", offset " +
                           std::to_string(p.roi_offset.size()) + ")");
  }
  const int64_t n_signal = static_cast<int64_t>(p.signal.size());
  for (size_t r = 0; r < n_roi; ++r) {
    const int64_t ch = p.roi_channel[r], start = p.roi_start[r], len = p.roi_length[r];
    const int64_t offset = p.roi_offset[r];
    if (ch < 0 || ch >= p.n_channels) {
      return InvalidArgument("corrupt plane: ROI " + std::to_string(r) + " has channel " +
                             std::to_string(ch) + ", outside [0, " + std::to_string(p.n_channels) +
                             ")");
    }
    if (start < 0 || len < 0 || start + len > p.n_ticks) {
      return InvalidArgument("corrupt plane: ROI " + std::to_string(r) + " covers ticks [" +
                             std::to_string(start) + ", " + std::to_string(start + len) +
                             "), outside [0, " + std::to_string(p.n_ticks) + ")");
    }
    if (offset < 0 || offset > n_signal - len) {
      return InvalidArgument("corrupt plane: ROI " + std::to_string(r) + " has samples [" +
                             std::to_string(offset) + ", " + std::to_string(offset + len) +
                             ") outside the " + std::to_string(n_signal) + " signal samples");
    }
  }
  const size_t n_truth = p.truth_channel.size();
  if (p.truth_tick.size() != n_truth || p.truth_id.size() != n_truth ||
      p.truth_charge.size() != n_truth) {
    return InvalidArgument("corrupt plane: truth arrays differ in length (channel " +
                           std::to_string(n_truth) + ", tick " +
                           std::to_string(p.truth_tick.size()) + ", id " +
                           std::to_string(p.truth_id.size()) + ", charge " +
                           std::to_string(p.truth_charge.size()) + ")");
  }
  for (size_t i = 0; i < n_truth; ++i) {
    if (p.truth_channel[i] >= p.n_channels || p.truth_tick[i] >= p.n_ticks) {
      return InvalidArgument("corrupt plane: truth pixel " + std::to_string(i) + " at channel " +
                             std::to_string(p.truth_channel[i]) + ", tick " +
                             std::to_string(p.truth_tick[i]) + " is outside the " +
                             std::to_string(p.n_channels) + " x " + std::to_string(p.n_ticks) +
                             " plane");
    }
    const int32_t id = p.truth_id[i];
    if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n_particles)) {
      return InvalidArgument("corrupt plane: truth pixel " + std::to_string(i) + " has id " +
                             std::to_string(id) + ", need -1 or an index below the " +
                             std::to_string(n_particles) + " particles");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Rendering.

constexpr int32_t kNoTruth = std::numeric_limits<int32_t>::min();

// Per data cell (channel, row-bin): the sample of largest magnitude, sign kept, so a thin track
// survives downsampling and undershoots can be told apart from charge.
std::vector<float> BinSignal(const sim::PlaneData& p, const Geometry& g) {
  const int cols = g.ch_hi - g.ch_lo;
  std::vector<float> cells(static_cast<size_t>(cols) * g.rows, 0.0f);
  for (size_t r = 0; r < p.roi_channel.size(); ++r) {
    const int ch = p.roi_channel[r];
    if (ch < g.ch_lo || ch >= g.ch_hi) continue;
    const int start = p.roi_start[r];
    const int t0 = std::max(start, g.tick_lo);
    const int t1 = std::min(start + p.roi_length[r], g.tick_hi);
    const float* samples = p.signal.data() + p.roi_offset[r] - start;
    for (int t = t0; t < t1; ++t) {
      const float v = samples[t];
      if (!std::isfinite(v)) continue;
      float& cell =
          cells[static_cast<size_t>((t - g.tick_lo) / g.downsample) * cols + ch - g.ch_lo];
      if (std::abs(v) > std::abs(cell)) cell = v;
    }
  }
  return cells;
}

// Per data cell: the particle id of the truth pixel with the most charge, or kNoTruth.
std::vector<int32_t> BinTruth(const sim::PlaneData& p, const Geometry& g) {
  const int cols = g.ch_hi - g.ch_lo;
  const size_t n = static_cast<size_t>(cols) * g.rows;
  std::vector<int32_t> ids(n, kNoTruth);
  std::vector<float> charge(n, -std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < p.truth_channel.size(); ++i) {
    const int ch = p.truth_channel[i], t = p.truth_tick[i];
    if (ch < g.ch_lo || ch >= g.ch_hi || t < g.tick_lo || t >= g.tick_hi) continue;
    const size_t cell = static_cast<size_t>((t - g.tick_lo) / g.downsample) * cols + ch - g.ch_lo;
    // NaN charge never wins the comparison, so it cannot claim a cell.
    if (p.truth_charge[i] > charge[cell]) {
      charge[cell] = p.truth_charge[i];
      ids[cell] = p.truth_id[i];
    }
  }
  return ids;
}

Image RenderChecked(const sim::PlaneData& plane, const std::vector<sim::TruthParticle>& particles,
                    const DisplayOptions& o, const Geometry& g) {
  const int cols = g.ch_hi - g.ch_lo;
  Image image;
  image.width = cols * g.scale;
  image.height = g.rows * g.row_scale;
  image.rgb.assign(static_cast<size_t>(image.width) * image.height * 3, 255);
  Canvas canvas(&image);

  const std::vector<float> signal = BinSignal(plane, g);
  std::vector<int32_t> truth;
  if (o.truth) truth = BinTruth(plane, g);

  for (int row = 0; row < g.rows; ++row) {
    for (int col = 0; col < cols; ++col) {
      const size_t cell = static_cast<size_t>(row) * cols + col;
      const float v = signal[cell];
      Rgb colour = kWhite;
      if (!o.truth) {
        if (v == 0.0f) continue;
        colour = ChargeColour(v, o.adc_max);
      } else {
        Rgb category;
        const int32_t id = truth[cell];
        if (id >= 0 && CategoryColour(particles[id].category, &category)) {
          colour = TruthColour(category, v, o.adc_max);
        } else {
          if (v == 0.0f) continue;
          colour = NoiseColour(v, o.adc_max);
        }
      }
      canvas.Fill(col * g.scale, row * g.row_scale, g.scale, g.row_scale, colour);
    }
  }

  const Style s = StyleFor(image.width);
  int right_block = 0;
  if (o.truth) {
    DrawLegend(canvas, s, image.width);
    right_block = LegendWidth(s);
  } else {
    DrawColourBar(canvas, s, image.width, o.adc_max);
    right_block = ColourBarWidth(s, "0", FormatAdc(o.adc_max) + " ADC");
  }
  if (!o.title.empty()) {
    // Cut a long title short rather than let it run under the legend.
    const int room = image.width - 3 * s.margin - right_block - 2 * s.pad;
    const int max_chars = std::max(0, (room / s.px + 1) / kGlyphAdvance);
    std::string title = o.title;
    if (static_cast<int>(title.size()) > max_chars) {
      title = max_chars > 3 ? title.substr(0, max_chars - 3) + "..." : std::string();
    }
    if (!title.empty()) Label(canvas, s, s.margin, s.margin, title);
  }
  std::string axes = "CH " + std::to_string(g.ch_lo) + "-" + std::to_string(g.ch_hi) + "  TICK " +
                     std::to_string(g.tick_lo) + "-" + std::to_string(g.tick_hi);
  if (g.downsample > 1) axes += "  " + std::to_string(g.downsample) + " TICKS/ROW";
  Label(canvas, s, s.margin, image.height - s.margin - kGlyphHeight * s.px - 2 * s.pad, axes);
  return image;
}

// ---------------------------------------------------------------------------------------------
// PNG output.

struct PngError {
  char message[256];
  int saved_errno;
};

void OnPngError(png_structp png, png_const_charp message) {
  auto* error = static_cast<PngError*>(png_get_error_ptr(png));
  error->saved_errno = errno;
  std::snprintf(error->message, sizeof(error->message), "%s", message ? message : "unknown");
  png_longjmp(png, 1);
}

// Warnings (e.g. about unknown chunks) are not actionable for a writer of plain RGB.
void OnPngWarning(png_structp, png_const_charp) {}

// libpng reports errors by longjmp to the setjmp below. A longjmp that skips a destructor is
// undefined behaviour, so this function holds only trivially destructible locals and does
// nothing that could throw; the caller builds all messages.
bool EncodePng(std::FILE* file, const Image& image, PngError* error) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, error, OnPngError, OnPngWarning);
  if (png == nullptr) {
    std::snprintf(error->message, sizeof(error->message), "cannot create the libpng writer");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(error->message, sizeof(error->message), "cannot create the libpng info");
    return false;
  }
  // png and info are not modified after this point, so they are valid after a longjmp.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
               static_cast<png_uint_32>(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(image.width) * 3;
  for (int y = 0; y < image.height; ++y) {
    png_write_row(png, image.rgb.data() + stride * y);
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// Removes a half-written output so nobody mistakes it for a picture. Only regular files: the
// path might be a device such as /dev/full that must never be unlinked.
void RemovePartial(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) std::filesystem::remove(path, ec);
}

Status WritePngImpl(const std::string& path, const Image& image) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return InvalidArgument("cannot write " + path + ": image is " + std::to_string(image.width) +
                           " x " + std::to_string(image.height) + " with " +
                           std::to_string(image.rgb.size()) +
                           " bytes; need positive dimensions and width * height * 3 bytes");
  }
  errno = 0;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    const int err = errno;
    const std::string message = "cannot open " + path + " for writing: " + ErrnoText(err);
    if (err == ENOENT || err == ENOTDIR) return NotFound(message);
    if (err == EACCES || err == EPERM || err == EROFS) {
      return Status(StatusCode::kPermissionDenied, message);
    }
    return Internal(message);
  }
  PngError error{};
  errno = 0;  // so that only an errno set while encoding is reported
  const bool encoded = EncodePng(file, image, &error);
  errno = 0;
  const bool closed = std::fclose(file) == 0;
  const int close_errno = errno;
  if (encoded && closed) return Status::Ok();
  RemovePartial(path);
  if (!encoded) {
    std::string message = "cannot write PNG " + path + ": " + error.message;
    if (error.saved_errno != 0) message += " (" + ErrnoText(error.saved_errno) + ")";
    return Internal(message);
  }
  return Internal("cannot write PNG " + path + ": closing failed: " + ErrnoText(close_errno));
}

}  // namespace

Status WritePng(const std::string& path, const Image& image) {
  try {
    return WritePngImpl(path, image);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("out of memory writing PNG " + path);
  }
}

StatusOr<Image> RenderPlane(const sim::PlaneData& plane,
                            const std::vector<sim::TruthParticle>& particles,
                            const DisplayOptions& options) {
  try {
    ASSIGN_OR_RETURN(const Geometry geometry, ResolveGeometry(plane, options));
    RETURN_IF_ERROR(ValidatePlane(plane, particles.size()));
    return RenderChecked(plane, particles, options, geometry);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("out of memory rendering plane " + std::to_string(plane.plane) +
                             " of APA " + std::to_string(plane.apa));
  }
}

}  // namespace larserve::io

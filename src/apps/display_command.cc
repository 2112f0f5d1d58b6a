// `larserve display`: wire-vs-tick picture of one plane of one event.
#include <cstdio>
#include <string>

#include "commands.h"
#include "larserve/io/display.h"
#include "larserve/io/event_file.h"
#include "larserve/sim/geometry.h"

namespace larserve::apps {
namespace {

struct DisplayArgs {
  std::string input;
  int64_t event = 0;
  std::string plane = "W";
  int apa = 0;
  std::string output;
  bool truth = false;
  std::string channels;
  std::string ticks;
  int downsample = 0;
  int scale = 0;
  float adc_max = 30.0f;
};

// Parses "LO:HI" into two integers.
bool ParseRange(const std::string& s, int* lo, int* hi) {
  const auto colon = s.find(':');
  if (colon == std::string::npos) return false;
  try {
    std::size_t used = 0;
    *lo = std::stoi(s.substr(0, colon), &used);
    if (used != colon) return false;
    const std::string rest = s.substr(colon + 1);
    *hi = std::stoi(rest, &used);
    return used == rest.size();
  } catch (const std::exception&) {
    return false;
  }
}

int RunDisplay(const DisplayArgs& a) {
  int plane = -1;
  for (int p = 0; p < sim::kNumPlanes; ++p) {
    if (a.plane == sim::PlaneName(p)) plane = p;
  }
  if (plane < 0) return Fail("display", "unknown plane '" + a.plane + "': use U, V or W");
  io::DisplayOptions opt;
  opt.truth = a.truth;
  opt.tick_downsample = a.downsample;
  opt.scale = a.scale;
  opt.adc_max = a.adc_max;
  if (!a.channels.empty() && !ParseRange(a.channels, &opt.channel_lo, &opt.channel_hi)) {
    return Fail("display", "--channels must be LO:HI (integers), got '" + a.channels + "'");
  }
  if (!a.ticks.empty() && !ParseRange(a.ticks, &opt.tick_lo, &opt.tick_hi)) {
    return Fail("display", "--ticks must be LO:HI (integers), got '" + a.ticks + "'");
  }
  auto reader = io::EventFileReader::Open(a.input);
  if (!reader.ok()) return Fail("display", reader.status().message());
  auto pd = (*reader)->ReadPlane(a.event, a.apa, plane);
  if (!pd.ok()) return Fail("display", pd.status().message());
  // The particles are read in both modes: they are small, and the plane's truth ids are
  // checked against them.
  auto particles = (*reader)->ReadParticles(a.event);
  if (!particles.ok()) return Fail("display", particles.status().message());
  auto index = (*reader)->EventIndex(a.event);
  opt.title = "EVENT " + std::to_string(*index) + "  APA " + std::to_string(a.apa) + "  PLANE " +
              a.plane + (a.truth ? "  TRUTH" : "");
  auto image = io::RenderPlane(*pd, *particles, opt);
  if (!image.ok()) return Fail("display", image.status().message());
  if (Status s = io::WritePng(a.output, *image); !s.ok()) return Fail("display", s.message());
  std::printf("larserve display: wrote %s (%d x %d)\n", a.output.c_str(), image->width,
              image->height);
  return 0;
}

}  // namespace

void RegisterDisplay(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<DisplayArgs>();
  CLI::App* cmd =
      app.add_subcommand("display",
                         "Draw one plane of one event as a wire (x) vs tick (y, downwards) PNG. "
                         "--truth colours pixels "
                         "by the truth category of the particle that deposited most charge there.");
  cmd->add_option("events", a->input, "events file (.h5) from `larserve sim`")->required();
  cmd->add_option("--event,-e", a->event, "event number in the file (0-based)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--plane,-p", a->plane, "plane: U, V or W");
  cmd->add_option("--apa", a->apa, "APA number")->check(CLI::NonNegativeNumber);
  cmd->add_option("-o,--output", a->output, "output PNG file")->required();
  cmd->add_flag("--truth", a->truth,
                "colour by truth category (track, shower, Michel, delta ray, noise)");
  cmd->add_option("--channels", a->channels, "channel window LO:HI (default: all)");
  cmd->add_option("--ticks", a->ticks, "tick window LO:HI (default: all)");
  cmd->add_option("--downsample", a->downsample, "ticks per image row (default: automatic)")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--scale", a->scale, "image pixels per channel (default: automatic)")
      ->check(CLI::Range(0, 64));
  cmd->add_option("--adc-max", a->adc_max, "top of the colour scale in ADC-equivalent counts")
      ->check(CLI::Range(0.1, 1e6));
  cmd->callback([a, run] { *run = [a] { return RunDisplay(*a); }; });
}

}  // namespace larserve::apps

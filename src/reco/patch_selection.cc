#include "larserve/reco/patch_selection.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "larserve/core/rng.h"
#include "larserve/io/patch_file.h"

namespace larserve::reco {
namespace {

// Uniform integer in [-r, r].
int UniformOffset(Rng& rng, int r) {
  return static_cast<int>(rng.NextU64() % static_cast<uint64_t>(2 * r + 1)) - r;
}

}  // namespace

Status SelectionConfig::Validate() const {
  if (!(track_keep >= 0 && track_keep <= 1)) {
    return InvalidArgument("track keep fraction must be in [0, 1], got " +
                           std::to_string(track_keep));
  }
  if (!(empty_per_hit >= 0 && empty_per_hit <= 100)) {
    return InvalidArgument("empty patches per hit must be in [0, 100], got " +
                           std::to_string(empty_per_hit));
  }
  if (empty_max_wire_offset < 0 || empty_max_tick_offset < 0 || empty_clear_wires < 0 ||
      empty_clear_ticks < 0 || empty_attempts < 1 || empty_max_wire_offset > 10000 ||
      empty_max_tick_offset > 100000) {
    return InvalidArgument("empty patch offsets must be >= 0 and attempts >= 1");
  }
  return Status::Ok();
}

StatusOr<std::vector<SelectedPatch>> SelectPatches(std::span<const Hit> hits,
                                                   std::span<const HitTruth> truth,
                                                   const TruthIndex& truth_index,
                                                   std::span<const WireRange> views, int n_ticks,
                                                   const SelectionConfig& config, uint64_t seed) {
  RETURN_IF_ERROR(config.Validate());
  if (hits.size() != truth.size()) {
    return InvalidArgument("SelectPatches: " + std::to_string(hits.size()) + " hits but " +
                           std::to_string(truth.size()) + " truth entries");
  }
  for (std::size_t i = 1; i < hits.size(); ++i) {
    if (hits[i].wire < hits[i - 1].wire) {
      return InvalidArgument("SelectPatches: hits are not ordered by wire");
    }
  }
  std::vector<SelectedPatch> out;
  // Separate streams, one draw per hit each: the choice for hit i depends only on (seed, i).
  Rng keep_rng(DeriveSeed(seed, {0}));
  Rng empty_rng(DeriveSeed(seed, {1}));
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const double u = keep_rng.Uniform();
    const bool is_track = LabelOfTruth(truth[i], config.delta_rays) == io::PatchLabel::kTrack;
    if (!config.balance || !is_track || u < config.track_keep) {
      out.push_back({{hits[i].wire, hits[i].peak_tick}, false, static_cast<int32_t>(i), truth[i]});
    }
  }
  if (!config.balance || config.empty_per_hit <= 0) return out;

  const int cw = config.empty_clear_wires, ct = config.empty_clear_ticks;
  // Hits of wire w are hits[first_hit(w) .. first_hit(w + 1)): they are ordered by wire.
  auto hits_of = [&](int w) {
    auto lo = std::lower_bound(hits.begin(), hits.end(), w,
                               [](const Hit& h, int v) { return h.wire < v; });
    auto hi =
        std::lower_bound(lo, hits.end(), w + 1, [](const Hit& h, int v) { return h.wire < v; });
    return std::span<const Hit>(lo, hi);
  };
  auto clear = [&](int w, int t, WireRange view) {
    for (int x = std::max(view.begin, w - cw); x <= std::min(view.end - 1, w + cw); ++x) {
      for (const Hit& h : hits_of(x)) {
        if (h.start_tick <= t + ct && h.end_tick > t - ct) return false;
      }
      if (truth_index.Charge(x, t - ct, t + ct + 1) > 0) return false;
    }
    return true;
  };
  const double whole = std::floor(config.empty_per_hit);
  const double frac = config.empty_per_hit - whole;
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const Hit& h = hits[i];
    const int count = static_cast<int>(whole) + (empty_rng.Uniform() < frac ? 1 : 0);
    WireRange view{0, 0};
    for (const WireRange& v : views) {
      if (v.contains(h.wire)) view = v;
    }
    for (int n = 0; n < count; ++n) {
      for (int attempt = 0; attempt < config.empty_attempts; ++attempt) {
        const int w = h.wire + UniformOffset(empty_rng, config.empty_max_wire_offset);
        const int t = static_cast<int>(std::lround(h.peak_tick)) +
                      UniformOffset(empty_rng, config.empty_max_tick_offset);
        if (!view.contains(w) || t < 0 || t >= n_ticks || !clear(w, t, view)) continue;
        out.push_back({{w, static_cast<float>(t)}, true, static_cast<int32_t>(i), HitTruth{}});
        break;
      }
    }
  }
  return out;
}

}  // namespace larserve::reco

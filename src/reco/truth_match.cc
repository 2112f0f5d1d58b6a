#include "larserve/reco/truth_match.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace larserve::reco {

StatusOr<TruthIndex> TruthIndex::Create(const sim::PlaneData& plane,
                                        std::span<const sim::TruthParticle> particles) {
  const std::string where =
      "APA " + std::to_string(plane.apa) + " plane " + std::to_string(plane.plane) + ": ";
  const std::size_t n = plane.truth_channel.size();
  if (plane.truth_tick.size() != n || plane.truth_id.size() != n ||
      plane.truth_charge.size() != n) {
    return InvalidArgument(where + "truth arrays have different lengths");
  }
  if (plane.n_channels < 1 || plane.n_ticks < 1) {
    return InvalidArgument(where + "the plane has no channels or no ticks");
  }
  const int64_t num_particles = static_cast<int64_t>(particles.size());
  TruthIndex idx;
  idx.plane_ = &plane;
  idx.particles_ = particles;
  idx.wire_offset_.assign(static_cast<std::size_t>(plane.n_channels) + 1, 0);
  for (std::size_t k = 0; k < n; ++k) {
    const int ch = plane.truth_channel[k], t = plane.truth_tick[k];
    if (ch >= plane.n_channels || t >= plane.n_ticks) {
      return InvalidArgument(where + "truth pixel " + std::to_string(k) + " (channel " +
                             std::to_string(ch) + ", tick " + std::to_string(t) +
                             ") lies outside the plane");
    }
    if (k > 0) {
      const int pch = plane.truth_channel[k - 1], pt = plane.truth_tick[k - 1];
      if (ch < pch || (ch == pch && t <= pt)) {
        return InvalidArgument(where + "truth pixel " + std::to_string(k) +
                               " is out of (channel, tick) order or repeated");
      }
    }
    const int32_t id = plane.truth_id[k];
    if (id < -1 || id >= num_particles) {
      return InvalidArgument(where + "truth pixel " + std::to_string(k) + " names particle " +
                             std::to_string(id) + " but the event has " +
                             std::to_string(num_particles));
    }
    if (!std::isfinite(plane.truth_charge[k]) || plane.truth_charge[k] < 0) {
      return InvalidArgument(where + "truth pixel " + std::to_string(k) +
                             " has a negative or non-finite charge");
    }
    ++idx.wire_offset_[ch + 1];
  }
  for (std::size_t w = 1; w < idx.wire_offset_.size(); ++w) {
    idx.wire_offset_[w] += idx.wire_offset_[w - 1];
  }
  return idx;
}

void TruthIndex::Range(int wire, int tick_begin, int tick_end, std::size_t* first,
                       std::size_t* last) const {
  *first = *last = 0;
  if (wire < 0 || wire >= plane_->n_channels || tick_end <= tick_begin) return;
  const uint16_t* ticks = plane_->truth_tick.data();
  const std::size_t a = wire_offset_[wire], b = wire_offset_[wire + 1];
  // Ticks of one wire are sorted: binary search for the window.
  *first = static_cast<std::size_t>(
      std::lower_bound(ticks + a, ticks + b, tick_begin, [](uint16_t t, int v) { return t < v; }) -
      ticks);
  *last = static_cast<std::size_t>(std::lower_bound(ticks + *first, ticks + b, tick_end,
                                                    [](uint16_t t, int v) { return t < v; }) -
                                   ticks);
}

float TruthIndex::Charge(int wire, int tick_begin, int tick_end) const {
  std::size_t a, b;
  Range(wire, tick_begin, tick_end, &a, &b);
  double q = 0;
  for (std::size_t k = a; k < b; ++k) q += plane_->truth_charge[k];
  return static_cast<float>(q);
}

HitTruth TruthIndex::Match(int wire, int tick_begin, int tick_end) const {
  std::size_t a, b;
  Range(wire, tick_begin, tick_end, &a, &b);
  HitTruth out;
  if (a == b) return out;
  // A hit spans a few tens of ticks and rarely more than a handful of particles: a small
  // linear list beats a map. Order of first appearance breaks ties deterministically.
  struct Share {
    int32_t id;
    double charge;
  };
  Share shares[16];
  int n = 0;
  double total = 0;
  std::vector<Share> overflow;
  for (std::size_t k = a; k < b; ++k) {
    const int32_t id = plane_->truth_id[k];
    const double q = plane_->truth_charge[k];
    total += q;
    Share* s = nullptr;
    for (int i = 0; i < n && !s; ++i) {
      if (shares[i].id == id) s = &shares[i];
    }
    for (std::size_t i = 0; i < overflow.size() && !s; ++i) {
      if (overflow[i].id == id) s = &overflow[i];
    }
    if (s) {
      s->charge += q;
    } else if (n < 16) {
      shares[n++] = {id, q};
    } else {
      overflow.push_back({id, q});
    }
  }
  const Share* best = &shares[0];
  for (int i = 1; i < n; ++i) {
    if (shares[i].charge > best->charge) best = &shares[i];
  }
  for (const Share& s : overflow) {
    if (s.charge > best->charge) best = &s;
  }
  out.charge = static_cast<float>(total);
  if (total <= 0) return out;
  out.truth_id = best->id;
  out.fraction = static_cast<float>(best->charge / total);
  if (best->id >= 0) {
    out.category = particles_[best->id].category;
    out.kinetic_mev = particles_[best->id].kinetic_mev;
  }
  return out;
}

StatusOr<std::vector<HitTruth>> MatchTruth(const sim::PlaneData& plane, std::span<const Hit> hits,
                                           std::span<const sim::TruthParticle> particles) {
  ASSIGN_OR_RETURN(TruthIndex idx, TruthIndex::Create(plane, particles));
  std::vector<HitTruth> out;
  out.reserve(hits.size());
  for (const Hit& h : hits) out.push_back(idx.Match(h.wire, h.start_tick, h.end_tick));
  return out;
}

}  // namespace larserve::reco

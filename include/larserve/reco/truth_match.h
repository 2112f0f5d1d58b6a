#pragma once
// Truth of hits: which simulated particle brought the charge a hit measures.
//
// For a hit on wire w covering ticks [start, end), the truth pixels of w in that window are
// summed per particle (PlaneData.truth_id: the particle that brought the most charge to the
// pixel; the pixel's whole truth_charge is credited to it, the only split the events file
// keeps). The particle with the largest sum is the hit's truth; its share of the window's
// charge is the truth fraction. A hit with no truth charge (a noise hit) has truth_id -1 and
// category none.
//
// Ownership: a TruthIndex keeps pointers to the plane and the particle table it was built
// from; both must outlive it. Immutable after Create; safe to share between threads.
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/io/patch_file.h"
#include "larserve/reco/hit_finder.h"
#include "larserve/sim/event.h"

namespace larserve::reco {

struct HitTruth {
  int32_t truth_id = -1;  // dominant particle (index in the particle table), -1 if none
  sim::Category category = sim::Category::kNone;
  float charge = 0;    // electrons of all truth pixels in the window
  float fraction = 0;  // share of `charge` from truth_id (0 when there is no charge)
  // Kinetic energy of truth_id at creation (sim::TruthParticle::kinetic_mev), MeV; NaN when
  // there is no particle. The size delta-ray scheme needs it (io::DeltaRays).
  float kinetic_mev = std::numeric_limits<float>::quiet_NaN();
};

// The 3-class label of a hit's truth under a delta-ray scheme (io::LabelOfCategory, given the
// dominant particle's kinetic energy).
inline io::PatchLabel LabelOfTruth(const HitTruth& truth, io::DeltaRays delta) {
  return io::LabelOfCategory(truth.category, delta, truth.kinetic_mev);
}

class TruthIndex {
 public:
  // Validates the truth arrays of the plane: equal lengths, pixels inside the plane, sorted by
  // (channel, tick) without duplicates, finite non-negative charge, every truth_id naming a
  // particle (or -1).
  static StatusOr<TruthIndex> Create(const sim::PlaneData& plane,
                                     std::span<const sim::TruthParticle> particles);

  // Truth of the window [tick_begin, tick_end) of a wire; an empty result outside the plane.
  HitTruth Match(int wire, int tick_begin, int tick_end) const;
  // Total truth charge (electrons) in the window.
  float Charge(int wire, int tick_begin, int tick_end) const;

 private:
  TruthIndex() = default;
  // Truth pixels of `wire` in [tick_begin, tick_end): indices [*first, *last).
  void Range(int wire, int tick_begin, int tick_end, std::size_t* first, std::size_t* last) const;

  const sim::PlaneData* plane_ = nullptr;
  std::span<const sim::TruthParticle> particles_;
  std::vector<std::size_t> wire_offset_;  // truth pixels of wire w: [offset[w], offset[w + 1])
};

// The truth of every hit (same order as hits).
StatusOr<std::vector<HitTruth>> MatchTruth(const sim::PlaneData& plane, std::span<const Hit> hits,
                                           std::span<const sim::TruthParticle> particles);

}  // namespace larserve::reco

#pragma once
// Which patches of a plane go into a training set, with the sampling choices of LArSoft's Keras
// data preparation for EmTrackMichelId (larreco PointIdAlg scripts, prepare_data_em_track.py):
//
//  - every em (shower, Michel) hit is kept, and hits without truth (label none);
//  - track-labelled hits (track, and delta rays labelled track by `delta_rays`) are
//    subsampled: the script keeps a configured fraction of (muon) track points, because cosmic
//    muons swamp everything else;
//  - "empty" patches are added: centred on points near signal (so the patch shows some) but
//    with no signal pixel of a track or shower close to the centre. The script takes a random
//    fraction of pixels with no truth within +-2 downsampled pixels and more than 6 signal
//    pixels in the patch. We draw the points around hits (a hit lies within `empty_max_*` of
//    the centre, hence inside the patch) and require no hit and no truth charge within
//    +-empty_clear_wires wires and +-empty_clear_ticks ticks (2 wires x 2 bins of 6 ticks).
//
// The script works on pixels of the image; we work on hits, the points the production module
// classifies. Balance "none" keeps every hit and adds no empty patch (an evaluation set).
//
// Deterministic: the same hits, seed and stream ids give the same selection, whatever thread
// runs it. Thread-safe (pure function).
#include <cstdint>
#include <span>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/io/patch_file.h"
#include "larserve/reco/hit_finder.h"
#include "larserve/reco/patch_maker.h"
#include "larserve/reco/plane_image.h"
#include "larserve/reco/truth_match.h"

namespace larserve::reco {

struct SelectionConfig {
  bool balance = true;             // false: keep every hit, no empty patches
  double track_keep = 0.2;         // probability to keep a track-labelled hit (1 in 5)
  io::DeltaRays delta_rays;        // which label delta rays get (default track)
  double empty_per_hit = 0.1;      // empty patches drawn per hit (before subsampling)
  int empty_max_wire_offset = 8;   // an empty centre is within this many wires of its hit
  int empty_max_tick_offset = 48;  // and ticks (8 downsampled bins)
  int empty_clear_wires = 2;       // no hit / truth within +-2 wires
  int empty_clear_ticks = 12;      // and +-12 ticks (2 downsampled bins) of the centre
  int empty_attempts = 8;          // tries per drawn empty patch before giving up

  Status Validate() const;
};

// One selected patch of a plane.
struct SelectedPatch {
  PatchCenter centre;
  bool empty = false;  // an empty patch (not on a hit)
  int32_t hit = -1;    // index of the hit (or, for empty patches, of the hit it is near)
  HitTruth truth;      // the hit's truth; none for empty patches
};

// Selects the patches of one plane. hits and truth are parallel (FindHits, MatchTruth order);
// views are the plane's PlaneViews (an empty centre stays in the view of its hit). seed is
// the stream of this plane (e.g. DeriveSeed(run_seed, {event, apa, plane})). Hit patches come
// first, in hit order, then the empty patches.
StatusOr<std::vector<SelectedPatch>> SelectPatches(std::span<const Hit> hits,
                                                   std::span<const HitTruth> truth,
                                                   const TruthIndex& truth_index,
                                                   std::span<const WireRange> views, int n_ticks,
                                                   const SelectionConfig& config, uint64_t seed);

}  // namespace larserve::reco

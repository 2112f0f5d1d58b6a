#pragma once
// The reconstruction front-end of one event, as the EmTrackMichelId module runs it: hits on
// every plane of every APA, their truth (when the event has any), and the CNN input patch of
// every hit. Shared by `larserve reco` (local or remote inference) and the tests.
//
// Thread-safety: pure functions of their arguments; the optional pool runs planes in parallel.
// Results do not depend on the number of threads.
#include <cstdint>
#include <span>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/thread_pool.h"
#include "larserve/reco/hit_finder.h"
#include "larserve/reco/patch_maker.h"
#include "larserve/reco/truth_match.h"
#include "larserve/sim/event.h"

namespace larserve::reco {

struct PlaneHits {
  int apa = 0;
  int plane = 0;  // 0 U, 1 V, 2 W
  std::vector<Hit> hits;
  std::vector<HitTruth> truth;  // parallel to hits; empty when the event has no truth
};

struct EventHits {
  bool has_truth = false;         // truth was matched (PlaneHits::truth filled)
  std::vector<PlaneHits> planes;  // the event's planes, in file order (apa * 3 + plane)
  int64_t num_hits() const;
};

// Finds the hits of every plane and, with match_truth, matches them to the event's truth
// (an event without particles is valid: every hit is then a noise hit, category none).
StatusOr<EventHits> FindEventHits(const sim::SimEvent& event, const HitFinderConfig& config,
                                  bool match_truth, ThreadPool* pool = nullptr);

// Writes the patch of every hit, plane after plane in EventHits order, into `out`
// (num_hits() * config.patch_size() floats, an [N, W, D, 1] tensor). Each hit is cut from the
// view (PlaneViews) that holds its wire, as DataProviderAlg builds one image per TPC and plane.
Status FillEventPatches(const sim::SimEvent& event, const EventHits& hits,
                        const PatchConfig& config, std::span<float> out,
                        ThreadPool* pool = nullptr);

}  // namespace larserve::reco

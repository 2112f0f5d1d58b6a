#include "larserve/reco/event_reco.h"

#include <mutex>
#include <string>

#include "larserve/reco/plane_image.h"

namespace larserve::reco {
namespace {

// Runs fn(i) for i in [0, n), on the pool if there is one, and returns the first error.
Status ForEach(std::size_t n, ThreadPool* pool, const std::function<Status(std::size_t)>& fn) {
  std::vector<Status> status(n);
  auto body = [&](std::size_t i) { status[i] = fn(i); };
  if (pool) {
    pool->ParallelFor(0, n, body);
  } else {
    for (std::size_t i = 0; i < n; ++i) body(i);
  }
  for (Status& s : status) RETURN_IF_ERROR(s);
  return Status::Ok();
}

}  // namespace

int64_t EventHits::num_hits() const {
  int64_t n = 0;
  for (const auto& p : planes) n += static_cast<int64_t>(p.hits.size());
  return n;
}

StatusOr<EventHits> FindEventHits(const sim::SimEvent& event, const HitFinderConfig& config,
                                  bool match_truth, ThreadPool* pool) {
  RETURN_IF_ERROR(config.Validate());
  EventHits out;
  out.has_truth = match_truth;
  out.planes.resize(event.planes.size());
  RETURN_IF_ERROR(ForEach(event.planes.size(), pool, [&](std::size_t i) -> Status {
    const sim::PlaneData& plane = event.planes[i];
    PlaneHits& ph = out.planes[i];
    ph.apa = plane.apa;
    ph.plane = plane.plane;
    const std::string where = "event " + std::to_string(event.index) + " apa " +
                              std::to_string(plane.apa) + " plane " + std::to_string(plane.plane);
    auto hits = FindHits(plane, config);
    if (!hits.ok()) return hits.status().WithContext(where);
    ph.hits = std::move(hits).value();
    if (out.has_truth) {
      auto truth = MatchTruth(plane, ph.hits, event.particles);
      if (!truth.ok()) return truth.status().WithContext(where);
      ph.truth = std::move(truth).value();
    }
    return Status::Ok();
  }));
  return out;
}

Status FillEventPatches(const sim::SimEvent& event, const EventHits& hits,
                        const PatchConfig& config, std::span<float> out, ThreadPool* pool) {
  RETURN_IF_ERROR(config.Validate());
  if (hits.planes.size() != event.planes.size()) {
    return InvalidArgument("the hits were found on another event (plane count differs)");
  }
  const std::size_t patch = static_cast<std::size_t>(config.patch_size());
  if (out.size() != static_cast<std::size_t>(hits.num_hits()) * patch) {
    return InvalidArgument("patch buffer of " + std::to_string(out.size()) + " floats for " +
                           std::to_string(hits.num_hits()) + " hits of " + std::to_string(patch));
  }
  std::vector<std::size_t> first(hits.planes.size() + 1, 0);  // first patch of each plane
  for (std::size_t i = 0; i < hits.planes.size(); ++i) {
    first[i + 1] = first[i] + hits.planes[i].hits.size();
  }
  return ForEach(event.planes.size(), pool, [&](std::size_t i) -> Status {
    const PlaneHits& ph = hits.planes[i];
    if (ph.hits.empty()) return Status::Ok();
    ASSIGN_OR_RETURN(PlaneImage image, PlaneImage::Create(event.planes[i]));
    // One downsampled image per view, as DataProviderAlg makes one per TPC and plane.
    for (const WireRange& view : PlaneViews(ph.plane, image.n_wires())) {
      std::vector<PatchCenter> centres;
      std::vector<std::size_t> index;
      for (std::size_t h = 0; h < ph.hits.size(); ++h) {
        if (!view.contains(ph.hits[h].wire)) continue;
        centres.push_back({ph.hits[h].wire, ph.hits[h].peak_tick});
        index.push_back(h);
      }
      if (centres.empty()) continue;
      ASSIGN_OR_RETURN(DownsampledView dv, DownsampledView::Create(image, config, view));
      for (std::size_t k = 0; k < centres.size(); ++k) {
        dv.FillPatch(centres[k].wire, centres[k].tick, out.data() + (first[i] + index[k]) * patch);
      }
    }
    return Status::Ok();
  });
}

}  // namespace larserve::reco

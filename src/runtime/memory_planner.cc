#include "larserve/runtime/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace larserve::runtime {
namespace {
constexpr std::size_t kAlign = 64;
std::size_t AlignUp(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return requests[a].bytes > requests[b].bytes;
  });
  struct Placed {
    std::size_t offset, bytes;
    int first, last;
  };
  std::vector<Placed> placed;
  for (std::size_t r : order) {
    const BufferRequest& req = requests[r];
    const std::size_t size = AlignUp(std::max<std::size_t>(req.bytes, 1));
    plan.unshared_bytes += size;
    // Intervals occupied by buffers alive at the same time, sorted by offset.
    std::vector<std::pair<std::size_t, std::size_t>> busy;
    for (const Placed& p : placed) {
      if (p.first <= req.last_step && req.first_step <= p.last)
        busy.push_back({p.offset, p.offset + p.bytes});
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the buffer; else after the last busy interval.
    std::size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (const auto& [lo, hi] : busy) {
      if (lo > cursor && lo - cursor >= size && lo - cursor < best_gap) {
        best = cursor;
        best_gap = lo - cursor;
      }
      cursor = std::max(cursor, hi);
    }
    if (best == SIZE_MAX) best = cursor;
    plan.offsets[r] = best;
    placed.push_back({best, size, req.first_step, req.last_step});
    plan.arena_bytes = std::max(plan.arena_bytes, best + size);
  }
  return plan;
}

}  // namespace larserve::runtime

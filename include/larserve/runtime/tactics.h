#pragma once
// Tactic selection and the timing cache: TensorRT's "time several kernels per layer on the
// target device, keep the fastest, remember the timings".
//
// A backend may offer several implementations ("tactics", named by stable strings) of one node
// (Backend::Tactics). When the build has an optimisation profile (BuildOptions::batch_opt), the
// engine compiles every candidate, runs each on random inputs of the profile's OPT shapes and
// keeps the fastest; without a profile it takes the backend's first (heuristic) tactic. The
// choice is stored in the plan, so loading a plan never times anything.
//
// Timings are remembered in a TimingCache keyed by everything that decides them: the device
// (CPU model and instruction set), library versions, larserve version, backend, precision,
// intra-op threads, the op with its attributes, and the input shapes and constant shapes. A
// cache file from another machine or version simply does not match and is re-timed; a corrupt
// one is refused with its path and the check that failed.
//
// Threading: a TimingCache is not synchronised; one build uses it at a time.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/graph/graph.h"

namespace larserve::runtime {

struct TacticTiming {
  std::string tactic;
  double ms = 0;  // median time of one run at the OPT shapes
};

struct TimingEntry {
  std::string chosen;
  std::vector<TacticTiming> timings;  // every candidate, in the backend's order
};

class TimingCache {
 public:
  // An empty cache.
  TimingCache() = default;
  // Reads `path`; a missing file gives an empty cache (it is created by Save).
  static StatusOr<TimingCache> Load(const std::string& path);
  Status Save(const std::string& path) const;

  const TimingEntry* Find(const std::string& key) const;
  void Insert(const std::string& key, TimingEntry entry);
  std::size_t size() const { return entries_.size(); }

 private:
  std::map<std::string, TimingEntry> entries_;
};

// What the build did for one node with more than one tactic.
struct TacticReport {
  std::string node;  // node description
  TimingEntry entry;
  enum class Source : uint8_t { kTimed, kCache, kPlan, kDefault } source = Source::kDefault;
};
std::string_view TacticSourceName(TacticReport::Source s);

// The device part of timing-cache keys and plan headers: CPU model name and the instruction
// set oneDNN uses ("cpu" backend) or "portable" (reference backend).
std::string CpuModelName();

// The key of `node` in a timing cache: `device` (backend, device, library versions, precision,
// threads) plus the op, its attributes and the shapes of its inputs at the OPT batch
// (`input_dims`, constants included).
std::string TimingKey(const std::string& device, const graph::Node& node,
                      const std::vector<std::vector<int64_t>>& input_dims);

}  // namespace larserve::runtime

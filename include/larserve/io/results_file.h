#pragma once
// The reconstruction results file: every hit `larserve reco` found, its truth (when the events
// carry it) and the classifier's scores, in HDF5, schema "larserve-reco-results" version 1,
// documented in docs/formats.md and readable with h5py (python/performance.py reads it).
//
// One row per hit in datasets under /hits, appended event by event (extendable, chunked,
// Fletcher-32 checksummed), so the file grows with the run instead of being held in memory.
//
// Threading: the HDF5 library is used from one thread at a time in the process (the lock is
// shared with the other io files); a writer must be used by one thread at a time.
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "larserve/core/status.h"

namespace larserve::io {

inline constexpr const char* kResultsFormat = "larserve-reco-results";
inline constexpr int kResultsSchemaVersion = 1;
// Columns of /hits/scores, the order of EmTrackMichelId's outputs.
inline constexpr const char* kScoreNames = "track,em,none,michel";
// /hits/category when the events carry no truth.
inline constexpr uint8_t kNoTruthCategory = 255;

struct HitResult {
  int64_t event = 0;
  int16_t apa = 0;
  uint8_t plane = 0;                    // 0 U, 1 V, 2 W
  uint8_t category = kNoTruthCategory;  // sim::Category of the dominant particle
  int32_t wire = 0;
  int32_t truth_id = -1;
  float peak_tick = 0;
  float width = 0;     // Gaussian sigma, ticks
  float integral = 0;  // ADC x ticks
  float truth_fraction = 0;
  // Kinetic energy at creation of the dominant particle (MeV; NaN without one): what the size
  // delta-ray scheme needs (io::DeltaRays).
  float truth_kinetic_mev = std::numeric_limits<float>::quiet_NaN();
  std::array<float, 4> scores{0, 0, 0, 0};  // track, em, none, michel
};

struct ResultsFileInfo {
  int schema_version = kResultsSchemaVersion;
  std::string larserve_version;
  std::string source;  // the events file
  std::string model;   // the model or plan that made the scores
  bool has_truth = false;
  int64_t num_events = 0;
  int64_t num_hits = 0;
  bool complete = false;
};

class ResultsFileWriter {
 public:
  // Creates (truncates) `path`; info's source, model and has_truth are written as attributes.
  static StatusOr<std::unique_ptr<ResultsFileWriter>> Create(const std::string& path,
                                                             const ResultsFileInfo& info);
  ~ResultsFileWriter();
  // Appends the hits of one event (possibly none: the event is still counted).
  Status AppendEvent(std::span<const HitResult> hits);
  // Writes the counts, marks the file complete and closes it.
  Status Close();

 private:
  ResultsFileWriter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads a whole results file (validated: format, version, column lengths, score shape). Files
// written before /hits/truth_kinetic_mev existed read as NaN there.
struct ResultsData {
  ResultsFileInfo info;
  std::vector<HitResult> hits;
};
StatusOr<ResultsData> ReadResultsFile(const std::string& path);

}  // namespace larserve::io

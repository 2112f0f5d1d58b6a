#pragma once
// The events file: simulated events in HDF5, schema "larserve-events" version 1, documented in
// docs/formats.md and readable with h5py. Every dataset is chunked with a Fletcher-32 checksum,
// so corruption of stored data is detected on read; everything read is validated before use.
//
// Threading: HDF5 (Debian's serial build) is not used from more than one thread at a time; a
// reader or writer object must stay on one thread at a time, and at most one file operation
// runs in the process at once (an internal lock enforces it).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/sim/config.h"
#include "larserve/sim/event.h"
#include "larserve/sim/geometry.h"

namespace larserve::io {

inline constexpr const char* kEventsFormat = "larserve-events";
inline constexpr int kEventsSchemaVersion = 1;

struct EventFileInfo {
  int schema_version = 0;
  std::string larserve_version;
  uint64_t run_seed = 0;
  std::string config_json;  // the complete simulation configuration
  int64_t num_events = 0;
  bool complete = false;  // the writer closed the file normally
  int num_apas = 0;
  int n_ticks = 0;
  double tick_us = 0;
  int trigger_tick = 0;
  int channels[3] = {0, 0, 0};
};

struct WriterOptions {
  int compression_level = 1;  // deflate 0-9 (0 = none)
};

class EventFileWriter {
 public:
  // Creates (truncates) `path`. The configuration and geometry are written once.
  static StatusOr<std::unique_ptr<EventFileWriter>> Create(const std::string& path,
                                                           const sim::SimConfig& config,
                                                           const sim::Geometry& geometry,
                                                           uint64_t run_seed,
                                                           const WriterOptions& options);
  ~EventFileWriter();
  // Appends one event. Events must be written in increasing index order.
  Status Write(const sim::SimEvent& event);
  // Marks the file complete and closes it. Called by the destructor if not called.
  Status Close();

 private:
  EventFileWriter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class EventFileReader {
 public:
  // Opens and validates the file header (format, schema version, geometry).
  static StatusOr<std::unique_ptr<EventFileReader>> Open(const std::string& path);
  ~EventFileReader();

  const EventFileInfo& info() const;
  int64_t num_events() const { return info().num_events; }
  // Index of the i-th stored event (usually i).
  StatusOr<int64_t> EventIndex(int64_t i) const;
  StatusOr<sim::SimEvent> ReadEvent(int64_t i) const;
  StatusOr<std::vector<sim::TruthParticle>> ReadParticles(int64_t i) const;
  StatusOr<sim::PlaneData> ReadPlane(int64_t i, int apa, int plane) const;

 private:
  EventFileReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::io

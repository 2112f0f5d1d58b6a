#pragma once
// The patch file: a training or evaluation set of CNN input patches (48 x 48 wire x drift
// windows around hits, as LArSoft's PointIdAlg makes them) with their truth labels, in HDF5,
// schema "larserve-patches" version 1, documented in docs/formats.md and readable with h5py.
//
// Files of millions of patches never need to fit in memory: the writer appends in blocks
// (extendable, chunked datasets) and the reader reads any range [begin, end). Every dataset is
// chunked with a Fletcher-32 checksum, and every block of `block_rows` patches carries a CRC-32
// of all its values, so corruption is reported when a range is read, never silently returned.
//
// Threading: the HDF5 library is used from one thread at a time in the process (the lock is
// shared with the events file); a reader or writer object must be used by one thread at a time.
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/sim/particle.h"

namespace larserve::io {

inline constexpr const char* kPatchesFormat = "larserve-patches";
inline constexpr int kPatchesSchemaVersion = 1;
// The 3-class target of EmTrackMichelId, in the order of its softmax output.
inline constexpr const char* kPatchClassNames = "track,em,none";

enum class PatchLabel : uint8_t { kTrack = 0, kEm = 1, kNone = 2 };
inline constexpr int kNumPatchLabels = 3;

// Where delta rays (electrons knocked out by ionisation) go in the 3-class target (FACTS.md
// section 3 asks that the choice be stated; docs/formats.md):
//  - "track": track-like, as in the original EmTrackMichelId scheme (the default);
//  - "em": em-like, as in later schemes;
//  - "size:E" (E in MeV, > 0): by the delta-ray electron's kinetic energy at creation: below E
//    track-like, at or above E em-like. A short delta ray (at 5 MeV its CSDA range in liquid
//    argon is about 2 cm, ~4 wire pitches) cannot be told from its muon at the patch resolution.
// A plain value type: copy it freely.
struct DeltaRays {
  enum class Scheme : uint8_t { kTrack = 0, kEm = 1, kSize = 2 };
  Scheme scheme = Scheme::kTrack;
  float size_mev = 0;  // kSize: the threshold E in MeV (finite, > 0); 0 for the other schemes

  static constexpr DeltaRays Track() { return {}; }
  static constexpr DeltaRays Em() { return {Scheme::kEm, 0}; }
  static constexpr DeltaRays Size(float mev) { return {Scheme::kSize, mev}; }
  bool operator==(const DeltaRays&) const = default;
};
inline constexpr const char* kDeltaRaysTrack = "track";
inline constexpr const char* kDeltaRaysEm = "em";
inline constexpr const char* kDeltaRaysSizePrefix = "size:";
// "track", "em" or "size:E" with E in its shortest exact decimal form ("size:5", "size:2.5"):
// the value of --delta-rays and of the patch file's "delta_rays" attribute.
std::string DeltaRaysName(DeltaRays d);
// "track", "em" or "size:E" with E a finite number > 0 (MeV); anything else is an error
// naming the bad value and the accepted ones.
StatusOr<DeltaRays> ParseDeltaRays(std::string_view name);

// track -> track, shower and michel -> em, none -> none; delta -> track or em by the scheme.
// The size scheme needs the delta-ray electron's kinetic energy at creation
// (`delta_kinetic_mev`, sim::TruthParticle::kinetic_mev); an unknown energy (NaN) is not below
// the threshold, so such a delta ray is em. The other schemes ignore the energy.
PatchLabel LabelOfCategory(sim::Category category, DeltaRays delta = DeltaRays::Track(),
                           float delta_kinetic_mev = std::numeric_limits<float>::quiet_NaN());

enum class PatchKind : uint8_t {
  kHit = 0,    // centred on a reconstructed hit
  kEmpty = 1,  // centred on a point near, but off, any signal (label none)
};

// Everything stored per patch except its pixels (one row of each 1-D dataset).
struct PatchRecord {
  uint8_t label = 2;     // PatchLabel
  uint8_t michel = 0;    // 1 if the dominant particle is a Michel electron
  uint8_t category = 0;  // sim::Category of the dominant particle
  uint8_t plane = 0;     // 0 U, 1 V, 2 W
  uint8_t kind = 0;      // PatchKind
  int16_t apa = 0;
  int32_t wire = 0;  // channel of the plane the patch is centred on
  int64_t event = 0;
  float peak_tick = 0;       // centre tick (sub-tick for hits)
  float integral = 0;        // hit integral, ADC x ticks (0 for empty patches)
  float truth_fraction = 0;  // charge fraction of the dominant particle in the hit (0 if none)
};

// Root attributes. The writer takes the geometry, scaling and provenance fields from the
// caller and fills schema_version, larserve_version, num_patches and complete itself.
struct PatchFileInfo {
  int schema_version = kPatchesSchemaVersion;
  std::string larserve_version;
  std::string source;  // the events file the patches were made from
  int patch_wires = 48;
  int patch_drifts = 48;
  int drift_window = 6;
  float adc_min = -10, adc_max = 30;  // clip range of the signal (ADC)
  float out_min = -5, out_max = 15;   // scaled range
  float zero_level = 0;               // scaled value of zero signal (padding outside the plane)
  std::string selection = "{}";       // JSON: the sampling options and seed
  std::string class_names = kPatchClassNames;
  DeltaRays delta_rays;   // root attribute "delta_rays" (absent: track)
  int block_rows = 1024;  // patches per CRC block (and per write)
  int64_t num_patches = 0;
  bool complete = false;  // the writer closed the file normally

  int64_t patch_size() const { return static_cast<int64_t>(patch_wires) * patch_drifts; }
};

struct PatchWriterOptions {
  int compression_level = 1;  // deflate 0-9 (0 = none), with shuffle
};

class PatchFileWriter {
 public:
  // Creates (truncates) `path` and writes the root attributes. Validates the header.
  static StatusOr<std::unique_ptr<PatchFileWriter>> Create(const std::string& path,
                                                           const PatchFileInfo& header,
                                                           const PatchWriterOptions& options);
  ~PatchFileWriter();
  // Appends records.size() patches; pixels holds records.size() * patch_size() floats, patch
  // after patch, each [wire][drift] row-major. Data are buffered and written a block at a time.
  Status Append(std::span<const float> pixels, std::span<const PatchRecord> records);
  // Patches appended so far (written or buffered).
  int64_t num_patches() const;
  // Writes the last partial block, marks the file complete and closes it. Without Close (an
  // error path) the destructor writes what was appended but leaves `complete` at 0.
  Status Close();

 private:
  PatchFileWriter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class PatchFileReader {
 public:
  // Opens and validates the header and the shapes and types of every dataset.
  static StatusOr<std::unique_ptr<PatchFileReader>> Open(const std::string& path);
  ~PatchFileReader();

  const PatchFileInfo& info() const;
  int64_t num_patches() const { return info().num_patches; }
  // Reads patches [begin, end): *pixels gets (end - begin) * patch_size() floats, *records
  // end - begin rows. Checks the CRC of every block touched and the range of every value.
  Status Read(int64_t begin, int64_t end, std::vector<float>* pixels,
              std::vector<PatchRecord>* records) const;

 private:
  PatchFileReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::io

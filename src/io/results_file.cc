#include "larserve/io/results_file.h"

#include <cmath>
#include <filesystem>
#include <functional>
#include <string_view>

#include "hdf5_util.h"
#include "larserve/version.h"

namespace larserve::io {

using internal::Handle;
using internal::Hdf5Error;
using internal::NativeType;

namespace {

constexpr hsize_t kChunkRows = 16384;

// A column added after the first files were written: the reader leaves the field at its
// default (NaN) when the file lacks it.
constexpr const char* kOptionalColumn = "truth_kinetic_mev";

// The columns of /hits, in one place for the writer and the reader: name, element type, and
// how to get at the field of a HitResult.
template <typename F>
void ForEachColumn(F&& f) {
  f("event", &HitResult::event);
  f("apa", &HitResult::apa);
  f("plane", &HitResult::plane);
  f("category", &HitResult::category);
  f("wire", &HitResult::wire);
  f("truth_id", &HitResult::truth_id);
  f("peak_tick", &HitResult::peak_tick);
  f("width", &HitResult::width);
  f("integral", &HitResult::integral);
  f("truth_fraction", &HitResult::truth_fraction);
  f(kOptionalColumn, &HitResult::truth_kinetic_mev);
}

// Appends `rows` rows of `cols` values each (`data`, row-major) to an extendable dataset.
Status AppendRows(hid_t ds, hid_t type, const void* data, hsize_t rows, hsize_t cols,
                  const std::string& where) {
  if (rows == 0) return Status::Ok();
  Handle space(H5Dget_space(ds), H5Sclose);
  hsize_t dims[2] = {0, cols};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  const hsize_t first = dims[0];
  hsize_t grown[2] = {first + rows, cols};
  if (H5Dset_extent(ds, grown) < 0) return Internal(where + ": cannot extend: " + Hdf5Error());
  Handle fspace(H5Dget_space(ds), H5Sclose);
  const int rank = cols > 1 ? 2 : 1;
  hsize_t start[2] = {first, 0};
  hsize_t count[2] = {rows, cols};
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  Handle mspace(H5Screate_simple(rank, count, nullptr), H5Sclose);
  if (H5Dwrite(ds, type, mspace.get(), fspace.get(), H5P_DEFAULT, data) < 0) {
    return Internal(where + ": cannot write: " + Hdf5Error());
  }
  return Status::Ok();
}

}  // namespace

struct ResultsFileWriter::Impl {
  std::string path;
  Handle file, hits;
  std::vector<std::pair<std::string, Handle>> columns;  // in ForEachColumn order
  Handle scores;
  int64_t events = 0, rows = 0;
  bool closed = false;

  StatusOr<Handle> CreateDataset(const char* name, hid_t type, int cols) {
    const int rank = cols > 1 ? 2 : 1;
    const hsize_t dims[2] = {0, static_cast<hsize_t>(cols)};
    const hsize_t maxdims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(cols)};
    Handle space(H5Screate_simple(rank, dims, maxdims), H5Sclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    const hsize_t chunk[2] = {kChunkRows, static_cast<hsize_t>(cols)};
    H5Pset_chunk(dcpl.get(), rank, chunk);
    H5Pset_obj_track_times(dcpl.get(), false);
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), 1);
    H5Pset_fletcher32(dcpl.get());
    Handle ds(H5Dcreate2(hits.get(), name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
              H5Dclose);
    if (!ds.valid()) {
      return Internal("cannot create /hits/" + std::string(name) + " in '" + path +
                      "': " + Hdf5Error());
    }
    return ds;
  }
};

StatusOr<std::unique_ptr<ResultsFileWriter>> ResultsFileWriter::Create(
    const std::string& path, const ResultsFileInfo& info) {
  std::lock_guard<std::recursive_mutex> lock(internal::Hdf5Mutex());
  internal::SilenceHdf5();
  std::unique_ptr<ResultsFileWriter> w(new ResultsFileWriter());
  w->impl_ = std::make_unique<Impl>();
  Impl& m = *w->impl_;
  m.path = path;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // HDF5 1.10 format: checksummed object headers and chunk indexes (see event_file.cc).
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  m.file = Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!m.file.valid()) return NotFound("cannot create results file '" + path + "': " + Hdf5Error());
  Handle root(H5Gopen2(m.file.get(), "/", H5P_DEFAULT), H5Gclose);
  using internal::WriteScalarAttr;
  using internal::WriteStringAttr;
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "format", kResultsFormat));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "schema_version", kResultsSchemaVersion));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "larserve_version", kVersion));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "source", info.source));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "model", info.model));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "score_names", kScoreNames));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "has_truth", info.has_truth ? 1 : 0));
  RETURN_IF_ERROR(WriteScalarAttr<int64_t>(root.get(), "num_events", 0));
  RETURN_IF_ERROR(WriteScalarAttr<int64_t>(root.get(), "num_hits", 0));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "complete", 0));
  m.hits = internal::CreateGroup(m.file.get(), "hits");
  if (!m.hits.valid()) return Internal("cannot create /hits in '" + path + "': " + Hdf5Error());
  Status s = Status::Ok();
  ForEachColumn([&](const char* name, auto member) {
    using T = std::decay_t<decltype(std::declval<HitResult>().*member)>;
    if (!s.ok()) return;
    auto ds = m.CreateDataset(name, NativeType<T>(), 1);
    if (!ds.ok()) {
      s = ds.status();
      return;
    }
    m.columns.emplace_back(name, std::move(ds).value());
  });
  RETURN_IF_ERROR(s);
  ASSIGN_OR_RETURN(m.scores, m.CreateDataset("scores", NativeType<float>(), 4));
  return w;
}

ResultsFileWriter::~ResultsFileWriter() {
  if (impl_ && !impl_->closed) (void)Close();
}

Status ResultsFileWriter::AppendEvent(std::span<const HitResult> hits) {
  std::lock_guard<std::recursive_mutex> lock(internal::Hdf5Mutex());
  Impl& m = *impl_;
  if (m.closed) return FailedPrecondition("results file '" + m.path + "' is closed");
  const hsize_t n = hits.size();
  std::size_t k = 0;
  Status s = Status::Ok();
  ForEachColumn([&](const char* name, auto member) {
    using T = std::decay_t<decltype(std::declval<HitResult>().*member)>;
    const std::size_t col = k++;
    if (!s.ok() || n == 0) return;
    std::vector<T> values(n);
    for (hsize_t i = 0; i < n; ++i) values[i] = hits[i].*member;
    s = AppendRows(m.columns[col].second.get(), NativeType<T>(), values.data(), n, 1,
                   "results file '" + m.path + "' /hits/" + name);
  });
  RETURN_IF_ERROR(s);
  if (n > 0) {
    std::vector<float> scores(n * 4);
    for (hsize_t i = 0; i < n; ++i) {
      for (int c = 0; c < 4; ++c) scores[i * 4 + c] = hits[i].scores[c];
    }
    RETURN_IF_ERROR(AppendRows(m.scores.get(), NativeType<float>(), scores.data(), n, 4,
                               "results file '" + m.path + "' /hits/scores"));
  }
  ++m.events;
  m.rows += static_cast<int64_t>(n);
  return Status::Ok();
}

Status ResultsFileWriter::Close() {
  std::lock_guard<std::recursive_mutex> lock(internal::Hdf5Mutex());
  Impl& m = *impl_;
  if (m.closed) return Status::Ok();
  m.closed = true;
  Handle root(H5Gopen2(m.file.get(), "/", H5P_DEFAULT), H5Gclose);
  Status s = internal::UpdateScalarAttr<int64_t>(root.get(), "num_events", m.events);
  if (s.ok()) s = internal::UpdateScalarAttr<int64_t>(root.get(), "num_hits", m.rows);
  if (s.ok()) s = internal::UpdateScalarAttr<int32_t>(root.get(), "complete", 1);
  root.Reset();
  m.columns.clear();
  m.scores.Reset();
  m.hits.Reset();
  if (H5Fflush(m.file.get(), H5F_SCOPE_GLOBAL) < 0 && s.ok()) {
    s = DataLoss("cannot flush results file '" + m.path + "': " + Hdf5Error());
  }
  m.file.Reset();
  return s;
}

StatusOr<ResultsData> ReadResultsFile(const std::string& path) {
  const std::string where = "results file '" + path + "'";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return NotFound(where + " does not exist");
  std::lock_guard<std::recursive_mutex> lock(internal::Hdf5Mutex());
  internal::SilenceHdf5();
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) return InvalidArgument(where + " is not a readable HDF5 file: " + Hdf5Error());
  Handle root(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
  ResultsData out;
  auto format = internal::ReadStringAttr(root.get(), "format");
  if (!format.ok() || *format != kResultsFormat) {
    return InvalidArgument(where + " is not a larserve results file");
  }
  ASSIGN_OR_RETURN(out.info.schema_version,
                   internal::ReadScalarAttr<int32_t>(root.get(), "schema_version"));
  if (out.info.schema_version != kResultsSchemaVersion) {
    return FailedPrecondition(where + " has schema version " +
                              std::to_string(out.info.schema_version) + "; this larserve reads " +
                              std::to_string(kResultsSchemaVersion));
  }
  ASSIGN_OR_RETURN(out.info.larserve_version,
                   internal::ReadStringAttr(root.get(), "larserve_version"));
  ASSIGN_OR_RETURN(out.info.source, internal::ReadStringAttr(root.get(), "source"));
  ASSIGN_OR_RETURN(out.info.model, internal::ReadStringAttr(root.get(), "model"));
  ASSIGN_OR_RETURN(int32_t has_truth, internal::ReadScalarAttr<int32_t>(root.get(), "has_truth"));
  out.info.has_truth = has_truth != 0;
  ASSIGN_OR_RETURN(out.info.num_events,
                   internal::ReadScalarAttr<int64_t>(root.get(), "num_events"));
  ASSIGN_OR_RETURN(out.info.num_hits, internal::ReadScalarAttr<int64_t>(root.get(), "num_hits"));
  ASSIGN_OR_RETURN(int32_t complete, internal::ReadScalarAttr<int32_t>(root.get(), "complete"));
  out.info.complete = complete != 0;
  if (out.info.num_hits < 0 || out.info.num_hits > (int64_t{1} << 34)) {
    return InvalidArgument(where + " has an implausible hit count");
  }
  const hsize_t n = static_cast<hsize_t>(out.info.num_hits);
  out.hits.resize(n);
  Status s = Status::Ok();
  auto read = [&](const std::string& name, hid_t type, hsize_t cols, void* dst) -> Status {
    const std::string ds_where = where + " /hits/" + name;
    Handle ds(H5Dopen2(file.get(), ("hits/" + name).c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) return DataLoss(ds_where + " is missing");
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    hsize_t dims[2] = {0, 1};
    if (rank != (cols > 1 ? 2 : 1)) return InvalidArgument(ds_where + " has the wrong rank");
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    if (dims[0] != n || (cols > 1 && dims[1] != cols)) {
      return DataLoss(ds_where + " has " + std::to_string(dims[0]) + " rows, expected " +
                      std::to_string(n));
    }
    if (n > 0 && H5Dread(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
      return DataLoss(ds_where + " cannot be read (checksum or storage error): " + Hdf5Error());
    }
    return Status::Ok();
  };
  ForEachColumn([&](const char* name, auto member) {
    using T = std::decay_t<decltype(std::declval<HitResult>().*member)>;
    if (!s.ok()) return;
    if (std::string_view(name) == kOptionalColumn &&
        H5Lexists(file.get(), (std::string("hits/") + name).c_str(), H5P_DEFAULT) <= 0) {
      return;
    }
    std::vector<T> values(n);
    s = read(name, NativeType<T>(), 1, values.data());
    for (hsize_t i = 0; s.ok() && i < n; ++i) out.hits[i].*member = values[i];
  });
  RETURN_IF_ERROR(s);
  std::vector<float> scores(n * 4);
  RETURN_IF_ERROR(read("scores", NativeType<float>(), 4, scores.data()));
  for (hsize_t i = 0; i < n; ++i) {
    for (int c = 0; c < 4; ++c) out.hits[i].scores[c] = scores[i * 4 + c];
  }
  return out;
}

}  // namespace larserve::io

#pragma once
// Private helpers of the HDF5 files of the io module (events file, patch file): RAII handles,
// the process-wide HDF5 lock, error text, attributes and the CRC-32 used for end-to-end checks.
// Not installed: nothing outside src/io includes it.
//
// Threading: Debian's HDF5 is the serial build. Every HDF5 call in the process must hold
// Hdf5Mutex(); it is one lock shared by all files, so a program may read an events file and
// write a patch file from different threads.
#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "larserve/core/status.h"

namespace larserve::io::internal {

// Recursive: error paths destroy half-built readers and writers while the lock is held.
std::recursive_mutex& Hdf5Mutex();

// Turns off HDF5's printing of error stacks to stderr (we report errors as Status).
void SilenceHdf5();

// The innermost messages of the current HDF5 error stack ("" when empty); clears the stack.
std::string Hdf5Error();

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      Reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { Reset(); }
  void Reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

template <typename T>
hid_t NativeType() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, uint64_t>) return H5T_NATIVE_UINT64;
  if constexpr (std::is_same_v<T, int16_t>) return H5T_NATIVE_INT16;
  if constexpr (std::is_same_v<T, uint16_t>) return H5T_NATIVE_UINT16;
  if constexpr (std::is_same_v<T, uint32_t>) return H5T_NATIVE_UINT32;
  if constexpr (std::is_same_v<T, uint8_t>) return H5T_NATIVE_UINT8;
}

// CRC-32 with zlib's polynomial; `crc` continues a running value (0 to start).
uint32_t Crc32(const void* data, std::size_t bytes, uint32_t crc = 0);

// A group without time stamps (same input, same bytes).
Handle CreateGroup(hid_t loc, const std::string& name);

Status WriteStringAttr(hid_t loc, const char* name, const std::string& value);

template <typename T>
Status WriteArrayAttr(hid_t loc, const char* name, const T* values, std::size_t n) {
  const hsize_t dims[1] = {n};
  Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle attr(H5Acreate2(loc, name, NativeType<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), NativeType<T>(), values) < 0) {
    return Internal(std::string("cannot write attribute ") + name + ": " + Hdf5Error());
  }
  return Status::Ok();
}

template <typename T>
Status WriteScalarAttr(hid_t loc, const char* name, T value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(loc, name, NativeType<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), NativeType<T>(), &value) < 0) {
    return Internal(std::string("cannot write attribute ") + name + ": " + Hdf5Error());
  }
  return Status::Ok();
}

template <typename T>
Status UpdateScalarAttr(hid_t loc, const char* name, T value) {
  Handle attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), NativeType<T>(), &value) < 0) {
    return Internal(std::string("cannot update attribute ") + name + ": " + Hdf5Error());
  }
  return Status::Ok();
}

StatusOr<std::string> ReadStringAttr(hid_t loc, const char* name);

template <typename T>
StatusOr<std::vector<T>> ReadArrayAttr(hid_t loc, const char* name, std::size_t max_n) {
  if (H5Aexists(loc, name) <= 0)
    return NotFound(std::string("attribute '") + name + "' is missing");
  Handle attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  const bool want_float = std::is_floating_point_v<T>;
  if ((want_float && cls != H5T_FLOAT && cls != H5T_INTEGER) ||
      (!want_float && cls != H5T_INTEGER)) {
    return InvalidArgument(std::string("attribute '") + name + "' has the wrong type");
  }
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 1 || static_cast<std::size_t>(n) > max_n) {
    return InvalidArgument(std::string("attribute '") + name + "' has " + std::to_string(n) +
                           " values, expected 1 to " + std::to_string(max_n));
  }
  std::vector<T> out(static_cast<std::size_t>(n));
  if (H5Aread(attr.get(), NativeType<T>(), out.data()) < 0) {
    return DataLoss(std::string("cannot read attribute '") + name + "': " + Hdf5Error());
  }
  return out;
}

template <typename T>
StatusOr<T> ReadScalarAttr(hid_t loc, const char* name) {
  ASSIGN_OR_RETURN(std::vector<T> v, ReadArrayAttr<T>(loc, name, 1));
  return v[0];
}

}  // namespace larserve::io::internal

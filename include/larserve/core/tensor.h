#pragma once
// DType, Shape and Tensor: a dense, row-major, 64-byte aligned n-d array on the host.
//
// Ownership: a Tensor owns its buffer (shared between copies of the Tensor handle, like a
// std::shared_ptr, so passing a Tensor by value is cheap); View() makes a non-owning alias of
// caller-owned memory. Not synchronised: concurrent writers must coordinate.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"

namespace larserve {

enum class DType : uint8_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kInt8 = 3,
  kUInt8 = 4,
  kInt32 = 5,
  kInt64 = 6,
  kBool = 7,
  kFloat64 = 8,
  kInt16 = 9,
  kUInt16 = 10,
};

std::size_t DTypeSize(DType dtype);
// Names as in the KServe v2 protocol: "FP32", "FP16", "BF16", "INT8", "UINT8", "INT32", ...
std::string_view DTypeName(DType dtype);
StatusOr<DType> DTypeFromName(std::string_view name);

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  std::size_t rank() const { return dims_.size(); }
  int64_t operator[](std::size_t i) const { return dims_[i]; }
  int64_t& operator[](std::size_t i) { return dims_[i]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  // Product of the dimensions (1 for a scalar); -1 if any dimension is negative (unknown).
  int64_t NumElements() const;
  bool operator==(const Shape& other) const { return dims_ == other.dims_; }
  bool operator!=(const Shape& other) const { return !(*this == other); }
  std::string ToString() const;  // "[2,48,48,1]"

 private:
  std::vector<int64_t> dims_;
};

class Tensor {
 public:
  Tensor() = default;
  // Allocates a zero-filled tensor. Fails on a negative dimension or a size overflow.
  static StatusOr<Tensor> Create(DType dtype, Shape shape);
  // Aliases memory the caller keeps alive for the lifetime of every copy of the view.
  static Tensor View(DType dtype, Shape shape, void* data);

  // The same bytes seen with another dtype and shape (sharing the storage); fails if the byte
  // sizes differ.
  StatusOr<Tensor> Reinterpret(DType dtype, Shape shape) const;

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t num_elements() const { return shape_.NumElements(); }
  std::size_t num_bytes() const {
    return static_cast<std::size_t>(num_elements()) * DTypeSize(dtype_);
  }
  void* data() { return data_; }
  const void* data() const { return data_; }
  // True for a default-constructed Tensor (no tensor at all: e.g. an omitted optional input);
  // false for a created tensor, even one with zero elements.
  bool empty() const { return !defined_; }

  template <typename T>
  std::span<T> Span() {
    return {static_cast<T*>(data_), static_cast<std::size_t>(num_elements())};
  }
  template <typename T>
  std::span<const T> Span() const {
    return {static_cast<const T*>(data_), static_cast<std::size_t>(num_elements())};
  }

 private:
  DType dtype_ = DType::kFloat32;
  Shape shape_;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  bool defined_ = false;
};

}  // namespace larserve

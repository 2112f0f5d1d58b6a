#include "larserve/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace larserve {

std::size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat16:
      return 2;
    case DType::kBFloat16:
      return 2;
    case DType::kInt8:
      return 1;
    case DType::kUInt8:
      return 1;
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kBool:
      return 1;
    case DType::kFloat64:
      return 8;
    case DType::kInt16:
      return 2;
    case DType::kUInt16:
      return 2;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "FP32";
    case DType::kFloat16:
      return "FP16";
    case DType::kBFloat16:
      return "BF16";
    case DType::kInt8:
      return "INT8";
    case DType::kUInt8:
      return "UINT8";
    case DType::kInt32:
      return "INT32";
    case DType::kInt64:
      return "INT64";
    case DType::kBool:
      return "BOOL";
    case DType::kFloat64:
      return "FP64";
    case DType::kInt16:
      return "INT16";
    case DType::kUInt16:
      return "UINT16";
  }
  return "UNKNOWN";
}

StatusOr<DType> DTypeFromName(std::string_view name) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kUInt8,
                  DType::kInt32, DType::kInt64, DType::kBool, DType::kFloat64, DType::kInt16,
                  DType::kUInt16}) {
    if (DTypeName(d) == name) return d;
  }
  return InvalidArgument("unknown data type '" + std::string(name) + "'");
}

int64_t Shape::NumElements() const {
  int64_t n = 1;
  for (int64_t d : dims_) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

std::string Shape::ToString() const {
  std::string s = "[";
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

StatusOr<Tensor> Tensor::Create(DType dtype, Shape shape) {
  int64_t n = 1;
  for (int64_t d : shape.dims()) {
    if (d < 0)
      return InvalidArgument("tensor shape " + shape.ToString() + " has a negative dimension");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d / 8) {
      return ResourceExhausted("tensor shape " + shape.ToString() + " is too large");
    }
    n *= d;
  }
  const std::size_t bytes = static_cast<std::size_t>(n) * DTypeSize(dtype);
  const std::size_t rounded = ((bytes + 63) / 64) * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  if (rounded && !p)
    return ResourceExhausted("cannot allocate " + std::to_string(bytes) + " bytes");
  if (p) std::memset(p, 0, rounded);
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  t.defined_ = true;
  return t;
}

StatusOr<Tensor> Tensor::Reinterpret(DType dtype, Shape shape) const {
  const int64_t n = shape.NumElements();
  if (n < 0 || static_cast<std::size_t>(n) * DTypeSize(dtype) != num_bytes()) {
    return InvalidArgument("cannot view " + shape_.ToString() + " " +
                           std::string(DTypeName(dtype_)) + " as " + shape.ToString() + " " +
                           std::string(DTypeName(dtype)));
  }
  Tensor t = *this;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::View(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.defined_ = true;
  return t;
}

}  // namespace larserve

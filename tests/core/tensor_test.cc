#include "larserve/core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace larserve {
namespace {

TEST(TensorTest, CreateZeroedAndAligned) {
  auto t = Tensor::Create(DType::kFloat32, Shape{2, 48, 48, 1});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->num_elements(), 2 * 48 * 48);
  EXPECT_EQ(t->num_bytes(), 2u * 48 * 48 * 4);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data()) % 64, 0u);
  for (float v : t->Span<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(t->shape().ToString(), "[2,48,48,1]");
}

TEST(TensorTest, RejectsBadShapes) {
  EXPECT_EQ(Tensor::Create(DType::kFloat32, Shape{2, -1}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Tensor::Create(DType::kFloat32, Shape{1LL << 40, 1LL << 40}).status().code(),
            StatusCode::kResourceExhausted);
}

TEST(TensorTest, DTypeNamesRoundTrip) {
  for (DType d :
       {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kInt64}) {
    auto back = DTypeFromName(DTypeName(d));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, d);
  }
  EXPECT_FALSE(DTypeFromName("FLOAT").ok());
}

TEST(TensorTest, CopiesShareStorage) {
  auto t = Tensor::Create(DType::kInt32, Shape{4});
  ASSERT_TRUE(t.ok());
  Tensor copy = *t;
  copy.Span<int32_t>()[2] = 7;
  EXPECT_EQ(t->Span<int32_t>()[2], 7);
}

}  // namespace
}  // namespace larserve

#include "larserve/io/npy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace larserve::io {
namespace {

std::string Temp(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (std::to_string(getpid()) + "_" + name))
      .string();
}

TEST(NpyTest, RoundTripKeepsShapeTypeAndValues) {
  for (const Shape& shape : {Shape{}, Shape{5}, Shape{2, 3, 4}}) {
    Tensor t = *Tensor::Create(DType::kFloat32, shape);
    auto s = t.Span<float>();
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = 0.5f * static_cast<float>(i) - 3.0f;
    const std::string path = Temp("rt.npy");
    ASSERT_TRUE(WriteNpy(path, t).ok());
    auto back = ReadNpy(path);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->shape(), shape);
    EXPECT_EQ(back->dtype(), DType::kFloat32);
    for (std::size_t i = 0; i < s.size(); ++i) EXPECT_EQ(back->Span<float>()[i], s[i]);
    std::filesystem::remove(path);
  }
}

TEST(NpyTest, BadFilesAreRefused) {
  const std::string path = Temp("bad.npy");
  { std::ofstream(path) << "not numpy at all"; }
  EXPECT_EQ(ReadNpy(path).status().code(), StatusCode::kInvalidArgument);
  Tensor t = *Tensor::Create(DType::kInt64, Shape{4});
  ASSERT_TRUE(WriteNpy(path, t).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);  // truncated data
  EXPECT_EQ(ReadNpy(path).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadNpy(Temp("missing.npy")).status().code(), StatusCode::kNotFound);
  std::filesystem::remove(path);
}

TEST(NpyTest, StreamWriterAppendsBlocksAndFixesTheRowCount) {
  const std::string path = Temp("stream.npy");
  {
    auto w = NpyStreamWriter::Create(path, DType::kFloat32, {2, 3});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    // Before Close the file is a valid empty array.
    auto empty = ReadNpy(path);
    ASSERT_TRUE(empty.ok()) << empty.status().ToString();
    EXPECT_EQ(empty->shape(), (Shape{0, 2, 3}));
    std::vector<float> block(4 * 6);
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<float>(i);
    ASSERT_TRUE((*w)->Append(block.data(), 4).ok());
    ASSERT_TRUE((*w)->Append(block.data(), 0).ok());
    ASSERT_TRUE((*w)->Append(block.data() + 6, 3).ok());
    EXPECT_EQ((*w)->rows(), 7);
    ASSERT_TRUE((*w)->Close().ok());
  }
  auto back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->shape(), (Shape{7, 2, 3}));
  auto v = back->Span<float>();
  for (int i = 0; i < 24; ++i) EXPECT_EQ(v[i], static_cast<float>(i));
  for (int i = 0; i < 18; ++i) EXPECT_EQ(v[24 + i], static_cast<float>(6 + i));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace larserve::io

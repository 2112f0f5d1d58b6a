// The system shared memory manager on real POSIX shared memory objects: registering (with the
// checks on names, keys, sizes and offsets), the regions' status, blocks of a region checked
// against it, and a region unregistered while a request still holds it staying mapped.
#include "larserve/serve/shared_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace larserve::serve {
namespace {

// A shared memory object of `bytes` bytes filled with 0, 1, 2, ... (mod 256), removed at the end.
class ShmObject {
 public:
  explicit ShmObject(std::size_t bytes)
      : key_("/larserve_shm_test_" + std::to_string(getpid()) + "_" + std::to_string(next_++)) {
    const int fd = shm_open(key_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_NE(p, MAP_FAILED);
    for (std::size_t i = 0; i < bytes; ++i) static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(i);
    munmap(p, bytes);
    close(fd);
  }
  ~ShmObject() { shm_unlink(key_.c_str()); }
  const std::string& key() const { return key_; }

 private:
  static inline int next_ = 0;
  std::string key_;
};

TEST(SharedMemory, RegisterGetStatusUnregister) {
  const long page = sysconf(_SC_PAGESIZE);
  ShmObject obj(3 * static_cast<std::size_t>(page));
  SharedMemoryManager m;
  // An offset that is not a multiple of the page size is fine.
  ASSERT_TRUE(m.Register("r", obj.key(), 100, 1000).ok());
  auto all = m.Regions("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "r");
  EXPECT_EQ((*all)[0].key, obj.key());
  EXPECT_EQ((*all)[0].offset, 100u);
  EXPECT_EQ((*all)[0].byte_size, 1000u);
  EXPECT_EQ(m.Regions("nosuch").status().code(), StatusCode::kNotFound);

  auto block = m.Get({"r", 8, 10}, "input 'x'");
  ASSERT_TRUE(block.ok()) << block.status().ToString();
  EXPECT_EQ(block->byte_size, 8u);
  EXPECT_EQ(block->data[0], static_cast<uint8_t>(110));  // object byte 100 + 10
  block->data[1] = 7;
  EXPECT_EQ(m.Get({"r", 1, 11}, "x")->data[0], 7);

  // The whole region is usable, one byte more is not.
  EXPECT_TRUE(m.Get({"r", 1000, 0}, "x").ok());
  for (const SharedMemoryRef& bad : {SharedMemoryRef{"r", 1001, 0}, SharedMemoryRef{"r", 1, 1000},
                                     SharedMemoryRef{"r", ~uint64_t{0}, 1}}) {
    auto b = m.Get(bad, "model 'm': input 'x'");
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(b.status().message().find("model 'm': input 'x'"), std::string::npos);
    EXPECT_NE(b.status().message().find("exceeds"), std::string::npos) << b.status().message();
  }
  auto unknown = m.Get({"other", 4, 0}, "x");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("'other'"), std::string::npos);

  // A block outlives the region's registration.
  auto held = m.Get({"r", 4, 0}, "x");
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(m.Unregister("r").ok());
  EXPECT_TRUE(m.Regions("")->empty());
  EXPECT_EQ(held->data[0], static_cast<uint8_t>(100));
  EXPECT_TRUE(m.Unregister("r").ok());  // unknown: no error
}

TEST(SharedMemory, RegisterRefusesBadRegions) {
  ShmObject obj(4096);
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("a", obj.key(), 0, 4096).ok());
  EXPECT_EQ(m.Register("a", obj.key(), 0, 16).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(m.Register("", obj.key(), 0, 16).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("b", "", 0, 16).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("b", obj.key(), 0, 0).code(), StatusCode::kInvalidArgument);
  const Status missing = m.Register("b", "/larserve_no_such_object", 0, 16);
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("/larserve_no_such_object"), std::string::npos);
  const Status big = m.Register("b", obj.key(), 4000, 97);
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.message().find("exceeds the object's 4096 bytes"), std::string::npos)
      << big.message();
  EXPECT_EQ(m.Register("b", obj.key(), ~uint64_t{0}, 2).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.Register("b", obj.key(), 4000, 96).ok());
  EXPECT_EQ(m.Regions("")->size(), 2u);
  EXPECT_TRUE(m.Unregister("").ok());
  EXPECT_TRUE(m.Regions("")->empty());
}

}  // namespace
}  // namespace larserve::serve

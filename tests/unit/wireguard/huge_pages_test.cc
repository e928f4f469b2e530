// HugeSlab, HugeArray and the OnHugeSlab operators: alignment, reuse,
// zeroed large arrays, and objects that stay distinct across many chunks.
#include "wireguard/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "wireguard/keypair.h"

namespace moongate::wg {
namespace {

bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

TEST(HugeSlab, ObjectsAreAlignedDistinctAndWritable) {
  HugeSlab slab(1152, 64);
  std::vector<void*> objs;
  std::set<std::uintptr_t> seen;
  // More than one 2 MB chunk's worth (1820 objects of 1152 bytes each).
  for (int i = 0; i < 5000; ++i) {
    void* p = slab.allocate();
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(aligned(p, 64));
    std::memset(p, i & 0xff, 1152);
    ASSERT_TRUE(seen.insert(reinterpret_cast<std::uintptr_t>(p)).second);
    objs.push_back(p);
  }
  // No object overlaps another: each still holds its own byte pattern.
  for (int i = 0; i < 5000; ++i) {
    const auto* b = static_cast<const unsigned char*>(objs[static_cast<std::size_t>(i)]);
    ASSERT_EQ(b[0], i & 0xff);
    ASSERT_EQ(b[1151], i & 0xff);
  }
  for (void* p : objs) slab.release(p);
}

// Consecutive objects an odd number of cache lines apart: first lines of
// objects of 2, 6 or 18 lines would otherwise share half the cache sets.
TEST(HugeSlab, ObjectsSitAnOddNumberOfLinesApart) {
  for (const std::size_t size : {64, 128, 320, 384, 576, 1152}) {
    HugeSlab slab(size, 64);
    auto* a = static_cast<char*>(slab.allocate());
    auto* b = static_cast<char*>(slab.allocate());
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const auto gap = static_cast<std::size_t>(b > a ? b - a : a - b);
    EXPECT_GE(gap, size) << size;
    EXPECT_LE(gap, size + 64) << size;
    EXPECT_EQ(gap % 64, 0u) << size;
    EXPECT_EQ(gap / 64 % 2, 1u) << size;
    slab.release(a);
    slab.release(b);
  }
}

TEST(HugeSlab, ReleasedObjectsAreReused) {
  HugeSlab slab(320, 64);
  void* a = slab.allocate();
  void* b = slab.allocate();
  slab.release(a);
  EXPECT_EQ(slab.allocate(), a);  // last released, first reused
  slab.release(b);
}

TEST(HugeArray, SmallAndLargeAreValueInitialised) {
  HugeArray<std::uint64_t> small(16);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(small[i], 0u);
  const std::size_t n = 3 * kHugePageSize / sizeof(std::uint64_t) + 5;  // not a whole number of pages
  HugeArray<std::uint64_t> large(n);
  EXPECT_TRUE(aligned(large.get(), kHugePageSize));
  for (std::size_t i = 0; i < n; i += 4096) EXPECT_EQ(large[i], 0u);
  large[n - 1] = 7;
  HugeArray<std::uint64_t> moved(std::move(large));
  EXPECT_EQ(moved[n - 1], 7u);
  EXPECT_EQ(large.get(), nullptr);
}

TEST(OnHugeSlab, KeypairsComeAlignedAndFreeCleanly) {
  std::vector<std::unique_ptr<Keypair>> kps;
  for (int i = 0; i < 3000; ++i) {
    std::unique_ptr<Keypair> kp(new (std::nothrow) Keypair);
    ASSERT_NE(kp, nullptr);
    ASSERT_TRUE(aligned(kp.get(), 64));
    kp->birth = static_cast<Nanos>(i);
    kp->replay_ring.blocks[i % ReplayRing::kBlocks] = ~std::uint64_t{0};
    kps.push_back(std::move(kp));
  }
  for (std::size_t i = 0; i < kps.size(); ++i) EXPECT_EQ(kps[i]->birth, static_cast<Nanos>(i));
  kps.clear();
  auto again = std::make_unique<Keypair>();
  EXPECT_EQ(again->birth, 0);
  for (std::uint64_t b : again->replay_ring.blocks) EXPECT_EQ(b, 0u);  // a reused slot is a fresh keypair
}

}  // namespace
}  // namespace moongate::wg

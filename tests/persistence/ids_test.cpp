// Tests for persistence/ids.hpp: row ids and the UUID check every layer may use.

#include "persistence/ids.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

namespace troupe {
namespace {

// Canonical 8-4-4-4-12 hex, in either case, is a UUID.
TEST(Ids, AcceptsCanonicalUuidsInEitherCase) {
  EXPECT_TRUE(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_TRUE(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
  EXPECT_TRUE(is_uuid("00000000-0000-0000-0000-000000000000"));
}

// Anything else is refused before it could reach SQL: wrong length, misplaced or missing dashes, non-hex digits,
// braces, a NUL byte.
TEST(Ids, RefusesEverythingElse) {
  EXPECT_FALSE(is_uuid(""));
  EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-42661417400"));   // 35 characters
  EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-4266141740000")); // 37
  EXPECT_FALSE(is_uuid("123e4567e89b-12d3-a456-4266141740000"));  // dash moved
  EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456_426614174000"));
  EXPECT_FALSE(is_uuid("123g4567-e89b-12d3-a456-426614174000"));
  EXPECT_FALSE(is_uuid("{23e4567-e89b-12d3-a456-42661417400}"));
  EXPECT_FALSE(is_uuid(std::string("123e4567-e89b-12d3-a456-42661417400\0", 36)));
  EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-426614174000 "));
}

// random_uuid makes distinct version-4, variant-1 UUIDs that is_uuid accepts.
TEST(Ids, RandomUuidsAreVersion4AndDistinct) {
  std::mt19937_64 random{42};
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = random_uuid(random);
    ASSERT_TRUE(is_uuid(id)) << id;
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

} // namespace
} // namespace troupe

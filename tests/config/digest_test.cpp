// Tests for config/digest.hpp: Troupe's one SHA-1/SHA-256 (ETags, idempotency and cache keys, token hashes, tus
// checksums and file digests all depend on it giving the standard answers).

#include "config/digest.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace troupe {
namespace {

// FIPS 180-2 test vectors, one-shot, as hex.
TEST(Digest, GivesTheStandardVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(to_hex(digest_of(digest_algorithm::sha1, "abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(to_hex(digest_of(digest_algorithm::sha1, "")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(digest_of(digest_algorithm::sha256, "abc").size(), 32u);
  EXPECT_EQ(digest_of(digest_algorithm::sha1, "abc").size(), 20u);
}

// Bytes are bytes: NUL and high bytes are hashed, not cut off.
TEST(Digest, HashesEveryByte) {
  EXPECT_NE(sha256_hex(std::string("a\0b", 3)), sha256_hex("a"));
  EXPECT_EQ(sha256_hex(std::string("\xff\x00", 2)).size(), 64u);
}

// An incremental digest fed in pieces equals the one-shot digest (one million 'a': FIPS 180-2's long vector).
TEST(Digest, IncrementalEqualsOneShot) {
  const std::string million(1000000, 'a');
  digest sha256{digest_algorithm::sha256};
  for (size_t at = 0; at < million.size(); at += 4093)
    sha256.update(std::string_view(million).substr(at, 4093));
  EXPECT_EQ(to_hex(sha256.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  digest sha1{digest_algorithm::sha1};
  sha1.update("a");
  sha1.update("bc");
  auto moved = std::move(sha1);
  EXPECT_EQ(to_hex(moved.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

// One-shot digests reuse a context per thread: threads hashing at once still get their own answers.
TEST(Digest, OneShotIsSafeAcrossThreads) {
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &wrong] {
      for (int i = 0; i < 2000; ++i) {
        if (sha256_hex("abc") != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
          ++wrong[t];
        if (to_hex(digest_of(digest_algorithm::sha1, "abc")) != "a9993e364706816aba3e25717850c26c9cd0d89d")
          ++wrong[t];
      }
    });
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

} // namespace
} // namespace troupe

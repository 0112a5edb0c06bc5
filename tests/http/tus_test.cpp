// Tests of http/tus.cpp, the tus 1.0.0 header grammar on its own: sizes, Upload-Metadata, Upload-Checksum, the
// offset content type and Upload-Expires dates. (The protocol end to end: tests/integration/uploads_test.cpp.)

#include "http/tus.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

using namespace troupe::http;

namespace {

// Sizes are plain non-negative decimals of at most 18 digits: no sign, space, hex or overflow.
TEST(Tus, SizesAreNonNegativeDecimals) {
  EXPECT_EQ(tus::parse_size("0"), 0);
  EXPECT_EQ(tus::parse_size("8388608"), 8388608);
  EXPECT_EQ(tus::parse_size("999999999999999999"), 999999999999999999);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.0", "9999999999999999999"})
    EXPECT_FALSE(tus::parse_size(bad).has_value()) << '"' << bad << '"';
}

// Metadata: "key base64" pairs, a key alone means an empty value; spaces around pairs are allowed.
TEST(Tus, MetadataPairsAreDecoded) {
  std::string why;
  auto values = tus::parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==, is_confidential ,repository_id MTIz", why);
  ASSERT_TRUE(values) << why;
  EXPECT_EQ(*values, (std::map<std::string, std::string>{
                       {"filename", "world_domination_plan.pdf"}, {"is_confidential", ""}, {"repository_id", "123"}}));
  auto empty = tus::parse_metadata("  ", why);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

// Refused, with a reason: keys that are empty, hold a space or a non-ASCII byte, repeated keys, values that are not
// base64, and headers over the size limit.
TEST(Tus, BadMetadataIsRefusedWithAReason) {
  const std::string too_long = "k " + std::string(tus::max_metadata_bytes, 'A');
  for (const std::string& bad : {std::string{"a YQ==,"}, std::string{",a YQ=="}, std::string{"k\xC3\xA9 YQ=="},
                                 std::string{"a YQ==,a Yg=="}, std::string{"a !!notbase64"}, too_long}) {
    std::string why;
    EXPECT_FALSE(tus::parse_metadata(bad, why).has_value()) << bad.substr(0, 40);
    EXPECT_FALSE(why.empty()) << bad.substr(0, 40);
  }
  std::string why;
  tus::parse_metadata("a YQ==,a Yg==", why);
  EXPECT_NE(why.find("twice"), std::string::npos) << why;
}

// Checksums: sha1 or sha256 with a base64 digest of exactly that algorithm's length.
TEST(Tus, ChecksumsNeedASupportedAlgorithmAndAWholeDigest) {
  std::string why;
  auto sha1 = tus::parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", why); // SHA-1 of "hello world"
  ASSERT_TRUE(sha1) << why;
  EXPECT_EQ(sha1->algorithm, "sha1");
  EXPECT_EQ(sha1->digest.size(), 20u);
  auto sha256 = tus::parse_checksum("sha256 uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=", why);
  ASSERT_TRUE(sha256) << why;
  EXPECT_EQ(sha256->digest.size(), 32u);
  EXPECT_FALSE(tus::parse_checksum("md5 XrY7u+Ae7tCTyyK7j1rNww==", why));
  EXPECT_NE(why.find("not supported"), std::string::npos) << why;
  EXPECT_FALSE(tus::parse_checksum("sha256 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", why)); // a 20-byte digest for sha256
  EXPECT_FALSE(tus::parse_checksum("sha1", why));
  EXPECT_FALSE(tus::parse_checksum("sha1 ***", why));
}

// The PATCH content type, in any case and with parameters; nothing else.
TEST(Tus, OffsetContentType) {
  EXPECT_TRUE(tus::is_offset_content_type("application/offset+octet-stream"));
  EXPECT_TRUE(tus::is_offset_content_type("Application/Offset+Octet-Stream; charset=binary"));
  EXPECT_FALSE(tus::is_offset_content_type("application/octet-stream"));
  EXPECT_FALSE(tus::is_offset_content_type("application/offset+octet-streamx"));
  EXPECT_FALSE(tus::is_offset_content_type(""));
}

// Upload-Expires is an IMF-fixdate in GMT.
TEST(Tus, HttpDates) {
  EXPECT_EQ(tus::http_date(1403712000000), "Wed, 25 Jun 2014 16:00:00 GMT");
  EXPECT_EQ(tus::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(tus::http_date(1709164799999), "Wed, 28 Feb 2024 23:59:59 GMT");
}

} // namespace

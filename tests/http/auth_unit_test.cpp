// Pure helpers of http/auth.cpp: email normalisation, the admin list, loopback detection.

#include "http/auth.hpp"

#include <gtest/gtest.h>

using namespace troupe::http;

// Emails are trimmed and lower-cased; things that are not addresses are refused.
TEST(AuthHelpers, NormalisesEmails) {
  EXPECT_EQ(normalise_email("  Alice@Example.COM \n"), "alice@example.com");
  EXPECT_EQ(normalise_email("a.b+tag@sub.example.org"), "a.b+tag@sub.example.org");
  for (auto bad : {"", "   ", "alice", "@example.com", "alice@", "alice@example", "a@b@c.com", "al ice@example.com",
                   "alice@example.com.", "alice@.com"})
    EXPECT_EQ(normalise_email(bad), "") << bad;
  EXPECT_EQ(normalise_email(std::string(250, 'a') + "@x.io"), "");
}

// TROUPE_ADMIN_EMAILS is a comma-separated list; blanks and junk are skipped.
TEST(AuthHelpers, ParsesAdminList) {
  auto admins = parse_admin_emails(" Boss@Example.com,, other@example.org ,not-an-email");
  ASSERT_EQ(admins.size(), 2u);
  EXPECT_EQ(admins[0], "boss@example.com");
  EXPECT_EQ(admins[1], "other@example.org");
  EXPECT_TRUE(parse_admin_emails("").empty());
}

// Loopback client addresses (debug routes and health details are open to them), IPv4-mapped ones included.
TEST(AuthHelpers, DetectsLoopbackAddresses) {
  for (auto yes : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"})
    EXPECT_TRUE(is_loopback_address(yes)) << yes;
  for (auto no : {"0.0.0.0", "10.0.0.1", "192.168.1.5", "::", "example.com", "", "::ffff:10.0.0.1", "::2",
                  "127.0.0.1.example.com"})
    EXPECT_FALSE(is_loopback_address(no)) << no;
}

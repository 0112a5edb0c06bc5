// Pure helpers of http/auth.cpp: email normalisation, the admin list, loopback detection, guests' ids and routes
// (and the HMAC behind them, config/hashing.hpp).

#include "http/auth.hpp"
#include "config/hashing.hpp"

#include <gtest/gtest.h>

#include <cctype>

using namespace troupe;
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

// RFC 4231, test case 2.
TEST(AuthHelpers, HmacSha256MatchesTheRfcVector) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// A guest's id: a version 8 UUID of the RFC 9562 variant, the same for one address and secret, another for another
// address or another secret.
TEST(AuthHelpers, GuestIdsAreKeyedUuidsOfTheAddress) {
  const std::string secret = "a-secret-of-at-least-32-bytes-0123456789";
  auto id = guest_user_id(secret, "203.0.113.5");
  ASSERT_EQ(id.size(), 36u);
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      EXPECT_EQ(id[i], '-') << id;
    else
      EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(id[i])) && !std::isupper(static_cast<unsigned char>(id[i])))
        << id;
  }
  EXPECT_EQ(id[14], '8') << id;
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
  EXPECT_EQ(guest_user_id(secret, "203.0.113.5"), id);
  EXPECT_NE(guest_user_id(secret, "203.0.113.6"), id);
  EXPECT_NE(guest_user_id(secret + "x", "203.0.113.5"), id);
}

TEST(AuthHelpers, GuestsMayOnlyGenerate) {
  for (const char* route : {"/v1/chat/completions", "/api/generate", "/v1/messages", "/v1/models", "/api/me"})
    EXPECT_TRUE(guest_may_call(route)) << route;
  for (const char* route : {"/api/keys", "/api/keys/{id}", "/api/repositories", "/api/uploads/", "/api/usage",
                            "/v1/embeddings", "/api/auth/logout", "/api/wishlist", "/debug/actors"})
    EXPECT_FALSE(guest_may_call(route)) << route;
}

// Guests are keyed by IPv4 address, by the IPv4 address of an IPv4-mapped IPv6 one, and by the /64 of any other IPv6
// address: one subscriber's addresses are one guest.
TEST(AuthHelpers, GuestsAreKeyedByAddressOrIpv6Prefix) {
  EXPECT_EQ(guest_address_key("203.0.113.5"), "203.0.113.5");
  EXPECT_EQ(guest_address_key("::ffff:203.0.113.5"), "203.0.113.5");
  EXPECT_EQ(guest_address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(guest_address_key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
  EXPECT_EQ(guest_address_key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
  EXPECT_EQ(guest_address_key("not an address"), "not an address");
  const std::string secret = "a-secret-of-at-least-32-bytes-0123456789";
  EXPECT_EQ(guest_user_id(secret, "2001:db8:1:2::7"), guest_user_id(secret, "2001:db8:1:2:1234::9"));
  EXPECT_NE(guest_user_id(secret, "2001:db8:1:2::7"), guest_user_id(secret, "2001:db8:1:3::7"));
  EXPECT_EQ(guest_user_id(secret, "::ffff:203.0.113.5"), guest_user_id(secret, "203.0.113.5"));
}

TEST(AuthHelpers, GuestEmailsAreRecognised) {
  EXPECT_TRUE(is_guest_email("guest-0b7e8c1e-8d1f-8c52-9a43-6f3c2a1b0d9e@guest.invalid"));
  EXPECT_TRUE(is_guest_email("anything@guest.invalid"));
  EXPECT_FALSE(is_guest_email("ada@example.com"));
  EXPECT_FALSE(is_guest_email("guest.invalid"));
}

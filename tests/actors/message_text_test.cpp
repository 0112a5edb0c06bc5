// Tests of actors/message_text.cpp: how a queued message reads in debug mode and in the mailbox-backlog warning,
// secrets redacted by message, by type (nested too) and by value.

#include "actors/message_text.hpp"
#include "actors/messages.hpp"
#include "introspect/probe.hpp"
#include "persistence/accounts.hpp"
#include "persistence/messages.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <memory>
#include <string>

using namespace troupe;

namespace {

/// An actor system with every Troupe message type registered (render_message needs none running).
struct message_system {
  system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  message_system() {
    register_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

// A struct inside a struct renders whole, in order, with every separator: the renderer keeps one frame per open
// struct, and the inner struct's frame must not leave the outer one's field count behind. (It once kept a reference
// to the outer frame across the inner push_back, which reallocated the frames: a heap-use-after-free under ASan, and
// without ASan the outer count never advanced, losing the ", " after the nested record.)
TEST(MessageText, RendersNestedStructsWithEveryField) {
  message_system m;
  session_snapshot snapshot;
  snapshot.user = user_record{"u1", "a@b.c", "HASHVALUE", "user", "free", 7};
  snapshot.revoked_jtis = {"j1", "j2"};
  snapshot.revoked_jti_expiries = {11, 12};
  snapshot.revoked_key_ids = {"k1"};
  auto text = render_message(*m.sys, caf::make_message(snapshot));
  EXPECT_EQ(text, R"((session_snapshot(user_record("u1", "a@b.c", <redacted>, "user", "free", 7), ["j1", "j2"], )"
                  R"([11, 12], ["k1"], [])))");
}

// Secrets never appear in rendered messages: by message (positions), by type (fields, nested too), and by value.
TEST(MessageText, RedactsSecrets) {
  message_system m;
  auto& sys = *m.sys;
  auto text = render_message(sys, caf::make_message(hash_password_atom::value, std::string{"hunter2"}));
  EXPECT_EQ(text, "(pwhash, <redacted>)");
  text = render_message(
    sys, caf::make_message(verify_password_atom::value, std::string{"$argon2id$v=19$m=1$abc"}, std::string{"hunter2"}));
  EXPECT_EQ(text, "(pwverify, <redacted>, <redacted>)");
  text = render_message(
    sys, caf::make_message(user_create_atom::value, std::string{"a@b.c"}, std::string{"HASH"}, std::string{"user"}));
  EXPECT_EQ(text, R"((usercreate, "a@b.c", <redacted>, "user"))");
  text = render_message(
    sys, caf::make_message(refresh_rotate_atom::value, std::string{"old"}, std::string{"new"}, int64_t{5}));
  EXPECT_EQ(text.find("old"), std::string::npos);
  EXPECT_EQ(text.find("new"), std::string::npos);
  text = render_message(sys, caf::make_message(key_lookup_atom::value, std::string{"deadbeef"}));
  EXPECT_EQ(text, "(keycache, <redacted>)");

  // By type, nested: a session snapshot's user record keeps its email and hides its password hash.
  session_snapshot snapshot;
  snapshot.user = user_record{"u1", "a@b.c", "HASHVALUE", "user", "free", 7};
  snapshot.revoked_jtis = {"j1"};
  text = render_message(sys, caf::make_message(snapshot));
  EXPECT_EQ(text.find("HASHVALUE"), std::string::npos) << text;
  EXPECT_NE(text.find("a@b.c"), std::string::npos) << text;
  EXPECT_NE(text.find("user_record("), std::string::npos) << text;
  EXPECT_NE(text.find("<redacted>"), std::string::npos) << text;

  // By value, anywhere: an API key, a JWT and an argon2 hash inside ordinary data.
  write_request write;
  event_row row;
  row.properties =
    R"({"leak":"trp_abcdefghijklmnop","t":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln","h":"$argon2id$v=19$x"})";
  write.events.push_back(row);
  text = render_message(sys, caf::make_message(write_atom::value, write));
  EXPECT_EQ(text.find("trp_abcdefghijklmnop"), std::string::npos) << text;
  EXPECT_EQ(text.find("eyJhbGciOiJIUzI1NiJ9"), std::string::npos) << text;
  EXPECT_EQ(text.find("$argon2id"), std::string::npos) << text;
  EXPECT_NE(text.find("write_request("), std::string::npos) << text;

  // Ordinary messages render in full.
  text = render_message(sys, caf::make_message(echo_atom::value, std::string{"hello"}));
  EXPECT_EQ(text, R"((echo, "hello"))");
}

// Long values are cut so a large cached value does not flood a page.
TEST(MessageText, CutsLongValues) {
  message_system m;
  auto text = render_message(*m.sys, caf::make_message(echo_atom::value, std::string(5000, 'x')));
  EXPECT_LT(text.size(), 400u);
  EXPECT_NE(text.find("more characters"), std::string::npos);
}

} // namespace

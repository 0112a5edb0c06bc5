// Tests of actors/message_text.cpp: how a queued message reads in debug mode and in the mailbox-backlog warning,
// secrets redacted by message, by type (nested too) and by value.

#include "actors/message_text.hpp"
#include "actors/messages.hpp"
#include "introspect/probe.hpp"
#include "persistence/accounts.hpp"

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
                  R"([11, 12], ["k1"])))");
}

} // namespace

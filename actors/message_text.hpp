#pragma once
// Queued messages as text for debug mode, with secrets redacted.
//
// A message renders as CAF writes tuples, "(write, write_request(...))", except that values holding secrets are
// replaced by "<redacted>". What is secret is decided in ONE table, secret_rules() in message_text.cpp:
//   by message: positions in an atom-led message, e.g. the password in (pwhash, password);
//   by type:    fields of a struct, wherever it appears (nested too), e.g. user_record's password_hash.
// A new message or type that carries a password, token, key or hash of one gets a row there (and a case in
// tests/actors/message_text_test.cpp). As a second line of defence, any string that looks like a credential
// (an argon2 hash, a Troupe API key "trp_...", a JWT) is redacted wherever it appears.
//
// Long values are cut (max_chars per message), so a cached 1 MB value does not flood a debug page.

#include <caf/actor_system.hpp>
#include <caf/message.hpp>

#include <string>
#include <string_view>

namespace troupe {

/// The text of `msg`, secrets redacted, at most about `max_chars` characters.
std::string render_message(const caf::actor_system& sys, const caf::message& msg, size_t max_chars = 1000);

/// Replaces credential-looking substrings (argon2 hashes, "trp_" API keys, JWTs) of `text` by "<redacted>".
std::string scrub_credentials(std::string_view text);

} // namespace troupe

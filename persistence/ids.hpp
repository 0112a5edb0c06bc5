#pragma once
// Row ids and timestamps as persistence stores them (shared by the writer, batch commits, the SQL of every query,
// upload routes and bench tools). No libpqxx here: any layer may include this header.

#include <random>
#include <string>
#include <string_view>

namespace troupe {

/// A random (version 4) UUID as text: row ids only need to be unique, not secret.
std::string random_uuid(std::mt19937_64& random);

/// Whether `text` is a UUID in its canonical 8-4-4-4-12 hex form (either case). Queries answer a malformed id
/// before any SQL runs; callers outside persistence/ use it to refuse one early.
bool is_uuid(std::string_view text);

/// The current time in RFC 3339 (UTC, microseconds), as stored for rows without their own timestamp.
std::string utc_now_rfc3339();

} // namespace troupe

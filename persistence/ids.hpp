#pragma once
// Row ids and timestamps as persistence stores them (shared by the writer, batch commits and bench tools).

#include <random>
#include <string>

namespace troupe {

/// A random (version 4) UUID as text: row ids only need to be unique, not secret.
std::string random_uuid(std::mt19937_64& random);

/// The current time in RFC 3339 (UTC, microseconds), as stored for rows without their own timestamp.
std::string utc_now_rfc3339();

} // namespace troupe

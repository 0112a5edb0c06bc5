#pragma once
// What the fuzz targets share: a failed invariant aborts with a message, so libFuzzer keeps the input.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace troupe::fuzz {

/// Aborts (libFuzzer saves the input as a crash) when `holds` is false.
inline void check(bool holds, const char* what) {
  if (holds)
    return;
  std::fprintf(stderr, "fuzz invariant failed: %s\n", what);
  std::abort();
}

/// The input as text.
inline std::string_view text_of(const unsigned char* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

} // namespace troupe::fuzz

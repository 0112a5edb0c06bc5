// Fuzz target: the tus 1.0.0 request headers (http/tus.hpp). The input is tried as each header: Upload-Offset and
// Upload-Length (parse_size), Upload-Metadata (parse_metadata), Upload-Checksum (parse_checksum) and Content-Type.
//
// Invariants: a size is a non-negative integer that fits 18 digits; metadata keys are unique, non-empty, printable
// ASCII without spaces or commas, and the header was at most 4 KiB; a checksum names a supported algorithm with a
// digest of its length.

#include "tests/fuzz/fuzz_check.hpp"

#include "http/tus.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe;
  using fuzz::check;
  const auto text = fuzz::text_of(data, size);

  if (auto n = http::tus::parse_size(text))
    check(*n >= 0 && *n <= 999999999999999999 && !text.empty(), "a size is a non-negative 18-digit integer");

  std::string why;
  if (auto metadata = http::tus::parse_metadata(text, why)) {
    check(text.size() <= http::tus::max_metadata_bytes, "metadata is bounded");
    for (const auto& [key, value] : *metadata) {
      check(!key.empty(), "a metadata key is not empty");
      for (unsigned char c : key)
        check(c > 0x20 && c < 0x7F && c != ',', "a metadata key is printable ASCII without spaces or commas");
    }
  } else {
    check(!why.empty(), "refused metadata says why");
  }

  why.clear();
  if (auto checksum = http::tus::parse_checksum(text, why))
    check((checksum->algorithm == "sha1" && checksum->digest.size() == 20)
            || (checksum->algorithm == "sha256" && checksum->digest.size() == 32),
          "a checksum has a supported algorithm and a digest of its length");
  else
    check(!why.empty(), "a refused checksum says why");

  http::tus::is_offset_content_type(text);
  return 0;
}

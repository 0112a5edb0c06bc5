#pragma once
// Response compression (issue 17 item 6): gzip for responses above a size, of types that compress, when the client
// accepts it. Pure: no sockets, no threads; http/server.cpp (responder::send) applies it to whole responses, never
// to streams (SSE would be held back by the compressor's buffer), and tests/fuzz/http1_framing_fuzz.cpp drives the
// Accept-Encoding parser.

#include <optional>
#include <string>
#include <string_view>

namespace troupe::http {

/// Whether an Accept-Encoding field value accepts gzip (RFC 9110 section 12.5.3): "gzip" (or "x-gzip") with a
/// q-value above 0 (gzip named twice, once with q=0, is refused), or "*" above 0 when gzip is not named. A malformed
/// element is ignored.
bool accepts_gzip(std::string_view accept_encoding);

/// Whether a response of this Content-Type is worth compressing: text (not text/event-stream), JSON, JavaScript,
/// XML and SVG. Images, archives, octet streams and other already compressed types are not.
bool compressible_type(std::string_view content_type);

/// `body` gzip-compressed (RFC 1952) at `level` (1 fastest .. 9 smallest), or nullopt if zlib fails.
std::optional<std::string> gzip_compress(std::string_view body, int level);

} // namespace troupe::http

// Fuzz target: HTTP/1.1 request framing (http/http1.hpp). The input is a byte stream as a client would send it on one
// connection, fed in pieces whose sizes come from the input itself. Checked: the parser never reads past what it is
// given, a failure is final and carries a 4xx/5xx status, a complete request's body is within the limit its head was
// given, and Content-Length bodies have exactly their declared size. Each complete request's header values also go
// through the header parsers of http/compression.hpp: Accept-Encoding accepts gzip only when the value names gzip
// or "*".

#include "http/compression.hpp"
#include "http/header_text.hpp"
#include "http/http1.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

void check(bool condition) {
  if (!condition)
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe::http;
  if (size < 2)
    return 0;
  // The first byte picks the body limit, the second the size of the pieces the rest arrives in.
  uint64_t limit = uint64_t{1} << (data[0] % 24);
  size_t piece = 1 + data[1] % 64;
  data += 2;
  size -= 2;

  http1_limits limits;
  limits.max_header_bytes = 4096;
  limits.max_request_line = 1024;
  limits.max_headers = 32;
  uint64_t given_limit = 0;
  http1_parser parser{limits, [&](const request_head& head) {
                        given_limit = limit;
                        body_decision d;
                        d.max_body_bytes = limit;
                        if (head.method == "DELETE" && head.has_body())
                          d.refuse = framing_error{400, "no body on DELETE here"};
                        return d;
                      }};
  size_t at = 0;
  while (at < size) {
    size_t n = std::min(piece, size - at);
    auto r = parser.feed(reinterpret_cast<const char*>(data + at), n);
    check(r.consumed <= n);
    if (r.what == http1_parser::status::failed) {
      check(parser.error().status >= 400 && parser.error().status <= 505);
      check(!parser.error().message.empty());
      check(parser.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27).what == http1_parser::status::failed);
      return 0;
    }
    if (r.what == http1_parser::status::complete) {
      auto head = parser.take_head();
      auto body = parser.take_body();
      check(body.size() <= given_limit);
      if (head.content_length)
        check(body.size() == *head.content_length);
      check(!head.method.empty());
      for (const auto& [name, value] : head.headers) {
        if (accepts_gzip(value)) {
          bool named = value.find('*') != std::string::npos;
          for (size_t i = 0; !named && i + 4 <= value.size(); ++i)
            named = iequals(std::string_view{value}.substr(i, 4), "gzip");
          check(named);
        }
        (void)compressible_type(value);
      }
      parser.next();
    }
    at += r.consumed;
    if (r.what == http1_parser::status::need_more)
      check(r.consumed == n);
  }
  return 0;
}

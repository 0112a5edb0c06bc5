#pragma once
// HTTP/1.x request heads as the mock reads them: the request line and the few headers it acts on. The parser works
// on the connection's input buffer in place; the views it returns stay valid until that buffer changes.
//
// Bodies are Content-Length only: a Transfer-Encoding header makes the request unanswerable (the server answers
// 411 and closes, since it cannot tell where the body ends).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::mock {

struct request_head {
  std::string_view method;
  std::string_view path; // the target without its query string
  int minor_version = 1; // HTTP/1.<minor_version>
  bool keep_alive = true;
  uint64_t content_length = 0;
  bool has_transfer_encoding = false;
  bool expect_continue = false;
  std::string_view authorization;
  std::string_view x_mock;
  size_t head_bytes = 0; // the request line and headers, including the blank line
};

enum class head_parse { incomplete, complete, bad, too_large };

/// Parses the head at the start of `buffer`. `complete` fills `out`; `bad` fills `error` with a sentence;
/// `too_large` means no complete head within `max_head_bytes`.
head_parse parse_request_head(std::string_view buffer, size_t max_head_bytes, request_head& out, std::string& error);

} // namespace troupe::mock

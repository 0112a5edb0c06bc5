#pragma once
// HTTP/1.1 request framing: nodejs/http-parser 2.9 (Debian's libhttp-parser, the incremental parser Node.js relied
// on for a decade) behind Troupe's own limits. Pure: bytes in, a request head and body out; no sockets, no threads.
// http/connection.cpp feeds it from the reactor; tests/fuzz feeds it directly.
//
// One parser reads the requests of one connection in order. feed() stops after each complete request (so a
// pipelined next request waits until this one has been answered), and after the head of each request to ask its
// owner how large a body the route accepts (decide_body). Refused, with the status to answer, after which the
// connection must be closed and never reused (no desync, no smuggling):
//   - a request line over limits.max_request_line (414), a head over limits.max_header_bytes or with more than
//     limits.max_headers fields (431)
//   - Content-Length together with Transfer-Encoding, two Content-Length fields (even equal ones), a Content-Length
//     that is not all digits (400); a Transfer-Encoding other than "chunked" (501)
//   - a body over the limit decide_body gives: from Content-Length before any body byte is read, or as a chunked
//     body grows past it (413)
//   - a head the owner refuses (its status: 503 while draining, 417 for an unknown Expect, ...)
//   - an HTTP version other than 1.0 and 1.1 (505), anything else http-parser finds malformed (400)

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::http {

struct http1_limits {
  size_t max_request_line = 8 * 1024; // method, target and version
  size_t max_header_bytes = 32 * 1024; // the whole head, request line included
  size_t max_headers = 100;            // header fields
};

/// A request as far as its head: what the route and the body limit are decided from.
struct request_head {
  std::string method; // "GET", "POST", ...
  std::string target; // as sent: "/api/x?y=1" (or absolute-form "http://host/api/x")
  int version_minor = 1; // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers; // names as sent, values without surrounding blanks
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;       // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
  bool expect_continue = false; // "Expect: 100-continue"

  /// First header with this name (case-insensitive).
  const std::string* header(std::string_view name) const;
  /// Whether a body follows the head (a positive Content-Length, or chunked).
  bool has_body() const { return chunked || content_length.value_or(0) > 0; }
};

/// Why a request cannot be served: the status to answer and a sentence for the client.
struct framing_error {
  int status = 400;
  std::string message;
};

/// The owner's answer once a head has arrived: the largest body it accepts, or the refusal to answer.
struct body_decision {
  uint64_t max_body_bytes = 0;
  std::optional<framing_error> refuse;
};

class http1_parser {
public:
  using decide_fn = std::function<body_decision(const request_head&)>;

  explicit http1_parser(http1_limits limits, decide_fn decide_body);
  http1_parser(const http1_parser&) = delete;
  http1_parser& operator=(const http1_parser&) = delete;

  enum class status {
    need_more, // every byte was consumed; the request is not complete yet
    complete,  // a request is complete: take_head() and take_body(); bytes after `consumed` belong to the next one
    failed,    // error() says why; stop feeding, answer it and close the connection
  };
  struct result {
    status what;
    size_t consumed;
  };

  /// Parses `data`. After `complete`, call next() before feeding the rest. After `failed`, call nothing else.
  result feed(const char* data, size_t size);

  /// The connection ended (EOF) while a request was incomplete: false if that request was cut short.
  bool at_message_boundary() const { return !in_message_; }
  /// Whether some byte of the next request has arrived (its head timer runs).
  bool in_message() const { return in_message_; }
  /// Whether the head of the current request is complete and its body is being read.
  bool reading_body() const { return head_done_; }

  /// The head read so far (complete once reading_body()).
  const request_head& head() const { return head_; }
  request_head take_head() { return std::move(head_); }
  std::string take_body() { return std::move(body_); }
  const framing_error& error() const { return error_; }

  /// Prepares for the next request on the same connection.
  void next();

private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t length);
  static int on_header_field(http_parser* p, const char* at, size_t length);
  static int on_header_value(http_parser* p, const char* at, size_t length);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t length);
  static int on_message_complete(http_parser* p);

  int fail(int status, std::string message);
  int check_head_size();
  int finish_header();

  http1_limits limits_;
  decide_fn decide_body_;
  http_parser parser_;
  http_parser_settings settings_;
  request_head head_;
  std::string body_;
  std::string field_;  // the header name being read
  std::string value_;  // its value so far
  bool in_value_ = false;
  size_t head_bytes_ = 0;
  uint64_t max_body_ = 0;
  int content_length_fields_ = 0;
  bool in_message_ = false;
  bool head_done_ = false;
  bool complete_ = false;
  bool failed_ = false;
  framing_error error_;
};

/// The reason phrase of a status ("Not Found"); "Unknown" for codes it does not know.
const char* reason_phrase(int status);

} // namespace troupe::http

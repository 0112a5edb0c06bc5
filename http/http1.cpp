#include "http/http1.hpp"
#include "http/header_text.hpp"

#include <strings.h>

namespace troupe::http {

namespace {

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.': case '^':
  case '_': case '`': case '|': case '~':
    return true;
  default:
    return false;
  }
}

http1_parser& self(http_parser* p) {
  return *static_cast<http1_parser*>(p->data);
}

/// The status and sentence for an error http-parser itself found.
framing_error parser_error(enum http_errno code) {
  switch (code) {
  case HPE_HEADER_OVERFLOW:
    return {431, "The request head is too large."};
  case HPE_INVALID_VERSION:
    return {505, "Only HTTP/1.0 and HTTP/1.1 are served."};
  case HPE_INVALID_CONTENT_LENGTH:
    return {400, "The Content-Length header is not a number."};
  case HPE_UNEXPECTED_CONTENT_LENGTH:
    return {400, "A request may carry one Content-Length, and not together with Transfer-Encoding."};
  case HPE_INVALID_TRANSFER_ENCODING:
    return {501, "Only the chunked transfer coding is supported."};
  case HPE_INVALID_CHUNK_SIZE:
    return {400, "A chunk size of the body is malformed."};
  case HPE_INVALID_METHOD:
    return {400, "The request line is malformed (unknown method)."};
  case HPE_INVALID_URL:
    return {400, "The request target is malformed."};
  default:
    return {400, std::string{"The request is malformed: "} + http_errno_description(code) + "."};
  }
}

} // namespace

const std::string* request_head::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (iequals(key, name))
      return &value;
  return nullptr;
}

http1_parser::http1_parser(http1_limits limits, decide_fn decide_body)
  : limits_(limits), decide_body_(std::move(decide_body)) {
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &http1_parser::on_message_begin;
  settings_.on_url = &http1_parser::on_url;
  settings_.on_header_field = &http1_parser::on_header_field;
  settings_.on_header_value = &http1_parser::on_header_value;
  settings_.on_headers_complete = &http1_parser::on_headers_complete;
  settings_.on_body = &http1_parser::on_body;
  settings_.on_message_complete = &http1_parser::on_message_complete;
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

void http1_parser::next() {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  head_ = request_head{};
  body_ = std::string{};
  field_.clear();
  value_.clear();
  in_value_ = false;
  head_bytes_ = 0;
  max_body_ = 0;
  content_length_fields_ = 0;
  in_message_ = false;
  head_done_ = false;
  complete_ = false;
}

http1_parser::result http1_parser::feed(const char* data, size_t size) {
  if (failed_)
    return {status::failed, 0};
  if (complete_)
    return {status::complete, 0}; // next() was not called: nothing more is read
  auto consumed = http_parser_execute(&parser_, &settings_, data, size);
  auto code = HTTP_PARSER_ERRNO(&parser_);
  if (complete_) // paused by on_message_complete
    return {status::complete, consumed};
  if (failed_)
    return {status::failed, consumed};
  if (code != HPE_OK) {
    failed_ = true;
    error_ = parser_error(code);
    return {status::failed, consumed};
  }
  // http-parser counts the head's bytes itself (blanks and line ends included); hold it to our limit too.
  if (in_message_ && !head_done_ && parser_.nread > limits_.max_header_bytes) {
    fail(431, "The request head is larger than " + std::to_string(limits_.max_header_bytes) + " bytes.");
    return {status::failed, consumed};
  }
  if (consumed < size) { // an upgrade or CONNECT: the rest is another protocol, which we do not speak
    fail(400, "Protocol upgrades are not supported.");
    return {status::failed, consumed};
  }
  return {status::need_more, consumed};
}

int http1_parser::fail(int status, std::string message) {
  if (!failed_) {
    failed_ = true;
    error_ = framing_error{status, std::move(message)};
  }
  return -1;
}

int http1_parser::check_head_size() {
  if (head_bytes_ > limits_.max_header_bytes)
    return fail(431, "The request head is larger than " + std::to_string(limits_.max_header_bytes) + " bytes.");
  return 0;
}

int http1_parser::finish_header() {
  if (head_.headers.size() >= limits_.max_headers)
    return fail(431, "The request has more than " + std::to_string(limits_.max_headers) + " header fields.");
  // Names are tokens (RFC 9110 5.1). Debian's http-parser is built non-strict and lets a space through, and a
  // "Transfer-Encoding " another hop reads as Transfer-Encoding is how requests get smuggled.
  if (field_.empty())
    return fail(400, "A header field has no name.");
  for (char c : field_)
    if (!is_token_char(c))
      return fail(400, "A header name contains a character that is not allowed.");
  auto value = trim(value_);
  // Control characters other than tab have no place in a field value (RFC 9110 5.5); some parser builds let
  // them through.
  for (char c : value)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
      return fail(400, "A header value contains a control character.");
  if (iequals(field_, "Content-Length"))
    ++content_length_fields_;
  head_.headers.emplace_back(std::move(field_), std::string{value});
  field_.clear();
  value_.clear();
  in_value_ = false;
  return 0;
}

int http1_parser::on_message_begin(http_parser* p) {
  self(p).in_message_ = true;
  return 0;
}

int http1_parser::on_url(http_parser* p, const char* at, size_t length) {
  auto& s = self(p);
  s.in_message_ = true;
  s.head_.target.append(at, length);
  s.head_bytes_ += length;
  if (s.head_.target.size() > s.limits_.max_request_line)
    return s.fail(414, "The request target is longer than " + std::to_string(s.limits_.max_request_line) + " bytes.");
  return s.check_head_size();
}

int http1_parser::on_header_field(http_parser* p, const char* at, size_t length) {
  auto& s = self(p);
  if (s.in_value_ && s.finish_header() != 0)
    return -1;
  s.field_.append(at, length);
  s.head_bytes_ += length;
  return s.check_head_size();
}

int http1_parser::on_header_value(http_parser* p, const char* at, size_t length) {
  auto& s = self(p);
  s.in_value_ = true;
  s.value_.append(at, length);
  s.head_bytes_ += length;
  return s.check_head_size();
}

int http1_parser::on_headers_complete(http_parser* p) {
  auto& s = self(p);
  if ((s.in_value_ || !s.field_.empty()) && s.finish_header() != 0)
    return -1;
  auto& head = s.head_;
  head.method = http_method_str(static_cast<enum http_method>(p->method));
  if (p->http_major != 1 || p->http_minor > 1)
    return s.fail(505, "Only HTTP/1.0 and HTTP/1.1 are served.");
  head.version_minor = p->http_minor;
  head.keep_alive = http_should_keep_alive(p) != 0;
  head.chunked = (p->flags & F_CHUNKED) != 0;
  if (p->flags & F_CONTENTLENGTH)
    head.content_length = p->content_length;

  // Framing the parser lets through in some versions, refused here whatever its version does.
  if (s.content_length_fields_ > 1)
    return s.fail(400, "A request may carry one Content-Length.");
  int hosts = 0;
  int transfer_encodings = 0;
  const std::string* transfer_encoding = nullptr;
  for (const auto& [name, value] : head.headers) {
    if (iequals(name, "Host"))
      ++hosts;
    else if (iequals(name, "Transfer-Encoding")) {
      ++transfer_encodings;
      transfer_encoding = &value;
    }
    else if (iequals(name, "Expect")) {
      if (!iequals(value, "100-continue"))
        return s.fail(417, "Only Expect: 100-continue is understood.");
      head.expect_continue = true;
    }
  }
  if (transfer_encoding) {
    if (transfer_encodings > 1)
      return s.fail(400, "A request may carry one Transfer-Encoding.");
    if (head.content_length)
      return s.fail(400, "A request may not carry both Content-Length and Transfer-Encoding.");
    if (!iequals(*transfer_encoding, "chunked") || !head.chunked)
      return s.fail(501, "Only the chunked transfer coding is supported.");
  }
  if (hosts > 1 || (hosts == 0 && head.version_minor >= 1))
    return s.fail(400, "An HTTP/1.1 request carries exactly one Host header.");

  auto decision = s.decide_body_(head);
  if (decision.refuse)
    return s.fail(decision.refuse->status, std::move(decision.refuse->message));
  s.max_body_ = decision.max_body_bytes;
  if (head.content_length && *head.content_length > s.max_body_)
    return s.fail(413, "The request body is larger than the limit of " + std::to_string(s.max_body_) + " bytes.");
  if (head.content_length)
    s.body_.reserve(static_cast<size_t>(*head.content_length));
  s.head_done_ = true;
  return 0;
}

int http1_parser::on_body(http_parser* p, const char* at, size_t length) {
  auto& s = self(p);
  if (s.body_.size() + length > s.max_body_)
    return s.fail(413, "The request body is larger than the limit of " + std::to_string(s.max_body_) + " bytes.");
  s.body_.append(at, length);
  return 0;
}

int http1_parser::on_message_complete(http_parser* p) {
  auto& s = self(p);
  s.complete_ = true;
  http_parser_pause(p, 1); // stop here: the next request is read once this one is answered
  return 0;
}

const char* reason_phrase(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 402:
    return "Payment Required";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 417:
    return "Expectation Failed";
  case 422:
    return "Unprocessable Content";
  case 423:
    return "Locked";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 460:
    return "Checksum Mismatch";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  case 507:
    return "Insufficient Storage";
  default:
    return "Unknown";
  }
}

} // namespace troupe::http

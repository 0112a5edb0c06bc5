#include "tools/mock-upstream/plan.hpp"

#include "http/http1.hpp"
#include "tools/mock-upstream/json_text.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace troupe::mock {

namespace {

constexpr std::string_view filler_pattern = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

} // namespace

char filler_byte(uint64_t index) {
  return filler_pattern[index % filler_pattern.size()];
}

void copy_filler(uint64_t offset, char* out, size_t count) {
  for (size_t i = 0; i < count;) {
    auto at = (offset + i) % filler_pattern.size();
    auto n = std::min(count - i, filler_pattern.size() - at);
    std::copy_n(filler_pattern.data() + at, n, out + i);
    i += n;
  }
}

in_flight_guard::in_flight_guard(std::atomic<int64_t>* in_flight, std::atomic<uint64_t>* aborted)
  : in_flight_(in_flight), aborted_(aborted) {
  in_flight_->fetch_add(1, std::memory_order_relaxed);
}

in_flight_guard::~in_flight_guard() {
  release();
}

in_flight_guard::in_flight_guard(in_flight_guard&& other) noexcept
  : in_flight_(other.in_flight_), aborted_(other.aborted_) {
  other.in_flight_ = nullptr;
}

in_flight_guard& in_flight_guard::operator=(in_flight_guard&& other) noexcept {
  if (this != &other) {
    release();
    in_flight_ = other.in_flight_;
    aborted_ = other.aborted_;
    other.in_flight_ = nullptr;
  }
  return *this;
}

void in_flight_guard::abort() {
  if (in_flight_ != nullptr && aborted_ != nullptr)
    aborted_->fetch_add(1, std::memory_order_relaxed);
  release();
}

void in_flight_guard::release() {
  if (in_flight_ != nullptr)
    in_flight_->fetch_sub(1, std::memory_order_relaxed);
  in_flight_ = nullptr;
}

void plan::write(std::string bytes) {
  if (bytes.empty())
    return;
  // Adjacent writes merge, so an answer without waits leaves in one send().
  if (!steps.empty() && steps.back().what == step::kind::bytes) {
    steps.back().bytes += bytes;
    return;
  }
  step s;
  s.bytes = std::move(bytes);
  steps.push_back(std::move(s));
}

void plan::filler(uint64_t offset, uint64_t length) {
  if (length == 0)
    return;
  step s;
  s.what = step::kind::filler;
  s.filler_offset = offset;
  s.filler_length = length;
  steps.push_back(std::move(s));
}

void plan::wait(int64_t ms) {
  if (ms <= 0)
    return;
  step s;
  s.what = step::kind::wait;
  s.wait_ms = ms;
  steps.push_back(std::move(s));
}

void plan::close() {
  step s;
  s.what = step::kind::close;
  steps.push_back(std::move(s));
}

void body::text(std::string_view s) {
  if (s.empty())
    return;
  if (!segments_.empty() && segments_.back().filler_length == 0)
    segments_.back().text += s;
  else
    segments_.push_back(segment{std::string{s}, 0, 0});
  size_ += s.size();
}

void body::filler(uint64_t offset, uint64_t length) {
  if (length == 0)
    return;
  segments_.push_back(segment{{}, offset, length});
  size_ += length;
}

void body::emit(uint64_t from, uint64_t to, plan& p) const {
  uint64_t start = 0;
  for (const auto& seg : segments_) {
    uint64_t end = start + seg.size();
    uint64_t lo = std::max(from, start), hi = std::min(to, end);
    if (lo < hi) {
      if (seg.filler_length > 0)
        p.filler(seg.filler_offset + (lo - start), hi - lo);
      else
        p.write(seg.text.substr(lo - start, hi - lo));
    }
    start = end;
  }
}

void body::append_to(std::string& out) const {
  for (const auto& seg : segments_) {
    if (seg.filler_length == 0) {
      out += seg.text;
    } else {
      auto at = out.size();
      out.resize(at + seg.filler_length);
      copy_filler(seg.filler_offset, out.data() + at, seg.filler_length);
    }
  }
}

const char* reason_phrase(int status) {
  // Troupe's own table (http/http1.cpp); statuses it does not name (a knob may ask for any) get the class's phrase.
  const char* known = http::reason_phrase(status);
  if (std::strcmp(known, "Unknown") != 0)
    return known;
  return status < 500 ? "Client Error" : "Server Error";
}

std::string response_head(int status, std::string_view content_type, int64_t content_length, bool keep_alive,
                          std::string_view extra) {
  std::string head;
  head.reserve(160 + extra.size());
  head += "HTTP/1.1 ";
  head += std::to_string(status);
  head += ' ';
  head += reason_phrase(status);
  head += "\r\nContent-Type: ";
  head += content_type;
  if (content_length >= 0) {
    head += "\r\nContent-Length: ";
    head += std::to_string(content_length);
  } else if (content_length == chunked_body) {
    head += "\r\nTransfer-Encoding: chunked";
  }
  head += keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n";
  head += extra;
  head += "\r\n";
  return head;
}

std::string chunk_size_line(uint64_t size) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%llx\r\n", static_cast<unsigned long long>(size));
  return buf;
}

void respond(plan& p, int status, std::string_view content_type, std::string_view body_text, bool keep_alive,
             std::string_view extra_headers) {
  p.write(response_head(status, content_type, static_cast<int64_t>(body_text.size()), keep_alive, extra_headers)
          + std::string{body_text});
  p.close_after = !keep_alive;
}

std::string openai_error_body(std::string_view message, std::string_view type, std::string_view code,
                              std::string_view param) {
  std::string out = "{\"error\":{\"message\":";
  append_json_string(out, message);
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"param\":";
  if (param.empty())
    out += "null";
  else
    append_json_string(out, param);
  out += ",\"code\":";
  if (code.empty())
    out += "null";
  else
    append_json_string(out, code);
  out += "}}";
  return out;
}

} // namespace troupe::mock

#pragma once
// Response plans: an answer as a list of steps (write these bytes, write generated filler bytes, wait, close the
// connection). Latency, slow drip, truncation and hang-ups are thereby plain data that the server's event loop
// executes without blocking a thread; a huge reply is generated while it is written, never held in memory.
//
// Also here: the pieces every answer is built from (status line and headers, chunked framing, bodies made of
// text and filler segments) and the guard that keeps a chat request counted as in flight until its plan ends.

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

/// The filler pattern: byte i of every huge reply is filler_byte(i). Printable ASCII that needs no JSON escape.
char filler_byte(uint64_t index);
void copy_filler(uint64_t offset, char* out, size_t count);

struct step {
  enum class kind { bytes, filler, wait, close };
  kind what = kind::bytes;
  std::string bytes;          // kind::bytes
  uint64_t filler_offset = 0; // kind::filler: pattern bytes [filler_offset, filler_offset + filler_length)
  uint64_t filler_length = 0;
  int64_t wait_ms = 0; // kind::wait
};

/// Decrements an in-flight gauge when the answer it belongs to ends (finished, or cut short by the client).
class in_flight_guard {
public:
  in_flight_guard() = default;
  in_flight_guard(std::atomic<int64_t>* in_flight, std::atomic<uint64_t>* aborted);
  ~in_flight_guard();
  in_flight_guard(in_flight_guard&& other) noexcept;
  in_flight_guard& operator=(in_flight_guard&& other) noexcept;
  in_flight_guard(const in_flight_guard&) = delete;
  in_flight_guard& operator=(const in_flight_guard&) = delete;

  /// The answer will not complete because the client left or the socket failed: counts it as aborted.
  void abort();

private:
  void release();
  std::atomic<int64_t>* in_flight_ = nullptr;
  std::atomic<uint64_t>* aborted_ = nullptr;
};

/// What a connection does to answer one request. When the steps run out the connection closes if
/// `close_after`, else it reads the next request.
struct plan {
  std::deque<step> steps;
  bool close_after = false;
  in_flight_guard in_flight;

  void write(std::string bytes);
  void filler(uint64_t offset, uint64_t length);
  void wait(int64_t ms); // no step for ms <= 0
  void close();
};

/// A body as a sequence of text and filler segments, so it can be cut at any byte (drip, truncation).
class body {
public:
  void text(std::string_view s);
  void filler(uint64_t offset, uint64_t length);
  uint64_t size() const { return size_; }
  /// Appends steps writing bytes [from, to) of the body.
  void emit(uint64_t from, uint64_t to, plan& p) const;
  /// Appends every byte to `out` (for bodies known to be small).
  void append_to(std::string& out) const;

private:
  struct segment {
    std::string text;           // when filler_length == 0
    uint64_t filler_offset = 0; // pattern offset otherwise
    uint64_t filler_length = 0;
    uint64_t size() const { return filler_length > 0 ? filler_length : text.size(); }
  };
  std::vector<segment> segments_;
  uint64_t size_ = 0;
};

const char* reason_phrase(int status);

/// Body lengths response_head() accepts besides a byte count.
inline constexpr int64_t chunked_body = -1;     // Transfer-Encoding: chunked
inline constexpr int64_t body_until_close = -2; // no length: the body ends when the connection closes (HTTP/1.0)

/// Status line and headers through the blank line; `content_length` is a byte count, chunked_body or
/// body_until_close. `extra` is zero or more complete "Name: value\r\n" lines.
std::string response_head(int status, std::string_view content_type, int64_t content_length, bool keep_alive,
                          std::string_view extra = {});

/// The framing line before a chunk of `size` bytes (chunked transfer coding).
std::string chunk_size_line(uint64_t size);
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

/// A complete small response: head plus body, as one write.
void respond(plan& p, int status, std::string_view content_type, std::string_view body_text, bool keep_alive,
             std::string_view extra_headers = {});

/// {"error":{"message":...,"type":...,"param":...,"code":...}}, the OpenAI error shape; empty param/code are null.
std::string openai_error_body(std::string_view message, std::string_view type, std::string_view code,
                              std::string_view param = {});

} // namespace troupe::mock

#pragma once
// Knobs of the mock upstream: how a chat request is answered (latency, a forced status, random errors,
// Retry-After, slow drip, chunk count, malformed output, huge output). One table names them; the command-line
// flags, the X-Mock request header, [[mock ...]] directives in message text and POST /mock/config all set them
// through set_knob(), so a knob is spelled and validated the same way everywhere.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

/// Ways to answer wrongly on purpose (knob `malformed`).
enum class malformed_mode {
  none,       // a correct answer
  json,       // 200 whose body is not JSON (always a non-streaming answer)
  sse,        // an event stream with a data: line that is not JSON (always a streaming answer)
  utf8,       // 200 whose content holds invalid UTF-8 bytes
  truncated,  // fewer bytes than announced (Content-Length, or a stream without its end), then close
  no_choices, // valid JSON without "choices"
  hangup,     // close the connection without answering
};

const char* malformed_name(malformed_mode mode);

/// The knobs in force for one answer.
struct knobs {
  int64_t latency_ms = 0;   // wait before the response headers
  int status = 0;           // 0 or 200: answer normally; 400..599: this status with an OpenAI error body
  int64_t retry_after = -1; // seconds for Retry-After on error answers; < 0: no header
  double error_rate = 0;    // probability of answering error_status instead (seeded PRNG)
  int error_status = 500;
  int64_t drip_ms = 0; // pause between SSE events, or between the pieces of a non-streaming body
  int64_t chunks = 8;  // content events of a stream; pieces of a dripped non-streaming body
  malformed_mode malformed = malformed_mode::none;
  int64_t huge_bytes = 0; // > 0: the reply content is this many bytes
  int64_t think_ms = 0;    // a stream: wait after the response headers, before the first event (a model thinking)
  int64_t pause_after = 0; // a stream: after this many events, go silent once for pause_ms (0: never)
  int64_t pause_ms = 0;
};

/// Knobs named by one source (a flag set, a header, a directive, a config call); unnamed ones stay unset.
struct knob_overrides {
  std::optional<int64_t> latency_ms;
  std::optional<int> status;
  std::optional<int64_t> retry_after;
  std::optional<double> error_rate;
  std::optional<int> error_status;
  std::optional<int64_t> drip_ms;
  std::optional<int64_t> chunks;
  std::optional<malformed_mode> malformed;
  std::optional<int64_t> huge_bytes;
  std::optional<int64_t> think_ms;
  std::optional<int64_t> pause_after;
  std::optional<int64_t> pause_ms;
  std::optional<int64_t> count; // POST /mock/config only: how many chat requests the knobs apply to

  /// Sets every named knob of `this` in `target`.
  void apply_to(knobs& target) const;
  /// Copies every knob named in `later` over this one (later wins).
  void merge(const knob_overrides& later);
};

/// Sets knob `name` (snake_case, e.g. "retry_after") from its text form. Returns "" on success, else a sentence
/// naming the knob, the value and the expected form; `out` is unchanged then.
std::string set_knob(knob_overrides& out, std::string_view name, std::string_view value);

/// Parses "status=429,retry_after=3" (pairs separated by commas, semicolons or whitespace) into `out`.
/// Returns "" or the first error sentence. `count` is refused here: it only makes sense for /mock/config.
std::string parse_knob_list(std::string_view text, knob_overrides& out);

/// Every knob name with its accepted values, for --help and error messages.
struct knob_doc {
  const char* name;
  const char* values;
};
const std::vector<knob_doc>& knob_docs();

/// The knobs as one JSON object (every knob) or only the named ones.
std::string to_json(const knobs& k);
std::string to_json(const knob_overrides& k);

} // namespace troupe::mock

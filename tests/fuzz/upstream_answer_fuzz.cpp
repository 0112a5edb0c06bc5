// Fuzz target: what upstreams send back (ai/openai.hpp): a non-streamed answer (check_completion,
// completion_text), and a Server-Sent Events stream relayed to the client (sse_relay).
//
// The input is used twice: as an answer body, and as a stream fed to two relays, one all at once and one in chunks
// whose sizes come from the input's own bytes.
//
// Invariants:
//   - an accepted answer has usage that adds up; completion_text never fails on it;
//   - the relay's output does not depend on how the stream was cut into chunks;
//   - the client, reading the relay's output with a standard SSE parser (lines end with CRLF, LF or CR; "data"
//     fields joined by LF; a blank line ends an event), gets only events whose data is a JSON object or [DONE], and
//     they are the first events of the upstream's stream, unchanged.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "ai/openai.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace {

/// The data of each event a spec-following SSE client dispatches (HTML Living Standard, "event stream
/// interpretation"), in order; events without data are not dispatched.
std::vector<std::string> client_events(std::string_view stream) {
  std::vector<std::string> events;
  std::string data;
  bool has_data = false;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t eol = stream.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos)
      break; // an unterminated last line is not processed
    auto line = stream.substr(pos, eol - pos);
    pos = eol + 1;
    if (stream[eol] == '\r' && pos < stream.size() && stream[pos] == '\n')
      ++pos;
    if (line.empty()) {
      if (has_data)
        events.push_back(data);
      data.clear();
      has_data = false;
      continue;
    }
    if (line.front() == ':')
      continue;
    auto colon = line.find(':');
    auto field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data)
        data += '\n';
      data.append(value.data(), value.size());
      has_data = true;
    }
  }
  return events;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* bytes, size_t size) {
  using namespace troupe;
  using fuzz::check;
  namespace oa = openai;
  const auto text = fuzz::text_of(bytes, size);

  std::string why;
  if (auto usage = oa::check_completion(text, 40, why)) {
    check(usage->prompt_tokens >= 0 && usage->completion_tokens >= 0 && usage->total_tokens >= 0,
          "usage is never negative");
    check(usage->estimated || usage->total_tokens >= 0, "reported usage is kept");
    oa::completion_text(text);
  } else {
    check(!why.empty(), "a refused answer says why");
  }

  oa::sse_relay whole{40};
  auto whole_out = whole.feed(text);
  oa::sse_relay chunked{40};
  std::string chunked_out;
  for (size_t pos = 0, i = 0; pos < size; ++i) {
    size_t n = 1 + static_cast<unsigned char>(text[i % size]) % 17;
    chunked_out += chunked.feed(text.substr(pos, n));
    pos += n;
  }
  check(whole.failed() == chunked.failed(), "chunking does not change whether the stream fails");
  check(whole_out == chunked_out, "chunking does not change what reaches the client");
  check(whole.done() == chunked.done(), "chunking does not change [DONE]");

  auto sent = client_events(whole_out);
  auto upstream = client_events(text);
  check(sent.size() <= upstream.size(), "the relay never invents events");
  for (size_t i = 0; i < sent.size(); ++i) {
    check(sent[i] == upstream[i], "the client reads each event's data as the upstream sent it");
    if (sent[i] != "[DONE]") {
      auto event = json::parse(sent[i]);
      check(event.ok() && event->IsObject(), "the client only gets JSON objects or [DONE]");
    }
  }

  // A client that did not ask for usage: the same stream less the usage chunk, the same usage read from it.
  oa::sse_relay withheld{40, false};
  auto withheld_out = withheld.feed(text);
  check(withheld.failed() == whole.failed() && withheld.done() == whole.done(),
        "withholding the usage chunk does not change how the stream ends");
  auto a = whole.totals(), b = withheld.totals();
  check(a.prompt_tokens == b.prompt_tokens && a.completion_tokens == b.completion_tokens && a.estimated == b.estimated,
        "withholding the usage chunk does not change the usage");
  auto kept = client_events(withheld_out);
  size_t next = 0;
  for (const auto& e : kept) {
    while (next < sent.size() && sent[next] != e)
      ++next;
    check(next < sent.size(), "the events relayed without the usage chunk are events of the full relay, in order");
    ++next;
  }
  return 0;
}

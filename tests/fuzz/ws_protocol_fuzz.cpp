// Fuzz target: the WebSocket channel's protocol (http/ws_protocol.hpp). The input is used three ways: as the bytes a
// client sends (ws_codec, wslay behind it), as one client message (parse_envelope), and as the gateway's SSE output
// relayed to a client (stream_events).
//
// Invariants:
//   - the codec never hands over a message larger than its cap, nor a text message that is not UTF-8, and it
//     frames the same messages however the input is cut (whole, or in two pieces at a point the input chooses);
//   - an accepted envelope's id is 1-128 bytes; a chat's request is a JSON object again when parsed, and a refused
//     one says why;
//   - stream events are the same whether the bytes come at once or in two pieces; every frame the server builds
//     from them is JSON.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "ai/openai.hpp"
#include "http/ws_protocol.hpp"

#include <string>
#include <utility>
#include <vector>

namespace {

using namespace troupe;
using namespace troupe::http;
using fuzz::check;

constexpr uint64_t max_message = 4096;

std::vector<std::pair<uint8_t, std::string>> frame_all(std::string_view bytes, size_t cut) {
  std::vector<std::pair<uint8_t, std::string>> messages;
  ws::ws_codec codec{max_message, [&](uint8_t op, std::string_view payload) {
                       messages.emplace_back(op, std::string{payload});
                     }};
  cut = std::min(cut, bytes.size());
  codec.feed(bytes.data(), cut);
  codec.feed(bytes.data() + cut, bytes.size() - cut);
  codec.send(ws::text, "{\"type\":\"pong\"}");
  (void)codec.take_output();
  return messages;
}

void as_frames(std::string_view bytes, size_t cut) {
  auto whole = frame_all(bytes, bytes.size());
  for (const auto& [op, payload] : whole) {
    check(payload.size() <= max_message || op == ws::close || op == ws::ping || op == ws::pong,
          "no message over the cap is handed over");
    if (op == ws::text)
      check(openai::valid_utf8(payload), "a text message is UTF-8");
  }
  check(frame_all(bytes, cut) == whole, "the same messages however the input is cut");
}

void as_envelope(std::string_view text) {
  auto parsed = ws::parse_envelope(text, 64);
  if (auto* err = std::get_if<ws::envelope_error>(&parsed)) {
    check(!err->message.empty(), "a refused message says why");
    return;
  }
  const auto& env = std::get<ws::envelope>(parsed);
  check(env.id.size() <= ws::max_id_bytes, "an id is at most 128 bytes");
  if (env.kind == ws::envelope_kind::chat) {
    check(!env.id.empty(), "a chat has an id");
    auto request = json::parse(env.request);
    check(request.ok() && request->IsObject(), "a chat's request is a JSON object again");
  }
  auto frame = json::parse(ws::error_frame_from_body(env.id, 400, text));
  check(frame.ok(), "an error frame is JSON whatever the body");
}

void as_stream(std::string_view bytes, size_t cut) {
  ws::stream_events at_once{1 << 12}, in_two{1 << 12};
  std::vector<ws::stream_events::event> a, b;
  at_once.feed(bytes, a);
  cut = std::min(cut, bytes.size());
  in_two.feed(bytes.substr(0, cut), b);
  in_two.feed(bytes.substr(cut), b);
  if (!at_once.failed() && !in_two.failed()) {
    check(a.size() == b.size(), "the same events however the bytes are cut");
    for (size_t i = 0; i < a.size() && i < b.size(); ++i)
      check(a[i].name == b[i].name && a[i].data == b[i].data, "the same events however the bytes are cut");
  }
  for (const auto& e : a)
    if (json::parse(e.data).ok() && json::parse(e.data)->IsObject())
      check(json::parse(ws::chunk_frame("s", e.data)).ok(), "a chunk frame of a JSON object is JSON");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  auto text = fuzz::text_of(data, size);
  size_t cut = size > 0 ? data[0] * size / 256 : 0;
  as_frames(text, cut);
  as_envelope(text);
  as_stream(text, cut);
  return 0;
}

// The WebSocket channel's pure protocol (http/ws_protocol.hpp): the handshake, the frames (wslay behind ws_codec),
// the JSON envelopes, the frames sent back and the relay of the gateway's SSE output.

#include "http/ws_protocol.hpp"

#include "config/json.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace troupe::http::ws {
namespace {

/// A frame as a client sends it: masked (unless `masked` is false), with a 7-, 16- or 64-bit length.
std::string client_frame(uint8_t opcode, std::string_view payload, bool fin = true, bool masked = true) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() < 65536) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xff));
  }
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked)
    out.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    out.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  return out;
}

/// Decodes the server's (unmasked) frames: opcode and payload of each.
std::vector<std::pair<uint8_t, std::string>> server_frames(std::string bytes) {
  std::vector<std::pair<uint8_t, std::string>> frames;
  size_t at = 0;
  while (at + 2 <= bytes.size()) {
    auto op = static_cast<uint8_t>(bytes[at] & 0x0f);
    uint64_t length = static_cast<uint8_t>(bytes[at + 1]) & 0x7f;
    at += 2;
    if (length == 126) {
      length = (static_cast<uint8_t>(bytes[at]) << 8) | static_cast<uint8_t>(bytes[at + 1]);
      at += 2;
    } else if (length == 127) {
      length = 0;
      for (int i = 0; i < 8; ++i)
        length = (length << 8) | static_cast<uint8_t>(bytes[at + i]);
      at += 8;
    }
    frames.emplace_back(op, bytes.substr(at, length));
    at += length;
  }
  return frames;
}

uint16_t close_code_of(const std::string& payload) {
  return payload.size() >= 2 ? static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]))
                             : 0;
}

struct codec_fixture {
  explicit codec_fixture(uint64_t max = 1024)
    : codec(max, [this](uint8_t op, std::string_view payload) { messages.emplace_back(op, std::string{payload}); }) {}
  void feed(const std::string& bytes) { codec.feed(bytes.data(), bytes.size()); }
  ws_codec codec;
  std::vector<std::pair<uint8_t, std::string>> messages;
};

TEST(WsHandshake, AcceptKeyIsTheRfcExample) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshake, ChecksEveryRequiredHeader) {
  std::vector<std::pair<std::string, std::string>> good = {{"Upgrade", "websocket"},
                                                           {"Connection", "keep-alive, Upgrade"},
                                                           {"Sec-WebSocket-Version", "13"},
                                                           {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  auto ok = check_handshake("GET", good);
  ASSERT_TRUE(std::holds_alternative<std::string>(ok));
  EXPECT_EQ(std::get<std::string>(ok), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(std::holds_alternative<handshake_refusal>(check_handshake("POST", good)));
  for (size_t drop = 0; drop < good.size(); ++drop) {
    auto missing = good;
    missing.erase(missing.begin() + static_cast<long>(drop));
    EXPECT_TRUE(std::holds_alternative<handshake_refusal>(check_handshake("GET", missing))) << good[drop].first;
  }
  auto old_version = good;
  old_version[2].second = "8";
  auto refused = check_handshake("GET", old_version);
  ASSERT_TRUE(std::holds_alternative<handshake_refusal>(refused));
  EXPECT_TRUE(std::get<handshake_refusal>(refused).version_header);
  auto short_key = good;
  short_key[3].second = "c2hvcnQ="; // "short": not 16 bytes
  EXPECT_TRUE(std::holds_alternative<handshake_refusal>(check_handshake("GET", short_key)));
  auto two_keys = good;
  two_keys.emplace_back("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_TRUE(std::holds_alternative<handshake_refusal>(check_handshake("GET", two_keys)));
}

TEST(WsCodec, ReadsMaskedMessagesAndReassemblesFragments) {
  codec_fixture f;
  f.feed(client_frame(text, "hello"));
  auto fragmented = client_frame(text, "hel", false) + client_frame(0x0, "lo ", false) + client_frame(0x0, "again");
  // Fed a byte at a time: framing does not depend on how the input is cut.
  for (char byte : fragmented)
    f.feed(std::string(1, byte));
  f.feed(client_frame(binary, std::string("\0\xff", 2)));
  ASSERT_EQ(f.messages.size(), 3u);
  EXPECT_EQ(f.messages[0], std::make_pair(uint8_t{text}, std::string{"hello"}));
  EXPECT_EQ(f.messages[1].second, "hello again");
  EXPECT_EQ(f.messages[2], std::make_pair(uint8_t{binary}, std::string("\0\xff", 2)));
  EXPECT_TRUE(f.codec.take_output().empty());
}

// A close frame whose reason is not UTF-8 is never handed over, whether its bytes come in one read or in two (wslay
// checks the reason only in the first case; found by the ws_protocol fuzz target), and nothing after a close frame
// is handed over either.
TEST(WsCodec, CloseFramesAreHandedOverTheSameHoweverTheBytesAreCut) {
  const std::string bad_reason{"\x03\xe8" "b\xf1\x96", 5};
  const std::string bytes = client_frame(ping, "beat") + client_frame(close, bad_reason) + client_frame(ping, "late");
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    codec_fixture f;
    f.feed(bytes.substr(0, cut));
    f.feed(bytes.substr(cut));
    ASSERT_EQ(f.messages.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(f.messages[0], std::make_pair(uint8_t{ping}, std::string{"beat"}));
  }
  const std::string good = client_frame(close, std::string{"\x03\xe8" "bye", 5}) + client_frame(ping, "late");
  for (size_t cut = 0; cut <= good.size(); ++cut) {
    codec_fixture f;
    f.feed(good.substr(0, cut));
    f.feed(good.substr(cut));
    ASSERT_EQ(f.messages.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(f.messages[0].first, uint8_t{close});
  }
}

TEST(WsCodec, AnswersPingsAndSendsUnmaskedFrames) {
  codec_fixture f;
  f.feed(client_frame(ping, "beat"));
  auto frames = server_frames(f.codec.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], std::make_pair(uint8_t{pong}, std::string{"beat"}));
  std::string big(70000, 'x');
  ASSERT_TRUE(f.codec.send(text, big));
  frames = server_frames(f.codec.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].second, big);
}

TEST(WsCodec, RefusesWhatTheRfcForbids) {
  {
    codec_fixture f{100};
    f.feed(client_frame(text, std::string(101, 'x'))); // over the cap: refused from its header
    auto frames = server_frames(f.codec.take_output());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].first, close);
    EXPECT_EQ(close_code_of(frames[0].second), message_too_big);
    EXPECT_TRUE(f.messages.empty());
    EXPECT_FALSE(f.codec.send(text, "late")) << "nothing is sent after a close frame";
  }
  {
    codec_fixture f;
    f.feed(client_frame(text, "plain", true, false)); // a client's frame must be masked
    auto frames = server_frames(f.codec.take_output());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(close_code_of(frames[0].second), protocol_error);
    EXPECT_TRUE(f.messages.empty());
  }
  {
    codec_fixture f;
    f.feed(client_frame(text, "\xc3\x28")); // not UTF-8
    auto frames = server_frames(f.codec.take_output());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(close_code_of(frames[0].second), 1007);
    EXPECT_TRUE(f.messages.empty());
  }
}

TEST(WsCodec, ClosingHandshakeFinishes) {
  codec_fixture f;
  ASSERT_TRUE(f.codec.close(going_away, "bye"));
  EXPECT_TRUE(f.codec.close_sent());
  EXPECT_FALSE(f.codec.finished()) << "the client's close has not come yet";
  auto frames = server_frames(f.codec.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(close_code_of(frames[0].second), going_away);
  EXPECT_EQ(frames[0].second.substr(2), "bye");
  f.feed(client_frame(close, std::string("\x03\xe9", 2)));
  EXPECT_TRUE(f.codec.finished());

  codec_fixture g;
  g.feed(client_frame(close, std::string("\x03\xe8", 2))); // the client closes first: answered, then finished
  frames = server_frames(g.codec.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first, close);
  EXPECT_TRUE(g.codec.finished());
}

TEST(WsEnvelope, ParsesEachKind) {
  auto chat = parse_envelope(R"({"type":"chat","id":"c1","request":{"model":"m","stream":true,"messages":[]}})", 64);
  ASSERT_TRUE(std::holds_alternative<envelope>(chat));
  const auto& c = std::get<envelope>(chat);
  EXPECT_EQ(c.kind, envelope_kind::chat);
  EXPECT_EQ(c.id, "c1");
  EXPECT_TRUE(c.stream);
  EXPECT_EQ(c.request, R"({"model":"m","stream":true,"messages":[]})");
  auto auth = parse_envelope(R"({"type":"auth","token":"abc"})", 64);
  ASSERT_TRUE(std::holds_alternative<envelope>(auth));
  EXPECT_EQ(std::get<envelope>(auth).token, "abc");
  EXPECT_TRUE(std::holds_alternative<envelope>(parse_envelope(R"({"type":"ping"})", 64)));
  EXPECT_TRUE(std::holds_alternative<envelope>(parse_envelope(R"({"type":"cancel","id":"c1"})", 64)));
}

TEST(WsEnvelope, RefusalsNameTheMemberAndKeepTheId) {
  struct refusal_case {
    const char* text;
    service_error code;
    const char* param;
    const char* id;
  };
  const refusal_case cases[] = {
    {"{\"type\":", service_error::invalid_json, "", ""},
    {R"({"type":"ping","type":"chat"})", service_error::duplicate_key, "type", ""},
    {"[]", service_error::invalid_input, "", ""},
    {R"({"type":"shout","id":"x"})", service_error::invalid_input, "type", "x"},
    {R"({"type":"chat","id":"x"})", service_error::invalid_input, "request", "x"},
    {R"({"type":"chat","request":{}})", service_error::invalid_input, "id", ""},
    {R"({"type":"chat","id":"x","request":{},"extra":1})", service_error::invalid_input, "extra", "x"},
    {R"({"type":"auth","token":""})", service_error::invalid_input, "token", ""},
    {R"({"type":"ping","id":7})", service_error::invalid_input, "id", ""},
  };
  for (const auto& k : cases) {
    auto parsed = parse_envelope(k.text, 64);
    ASSERT_TRUE(std::holds_alternative<envelope_error>(parsed)) << k.text;
    const auto& err = std::get<envelope_error>(parsed);
    EXPECT_EQ(err.code, k.code) << k.text;
    EXPECT_EQ(err.param, k.param) << k.text;
    EXPECT_EQ(err.id, k.id) << k.text;
    EXPECT_FALSE(err.message.empty());
  }
  std::string deep = R"({"type":"chat","id":"d","request":)" + std::string(100, '[') + std::string(100, ']') + "}";
  auto too_deep = parse_envelope(deep, 64);
  ASSERT_TRUE(std::holds_alternative<envelope_error>(too_deep));
  EXPECT_EQ(std::get<envelope_error>(too_deep).code, service_error::json_too_deep);
}

TEST(WsFrames, AreJsonWithTheirIds) {
  for (const auto& text :
       {ready_frame("u\"1"), completion_frame("c\n1", 200, "HIT", R"({"choices":[]})"), chunk_frame("s", R"({"a":1})"),
        done_frame("s", false), done_frame("s", true), pong_frame(""),
        error_frame_from_body("e", 429, R"({"error":{"message":"slow","type":"rate_limit_error"}})"),
        error_frame_from_body("e", 502, "not json")}) {
    auto parsed = json::parse(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_TRUE(parsed->HasMember("type")) << text;
  }
  auto completion = json::parse(completion_frame("c\n1", 200, "HIT", R"({"choices":[]})"));
  EXPECT_EQ(std::string((*completion)["id"].GetString()), "c\n1");
  EXPECT_TRUE((*completion)["response"].IsObject());
  auto error = json::parse(error_frame_from_body("e", 429, R"({"error":{"message":"slow"}})"));
  EXPECT_EQ(std::string((*error)["error"]["message"].GetString()), "slow");
  EXPECT_EQ((*error)["status"].GetInt(), 429);
  auto cancelled = json::parse(done_frame("s", true));
  EXPECT_TRUE((*cancelled)["cancelled"].GetBool());
}

TEST(WsStreamEvents, CutsTheGatewaysSseIntoEventsHoweverItArrives) {
  std::string sse = ": keep-alive\n\ndata: {\"a\":1}\n\nevent: error\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n";
  for (size_t cut = 0; cut <= sse.size(); ++cut) {
    stream_events events;
    std::vector<stream_events::event> out;
    events.feed(std::string_view{sse}.substr(0, cut), out);
    events.feed(std::string_view{sse}.substr(cut), out);
    ASSERT_EQ(out.size(), 3u) << cut;
    EXPECT_EQ(out[0].data, R"({"a":1})");
    EXPECT_EQ(out[1].name, "error");
    EXPECT_EQ(out[2].data, "[DONE]");
  }
  stream_events small{16};
  std::vector<stream_events::event> out;
  small.feed("data: " + std::string(64, 'x'), out);
  EXPECT_TRUE(small.failed());
}

} // namespace
} // namespace troupe::http::ws

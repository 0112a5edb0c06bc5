#pragma once
// The WebSocket channel's protocol (GET /ws, issue 18): pure code, no sockets, no threads, no actors. The fuzz
// target tests/fuzz/ws_protocol_fuzz.cpp drives all of it.
//
//  - the opening handshake (RFC 6455 section 4.2): check_handshake and accept_key;
//  - frames: ws_codec, RFC 6455 framing by wslay (Debian's libwslay, tatsuhiro-t/wslay: the framing library of
//    nghttp2 and aria2, no I/O of its own). It checks client frames are masked, reassembles fragments, checks
//    text is UTF-8, answers pings and the closing handshake, and refuses a message over the size cap with 1009
//    before buffering it. Troupe's reactor (http/websocket.hpp) feeds it bytes and writes what it produces;
//  - the application messages: JSON envelopes in text (or binary) frames, parsed by parse_envelope with the body
//    parser's limits (depth, duplicate keys, UTF-8), and the frames the server sends back (the *_frame functions);
//  - stream_events: the gateway's own SSE output (ai/openai.hpp sse_relay frames it: LF line ends, one data line
//    each, checked JSON) cut into events, which the channel relays as frames.
//
// Client -> server (one JSON object per message):
//   {"type":"auth","token":"<access token or API key>"}        when the handshake carried no Authorization
//   {"type":"chat","id":"<1-128 chars>","request":{...}}        an OpenAI chat completion request; stream: true streams
//   {"type":"cancel","id":"..."}                                stops a streamed chat
//   {"type":"ping","id":"..."?}                                 answered {"type":"pong","id":...} (browsers cannot
//                                                               send WebSocket pings)
// Server -> client:
//   {"type":"ready","user_id":"..."}                            authenticated; chats may follow
//   {"type":"chat.completion","id","status":200,"cache":"HIT|MISS|...","response":{...}}
//   {"type":"chat.chunk","id","chunk":{...}} ... {"type":"chat.done","id"}     a streamed chat, chunk by chunk
//   {"type":"chat.done","id","cancelled":true}                  a cancelled chat (streamed or not) ends
//   {"type":"error","id"?,"status":<HTTP status>,"error":{"message","type","code","param"}}
//   {"type":"pong","id"?}

#include "config/service_error.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::http::ws {

// --- the opening handshake ---------------------------------------------------------------------------------------

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string accept_key(std::string_view key);

struct handshake_refusal {
  int status = 400;
  std::string message;
  bool version_header = false; // answer with "Sec-WebSocket-Version: 13" (the client asked for another version)
};

/// Checks an opening handshake: GET, "Upgrade: websocket", a Connection header with the "upgrade" token,
/// "Sec-WebSocket-Version: 13" and a Sec-WebSocket-Key that is base64 of 16 bytes. The accept value, or why not.
std::variant<std::string, handshake_refusal>
check_handshake(std::string_view method, const std::vector<std::pair<std::string, std::string>>& headers);

// --- frames ------------------------------------------------------------------------------------------------------

enum opcode : uint8_t { text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA };

/// Close codes the server sends (RFC 6455 section 7.4.1).
enum close_code : uint16_t {
  normal = 1000,
  going_away = 1001,        // the server drains, or the client went quiet (no pong within the idle time)
  protocol_error = 1002,
  policy_violation = 1008,  // no authentication in time, or a client that ignores the message rate
  message_too_big = 1009,
  internal_error = 1011,    // the connection's actor died
  try_again_later = 1013,
};

/// One WebSocket connection's frames, server side. Not thread-safe: one thread feeds it and takes its output.
class ws_codec {
public:
  /// A complete message (text and binary reassembled; ping, pong and close as they come; wslay has already queued
  /// the pong or the closing reply).
  using on_message = std::function<void(uint8_t opcode, std::string_view payload)>;

  ws_codec(uint64_t max_message_bytes, on_message message);
  ~ws_codec();
  ws_codec(const ws_codec&) = delete;
  ws_codec& operator=(const ws_codec&) = delete;

  /// Reads `size` bytes the client sent; complete messages go to the callback. Replies wslay queues are added to
  /// the output. After a protocol error a close frame (1002, 1007 or 1009) is queued and nothing more is read.
  void feed(const char* data, size_t size);
  /// Changes the cap on a message's size (for the messages not started yet).
  void set_max_message_bytes(uint64_t max);
  /// Queues a message (text or binary) or a ping; false once a close frame is queued or sent.
  bool send(uint8_t opcode, std::string_view payload);
  /// Queues a close frame (the closing handshake); false if one was already.
  bool close(uint16_t code, std::string_view reason);
  /// Takes the bytes to write to the socket.
  std::string take_output();

  /// The closing handshake is over (a close frame sent and one received), or reading stopped after an error and
  /// the close frame is out: the TCP connection can end once the output is written.
  bool finished() const;
  bool close_sent() const;
  bool close_received() const;
  /// wslay reported a failure it cannot go on from (memory): drop the connection.
  bool broken() const { return broken_; }

private:
  struct callbacks;
  void flush();

  void* ctx_ = nullptr; // wslay_event_context_ptr
  on_message message_;
  const char* input_ = nullptr;
  size_t input_left_ = 0;
  std::string output_;
  bool broken_ = false;
  bool close_handed_ = false; // a close frame was handed over: nothing after it is (RFC 6455 5.5.1)
};

// --- application messages ----------------------------------------------------------------------------------------

enum class envelope_kind { auth, chat, cancel, ping };

struct envelope {
  envelope_kind kind = envelope_kind::ping;
  std::string id;      // chat, cancel: required; ping: optional
  std::string token;   // auth
  std::string request; // chat: the request object, serialised again from the parsed document (never the bytes sent)
  bool stream = false; // chat: request.stream is true
};

struct envelope_error {
  service_error code = service_error::invalid_input;
  std::string message;
  std::string param; // the offending member, "" for the whole message
  std::string id;    // the message's id when it could be read, so the client can match the error
};

/// Longest id a client may give a message.
inline constexpr size_t max_id_bytes = 128;
/// Longest credential in an auth message.
inline constexpr size_t max_token_bytes = 8192;

/// Parses one message from a client (text of a text or binary frame) with json::parse and `max_depth`.
std::variant<envelope, envelope_error> parse_envelope(std::string_view text, size_t max_depth);

std::string ready_frame(std::string_view user_id);
/// `response` is the gateway's JSON answer, embedded as it is (it is a checked completion).
std::string completion_frame(std::string_view id, int status, std::string_view cache, std::string_view response);
/// `chunk` is one event's data, embedded as it is (sse_relay checked it is a JSON object).
std::string chunk_frame(std::string_view id, std::string_view chunk);
/// The end of a streamed chat, or of any chat the client cancelled ({"cancelled": true}).
std::string done_frame(std::string_view id, bool cancelled);
std::string pong_frame(std::string_view id);
/// An error frame from an HTTP error body ({"error": {...}}, error_mapping.hpp's shape): its error object is kept.
/// A body that is not such an object is carried as the message of an upstream_failed error.
std::string error_frame_from_body(std::string_view id, int status, std::string_view body);

// --- the gateway's stream, relayed ---------------------------------------------------------------------------------

/// Cuts the SSE bytes a streamed chat answer is written in into events. Comments (keep-alives) are dropped; the
/// data lines of an event are joined with "\n". An event over `max_event_bytes` is dropped whole (failed()).
class stream_events {
public:
  struct event {
    std::string name; // "" for message events, "error" for the gateway's error event
    std::string data;
  };

  explicit stream_events(size_t max_event_bytes = 1 << 20) : max_event_bytes_(max_event_bytes) {}
  /// Appends the complete events in `bytes` (with what was buffered before) to `out`.
  void feed(std::string_view bytes, std::vector<event>& out);
  bool failed() const { return failed_; }

private:
  std::string buffer_;
  size_t scanned_ = 0;
  size_t max_event_bytes_;
  bool failed_ = false;
};

} // namespace troupe::http::ws

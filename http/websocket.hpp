#pragma once
// The WebSocket channel (GET /ws, issue 18): chat completions, streamed or not, over one long-lived connection.
//
//   client --TCP--> connection (reactor thread) --101--> ws_channel (reactor thread: frames, pings, idle time)
//                                                          | text/binary messages           ^ frames (any thread,
//                                                          v                                | through the inbox)
//                                            ws session actor (one per connection) ---- ws_link
//                                                          | an internal request per chat
//                                                          v
//                                           the gateway's own route (POST /v1/chat/completions)
//
// Why wslay and our reactor, not libwebsockets: libwebsockets brings its own event loop, sockets and HTTP server, so
// it would have to own a second port or take over Pistache's; wslay (http/ws_protocol.hpp) is framing only and fits
// the connection layer that already frames HTTP/1.1 (http/connection.hpp): a WebSocket is a connection that
// answered 101 and from then on hands its bytes to a ws_channel. Timeouts, output bounds, the fd-reuse-safe
// delivery and the connection cap stay those of every connection.
//
// The handshake (route GET /ws): checked (ws_protocol.hpp check_handshake: 400 otherwise, with
// Sec-WebSocket-Version: 13 for another version); with an Authorization header the credential is checked first,
// exactly as on any route (401/429 over HTTP when refused); the hub opens a session (503 with Retry-After at
// ws.max_connections, 429 at ws.max_connections_per_user for the credential's user), then 101. A connection
// authenticated by a message claims its user's place then (429 error and close 1008 when there is none).
//
// The session actor (one per connection, a temporary child of the hub "ws", which is a child of the "http"
// supervisor; a session that dies closes its connection with 1011, and the hub's death takes its sessions with it):
//   - authentication: the handshake's credential, or an auth message within ws.auth_timeout_ms (else close 1008);
//     it is checked like a request's (authenticator::identify: JWT, API key, guest token, revocation, the
//     failed-authentication limit of the address);
//   - each chat is an internal request of the connection's user to the gateway's route, with the client's address
//     and X-Forwarded-For: authenticated, rate-limited, metered, cached, breaker-protected and gated exactly like a
//     POST /v1/chat/completions; a streamed answer is relayed event by event as chat.chunk frames;
//   - per connection: ws.messages_per_second with ws.burst (a message over it gets a 429 error message), at most
//     ws.max_inflight chats at once (429), at most 64 messages or 2 x ws.max_message_bytes waiting for the session
//     (close 1008: the client ignores its 429s), messages up to ws.max_message_bytes (close 1009), 16 KiB before
//     the connection is authenticated;
//   - heartbeat: a ping every ws.ping_interval_ms; nothing heard for ws.idle_timeout_ms closes with 1001; a drain
//     closes every channel with 1001.

#include "http/connection.hpp"
#include "http/router.hpp"
#include "http/ws_protocol.hpp"

#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "ops/span_queue.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace troupe::http {

class authenticator;
class responder;

/// Sends to one WebSocket connection from any thread: messages travel as outbound items to the connection's reactor
/// (never to a later connection on the same file descriptor), where its ws_channel frames them.
class ws_link {
public:
  explicit ws_link(std::weak_ptr<connection> conn) : conn_(std::move(conn)) {}

  /// Queues a text (or binary) message; false once the connection has gone.
  bool send(std::string payload, bool binary = false);
  /// Starts the closing handshake with `code`.
  void close(uint16_t code, std::string reason);
  bool gone() const;
  /// Bytes queued for the connection and not yet written.
  int64_t backlog() const;

  /// Messages the channel handed to the session and the session has not taken yet, and their bytes.
  std::atomic<int64_t> waiting{0};
  std::atomic<int64_t> waiting_bytes{0};
  /// Set by the session once the connection is authenticated: until then a message may be at most
  /// ws_channel_settings::max_anonymous_message_bytes.
  std::atomic<bool> authenticated{false};
  /// Set when the session died before its channel started: the channel closes with 1011 at once.
  std::atomic<bool> abandoned{false};

private:
  std::weak_ptr<connection> conn_;
};

struct ws_channel_settings {
  uint64_t max_message_bytes = 1 << 20;
  std::chrono::milliseconds ping_interval{30000};
  std::chrono::milliseconds idle_timeout{75000};
  std::chrono::milliseconds close_wait{2000}; // after our close frame, how long the client may take to answer it
  uint64_t max_anonymous_message_bytes = 16 * 1024; // before authentication (an auth message is a few KiB)
  int64_t max_waiting = 64;                   // messages waiting for the session before the client is dropped
  int64_t max_waiting_bytes = 2 << 20;        // and their bytes (at least max_message_bytes)
  std::function<bool()> draining;             // true: close with 1001
};

/// The reactor side of one WebSocket connection (connection.hpp upgraded_protocol).
class ws_channel : public upgraded_protocol {
public:
  /// `message` runs on the reactor thread for each text or binary message; `closed` once, when the connection ends.
  ws_channel(ws_channel_settings settings, std::shared_ptr<ws_link> link,
             std::function<void(std::string payload, bool binary)> message, std::function<void()> closed);
  ~ws_channel() override;

  void on_start(connection& c, steady_time now) override;
  void on_input(connection& c, const char* data, size_t size) override;
  void on_outbound(connection& c, outbound item) override;
  void on_tick(connection& c, steady_time now) override;
  void on_closed() override;

private:
  /// Writes what the codec produced; ends or drops the connection when the codec is done or broken.
  void after(connection& c);
  void start_close(connection& c, uint16_t code, const char* reason);

  ws_channel_settings settings_;
  std::shared_ptr<ws_link> link_;
  std::function<void(std::string, bool)> message_;
  std::function<void()> closed_;
  ws::ws_codec codec_;
  steady_time heard_{};
  steady_time pinged_{};
  std::optional<steady_time> close_sent_;
  bool over_waiting_ = false;
  bool authenticated_ = false; // the codec's cap was raised to max_message_bytes
};

/// What sessions need from the HTTP side (set once the routes exist).
struct ws_runtime {
  config::ws_settings settings;
  uint64_t max_message_bytes = 1 << 20; // min(ws.max_message_bytes, http.max_body_bytes)
  size_t max_json_depth = 64;
  std::function<void(std::shared_ptr<responder>)> chat; // the gateway's chat completions route, with its gate
  authenticator* auth = nullptr;                        // checks credentials (outlives every session)
  std::function<bool()> draining;
  std::shared_ptr<tracing::span_queue> spans; // the chats' spans (tracing.otlp_endpoint; else null)
};

/// The hub "ws": opens sessions (the cap) and supervises them. Child spec for the http supervisor.
child_spec ws_hub_child(int64_t max_connections, int64_t max_per_user, std::shared_ptr<metrics_registry> metrics);

/// GET /ws.
void add_websocket_routes(router& routes, authenticator& auth, std::shared_ptr<const ws_runtime> runtime);

} // namespace troupe::http

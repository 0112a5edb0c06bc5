#pragma once
// One HTTP/1.1 connection on a Pistache reactor thread, and the listener that owns the reactors.
//
// Pistache 0.0.5 keeps doing what it does well: the accept thread, the epoll reactor threads, the peers. Everything
// above the socket is ours (LIBRARY-NOTES.md lists why Pistache's own HTTP layer had to go: first Content-Length
// wins, quadratic header re-parsing, bodies copied a byte at a time, writes keyed by a file descriptor that may have
// been reused). A connection
//   - reads into a 64 KiB buffer and frames requests with http/http1.hpp: the body limit is known before the body is
//     read, bad framing is answered (400/413/431/...) and the connection closed, never reused;
//   - reads one request at a time: while it is being answered the socket is not read (TCP holds what a client
//     pipelines), so input never piles up in memory;
//   - writes responses itself, on its reactor thread, to its own socket. Responses produced elsewhere (actor threads)
//     travel as `outbound` items through the worker's inbox to the connection object they were meant for: a
//     response can never reach a later connection that reused the file descriptor;
//   - times out by progress, not by age: a new connection has http.header_timeout_ms to send its first request, a
//     request's head must arrive within http.header_timeout_ms of its first byte, a body may pause at most
//     http.body_timeout_ms between bytes, a kept-alive connection may idle http.keepalive_timeout_ms between requests,
//     and a response may stall (client not reading) at most http.send_timeout_ms (or its own limit, e.g. a stream's).
//     While an answer is being produced, the route's time limit applies (set_answer_deadline): an answer that has
//     not started by then is answered 504 by the server.
//   - may switch protocols: a response queued with outbound::upgrade (a 101, responder::upgrade) hands the
//     connection to an upgraded_protocol (the WebSocket channel, http/websocket.hpp), which then reads its bytes,
//     writes through write_raw and is ticked; the output bound and the stall limit stay the connection's;
//   - is closed gracefully after a final response: shutdown(SHUT_WR), then what the client still sends is read and
//     discarded for a short while, so the client reads the response instead of a reset.

#include "http/http1.hpp"
#include "http/router.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace Pistache::Tcp {
class Peer;
}

namespace troupe::http {

class connection;
class worker;
class upgraded_protocol;

using steady_time = std::chrono::steady_clock::time_point;

/// Bytes for a connection, produced on any thread and written by its reactor thread.
struct outbound {
  std::weak_ptr<connection> target;
  std::string bytes;
  bool last = false;  // the current response is complete after these bytes
  bool close = false; // close the connection once they are written
  std::chrono::milliseconds stall_limit{0}; // for this response: longest time without write progress (0 = default)
  bool resume = false; // internal: continue reading where a fairness bound stopped it
  /// Set on the bytes of a 101 response: once they are queued, the connection speaks this protocol instead of
  /// HTTP/1.1 (its input, ticks and close go to it).
  std::shared_ptr<upgraded_protocol> upgrade;
  /// >= 0: not bytes for the socket but a message for the upgraded protocol (upgraded_protocol::on_outbound), of
  /// this kind (e.g. a WebSocket opcode); `bytes` is its payload.
  int protocol_tag = -1;
};

/// A protocol a connection switched to with a 101 response (the WebSocket channel, http/websocket.hpp). Every
/// method runs on the connection's reactor thread; write through connection::write_raw, end with
/// connection::end_upgraded (or connection::close_now to drop it).
class upgraded_protocol {
public:
  virtual ~upgraded_protocol() = default;
  /// The 101 is queued; the bytes the client sent after its handshake follow as on_input.
  virtual void on_start(connection& c, steady_time now) = 0;
  virtual void on_input(connection& c, const char* data, size_t size) = 0;
  /// An item sent to the connection with protocol_tag >= 0 (from any thread; delivered here on the reactor thread).
  virtual void on_outbound(connection& c, outbound item) = 0;
  virtual void on_tick(connection& c, steady_time now) = 0;
  /// The connection is closed (by either side, or it never started): called at most once, the last call.
  virtual void on_closed() = 0;
};

/// The worker's queue of outbound items: many producers, the reactor thread consumes. An eventfd wakes the reactor
/// when the queue turns non-empty. Shared, so producers may outlive the reactor (their items are then dropped).
class inbox {
public:
  inbox();
  ~inbox();
  inbox(const inbox&) = delete;
  inbox& operator=(const inbox&) = delete;

  void push(outbound item);
  /// Takes everything queued (reactor thread).
  void take(std::vector<outbound>& out);
  int fd() const { return event_fd_; }

private:
  std::mutex mutex_;
  std::vector<outbound> items_;
  int event_fd_ = -1;
};

/// Every listener's connections together, for the process's figures (/metrics, the history).
struct connection_totals {
  std::atomic<int64_t> open{0};       // connections accepted and not yet closed
  std::atomic<uint64_t> bytes_in{0};  // read from clients
  std::atomic<uint64_t> bytes_out{0}; // written to clients
};
connection_totals& process_connection_totals();

/// Timeouts and bounds of every connection (from config::http_settings).
struct connection_limits {
  http1_limits framing;
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds send_timeout{60000};
  std::chrono::milliseconds linger{2000};
  /// A route's time limit to start its answer, unless the route sets its own (route_options::time_limit).
  std::chrono::milliseconds route_timeout{30000};
  size_t max_queued_output = 16 * 1024 * 1024; // a client this far behind a response is dropped
  int64_t max_connections = 10000;
};

/// What the server does with requests (http/server.cpp). Called on the connection's reactor thread; must not block.
class request_sink {
public:
  virtual ~request_sink() = default;
  /// A head has arrived: the largest body its route takes, or why it is refused. May set c.match for dispatch.
  virtual body_decision decide(connection& c, const request_head& head) = 0;
  /// A whole request: answer it now or later, from any thread, through a responder on `c`.
  virtual void dispatch(const std::shared_ptr<connection>& c, request_head head, std::string body) = 0;
  /// A request that cannot be served (framing, limits, timeout): answer `err` and close. `head` is null when the
  /// head never completed.
  virtual void refuse(const std::shared_ptr<connection>& c, const request_head* head, const framing_error& err) = 0;
  /// The connection is over the connection cap: the bytes of a complete response to send before closing it.
  virtual std::string over_capacity_response() = 0;
};

class connection : public std::enable_shared_from_this<connection> {
public:
  connection(worker& owner, std::shared_ptr<Pistache::Tcp::Peer> peer, std::string remote_address);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // --- any thread ---

  /// The client's address (the TCP peer; proxies are resolved above this layer).
  const std::string& remote_address() const { return remote_address_; }
  /// True once the connection is closed or the client has gone: stop producing for it.
  bool gone() const { return gone_.load(std::memory_order_acquire); }
  /// Bytes sent to this connection that have not reached the socket yet (queued or buffered).
  int64_t queued_bytes() const { return queued_.load(std::memory_order_acquire); }
  /// Sends bytes of the current response. From the reactor thread they are written at once; from any other thread
  /// they are queued to it. Dropped if the connection has closed meanwhile.
  void send(outbound item);

  // --- the reactor thread ---

  /// What the sink's decide() found, for its dispatch(): the route, the method after X-HTTP-Method-Override, and
  /// the share of the body budget the request holds (released if the connection closes before dispatch).
  router::match match;
  std::string effective_method;
  std::shared_ptr<void> reservation;

  void start(steady_time now);
  /// Answers nothing more than the response already coming (a refusal), then closes.
  void begin_refusal();
  /// Counts bytes queued for this connection outside send() (an item pushed to the inbox directly).
  void count_queued(size_t bytes) { queued_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_acq_rel); }
  void on_event(bool readable, bool writable, bool hangup);
  void on_tick(steady_time now);
  /// While the current request is answered: at `deadline`, `expired` runs once on this connection's thread (the
  /// server answers 504 there unless the answer has started); nullopt clears it. This connection's thread only.
  void set_answer_deadline(std::optional<steady_time> deadline, std::function<void()> expired);
  const connection_limits& limits() const;
  void deliver(outbound item);
  /// Closes at once (no more bytes); the sink's responders see gone().
  void close_now();
  /// Upgraded connections: queues bytes for the socket (counted against limits().max_queued_output: a client that
  /// far behind is dropped).
  void write_raw(std::string_view bytes);
  /// Upgraded connections: once what is queued is written, shut down the sending side and close (lingering).
  void end_upgraded();
  int fd() const;

private:
  enum class phase {
    reading,    // waiting for or reading a request
    answering,  // a request was handed to the sink; its response is being produced and written
    lingering,  // the final response is written, SHUT_WR done; discarding input until EOF or the linger time
    upgraded,   // after a 101: another protocol (upgraded_) reads and writes
    closed,
  };

  void pump();
  void flush_output();
  bool read_socket(size_t budget);
  void consume(const char* data, size_t size);
  void finish_response();
  void start_lingering();
  void refuse(const request_head* head, framing_error err);
  void update_interest();
  body_decision decide(const request_head& head);

  worker& owner_;
  std::shared_ptr<Pistache::Tcp::Peer> peer_;
  std::string remote_address_;
  std::shared_ptr<inbox> inbox_;
  std::atomic<bool> gone_{false};
  std::atomic<int64_t> queued_{0};

  // Reactor-thread state.
  phase phase_ = phase::reading;
  std::optional<steady_time> answer_deadline_;
  std::function<void()> answer_expired_;
  http1_parser parser_;
  std::string pending_in_; // read but not yet parsed (the start of a pipelined request)
  std::string out_;        // written to the socket from out_offset_ on
  size_t out_offset_ = 0;
  bool response_done_ = false;   // the current response's last bytes have been delivered
  bool close_after_ = false;     // close once the current response is written
  bool client_done_ = false;     // the client shut its sending side (EOF)
  bool refused_ = false;         // a refusal is being answered: nothing more is parsed
  bool streaming_ = false;       // part of the current response has been delivered, more is to come
  bool first_request_ = true;
  bool pumping_ = false;
  bool pump_again_ = false;
  bool read_more_ = false;       // the socket may hold more input (a fairness bound stopped reading)
  unsigned interest_ = 0;
  steady_time idle_since_{};     // reading, no byte of a request yet
  steady_time head_since_{};     // reading a head: since its first byte
  steady_time body_progress_{};  // reading a body: last byte
  steady_time write_progress_{}; // output pending: last progress
  steady_time linger_since_{};
  std::chrono::milliseconds stall_limit_{0};
  size_t discarded_ = 0;
  std::shared_ptr<upgraded_protocol> upgraded_;
  void start_upgrade(outbound item);
  /// Appends bytes for the socket (not counted: the caller counts them in queued_).
  void append_output(std::string bytes);
};

/// The connections of one reactor thread.
class worker {
public:
  worker(std::shared_ptr<request_sink> sink, std::shared_ptr<const connection_limits> limits,
         std::shared_ptr<std::atomic<int64_t>> open_connections);

  request_sink& sink() { return *sink_; }
  const connection_limits& limits() const { return *limits_; }
  const std::shared_ptr<inbox>& queue() const { return inbox_; }
  /// A shared read buffer (one per reactor thread).
  std::vector<char>& read_buffer() { return read_buffer_; }

  // Called by the transport (reactor thread).
  void adopt(const std::shared_ptr<Pistache::Tcp::Peer>& peer);
  void on_peer_event(int fd, bool readable, bool writable, bool hangup);
  void on_inbox();
  void on_tick();
  bool owns(int fd) const { return connections_.count(fd) != 0; }

  /// Forgets a connection and closes its socket (through the transport, which unregisters it).
  void remove(connection& c);
  /// Sets a connection's epoll interest (Pistache's Polling::NotifyOn bits).
  void set_interest(int fd, unsigned interest);

  std::function<void(int fd)> close_peer;                  // set by the transport
  std::function<void(int fd, unsigned interest)> modify_fd; // set by the transport

private:
  std::shared_ptr<request_sink> sink_;
  std::shared_ptr<const connection_limits> limits_;
  std::shared_ptr<std::atomic<int64_t>> open_connections_;
  std::shared_ptr<inbox> inbox_;
  std::unordered_map<int, std::shared_ptr<connection>> connections_;
  std::vector<outbound> batch_;
  std::vector<char> read_buffer_;
  std::vector<std::shared_ptr<connection>> ticking_;
};

/// The Pistache listener (accept thread + reactor threads) serving HTTP/1.1 to a sink.
class http_listener {
public:
  http_listener(std::shared_ptr<request_sink> sink, std::shared_ptr<const connection_limits> limits);
  ~http_listener();

  /// Binds and serves on `threads` reactor threads; returns the bound port. Throws std::runtime_error on failure.
  uint16_t start(const std::string& address, uint16_t port, size_t threads);
  /// Stops accepting and closes every connection.
  void stop();

private:
  struct impl;
  std::shared_ptr<request_sink> sink_;
  std::shared_ptr<const connection_limits> limits_;
  std::shared_ptr<std::atomic<int64_t>> open_connections_;
  std::unique_ptr<impl> impl_;
};

} // namespace troupe::http

// The upstream client (actors/upstream_client.hpp) against a scripted HTTP/1.1 server on loopback: plain and
// POST answers, keep-alive reuse, each timeout, the size cap, streamed pieces handed over as they arrive, aborts
// from the consumer, broken and refused connections, many concurrent calls through upstream_clients::call, and
// every in-flight transfer answered when the client stops.
//
// The server runs a thread per connection; its only sleeps are the scripted delays, and those wake at once when the
// server stops. The test waits on replies and promises, each with a bound.

#include "actors/upstream_client.hpp"
#include "introspect/messages.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <list>
#include <mutex>
#include <thread>

namespace troupe::client {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto reply_bound = 10s; // how long any single wait in this file may take before the test fails

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

/// A TCP socket bound to a free loopback port (not listening: connections to it are refused); -1 on failure.
int bind_loopback(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto addr = loopback(0);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

int listen_on_loopback(int backlog, uint16_t& port) {
  int fd = bind_loopback(port);
  if (fd >= 0 && ::listen(fd, backlog) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// A gate one side opens and the other waits on, with a bound.
class gate {
public:
  void open() {
    std::lock_guard<std::mutex> lock{mutex_};
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> lock{mutex_};
    return cv_.wait_for(lock, bound, [&] { return open_; });
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// A minimal HTTP/1.1 server with scripted paths, keep-alive, and a count of accepted connections.
///   /ok              200 "hello"                 /echo     200 with the request body, X-Echo = request X-Test
///   /redirect        302 to /ok
///   /slow-headers    headers after 2 s           /drip     100-byte body, one byte per 50 ms
///   /big             1 MiB body                  /truncated  Content-Length 100, 10 bytes, then close
///   /sse             chunked: piece one, waits for release_second(), piece two, end
///   /sse-abort       chunked: piece one, then waits for the client to close (see client_closed())
///   /hang            nothing until the server stops
///   /gather          200 "hello" once gather_target() /gather requests are held at once (or after half the bound)
class test_server {
public:
  test_server() {
    listener_ = listen_on_loopback(128, port_);
    acceptor_ = std::thread{[this] { accept_loop(); }};
  }

  ~test_server() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      stopping_ = true;
      for (int fd : open_fds_)
        ::shutdown(fd, SHUT_RDWR);
    }
    stop_cv_.notify_all();
    gather_cv_.notify_all();
    second_piece_.open();
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    ::close(listener_);
    for (auto& t : connections_)
      t.join();
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  size_t accepted() const { return accepted_.load(); }
  void release_second() { second_piece_.open(); }
  /// Whether /sse waited for release_second() (false: it gave up after the bound and sent the piece anyway).
  bool second_was_released() const { return second_released_.load(); }
  /// Waits (bounded) until a /hang request holds its connection.
  bool wait_hanging() { return hanging_.wait(reply_bound); }
  /// How many /gather requests are held until all are answered; the most held at once so far.
  void gather_target(size_t n) { gather_target_ = n; }
  size_t most_gathered() const { return most_gathered_.load(); }
  /// Resolves once /sse-abort saw its client close the connection (true) or gave up waiting (false).
  std::future<bool> client_closed() { return client_closed_.get_future(); }

private:
  struct request {
    std::string method, path, body, x_test;
  };

  void accept_loop() {
    for (;;) {
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0)
        return;
      std::lock_guard<std::mutex> lock{mutex_};
      if (stopping_) {
        ::close(fd);
        return;
      }
      ++accepted_;
      open_fds_.push_back(fd);
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  /// Sleeps up to `d`; false if the server is stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock{mutex_};
    return !stop_cv_.wait_for(lock, d, [&] { return stopping_; });
  }

  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  static std::string chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return std::string{size} + std::string{data} + "\r\n";
  }

  /// Reads one request (head and Content-Length body); false when the connection ended first.
  static bool read_request(int fd, std::string& buffer, request& out) {
    char data[4096];
    size_t head_end;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      auto n = ::recv(fd, data, sizeof(data), 0);
      if (n <= 0)
        return false;
      buffer.append(data, static_cast<size_t>(n));
    }
    std::string head = buffer.substr(0, head_end);
    buffer.erase(0, head_end + 4);
    auto first_space = head.find(' ');
    auto second_space = head.find(' ', first_space + 1);
    out.method = head.substr(0, first_space);
    out.path = head.substr(first_space + 1, second_space - first_space - 1);
    size_t content_length = 0;
    for (size_t pos = head.find("\r\n"); pos != std::string::npos;) {
      auto next = head.find("\r\n", pos + 2);
      auto line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      auto lower = line;
      for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower.rfind("content-length:", 0) == 0)
        content_length = std::stoul(line.substr(15));
      if (lower.rfind("x-test:", 0) == 0)
        out.x_test = line.substr(line.find_first_not_of(' ', 7));
      pos = next;
    }
    while (buffer.size() < content_length) {
      auto n = ::recv(fd, data, sizeof(data), 0);
      if (n <= 0)
        return false;
      buffer.append(data, static_cast<size_t>(n));
    }
    out.body = buffer.substr(0, content_length);
    buffer.erase(0, content_length);
    return true;
  }

  static std::string head(size_t content_length, const std::string& extra = "") {
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(content_length) + "\r\n" + extra + "\r\n";
  }

  /// Answers one request; false to close the connection.
  bool answer(int fd, const request& req) {
    if (req.path == "/ok")
      return send_all(fd, head(5, "Content-Type: text/plain\r\n") + "hello");
    if (req.path == "/echo")
      return send_all(fd, head(req.body.size(), "X-Echo: " + req.x_test + "\r\nX-Method: " + req.method + "\r\n")
                            + req.body);
    if (req.path == "/redirect")
      return send_all(fd, "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n");
    if (req.path == "/slow-headers")
      return pause(2000ms) && send_all(fd, head(5) + "late!");
    if (req.path == "/drip") {
      if (!send_all(fd, head(100)))
        return false;
      for (int i = 0; i < 100; ++i)
        if (!pause(50ms) || !send_all(fd, "x"))
          return false;
      return true;
    }
    if (req.path == "/big")
      return send_all(fd, head(1 << 20) + std::string(1 << 20, 'b'));
    if (req.path == "/truncated") {
      send_all(fd, head(100) + "0123456789");
      return false;
    }
    if (req.path == "/sse" || req.path == "/sse-abort") {
      std::string sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
      if (!send_all(fd, sse_head + chunk("data: one\n\n")))
        return false;
      if (req.path == "/sse-abort") {
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char byte;
        auto n = ::recv(fd, &byte, 1, 0);
        client_closed_.set_value(n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK));
        return false;
      }
      second_released_ = second_piece_.wait(reply_bound);
      return send_all(fd, chunk("data: two\n\n") + chunk(""));
    }
    if (req.path == "/gather") {
      std::unique_lock<std::mutex> lock{mutex_};
      ++gathered_;
      most_gathered_ = std::max(most_gathered_.load(), gathered_);
      gather_cv_.notify_all();
      gather_cv_.wait_for(lock, reply_bound / 2, [&] { return most_gathered_.load() >= gather_target_ || stopping_; });
      lock.unlock();
      return send_all(fd, head(5, "Content-Type: text/plain\r\n") + "hello");
    }
    if (req.path == "/hang") {
      hanging_.open();
      pause(60s);
      return false;
    }
    return send_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  }

  void serve(int fd) {
    std::string buffer;
    request req;
    while (read_request(fd, buffer, req) && answer(fd, req)) {
    }
    std::lock_guard<std::mutex> lock{mutex_};
    ::shutdown(fd, SHUT_RDWR);
    open_fds_.remove(fd);
    ::close(fd);
  }

  uint16_t port_ = 0;
  int listener_ = -1;
  std::thread acceptor_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::list<int> open_fds_;
  std::list<std::thread> connections_;
  std::atomic<size_t> accepted_{0};
  size_t gathered_ = 0; // under mutex_
  std::atomic<size_t> gather_target_{1};
  std::atomic<size_t> most_gathered_{0};
  std::condition_variable gather_cv_;
  gate second_piece_;
  gate hanging_;
  std::atomic<bool> second_released_{false};
  std::promise<bool> client_closed_;
};

class upstream_client_test : public ::testing::Test {
protected:
  void SetUp() override {
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    upstream_client_options options;
    options.bell = bell_;
    client_ = spawn_upstream_client(*sys_, options);
  }

  void TearDown() override {
    if (client_)
      caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
    bell_->ring(); // the client notices the exit now rather than after its idle_poll
    client_ = nullptr;
    sys_.reset(); // waits for every actor, so a client that does not stop hangs the test here
  }

  upstream_request get(const std::string& path) {
    upstream_request req;
    req.url = server_.url(path);
    return req;
  }

  /// Sends the request from a scoped actor, rings the doorbell and waits (bounded) for the answer.
  upstream_response fetch(upstream_request req) {
    caf::scoped_actor self{*sys_};
    upstream_response out;
    out.error_text = "no answer";
    auto handle = self->request(client_, caf::duration{reply_bound}, upstream_call_atom::value, std::move(req));
    bell_->ring();
    handle.receive([&](upstream_response& r) { out = std::move(r); },
                   [&](caf::error& e) { ADD_FAILURE() << "request failed: " << sys_->render(e); });
    return out;
  }

  test_server server_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<doorbell> bell_ = std::make_shared<doorbell>();
  upstream_client_actor client_;
};

// A complete 200 arrives with its status, lower-cased headers, body and byte count.
TEST_F(upstream_client_test, GetReturnsStatusHeadersAndBody) {
  auto r = fetch(get("/ok"));
  EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.body_bytes, 5u);
  EXPECT_EQ(r.header("content-type"), "text/plain");
  EXPECT_EQ(r.header("content-length"), "5");
  EXPECT_FALSE(r.header("Content-Type")); // names are stored lower-cased
  EXPECT_GT(r.elapsed.count(), 0);
}

// A body makes it a POST; the request headers reach the server.
TEST_F(upstream_client_test, PostSendsBodyAndHeaders) {
  auto req = get("/echo");
  req.body = std::string(5000, 'p') + "{\"model\":\"m\"}";
  req.headers = {"X-Test: secret-value", "Content-Type: application/json"};
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_EQ(r.header("x-method"), "POST");
  EXPECT_EQ(r.header("x-echo"), "secret-value");
  EXPECT_EQ(r.body, req.body);
}

// Sequential calls to one upstream share one kept-alive connection.
TEST_F(upstream_client_test, KeepAliveReusesTheConnection) {
  std::vector<upstream_response> answers;
  for (int i = 0; i < 3; ++i)
    answers.push_back(fetch(get("/ok")));
  for (const auto& r : answers)
    EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_EQ(server_.accepted(), 1u);
  EXPECT_FALSE(answers[0].reused_connection);
  EXPECT_TRUE(answers[1].reused_connection);
  EXPECT_TRUE(answers[2].reused_connection);
}

// Redirects are answered as they are (never followed), and only http/https URLs are fetched.
TEST_F(upstream_client_test, RedirectsAreNotFollowedAndOnlyHttpIsAllowed) {
  auto r = fetch(get("/redirect"));
  EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("location"), "/ok");
  upstream_request file;
  file.url = "file:///etc/hostname";
  r = fetch(file);
  EXPECT_EQ(r.error, transfer_error::connect) << r.error_text;
  EXPECT_TRUE(r.body.empty());
}

// Headers that do not arrive within first_byte_timeout end the transfer long before the server's 2 s delay.
TEST_F(upstream_client_test, FirstByteTimeoutFires) {
  auto req = get("/slow-headers");
  req.first_byte_timeout = 200ms;
  auto started = clock_type::now();
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::first_byte_timeout) << r.error_text;
  EXPECT_LT(clock_type::now() - started, 1500ms);
  EXPECT_NE(r.error_text.find("200 ms"), std::string::npos) << r.error_text;
}

// A body that trickles in past total_timeout ends with total_timeout (headers arrived, so not a connect timeout).
TEST_F(upstream_client_test, TotalTimeoutFiresWhileTheBodyDrips) {
  auto req = get("/drip");
  req.total_timeout = 300ms;
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::total_timeout) << r.error_text;
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(r.body_bytes, 100u);
}

// A stream that goes silent ends with idle_timeout once idle_timeout passes without a byte, whatever its age.
TEST_F(upstream_client_test, IdleTimeoutEndsASilentStream) {
  auto req = get("/sse-abort"); // one piece, then nothing
  req.total_timeout = 0ms;
  req.idle_timeout = 300ms;
  size_t pieces = 0;
  req.on_data = [&](int, const auto&, std::string_view) {
    ++pieces;
    return true;
  };
  auto started = clock_type::now();
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::idle_timeout) << r.error_text;
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(pieces, 1u);
  EXPECT_GE(clock_type::now() - started, 300ms);
  EXPECT_LT(clock_type::now() - started, 5s);
  EXPECT_NE(r.error_text.find("300 ms"), std::string::npos) << r.error_text;
}

// A body that keeps arriving is never cut by the idle timeout, however long it takes in all (no total timeout).
TEST_F(upstream_client_test, ProgressKeepsAStreamAlive) {
  auto req = get("/drip"); // 100 bytes, one per 50 ms: 5 s in all
  req.total_timeout = 0ms;
  req.idle_timeout = 1000ms;
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_EQ(r.body.size(), 100u);
}

// A body larger than max_response_bytes is cut off with too_large.
TEST_F(upstream_client_test, BodyOverTheCapIsTooLarge) {
  auto req = get("/big");
  req.max_response_bytes = 64 * 1024;
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::too_large) << r.error_text;
  EXPECT_LE(r.body_bytes, 64u * 1024);
  EXPECT_NE(r.error_text.find("65536 bytes"), std::string::npos) << r.error_text;
}

// A body just under the cap passes.
TEST_F(upstream_client_test, BodyAtTheCapPasses) {
  auto req = get("/big");
  req.max_response_bytes = 1 << 20;
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_EQ(r.body.size(), size_t{1} << 20);
}

// Streamed pieces reach on_data as they arrive: the server only sends the second piece after on_data saw the first.
TEST_F(upstream_client_test, StreamedPiecesArriveBeforeTheNextIsSent) {
  auto req = get("/sse");
  std::string streamed; // touched on the client's thread only until the reply arrives
  int seen_status = 0;
  size_t calls = 0;
  req.on_data = [&](int status, const std::vector<std::pair<std::string, std::string>>& headers,
                    std::string_view data) {
    seen_status = status;
    EXPECT_FALSE(headers.empty());
    streamed += data;
    ++calls;
    if (streamed == "data: one\n\n")
      server_.release_second(); // the server holds "two" back until now
    return true;
  };
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
  EXPECT_TRUE(server_.second_was_released());
  EXPECT_EQ(seen_status, 200);
  EXPECT_GE(calls, 2u);
  EXPECT_EQ(streamed, "data: one\n\ndata: two\n\n");
  EXPECT_TRUE(r.body.empty()); // streamed, not accumulated
  EXPECT_EQ(r.body_bytes, 22u);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
}

// on_data returning false aborts the transfer, and the upstream sees its connection closed.
TEST_F(upstream_client_test, OnDataFalseAbortsAndClosesTheConnection) {
  auto closed = server_.client_closed();
  auto req = get("/sse-abort");
  req.on_data = [](int, const auto&, std::string_view) { return false; };
  auto r = fetch(req);
  EXPECT_EQ(r.error, transfer_error::aborted) << r.error_text;
  ASSERT_EQ(closed.wait_for(reply_bound), std::future_status::ready);
  EXPECT_TRUE(closed.get());
}

// An upstream that closes mid-body broke the protocol.
TEST_F(upstream_client_test, ConnectionClosedMidBodyIsProtocol) {
  auto r = fetch(get("/truncated"));
  EXPECT_EQ(r.error, transfer_error::protocol) << r.error_text;
  EXPECT_EQ(r.status, 200);
}

// Nothing listening: connect.
TEST_F(upstream_client_test, RefusedConnectionIsConnect) {
  uint16_t port = 0;
  int fd = bind_loopback(port); // bound but not listening: refused while we hold the port
  ASSERT_GE(fd, 0);
  upstream_request req;
  req.url = "http://user:hunter2@127.0.0.1:" + std::to_string(port) + "/";
  auto r = fetch(req);
  ::close(fd);
  EXPECT_EQ(r.error, transfer_error::connect) << r.error_text;
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.reused_connection);
  EXPECT_EQ(r.error_text.find("hunter2"), std::string::npos) << r.error_text;
}

// A listener whose accept queue is full drops the SYN: the connect does not finish within connect_timeout.
TEST_F(upstream_client_test, UnansweredConnectIsConnectTimeout) {
  uint16_t port = 0;
  int listener = listen_on_loopback(0, port);
  ASSERT_GE(listener, 0);
  // Fill the accept queue (never accepted) so that further SYNs are dropped.
  std::vector<int> fillers;
  auto addr = loopback(port);
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  upstream_request req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  req.connect_timeout = 300ms;
  auto r = fetch(req);
  for (int fd : fillers)
    ::close(fd);
  ::close(listener);
  EXPECT_EQ(r.error, transfer_error::connect_timeout) << r.error_text;
}

// 50 calls made at once from one actor through upstream_clients::call all complete, and they run concurrently: the
// server holds every /gather request until all 50 are in flight at once, on 50 connections.
TEST_F(upstream_client_test, FiftyConcurrentCallsComplete) {
  server_.gather_target(50);
  auto names = std::make_shared<directory>();
  names->put(upstream_clients::client_name(0), client_);
  auto clients = std::make_shared<upstream_clients>(names, std::vector<std::shared_ptr<doorbell>>{bell_});
  std::promise<std::vector<upstream_response>> done;
  auto result = done.get_future();
  auto url = server_.url("/gather");
  sys_->spawn([&done, clients, url](caf::event_based_actor* self) {
    auto answers = std::make_shared<std::vector<upstream_response>>();
    for (int i = 0; i < 50; ++i) {
      upstream_request req;
      req.url = url;
      clients->call(self, std::move(req), [&done, answers](upstream_response& r) {
        answers->push_back(std::move(r));
        if (answers->size() == 50)
          done.set_value(std::move(*answers));
      });
    }
  });
  ASSERT_EQ(result.wait_for(reply_bound), std::future_status::ready);
  auto answers = result.get();
  ASSERT_EQ(answers.size(), 50u);
  for (const auto& r : answers) {
    EXPECT_EQ(r.error, transfer_error::none) << r.error_text;
    EXPECT_EQ(r.body, "hello");
  }
  EXPECT_EQ(server_.most_gathered(), 50u) << "the calls did not all run at once";
  EXPECT_EQ(server_.accepted(), 50u);
}

// With no client in the directory, or a dead one, call() answers aborted with an explanation.
TEST_F(upstream_client_test, CallWithoutARunningClientIsAborted) {
  auto names = std::make_shared<directory>();
  auto clients = std::make_shared<upstream_clients>(names, std::vector<std::shared_ptr<doorbell>>{bell_});
  std::promise<upstream_response> missing_answer, dead_answer;
  auto missing = missing_answer.get_future();
  auto dead = dead_answer.get_future();
  auto url = server_.url("/ok");
  // Missing from the directory.
  sys_->spawn([&missing_answer, clients, url](caf::event_based_actor* self) {
    upstream_request req;
    req.url = url;
    clients->call(self, std::move(req), [&missing_answer](upstream_response& r) { missing_answer.set_value(r); });
  });
  ASSERT_EQ(missing.wait_for(reply_bound), std::future_status::ready);
  auto r = missing.get();
  EXPECT_EQ(r.error, transfer_error::aborted);
  EXPECT_NE(r.error_text.find("restarting"), std::string::npos) << r.error_text;
  // In the directory but dead.
  auto gone = spawn_upstream_client(*sys_, upstream_client_options{});
  {
    caf::scoped_actor self{*sys_};
    self->monitor(gone);
    self->send_exit(gone, caf::exit_reason::kill);
    self->receive([](caf::down_msg&) {});
  }
  names->put(upstream_clients::client_name(0), gone);
  sys_->spawn([&dead_answer, clients, url](caf::event_based_actor* self) {
    upstream_request req;
    req.url = url;
    clients->call(self, std::move(req), [&dead_answer](upstream_response& r) { dead_answer.set_value(r); });
  });
  ASSERT_EQ(dead.wait_for(reply_bound), std::future_status::ready);
  r = dead.get();
  EXPECT_EQ(r.error, transfer_error::aborted);
  EXPECT_NE(r.error_text.find("restarting"), std::string::npos) << r.error_text;
}

// Stopping the client (as its supervisor does at shutdown) answers an in-flight transfer with aborted, and the
// actor system then shuts down without hanging.
TEST_F(upstream_client_test, StoppingTheClientAbortsTransfersInFlight) {
  auto names = std::make_shared<directory>();
  names->put(upstream_clients::client_name(0), client_);
  auto clients = std::make_shared<upstream_clients>(names, std::vector<std::shared_ptr<doorbell>>{bell_});
  std::promise<upstream_response> answer;
  auto result = answer.get_future();
  gate sent;
  auto url = server_.url("/hang");
  sys_->spawn([&answer, &sent, clients, url](caf::event_based_actor* self) {
    upstream_request req;
    req.url = url;
    clients->call(self, std::move(req), [&answer](upstream_response& r) { answer.set_value(r); });
    sent.open();
  });
  ASSERT_TRUE(sent.wait(reply_bound));
  ASSERT_TRUE(server_.wait_hanging()); // the transfer is truly in flight
  caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
  ASSERT_EQ(result.wait_for(reply_bound), std::future_status::ready);
  auto r = result.get();
  EXPECT_EQ(r.error, transfer_error::aborted);
  EXPECT_NE(r.error_text.find("stopped"), std::string::npos) << r.error_text;
  bell_->ring(); // the stopped client detached its doorbell: ringing now is harmless
  names->erase(upstream_clients::client_name(0), client_); // as the supervisor does: the last reference goes
  auto started = clock_type::now();
  client_ = nullptr;
  sys_.reset();
  EXPECT_LT(clock_type::now() - started, reply_bound);
}

// The mailbox watch (actors/ops.hpp) asks every named actor for its backlog; the client answers with a size
// instead of printing "unexpected message" and replying with an error.
TEST_F(upstream_client_test, AnswersTheMailboxWatch) {
  caf::scoped_actor self{*sys_};
  auto handle = self->request(client_, caf::duration{reply_bound}, mailbox_atom::value);
  bell_->ring();
  bool answered = false;
  handle.receive([&](size_t queued) { answered = queued < 1000; },
                 [&](caf::error& e) { ADD_FAILURE() << "mailbox request failed: " << sys_->render(e); });
  EXPECT_TRUE(answered);
}

} // namespace
} // namespace troupe::client

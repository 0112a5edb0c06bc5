// Streamed responses (http/server.hpp, response_stream) over a real Pistache endpoint on loopback: chunks leave as
// they are written from another thread (the client sees the first before the second is produced), the stream ends
// with the terminating chunk, the connection is reused for the next request, and a client that goes away makes
// write() return false.

#include "http/server.hpp"

#include "config/loader.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

namespace troupe::http {
namespace {

config::settings test_settings() {
  auto loaded = config::load({}, [](const std::string&) { return std::optional<std::string>{}; });
  auto s = std::get<config::settings>(loaded);
  s.http.address = "127.0.0.1";
  s.http.port = 0;
  s.http.threads = 1;
  s.log.request_sample = 0;
  return s;
}

/// A blocking loopback client with a receive timeout, enough to read chunked bodies by hand.
class client {
public:
  explicit client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~client() { close(); }
  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  void send(const std::string& text) { ASSERT_EQ(::write(fd_, text.data(), text.size()), ssize_t(text.size())); }
  /// Reads until `marker` has arrived (or timeout/EOF); returns everything read so far.
  std::string read_until(const std::string& marker) {
    char buf[4096];
    while (received_.find(marker) == std::string::npos) {
      auto n = ::read(fd_, buf, sizeof(buf));
      if (n <= 0)
        break;
      received_.append(buf, static_cast<size_t>(n));
    }
    return received_;
  }
  void forget() { received_.clear(); }

private:
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

struct stream_fixture : ::testing::Test {
  std::shared_ptr<router> routes = std::make_shared<router>();
  std::shared_ptr<server_state> state;
  std::unique_ptr<server> srv;
  uint16_t port = 0;

  void start() {
    auto s = test_settings();
    state = std::make_shared<server_state>(s, routes, std::make_shared<metrics_registry>());
    srv = std::make_unique<server>(s, state);
    port = srv->start();
  }
  void TearDown() override {
    if (srv)
      srv->stop();
  }
};

TEST_F(stream_fixture, ChunksLeaveAsWrittenAndTheConnectionIsReused) {
  std::promise<void> first_seen;
  auto first_seen_future = first_seen.get_future().share();
  routes->add("GET", "/stream", [first_seen_future](const std::shared_ptr<responder>& r) {
    response head;
    head.content_type = "text/event-stream";
    head.header("Cache-Control", "no-cache");
    auto out = r->stream(std::move(head));
    ASSERT_TRUE(out);
    std::thread{[out, first_seen_future] {
      out->write("data: one\n\n");
      // The second chunk is produced only after the client has read the first: nothing is buffered.
      first_seen_future.wait_for(std::chrono::seconds{5});
      out->write("data: two\n\n");
      out->end();
    }}.detach();
  });
  routes->add("GET", "/plain", [](const std::shared_ptr<responder>& r) { r->send(json_response(200, "{}")); });
  start();

  client c{port};
  ASSERT_TRUE(c.connected());
  c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto text = c.read_until("data: one\n\n");
  EXPECT_NE(text.find("HTTP/1.1 200"), std::string::npos) << text;
  EXPECT_NE(text.find("Transfer-Encoding: chunked"), std::string::npos) << text;
  EXPECT_NE(text.find("Content-Type: text/event-stream"), std::string::npos) << text;
  EXPECT_NE(text.find("X-Request-Id:"), std::string::npos) << text;
  EXPECT_EQ(text.find("data: two"), std::string::npos) << "the second chunk arrived before it was written";
  first_seen.set_value();
  text = c.read_until("\r\n0\r\n\r\n");
  EXPECT_NE(text.find("data: two\n\n"), std::string::npos) << text;
  ASSERT_NE(text.find("\r\n0\r\n\r\n"), std::string::npos) << "no terminating chunk: " << text;

  // Keep-alive: the same connection serves the next request.
  c.forget();
  c.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
  text = c.read_until("{}");
  EXPECT_NE(text.find("HTTP/1.1 200"), std::string::npos) << text;
  EXPECT_EQ(state->in_flight(), 0);
}

TEST_F(stream_fixture, WriteReportsAClientThatWentAway) {
  std::promise<std::shared_ptr<response_stream>> opened;
  auto opened_future = opened.get_future();
  routes->add("GET", "/stream", [&opened](const std::shared_ptr<responder>& r) {
    response head;
    head.content_type = "text/event-stream";
    auto out = r->stream(std::move(head));
    out->write(": hello\n\n");
    opened.set_value(out);
  });
  start();
  std::shared_ptr<response_stream> out;
  {
    client c{port};
    c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_until(": hello");
    ASSERT_EQ(opened_future.wait_for(std::chrono::seconds{5}), std::future_status::ready);
    out = opened_future.get();
  }
  // The reactor notices the closed socket and drops the peer; writes then fail instead of piling up.
  bool open = true;
  for (int i = 0; i < 500 && open; ++i) {
    open = out->write("data: x\n\n");
    if (open)
      std::this_thread::sleep_for(std::chrono::milliseconds{10}); // bounded: waits for the reactor, not a reply
  }
  EXPECT_FALSE(open);
  out->end();
  EXPECT_EQ(state->in_flight(), 0);
}

TEST_F(stream_fixture, AnsweredRequestsCannotStream) {
  routes->add("GET", "/x", [](const std::shared_ptr<responder>& r) {
    r->send(json_response(200, "{\"a\":1}"));
    EXPECT_EQ(r->stream(response{}), nullptr);
  });
  start();
  client c{port};
  c.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.read_until("{\"a\":1}").find("{\"a\":1}"), std::string::npos);
}

} // namespace
} // namespace troupe::http

// Connections (http/connection.hpp) over real loopback sockets: requests answered in order, bad framing answered
// and the connection closed (nothing after it is parsed), limits decided before bodies are read, timeouts counted
// by progress, responses that reach only the connection they were meant for, slow readers dropped.

#include "test_server.hpp"

#include "http/error_mapping.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace troupe::http {
namespace {

using namespace std::chrono_literals;
using testing::header_of;
using testing::raw_client;
using testing::server_fixture;

/// Answers responders later, from another thread (as an actor would), after `delay`.
class late_answerer {
public:
  explicit late_answerer(std::chrono::milliseconds delay) : delay_(delay), thread_([this] { run(); }) {}
  ~late_answerer() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  void add(std::shared_ptr<responder> r) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      queue_.emplace_back(std::chrono::steady_clock::now() + delay_, std::move(r));
    }
    changed_.notify_all();
  }

private:
  void run() {
    std::unique_lock<std::mutex> guard{mutex_};
    while (!stop_ || !queue_.empty()) {
      if (queue_.empty()) {
        changed_.wait(guard);
        continue;
      }
      auto [when, r] = queue_.front();
      if (std::chrono::steady_clock::now() < when && !stop_) {
        changed_.wait_until(guard, when);
        continue;
      }
      queue_.pop_front();
      guard.unlock();
      r->send(json_response(200, "{\"id\":\"" + r->req().id + "\"}"));
      r.reset();
      guard.lock();
    }
  }

  std::chrono::milliseconds delay_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::shared_ptr<responder>>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

void add_echo(router& routes) {
  routes.add("POST", "/echo", [](const std::shared_ptr<responder>& r) {
    r->send(json_response(200, "{\"bytes\":" + std::to_string(r->req().body.size()) + "}"));
  });
  routes.add("GET", "/id", [](const std::shared_ptr<responder>& r) {
    r->send(json_response(200, "{\"id\":\"" + r->req().id + "\"}"));
  });
}

// Pipelined requests on one connection are answered in order, each once.
TEST_F(server_fixture, AnswersPipelinedRequestsInOrder) {
  late_answerer later{30ms};
  add_echo(*routes);
  routes->add("GET", "/later", [&later](const std::shared_ptr<responder>& r) { later.add(r); });
  start();
  raw_client c{port};
  c.send("GET /later HTTP/1.1\r\nHost: a\r\nX-Request-Id: one\r\n\r\n"
         "POST /echo HTTP/1.1\r\nHost: a\r\nX-Request-Id: two\r\nContent-Length: 3\r\n\r\nabc"
         "GET /id HTTP/1.1\r\nHost: a\r\nX-Request-Id: three\r\n\r\n");
  auto first = c.read_response();
  auto second = c.read_response();
  auto third = c.read_response();
  EXPECT_EQ(header_of(first, "X-Request-Id"), "one") << first;
  EXPECT_EQ(header_of(second, "X-Request-Id"), "two") << second;
  EXPECT_NE(second.find("{\"bytes\":3}"), std::string::npos) << second;
  EXPECT_EQ(header_of(third, "X-Request-Id"), "three") << third;
}

// A body over the route's limit is refused from its Content-Length, before a byte of it is sent, and the
// connection is closed.
TEST_F(server_fixture, RefusesALargeBodyBeforeItIsSent) {
  settings.http.max_body_bytes = 1000;
  add_echo(*routes);
  start();
  raw_client c{port};
  c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 6000000\r\n\r\n");
  auto text = c.read_until("}}");
  EXPECT_EQ(text.rfind("HTTP/1.1 413 ", 0), 0u) << text;
  EXPECT_NE(text.find("payload_too_large"), std::string::npos) << text;
  EXPECT_NE(text.find("Connection: close"), std::string::npos) << text;
  EXPECT_TRUE(c.read_to_close());
  EXPECT_EQ(state->body_bytes_held(), 0);
}

// Framing two parsers could read differently is answered with 400 and the connection closed: the request hidden
// behind it is never served (no smuggling, no desync).
TEST_F(server_fixture, RefusesAmbiguousFramingAndParsesNothingAfter) {
  std::atomic<int> secret_served{0};
  add_echo(*routes);
  routes->add("GET", "/secret", [&](const std::shared_ptr<responder>& r) {
    ++secret_served;
    r->send(json_response(200, "{}"));
  });
  start();
  const std::string smuggled = "GET /secret HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string attempts[] = {
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc",
    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "GET /id HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
  };
  for (const auto& attempt : attempts) {
    raw_client c{port};
    c.send(attempt + smuggled);
    EXPECT_TRUE(c.read_to_close()) << attempt;
    const auto& text = c.received();
    EXPECT_TRUE(text.rfind("HTTP/1.1 400 ", 0) == 0 || text.rfind("HTTP/1.1 501 ", 0) == 0) << text;
    EXPECT_EQ(text.find("HTTP/1.1", 5), std::string::npos) << "a second response: " << text;
  }
  EXPECT_EQ(secret_served.load(), 0);
}

// A head over http.max_header_bytes gets 431 and the connection closes.
TEST_F(server_fixture, RefusesALargeHead) {
  settings.http.max_header_bytes = 2048;
  add_echo(*routes);
  start();
  raw_client c{port};
  c.send("GET /id HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4000, 'x') + "\r\n\r\n");
  EXPECT_TRUE(c.read_to_close());
  EXPECT_EQ(c.received().rfind("HTTP/1.1 431 ", 0), 0u) << c.received();
  EXPECT_NE(c.received().find("headers_too_large"), std::string::npos);
}

// The head timeout holds for the second request of a kept-alive connection, not only the first: a client that
// trickles a head gets 408 and is closed.
TEST_F(server_fixture, HeadTimeoutAppliesToEveryRequestOfAConnection) {
  settings.http.header_timeout_ms = 300;
  add_echo(*routes);
  start();
  raw_client c{port};
  c.send("GET /id HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_NE(c.read_response().find("200 OK"), std::string::npos);
  auto started = std::chrono::steady_clock::now();
  c.send("GET /id HTTP/1.1\r\n");
  bool open = true;
  for (int i = 0; i < 40 && open; ++i) { // one header byte every 100 ms: progress, but never a whole head
    std::this_thread::sleep_for(100ms);
    open = c.send("X");
  }
  EXPECT_TRUE(c.read_to_close());
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_NE(c.received().find("HTTP/1.1 408 "), std::string::npos) << c.received();
  EXPECT_LT(elapsed, 3s);
}

// A body that stops arriving gets 408 after http.body_timeout_ms without a byte.
TEST_F(server_fixture, BodyTimeoutCountsThePauseBetweenBytes) {
  settings.http.body_timeout_ms = 400;
  add_echo(*routes);
  start();
  raw_client c{port};
  c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
  // Progress keeps it alive past the limit...
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(150ms);
    ASSERT_TRUE(c.send("a"));
  }
  // ...a pause longer than it does not.
  EXPECT_TRUE(c.read_to_close());
  EXPECT_EQ(c.received().rfind("HTTP/1.1 408 ", 0), 0u) << c.received();
}

// An idle kept-alive connection is closed after http.keepalive_timeout_ms; one that sends nothing at all after
// http.header_timeout_ms.
TEST_F(server_fixture, IdleConnectionsAreClosed) {
  settings.http.header_timeout_ms = 300;
  settings.http.keepalive_timeout_ms = 500;
  add_echo(*routes);
  start();
  raw_client silent{port};
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent.read_to_close());
  EXPECT_TRUE(silent.received().empty()) << silent.received();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);

  raw_client kept{port};
  kept.send("GET /id HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_NE(kept.read_response().find("200 OK"), std::string::npos);
  started = std::chrono::steady_clock::now();
  EXPECT_TRUE(kept.read_to_close());
  auto idle = std::chrono::steady_clock::now() - started;
  EXPECT_GE(idle, 400ms);
  EXPECT_LT(idle, 3s);
}

// An answer that takes longer than every connection timeout still arrives: while a request is being answered, the
// route bounds its own work, not the connection.
TEST_F(server_fixture, SlowAnswersOutliveConnectionTimeouts) {
  settings.http.header_timeout_ms = 200;
  settings.http.keepalive_timeout_ms = 200;
  late_answerer later{1200ms};
  routes->add("GET", "/later", [&later](const std::shared_ptr<responder>& r) { later.add(r); });
  start();
  raw_client c{port};
  c.send("GET /later HTTP/1.1\r\nHost: a\r\nX-Request-Id: slow\r\n\r\n");
  auto response = c.read_response();
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response;
  EXPECT_EQ(header_of(response, "X-Request-Id"), "slow");
}

// A route's time limit: an answer not started within it is a 504 from the server (the late answer is dropped and the
// connection serves the next request); the default is http.request_timeout_ms, a route may set its own.
TEST_F(server_fixture, AnAnswerLaterThanItsRoutesTimeLimitIs504) {
  settings.http.request_timeout_ms = 300;
  late_answerer later{1500ms};
  routes->add("GET", "/later", [&later](const std::shared_ptr<responder>& r) { later.add(r); });
  route_options patient;
  patient.time_limit = 5000ms;
  routes->add("GET", "/patient", [&later](const std::shared_ptr<responder>& r) { later.add(r); }, patient);
  start();
  raw_client c{port};
  auto asked = std::chrono::steady_clock::now();
  c.send("GET /later HTTP/1.1\r\nHost: a\r\n\r\n");
  auto response = c.read_response();
  EXPECT_NE(response.find("504 Gateway Timeout"), std::string::npos) << response;
  EXPECT_NE(response.find("time limit of 300 ms"), std::string::npos) << response;
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 1400ms); // before the late answer
  c.send("GET /patient HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(c.read_response().find("200 OK"), std::string::npos); // its own limit: 5 s
}

// Expect: 100-continue is answered before the body is sent (curl otherwise waits a second).
TEST_F(server_fixture, AnswersExpectContinue) {
  add_echo(*routes);
  start();
  raw_client c{port};
  c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.read_until("\r\n\r\n");
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  c.forget();
  c.send("hello");
  EXPECT_NE(c.read_response().find("{\"bytes\":5}"), std::string::npos);
}

// Beyond http.max_connections a new connection gets a 503 with Retry-After at once and is closed; the others
// keep working.
TEST_F(server_fixture, RefusesConnectionsBeyondTheCap) {
  settings.http.max_connections = 3;
  add_echo(*routes);
  start();
  std::vector<std::unique_ptr<raw_client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<raw_client>(port));
    held.back()->send("GET /id HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_NE(held.back()->read_response().find("200 OK"), std::string::npos);
  }
  {
    raw_client extra{port};
    EXPECT_TRUE(extra.read_to_close());
    EXPECT_EQ(extra.received().rfind("HTTP/1.1 503 ", 0), 0u) << extra.received();
    EXPECT_EQ(header_of(extra.received(), "Retry-After"), "1");
  } // closed: a refused connection counts until it is gone
  held[0]->send("GET /id HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(held[0]->read_response().find("200 OK"), std::string::npos);
  // Once one closes, a new connection is served.
  held.pop_back();
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    raw_client again{port};
    again.send("GET /id HTTP/1.1\r\nHost: a\r\n\r\n");
    served = again.read_response().find("200 OK") != std::string::npos;
    if (!served)
      std::this_thread::sleep_for(20ms); // the server notices the close on its next event
  }
  EXPECT_TRUE(served);
}

// Bodies held in memory are bounded over all connections: a request whose body would pass
// http.max_body_memory_bytes gets 503 before it is read.
TEST_F(server_fixture, BoundsTheMemoryOfBodies) {
  settings.http.max_body_bytes = 900 * 1024;
  settings.http.max_body_memory_bytes = 1024 * 1024;
  add_echo(*routes);
  start();
  raw_client first{port};
  first.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 800000\r\n\r\nabc"); // held: still arriving
  bool held = false;
  for (int i = 0; i < 100 && !held; ++i) {
    held = state->body_bytes_held() == 800000;
    if (!held)
      std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(held);
  raw_client second{port};
  second.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 800000\r\n\r\n");
  EXPECT_TRUE(second.read_to_close());
  EXPECT_EQ(second.received().rfind("HTTP/1.1 503 ", 0), 0u) << second.received();
  EXPECT_EQ(header_of(second.received(), "Retry-After"), "1");
  // The first completes, and its share comes back.
  first.send(std::string(800000 - 3, 'x'));
  EXPECT_NE(first.read_response().find("{\"bytes\":800000}"), std::string::npos);
  for (int i = 0; i < 100 && state->body_bytes_held() != 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(state->body_bytes_held(), 0);
}

// A response produced after its client left never reaches another connection, even one that reused the file
// descriptor: many clients leave with an answer pending while new ones arrive, and every response a client reads
// carries its own request id.
TEST_F(server_fixture, ResponsesReachOnlyTheirOwnConnection) {
  late_answerer later{20ms};
  routes->add("GET", "/later", [&later](const std::shared_ptr<responder>& r) { later.add(r); });
  start();
  std::atomic<int> wrong{0}, answered{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        {
          raw_client leaving{port};
          leaving.send("GET /later HTTP/1.1\r\nHost: a\r\nX-Request-Id: gone-" + std::to_string(t) + "-"
                       + std::to_string(i) + "\r\n\r\n");
          leaving.reset(); // its answer comes 20 ms later, to a closed connection
        }
        // A client on a new connection (likely the same descriptor) asks twice: a stray answer meant for the
        // client that left would arrive first and carry the wrong id.
        raw_client staying{port};
        for (const char* round : {"a", "b"}) {
          auto id = "mine-" + std::to_string(t) + "-" + std::to_string(i) + "-" + round;
          staying.send("GET /later HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + id + "\r\n\r\n");
          auto response = staying.read_response();
          if (header_of(response, "X-Request-Id") != id
              || response.find("\"id\":\"" + id + "\"") == std::string::npos)
            ++wrong;
          else
            ++answered;
        }
      }
    });
  for (auto& c : clients)
    c.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(answered.load(), 480);
}

// A client that stops reading a stream is disconnected after its stall limit: writes then fail, so the producer
// stops, and what the server held for it is bounded.
TEST_F(server_fixture, DropsAClientThatStopsReading) {
  settings.http.send_timeout_ms = 300;
  std::promise<std::pair<bool, size_t>> outcome;
  routes->add("GET", "/flood", [&outcome](const std::shared_ptr<responder>& r) {
    response head;
    head.content_type = "text/event-stream";
    auto out = r->stream(std::move(head));
    std::thread{[out, &outcome] {
      std::string chunk(64 * 1024, 'x');
      size_t written = 0;
      auto deadline = std::chrono::steady_clock::now() + 10s;
      bool open = true;
      while (open && std::chrono::steady_clock::now() < deadline) {
        if (out->backlog() > 4 * 1024 * 1024) { // a well-behaved producer waits for a slow reader
          std::this_thread::sleep_for(5ms);
          open = !out->gone();
          continue;
        }
        open = out->write(chunk);
        written += chunk.size();
      }
      out->end();
      outcome.set_value({open, written});
    }}.detach();
  });
  start();
  raw_client c{port};
  int small = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send("GET /flood HTTP/1.1\r\nHost: a\r\n\r\n");
  auto result = outcome.get_future();
  ASSERT_EQ(result.wait_for(8s), std::future_status::ready);
  auto [still_open, written] = result.get();
  EXPECT_FALSE(still_open);
  EXPECT_LT(written, size_t{64} * 1024 * 1024);
  for (int i = 0; i < 100 && state->in_flight() != 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(state->in_flight(), 0);
}

} // namespace
} // namespace troupe::http

// Hostile input against the real binary (issue: hardening): bodies refused before they are buffered, so anonymous
// clients cannot grow the server's memory; framing that could smuggle a request is answered with 400 and the
// connection closed; a trickled head on a kept-alive connection is cut off by the header timeout; the server keeps
// serving throughout.

#include "tests/http/raw_client.hpp"
#include "tests/integration/harness.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace troupe::testing {
namespace {

using namespace std::chrono_literals;
using http::testing::header_of;
using http::testing::raw_client;

/// The resident set of a process, from /proc (kB -> bytes); 0 if unreadable.
int64_t resident_bytes(pid_t pid) {
  std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoll(line.substr(6)) * 1024;
  return 0;
}

// 60 anonymous connections each promising a 6 MB body, to an upload route (8 MiB chunks) and to a JSON route (1 MiB):
// each is refused from its head (401 before the body, 413 from Content-Length), nothing is buffered, and the
// server's memory does not grow by their bodies.
TEST(Hardening, PromisedBodiesAreRefusedBeforeTheyAreBuffered) {
  troupe_process troupe{{}};
  ASSERT_EQ(http_get(troupe.url("/health")).status, 200);
  auto before = resident_bytes(troupe.pid());
  std::vector<std::unique_ptr<raw_client>> clients;
  const std::string body_start(64 * 1024, 'x');
  for (int i = 0; i < 60; ++i) {
    auto c = std::make_unique<raw_client>(troupe.port());
    ASSERT_TRUE(c->connected());
    if (i % 2 == 0)
      c->send("PATCH /api/uploads/00000000-0000-0000-0000-000000000000 HTTP/1.1\r\nHost: t\r\nTus-Resumable: 1.0.0\r\n"
              "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 6000000\r\n\r\n");
    else
      c->send("POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
              "Content-Length: 6000000\r\n\r\n");
    c->send(body_start); // may fail once the server has closed: it does not want the body
    clients.push_back(std::move(c));
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    auto& c = *clients[i];
    EXPECT_TRUE(c.read_to_close()) << i;
    auto expected = i % 2 == 0 ? "HTTP/1.1 401 " : "HTTP/1.1 413 ";
    EXPECT_EQ(c.received().rfind(expected, 0), 0u) << i << ": " << c.received();
  }
  auto growth = resident_bytes(troupe.pid()) - before;
  // 60 x 6 MB would be 360 MB; what is left is allocator noise.
  EXPECT_LT(growth, 32 * 1024 * 1024) << "RSS grew by " << growth << " bytes";
  EXPECT_EQ(http_get(troupe.url("/health")).status, 200);
}

// Requests that two parsers could frame differently are answered with 400 (or 501) and the connection closed; the
// request smuggled behind them is never answered.
TEST(Hardening, AmbiguousFramingClosesTheConnection) {
  troupe_process troupe{{}};
  const std::string smuggled = "GET /api/me HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::string attempts[] = {
    "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 33\r\n\r\n",
    "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 5abc\r\n\r\n",
    "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
  };
  for (const auto& attempt : attempts) {
    raw_client c{troupe.port()};
    c.send(attempt + smuggled);
    EXPECT_TRUE(c.read_to_close()) << attempt;
    const auto& text = c.received();
    EXPECT_TRUE(text.rfind("HTTP/1.1 400 ", 0) == 0 || text.rfind("HTTP/1.1 501 ", 0) == 0) << text;
    EXPECT_EQ(text.find("HTTP/1.1", 8), std::string::npos) << "a second answer: " << text;
    EXPECT_FALSE(header_of(text, "X-Request-Id").empty()) << text;
  }
  EXPECT_EQ(http_get(troupe.url("/health")).status, 200);
}

// The header timeout bounds the head of every request of a kept-alive connection, not only the first.
TEST(Hardening, HeaderTimeoutAppliesToTheSecondRequest) {
  troupe_process::options opts;
  opts.args = {"--set", "http.header_timeout_ms=500"};
  troupe_process troupe{opts};
  raw_client c{troupe.port()};
  c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_NE(c.read_response().find("200 OK"), std::string::npos);
  auto started = std::chrono::steady_clock::now();
  c.send("GET /health HTTP/1.1\r\nX-Slow: ");
  bool open = true;
  for (int i = 0; i < 50 && open; ++i) {
    std::this_thread::sleep_for(100ms); // a trickle: one byte every 100 ms, never a whole head
    open = c.send("z");
  }
  EXPECT_TRUE(c.read_to_close());
  EXPECT_EQ(c.received().rfind("HTTP/1.1 408 ", 0), 0u) << c.received();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
}

} // namespace
} // namespace troupe::testing

// hold_connections: opens many connections to a server and keeps them open, for `make bench-connections`
// (bench/connections.sh): idle keep-alive connections (one GET answered, then nothing), server-sent event
// streams (a GET whose answer is a stream: its events and heartbeats are read and dropped) and WebSocket
// connections (GET /ws upgraded, then nothing but the server's pings, read and dropped).
//
//   hold_connections --port P [--idle 2500] [--sse 2500] [--sse-path /api/jobs/ID/events] [--ws 0]
//                    [--header "Authorization: Bearer T"] [--seconds 60] [--ready-file F]
//
// It opens the connections (at most 200 connecting at once), and once every one is held (the idle ones answered
// 200, the streams' first event arrived, the WebSockets' 101 and their "ready" message) or 60 s passed, writes
// "<idle held> <sse held> <failed> <ws held>" to the ready file. It then holds them for --seconds, reading whatever
// arrives (epoll: a quiet connection costs it nothing, so it does not take the CPU of the measurement next to it),
// and prints one JSON line: held and dropped by the server while held (per kind), failures to connect or to be
// answered.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  uint16_t port = 0;
  int idle = 2500;
  int sse = 2500;
  int ws = 0;
  std::string sse_path;
  std::vector<std::string> headers;
  int seconds = 60;
  std::string ready_file;
};

enum class phase { connecting, sent, held, closed };

enum class kind { idle, sse, ws };

struct conn {
  int fd = -1;
  kind what = kind::idle;
  phase state = phase::connecting;
  std::string request;
  std::string received;
};

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--port" && (v = next()))
      o.port = static_cast<uint16_t>(std::atoi(v));
    else if (a == "--idle" && (v = next()))
      o.idle = std::atoi(v);
    else if (a == "--sse" && (v = next()))
      o.sse = std::atoi(v);
    else if (a == "--ws" && (v = next()))
      o.ws = std::atoi(v);
    else if (a == "--sse-path" && (v = next()))
      o.sse_path = v;
    else if (a == "--header" && (v = next()))
      o.headers.emplace_back(v);
    else if (a == "--seconds" && (v = next()))
      o.seconds = std::atoi(v);
    else if (a == "--ready-file" && (v = next()))
      o.ready_file = v;
    else
      return false;
  }
  return o.port != 0 && (o.sse == 0 || !o.sse_path.empty());
}

int open_socket(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Whether a head arrived that is not the one expected (200; 101 for a WebSocket): it will never be held.
bool refused(const conn& c) {
  return c.received.size() >= 12
         && c.received.compare(0, 12, c.what == kind::ws ? "HTTP/1.1 101" : "HTTP/1.1 200") != 0;
}

/// Whether what `c` received so far completes what it waits for before it is held.
bool answered(const conn& c) {
  if (c.what == kind::sse)
    return c.received.find("HTTP/1.1 200") == 0 && c.received.find("\nevent: ") != std::string::npos;
  if (c.what == kind::ws) // the session's first message, {"type":"ready",...}, in a text frame after the head
    return c.received.find("HTTP/1.1 101") == 0 && c.received.find("\"ready\"") != std::string::npos;
  auto head_end = c.received.find("\r\n\r\n");
  if (head_end == std::string::npos || c.received.find("HTTP/1.1 200") != 0)
    return false;
  auto at = c.received.find("Content-Length: ");
  size_t length = at == std::string::npos ? 0 : std::strtoul(c.received.c_str() + at + 16, nullptr, 10);
  return c.received.size() >= head_end + 4 + length;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr, "usage: hold_connections --port P [--idle N] [--sse N --sse-path PATH] [--ws N] "
                         "[--header H]... [--seconds S] [--ready-file F]\n");
    return 2;
  }
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);

  std::string extra;
  for (const auto& h : o.headers)
    extra += h + "\r\n";
  std::vector<conn> conns(static_cast<size_t>(o.idle + o.sse + o.ws));
  for (size_t i = 0; i < conns.size(); ++i) {
    auto& c = conns[i];
    auto at = static_cast<int>(i);
    c.what = at < o.idle ? kind::idle : at < o.idle + o.sse ? kind::sse : kind::ws;
    switch (c.what) {
    case kind::idle:
      c.request = "GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";
      break;
    case kind::sse:
      c.request = "GET " + o.sse_path + " HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n" + extra + "\r\n";
      break;
    case kind::ws:
      c.request = "GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  + extra + "\r\n";
      break;
    }
  }
  int failed = 0, dropped[3] = {0, 0, 0};
  int setting_up = 0, held[3] = {0, 0, 0};
  size_t next = 0;
  bool ready = false;
  auto start = clock_type::now();
  auto hold_until = clock_type::time_point::max();
  char buf[16384];
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(1024);
  auto drop = [&](conn& c, bool was_held) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    if (was_held) {
      held[static_cast<int>(c.what)]--;
      dropped[static_cast<int>(c.what)]++;
    } else {
      --setting_up;
      ++failed;
    }
    c.state = phase::closed;
  };
  for (;;) {
    // Keep at most 200 connections in their set-up.
    while (next < conns.size() && setting_up < 200) {
      auto& c = conns[next];
      c.fd = open_socket(o.port);
      if (c.fd < 0) {
        c.state = phase::closed;
        ++failed;
        ++next;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = next++;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      ++setting_up;
    }
    auto now = clock_type::now();
    if (!ready && ((next == conns.size() && setting_up == 0) || now - start > std::chrono::seconds{60})) {
      ready = true;
      if (!o.ready_file.empty())
        std::ofstream{o.ready_file} << held[0] << " " << held[1] << " " << failed << " " << held[2] << "\n";
      hold_until = now + std::chrono::seconds{o.seconds};
    }
    if (ready && now >= hold_until) {
      std::printf("{\"idle_held\":%d,\"sse_held\":%d,\"ws_held\":%d,\"dropped_idle\":%d,\"dropped_sse\":%d,"
                  "\"dropped_ws\":%d,\"failed\":%d}\n",
                  held[0], held[1], held[2], dropped[0], dropped[1], dropped[2], failed);
      return 0;
    }
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), ready ? 1000 : 100);
    for (int k = 0; k < n; ++k) {
      auto& c = conns[events[static_cast<size_t>(k)].data.u64];
      if (c.state == phase::closed)
        continue;
      if (c.state == phase::connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || ::send(c.fd, c.request.data(), c.request.size(), MSG_NOSIGNAL)
                          != static_cast<ssize_t>(c.request.size())) {
          drop(c, false);
          continue;
        }
        c.state = phase::sent;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = events[static_cast<size_t>(k)].data.u64;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        continue;
      }
      auto got = ::read(c.fd, buf, sizeof buf);
      if (got <= 0) {
        drop(c, c.state == phase::held);
        continue;
      }
      if (c.state == phase::sent) {
        c.received.append(buf, static_cast<size_t>(got));
        if (answered(c)) {
          c.state = phase::held;
          --setting_up;
          held[static_cast<int>(c.what)]++;
          c.received.clear();
          c.received.shrink_to_fit();
        } else if (refused(c) || c.received.size() > 65536) {
          drop(c, false);
        }
      }
    }
  }
}

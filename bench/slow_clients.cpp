// slow_clients: many connections that send their request head one byte at a time (slowloris), for
// `make bench-overload` (bench/overload.sh). slowhttptest trickles the first request of a connection; this tool also
// trickles the *second* request of kept-alive connections (after a first request answered normally), which is where
// a server that bounds only a connection's first head by its header timeout leaves the door open.
//
//   slow_clients --port P [--connections 3000] [--interval-ms 1000] [--seconds 60] [--second] [--path /health]
//
// Prints one JSON line at the end: connections opened, answered first requests, closed by the server (and the
// median and largest time from the first trickled byte to the close), still open at the end, connect failures.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  uint16_t port = 0;
  int connections = 3000;
  int interval_ms = 1000;
  int seconds = 60;
  bool second = false;
  std::string path = "/health";
};

struct conn {
  int fd = -1;
  bool answered_first = false; // the normal first request got its response (--second)
  bool trickling = false;
  bool closed = false;
  size_t sent = 0; // bytes of the trickled head sent
  clock_type::time_point trickle_started{};
  double closed_after_s = 0;
  std::string inbox;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "slow_clients: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port")
      o.port = static_cast<uint16_t>(std::stoi(next()));
    else if (a == "--connections")
      o.connections = std::stoi(next());
    else if (a == "--interval-ms")
      o.interval_ms = std::stoi(next());
    else if (a == "--seconds")
      o.seconds = std::stoi(next());
    else if (a == "--second")
      o.second = true;
    else if (a == "--path")
      o.path = next();
    else {
      std::fprintf(stderr, "usage: slow_clients --port P [--connections N] [--interval-ms MS] [--seconds S] "
                           "[--second] [--path /health]\n");
      std::exit(2);
    }
  }
  if (o.port == 0) {
    std::fprintf(stderr, "slow_clients: --port is required\n");
    std::exit(2);
  }
  return o;
}

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
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

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);

  const std::string full = "GET " + o.path + " HTTP/1.1\r\nHost: bench\r\n\r\n";
  const std::string slow = "GET " + o.path + " HTTP/1.1\r\nHost: bench\r\nX-Slow: " + std::string(4000, 'z') + "\r\n\r\n";
  std::vector<conn> conns(static_cast<size_t>(o.connections));
  int connect_failures = 0;
  auto start = clock_type::now();
  // Open the connections spread over the first second, so the listener's backlog is not the test.
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connect_loopback(o.port);
    if (conns[i].fd < 0) {
      ++connect_failures;
      conns[i].closed = true;
      continue;
    }
    if (!o.second) {
      conns[i].trickling = true;
      conns[i].trickle_started = clock_type::now();
    }
    if (i % 100 == 99)
      std::this_thread::sleep_for(std::chrono::milliseconds{1000 * 100 / std::max(100, o.connections)});
  }
  auto deadline = start + std::chrono::seconds{o.seconds};
  auto next_tick = clock_type::now();
  std::vector<pollfd> fds;
  char buf[8192];
  while (clock_type::now() < deadline) {
    auto now = clock_type::now();
    if (now >= next_tick) {
      next_tick = now + std::chrono::milliseconds{o.interval_ms};
      for (auto& c : conns) {
        if (c.closed)
          continue;
        if (!c.trickling) {
          if (c.sent == 0 && ::send(c.fd, full.data(), full.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(full.size()))
            c.sent = full.size(); // the normal first request, sent whole once the connection is up
          continue;
        }
        if (c.sent < slow.size() && ::send(c.fd, slow.data() + c.sent, 1, MSG_NOSIGNAL) == 1)
          ++c.sent;
      }
    }
    fds.clear();
    std::vector<size_t> index;
    for (size_t i = 0; i < conns.size(); ++i)
      if (!conns[i].closed) {
        fds.push_back({conns[i].fd, POLLIN, 0});
        index.push_back(i);
      }
    if (fds.empty())
      break;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - clock_type::now()).count();
    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(1, std::min<long>(wait, 100))));
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      auto& c = conns[index[k]];
      auto n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.inbox.append(buf, static_cast<size_t>(n));
        if (!c.trickling && c.inbox.find("\r\n\r\n") != std::string::npos) {
          c.answered_first = true; // a small response: its head is all of it that matters here
          c.trickling = true;
          c.sent = 0;
          c.inbox.clear();
          c.trickle_started = clock_type::now();
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      c.closed = true;
      c.closed_after_s = std::chrono::duration<double>(clock_type::now() - c.trickle_started).count();
      ::close(c.fd);
    }
  }
  int opened = 0, answered = 0, closed = 0, still_open = 0;
  std::vector<double> close_times;
  for (auto& c : conns) {
    if (c.fd < 0)
      continue;
    ++opened;
    answered += c.answered_first ? 1 : 0;
    if (c.closed) {
      ++closed;
      if (c.trickling)
        close_times.push_back(c.closed_after_s);
    } else {
      ++still_open;
      ::close(c.fd);
    }
  }
  std::sort(close_times.begin(), close_times.end());
  double median = close_times.empty() ? 0 : close_times[close_times.size() / 2];
  double largest = close_times.empty() ? 0 : close_times.back();
  std::printf("{\"opened\":%d,\"answered_first\":%d,\"closed_by_server\":%d,\"still_open\":%d,"
              "\"connect_failures\":%d,\"median_close_s\":%.2f,\"max_close_s\":%.2f}\n",
              opened, answered, closed, still_open, connect_failures, median, largest);
  return 0;
}

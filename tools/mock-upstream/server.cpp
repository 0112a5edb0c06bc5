#include "tools/mock-upstream/server.hpp"

#include "tools/mock-upstream/routes.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <queue>
#include <unordered_map>

namespace troupe::mock {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr uint64_t listen_tag = 0;
constexpr uint64_t wake_tag = 1;
constexpr size_t read_chunk = 64 << 10;
constexpr size_t write_high_water = 64 << 10; // output bytes prepared ahead of the socket
constexpr int max_accepts_per_wakeup = 64;
constexpr auto drain_limit = std::chrono::seconds{2};
constexpr auto max_sweep_interval = std::chrono::milliseconds{1000};
constexpr auto accept_pause = std::chrono::milliseconds{100}; // after EMFILE: let connections close first
constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

struct connection {
  uint64_t id = 0;
  int fd = -1;
  std::string in;
  std::string out;
  size_t out_pos = 0;
  plan active; // the answer being written while `responding`
  bool responding = false;
  bool want_write = false; // the socket refused bytes: waiting for EPOLLOUT
  bool waiting = false;    // a wait step is pending in the timer heap
  uint64_t timer_seq = 0;  // identifies the pending timer entry
  bool continue_sent = false;
  bool peer_closed = false; // the client shut down its side: answer what was read, then close
  bool draining = false;
  clock_type::time_point drain_deadline;
  clock_type::time_point last_activity;
  uint32_t interest = 0; // events registered with epoll
  bool registered = false;

  size_t pending() const { return out.size() - out_pos; }
};

struct timer_entry {
  clock_type::time_point deadline;
  uint64_t connection_id;
  uint64_t seq;
  bool operator>(const timer_entry& other) const { return deadline > other.deadline; }
};

} // namespace

/// One event loop: the connections it accepted, their timers, and the periodic sweep of idle ones.
class worker {
public:
  worker(const server_options& options, const request_handler& handler, connection_counters& counters, int listen_fd,
         int wake_fd)
    : options_(options), handler_(handler), counters_(counters), listen_fd_(listen_fd), wake_fd_(wake_fd) {}

  ~worker() {
    for (auto& [id, c] : connections_)
      release(*c);
    if (epoll_fd_ >= 0)
      ::close(epoll_fd_);
  }

  /// Creates the epoll instance; "" or an error sentence.
  std::string open() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0)
      return std::string{"epoll_create1: "} + std::strerror(errno);
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.u64 = wake_tag;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0)
      return std::string{"epoll_ctl: "} + std::strerror(errno);
    if (!watch_listener())
      return std::string{"epoll_ctl: "} + std::strerror(errno);
    return {};
  }

  void run() {
    epoll_event events[256];
    next_sweep_ = clock_type::now() + sweep_interval();
    while (!stopping_) {
      int n = ::epoll_wait(epoll_fd_, events, 256, next_timeout_ms());
      if (n < 0 && errno != EINTR)
        break;
      for (int i = 0; i < n; ++i) {
        auto tag = events[i].data.u64;
        if (tag == wake_tag)
          stopping_ = true;
        else if (tag == listen_tag)
          accept_connections();
        else
          on_event(tag, events[i].events);
      }
      run_timers();
      if (clock_type::now() >= next_sweep_)
        sweep();
    }
  }

private:
  // ---- accepting ------------------------------------------------------------------------------------------

  bool watch_listener() {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = listen_tag;
    listening_ = ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0;
    return listening_;
  }

  void accept_connections() {
    for (int i = 0; i < max_accepts_per_wakeup; ++i) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
          continue;
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: stop watching the listener for a moment instead of spinning on it.
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
          listening_ = false;
          accept_resume_ = clock_type::now() + accept_pause;
        }
        return;
      }
      if (counters_.open.fetch_add(1) >= options_.max_connections) {
        counters_.open.fetch_sub(1);
        ::close(fd);
        continue;
      }
      counters_.accepted.fetch_add(1, std::memory_order_relaxed);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<connection>();
      c->id = next_id_++;
      c->fd = fd;
      c->last_activity = clock_type::now();
      auto* raw = c.get();
      connections_.emplace(c->id, std::move(c));
      set_interest(*raw, EPOLLIN | EPOLLRDHUP);
    }
  }

  // ---- events ---------------------------------------------------------------------------------------------

  void on_event(uint64_t id, uint32_t events) {
    auto it = connections_.find(id);
    if (it == connections_.end())
      return;
    connection& c = *it->second;
    if (events & EPOLLERR) {
      close_connection(c, true);
      return;
    }
    if (c.draining) {
      drain(c);
      return;
    }
    if (c.responding) {
      if (events & (EPOLLHUP | EPOLLRDHUP)) { // the client left before the answer ended
        close_connection(c, true);
        return;
      }
      c.want_write = false;
      drive(c);
      return;
    }
    if (read_input(c))
      drive(c);
  }

  /// Reads what the socket has (bounded); false when the connection was closed.
  bool read_input(connection& c) {
    const size_t limit = options_.max_head_bytes + options_.max_body_bytes + read_chunk;
    while (c.in.size() < limit) {
      ssize_t n = ::recv(c.fd, read_buffer_, sizeof(read_buffer_), 0);
      if (n > 0) {
        c.in.append(read_buffer_, static_cast<size_t>(n));
        c.last_activity = clock_type::now();
        continue;
      }
      if (n == 0) {
        c.peer_closed = true;
        return true;
      }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return true;
      close_connection(c, false);
      return false;
    }
    return true;
  }

  /// Runs the connection as far as it can go without waiting: the current answer, then the next buffered
  /// requests. Leaves it waiting for input, for the socket, for a timer, or closed.
  void drive(connection& c) {
    for (;;) {
      if (c.responding) {
        if (!advance(c))
          return; // closed
        if (c.responding) {
          update_interest(c);
          return;
        }
        if (c.active.close_after) {
          begin_close(c);
          return;
        }
        c.active = plan{}; // ends the in-flight count of a finished chat answer
      }
      if (!start_request(c)) {
        if (c.peer_closed) {
          close_connection(c, false);
          return;
        }
        update_interest(c);
        return;
      }
    }
  }

  /// Parses the next request from the input buffer and makes its plan; false when no complete request is there.
  bool start_request(connection& c) {
    request_head head;
    std::string error;
    switch (parse_request_head(c.in, options_.max_head_bytes, head, error)) {
    case head_parse::incomplete:
      return false;
    case head_parse::too_large:
      return start_rejection(c, 431, "the request head is too large");
    case head_parse::bad:
      return start_rejection(c, 400, "bad request: " + error);
    case head_parse::complete:
      break;
    }
    if (head.has_transfer_encoding)
      return start_rejection(c, 411, "request bodies must have a Content-Length (Transfer-Encoding is not supported)");
    if (head.content_length > options_.max_body_bytes)
      return start_rejection(c, 413, "the request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
    size_t total = head.head_bytes + head.content_length;
    if (c.in.size() < total) {
      if (head.expect_continue && !c.continue_sent) {
        c.out.append(continue_line);
        c.continue_sent = true;
        flush_interim(c);
      }
      return false;
    }
    c.active = handler_(head, std::string_view{c.in}.substr(head.head_bytes, head.content_length));
    if (!head.keep_alive)
      c.active.close_after = true;
    c.in.erase(0, total);
    c.continue_sent = false;
    c.responding = true;
    return true;
  }

  bool start_rejection(connection& c, int status, const std::string& message) {
    c.active = reject_request(status, message);
    c.in.clear();
    c.responding = true;
    return true;
  }

  /// Writes an interim "100 Continue" right away (outside any plan); a socket that cannot take these few bytes
  /// gets them with the answer instead.
  void flush_interim(connection& c) {
    ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.pending(), MSG_NOSIGNAL);
    if (n > 0)
      c.out_pos += static_cast<size_t>(n);
    if (c.pending() == 0) {
      c.out.clear();
      c.out_pos = 0;
    }
  }

  // ---- executing a plan -----------------------------------------------------------------------------------

  /// Prepares output from the plan's byte and filler steps, up to the high-water mark.
  void fill_output(connection& c) {
    auto& steps = c.active.steps;
    while (c.pending() < write_high_water && !steps.empty()) {
      step& s = steps.front();
      if (s.what == step::kind::bytes) {
        if (c.pending() == 0) {
          c.out = std::move(s.bytes);
          c.out_pos = 0;
        } else {
          c.out.append(s.bytes);
        }
        steps.pop_front();
      } else if (s.what == step::kind::filler) {
        auto n = static_cast<size_t>(std::min<uint64_t>(s.filler_length, write_high_water - c.pending()));
        auto at = c.out.size();
        c.out.resize(at + n);
        copy_filler(s.filler_offset, c.out.data() + at, n);
        s.filler_offset += n;
        s.filler_length -= n;
        if (s.filler_length == 0)
          steps.pop_front();
      } else {
        break; // a wait or a close: only once everything before it is written
      }
    }
  }

  /// Executes the plan until it ends, the socket is full, or a wait starts. False when the connection closed.
  bool advance(connection& c) {
    for (;;) {
      if (c.waiting)
        return true;
      fill_output(c);
      if (c.pending() > 0) {
        ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.pending(), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c.want_write = true;
            return true;
          }
          close_connection(c, true);
          return false;
        }
        c.out_pos += static_cast<size_t>(n);
        c.last_activity = clock_type::now();
        if (c.pending() == 0) {
          c.out.clear();
          c.out_pos = 0;
        }
        continue;
      }
      auto& steps = c.active.steps;
      if (steps.empty()) {
        c.responding = false;
        return true;
      }
      step& s = steps.front();
      if (s.what == step::kind::wait) {
        arm_timer(c, std::chrono::milliseconds{s.wait_ms});
        steps.pop_front();
        return true;
      }
      // kind::close: the answer is deliberately cut here (hang-up, truncation, end of an HTTP/1.0 stream).
      steps.clear();
      c.responding = false;
      begin_close(c);
      return false;
    }
  }

  void arm_timer(connection& c, std::chrono::milliseconds delay) {
    c.waiting = true;
    c.timer_seq = ++timer_seq_;
    timers_.push(timer_entry{clock_type::now() + delay, c.id, c.timer_seq});
  }

  void run_timers() {
    auto now = clock_type::now();
    while (!timers_.empty() && timers_.top().deadline <= now) {
      auto entry = timers_.top();
      timers_.pop();
      auto it = connections_.find(entry.connection_id);
      if (it == connections_.end() || !it->second->waiting || it->second->timer_seq != entry.seq)
        continue; // the connection closed meanwhile
      it->second->waiting = false;
      drive(*it->second);
    }
  }

  int next_timeout_ms() const {
    auto now = clock_type::now();
    auto until = next_sweep_;
    if (!timers_.empty())
      until = std::min(until, timers_.top().deadline);
    if (until <= now)
      return 0;
    // Rounded up: a wait never ends early.
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(until - now).count();
    return static_cast<int>((us + 999) / 1000);
  }

  // ---- closing --------------------------------------------------------------------------------------------

  /// Sends FIN and reads (and drops) what the client still sends, so that closing cannot reset the connection
  /// before the client has read the answer.
  void begin_close(connection& c) {
    c.active = plan{};
    c.responding = false;
    c.in.clear();
    if (c.peer_closed) {
      close_connection(c, false);
      return;
    }
    ::shutdown(c.fd, SHUT_WR);
    c.draining = true;
    c.drain_deadline = clock_type::now() + drain_limit;
    update_interest(c);
  }

  void drain(connection& c) {
    for (;;) {
      ssize_t n = ::recv(c.fd, read_buffer_, sizeof(read_buffer_), 0);
      if (n > 0)
        continue;
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      close_connection(c, false);
      return;
    }
  }

  /// Closes and forgets the connection; `aborted`: an answer in progress is counted as cut short by the client.
  void close_connection(connection& c, bool aborted) {
    if (aborted && c.responding)
      c.active.in_flight.abort();
    auto id = c.id;
    release(c);
    connections_.erase(id); // destroys c
  }

  void release(connection& c) {
    ::close(c.fd);
    c.fd = -1;
    counters_.open.fetch_sub(1);
  }

  /// How often to look for idle connections: a second, or half the idle timeout when that is shorter.
  std::chrono::milliseconds sweep_interval() const {
    return std::clamp(std::chrono::milliseconds{options_.idle_timeout_ms / 2}, std::chrono::milliseconds{10},
                      max_sweep_interval);
  }

  /// Closes idle and lingering connections; resumes accepting after a descriptor shortage.
  void sweep() {
    auto now = clock_type::now();
    next_sweep_ = now + sweep_interval();
    std::vector<connection*> expired;
    for (auto& [id, c] : connections_) {
      // Idle: no request in progress, or an answer the client has stopped reading.
      bool quiet = now - c->last_activity > std::chrono::milliseconds{options_.idle_timeout_ms};
      bool idle = quiet && !c->draining && (!c->responding || c->want_write);
      if (idle || (c->draining && now >= c->drain_deadline))
        expired.push_back(c.get());
    }
    for (auto* c : expired)
      close_connection(*c, c->responding);
    if (!listening_ && now >= accept_resume_)
      watch_listener();
  }

  // ---- epoll interest -------------------------------------------------------------------------------------

  void update_interest(connection& c) {
    uint32_t events = 0;
    if (c.draining || !c.responding)
      events = EPOLLIN | EPOLLRDHUP;
    else
      events = (c.want_write ? uint32_t{EPOLLOUT} : 0u) | (c.peer_closed ? 0u : uint32_t{EPOLLRDHUP});
    set_interest(c, events);
  }

  void set_interest(connection& c, uint32_t events) {
    if (c.registered && events == c.interest)
      return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev);
    c.registered = true;
    c.interest = events;
  }

  const server_options& options_;
  const request_handler& handler_;
  connection_counters& counters_;
  int listen_fd_;
  int wake_fd_;
  int epoll_fd_ = -1;
  bool stopping_ = false;
  bool listening_ = false;
  clock_type::time_point accept_resume_;
  clock_type::time_point next_sweep_;
  uint64_t next_id_ = 2; // 0 and 1 tag the listener and the wake-up descriptor
  uint64_t timer_seq_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<connection>> connections_;
  std::priority_queue<timer_entry, std::vector<timer_entry>, std::greater<timer_entry>> timers_;
  char read_buffer_[read_chunk];
};

server::server(server_options options, request_handler handler, connection_counters& counters)
  : options_(std::move(options)), handler_(std::move(handler)), counters_(counters) {}

server::~server() {
  stop();
  join();
  workers_.clear();
  for (int fd : listen_fds_)
    ::close(fd);
  if (wake_fd_ >= 0)
    ::close(wake_fd_);
}

namespace {

/// A non-blocking listening socket with SO_REUSEPORT on `addr`; -1 with `error` set on failure. (bind() to port 0
/// never picks a port another SO_REUSEPORT socket holds, so ephemeral mocks cannot share one.)
int open_listener(const sockaddr_in& addr, const std::string& host, int backlog, std::string& error) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string{"socket: "} + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, backlog) != 0) {
    error = "cannot listen on " + host + ":" + std::to_string(ntohs(addr.sin_port)) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

} // namespace

std::string server::listen() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.port);
  if (::inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1)
    return "--host must be an IPv4 address, not '" + options_.host + "'";
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0)
    return std::string{"eventfd: "} + std::strerror(errno);
  // One listening socket per worker on the same port (the first one picks it when --port is 0): the kernel
  // spreads new connections over them evenly.
  std::string error;
  for (int i = 0; i < options_.threads; ++i) {
    int fd = open_listener(addr, options_.host, 1024, error);
    if (fd < 0)
      return error;
    listen_fds_.push_back(fd);
    if (i == 0) {
      socklen_t len = sizeof(addr);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    }
    workers_.push_back(std::make_unique<worker>(options_, handler_, counters_, fd, wake_fd_));
    if (error = workers_.back()->open(); !error.empty())
      return error;
  }
  return {};
}

void server::start() {
  for (auto& w : workers_)
    threads_.emplace_back([&w] { w->run(); });
}

void server::stop() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    // Never read: the descriptor stays readable and wakes every worker.
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void server::join() {
  for (auto& t : threads_) {
    if (t.joinable())
      t.join();
  }
  threads_.clear();
}

} // namespace troupe::mock

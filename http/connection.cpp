#include "http/connection.hpp"

#include <pistache/listener.h>
#include <pistache/os.h>
#include <pistache/peer.h>
#include <pistache/reactor.h>
#include <pistache/tcp.h>
#include <pistache/transport.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <utility>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace troupe::http {

namespace P = Pistache;
namespace Polling = Pistache::Polling;
using clock = std::chrono::steady_clock;

namespace {

constexpr unsigned interest_read = static_cast<unsigned>(Polling::NotifyOn::Read);
constexpr unsigned interest_write = static_cast<unsigned>(Polling::NotifyOn::Write);
constexpr unsigned interest_shutdown = static_cast<unsigned>(Polling::NotifyOn::Shutdown);

/// Bytes read from one connection per readiness event before the others get their turn.
constexpr size_t read_budget = 1024 * 1024;
/// Bytes discarded from a client while lingering before the connection is simply closed.
constexpr size_t linger_discard_limit = 1024 * 1024;
constexpr auto tick = std::chrono::milliseconds{100};

/// The worker whose reactor thread is running right now (set while the transport handles events): a response
/// produced on that thread is written at once instead of being queued.
thread_local worker* current_worker = nullptr;

class current_worker_scope {
public:
  explicit current_worker_scope(worker* w) : previous_(current_worker) { current_worker = w; }
  ~current_worker_scope() { current_worker = previous_; }

private:
  worker* previous_;
};

} // namespace

// --- inbox ---

inbox::inbox() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0)
    throw std::runtime_error(std::string{"eventfd: "} + std::strerror(errno));
}

inbox::~inbox() {
  if (event_fd_ >= 0)
    ::close(event_fd_);
}

void inbox::push(outbound item) {
  bool wake;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    wake = items_.empty();
    items_.push_back(std::move(item));
  }
  if (wake) {
    uint64_t one = 1;
    // Cannot fail but with EAGAIN when the counter is full, in which case the reactor is awake anyway.
    [[maybe_unused]] auto written = ::write(event_fd_, &one, sizeof one);
  }
}

void inbox::take(std::vector<outbound>& out) {
  uint64_t count;
  [[maybe_unused]] auto got = ::read(event_fd_, &count, sizeof count);
  std::lock_guard<std::mutex> guard{mutex_};
  out.swap(items_);
}

// --- connection ---

connection::connection(worker& owner, std::shared_ptr<P::Tcp::Peer> peer, std::string remote_address)
  : owner_(owner), peer_(std::move(peer)), remote_address_(std::move(remote_address)),
    inbox_(owner.queue()), parser_(owner.limits().framing, [this](const request_head& head) { return decide(head); }) {
}

connection::~connection() = default;

int connection::fd() const {
  return peer_->fd();
}

void connection::send(outbound item) {
  queued_.fetch_add(static_cast<int64_t>(item.bytes.size()), std::memory_order_acq_rel);
  if (current_worker == &owner_) {
    deliver(std::move(item));
    return;
  }
  item.target = weak_from_this();
  inbox_->push(std::move(item));
}

void connection::start(steady_time now) {
  idle_since_ = now;
  write_progress_ = now;
  interest_ = interest_read | interest_shutdown; // as the transport registered it
}

void connection::begin_refusal() {
  refused_ = true;
  phase_ = phase::answering;
  close_after_ = true;
}

void connection::on_event(bool readable, bool /*writable*/, bool hangup) {
  auto self = shared_from_this();
  if (hangup) {
    close_now();
    return;
  }
  if (readable) {
    if (phase_ == phase::reading || phase_ == phase::lingering || phase_ == phase::upgraded) {
      read_more_ = true;
    } else if (phase_ == phase::answering) {
      // Not reading now (the answer comes first); only learn whether the client has gone.
      char byte;
      auto n = ::recv(fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) {
        client_done_ = true;
        // A stream has no end the client could still be waiting for: stop it now.
        if (streaming_) {
          close_now();
          return;
        }
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        close_now();
        return;
      }
    }
  }
  pump(); // writable or not: flushing is cheap when nothing is pending
}

void connection::deliver(outbound item) {
  auto self = shared_from_this();
  if (item.resume) {
    read_more_ = true;
    pump();
    return;
  }
  if (phase_ == phase::closed) {
    queued_.fetch_sub(static_cast<int64_t>(item.bytes.size()), std::memory_order_acq_rel);
    if (item.upgrade)
      item.upgrade->on_closed(); // it never started
    return;
  }
  if (item.protocol_tag >= 0) {
    queued_.fetch_sub(static_cast<int64_t>(item.bytes.size()), std::memory_order_acq_rel);
    if (auto protocol = upgraded_; phase_ == phase::upgraded && protocol) // held: it may close the connection
      protocol->on_outbound(*this, std::move(item)); // it writes what it frames through write_raw
    return;
  }
  if (item.upgrade) {
    start_upgrade(std::move(item));
    return;
  }
  append_output(std::move(item.bytes));
  if (item.stall_limit.count() > 0)
    stall_limit_ = item.stall_limit;
  if (item.last) {
    response_done_ = true;
    close_after_ = close_after_ || item.close;
  } else {
    streaming_ = true;
  }
  if (static_cast<size_t>(queued_.load(std::memory_order_acquire)) > owner_.limits().max_queued_output) {
    close_now(); // the client is far behind: drop it rather than hold its response in memory
    return;
  }
  pump();
}

void connection::append_output(std::string bytes) {
  if (out_offset_ == out_.size()) { // all written: start over (and the stall clock with it)
    out_.clear();
    out_offset_ = 0;
    write_progress_ = clock::now();
  }
  if (out_.empty())
    out_ = std::move(bytes);
  else
    out_.append(bytes);
}

void connection::start_upgrade(outbound item) {
  auto protocol = std::move(item.upgrade);
  append_output(std::move(item.bytes));
  phase_ = phase::upgraded;
  upgraded_ = protocol;
  response_done_ = false;
  streaming_ = false;
  stall_limit_ = std::chrono::milliseconds{0};
  answer_deadline_.reset();
  answer_expired_ = nullptr;
  protocol->on_start(*this, clock::now());
  if (phase_ == phase::upgraded && !pending_in_.empty()) { // sent right behind the handshake
    std::string input;
    input.swap(pending_in_);
    protocol->on_input(*this, input.data(), input.size());
  }
  if (phase_ == phase::closed)
    return;
  read_more_ = true;
  pump();
}

void connection::write_raw(std::string_view bytes) {
  if (phase_ == phase::closed || bytes.empty())
    return;
  queued_.fetch_add(static_cast<int64_t>(bytes.size()), std::memory_order_acq_rel);
  append_output(std::string{bytes});
  if (static_cast<size_t>(queued_.load(std::memory_order_acquire)) > owner_.limits().max_queued_output) {
    close_now(); // the client is far behind: drop it rather than hold its messages in memory
    return;
  }
  if (pumping_)
    pump_again_ = true;
  else
    pump();
}

void connection::end_upgraded() {
  if (phase_ != phase::upgraded)
    return;
  response_done_ = true;
  if (pumping_)
    pump_again_ = true;
  else
    pump();
}

void connection::pump() {
  if (pumping_) {
    pump_again_ = true;
    return;
  }
  auto self = shared_from_this();
  pumping_ = true;
  do {
    pump_again_ = false;
    flush_output();
    if (phase_ == phase::closed)
      break;
    if (phase_ == phase::answering && response_done_ && out_offset_ == out_.size())
      finish_response();
    if (phase_ == phase::upgraded && response_done_ && out_offset_ == out_.size()) {
      if (auto protocol = std::exchange(upgraded_, nullptr))
        protocol->on_closed();
      start_lingering();
    }
    if (phase_ == phase::reading && !pending_in_.empty()) {
      std::string input;
      input.swap(pending_in_);
      consume(input.data(), input.size());
    }
    if ((phase_ == phase::reading || phase_ == phase::lingering || phase_ == phase::upgraded) && read_more_) {
      read_more_ = false;
      if (read_socket(read_budget)) {
        // More may be waiting, but the other connections of this thread get their turn first.
        outbound resume;
        resume.target = weak_from_this();
        resume.resume = true;
        inbox_->push(std::move(resume));
      }
    }
  } while (pump_again_ && phase_ != phase::closed);
  pumping_ = false;
  if (phase_ != phase::closed)
    update_interest();
}

void connection::flush_output() {
  while (out_offset_ < out_.size()) {
    auto n = ::send(fd(), out_.data() + out_offset_, out_.size() - out_offset_, MSG_NOSIGNAL);
    if (n > 0) {
      process_connection_totals().bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      out_offset_ += static_cast<size_t>(n);
      queued_.fetch_sub(n, std::memory_order_acq_rel);
      write_progress_ = clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return; // update_interest asks for EPOLLOUT
    close_now();
    return;
  }
  if (!out_.empty()) {
    out_.clear();
    out_offset_ = 0;
  }
}

bool connection::read_socket(size_t budget) {
  auto& buffer = owner_.read_buffer();
  size_t total = 0;
  while (phase_ == phase::reading || phase_ == phase::lingering || phase_ == phase::upgraded) {
    if (total >= budget)
      return true;
    auto n = ::recv(fd(), buffer.data(), buffer.size(), 0);
    if (n > 0) {
      process_connection_totals().bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      total += static_cast<size_t>(n);
      if (phase_ == phase::lingering) {
        discarded_ += static_cast<size_t>(n);
        if (discarded_ > linger_discard_limit) {
          close_now();
          return false;
        }
        continue;
      }
      if (phase_ == phase::upgraded) {
        if (auto protocol = upgraded_; protocol && !response_done_) // ending: what still arrives is not read
          protocol->on_input(*this, buffer.data(), static_cast<size_t>(n)); // held: it may close the connection
        continue;
      }
      consume(buffer.data(), static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return false;
    // EOF, or the client reset the connection. A request cut short gets no answer: nobody would read it.
    client_done_ = true;
    close_now();
    return false;
  }
  return false;
}

void connection::consume(const char* data, size_t size) {
  while (size > 0 && phase_ == phase::reading && !refused_) {
    bool had_message = parser_.in_message();
    bool had_head = parser_.reading_body();
    auto result = parser_.feed(data, size);
    data += result.consumed;
    size -= result.consumed;
    if (!had_message && parser_.in_message())
      head_since_ = clock::now();
    if (parser_.reading_body() || had_head)
      body_progress_ = clock::now();
    switch (result.what) {
    case http1_parser::status::need_more:
      break;
    case http1_parser::status::complete: {
      phase_ = phase::answering;
      response_done_ = false;
      close_after_ = false;
      streaming_ = false;
      first_request_ = false;
      if (size > 0)
        pending_in_.assign(data, size); // a pipelined request: parsed once this one is answered
      auto head = parser_.take_head();
      auto body = parser_.take_body();
      owner_.sink().dispatch(shared_from_this(), std::move(head), std::move(body));
      return;
    }
    case http1_parser::status::failed:
      refuse(parser_.reading_body() ? &parser_.head() : nullptr, parser_.error());
      return;
    }
  }
}

body_decision connection::decide(const request_head& head) {
  auto decision = owner_.sink().decide(*this, head);
  if (!decision.refuse && head.expect_continue && head.has_body()
      && (!head.content_length || *head.content_length <= decision.max_body_bytes)) {
    // The client waits for this before it sends the body (curl waits a second otherwise).
    static constexpr char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    queued_.fetch_add(static_cast<int64_t>(sizeof continue_line - 1), std::memory_order_acq_rel);
    append_output(std::string{continue_line, sizeof continue_line - 1});
    pump_again_ = true;
  }
  return decision;
}

void connection::refuse(const request_head* head, framing_error err) {
  begin_refusal();
  pending_in_.clear();
  owner_.sink().refuse(shared_from_this(), head, err);
}

void connection::finish_response() {
  stall_limit_ = std::chrono::milliseconds{0};
  answer_deadline_.reset(); // the answer is out: the route's limit is met
  answer_expired_ = nullptr;
  streaming_ = false;
  if (close_after_ || client_done_ || refused_) {
    start_lingering();
    return;
  }
  phase_ = phase::reading;
  parser_.next();
  response_done_ = false;
  idle_since_ = clock::now();
  read_more_ = true; // the next request may have arrived while this one was answered
}

void connection::start_lingering() {
  if (client_done_) {
    close_now();
    return;
  }
  ::shutdown(fd(), SHUT_WR);
  phase_ = phase::lingering;
  linger_since_ = clock::now();
  read_more_ = true;
}

void connection::close_now() {
  if (phase_ == phase::closed)
    return;
  phase_ = phase::closed;
  gone_.store(true, std::memory_order_release);
  out_ = std::string{};
  out_offset_ = 0;
  pending_in_ = std::string{};
  reservation.reset();
  auto protocol = std::exchange(upgraded_, nullptr);
  owner_.remove(*this);
  if (protocol)
    protocol->on_closed();
}

void connection::update_interest() {
  unsigned desired = interest_read | interest_shutdown;
  if (out_offset_ < out_.size())
    desired |= interest_write;
  if (desired != interest_) {
    interest_ = desired;
    owner_.set_interest(fd(), desired);
  }
}

void connection::on_tick(steady_time now) {
  auto self = shared_from_this();
  if (out_offset_ < out_.size()) {
    auto limit = stall_limit_.count() > 0 ? stall_limit_ : owner_.limits().send_timeout;
    if (now - write_progress_ > limit) {
      close_now(); // the client stopped reading
      return;
    }
  }
  const auto& limits = owner_.limits();
  switch (phase_) {
  case phase::reading:
    if (parser_.in_message()) {
      if (parser_.reading_body()) {
        if (now - body_progress_ > limits.body_timeout)
          refuse(&parser_.head(), {408, "The request body stopped arriving (more than "
                                          + std::to_string(limits.body_timeout.count()) + " ms without a byte)."});
      } else if (now - head_since_ > limits.header_timeout) {
        refuse(nullptr, {408, "The request head did not arrive within "
                                + std::to_string(limits.header_timeout.count()) + " ms."});
      }
    } else if (now - idle_since_ > (first_request_ ? limits.header_timeout : limits.idle_timeout)) {
      close_now(); // idle: nobody is waiting for an answer
    }
    break;
  case phase::lingering:
    if (now - linger_since_ > limits.linger)
      close_now();
    break;
  case phase::upgraded:
    if (auto protocol = upgraded_; protocol && !response_done_)
      protocol->on_tick(*this, now); // its own heartbeat and idle limits (held: it may close the connection)
    break;
  case phase::answering:
    if (answer_deadline_ && now >= *answer_deadline_) {
      answer_deadline_.reset();
      if (auto expired = std::exchange(answer_expired_, nullptr))
        expired(); // may answer (and so deliver) right here, on this thread
    }
    break;
  case phase::closed:
    break;
  }
}

void connection::set_answer_deadline(std::optional<steady_time> deadline, std::function<void()> expired) {
  answer_deadline_ = deadline;
  answer_expired_ = std::move(expired);
}

const connection_limits& connection::limits() const {
  return owner_.limits();
}

// --- worker ---

worker::worker(std::shared_ptr<request_sink> sink, std::shared_ptr<const connection_limits> limits,
               std::shared_ptr<std::atomic<int64_t>> open_connections)
  : sink_(std::move(sink)), limits_(std::move(limits)), open_connections_(std::move(open_connections)),
    inbox_(std::make_shared<inbox>()), read_buffer_(64 * 1024) {}

void worker::adopt(const std::shared_ptr<P::Tcp::Peer>& peer) {
  int fd = peer->fd();
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // chunks of a stream leave at once
  auto c = std::make_shared<connection>(*this, peer, peer->address().host());
  connections_[fd] = c;
  process_connection_totals().open.fetch_add(1, std::memory_order_relaxed);
  c->start(clock::now());
  if (open_connections_->fetch_add(1, std::memory_order_acq_rel) + 1 > limits_->max_connections) {
    // Over the cap: a short 503 and close, delivered once the transport has registered the socket.
    c->begin_refusal();
    outbound refusal;
    refusal.target = c;
    refusal.bytes = sink_->over_capacity_response();
    refusal.last = true;
    refusal.close = true;
    c->count_queued(refusal.bytes.size());
    inbox_->push(std::move(refusal));
  }
}

void worker::on_peer_event(int fd, bool readable, bool writable, bool hangup) {
  auto it = connections_.find(fd);
  if (it == connections_.end())
    return;
  auto c = it->second;
  c->on_event(readable, writable, hangup);
}

void worker::on_inbox() {
  inbox_->take(batch_);
  for (auto& item : batch_)
    if (auto c = item.target.lock())
      c->deliver(std::move(item));
  batch_.clear();
}

void worker::on_tick() {
  auto now = clock::now();
  ticking_.clear();
  ticking_.reserve(connections_.size());
  for (auto& [fd, c] : connections_)
    ticking_.push_back(c);
  for (auto& c : ticking_)
    c->on_tick(now);
  ticking_.clear();
}

void worker::remove(connection& c) {
  int fd = c.fd();
  auto it = connections_.find(fd);
  if (it == connections_.end() || it->second.get() != &c)
    return;
  auto keep = it->second; // the caller may hold the last other reference
  connections_.erase(it);
  open_connections_->fetch_sub(1, std::memory_order_acq_rel);
  process_connection_totals().open.fetch_sub(1, std::memory_order_relaxed);
  close_peer(fd);
}

void worker::set_interest(int fd, unsigned interest) {
  modify_fd(fd, interest);
}

// --- the Pistache transport and handler ---

namespace {

class transport;

/// Pistache's Tcp::Handler: only told about new connections (reading is the transport's own).
class tcp_handler : public P::Tcp::Handler {
public:
  std::shared_ptr<P::Tcp::Handler> clone() const override { return std::make_shared<tcp_handler>(); }
  void onInput(const char*, size_t, const std::shared_ptr<P::Tcp::Peer>&) override {}
  void onConnection(const std::shared_ptr<P::Tcp::Peer>& peer) override;
};

/// Pistache's transport for one reactor thread, with the socket work done by a worker: Pistache still accepts
/// connections, registers them and dispatches readiness; the events of our sockets, the inbox and the tick timer
/// go to the worker, the rest (Pistache's own queues) to Pistache.
class transport : public P::Tcp::Transport {
public:
  transport(const std::shared_ptr<P::Tcp::Handler>& handler, std::shared_ptr<request_sink> sink,
            std::shared_ptr<const connection_limits> limits, std::shared_ptr<std::atomic<int64_t>> open)
    : P::Tcp::Transport(handler), handler_(handler), sink_(std::move(sink)), limits_(std::move(limits)),
      open_(std::move(open)), worker_(sink_, limits_, open_) {
    worker_.close_peer = [this](int fd) {
      auto it = peers.find(fd);
      if (it != peers.end()) {
        auto peer = it->second;
        removePeer(peer); // unregisters from epoll, then close(fd)
      }
    };
    worker_.modify_fd = [this](int fd, unsigned interest) {
      reactor()->modifyFd(key(), fd, static_cast<Polling::NotifyOn>(interest), Polling::Mode::Edge);
    };
  }

  ~transport() override {
    if (timer_fd_ >= 0)
      ::close(timer_fd_);
  }

  std::shared_ptr<P::Aio::Handler> clone() const override {
    return std::make_shared<transport>(handler_->clone(), sink_, limits_, open_);
  }

  void registerPoller(Polling::Epoll& poller) override {
    P::Tcp::Transport::registerPoller(poller);
    poller.addFd(worker_.queue()->fd(), P::Flags<Polling::NotifyOn>(Polling::NotifyOn::Read),
                 Polling::Tag(static_cast<uint64_t>(worker_.queue()->fd())), Polling::Mode::Level);
    timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0)
      throw std::runtime_error(std::string{"timerfd_create: "} + std::strerror(errno));
    itimerspec spec{};
    spec.it_interval.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(tick).count();
    spec.it_value = spec.it_interval;
    ::timerfd_settime(timer_fd_, 0, &spec, nullptr);
    poller.addFd(timer_fd_, P::Flags<Polling::NotifyOn>(Polling::NotifyOn::Read),
                 Polling::Tag(static_cast<uint64_t>(timer_fd_)), Polling::Mode::Level);
  }

  void onReady(const P::Aio::FdSet& fds) override {
    current_worker_scope scope{&worker_};
    std::vector<Polling::Event> theirs;
    for (const auto& entry : fds) {
      auto tag = entry.getTag().value();
      if (tag == static_cast<uint64_t>(worker_.queue()->fd())) {
        worker_.on_inbox();
      } else if (tag == static_cast<uint64_t>(timer_fd_)) {
        uint64_t expirations;
        [[maybe_unused]] auto got = ::read(timer_fd_, &expirations, sizeof expirations);
        worker_.on_tick();
      } else if (worker_.owns(static_cast<int>(tag))) {
        worker_.on_peer_event(static_cast<int>(tag), entry.isReadable(), entry.isWritable(), entry.isHangup());
      } else if (entry.isReadable()) {
        // Pistache's own queues (new peers, load requests). A stale event of a socket closed earlier in this batch
        // is ignored by Pistache (it is no longer a peer); write readiness is never Pistache's: it writes nothing.
        Polling::Event event{entry.getTag()};
        event.flags.setFlag(Polling::NotifyOn::Read);
        theirs.push_back(std::move(event));
      }
    }
    if (!theirs.empty())
      P::Tcp::Transport::onReady(P::Aio::FdSet{std::move(theirs)});
  }

  void adopt(const std::shared_ptr<P::Tcp::Peer>& peer) { worker_.adopt(peer); }

private:
  std::shared_ptr<P::Tcp::Handler> handler_;
  std::shared_ptr<request_sink> sink_;
  std::shared_ptr<const connection_limits> limits_;
  std::shared_ptr<std::atomic<int64_t>> open_;
  worker worker_;
  int timer_fd_ = -1;
};

void tcp_handler::onConnection(const std::shared_ptr<P::Tcp::Peer>& peer) {
  // Called by the transport this handler belongs to, on its reactor thread.
  static_cast<class transport*>(transport())->adopt(peer);
}

} // namespace

connection_totals& process_connection_totals() {
  static connection_totals totals;
  return totals;
}

// --- listener ---

struct http_listener::impl {
  P::Tcp::Listener listener;
  bool running = false;
};

http_listener::http_listener(std::shared_ptr<request_sink> sink, std::shared_ptr<const connection_limits> limits)
  : sink_(std::move(sink)), limits_(std::move(limits)), open_connections_(std::make_shared<std::atomic<int64_t>>(0)),
    impl_(std::make_unique<impl>()) {}

http_listener::~http_listener() {
  stop();
}

uint16_t http_listener::start(const std::string& address, uint16_t port, size_t threads) {
  auto handler = std::make_shared<tcp_handler>();
  auto& listener = impl_->listener;
  listener.init(threads, P::Flags<P::Tcp::Options>(P::Tcp::Options::ReuseAddr), "troupe-http", 4096);
  listener.setHandler(handler);
  listener.setTransportFactory([handler, sink = sink_, limits = limits_, open = open_connections_] {
    return std::make_shared<transport>(handler, sink, limits, open);
  });
  listener.bind(P::Address{address, P::Port{port}});
  listener.runThreaded();
  impl_->running = true;
  return static_cast<uint16_t>(listener.getPort());
}

void http_listener::stop() {
  if (impl_ && impl_->running) {
    impl_->running = false;
    impl_->listener.shutdown();
  }
}

} // namespace troupe::http

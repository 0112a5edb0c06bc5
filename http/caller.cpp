// The caller of http/caller.hpp: one companion actor, a sharded table of pending requests, a timeout sweeper.

#include "http/caller.hpp"

#include <pthread.h>

namespace troupe::http {

namespace {

caf::actor_companion* companion_of(const caf::strong_actor_ptr& ptr) {
  return static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(ptr));
}

} // namespace

caller::caller(caf::actor_system& sys, std::chrono::milliseconds sweep_interval)
  : companion_(caf::actor_cast<caf::strong_actor_ptr>(sys.spawn<caf::actor_companion, caf::hidden>())),
    sweep_interval_(sweep_interval) {
  companion_of(companion_)->on_enqueue([this](caf::mailbox_element_ptr answer) { deliver(std::move(answer)); });
  sweeper_ = std::thread{[this] { sweeper_loop(); }};
}

caller::~caller() {
  {
    std::lock_guard<std::mutex> guard{sweeper_mutex_};
    stopping_ = true;
  }
  sweeper_wake_.notify_all();
  sweeper_.join();
  auto* companion = companion_of(companion_);
  // Takes the companion's lock exclusively: once it returns, no delivery is running or will run.
  companion->on_enqueue({});
  caf::scoped_execution_unit unit{&companion->home_system()};
  companion->cleanup(caf::exit_reason::normal, &unit);
  for (auto& s : shards_) {
    std::unordered_map<uint64_t, entry> dropped;
    {
      std::lock_guard<std::mutex> guard{s.mutex};
      dropped.swap(s.pending);
    }
  }
}

void caller::send(caf::strong_actor_ptr dest, clock::duration timeout, handler_fn handler, caf::message content) {
  if (!dest) {
    auto error = caf::make_message(make_error(service_error::unavailable, "The receiver is not running."));
    handler(error);
    return;
  }
  auto id = (next_id_.fetch_add(1, std::memory_order_relaxed) + 1) & caf::message_id::request_id_mask;
  // duration::max(): no deadline (the request ends with its answer, or when the receiver goes down).
  auto deadline = timeout == clock::duration::max() ? clock::time_point::max() : clock::now() + timeout;
  {
    auto& s = shard_of(id);
    std::lock_guard<std::mutex> guard{s.mutex};
    s.pending.emplace(id, entry{std::move(handler), deadline});
    if (deadline < s.earliest)
      s.earliest = deadline;
  }
  // Registered first: the answer may arrive on another thread before enqueue returns.
  caf::message_id mid{caf::message_id::default_async_value | id};
  dest->enqueue(caf::make_mailbox_element(companion_, mid, {}, std::move(content)), nullptr);
}

void caller::deliver(caf::mailbox_element_ptr answer) {
  if (!answer || !answer->mid.is_response())
    return; // nothing else is addressed to the companion
  auto id = answer->mid.request_id().integer_value() & caf::message_id::request_id_mask;
  auto content = answer->move_content_to_message();
  end(id, content);
}

void caller::end(uint64_t id, caf::message& answer) {
  handler_fn handler;
  {
    auto& s = shard_of(id);
    std::lock_guard<std::mutex> guard{s.mutex};
    auto i = s.pending.find(id);
    if (i == s.pending.end()) {
      late_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    handler = std::move(i->second.handler);
    s.pending.erase(i);
  }
  handler(answer); // outside the lock: it may send the next request
}

size_t caller::pending() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mutex};
    n += s.pending.size();
  }
  return n;
}

size_t caller::sweep(clock::time_point now) {
  size_t ended = 0;
  for (auto& s : shards_) {
    std::vector<handler_fn> expired;
    {
      std::lock_guard<std::mutex> guard{s.mutex};
      if (s.earliest > now)
        continue; // nothing can be due: skip the scan
      auto earliest = clock::time_point::max();
      for (auto i = s.pending.begin(); i != s.pending.end();) {
        if (i->second.deadline <= now) {
          expired.push_back(std::move(i->second.handler));
          i = s.pending.erase(i);
        } else {
          earliest = std::min(earliest, i->second.deadline);
          ++i;
        }
      }
      s.earliest = earliest;
    }
    for (auto& handler : expired) {
      auto timeout = caf::make_message(caf::make_error(caf::sec::request_timeout));
      handler(timeout);
      ++ended;
    }
  }
  return ended;
}

void caller::sweeper_loop() {
  pthread_setname_np(pthread_self(), "troupe-caller");
  std::unique_lock<std::mutex> lock{sweeper_mutex_};
  while (!stopping_) {
    sweeper_wake_.wait_for(lock, sweep_interval_);
    if (stopping_)
      break;
    lock.unlock();
    sweep(clock::now());
    lock.lock();
  }
}

} // namespace troupe::http

#include "introspect/observed_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/response_promise.hpp>

#include <algorithm>
#include <map>
#include <tuple>

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

/// Enqueue stamps kept at most per traced actor; beyond it new messages report an unknown wait.
constexpr size_t max_stamps = 100000;

int64_t unix_us_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

int64_t micros(clock_type::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

} // namespace

actor_observer::actor_observer(caf::scheduled_actor& self) {
  const auto* config = dynamic_cast<const system_config*>(&self.home_system().config());
  if (config == nullptr || !config->probes)
    return;
  registry_ = config->probes;
  probe_ = std::make_shared<actor_probe>(self.id());
  probe_->started_unix_ms.store(unix_us_now() / 1000, std::memory_order_relaxed);
  registry_->add(probe_);
}

actor_observer::~actor_observer() {
  if (registry_)
    registry_->remove(probe_->id);
}

void actor_observer::on_enqueue(caf::scheduled_actor& self, const caf::mailbox_element* x) {
  if (!probe_)
    return;
  probe_->enqueued.fetch_add(1, std::memory_order_relaxed);
  // name() is final in stateful actors and safe to call once constructed, which any sender's handle implies.
  if (probe_->type.load(std::memory_order_relaxed) == nullptr)
    probe_->type.store(self.name(), std::memory_order_relaxed);
  if (probe_->tracing.load(std::memory_order_relaxed)) {
    auto now = clock_type::now();
    std::lock_guard<std::mutex> guard{probe_->stamps_mutex};
    if (probe_->stamps.size() < max_stamps)
      probe_->stamps[x] = now;
  }
}

void actor_observer::count_dequeued() {
  if (probe_)
    probe_->dequeued.store(probe_->dequeued.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void actor_observer::on_cleanup() {
  if (registry_)
    registry_->remove(probe_->id);
  for (auto& sink : sinks_)
    sink->close();
  sinks_.clear();
}

bool actor_observer::answer_introspection(caf::scheduled_actor& self, caf::mailbox_element& x) {
  if (x.mid.is_response())
    return false;
  auto& content = x.content();
  if (content.match_elements<debug_peek_atom, uint64_t>()) {
    auto limit = content.get_as<uint64_t>(1);
    self.current_mailbox_element(&x);
    self.make_response_promise().deliver(snapshot(self, static_cast<size_t>(limit)));
    return true;
  }
  if (content.match_elements<debug_trace_atom, trace_sink_ptr>()) {
    auto sink = content.get_as<trace_sink_ptr>(1);
    self.current_mailbox_element(&x);
    if (probe_ && sink) {
      sinks_.push_back(std::move(sink));
      probe_->tracing.store(true, std::memory_order_relaxed);
    }
    self.make_response_promise().deliver(probe_ != nullptr);
    return true;
  }
  return false;
}

mailbox_snapshot actor_observer::snapshot(caf::scheduled_actor& self, size_t limit) {
  mailbox_snapshot result;
  // Counted by (first element's type, its atom, response?) so names are built once per kind, not per message.
  using key = std::tuple<const std::type_info*, uint64_t, bool>;
  std::map<key, std::pair<const caf::mailbox_element*, uint64_t>> kinds;
  auto now = clock_type::now();
  std::unique_lock<std::mutex> stamps;
  if (probe_ && probe_->tracing.load(std::memory_order_relaxed))
    stamps = std::unique_lock<std::mutex>{probe_->stamps_mutex};
  self.mailbox().fetch_more();
  self.mailbox().queue().peek_all([&](const caf::mailbox_element& e) {
    ++result.size;
    const auto& content = e.content();
    key k{nullptr, 0, e.mid.is_response()};
    if (!content.empty()) {
      std::get<0>(k) = content.type(0).second;
      if (content.type(0).first == caf::type_nr<caf::atom_value>::value)
        std::get<1>(k) = static_cast<uint64_t>(content.get_as<caf::atom_value>(0));
    }
    auto& kind = kinds[k];
    if (kind.first == nullptr)
      kind.first = &e;
    ++kind.second;
    if (result.first.size() >= limit)
      return;
    queued_message q;
    q.content = e.copy_content_to_message();
    q.sender_id = e.sender ? e.sender->id() : 0;
    q.urgent = e.mid.is_urgent_message();
    q.response = e.mid.is_response();
    if (stamps.owns_lock())
      if (auto i = probe_->stamps.find(&e); i != probe_->stamps.end())
        q.waited_us = micros(now - i->second);
    result.first.push_back(std::move(q));
  });
  for (const auto& [k, kind] : kinds)
    result.by_type.emplace_back(
      message_type_name(self.home_system(), kind.first->content(), kind.first->mid.is_response()), kind.second);
  std::stable_sort(result.by_type.begin(), result.by_type.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return result;
}

void actor_observer::begin(caf::scheduled_actor& self, caf::mailbox_element& x, observation& o) {
  auto& probe = *probe_;
  if (probe.type.load(std::memory_order_relaxed) == nullptr)
    probe.type.store(self.name(), std::memory_order_relaxed);
  probe.busy_since_ns.store(std::max<int64_t>(1, coarse_now_ns()), std::memory_order_relaxed);
  // A trace decides before the handler runs: the handler may move the message's content away.
  if (!sinks_.empty()) {
    o.start = clock_type::now();
    sinks_.erase(std::remove_if(sinks_.begin(), sinks_.end(), [](const auto& s) { return s->closed(); }), sinks_.end());
    {
      std::lock_guard<std::mutex> guard{probe.stamps_mutex};
      if (sinks_.empty()) {
        probe.tracing.store(false, std::memory_order_relaxed);
        probe.stamps.clear();
      } else if (auto i = probe.stamps.find(&x); i != probe.stamps.end()) {
        o.waited_us = micros(o.start - i->second);
        probe.stamps.erase(i);
      }
    }
    for (auto& sink : sinks_)
      if (sink->sample(o.start))
        o.wanted.push_back(sink.get());
    if (!o.wanted.empty())
      o.type = message_type_name(self.home_system(), x.content(), x.mid.is_response());
  }
  // The message has left the mailbox (it goes back if skipped: see ~observation).
  probe.dequeued.store(probe.dequeued.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  o.begun = true;
}

actor_observer::observation::~observation() {
  probe.busy_since_ns.store(0, std::memory_order_relaxed);
  if (!begun)
    return;
  if (result == caf::invoke_message_result::skipped)
    probe.dequeued.store(probe.dequeued.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  else
    probe.processed.store(probe.processed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void actor_observer::end(caf::mailbox_element& x, observation& o) {
  if (o.wanted.empty())
    return;
  auto end = clock_type::now();
  trace_event event;
  event.at_unix_us = unix_us_now() - micros(end - o.start);
  event.type = o.type;
  event.sender_id = x.sender ? x.sender->id() : 0;
  event.waited_us = o.waited_us;
  event.processing_us = micros(end - o.start);
  for (auto* sink : o.wanted)
    sink->push(event);
}

} // namespace troupe

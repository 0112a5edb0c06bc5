#pragma once
// The security event aggregator ("auth.events"): what authentication records (failed logins, refused credentials,
// refresh token reuse, rate-limit refusals) on its way to the security_events table, at a bounded cost whatever an
// anonymous client sends.
//
//   (security_event_atom, security_event_row)   counts the event into its aggregate: type, user, address and UTC
//                                                minute (the row's first_at_ms, 0 = now); no reply
//   (security_flush_atom) -> int64_t             flushes now; the number of events handed to the writer
//   (mailbox_atom) -> size_t
//
// Every `flush_interval` the events counted since the last flush go to the DB writer as one write_request, one row per
// aggregate with its count; the writer adds each to its minute's row (persistence/messages.hpp). A flood of events of
// one kind from one address therefore costs one row a minute and at most one small write per interval. A critical
// event is flushed at once. The first event of an aggregate is logged ("security event"); the rest of its minute are
// only counted, so log lines are bounded the same way.
//
// At most `max_aggregates` aggregates are held: when a new one would exceed that, everything is flushed and
// forgotten first (the database row keeps counting; the next event of a forgotten aggregate is logged again).
// Events the writer refuses (overloaded, unavailable) are dropped and counted; a warning is logged at most once per
// `flush_interval`.

#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "persistence/writer.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace troupe {

struct security_event_counters {
  std::atomic<uint64_t> recorded{0}; // events counted
  std::atomic<uint64_t> written{0};  // events committed (within their rows' counts)
  std::atomic<uint64_t> dropped{0};  // events the writer refused or that found no writer
};

struct security_event_options {
  std::chrono::milliseconds flush_interval{1000};
  size_t max_aggregates = 10000;
  std::function<std::optional<db_writer_actor>()> writer; // the live DB writer
  std::function<int64_t()> now_unix_ms;              // system clock when empty (tests inject their own)
  std::shared_ptr<security_event_counters> counters = std::make_shared<security_event_counters>();
};

caf::actor spawn_security_events(caf::actor_system& sys, security_event_options options);

/// Writes troupe_security_events_total{outcome} from the aggregator's counters.
void add_security_event_collector(metrics_registry& metrics, std::shared_ptr<security_event_counters> counters);

} // namespace troupe

#pragma once
// The message types of persistence/'s own interface: durable writes (the writer and the connection actors) and the
// usage query. Registered by troupe::register_message_types. The messages every layer shares (mailbox_atom,
// ping_atom, health_check) live below, in introspect/messages.hpp; the query atoms sit beside their records in
// persistence/{accounts,uploads,jobs,repositories,retention}.hpp.

#include <caf/fwd.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

// --- Durable writes --------------------------------------------------------------------------------------------
// Empty strings stand for SQL NULL in the optional columns below.

/// One funnel event (table funnel_events).
struct event_row {
  std::string id;          // UUID; assigned by the writer, so a retried batch never inserts a row twice
  std::string user_id;     // UUID of the caller, "" when anonymous
  std::string ip;          // the client address
  std::string event;       // 1..64 characters
  std::string session_id;
  std::string source;
  std::string lang;
  std::string properties = "{}";  // a JSON object
  std::string occurred_at;        // RFC 3339; "" = when the server received it
  std::string request_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_row& x) {
  return f(caf::meta::type_name("event_row"), x.id, x.user_id, x.ip, x.event, x.session_id, x.source, x.lang,
           x.properties, x.occurred_at, x.request_id);
}

/// One piece of feedback (table feedback).
struct feedback_row {
  std::string id;  // UUID; assigned by the writer
  std::string user_id;
  std::string ip;
  int32_t rating = 0;  // 1..5
  std::string comment;
  std::string lang;
  std::string request_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, feedback_row& x) {
  return f(caf::meta::type_name("feedback_row"), x.id, x.user_id, x.ip, x.rating, x.comment, x.lang, x.request_id);
}

/// Security events (table security_events): failed logins, invalid or revoked credentials, refresh token reuse,
/// forbidden access, rate-limit hits. A row stands for `count` events of one type from one address (and account)
/// within one UTC minute: the writer adds it to that minute's row (one row per type, user, address and minute), so
/// a flood of events costs one row a minute. The row keeps the first event's severity, request_id and detail.
struct security_event_row {
  std::string type;      // e.g. "login_failed", "invalid_token", "refresh_reuse", "forbidden"
  std::string severity;  // "info", "warning" or "critical"
  std::string user_id;
  std::string ip;
  std::string request_id;
  std::string detail = "{}";  // a JSON object; never contains secrets
  int64_t count = 1;          // events this row stands for (>= 1)
  int64_t first_at_ms = 0;    // unix ms of the first of them (its minute is the row's); 0 = when committed
  int64_t last_at_ms = 0;     // unix ms of the last of them; 0 = first_at_ms
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, security_event_row& x) {
  return f(caf::meta::type_name("security_event_row"), x.type, x.severity, x.user_id, x.ip, x.request_id, x.detail,
           x.count, x.first_at_ms, x.last_at_ms);
}

/// Usage to add to a user's day (table usage): requests and tokens are added to what is stored.
struct usage_row {
  std::string user_id;
  std::string day;  // YYYY-MM-DD, the quota day
  int64_t requests = 0;
  int64_t tokens = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, usage_row& x) {
  return f(caf::meta::type_name("usage_row"), x.user_id, x.day, x.requests, x.tokens);
}

/// One upstream call of the AI gateway (table usage_events, migration 0008): written once, by its own id.
struct usage_event_row {
  std::string id;         // a random UUID chosen by the writer of the row: a retried batch inserts it once
  std::string user_id;
  std::string api_key_id; // "" = the call was made with a bearer token
  std::string request_id;
  std::string model;
  std::string upstream;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cost_pusd = 0;  // pico-dollars (10^-12 USD) at the configured prices (config/prices.hpp)
  bool estimated = false; // the upstream reported no usage: the tokens are estimated from the text
  std::string outcome;    // "complete", "client_gone" or "failed"
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, usage_event_row& x) {
  return f(caf::meta::type_name("usage_event_row"), x.id, x.user_id, x.api_key_id, x.request_id, x.model, x.upstream,
           x.prompt_tokens, x.completion_tokens, x.cost_pusd, x.estimated, x.outcome);
}

/// (usage_load_atom, user_id, day) -> int64_t: requests counted for the user on that quota day (db.query).
using usage_load_atom = caf::atom_constant<caf::atom("usageload")>;

/// Rows that commit together or not at all, with an optional idempotency key: a second request with the same
/// (scope, key) within 24 h writes nothing and gets the first one's result.
struct write_request {
  std::string scope;            // whose keys: "user:<id>" or "ip:<address>"
  std::string idempotency_key;  // "" = none
  std::string request_hash;     // identifies the request's content; a reused key with another hash is a conflict
  std::string result;           // the JSON document to return once committed (and on every replay)
  std::vector<event_row> events;
  std::vector<feedback_row> feedback;
  std::vector<security_event_row> security_events;
  std::vector<usage_row> usage;
  std::vector<usage_event_row> usage_events;

  size_t rows() const {
    return events.size() + feedback.size() + security_events.size() + usage.size() + usage_events.size();
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_request& x) {
  return f(caf::meta::type_name("write_request"), x.scope, x.idempotency_key, x.request_hash, x.result, x.events,
           x.feedback, x.security_events, x.usage, x.usage_events);
}

/// The answer to a committed write_request.
struct write_result {
  std::string result;     // the JSON document of the request (or of the first request, on a replay)
  bool replayed = false;  // true when an earlier request with the same idempotency key had committed it
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_result& x) {
  return f(caf::meta::type_name("write_result"), x.result, x.replayed);
}

/// The outcome of one request of a batch: committed (error_code 0) or failed alone.
struct write_outcome {
  uint8_t error_code = 0;  // a troupe::service_error; 0 = committed
  std::string message;     // why it failed, for the client (never contains secrets)
  write_result committed;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_outcome& x) {
  return f(caf::meta::type_name("write_outcome"), x.error_code, x.message, x.committed);
}

/// (write_atom, write_request) -> write_result: to the DB writer. Answers only after COMMIT; fails with
/// service_error::overloaded when its queue is full, unavailable when the database has been unreachable for longer
/// than db.max_wait_ms, invalid_input when the database rejected this request's rows, conflict for an idempotency
/// key reused with another request.
using write_atom = caf::atom_constant<caf::atom("write")>;

/// (write_later_atom, write_request): to the DB writer, no answer. For writes nobody waits for (usage rows, quota
/// counts): it may wait up to db.background_flush_ms for its batch, and rides along with any batch sent before, so
/// metering costs a few transactions a second rather than one per request. A refused (queue full, database
/// unreachable) or failed one is counted as any write is (troupe_db_write_rejections_total, _failures_total).
using write_later_atom = caf::atom_constant<caf::atom("writelater")>;

/// (commit_atom, std::vector<write_request>) -> std::vector<write_outcome>: to a connection actor. One outcome
/// per request, in order; fails as a whole (service_error::unavailable) when the connection is lost, in which case
/// nothing is known about the batch and it is safe to send again.
using commit_atom = caf::atom_constant<caf::atom("commit")>;

/// Registers persistence's message types (the rows written, and every query's arguments and answers: accounts.hpp,
/// jobs.hpp, plans.hpp, repositories.hpp, security_status.hpp, uploads.hpp, usage.hpp, wishlist.hpp) with the
/// config. Every node calls it through troupe::register_message_types (actors/messages.hpp).
void register_persistence_types(caf::actor_system_config& cfg);

} // namespace troupe

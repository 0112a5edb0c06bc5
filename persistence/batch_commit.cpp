#include "persistence/batch_commit.hpp"

#include "persistence/ids.hpp"

#include "config/log.hpp"
#include "config/prices.hpp"
#include "config/service_error.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <optional>
#include <tuple>

namespace troupe {

namespace {

/// NULL for an empty string, for the optional columns.
const char* nullable(const std::string& text) {
  return text.empty() ? nullptr : text.c_str();
}

/// The first line of a database error, without libpq's "ERROR:  " prefix.
std::string short_reason(const std::exception& e) {
  std::string text = e.what();
  auto newline = text.find('\n');
  if (newline != std::string::npos)
    text.resize(newline);
  for (const char* prefix : {"ERROR:  ", "FATAL:  "})
    if (text.rfind(prefix, 0) == 0)
      text.erase(0, std::char_traits<char>::length(prefix));
  return text;
}

write_outcome committed(std::string result, bool replayed) {
  write_outcome out;
  out.committed = write_result{std::move(result), replayed};
  return out;
}

write_outcome failed(service_error code, std::string message) {
  write_outcome out;
  out.error_code = static_cast<uint8_t>(code);
  out.message = std::move(message);
  return out;
}

/// Claims the request's idempotency key inside `tx`. Returns nullopt when this request owns the key (fresh, or the
/// old claim expired after 24 h); otherwise the outcome to answer with (a replay, or a conflict).
std::optional<write_outcome> claim_key(pqxx::transaction_base& tx, const write_request& req) {
  if (!tx.exec_prepared("troupe_claim_key", req.scope, req.idempotency_key, req.request_hash, req.result).empty())
    return std::nullopt;
  auto row = tx.exec_prepared1("troupe_get_key", req.scope, req.idempotency_key);
  if (row[0].as<std::string>() != req.request_hash)
    return failed(service_error::conflict,
                  "This Idempotency-Key was already used with a different request; use a new key.");
  return committed(row[1].as<std::string>(), true);
}

const std::vector<std::string> event_columns{"id",     "user_id", "ip",         "event",       "session_id",
                                             "source", "lang",    "properties", "occurred_at", "request_id"};
const std::vector<std::string> feedback_columns{"id", "user_id", "ip", "rating", "comment", "lang", "request_id"};
const std::vector<std::string> usage_event_columns{"id",           "user_id",       "api_key_id",        "request_id",
                                                   "model",        "upstream",      "prompt_tokens",     "completion_tokens",
                                                   "cost_usd",     "estimated",     "outcome"};

/// A PostgreSQL array literal of values that need no quoting (UUIDs, dates, integers).
template <class Value>
std::string array_literal(const std::vector<const usage_row*>& rows, Value value) {
  std::string out = "{";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i)
      out += ',';
    out += value(*rows[i]);
  }
  return out + "}";
}

/// A PostgreSQL array literal of one text field of `rows`, each value quoted (any content); an empty value is NULL
/// when `empty_is_null`.
std::string text_array_literal(const std::vector<const security_event_row*>& rows,
                               std::string security_event_row::*field, bool empty_is_null = false) {
  std::string out = "{";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i)
      out += ',';
    const std::string& text = rows[i]->*field;
    if (empty_is_null && text.empty()) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : text) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

/// A PostgreSQL array literal of one integer field of `rows`, at least `min` each.
std::string integer_array_literal(const std::vector<const security_event_row*>& rows,
                                  int64_t security_event_row::*field, int64_t min) {
  std::string out = "{";
  for (size_t i = 0; i < rows.size(); ++i)
    out += (i ? "," : "") + std::to_string(std::max(min, rows[i]->*field));
  return out + "}";
}

/// Adds security events to their minutes' rows (persistence/messages.hpp: one row per type, user, address and UTC
/// minute), summing the rows of one key first: one statement for any number of rows.
void add_security_events(pqxx::transaction_base& tx, const std::vector<const security_event_row*>& rows) {
  if (rows.empty())
    return;
  using row = security_event_row;
  tx.exec_prepared("troupe_add_security_events", text_array_literal(rows, &row::type),
                   text_array_literal(rows, &row::severity), text_array_literal(rows, &row::user_id, true),
                   text_array_literal(rows, &row::ip, true), text_array_literal(rows, &row::request_id, true),
                   text_array_literal(rows, &row::detail), integer_array_literal(rows, &row::count, 1),
                   integer_array_literal(rows, &row::first_at_ms, 0), integer_array_literal(rows, &row::last_at_ms, 0));
}

/// Adds usage to the users' days, summing rows of the same (user, day): one statement for any number of rows.
void add_usage(pqxx::transaction_base& tx, const std::vector<const usage_row*>& rows) {
  if (rows.empty())
    return;
  tx.exec_prepared("troupe_add_usage", array_literal(rows, [](const usage_row& u) { return u.user_id; }),
                   array_literal(rows, [](const usage_row& u) { return u.day; }),
                   array_literal(rows, [](const usage_row& u) { return std::to_string(u.tokens); }),
                   array_literal(rows, [](const usage_row& u) { return std::to_string(u.requests); }));
}

/// All requests in one transaction. Throws on any failure.
std::vector<write_outcome> commit_together(pqxx::connection& conn, const std::vector<write_request>& batch,
                                           const std::string& now) {
  std::vector<write_outcome> outcomes(batch.size());
  std::vector<bool> skip(batch.size(), false);
  pqxx::work tx{conn};
  // Keys first, in a fixed order, so two batches claiming the same keys cannot deadlock.
  std::vector<size_t> keyed;
  for (size_t i = 0; i < batch.size(); ++i)
    if (!batch[i].idempotency_key.empty())
      keyed.push_back(i);
  std::sort(keyed.begin(), keyed.end(), [&](size_t a, size_t b) {
    return std::tie(batch[a].scope, batch[a].idempotency_key) < std::tie(batch[b].scope, batch[b].idempotency_key);
  });
  for (auto i : keyed)
    if (auto answer = claim_key(tx, batch[i])) {
      outcomes[i] = std::move(*answer);
      skip[i] = true;
    }
  // Rows, streamed with COPY.
  bool any_events = false;
  bool any_feedback = false;
  bool any_usage_events = false;
  std::vector<const usage_row*> usage;
  std::vector<const security_event_row*> security;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (skip[i])
      continue;
    for (const auto& u : batch[i].usage)
      usage.push_back(&u);
    for (const auto& e : batch[i].security_events)
      security.push_back(&e);
    any_events |= !batch[i].events.empty();
    any_feedback |= !batch[i].feedback.empty();
    any_usage_events |= !batch[i].usage_events.empty();
  }
  if (any_events) {
    pqxx::stream_to copy{tx, "funnel_events", event_columns};
    for (size_t i = 0; i < batch.size(); ++i)
      if (!skip[i])
        for (const auto& e : batch[i].events)
          copy << std::make_tuple(e.id.c_str(), nullable(e.user_id), nullable(e.ip), e.event.c_str(),
                                  nullable(e.session_id), nullable(e.source), nullable(e.lang), e.properties.c_str(),
                                  e.occurred_at.empty() ? now.c_str() : e.occurred_at.c_str(), nullable(e.request_id));
    copy.complete();
  }
  if (any_feedback) {
    pqxx::stream_to copy{tx, "feedback", feedback_columns};
    for (size_t i = 0; i < batch.size(); ++i)
      if (!skip[i])
        for (const auto& f : batch[i].feedback)
          copy << std::make_tuple(f.id.c_str(), nullable(f.user_id), nullable(f.ip), f.rating, f.comment.c_str(),
                                  nullable(f.lang), nullable(f.request_id));
    copy.complete();
  }
  if (any_usage_events) {
    pqxx::stream_to copy{tx, "usage_events", usage_event_columns};
    for (size_t i = 0; i < batch.size(); ++i)
      if (!skip[i])
        for (const auto& u : batch[i].usage_events)
          copy << std::make_tuple(u.id.c_str(), u.user_id.c_str(), nullable(u.api_key_id), nullable(u.request_id),
                                  u.model.c_str(), u.upstream.c_str(), u.prompt_tokens, u.completion_tokens,
                                  config::usd_text(u.cost_pusd), u.estimated ? "t" : "f", u.outcome.c_str());
    copy.complete();
  }
  add_usage(tx, usage);
  add_security_events(tx, security);
  tx.commit();
  for (size_t i = 0; i < batch.size(); ++i)
    if (!skip[i])
      outcomes[i] = committed(batch[i].result, false);
  return outcomes;
}

/// One request in its own transaction; rows that already exist (a retried batch) are skipped.
write_outcome commit_alone(pqxx::connection& conn, const write_request& req, const std::string& now) {
  try {
    pqxx::work tx{conn};
    if (!req.idempotency_key.empty())
      if (auto answer = claim_key(tx, req))
        return *answer;
    for (const auto& e : req.events)
      tx.exec_prepared("troupe_insert_event", e.id, e.user_id, e.ip, e.event, e.session_id, e.source, e.lang,
                       e.properties, e.occurred_at.empty() ? now : e.occurred_at, e.request_id);
    for (const auto& f : req.feedback)
      tx.exec_prepared("troupe_insert_feedback", f.id, f.user_id, f.ip, f.rating, f.comment, f.lang, f.request_id);
    std::vector<const usage_row*> usage;
    for (const auto& u : req.usage)
      usage.push_back(&u);
    add_usage(tx, usage);
    for (const auto& u : req.usage_events)
      tx.exec_prepared("troupe_insert_usage_event", u.id, u.user_id, u.api_key_id, u.request_id, u.model, u.upstream,
                       u.prompt_tokens, u.completion_tokens, config::usd_text(u.cost_pusd), u.estimated, u.outcome);
    // Security events have no id of their own: a retried batch may count one twice, which is harmless for a log.
    std::vector<const security_event_row*> security;
    for (const auto& e : req.security_events)
      security.push_back(&e);
    add_security_events(tx, security);
    tx.commit();
    return committed(req.result, false);
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw;
  } catch (const pqxx::data_exception& e) {
    return failed(service_error::invalid_input, "The database rejected the data: " + short_reason(e));
  } catch (const pqxx::integrity_constraint_violation& e) {
    return failed(service_error::invalid_input, "The database rejected the data: " + short_reason(e));
  } catch (const std::exception& e) {
    log::error("write failed", log::fields{}.add("error", short_reason(e)));
    return failed(service_error::internal, "The write failed.");
  }
}

} // namespace

void prepare_write_statements(pqxx::connection& conn) {
  conn.prepare("troupe_claim_key",
               "INSERT INTO idempotency_keys (scope, key, request_hash, result) VALUES ($1, $2, $3, $4::jsonb) "
               "ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
               "result = EXCLUDED.result, created_at = now() "
               "WHERE idempotency_keys.created_at < now() - interval '24 hours' RETURNING 1");
  conn.prepare("troupe_get_key",
               "SELECT request_hash, result::text FROM idempotency_keys WHERE scope = $1 AND key = $2");
  conn.prepare("troupe_insert_event",
               "INSERT INTO funnel_events (id, user_id, ip, event, session_id, source, lang, properties, occurred_at, "
               "request_id) VALUES ($1::uuid, NULLIF($2, '')::uuid, NULLIF($3, '')::inet, $4, NULLIF($5, ''), "
               "NULLIF($6, ''), NULLIF($7, ''), $8::jsonb, $9::timestamptz, NULLIF($10, '')) "
               "ON CONFLICT (id) DO NOTHING");
  conn.prepare("troupe_insert_feedback",
               "INSERT INTO feedback (id, user_id, ip, rating, comment, lang, request_id) VALUES ($1::uuid, "
               "NULLIF($2, '')::uuid, NULLIF($3, '')::inet, $4, $5, NULLIF($6, ''), NULLIF($7, '')) "
               "ON CONFLICT (id) DO NOTHING");
  conn.prepare("troupe_insert_usage_event",
               "INSERT INTO usage_events (id, user_id, api_key_id, request_id, model, upstream, prompt_tokens, "
               "completion_tokens, cost_usd, estimated, outcome) VALUES ($1::uuid, $2::uuid, NULLIF($3, '')::uuid, "
               "NULLIF($4, ''), $5, $6, $7, $8, $9::numeric, $10, $11) ON CONFLICT (id) DO NOTHING");
  conn.prepare("troupe_add_usage",
               "INSERT INTO usage (user_id, day, tokens, requests) "
               "SELECT u, d, sum(t), sum(r) FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::bigint[]) "
               "AS x(u, d, t, r) GROUP BY u, d "
               "ON CONFLICT (user_id, day) DO UPDATE SET tokens = usage.tokens + EXCLUDED.tokens, "
               "requests = usage.requests + EXCLUDED.requests");
  // One row per (type, user, address, UTC minute) (migration 0004): rows of one key are summed first, since one
  // INSERT ... ON CONFLICT may not update a row twice; the row keeps its first event's severity, request and detail.
  conn.prepare("troupe_add_security_events",
               "INSERT INTO security_events (type, severity, user_id, ip, request_id, detail, count, minute, "
               "created_at, last_seen_at) "
               "SELECT type, (array_agg(severity ORDER BY first_at))[1], user_id, ip, "
               "(array_agg(request_id ORDER BY first_at))[1], (array_agg(detail ORDER BY first_at))[1], sum(n), "
               "minute, min(first_at), max(last_at) "
               "FROM (SELECT t AS type, s AS severity, u::uuid AS user_id, i::inet AS ip, r AS request_id, "
               "d::jsonb AS detail, n, f AS first_at, greatest(f, l) AS last_at, "
               "date_trunc('minute', f AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS minute "
               "FROM (SELECT t, s, u, i, r, d, n, "
               "CASE WHEN fm = 0 THEN now() ELSE to_timestamp(fm / 1000.0) END AS f, "
               "CASE WHEN lm = 0 THEN to_timestamp(0) ELSE to_timestamp(lm / 1000.0) END AS l "
               "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], "
               "$8::bigint[], $9::bigint[]) AS x(t, s, u, i, r, d, n, fm, lm)) AS raw) AS events "
               "GROUP BY type, user_id, ip, minute "
               "ON CONFLICT (type, user_id, ip, minute) WHERE minute IS NOT NULL DO UPDATE SET "
               "count = security_events.count + EXCLUDED.count, "
               "last_seen_at = greatest(coalesce(security_events.last_seen_at, security_events.created_at), "
               "EXCLUDED.last_seen_at)");
}

std::vector<write_outcome> commit_batch(pqxx::connection& conn, const std::vector<write_request>& batch) {
  auto now = utc_now_rfc3339();
  try {
    return commit_together(conn, batch, now);
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw;
  } catch (const std::exception& e) {
    // A bad row (or a retried batch whose rows exist, or a deadlock): isolate it.
    log::debug("batch failed; committing its requests one by one",
               log::fields{}.add("requests", static_cast<uint64_t>(batch.size())).add("error", short_reason(e)));
  }
  std::vector<write_outcome> outcomes;
  outcomes.reserve(batch.size());
  for (const auto& req : batch)
    outcomes.push_back(commit_alone(conn, req, now));
  return outcomes;
}

} // namespace troupe

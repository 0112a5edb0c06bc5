#include "persistence/security_status_sql.hpp"

#include "config/service_error.hpp"

namespace troupe::security_status_sql {

namespace {

constexpr const char* since = "'epoch'::timestamptz + $1::bigint * interval '1 millisecond'";
constexpr const char* last_seen = "(extract(epoch FROM max(COALESCE(last_seen_at, created_at))) * 1000)::bigint";

std::vector<security_tally> tallies(const pqxx::result& rows, bool with_type) {
  std::vector<security_tally> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    security_tally t;
    t.subject = row[0].as<std::string>();
    int i = 1;
    if (with_type)
      t.type = row[i++].as<std::string>();
    t.count = row[i++].as<int64_t>();
    t.last_at_ms = row[i].as<int64_t>();
    out.push_back(std::move(t));
  }
  return out;
}

} // namespace

void prepare_statements(pqxx::connection& conn) {
  conn.prepare("troupe_security_by_type", std::string("SELECT type, sum(count)::bigint, ") + last_seen
                                            + " FROM security_events WHERE created_at >= " + since
                                            + " GROUP BY type ORDER BY 2 DESC, 1 LIMIT $2");
  conn.prepare("troupe_security_by_address", std::string("SELECT host(ip), type, sum(count)::bigint, ") + last_seen
                                               + " FROM security_events WHERE ip IS NOT NULL AND created_at >= "
                                               + since + " GROUP BY ip, type ORDER BY 3 DESC, 1, 2 LIMIT $2");
  conn.prepare("troupe_security_by_account", std::string("SELECT user_id::text, type, sum(count)::bigint, ") + last_seen
                                               + " FROM security_events WHERE user_id IS NOT NULL AND created_at >= "
                                               + since + " GROUP BY user_id, type ORDER BY 3 DESC, 1, 2 LIMIT $2");
  conn.prepare("troupe_security_revoked_keys",
               std::string("SELECT id::text, user_id::text, name, (extract(epoch FROM revoked_at) * 1000)::bigint "
                           "FROM api_keys WHERE revoked_at >= ")
                 + since + " ORDER BY revoked_at DESC, id LIMIT $2");
  conn.prepare("troupe_security_revoked_counts",
               std::string("SELECT (SELECT count(*) FROM api_keys WHERE revoked_at >= ") + since
                 + "), (SELECT count(*) FROM revoked_tokens WHERE expires_at > now())");
}

caf::expected<security_report> report(pqxx::transaction_base& tx, int64_t since_unix_ms, int32_t limit) {
  if (limit < 1 || limit > 1000)
    return make_error(service_error::invalid_input, "limit must be 1 to 1000.");
  security_report r;
  r.since_ms = since_unix_ms;
  r.by_type = tallies(tx.exec_prepared("troupe_security_by_type", since_unix_ms, limit), false);
  r.by_address = tallies(tx.exec_prepared("troupe_security_by_address", since_unix_ms, limit), true);
  r.by_account = tallies(tx.exec_prepared("troupe_security_by_account", since_unix_ms, limit), true);
  for (const auto& row : tx.exec_prepared("troupe_security_revoked_keys", since_unix_ms, limit)) {
    revoked_key k;
    k.id = row[0].as<std::string>();
    k.user_id = row[1].as<std::string>();
    k.name = row[2].as<std::string>();
    k.revoked_at_ms = row[3].as<int64_t>();
    r.revoked_keys.push_back(std::move(k));
  }
  auto counts = tx.exec_prepared1("troupe_security_revoked_counts", since_unix_ms);
  r.revoked_keys_in_window = counts[0].as<int64_t>();
  r.revoked_tokens_active = counts[1].as<int64_t>();
  return r;
}

} // namespace troupe::security_status_sql

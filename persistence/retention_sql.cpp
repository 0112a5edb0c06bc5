#include "persistence/retention_sql.hpp"

#include "config/service_error.hpp"

namespace troupe {

const std::vector<retention_table>& retention_tables() {
  static const std::vector<retention_table> tables{
    {"security_events", "created_at"},
    {"idempotency_keys", "created_at"},
    {"funnel_events", "received_at"},
    {"feedback", "created_at"},
  };
  return tables;
}

namespace retention_sql {

namespace {

constexpr int32_t max_batch_rows = 100000;

std::string statement_name(const std::string& table) {
  return "troupe_retention_" + table;
}

} // namespace

void prepare_statements(pqxx::connection& conn) {
  // By physical row id: works for any primary key (idempotency_keys has a composite one), and the inner SELECT is
  // served by each table's time index (a BRIN one for funnel_events, migration 0004). A row updated between the
  // two steps (an aggregated security event) keeps its new ctid and waits for the next sweep.
  for (const auto& t : retention_tables())
    conn.prepare(statement_name(t.table), std::string{"DELETE FROM "} + t.table
                                            + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + t.table + " WHERE "
                                            + t.time_column + " < to_timestamp($1::bigint / 1000.0) LIMIT $2))");
}

caf::expected<int64_t> delete_old(pqxx::transaction_base& tx, const std::string& table, int64_t cutoff_unix_ms,
                                  int32_t max_rows) {
  bool known = false;
  for (const auto& t : retention_tables())
    known = known || table == t.table;
  if (!known)
    return make_error(service_error::invalid_input, "No retention for table " + table + ".");
  if (max_rows < 1 || max_rows > max_batch_rows)
    return make_error(service_error::invalid_input, "max_rows must be from 1 to 100000.");
  auto deleted = tx.exec_prepared0(statement_name(table), cutoff_unix_ms, max_rows).affected_rows();
  return static_cast<int64_t>(deleted);
}

} // namespace retention_sql

} // namespace troupe

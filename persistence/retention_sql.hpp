#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind persistence/retention.hpp. As in accounts_sql.hpp, it
// runs in the caller's transaction and neither commits nor catches.

#include "persistence/retention.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

namespace troupe::retention_sql {

/// Prepares one bounded DELETE per table of retention_tables(). Call once on every new connection.
void prepare_statements(pqxx::connection& conn);

caf::expected<int64_t> delete_old(pqxx::transaction_base& tx, const std::string& table, int64_t cutoff_unix_ms,
                                  int32_t max_rows);

} // namespace troupe::retention_sql

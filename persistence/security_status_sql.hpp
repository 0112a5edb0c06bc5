#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind persistence/security_status.hpp. Runs in the caller's
// transaction and neither commits nor catches.

#include "persistence/security_status.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

namespace troupe::security_status_sql {

void prepare_statements(pqxx::connection& conn);

caf::expected<security_report> report(pqxx::transaction_base& tx, int64_t since_unix_ms, int32_t limit);

} // namespace troupe::security_status_sql

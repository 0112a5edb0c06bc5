#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind persistence/usage.hpp. Runs in the caller's
// transaction, like accounts_sql.hpp.

#include "persistence/usage.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

namespace troupe::usage_sql {

caf::expected<std::vector<usage_group>> report(pqxx::transaction_base& tx, const std::string& user_id,
                                               const std::string& from_day, const std::string& to_day,
                                               usage_grouping grouping);

caf::expected<spend_totals> spend(pqxx::transaction_base& tx, const std::string& user_id, int64_t day_start,
                                  int64_t month_start);

} // namespace troupe::usage_sql

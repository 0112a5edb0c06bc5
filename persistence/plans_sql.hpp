#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind persistence/plans.hpp. As in accounts_sql.hpp, it
// runs in the caller's transaction and neither commits nor catches.

#include "persistence/plans.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

namespace troupe::plans_sql {

void prepare_statements(pqxx::connection& conn);

caf::expected<job_record> request(pqxx::transaction_base& tx, const std::string& user_id,
                                  const std::string& repository_id, const job_draft& job, int32_t max_active);
caf::expected<plan_record> store(pqxx::transaction_base& tx, const plan_record& plan);
caf::expected<plan_record> get(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id);
caf::expected<std::vector<plan_record>> list(pqxx::transaction_base& tx, const std::string& user_id,
                                             const std::string& repository_id, int32_t limit);
caf::expected<bool> remove(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id);

} // namespace troupe::plans_sql

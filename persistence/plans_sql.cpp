#include "persistence/plans_sql.hpp"

#include "persistence/content_sql.hpp"
#include "persistence/ids.hpp"

#include "config/service_error.hpp"

namespace troupe::plans_sql {

namespace {

const std::string columns = "id::text, user_id::text, repository_id::text, COALESCE(job_id::text, ''), title, "
                            "overview, sections::text, metadata::text, prompt, "
                            + content_sql::epoch_ms("created_at");

plan_record to_plan(const pqxx::row& row) {
  plan_record p;
  p.id = row[0].as<std::string>();
  p.user_id = row[1].as<std::string>();
  p.repository_id = row[2].as<std::string>();
  p.job_id = row[3].as<std::string>();
  p.title = row[4].as<std::string>();
  p.overview = row[5].as<std::string>();
  p.sections = row[6].as<std::string>();
  p.metadata = row[7].as<std::string>();
  p.prompt = row[8].as<std::string>();
  p.created_at_ms = row[9].as<int64_t>();
  return p;
}

caf::error no_plan() {
  return make_error(service_error::not_found, "No such plan.");
}

caf::error no_repository() {
  return make_error(service_error::not_found, "No such repository.");
}

bool owns_repository(pqxx::transaction_base& tx, const std::string& user_id, const std::string& repository_id) {
  return !tx.exec_prepared("troupe_plan_repository", repository_id, user_id).empty();
}

} // namespace

void prepare_statements(pqxx::connection& conn) {
  conn.prepare("troupe_plan_repository", "SELECT 1 FROM repositories WHERE id = $1::uuid AND user_id = $2::uuid");
  conn.prepare("troupe_plan_lock_user", "SELECT 1 FROM users WHERE id = $1::uuid FOR NO KEY UPDATE");
  conn.prepare("troupe_plan_active", "SELECT count(*) FROM jobs WHERE user_id = $1::uuid AND kind = 'plan' "
                                     "AND state IN ('queued', 'running', 'retrying')");
  // A retried job's second INSERT changes nothing; the plan it stored the first time is read back instead.
  conn.prepare("troupe_plan_store",
               "INSERT INTO plans (user_id, repository_id, job_id, title, overview, sections, metadata, prompt) "
               "VALUES ($1::uuid, $2::uuid, NULLIF($3, '')::uuid, $4, $5, $6::jsonb, $7::jsonb, $8) "
               "ON CONFLICT (job_id) DO NOTHING RETURNING "
                 + columns);
  conn.prepare("troupe_plan_of_job", "SELECT " + columns + " FROM plans WHERE job_id = $1::uuid");
  conn.prepare("troupe_plan_get", "SELECT " + columns + " FROM plans WHERE id = $1::uuid AND user_id = $2::uuid");
  conn.prepare("troupe_plan_list", "SELECT " + columns
                                     + " FROM plans WHERE repository_id = $1::uuid "
                                       "ORDER BY created_at DESC, id DESC LIMIT $2");
  conn.prepare("troupe_plan_delete", "DELETE FROM plans WHERE id = $1::uuid AND user_id = $2::uuid");
}

caf::expected<job_record> request(pqxx::transaction_base& tx, const std::string& user_id,
                                  const std::string& repository_id, const job_draft& job, int32_t max_active) {
  if (!is_uuid(user_id) || !is_uuid(repository_id) || !owns_repository(tx, user_id, repository_id))
    return no_repository();
  tx.exec_prepared("troupe_plan_lock_user", user_id);
  if (tx.exec_prepared1("troupe_plan_active", user_id)[0].as<int64_t>() >= max_active)
    return make_error(service_error::rate_limited, "At most " + std::to_string(max_active)
                                                     + " plans may be in the making at once; wait for one to end.");
  return jobs_sql::enqueue(tx, user_id, job);
}

caf::expected<plan_record> store(pqxx::transaction_base& tx, const plan_record& plan) {
  if (!is_uuid(plan.user_id) || !is_uuid(plan.repository_id))
    return no_repository();
  if (!plan.job_id.empty() && !is_uuid(plan.job_id))
    return make_error(service_error::invalid_input, "The plan's job id is not a job's.");
  auto rows = tx.exec_prepared("troupe_plan_store", plan.user_id, plan.repository_id, plan.job_id, plan.title,
                               plan.overview, plan.sections, plan.metadata, plan.prompt);
  if (!rows.empty())
    return to_plan(rows[0]);
  auto stored = tx.exec_prepared("troupe_plan_of_job", plan.job_id);
  if (stored.empty())
    return make_error(service_error::conflict, "The plan could not be stored; retry.");
  return to_plan(stored[0]);
}

caf::expected<plan_record> get(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id) {
  if (!is_uuid(user_id) || !is_uuid(id))
    return no_plan();
  auto rows = tx.exec_prepared("troupe_plan_get", id, user_id);
  if (rows.empty())
    return no_plan();
  return to_plan(rows[0]);
}

caf::expected<std::vector<plan_record>> list(pqxx::transaction_base& tx, const std::string& user_id,
                                             const std::string& repository_id, int32_t limit) {
  if (limit < 1 || limit > 50)
    return make_error(service_error::invalid_input, "limit must be 1 to 50.");
  if (!is_uuid(user_id) || !is_uuid(repository_id) || !owns_repository(tx, user_id, repository_id))
    return no_repository();
  std::vector<plan_record> out;
  for (const auto& row : tx.exec_prepared("troupe_plan_list", repository_id, limit))
    out.push_back(to_plan(row));
  return out;
}

caf::expected<bool> remove(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id) {
  if (!is_uuid(user_id) || !is_uuid(id))
    return no_plan();
  if (tx.exec_prepared0("troupe_plan_delete", id, user_id).affected_rows() == 0)
    return no_plan();
  return true;
}

} // namespace troupe::plans_sql

#include "persistence/usage_sql.hpp"

#include "persistence/ids.hpp"

#include "config/service_error.hpp"

namespace troupe::usage_sql {

caf::expected<std::vector<usage_group>> report(pqxx::transaction_base& tx, const std::string& user_id,
                                               const std::string& from_day, const std::string& to_day,
                                               usage_grouping grouping) {
  if (!is_uuid(user_id))
    return make_error(service_error::not_found, "No such user.");
  // The group's key and label; every other part of the statement is the same. Days are UTC days.
  const char* key = "e.model";
  const char* label = "''";
  const char* join = "";
  switch (grouping) {
    case usage_grouping::model:
      break;
    case usage_grouping::key:
      key = "coalesce(e.api_key_id::text, '')";
      label = "coalesce(max(k.name), '')";
      join = " LEFT JOIN api_keys k ON k.id = e.api_key_id";
      break;
    case usage_grouping::day:
      key = "to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
      break;
  }
  auto rows = tx.exec_params(std::string("SELECT ") + key + ", " + label
                               + ", count(*), sum(e.prompt_tokens)::bigint, sum(e.completion_tokens)::bigint, "
                                 "count(*) FILTER (WHERE e.estimated), sum(e.cost_usd)::numeric(30, 12)::text "
                                 "FROM usage_events e"
                               + join
                               + " WHERE e.user_id = $1::uuid AND e.created_at >= ($2::date)::timestamp AT TIME ZONE "
                                 "'UTC' AND e.created_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC' "
                                 "GROUP BY 1 ORDER BY 1",
                             user_id, from_day, to_day);
  std::vector<usage_group> groups;
  groups.reserve(rows.size());
  for (const auto& row : rows) {
    usage_group g;
    g.key = row[0].as<std::string>();
    g.label = row[1].as<std::string>();
    g.requests = row[2].as<int64_t>();
    g.prompt_tokens = row[3].as<int64_t>();
    g.completion_tokens = row[4].as<int64_t>();
    g.estimated = row[5].as<int64_t>();
    g.cost_usd = row[6].as<std::string>();
    groups.push_back(std::move(g));
  }
  return groups;
}

caf::expected<spend_totals> spend(pqxx::transaction_base& tx, const std::string& user_id, int64_t day_start,
                                  int64_t month_start) {
  if (!is_uuid(user_id))
    return make_error(service_error::not_found, "No such user.");
  // Pico-dollars are exact: cost_usd has 12 decimals.
  auto row = tx.exec_params1(
    "SELECT (coalesce(sum(cost_usd) FILTER (WHERE created_at >= to_timestamp($2)), 0) * 1000000000000)::bigint, "
    "(coalesce(sum(cost_usd) FILTER (WHERE created_at >= to_timestamp($3)), 0) * 1000000000000)::bigint "
    "FROM usage_events "
    "WHERE user_id = $1::uuid AND created_at >= to_timestamp(least($2, $3))",
    user_id, day_start, month_start);
  spend_totals totals;
  totals.day_pusd = row[0].as<int64_t>();
  totals.month_pusd = row[1].as<int64_t>();
  return totals;
}

} // namespace troupe::usage_sql

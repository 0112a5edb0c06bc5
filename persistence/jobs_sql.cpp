// The SQL behind persistence/jobs.hpp (see content_sql.hpp for the conventions).

#include "persistence/content_sql.hpp"
#include "persistence/ids.hpp"

#include "config/service_error.hpp"

#include <algorithm>
#include <tuple>

namespace troupe::jobs_sql {

namespace {

using content_sql::epoch_ms;

/// How many columns job_columns() names: a statement's own columns after them start at this index.
constexpr int job_column_count = 18;

/// The columns to_job reads, of the table (or alias) `t`.
std::string job_columns(const std::string& t) {
  return t + "id::text, COALESCE(" + t + "user_id::text, ''), " + t + "kind, " + t + "payload::text, " + t + "state, "
         + t + "priority, " + t + "attempts, " + t + "max_attempts, " + epoch_ms(t + "run_at") + ", COALESCE(" + t
         + "lease_owner, ''), " + epoch_ms(t + "lease_until") + ", " + t + "progress, COALESCE(" + t + "error, ''), "
         + "COALESCE(" + t + "result::text, ''), " + epoch_ms(t + "created_at") + ", " + epoch_ms(t + "updated_at")
         + ", " + epoch_ms(t + "finished_at") + ", " + t + "detail::text";
}

job_record to_job(const pqxx::row& row) {
  job_record j;
  j.id = row[0].as<std::string>();
  j.user_id = row[1].as<std::string>();
  j.kind = row[2].as<std::string>();
  j.payload = row[3].as<std::string>();
  j.state = row[4].as<std::string>();
  j.priority = row[5].as<int32_t>();
  j.attempts = row[6].as<int32_t>();
  j.max_attempts = row[7].as<int32_t>();
  j.run_at_ms = row[8].as<int64_t>();
  j.lease_owner = row[9].as<std::string>();
  j.lease_until_ms = row[10].as<int64_t>();
  j.progress = row[11].as<double>();
  j.error = row[12].as<std::string>();
  j.result = row[13].as<std::string>();
  j.created_at_ms = row[14].as<int64_t>();
  j.updated_at_ms = row[15].as<int64_t>();
  j.finished_at_ms = row[16].as<int64_t>();
  j.detail = row[17].as<std::string>();
  return j;
}

caf::error no_job() {
  return make_error(service_error::not_found, "No such job.");
}

caf::error lease_lost() {
  return make_error(service_error::conflict, "The job's lease was lost: another worker owns it now.");
}

/// The ids that are UUIDs (others cannot name a job).
std::vector<std::string> uuids_only(const std::vector<std::string>& ids) {
  std::vector<std::string> result;
  std::copy_if(ids.begin(), ids.end(), std::back_inserter(result), [](const std::string& id) { return is_uuid(id); });
  return result;
}

/// Records how an attempt ended; when the job failed for good, so did the files it had not finished, and its
/// upload's bytes (removed by the worker, or never to be used) stop counting against the owner's storage.
void end_attempt(pqxx::transaction_base& tx, const job_record& job, int32_t attempt, const std::string& outcome) {
  tx.exec_prepared0("troupe_job_attempt_end", job.id, attempt, outcome, job.error);
  if (job.state == "failed") {
    tx.exec_prepared0("troupe_job_files_failed", job.id, job.error);
    tx.exec_prepared0("troupe_job_release_upload", job.id);
  }
}

// The owner of a job in dispatch: its user, or the nil UUID for jobs of nobody (one more owner taking turns).
const std::string owner_of_job = "COALESCE(user_id, '00000000-0000-0000-0000-000000000000'::uuid)";

// Runnable jobs of one owner a claim considers, beyond the number it claims: room for as many rows being claimed
// at the same moment by other claimers (nodes), which SKIP LOCKED passes over. With fewer, a claim racing others
// for one owner's jobs may find fewer than it could take; the next claim (kick or poll) takes them.
constexpr int32_t claim_candidate_margin = 32;

/// The claim (see claim() below), in four steps. owners: a skip scan of jobs_owner_dispatch_idx, one probe per owner
/// of queued or retrying jobs. candidates: each owner's first $4 runnable jobs by priority then run_at (the order of
/// that index: an owner's thousands of jobs are not read), numbered per owner and priority (turn 1 is an owner's
/// next job). picked: by priority, then turn, then the owner served longest ago (never first), then run_at; rows
/// another claimer holds are passed over, and a row it claimed meanwhile fails the state recheck. Then the update.
std::string claim_statement() {
  const std::string runnable = "state IN ('queued', 'retrying')";
  const std::string owners = "owners(owner) AS ((SELECT " + owner_of_job + " FROM jobs WHERE " + runnable
                             + " ORDER BY 1 LIMIT 1) UNION ALL SELECT (SELECT " + owner_of_job + " FROM jobs WHERE "
                             + runnable + " AND " + owner_of_job
                             + " > o.owner ORDER BY 1 LIMIT 1) FROM owners o WHERE o.owner IS NOT NULL)";
  const std::string candidates =
    "candidates AS (SELECT c.id, c.owner, c.priority, c.run_at, "
    "row_number() OVER (PARTITION BY c.owner, c.priority ORDER BY c.run_at, c.id) AS turn "
    "FROM owners o CROSS JOIN LATERAL (SELECT j.id, o.owner, j.priority, j.run_at FROM jobs j WHERE "
    + owner_of_job + " = o.owner AND j." + runnable
    + " AND j.run_at <= now() ORDER BY j.priority DESC, j.run_at LIMIT $4) c WHERE o.owner IS NOT NULL)";
  const std::string picked =
    "picked AS (SELECT j.id, c.owner, c.turn, "
    "COALESCE((extract(epoch FROM t.served_at) * 1000000)::bigint, -1) AS served_us "
    "FROM jobs j JOIN candidates c ON c.id = j.id LEFT JOIN job_turns t ON t.owner = c.owner WHERE j."
    + runnable
    + " AND j.run_at <= now() ORDER BY c.priority DESC, c.turn, t.served_at NULLS FIRST, c.run_at, c.id "
      "LIMIT $3 FOR UPDATE OF j SKIP LOCKED)";
  return "WITH RECURSIVE " + owners + ", " + candidates + ", " + picked
         + " UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = $1, "
           "lease_until = now() + $2 * interval '1 millisecond' FROM picked WHERE j.id = picked.id RETURNING "
         + job_columns("j.") + ", picked.owner::text, picked.turn, picked.served_us";
}

} // namespace

void prepare(pqxx::connection& conn) {
  const std::pair<const char*, std::string> statements[] = {
    {"troupe_job_enqueue", "INSERT INTO jobs (user_id, kind, payload, priority, max_attempts) "
                           "VALUES (NULLIF($1, '')::uuid, $2, $3::jsonb, $4, $5) RETURNING "
                             + job_columns("")},
    // Leases that lapsed: the attempt is over; the job retries at once, or fails after its last attempt.
    {"troupe_job_lapse",
     "WITH lapsed AS (SELECT id FROM jobs WHERE state = 'running' AND lease_until < now() "
     "ORDER BY lease_until FOR UPDATE SKIP LOCKED) "
     "UPDATE jobs j SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'retrying' END, "
     "run_at = now(), lease_owner = NULL, lease_until = NULL, "
     "error = 'Attempt ' || j.attempts || ' ended without an answer: its worker or node stopped (lease expired).', "
     "finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END, "
     "detail = CASE WHEN j.attempts >= j.max_attempts THEN j.detail ELSE '{}' END "
     "FROM lapsed WHERE j.id = lapsed.id RETURNING "
       + job_columns("j.")},
    {"troupe_job_claim", claim_statement()},
    // The owners just served, in dispatch order ($2: positions): the first one served counts as served longest
    // ago. Rows in owner order, so concurrent claims lock them in one order.
    {"troupe_job_turns", "INSERT INTO job_turns AS t (owner, served_at) "
                         "SELECT o.owner, statement_timestamp() + o.pos * interval '1 microsecond' "
                         "FROM unnest($1::uuid[], $2::integer[]) AS o(owner, pos) ORDER BY o.owner "
                         "ON CONFLICT (owner) DO UPDATE SET served_at = EXCLUDED.served_at"},
    {"troupe_job_release_upload",
     "UPDATE uploads SET reserved_bytes = 0 WHERE job_id = $1::uuid AND reserved_bytes > 0"},
    {"troupe_job_attempt_start",
     "INSERT INTO job_attempts (job_id, attempt, owner) VALUES ($1::uuid, $2, $3) "
     "ON CONFLICT (job_id, attempt) DO UPDATE SET owner = EXCLUDED.owner, started_at = now(), finished_at = NULL, "
     "outcome = NULL, error = NULL"},
    {"troupe_job_attempt_end", "UPDATE job_attempts SET finished_at = now(), outcome = $3, error = NULLIF($4, '') "
                               "WHERE job_id = $1::uuid AND attempt = $2"},
    {"troupe_job_files_failed",
     "UPDATE files SET status = 'failed', error = $2 WHERE job_id = $1::uuid AND status <> 'done'"},
    {"troupe_job_renew", "UPDATE jobs SET lease_until = now() + $3 * interval '1 millisecond' "
                         "WHERE id = ANY($2::uuid[]) AND lease_owner = $1 AND state = 'running' RETURNING id::text"},
    {"troupe_job_finish", "UPDATE jobs SET state = 'done', progress = 1, result = $4::jsonb, error = NULL, "
                          "lease_owner = NULL, lease_until = NULL, finished_at = now() "
                          "WHERE id = $1::uuid AND lease_owner = $2 AND state = 'running' AND attempts = $3 RETURNING "
                            + job_columns("")},
    {"troupe_job_fail",
     "UPDATE jobs SET state = CASE WHEN $5::boolean OR attempts >= max_attempts THEN 'failed' ELSE 'retrying' END, "
     "run_at = CASE WHEN $5::boolean OR attempts >= max_attempts THEN run_at "
     "ELSE now() + $6 * power(2, attempts - 1) * interval '1 millisecond' END, "
     "error = $4, lease_owner = NULL, lease_until = NULL, "
     "finished_at = CASE WHEN $5::boolean OR attempts >= max_attempts THEN now() END, "
     "detail = CASE WHEN $5::boolean OR attempts >= max_attempts THEN detail ELSE '{}' END "
     "WHERE id = $1::uuid AND lease_owner = $2 AND state = 'running' AND attempts = $3 RETURNING "
       + job_columns("")},
    {"troupe_job_release", "UPDATE jobs SET state = 'retrying', run_at = now(), attempts = attempts - 1, "
                           "lease_owner = NULL, lease_until = NULL, detail = '{}' "
                           "WHERE id = ANY($2::uuid[]) AND lease_owner = $1 AND state = 'running' "
                           "RETURNING id::text, attempts + 1"},
    {"troupe_job_get", "SELECT " + job_columns("") + " FROM jobs WHERE id = $1::uuid AND user_id = $2::uuid"},
    {"troupe_job_states", "SELECT " + job_columns("") + " FROM jobs WHERE id = ANY($1::uuid[])"},
    {"troupe_job_progress", "UPDATE jobs SET progress = $3, detail = $4::jsonb "
                            "WHERE id = $1::uuid AND lease_owner = $2 AND state = 'running'"},
    {"troupe_job_attempts", "SELECT attempt, owner, " + epoch_ms("started_at") + ", " + epoch_ms("finished_at")
                              + ", COALESCE(outcome, ''), COALESCE(error, '') FROM job_attempts "
                                "WHERE job_id = $1::uuid ORDER BY attempt"},
  };
  for (const auto& [name, sql] : statements)
    conn.prepare(name, sql);
}

caf::expected<job_record> enqueue(pqxx::transaction_base& tx, const std::string& user_id, const job_draft& draft) {
  if (!user_id.empty() && !is_uuid(user_id))
    return make_error(service_error::not_found, "No such user.");
  if (draft.kind.empty() || draft.max_attempts < 1)
    return make_error(service_error::invalid_input, "A job needs a kind and at least one attempt.");
  return to_job(
    tx.exec_prepared1("troupe_job_enqueue", user_id, draft.kind, draft.payload, draft.priority, draft.max_attempts));
}

caf::expected<std::vector<job_record>> claim(pqxx::transaction_base& tx, const std::string& owner, int64_t lease_ms,
                                             int32_t max, const std::function<void()>& on_lapse) {
  for (const auto& row : tx.exec_prepared("troupe_job_lapse")) {
    if (on_lapse)
      on_lapse();
    auto job = to_job(row);
    end_attempt(tx, job, job.attempts, "lease_expired");
  }
  std::vector<job_record> claimed;
  if (max <= 0)
    return claimed;
  struct pick {
    job_record job;
    std::string owner;
    int64_t turn;
    int64_t served_us;
  };
  std::vector<pick> picks;
  for (const auto& row : tx.exec_prepared("troupe_job_claim", owner, lease_ms, max, max + claim_candidate_margin)) {
    picks.push_back({to_job(row), row[job_column_count].as<std::string>(), row[job_column_count + 1].as<int64_t>(),
                     row[job_column_count + 2].as<int64_t>()});
    tx.exec_prepared0("troupe_job_attempt_start", picks.back().job.id, picks.back().job.attempts, owner);
  }
  // RETURNING keeps no order: put the picks back in the claim's order.
  std::sort(picks.begin(), picks.end(), [](const pick& a, const pick& b) {
    return std::make_tuple(-a.job.priority, a.turn, a.served_us, a.job.run_at_ms, a.job.id)
           < std::make_tuple(-b.job.priority, b.turn, b.served_us, b.job.run_at_ms, b.job.id);
  });
  std::vector<std::string> owners;
  std::vector<int64_t> positions;
  for (auto& p : picks) {
    if (std::find(owners.begin(), owners.end(), p.owner) == owners.end()) {
      positions.push_back(static_cast<int64_t>(owners.size()));
      owners.push_back(p.owner);
    }
    claimed.push_back(std::move(p.job));
  }
  if (!owners.empty())
    tx.exec_prepared0("troupe_job_turns", content_sql::text_array(owners), content_sql::int_array(positions));
  return claimed;
}

caf::expected<std::vector<std::string>> renew(pqxx::transaction_base& tx, const std::string& owner,
                                              const std::vector<std::string>& ids, int64_t lease_ms) {
  std::vector<std::string> renewed;
  auto valid = uuids_only(ids);
  if (valid.empty())
    return renewed;
  for (const auto& row : tx.exec_prepared("troupe_job_renew", owner, content_sql::text_array(valid), lease_ms))
    renewed.push_back(row[0].as<std::string>());
  return renewed;
}

caf::expected<job_record> finish(pqxx::transaction_base& tx, const std::string& id, const std::string& owner,
                                 int32_t attempt, const std::string& result) {
  if (!is_uuid(id))
    return no_job();
  auto rows = tx.exec_prepared("troupe_job_finish", id, owner, attempt, result.empty() ? "{}" : result);
  if (rows.empty())
    return lease_lost();
  auto job = to_job(rows[0]);
  end_attempt(tx, job, attempt, "done");
  return job;
}

caf::expected<job_record> fail(pqxx::transaction_base& tx, const std::string& id, const std::string& owner,
                               int32_t attempt, const std::string& error, bool permanent, int64_t backoff_base_ms) {
  if (!is_uuid(id))
    return no_job();
  auto rows = tx.exec_prepared("troupe_job_fail", id, owner, attempt, error, permanent, backoff_base_ms);
  if (rows.empty())
    return lease_lost();
  auto job = to_job(rows[0]);
  end_attempt(tx, job, attempt, "failed");
  return job;
}

caf::expected<int64_t> release(pqxx::transaction_base& tx, const std::string& owner,
                               const std::vector<std::string>& ids) {
  auto valid = uuids_only(ids);
  if (valid.empty())
    return int64_t{0};
  int64_t released = 0;
  for (const auto& row : tx.exec_prepared("troupe_job_release", owner, content_sql::text_array(valid))) {
    tx.exec_prepared0("troupe_job_attempt_end", row[0].as<std::string>(), row[1].as<int32_t>(), "released", "");
    ++released;
  }
  return released;
}

caf::expected<job_record> get(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id) {
  if (!is_uuid(user_id) || !is_uuid(id))
    return no_job();
  auto rows = tx.exec_prepared("troupe_job_get", id, user_id);
  if (rows.empty())
    return no_job();
  return to_job(rows[0]);
}

caf::expected<std::vector<job_record>> states(pqxx::transaction_base& tx, const std::vector<std::string>& ids) {
  std::vector<job_record> result;
  auto valid = uuids_only(ids);
  if (valid.empty())
    return result;
  for (const auto& row : tx.exec_prepared("troupe_job_states", content_sql::text_array(valid)))
    result.push_back(to_job(row));
  return result;
}

caf::expected<bool> progress(pqxx::transaction_base& tx, const std::string& id, const std::string& owner,
                             double progress, const std::string& detail) {
  if (!is_uuid(id))
    return no_job();
  if (tx.exec_prepared0("troupe_job_progress", id, owner, std::clamp(progress, 0.0, 1.0), detail.empty() ? "{}" : detail)
        .affected_rows()
      == 0)
    return lease_lost();
  return true;
}

caf::expected<std::vector<job_attempt>> attempts(pqxx::transaction_base& tx, const std::string& id) {
  std::vector<job_attempt> result;
  if (!is_uuid(id))
    return result;
  for (const auto& row : tx.exec_prepared("troupe_job_attempts", id))
    result.push_back({row[0].as<int32_t>(), row[1].as<std::string>(), row[2].as<int64_t>(), row[3].as<int64_t>(),
                      row[4].as<std::string>(), row[5].as<std::string>()});
  return result;
}

} // namespace troupe::jobs_sql

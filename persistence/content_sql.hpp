#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind the upload, job and repository messages of
// persistence/uploads.hpp, jobs.hpp and repositories.hpp.
//
// As in accounts_sql.hpp, each function runs in the caller's transaction and neither commits nor catches: the
// connection actor (database.cpp) opens one transaction per message, commits it, and turns libpqxx exceptions
// into service errors. Answers that are not failures of the database (not_found, conflict) come back as the error
// of the caf::expected, and the connection actor rolls back whatever the function wrote before it: an error
// changes nothing. Malformed ids are answered before any SQL.

#include "persistence/jobs.hpp"
#include "persistence/repositories.hpp"
#include "persistence/uploads.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

#include <functional>
#include <string>
#include <vector>

namespace troupe {

namespace content_sql {

/// Prepares the statements of the three namespaces below. Call once on every new connection.
void prepare_statements(pqxx::connection& conn);

/// `column` as unix milliseconds, 0 for NULL.
std::string epoch_ms(const std::string& column);

/// A PostgreSQL array literal of text values ({"a","b\"c"}); values must not contain NUL.
std::string text_array(const std::vector<std::string>& values);

/// A PostgreSQL array literal of integers ({1,2,3}).
std::string int_array(const std::vector<int64_t>& values);

} // namespace content_sql

namespace uploads_sql {

void prepare(pqxx::connection& conn);

/// A user's storage_usage row, locked until the end of the transaction, as it was when locked.
struct storage_lock {
  std::string user_id;
  std::string plan;
  int64_t used_before = 0;
  int64_t limit = 0;
};

/// Locks the user's storage_usage row (creating it at 0); not_found if no such user. Every statement of the
/// transaction that changes the user's storage then runs with the row held, so a limit check made after them is
/// exact: a concurrent transaction of the same user waits for this one's COMMIT.
caf::expected<storage_lock> lock_storage(pqxx::transaction_base& tx, const std::string& user_id,
                                         const storage_limits& limits);
/// The user's storage use as this transaction sees it (its own changes included).
int64_t storage_used(pqxx::transaction_base& tx, const std::string& user_id);

caf::expected<upload_record> create(pqxx::transaction_base& tx, const upload_record& draft, int64_t expire_ms,
                                    const storage_limits& limits);
caf::expected<upload_record> load(pqxx::transaction_base& tx, const std::string& id);
caf::expected<upload_record> advance(pqxx::transaction_base& tx, const std::string& id, int64_t from_offset,
                                     int64_t to_offset, int64_t expire_ms);
caf::expected<upload_record> complete(pqxx::transaction_base& tx, const std::string& id, int64_t from_offset,
                                      const job_draft& job);
caf::expected<upload_record> complete_empty(pqxx::transaction_base& tx, const std::string& id, bool as_file,
                                            const std::string& language);
caf::expected<upload_record> terminate(pqxx::transaction_base& tx, const std::string& id);
caf::expected<std::vector<upload_record>> expire(pqxx::transaction_base& tx, int32_t max);
caf::expected<storage_status> storage(pqxx::transaction_base& tx, const std::string& user_id,
                                      const storage_limits& limits);
caf::expected<int64_t> storage_room(pqxx::transaction_base& tx, const std::string& upload_id,
                                    const storage_limits& limits);

} // namespace uploads_sql

namespace jobs_sql {

void prepare(pqxx::connection& conn);

caf::expected<job_record> enqueue(pqxx::transaction_base& tx, const std::string& user_id, const job_draft& draft);
/// Also ends the attempts whose lease lapsed (a last attempt fails its job and releases its upload's reservation);
/// `on_lapse` is called before the first of them is ended (the caller counts a storage change: storage_epoch.hpp).
caf::expected<std::vector<job_record>> claim(pqxx::transaction_base& tx, const std::string& owner, int64_t lease_ms,
                                             int32_t max, const std::function<void()>& on_lapse = {});
caf::expected<std::vector<std::string>> renew(pqxx::transaction_base& tx, const std::string& owner,
                                              const std::vector<std::string>& ids, int64_t lease_ms);
caf::expected<job_record> finish(pqxx::transaction_base& tx, const std::string& id, const std::string& owner,
                                 int32_t attempt, const std::string& result);
caf::expected<job_record> fail(pqxx::transaction_base& tx, const std::string& id, const std::string& owner,
                               int32_t attempt, const std::string& error, bool permanent, int64_t backoff_base_ms);
caf::expected<int64_t> release(pqxx::transaction_base& tx, const std::string& owner,
                               const std::vector<std::string>& ids);
caf::expected<job_record> get(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id);
caf::expected<std::vector<job_attempt>> attempts(pqxx::transaction_base& tx, const std::string& id);
caf::expected<std::vector<job_record>> states(pqxx::transaction_base& tx, const std::vector<std::string>& ids);
caf::expected<bool> progress(pqxx::transaction_base& tx, const std::string& id, const std::string& owner,
                             double progress, const std::string& detail);

} // namespace jobs_sql

namespace repositories_sql {

void prepare(pqxx::connection& conn);

caf::expected<repository_record> create(pqxx::transaction_base& tx, const std::string& user_id,
                                        const std::string& name);
caf::expected<std::vector<repository_record>> list(pqxx::transaction_base& tx, const std::string& user_id);
caf::expected<repository_record> get(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id);
caf::expected<file_page> files(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id,
                               const std::string& after, int32_t limit);
/// Runs under a statement_timeout of `timeout_ms` (0 = none): a search that takes longer is cancelled and
/// answered service_error::timeout.
caf::expected<std::vector<search_hit>> search(pqxx::transaction_base& tx, const std::string& user_id,
                                              const std::string& id, const std::string& query, int32_t limit,
                                              int64_t timeout_ms);
/// Also gives back the reservation of the job's upload (its bytes are these files now), and checks the owner's
/// storage limit with its storage_usage row locked: storage_quota_exceeded when the registration adds bytes and
/// ends over the limit.
caf::expected<std::vector<file_record>> register_files(pqxx::transaction_base& tx, const std::string& job_id,
                                                       const std::string& repository_id,
                                                       const std::vector<file_entry>& entries,
                                                       const storage_limits& limits);
caf::expected<std::vector<file_record>> resume_files(pqxx::transaction_base& tx, const std::string& job_id);
caf::expected<bool> commit_batch(pqxx::transaction_base& tx, const file_batch& batch);

} // namespace repositories_sql

} // namespace troupe

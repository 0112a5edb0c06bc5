// The SQL behind persistence/uploads.hpp (see content_sql.hpp for the conventions).

#include "persistence/content_sql.hpp"
#include "persistence/ids.hpp"

#include "config/service_error.hpp"

namespace troupe::uploads_sql {

namespace {

using content_sql::epoch_ms;

const std::string upload_columns = "id::text, user_id::text, COALESCE(repository_id::text, ''), filename, metadata, "
                                   "storage_path, upload_length, upload_offset, "
                                   + epoch_ms("created_at") + ", " + epoch_ms("expires_at") + ", "
                                   + epoch_ms("completed_at") + ", " + epoch_ms("deleted_at")
                                   + ", COALESCE(job_id::text, '')";

// A live upload can still change: not completed, not deleted, not expired.
constexpr const char* live = "completed_at IS NULL AND deleted_at IS NULL AND expires_at > now()";

upload_record to_upload(const pqxx::row& row) {
  upload_record u;
  u.id = row[0].as<std::string>();
  u.user_id = row[1].as<std::string>();
  u.repository_id = row[2].as<std::string>();
  u.filename = row[3].as<std::string>();
  u.metadata = row[4].as<std::string>();
  u.storage_path = row[5].as<std::string>();
  u.length = row[6].as<int64_t>();
  u.offset = row[7].as<int64_t>();
  u.created_at_ms = row[8].as<int64_t>();
  u.expires_at_ms = row[9].as<int64_t>();
  u.completed_at_ms = row[10].as<int64_t>();
  u.deleted_at_ms = row[11].as<int64_t>();
  u.job_id = row[12].as<std::string>();
  return u;
}

caf::error no_upload() {
  return make_error(service_error::not_found, "No such upload (it may have expired or been deleted).");
}

// The SHA-256 of no bytes: an empty file's digest.
constexpr const char* empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Why a compare-and-set on a live upload matched no row: it is gone (not_found) or its offset moved (conflict).
caf::error why_not_changed(pqxx::transaction_base& tx, const std::string& id, int64_t from_offset) {
  auto rows = tx.exec_prepared("troupe_up_state", id);
  if (rows.empty() || rows[0][1].as<bool>())
    return no_upload();
  return make_error(service_error::conflict, "The upload is at offset " + rows[0][0].as<std::string>() + ", not "
                                               + std::to_string(from_offset) + ".");
}

} // namespace

void prepare(pqxx::connection& conn) {
  const std::pair<const char*, std::string> statements[] = {
    // The upload reserves its length at once (the storage_usage trigger counts it).
    {"troupe_up_create",
     "INSERT INTO uploads (id, user_id, repository_id, filename, metadata, storage_path, upload_length, "
     "reserved_bytes, expires_at) "
     "SELECT $1::uuid, $2::uuid, r.id, $4, $5, $6, $7, $7, now() + $8 * interval '1 millisecond' "
     "FROM repositories r WHERE r.id = $3::uuid AND r.user_id = $2::uuid RETURNING "
       + upload_columns},
    // Locks the user's storage_usage row (creating it) and reads the use and the plan: held until COMMIT, it
    // serialises every change of the user's storage that checks the limit.
    {"troupe_storage_lock",
     "WITH u AS (SELECT id, plan FROM users WHERE id = $1::uuid) "
     "INSERT INTO storage_usage AS s (user_id, bytes) SELECT id, 0 FROM u "
     "ON CONFLICT (user_id) DO UPDATE SET updated_at = s.updated_at RETURNING s.bytes, (SELECT plan FROM u)"},
    {"troupe_storage_bytes", "SELECT bytes FROM storage_usage WHERE user_id = $1::uuid"},
    {"troupe_storage_get", "SELECT COALESCE(s.bytes, 0), u.plan FROM users u "
                           "LEFT JOIN storage_usage s ON s.user_id = u.id WHERE u.id = $1::uuid"},
    {"troupe_storage_room",
     "SELECT COALESCE(s.bytes, 0), us.plan, up.reserved_bytes, "
     "COALESCE((SELECT sum(f.size_bytes) FROM files f WHERE f.repository_id = up.repository_id), 0)::bigint "
     "FROM uploads up JOIN users us ON us.id = up.user_id LEFT JOIN storage_usage s ON s.user_id = up.user_id "
     "WHERE up.id = $1::uuid"},
    {"troupe_up_load", "SELECT " + upload_columns + " FROM uploads WHERE id = $1::uuid"},
    {"troupe_up_state", "SELECT upload_offset, NOT (" + std::string{live} + ") FROM uploads WHERE id = $1::uuid"},
    {"troupe_up_advance", "UPDATE uploads SET upload_offset = $3, expires_at = now() + $4 * interval '1 millisecond' "
                          "WHERE id = $1::uuid AND upload_offset = $2 AND upload_length >= $3 AND "
                            + std::string{live} + " RETURNING " + upload_columns},
    {"troupe_up_complete", "UPDATE uploads SET upload_offset = upload_length, completed_at = now() "
                           "WHERE id = $1::uuid AND upload_offset = $2 AND "
                             + std::string{live} + " RETURNING user_id::text, upload_length"},
    {"troupe_up_empty", "UPDATE uploads SET completed_at = now() "
                        "WHERE id = $1::uuid AND upload_length = 0 AND "
                          + std::string{live} + " RETURNING COALESCE(repository_id::text, ''), filename"},
    {"troupe_up_empty_file",
     "INSERT INTO files AS f (repository_id, path, size_bytes, sha256, line_count, language, is_binary, status) "
     "VALUES ($1::uuid, $2, 0, $3, 0, NULLIF($4, ''), false, 'done') "
     "ON CONFLICT (repository_id, path) DO UPDATE SET size_bytes = 0, sha256 = EXCLUDED.sha256, line_count = 0, "
     "language = EXCLUDED.language, is_binary = false, status = 'done', error = NULL, job_id = NULL RETURNING f.id"},
    {"troupe_up_file_segments_drop", "DELETE FROM file_segments WHERE file_id = $1::uuid"},
    {"troupe_up_set_job", "UPDATE uploads SET job_id = $2::uuid WHERE id = $1::uuid RETURNING " + upload_columns},
    // A completed upload keeps its reservation: its bytes are its job's until the job registers them.
    {"troupe_up_terminate", "UPDATE uploads SET deleted_at = now(), "
                            "reserved_bytes = CASE WHEN completed_at IS NULL THEN 0 ELSE reserved_bytes END "
                            "WHERE id = $1::uuid AND deleted_at IS NULL RETURNING "
                              + upload_columns},
    {"troupe_up_expire",
     "UPDATE uploads SET deleted_at = now(), reserved_bytes = 0 WHERE id IN (SELECT id FROM uploads "
     "WHERE completed_at IS NULL AND deleted_at IS NULL AND expires_at <= now() "
     "ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING "
       + upload_columns},
  };
  for (const auto& [name, sql] : statements)
    conn.prepare(name, sql);
}

caf::expected<storage_lock> lock_storage(pqxx::transaction_base& tx, const std::string& user_id,
                                         const storage_limits& limits) {
  auto rows = tx.exec_prepared("troupe_storage_lock", user_id);
  if (rows.empty())
    return make_error(service_error::not_found, "No such user.");
  storage_lock lock;
  lock.user_id = user_id;
  lock.used_before = rows[0][0].as<int64_t>();
  lock.plan = rows[0][1].as<std::string>();
  lock.limit = limits.of(lock.plan);
  return lock;
}

int64_t storage_used(pqxx::transaction_base& tx, const std::string& user_id) {
  auto rows = tx.exec_prepared("troupe_storage_bytes", user_id);
  return rows.empty() ? 0 : rows[0][0].as<int64_t>();
}

caf::expected<upload_record> create(pqxx::transaction_base& tx, const upload_record& draft, int64_t expire_ms,
                                    const storage_limits& limits) {
  if (!is_uuid(draft.id) || !is_uuid(draft.user_id))
    return make_error(service_error::invalid_input, "An upload needs a UUID and an owner.");
  if (!is_uuid(draft.repository_id))
    return make_error(service_error::not_found, "No such repository.");
  auto lock = lock_storage(tx, draft.user_id, limits);
  if (!lock)
    return std::move(lock.error());
  auto rows = tx.exec_prepared("troupe_up_create", draft.id, draft.user_id, draft.repository_id, draft.filename,
                               draft.metadata, draft.storage_path, draft.length, expire_ms);
  if (rows.empty())
    return make_error(service_error::not_found, "No such repository.");
  // The row lock makes this exact: a concurrent reservation of the same user waits for this COMMIT (or rollback).
  if (draft.length > 0 && lock->used_before + draft.length > lock->limit)
    return make_error(service_error::storage_quota_exceeded,
                      "Upload-Length " + std::to_string(draft.length)
                        + " is more than the storage left on your plan: " + std::to_string(lock->used_before)
                        + " of its " + std::to_string(lock->limit) + " bytes are in use (" + lock->plan + " plan, "
                        + std::to_string(std::max<int64_t>(0, lock->limit - lock->used_before))
                        + " bytes left). Delete unfinished uploads, or wait for them to expire, to make room.");
  return to_upload(rows[0]);
}

caf::expected<upload_record> load(pqxx::transaction_base& tx, const std::string& id) {
  if (!is_uuid(id))
    return no_upload();
  auto rows = tx.exec_prepared("troupe_up_load", id);
  if (rows.empty())
    return no_upload();
  return to_upload(rows[0]);
}

caf::expected<upload_record> advance(pqxx::transaction_base& tx, const std::string& id, int64_t from_offset,
                                     int64_t to_offset, int64_t expire_ms) {
  if (!is_uuid(id))
    return no_upload();
  if (to_offset < from_offset)
    return make_error(service_error::invalid_input, "An upload's offset never moves backwards.");
  auto rows = tx.exec_prepared("troupe_up_advance", id, from_offset, to_offset, expire_ms);
  if (rows.empty())
    return why_not_changed(tx, id, from_offset);
  return to_upload(rows[0]);
}

caf::expected<upload_record> complete(pqxx::transaction_base& tx, const std::string& id, int64_t from_offset,
                                      const job_draft& job) {
  if (!is_uuid(id))
    return no_upload();
  auto rows = tx.exec_prepared("troupe_up_complete", id, from_offset);
  if (rows.empty())
    return why_not_changed(tx, id, from_offset);
  if (rows[0][1].as<int64_t>() == 0) // nothing to process: no job
    return load(tx, id);
  auto enqueued = jobs_sql::enqueue(tx, rows[0][0].as<std::string>(), job);
  if (!enqueued)
    throw std::runtime_error("enqueueing the upload's job failed: " + to_string(enqueued.error()));
  return to_upload(tx.exec_prepared1("troupe_up_set_job", id, enqueued->id));
}

caf::expected<upload_record> complete_empty(pqxx::transaction_base& tx, const std::string& id, bool as_file,
                                            const std::string& language) {
  if (!is_uuid(id))
    return no_upload();
  auto rows = tx.exec_prepared("troupe_up_empty", id);
  if (rows.empty()) {
    auto current = load(tx, id);
    if (current && current->length != 0)
      return make_error(service_error::invalid_input, "The upload is not empty.");
    return why_not_changed(tx, id, 0);
  }
  auto repository_id = rows[0][0].as<std::string>();
  if (as_file && !repository_id.empty()) {
    auto file_id =
      tx.exec_prepared1("troupe_up_empty_file", repository_id, rows[0][1].as<std::string>(), empty_sha256, language)[0]
        .as<std::string>();
    tx.exec_prepared0("troupe_up_file_segments_drop", file_id); // those of the file it replaced
  }
  return load(tx, id);
}

caf::expected<upload_record> terminate(pqxx::transaction_base& tx, const std::string& id) {
  if (!is_uuid(id))
    return no_upload();
  auto rows = tx.exec_prepared("troupe_up_terminate", id);
  if (rows.empty())
    return no_upload();
  return to_upload(rows[0]);
}

caf::expected<std::vector<upload_record>> expire(pqxx::transaction_base& tx, int32_t max) {
  std::vector<upload_record> expired;
  for (const auto& row : tx.exec_prepared("troupe_up_expire", std::max(max, int32_t{1})))
    expired.push_back(to_upload(row));
  return expired;
}

caf::expected<storage_status> storage(pqxx::transaction_base& tx, const std::string& user_id,
                                      const storage_limits& limits) {
  if (!is_uuid(user_id))
    return make_error(service_error::not_found, "No such user.");
  auto rows = tx.exec_prepared("troupe_storage_get", user_id);
  if (rows.empty())
    return make_error(service_error::not_found, "No such user.");
  storage_status status;
  status.used_bytes = rows[0][0].as<int64_t>();
  status.plan = rows[0][1].as<std::string>();
  status.limit_bytes = limits.of(status.plan);
  return status;
}

caf::expected<int64_t> storage_room(pqxx::transaction_base& tx, const std::string& upload_id,
                                    const storage_limits& limits) {
  if (!is_uuid(upload_id))
    return no_upload();
  auto rows = tx.exec_prepared("troupe_storage_room", upload_id);
  if (rows.empty())
    return no_upload();
  auto used = rows[0][0].as<int64_t>();
  auto limit = limits.of(rows[0][1].as<std::string>());
  auto reserved = rows[0][2].as<int64_t>();
  auto repository_bytes = rows[0][3].as<int64_t>();
  return std::max<int64_t>(0, limit - used + reserved + repository_bytes);
}

} // namespace troupe::uploads_sql

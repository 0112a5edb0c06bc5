// The SQL behind persistence/uploads.hpp (see content_sql.hpp for the conventions).

#include "persistence/accounts_sql.hpp"
#include "persistence/content_sql.hpp"

#include "config/service_error.hpp"

namespace troupe::uploads_sql {

namespace {

using accounts_sql::is_uuid;
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
    {"troupe_up_create",
     "INSERT INTO uploads (id, user_id, repository_id, filename, metadata, storage_path, upload_length, expires_at) "
     "SELECT $1::uuid, $2::uuid, r.id, $4, $5, $6, $7, now() + $8 * interval '1 millisecond' "
     "FROM repositories r WHERE r.id = $3::uuid AND r.user_id = $2::uuid RETURNING "
       + upload_columns},
    {"troupe_up_load", "SELECT " + upload_columns + " FROM uploads WHERE id = $1::uuid"},
    {"troupe_up_state", "SELECT upload_offset, NOT (" + std::string{live} + ") FROM uploads WHERE id = $1::uuid"},
    {"troupe_up_advance", "UPDATE uploads SET upload_offset = $3, expires_at = now() + $4 * interval '1 millisecond' "
                          "WHERE id = $1::uuid AND upload_offset = $2 AND upload_length >= $3 AND "
                            + std::string{live} + " RETURNING " + upload_columns},
    {"troupe_up_complete", "UPDATE uploads SET upload_offset = upload_length, completed_at = now() "
                           "WHERE id = $1::uuid AND upload_offset = $2 AND "
                             + std::string{live} + " RETURNING user_id::text"},
    {"troupe_up_set_job", "UPDATE uploads SET job_id = $2::uuid WHERE id = $1::uuid RETURNING " + upload_columns},
    {"troupe_up_terminate",
     "UPDATE uploads SET deleted_at = now() WHERE id = $1::uuid AND deleted_at IS NULL RETURNING " + upload_columns},
    {"troupe_up_expire", "UPDATE uploads SET deleted_at = now() WHERE id IN (SELECT id FROM uploads "
                         "WHERE completed_at IS NULL AND deleted_at IS NULL AND expires_at <= now() "
                         "ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING "
                           + upload_columns},
  };
  for (const auto& [name, sql] : statements)
    conn.prepare(name, sql);
}

caf::expected<upload_record> create(pqxx::transaction_base& tx, const upload_record& draft, int64_t expire_ms) {
  if (!is_uuid(draft.id) || !is_uuid(draft.user_id))
    return make_error(service_error::invalid_input, "An upload needs a UUID and an owner.");
  if (!is_uuid(draft.repository_id))
    return make_error(service_error::not_found, "No such repository.");
  auto rows = tx.exec_prepared("troupe_up_create", draft.id, draft.user_id, draft.repository_id, draft.filename,
                               draft.metadata, draft.storage_path, draft.length, expire_ms);
  if (rows.empty())
    return make_error(service_error::not_found, "No such repository.");
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
  auto enqueued = jobs_sql::enqueue(tx, rows[0][0].as<std::string>(), job);
  if (!enqueued)
    throw std::runtime_error("enqueueing the upload's job failed: " + to_string(enqueued.error()));
  return to_upload(tx.exec_prepared1("troupe_up_set_job", id, enqueued->id));
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

} // namespace troupe::uploads_sql

// The SQL behind persistence/repositories.hpp (see content_sql.hpp for the conventions).

#include "persistence/content_sql.hpp"
#include "persistence/ids.hpp"

#include "config/service_error.hpp"

#include <algorithm>
#include <map>

namespace troupe::repositories_sql {

namespace {

using content_sql::epoch_ms;

// Rows per INSERT when registering files: bounded statements whatever the archive.
constexpr size_t register_rows_per_statement = 5000;

const std::string repository_columns = "r.id::text, r.user_id::text, r.name, " + epoch_ms("r.created_at");
const std::string file_columns = "f.id::text, f.repository_id::text, f.path, f.size_bytes, COALESCE(f.sha256, ''), "
                                 "COALESCE(f.line_count::bigint, -1), COALESCE(f.language, ''), "
                                 "CASE WHEN f.is_binary IS NULL THEN -1 WHEN f.is_binary THEN 1 ELSE 0 END, "
                                 "f.status, COALESCE(f.error, ''), "
                                 + epoch_ms("f.updated_at");

repository_record to_repository(const pqxx::row& row) {
  repository_record r;
  r.id = row[0].as<std::string>();
  r.user_id = row[1].as<std::string>();
  r.name = row[2].as<std::string>();
  r.created_at_ms = row[3].as<int64_t>();
  return r;
}

file_record to_file(const pqxx::row& row) {
  file_record f;
  f.id = row[0].as<std::string>();
  f.repository_id = row[1].as<std::string>();
  f.path = row[2].as<std::string>();
  f.size = row[3].as<int64_t>();
  f.sha256 = row[4].as<std::string>();
  f.lines = row[5].as<int64_t>();
  f.language = row[6].as<std::string>();
  f.binary = static_cast<int8_t>(row[7].as<int>());
  f.status = row[8].as<std::string>();
  f.error = row[9].as<std::string>();
  f.updated_at_ms = row[10].as<int64_t>();
  return f;
}

caf::error no_repository() {
  return make_error(service_error::not_found, "No such repository.");
}

/// Whether the repository exists and is the user's.
bool owns(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id) {
  return is_uuid(user_id) && is_uuid(id) && !tx.exec_prepared("troupe_repo_owned", id, user_id).empty();
}

/// UPDATE ... FROM (VALUES ...) marking finished files done, in one statement. Every value is quoted or a number.
std::string finished_update(pqxx::transaction_base& tx, const std::vector<file_outcome>& finished) {
  std::string sql = "UPDATE files f SET size_bytes = v.size, sha256 = v.sha, line_count = v.lines, "
                    "language = NULLIF(v.lang, ''), is_binary = v.bin, status = 'done', error = NULL FROM (VALUES ";
  for (size_t i = 0; i < finished.size(); ++i) {
    const auto& o = finished[i];
    sql += i == 0 ? "(" : ", (";
    sql += tx.quote(o.file_id) + "::uuid, " + std::to_string(o.size) + "::bigint, " + tx.quote(o.sha256) + "::text, ";
    sql += o.binary ? std::string{"NULL::integer, "} : std::to_string(o.lines) + "::integer, ";
    sql += tx.quote(o.language) + "::text, " + (o.binary ? "true" : "false") + ")";
  }
  sql += ") AS v(id, size, sha, lines, lang, bin) WHERE f.id = v.id";
  return sql;
}

} // namespace

void prepare(pqxx::connection& conn) {
  const std::pair<const char*, std::string> statements[] = {
    {"troupe_repo_create",
     "INSERT INTO repositories AS r (user_id, name) VALUES ($1::uuid, $2) RETURNING " + repository_columns},
    {"troupe_repo_list",
     "SELECT " + repository_columns + " FROM repositories r WHERE r.user_id = $1::uuid ORDER BY r.name"},
    {"troupe_repo_owned", "SELECT 1 FROM repositories WHERE id = $1::uuid AND user_id = $2::uuid"},
    {"troupe_repo_get", "SELECT " + repository_columns
                          + ", count(f.id), COALESCE(sum(f.size_bytes), 0)::bigint, "
                            "count(f.id) FILTER (WHERE f.status = 'done'), "
                            "count(f.id) FILTER (WHERE f.status = 'failed') "
                            "FROM repositories r LEFT JOIN files f ON f.repository_id = r.id "
                            "WHERE r.id = $1::uuid AND r.user_id = $2::uuid GROUP BY r.id"},
    {"troupe_repo_files",
     "SELECT " + file_columns
       + " FROM files f WHERE f.repository_id = $1::uuid AND f.path > $2 ORDER BY f.path LIMIT $3"},
    // The snippet marks the query's words, found with an OR of them (h) rather than with the query itself:
    // ts_headline given a query of many phrases ("a b" or "c d" or ...) allocates gigabytes per second (PostgreSQL
    // 15, measured: 3 GB in 2 s on one 2 KiB segment), while an OR of words takes milliseconds. The tsquery literal
    // takes each word verbatim (quoted; \ and ' escaped), so it is not parsed into phrases again.
    {"troupe_repo_search",
     R"(SELECT f.id::text, f.path, s.start_line, s.end_line, ts_rank(s.tsv, q) AS rank, )"
     R"(COALESCE(ts_headline('simple', s.content, words.h, )"
     R"('StartSel=«, StopSel=», MaxWords=24, MinWords=8, MaxFragments=1'), '') )"
     R"(FROM file_segments s JOIN files f ON f.id = s.file_id, websearch_to_tsquery('simple', $2) q, )"
     R"((SELECT string_agg('''' || replace(replace(w, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery AS h )"
     R"(FROM unnest(tsvector_to_array(to_tsvector('simple', $2))) AS w) words )"
     R"(WHERE f.repository_id = $1::uuid AND f.status = 'done' AND s.tsv @@ q )"
     R"(ORDER BY rank DESC, f.path, s.start_line LIMIT $3)"},
    {"troupe_files_register",
     "INSERT INTO files AS f (repository_id, path, size_bytes, status, job_id) "
     "SELECT $2::uuid, t.path, t.size, 'processing', $1::uuid FROM unnest($3::text[], $4::bigint[]) AS t(path, size) "
     "ON CONFLICT (repository_id, path) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, status = 'processing', "
     "job_id = EXCLUDED.job_id, sha256 = NULL, line_count = NULL, language = NULL, is_binary = NULL, error = NULL "
     "RETURNING "
       + file_columns},
    {"troupe_repo_owner", "SELECT user_id::text FROM repositories WHERE id = $1::uuid"},
    // The upload's bytes became the job's files: its reservation goes (the files count instead).
    {"troupe_files_release_upload",
     "UPDATE uploads SET reserved_bytes = 0 WHERE job_id = $1::uuid AND reserved_bytes > 0"},
    {"troupe_files_drop_segments", "DELETE FROM file_segments WHERE file_id IN "
                                   "(SELECT id FROM files WHERE job_id = $1::uuid AND status <> 'done')"},
    {"troupe_files_resume",
     "UPDATE files SET status = 'processing', error = NULL WHERE job_id = $1::uuid AND status <> 'done'"},
    {"troupe_files_of_job", "SELECT " + file_columns + " FROM files f WHERE f.job_id = $1::uuid ORDER BY f.path"},
    {"troupe_files_progress",
     "UPDATE jobs SET progress = $3, detail = $4::jsonb WHERE id = $1::uuid AND lease_owner = $2 AND state = 'running'"},
    {"troupe_files_drop_binary", "DELETE FROM file_segments WHERE file_id = ANY($1::uuid[])"},
  };
  for (const auto& [name, sql] : statements)
    conn.prepare(name, sql);
}

caf::expected<repository_record> create(pqxx::transaction_base& tx, const std::string& user_id,
                                        const std::string& name) {
  if (!is_uuid(user_id))
    return make_error(service_error::not_found, "No such user.");
  // A taken name fails on the UNIQUE (user_id, name) index (conflict), an unknown user on the foreign key.
  return to_repository(tx.exec_prepared1("troupe_repo_create", user_id, name));
}

caf::expected<std::vector<repository_record>> list(pqxx::transaction_base& tx, const std::string& user_id) {
  std::vector<repository_record> result;
  if (!is_uuid(user_id))
    return result;
  for (const auto& row : tx.exec_prepared("troupe_repo_list", user_id))
    result.push_back(to_repository(row));
  return result;
}

caf::expected<repository_record> get(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id) {
  if (!is_uuid(user_id) || !is_uuid(id))
    return no_repository();
  auto rows = tx.exec_prepared("troupe_repo_get", id, user_id);
  if (rows.empty())
    return no_repository();
  auto r = to_repository(rows[0]);
  r.files = rows[0][4].as<int64_t>();
  r.bytes = rows[0][5].as<int64_t>();
  r.files_done = rows[0][6].as<int64_t>();
  r.files_failed = rows[0][7].as<int64_t>();
  return r;
}

caf::expected<file_page> files(pqxx::transaction_base& tx, const std::string& user_id, const std::string& id,
                               const std::string& after, int32_t limit) {
  if (!owns(tx, user_id, id))
    return no_repository();
  limit = std::clamp(limit, int32_t{1}, int32_t{1000});
  file_page page;
  // One row more than asked tells whether there is a next page.
  for (const auto& row : tx.exec_prepared("troupe_repo_files", id, after, limit + 1))
    page.files.push_back(to_file(row));
  if (page.files.size() > static_cast<size_t>(limit)) {
    page.files.pop_back();
    page.next_after = page.files.back().path;
  }
  return page;
}

caf::expected<std::vector<search_hit>> search(pqxx::transaction_base& tx, const std::string& user_id,
                                              const std::string& id, const std::string& query, int32_t limit,
                                              int64_t timeout_ms) {
  if (!owns(tx, user_id, id))
    return no_repository();
  // For this transaction only: the connection goes back to no limit at its end, whatever happens.
  tx.exec0("SET LOCAL statement_timeout = " + std::to_string(std::max<int64_t>(0, timeout_ms)));
  std::vector<search_hit> hits;
  try {
    for (const auto& row :
         tx.exec_prepared("troupe_repo_search", id, query, std::clamp(limit, int32_t{1}, int32_t{100})))
      hits.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<int32_t>(), row[3].as<int32_t>(),
                      row[4].as<double>(), row[5].as<std::string>()});
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "57014") // query_canceled: statement_timeout
      throw;
    return make_error(service_error::timeout, "The search took longer than its limit of " + std::to_string(timeout_ms)
                                                + " ms and was cancelled; a more specific query is faster.");
  }
  return hits;
}

caf::expected<std::vector<file_record>> register_files(pqxx::transaction_base& tx, const std::string& job_id,
                                                       const std::string& repository_id,
                                                       const std::vector<file_entry>& entries,
                                                       const storage_limits& limits) {
  if (!is_uuid(job_id) || !is_uuid(repository_id))
    return no_repository();
  auto owner = tx.exec_prepared("troupe_repo_owner", repository_id);
  if (owner.empty())
    return no_repository();
  // The owner's storage row first: the files' bytes are counted (by trigger) under this lock.
  auto storage = uploads_sql::lock_storage(tx, owner[0][0].as<std::string>(), limits);
  if (!storage)
    return std::move(storage.error());
  // One row per path (the last entry wins): ON CONFLICT may not touch a row twice in one statement.
  std::map<std::string, int64_t> unique;
  for (const auto& e : entries)
    unique[e.path] = e.size;
  std::vector<file_record> registered;
  std::vector<std::string> paths;
  std::vector<int64_t> sizes;
  auto flush = [&] {
    for (const auto& row : tx.exec_prepared("troupe_files_register", job_id, repository_id,
                                            content_sql::text_array(paths), content_sql::int_array(sizes)))
      registered.push_back(to_file(row));
    paths.clear();
    sizes.clear();
  };
  for (const auto& [path, size] : unique) {
    paths.push_back(path);
    sizes.push_back(size);
    if (paths.size() == register_rows_per_statement)
      flush();
  }
  if (!paths.empty())
    flush();
  tx.exec_prepared0("troupe_files_release_upload", job_id);
  // Exact: bytes replaced files give back are counted, and the upload's reservation is no longer. A registration
  // that frees bytes passes even over the limit (a lowered limit, say).
  auto used = uploads_sql::storage_used(tx, storage->user_id);
  if (used > storage->used_before && used > storage->limit) {
    int64_t bytes = 0;
    for (const auto& [path, size] : unique)
      bytes += size;
    return make_error(service_error::storage_quota_exceeded,
                      "The upload's " + std::to_string(unique.size()) + " files take " + std::to_string(bytes)
                        + " bytes: with them your storage would be " + std::to_string(used) + " bytes, over the "
                        + std::to_string(storage->limit) + " bytes your plan (" + storage->plan
                        + ") allows. Nothing from it was kept.");
  }
  tx.exec_prepared0("troupe_files_drop_segments", job_id);
  std::sort(registered.begin(), registered.end(),
            [](const file_record& a, const file_record& b) { return a.path < b.path; });
  return registered;
}

caf::expected<std::vector<file_record>> resume_files(pqxx::transaction_base& tx, const std::string& job_id) {
  std::vector<file_record> result;
  if (!is_uuid(job_id))
    return result;
  tx.exec_prepared0("troupe_files_drop_segments", job_id);
  tx.exec_prepared0("troupe_files_resume", job_id);
  for (const auto& row : tx.exec_prepared("troupe_files_of_job", job_id))
    result.push_back(to_file(row));
  return result;
}

caf::expected<bool> commit_batch(pqxx::transaction_base& tx, const file_batch& batch) {
  if (!is_uuid(batch.job_id))
    return make_error(service_error::not_found, "No such job.");
  // The lease first: a worker that lost its job writes nothing.
  if (tx.exec_prepared0("troupe_files_progress", batch.job_id, batch.owner, std::clamp(batch.progress, 0.0, 1.0),
                        batch.detail.empty() ? "{}" : batch.detail)
        .affected_rows()
      == 0)
    return make_error(service_error::conflict, "The job's lease was lost: another worker owns it now.");
  if (!batch.segments.empty()) {
    pqxx::stream_to copy{tx, "file_segments",
                         std::vector<std::string>{"file_id", "seq", "start_line", "end_line", "content"}};
    for (const auto& s : batch.segments)
      copy << std::make_tuple(s.file_id.c_str(), s.seq, s.start_line, s.end_line, s.content.c_str());
    copy.complete();
  }
  if (!batch.finished.empty()) {
    tx.exec0(finished_update(tx, batch.finished));
    std::vector<std::string> binary;
    for (const auto& o : batch.finished)
      if (o.binary && is_uuid(o.file_id))
        binary.push_back(o.file_id);
    if (!binary.empty())
      tx.exec_prepared0("troupe_files_drop_binary", content_sql::text_array(binary));
  }
  return true;
}

} // namespace troupe::repositories_sql

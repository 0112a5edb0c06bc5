#pragma once
// The interface of "db.query" (persistence/query_router.hpp) and of the connection actors behind it
// (persistence/database.hpp): every typed query, grouped by the header that declares its messages and types. A
// request of a message not listed, or a handler expecting another reply, does not compile.
//
// Each query runs in one transaction on one connection; its errors are service errors (config/service_error.hpp):
// not_found, conflict, invalid_input for what the data says, unavailable when the database is unreachable.

#include "introspect/messages.hpp"
#include "persistence/accounts.hpp"
#include "persistence/jobs.hpp"
#include "persistence/messages.hpp"
#include "persistence/plans.hpp"
#include "persistence/repositories.hpp"
#include "persistence/retention.hpp"
#include "persistence/security_status.hpp"
#include "persistence/uploads.hpp"
#include "persistence/usage.hpp"
#include "persistence/wishlist.hpp"

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// Users, sessions, refresh tokens, revocations and API keys (persistence/accounts.hpp).
using account_queries = caf::typed_actor<
  /// (email, password_hash, role)
  caf::replies_to<user_create_atom, std::string, std::string, std::string>::with<user_record>,
  /// (user_id, email)
  caf::replies_to<user_guest_atom, std::string, std::string>::with<user_record>,
  caf::replies_to<user_by_email_atom, std::string>::with<user_record>,
  caf::replies_to<user_by_id_atom, std::string>::with<user_record>,
  /// (email, role)
  caf::replies_to<user_set_role_atom, std::string, std::string>::with<user_record>,
  /// (user_id)
  caf::replies_to<session_load_atom, std::string>::with<session_snapshot>,
  /// (user_id, family_id, hash, expires_at)
  caf::replies_to<refresh_issue_atom, std::string, std::string, std::string, int64_t>::with<std::string>,
  /// (old_hash, new_hash, new_expires_at)
  caf::replies_to<refresh_rotate_atom, std::string, std::string, int64_t>::with<refresh_rotation>,
  /// (hash)
  caf::replies_to<refresh_revoke_atom, std::string>::with<int64_t>,
  /// (user_id)
  caf::replies_to<refresh_revoke_user_atom, std::string>::with<int64_t>,
  /// (user_id, jti, expires_at)
  caf::replies_to<jti_revoke_atom, std::string, std::string, int64_t>::with<bool>,
  /// (user_id, name, hash, last4, limits)
  caf::replies_to<api_key_create_atom, std::string, std::string, std::string, std::string,
                  api_key_limits>::with<api_key_record>,
  /// (user_id)
  caf::replies_to<api_key_list_atom, std::string>::with<std::vector<api_key_record>>,
  /// (user_id, key_id)
  caf::replies_to<api_key_revoke_atom, std::string, std::string>::with<api_key_record>,
  /// (hash)
  caf::replies_to<api_key_lookup_atom, std::string>::with<api_key_record>,
  /// (key_id, used_at)
  caf::replies_to<api_key_touch_atom, std::string, int64_t>::with<bool>,
  caf::replies_to<auth_purge_atom>::with<int64_t>>;

/// Quota use, the usage report and spend (persistence/messages.hpp, persistence/usage.hpp).
using usage_queries = caf::typed_actor<
  /// (user_id, day)
  caf::replies_to<usage_load_atom, std::string, std::string>::with<int64_t>,
  /// (user_id, from_day, to_day, grouping)
  caf::replies_to<usage_report_atom, std::string, std::string, std::string, uint8_t>::with<std::vector<usage_group>>,
  /// (user_id, day_start, month_start)
  caf::replies_to<spend_load_atom, std::string, int64_t, int64_t>::with<spend_totals>>;

/// Uploads and storage use (persistence/uploads.hpp).
using upload_queries = caf::typed_actor<
  /// (draft, expire_ms)
  caf::replies_to<upload_create_atom, upload_record, int64_t>::with<upload_record>,
  /// (id)
  caf::replies_to<upload_load_atom, std::string>::with<upload_record>,
  /// (id, from, to, expire_ms)
  caf::replies_to<upload_advance_atom, std::string, int64_t, int64_t, int64_t>::with<upload_record>,
  /// (id, from, job)
  caf::replies_to<upload_complete_atom, std::string, int64_t, job_draft>::with<upload_record>,
  /// (id, as_file, language)
  caf::replies_to<upload_empty_atom, std::string, bool, std::string>::with<upload_record>,
  /// (id)
  caf::replies_to<upload_terminate_atom, std::string>::with<upload_record>,
  /// (max)
  caf::replies_to<upload_expire_atom, int32_t>::with<std::vector<upload_record>>,
  /// (user_id)
  caf::replies_to<storage_get_atom, std::string>::with<storage_status>,
  /// (upload_id)
  caf::replies_to<storage_room_atom, std::string>::with<int64_t>>;

/// Durable jobs (persistence/jobs.hpp).
using job_queries = caf::typed_actor<
  /// (user_id, draft)
  caf::replies_to<job_enqueue_atom, std::string, job_draft>::with<job_record>,
  /// (owner, lease_ms, max)
  caf::replies_to<job_claim_atom, std::string, int64_t, int32_t>::with<std::vector<job_record>>,
  /// (owner, ids, lease_ms)
  caf::replies_to<job_renew_atom, std::string, std::vector<std::string>, int64_t>::with<std::vector<std::string>>,
  /// (id, owner, attempt, result)
  caf::replies_to<job_finish_atom, std::string, std::string, int32_t, std::string>::with<job_record>,
  /// (id, owner, attempt, error, permanent, backoff_base_ms)
  caf::replies_to<job_fail_atom, std::string, std::string, int32_t, std::string, bool, int64_t>::with<job_record>,
  /// (owner, ids)
  caf::replies_to<job_release_atom, std::string, std::vector<std::string>>::with<int64_t>,
  /// (user_id, id)
  caf::replies_to<job_get_atom, std::string, std::string>::with<job_record>,
  /// (id, owner, progress, detail)
  caf::replies_to<job_progress_atom, std::string, std::string, double, std::string>::with<bool>,
  /// (ids)
  caf::replies_to<job_states_atom, std::vector<std::string>>::with<std::vector<job_record>>,
  /// (id)
  caf::replies_to<job_attempts_atom, std::string>::with<std::vector<job_attempt>>>;

/// Repositories, their files and search (persistence/repositories.hpp).
using repository_queries = caf::typed_actor<
  /// (user_id, name)
  caf::replies_to<repo_create_atom, std::string, std::string>::with<repository_record>,
  /// (user_id)
  caf::replies_to<repo_list_atom, std::string>::with<std::vector<repository_record>>,
  /// (user_id, id)
  caf::replies_to<repo_get_atom, std::string, std::string>::with<repository_record>,
  /// (user_id, id, after, limit)
  caf::replies_to<repo_files_atom, std::string, std::string, std::string, int32_t>::with<file_page>,
  /// (user_id, id, query, limit)
  caf::replies_to<repo_search_atom, std::string, std::string, std::string, int32_t>::with<std::vector<search_hit>>,
  /// (job_id, repository_id, entries)
  caf::replies_to<files_register_atom, std::string, std::string,
                  std::vector<file_entry>>::with<std::vector<file_record>>,
  /// (job_id)
  caf::replies_to<files_resume_atom, std::string>::with<std::vector<file_record>>,
  /// (batch)
  caf::replies_to<files_commit_atom, file_batch>::with<bool>>;

/// Plans (persistence/plans.hpp), the wishlist (persistence/wishlist.hpp), the security report
/// (persistence/security_status.hpp) and retention (persistence/retention.hpp).
using product_queries = caf::typed_actor<
  /// (user_id, repository_id, job, max_active)
  caf::replies_to<plan_request_atom, std::string, std::string, job_draft, int32_t>::with<job_record>,
  /// (plan)
  caf::replies_to<plan_store_atom, plan_record>::with<plan_record>,
  /// (user_id, id)
  caf::replies_to<plan_get_atom, std::string, std::string>::with<plan_record>,
  /// (user_id, repository_id, limit)
  caf::replies_to<plan_list_atom, std::string, std::string, int32_t>::with<std::vector<plan_record>>,
  /// (user_id, id)
  caf::replies_to<plan_delete_atom, std::string, std::string>::with<bool>,
  /// (entry)
  caf::replies_to<wishlist_add_atom, wishlist_entry>::with<bool>,
  /// (after, limit)
  caf::replies_to<wishlist_list_atom, wishlist_cursor, int32_t>::with<std::vector<wishlist_entry>>,
  /// (since_unix_ms, limit)
  caf::replies_to<security_report_atom, int64_t, int32_t>::with<security_report>,
  /// (table, cutoff_unix_ms, max_rows)
  caf::replies_to<retention_delete_atom, std::string, int64_t, int32_t>::with<int64_t>>;

/// "db.query": every query above, the readiness check's ping and the mailbox size.
using db_query_actor =
  account_queries::extend_with<usage_queries, upload_queries, job_queries, repository_queries, product_queries>::extend<
    caf::replies_to<ping_atom>::with<health_check>, mailbox_size_request>;

/// A connection actor: the queries, plus the DB writer's batches (persistence/writer.hpp), which never go through
/// the router.
using db_connection_actor =
  db_query_actor::extend<caf::replies_to<commit_atom, std::vector<write_request>>::with<std::vector<write_outcome>>>;

} // namespace troupe

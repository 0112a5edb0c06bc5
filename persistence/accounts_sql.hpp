#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind the account messages of persistence/accounts.hpp.
//
// Each function runs its statements in the caller's transaction and neither commits nor catches: the connection
// actor (database.cpp) opens one transaction per message, commits it, and turns libpqxx exceptions into
// service errors. Outcomes that are answers rather than failures (not_found, unauthenticated, invalid_input for
// a malformed hash) come back as the error of the caf::expected. Malformed ids are answered before any SQL runs.

#include "persistence/accounts.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

namespace troupe::accounts_sql {

/// Prepares the statements below. Call once on every new connection.
void prepare_statements(pqxx::connection& conn);

caf::expected<user_record> user_guest(pqxx::transaction_base& tx, const std::string& user_id, const std::string& email);
caf::expected<user_record> user_create(pqxx::transaction_base& tx, const std::string& email,
                                       const std::string& password_hash, const std::string& role);
caf::expected<user_record> user_by_email(pqxx::transaction_base& tx, const std::string& email);
caf::expected<user_record> user_by_id(pqxx::transaction_base& tx, const std::string& user_id);
caf::expected<user_record> user_set_role(pqxx::transaction_base& tx, const std::string& email, const std::string& role);
caf::expected<session_snapshot> session_load(pqxx::transaction_base& tx, const std::string& user_id);

caf::expected<std::string> refresh_issue(pqxx::transaction_base& tx, const std::string& user_id,
                                         const std::string& family_id, const std::string& token_hash,
                                         int64_t expires_at);
/// Locks the old token's row (SELECT ... FOR UPDATE) for the rest of `tx`, so concurrent rotations serialise.
caf::expected<refresh_rotation> refresh_rotate(pqxx::transaction_base& tx, const std::string& old_token_hash,
                                               const std::string& new_token_hash, int64_t new_expires_at);
caf::expected<int64_t> refresh_revoke(pqxx::transaction_base& tx, const std::string& token_hash);
caf::expected<int64_t> refresh_revoke_user(pqxx::transaction_base& tx, const std::string& user_id);
caf::expected<bool> jti_revoke(pqxx::transaction_base& tx, const std::string& user_id, const std::string& jti,
                               int64_t expires_at);

caf::expected<api_key_record> api_key_create(pqxx::transaction_base& tx, const std::string& user_id,
                                             const std::string& name, const std::string& key_hash,
                                             const std::string& last4, const api_key_limits& limits);
caf::expected<std::vector<api_key_record>> api_key_list(pqxx::transaction_base& tx, const std::string& user_id);
caf::expected<api_key_record> api_key_revoke(pqxx::transaction_base& tx, const std::string& user_id,
                                             const std::string& key_id);
caf::expected<api_key_record> api_key_lookup(pqxx::transaction_base& tx, const std::string& key_hash);
caf::expected<bool> api_key_touch(pqxx::transaction_base& tx, const std::string& key_id, int64_t used_at);

caf::expected<int64_t> auth_purge(pqxx::transaction_base& tx);

/// Whether `text` is the hex of a SHA-256 (64 hex digits, either case).
bool is_sha256_hex(const std::string& text);

} // namespace troupe::accounts_sql

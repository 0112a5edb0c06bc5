#include "persistence/accounts_sql.hpp"
#include "persistence/ids.hpp"

#include "config/json.hpp"
#include "config/service_error.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <utility>

namespace troupe::accounts_sql {

namespace {

// Unix seconds of a timestamptz column, 0 for NULL.
std::string epoch(const std::string& column) {
  return "COALESCE(floor(extract(epoch FROM " + column + "))::bigint, 0)";
}

const std::string user_columns = "id::text, email, password_hash, role, plan, " + epoch("created_at");
const std::string key_columns = "id::text, user_id::text, name, key_last4, " + epoch("created_at") + ", "
                                + epoch("last_used_at") + ", " + epoch("revoked_at")
                                + ", COALESCE(models::text, ''), COALESCE((max_budget_usd * 1000000000000)::bigint, 0), "
                                  "COALESCE(budget_duration_s, 0), COALESCE(tpm_limit, 0), COALESCE(rpm_limit, 0), "
                                  "COALESCE(max_parallel_requests, 0)";
// The current budget period of the key in the row (created_at plus whole budget_duration_s, as key_period_start
// computes it) and what usage_events holds for the key since then, pico-dollars: two more columns.
const std::string key_spend_columns =
  "p.start, (SELECT (COALESCE(sum(e.cost_usd), 0) * 1000000000000)::bigint FROM usage_events e "
  "WHERE e.api_key_id = k.id AND e.created_at >= to_timestamp(p.start))";
const std::string key_period = "LATERAL (SELECT CASE WHEN k.budget_duration_s IS NULL THEN c ELSE c + (n - c) / "
                               "k.budget_duration_s * k.budget_duration_s END AS start FROM (SELECT floor(extract("
                               "epoch FROM k.created_at))::bigint AS c, floor(extract(epoch FROM now()))::bigint AS n) "
                               "t) p";

user_record to_user(const pqxx::row& row) {
  return {row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
          row[3].as<std::string>(), row[4].as<std::string>(), row[5].as<int64_t>()};
}

std::vector<std::string> models_of(const std::string& text) {
  std::vector<std::string> models;
  if (text.empty())
    return models;
  auto parsed = json::parse(text);
  if (parsed && parsed->IsArray())
    for (const auto& m : parsed->GetArray())
      if (m.IsString())
        models.emplace_back(m.GetString(), m.GetStringLength());
  return models;
}

std::string models_text(const std::vector<std::string>& models) {
  if (models.empty())
    return {};
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartArray();
  for (const auto& m : models)
    w.String(m.c_str(), static_cast<rapidjson::SizeType>(m.size()));
  w.EndArray();
  return {buffer.GetString(), buffer.GetSize()};
}

api_key_record to_key(const pqxx::row& row) {
  api_key_record key;
  key.id = row[0].as<std::string>();
  key.user_id = row[1].as<std::string>();
  key.name = row[2].as<std::string>();
  key.last4 = row[3].as<std::string>();
  key.created_at = row[4].as<int64_t>();
  key.last_used_at = row[5].as<int64_t>();
  key.revoked_at = row[6].as<int64_t>();
  key.limits.models = models_of(row[7].as<std::string>());
  key.limits.max_budget_pusd = row[8].as<int64_t>();
  key.limits.budget_duration_s = row[9].as<int64_t>();
  key.limits.tpm_limit = row[10].as<int64_t>();
  key.limits.rpm_limit = row[11].as<int64_t>();
  key.limits.max_parallel_requests = row[12].as<int64_t>();
  if (row.size() > 14) { // with key_spend_columns
    key.period_start = row[13].as<int64_t>();
    key.spend_pusd = row[14].as<int64_t>();
  }
  return key;
}

caf::error no_user() {
  return make_error(service_error::not_found, "No such user.");
}

caf::error no_key() {
  return make_error(service_error::not_found, "No such API key.");
}

caf::error bad_hash() {
  return make_error(service_error::invalid_input, "A token or key hash must be 64 hex digits (SHA-256).");
}

bool is_hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

} // namespace

bool is_sha256_hex(const std::string& text) {
  if (text.size() != 64)
    return false;
  for (char c : text)
    if (!is_hex(c))
      return false;
  return true;
}

void prepare_statements(pqxx::connection& conn) {
  // {user} and {key} stand for the columns that to_user and to_key read; {spend} and {period} for a key's current
  // budget period and its spend (a query naming api_keys k).
  const std::pair<const char*, const char*> statements[] = {
    // Users
    {"troupe_acc_user_create", "INSERT INTO users (email, password_hash, role) "
                               "VALUES ($1, $2, COALESCE(NULLIF($3, ''), 'user')) RETURNING {user}"},
    {"troupe_acc_user_by_email", "SELECT {user} FROM users WHERE email = $1"},
    // A guest: created once per id; afterwards read (no write, no row lock, on every token request).
    {"troupe_acc_user_guest", "INSERT INTO users (id, email, password_hash, role, plan) "
                              "VALUES ($1::uuid, $2, '!guest', 'guest', 'guest') "
                              "ON CONFLICT (id) DO NOTHING RETURNING {user}"},
    {"troupe_acc_user_by_id", "SELECT {user} FROM users WHERE id = $1::uuid"},
    {"troupe_acc_user_set_role", "UPDATE users SET role = $2 WHERE email = $1 RETURNING {user}"},
    {"troupe_acc_revoked_jtis", "SELECT jti, floor(extract(epoch FROM expires_at))::bigint FROM revoked_tokens "
                                "WHERE user_id = $1::uuid AND expires_at > now() ORDER BY expires_at, jti"},
    {"troupe_acc_revoked_keys", "SELECT id::text FROM api_keys WHERE user_id = $1::uuid AND revoked_at IS NOT NULL "
                                "ORDER BY revoked_at, id"},
    {"troupe_acc_key_spends", "SELECT k.id::text, {spend} FROM api_keys k, {period} WHERE k.user_id = $1::uuid "
                              "AND k.revoked_at IS NULL AND k.max_budget_usd IS NOT NULL ORDER BY k.id"},
    // Refresh tokens
    {"troupe_acc_live_family", "SELECT 1 FROM refresh_tokens WHERE family_id = $1::uuid AND user_id = $2::uuid "
                               "AND revoked_at IS NULL LIMIT 1"},
    {"troupe_acc_refresh_insert", "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) "
                                  "VALUES ($1::uuid, COALESCE(NULLIF($2, '')::uuid, gen_random_uuid()), "
                                  "decode($3, 'hex'), to_timestamp($4)) RETURNING family_id::text"},
    {"troupe_acc_refresh_lock", "SELECT id::text, user_id::text, family_id::text, used_at IS NOT NULL, "
                                "revoked_at IS NOT NULL, expires_at <= now() FROM refresh_tokens "
                                "WHERE token_hash = decode($1, 'hex') FOR UPDATE"},
    {"troupe_acc_refresh_use", "UPDATE refresh_tokens SET used_at = now() WHERE id = $1::uuid"},
    {"troupe_acc_family_revoke", "UPDATE refresh_tokens SET revoked_at = now() "
                                 "WHERE family_id = $1::uuid AND revoked_at IS NULL"},
    {"troupe_acc_refresh_revoke", "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND "
                                  "family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = "
                                  "decode($1, 'hex'))"},
    {"troupe_acc_refresh_revoke_user", "UPDATE refresh_tokens SET revoked_at = now() "
                                       "WHERE user_id = $1::uuid AND revoked_at IS NULL"},
    // Access tokens
    {"troupe_acc_jti_revoke", "INSERT INTO revoked_tokens (jti, user_id, expires_at) "
                              "VALUES ($1, $2::uuid, to_timestamp($3)) ON CONFLICT (jti) DO NOTHING"},
    // API keys
    {"troupe_acc_key_create", "INSERT INTO api_keys (user_id, name, key_hash, key_last4, models, max_budget_usd, "
                              "budget_duration_s, tpm_limit, rpm_limit, max_parallel_requests) "
                              "VALUES ($1::uuid, $2, decode($3, 'hex'), $4, NULLIF($5, '')::jsonb, "
                              "NULLIF($6::bigint, 0)::numeric / 1000000000000, NULLIF($7::bigint, 0), "
                              "NULLIF($8::bigint, 0), NULLIF($9::bigint, 0), NULLIF($10::integer, 0)) RETURNING {key}"},
    {"troupe_acc_key_list", "SELECT {key}, {spend} FROM api_keys k, {period} WHERE k.user_id = $1::uuid "
                            "ORDER BY k.created_at DESC, k.id DESC"},
    {"troupe_acc_key_revoke", "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) "
                              "WHERE id = $2::uuid AND user_id = $1::uuid RETURNING {key}"},
    {"troupe_acc_key_lookup", "SELECT {key} FROM api_keys WHERE key_hash = decode($1, 'hex') AND revoked_at IS NULL"},
    {"troupe_acc_key_touch", "UPDATE api_keys SET last_used_at = greatest(last_used_at, to_timestamp($2)) "
                             "WHERE id = $1::uuid"},
    // Maintenance
    {"troupe_acc_purge_jtis", "DELETE FROM revoked_tokens WHERE expires_at <= now()"},
    {"troupe_acc_purge_refresh", "DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'"},
  };
  for (const auto& [name, text] : statements) {
    std::string sql = text;
    for (const auto& [token, columns] :
         {std::pair{"{user}", &user_columns}, std::pair{"{key}", &key_columns},
          std::pair{"{spend}", &key_spend_columns}, std::pair{"{period}", &key_period}})
      if (auto at = sql.find(token); at != std::string::npos)
        sql.replace(at, std::char_traits<char>::length(token), *columns);
    conn.prepare(name, sql);
  }
}

// --- Users ---------------------------------------------------------------------------------------------------------

caf::expected<user_record> user_create(pqxx::transaction_base& tx, const std::string& email,
                                       const std::string& password_hash, const std::string& role) {
  return to_user(tx.exec_prepared1("troupe_acc_user_create", email, password_hash, role));
}

caf::expected<user_record> user_guest(pqxx::transaction_base& tx, const std::string& user_id, const std::string& email) {
  if (!is_uuid(user_id))
    return no_user();
  auto created = tx.exec_prepared("troupe_acc_user_guest", user_id, email);
  auto user = created.empty() ? to_user(tx.exec_prepared1("troupe_acc_user_by_id", user_id)) : to_user(created[0]);
  if (user.role != "guest") // an id that is somebody's account: never (a keyed hash), but never a guest of it
    return make_error(service_error::conflict, "That id is not a guest's.");
  return user;
}

caf::expected<user_record> user_by_email(pqxx::transaction_base& tx, const std::string& email) {
  auto rows = tx.exec_prepared("troupe_acc_user_by_email", email);
  if (rows.empty())
    return no_user();
  return to_user(rows[0]);
}

caf::expected<user_record> user_by_id(pqxx::transaction_base& tx, const std::string& user_id) {
  if (!is_uuid(user_id))
    return no_user();
  auto rows = tx.exec_prepared("troupe_acc_user_by_id", user_id);
  if (rows.empty())
    return no_user();
  return to_user(rows[0]);
}

caf::expected<user_record> user_set_role(pqxx::transaction_base& tx, const std::string& email,
                                         const std::string& role) {
  auto rows = tx.exec_prepared("troupe_acc_user_set_role", email, role);
  if (rows.empty())
    return no_user();
  return to_user(rows[0]);
}

caf::expected<session_snapshot> session_load(pqxx::transaction_base& tx, const std::string& user_id) {
  auto user = user_by_id(tx, user_id);
  if (!user)
    return user.error();
  session_snapshot snapshot;
  snapshot.user = std::move(*user);
  for (const auto& row : tx.exec_prepared("troupe_acc_revoked_jtis", user_id)) {
    snapshot.revoked_jtis.push_back(row[0].as<std::string>());
    snapshot.revoked_jti_expiries.push_back(row[1].as<int64_t>());
  }
  for (const auto& row : tx.exec_prepared("troupe_acc_revoked_keys", user_id))
    snapshot.revoked_key_ids.push_back(row[0].as<std::string>());
  for (const auto& row : tx.exec_prepared("troupe_acc_key_spends", user_id))
    snapshot.key_spends.push_back({row[0].as<std::string>(), row[1].as<int64_t>(), row[2].as<int64_t>()});
  return snapshot;
}

// --- Refresh tokens ------------------------------------------------------------------------------------------------

caf::expected<std::string> refresh_issue(pqxx::transaction_base& tx, const std::string& user_id,
                                         const std::string& family_id, const std::string& token_hash,
                                         int64_t expires_at) {
  if (!is_uuid(user_id))
    return no_user();
  if (!is_sha256_hex(token_hash))
    return bad_hash();
  if (!family_id.empty()
      && (!is_uuid(family_id) || tx.exec_prepared("troupe_acc_live_family", family_id, user_id).empty()))
    return make_error(service_error::not_found, "No such refresh token family for this user.");
  // An unknown user fails on the foreign key (not_found).
  return tx.exec_prepared1("troupe_acc_refresh_insert", user_id, family_id, token_hash, expires_at)[0]
    .as<std::string>();
}

caf::expected<refresh_rotation> refresh_rotate(pqxx::transaction_base& tx, const std::string& old_token_hash,
                                               const std::string& new_token_hash, int64_t new_expires_at) {
  if (!is_sha256_hex(new_token_hash))
    return bad_hash();
  if (!is_sha256_hex(old_token_hash))
    return refresh_rotation{"invalid", "", ""};
  // The row lock makes a concurrent rotation of the same token wait here, then see used_at set: "reused".
  auto rows = tx.exec_prepared("troupe_acc_refresh_lock", old_token_hash);
  if (rows.empty())
    return refresh_rotation{"invalid", "", ""};
  auto id = rows[0][0].as<std::string>();
  auto user_id = rows[0][1].as<std::string>();
  auto family_id = rows[0][2].as<std::string>();
  bool used = rows[0][3].as<bool>();
  bool revoked = rows[0][4].as<bool>();
  bool expired = rows[0][5].as<bool>();
  if (revoked || expired)
    return refresh_rotation{"invalid", "", ""};
  if (used) {
    // Someone presents a token that was already exchanged: one of the two holders is a thief. End the family.
    tx.exec_prepared0("troupe_acc_family_revoke", family_id);
    return refresh_rotation{"reused", user_id, family_id};
  }
  tx.exec_prepared0("troupe_acc_refresh_use", id);
  tx.exec_prepared("troupe_acc_refresh_insert", user_id, family_id, new_token_hash, new_expires_at);
  return refresh_rotation{"rotated", user_id, family_id};
}

caf::expected<int64_t> refresh_revoke(pqxx::transaction_base& tx, const std::string& token_hash) {
  if (!is_sha256_hex(token_hash))
    return int64_t{0};
  return static_cast<int64_t>(tx.exec_prepared0("troupe_acc_refresh_revoke", token_hash).affected_rows());
}

caf::expected<int64_t> refresh_revoke_user(pqxx::transaction_base& tx, const std::string& user_id) {
  if (!is_uuid(user_id))
    return int64_t{0};
  return static_cast<int64_t>(tx.exec_prepared0("troupe_acc_refresh_revoke_user", user_id).affected_rows());
}

caf::expected<bool> jti_revoke(pqxx::transaction_base& tx, const std::string& user_id, const std::string& jti,
                               int64_t expires_at) {
  if (!is_uuid(user_id))
    return no_user();
  // An unknown user fails on the foreign key (not_found).
  return tx.exec_prepared0("troupe_acc_jti_revoke", jti, user_id, expires_at).affected_rows() == 1;
}

// --- API keys ------------------------------------------------------------------------------------------------------

caf::expected<api_key_record> api_key_create(pqxx::transaction_base& tx, const std::string& user_id,
                                             const std::string& name, const std::string& key_hash,
                                             const std::string& last4, const api_key_limits& limits) {
  if (!is_uuid(user_id))
    return no_user();
  if (!is_sha256_hex(key_hash))
    return bad_hash();
  // An unknown user fails on the foreign key (not_found), a known hash on its UNIQUE index (conflict).
  return to_key(tx.exec_prepared1("troupe_acc_key_create", user_id, name, key_hash, last4, models_text(limits.models),
                                  limits.max_budget_pusd, limits.budget_duration_s, limits.tpm_limit,
                                  limits.rpm_limit, limits.max_parallel_requests));
}

caf::expected<std::vector<api_key_record>> api_key_list(pqxx::transaction_base& tx, const std::string& user_id) {
  std::vector<api_key_record> keys;
  if (!is_uuid(user_id))
    return keys;
  for (const auto& row : tx.exec_prepared("troupe_acc_key_list", user_id))
    keys.push_back(to_key(row));
  return keys;
}

caf::expected<api_key_record> api_key_revoke(pqxx::transaction_base& tx, const std::string& user_id,
                                             const std::string& key_id) {
  if (!is_uuid(user_id) || !is_uuid(key_id))
    return no_key();
  auto rows = tx.exec_prepared("troupe_acc_key_revoke", user_id, key_id);
  if (rows.empty())
    return no_key(); // unknown, or another user's: the same answer, so ids cannot be probed
  return to_key(rows[0]);
}

caf::expected<api_key_record> api_key_lookup(pqxx::transaction_base& tx, const std::string& key_hash) {
  auto rows = is_sha256_hex(key_hash) ? tx.exec_prepared("troupe_acc_key_lookup", key_hash) : pqxx::result{};
  if (rows.empty())
    return make_error(service_error::unauthenticated, "Invalid API key.");
  return to_key(rows[0]);
}

caf::expected<bool> api_key_touch(pqxx::transaction_base& tx, const std::string& key_id, int64_t used_at) {
  if (!is_uuid(key_id))
    return false;
  return tx.exec_prepared0("troupe_acc_key_touch", key_id, used_at).affected_rows() == 1;
}

// --- Maintenance ---------------------------------------------------------------------------------------------------

caf::expected<int64_t> auth_purge(pqxx::transaction_base& tx) {
  auto jtis = tx.exec_prepared0("troupe_acc_purge_jtis").affected_rows();
  auto refresh = tx.exec_prepared0("troupe_acc_purge_refresh").affected_rows();
  return static_cast<int64_t>(jtis + refresh);
}

} // namespace troupe::accounts_sql

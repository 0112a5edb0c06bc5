#include "persistence/wishlist_sql.hpp"

#include "persistence/ids.hpp"

#include "config/service_error.hpp"

#include <optional>

namespace troupe::wishlist_sql {

namespace {

/// NULL for "", else the text.
std::optional<std::string> or_null(const std::string& text) {
  return text.empty() ? std::nullopt : std::optional<std::string>{text};
}

constexpr const char* columns = "id::text, COALESCE(user_id::text, ''), email, COALESCE(lang, ''), "
                                "COALESCE(source, ''), COALESCE(note, ''), COALESCE(host(ip), ''), "
                                "(extract(epoch FROM created_at) * 1000000)::bigint";

} // namespace

void prepare_statements(pqxx::connection& conn) {
  // ON CONFLICT DO NOTHING: the first submission of an email wins, so a retry changes nothing and an anonymous
  // caller cannot overwrite another person's entry.
  conn.prepare("troupe_wishlist_add",
               "INSERT INTO pro_wishlist (user_id, email, lang, source, note, ip) "
               "VALUES ($1::uuid, $2, $3, $4, $5, $6::inet) ON CONFLICT (email) DO NOTHING");
  conn.prepare("troupe_wishlist_first", std::string("SELECT ") + columns
                                          + " FROM pro_wishlist ORDER BY created_at DESC, id DESC LIMIT $1");
  conn.prepare("troupe_wishlist_after",
               std::string("SELECT ") + columns
                 + " FROM pro_wishlist WHERE (created_at, id) < ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', $2::uuid) "
                   "ORDER BY created_at DESC, id DESC LIMIT $3");
}

caf::expected<bool> add(pqxx::transaction_base& tx, const wishlist_entry& e) {
  std::optional<std::string> user;
  if (is_uuid(e.user_id))
    user = e.user_id;
  auto result = tx.exec_prepared("troupe_wishlist_add", user, e.email, or_null(e.lang), or_null(e.source),
                                 or_null(e.note), or_null(e.ip));
  return result.affected_rows() == 1;
}

caf::expected<std::vector<wishlist_entry>> list(pqxx::transaction_base& tx, const wishlist_cursor& after,
                                                int32_t limit) {
  if (limit < 1 || limit > 10000)
    return make_error(service_error::invalid_input, "limit must be 1 to 10000.");
  pqxx::result rows;
  if (after.id.empty())
    rows = tx.exec_prepared("troupe_wishlist_first", limit);
  else if (!is_uuid(after.id))
    return make_error(service_error::invalid_input, "The cursor is not one this server gave.");
  else
    rows = tx.exec_prepared("troupe_wishlist_after", after.created_at_us, after.id, limit);
  std::vector<wishlist_entry> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    wishlist_entry e;
    e.id = row[0].as<std::string>();
    e.user_id = row[1].as<std::string>();
    e.email = row[2].as<std::string>();
    e.lang = row[3].as<std::string>();
    e.source = row[4].as<std::string>();
    e.note = row[5].as<std::string>();
    e.ip = row[6].as<std::string>();
    e.created_at_us = row[7].as<int64_t>();
    out.push_back(std::move(e));
  }
  return out;
}

} // namespace troupe::wishlist_sql

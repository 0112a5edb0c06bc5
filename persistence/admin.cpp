#include "persistence/admin.hpp"

#include "persistence/database.hpp"

#include <pqxx/pqxx>

#include <chrono>

namespace troupe {

std::variant<role_change, std::string> set_user_role(const std::string& url, const std::string& email,
                                                     const std::string& role) {
  try {
    pqxx::connection conn{with_connect_timeout(url, std::chrono::milliseconds{5000})};
    pqxx::work tx{conn};
    // The old role comes from the locked row the UPDATE changes, so a concurrent change cannot slip in between.
    auto result = tx.exec_params("WITH old AS (SELECT id, role FROM users WHERE email = $1 FOR UPDATE) "
                                 "UPDATE users SET role = $2 FROM old WHERE users.id = old.id "
                                 "RETURNING old.role, users.id::text, extract(epoch FROM users.created_at)::bigint",
                                 email, role);
    tx.commit();
    role_change change;
    if (result.empty())
      return change;
    change.found = true;
    change.previous_role = result[0][0].as<std::string>();
    change.user_id = result[0][1].as<std::string>();
    change.created_at = result[0][2].as<int64_t>();
    return change;
  } catch (const pqxx::broken_connection&) {
    return std::string{"cannot connect to the database"};
  } catch (const std::exception& e) {
    std::string text = e.what();
    if (auto newline = text.find('\n'); newline != std::string::npos)
      text.resize(newline);
    return text;
  }
}

} // namespace troupe

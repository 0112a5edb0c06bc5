#include "persistence/admin.hpp"

#include "persistence/database.hpp"

#include <pqxx/pqxx>

#include <chrono>

namespace troupe {

std::variant<bool, std::string> set_user_role(const std::string& url, const std::string& email,
                                              const std::string& role) {
  try {
    pqxx::connection conn{with_connect_timeout(url, std::chrono::milliseconds{5000})};
    pqxx::work tx{conn};
    auto result = tx.exec_params("UPDATE users SET role = $2 WHERE email = $1 RETURNING id", email, role);
    tx.commit();
    return !result.empty();
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

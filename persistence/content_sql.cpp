#include "persistence/content_sql.hpp"

namespace troupe::content_sql {

void prepare_statements(pqxx::connection& conn) {
  uploads_sql::prepare(conn);
  jobs_sql::prepare(conn);
  repositories_sql::prepare(conn);
}

std::string epoch_ms(const std::string& column) {
  return "COALESCE(floor(extract(epoch FROM " + column + ") * 1000)::bigint, 0)";
}

std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? "\"" : ",\"";
    for (char c : values[i]) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string int_array(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i)
    out += (i == 0 ? "" : ",") + std::to_string(values[i]);
  return out + "}";
}

} // namespace troupe::content_sql

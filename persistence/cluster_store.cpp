#include "persistence/cluster_store.hpp"

#include "persistence/database.hpp"

#include <pqxx/pqxx>

#include <stdexcept>

namespace troupe {

namespace {

constexpr const char* member_columns =
  "node_id, address, port, http_url, state, epoch, sessions, "
  "(extract(epoch FROM (now() - last_seen_at)) * 1000)::bigint, extract(epoch FROM last_seen_at)::bigint";

member_row read_row(const pqxx::row& r) {
  member_row m;
  m.node_id = r[0].as<std::string>();
  m.address = r[1].as<std::string>();
  m.port = static_cast<uint16_t>(r[2].as<int>());
  m.http_url = r[3].as<std::string>();
  m.state = r[4].as<std::string>();
  m.epoch = r[5].as<int64_t>();
  m.sessions = r[6].as<int64_t>();
  m.silent_ms = std::max<int64_t>(r[7].as<int64_t>(), 0);
  m.last_seen_unix = r[8].as<int64_t>();
  return m;
}

class pg_membership_store final : public membership_store {
public:
  pg_membership_store(std::string url, std::chrono::milliseconds timeout)
    : url_(with_connect_timeout(url, timeout)), statement_timeout_ms_(std::to_string(timeout.count())) {}

  std::optional<int64_t> join(const member_row& self, const std::string& state,
                              std::chrono::milliseconds failure) override {
    return run([&](pqxx::work& tx) -> std::optional<int64_t> {
      auto r = tx.exec_params(
        "INSERT INTO cluster_members (node_id, address, port, http_url, state, epoch, sessions, started_at, "
        "last_seen_at, instance) VALUES ($1, $2, $3, $4, $5, 1, 0, now(), now(), $6) "
        "ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, port = EXCLUDED.port, "
        "http_url = EXCLUDED.http_url, state = EXCLUDED.state, epoch = cluster_members.epoch + 1, sessions = 0, "
        "started_at = now(), last_seen_at = now(), instance = EXCLUDED.instance "
        "WHERE cluster_members.instance = EXCLUDED.instance OR cluster_members.state = 'down' "
        "OR cluster_members.last_seen_at < now() - make_interval(secs => $7::double precision / 1000) "
        "RETURNING epoch",
        self.node_id, self.address, static_cast<int>(self.port), self.http_url, state, self.instance,
        static_cast<int64_t>(failure.count()));
      if (r.empty())
        return std::nullopt;
      return r[0][0].as<int64_t>();
    });
  }

  std::optional<std::string> heartbeat(const std::string& node_id, int64_t epoch, const std::string& state,
                                       int64_t sessions) override {
    return run([&](pqxx::work& tx) -> std::optional<std::string> {
      // clock_timestamp(), not now(): a statement that waited (a lock, a stalled machine) must not date the
      // heartbeat from when its transaction began.
      auto r = tx.exec_params("UPDATE cluster_members SET last_seen_at = clock_timestamp(), sessions = $4, "
                              "state = CASE WHEN state = 'leaving' THEN 'leaving' ELSE $3 END "
                              "WHERE node_id = $1 AND epoch = $2 AND state <> 'down' RETURNING state",
                              node_id, epoch, state, sessions);
      if (r.empty())
        return std::nullopt;
      return r[0][0].as<std::string>();
    });
  }

  bool request_drain(const std::string& node_id) override {
    return run([&](pqxx::work& tx) {
      auto r = tx.exec_params("UPDATE cluster_members SET state = 'leaving' "
                              "WHERE node_id = $1 AND state IN ('up', 'joining')",
                              node_id);
      return r.affected_rows() == 1;
    });
  }

  std::vector<member_row> members() override {
    return run([&](pqxx::work& tx) {
      std::vector<member_row> rows;
      for (const auto& r : tx.exec(std::string{"SELECT "} + member_columns + " FROM cluster_members ORDER BY node_id"))
        rows.push_back(read_row(r));
      return rows;
    });
  }

  std::vector<std::string> mark_silent_down(std::chrono::milliseconds failure, const std::string& self) override {
    return run([&](pqxx::work& tx) {
      std::vector<std::string> ids;
      auto r = tx.exec_params("UPDATE cluster_members SET state = 'down' WHERE state <> 'down' AND node_id <> $2 "
                              "AND last_seen_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000) "
                              "RETURNING node_id",
                              static_cast<int64_t>(failure.count()), self);
      for (const auto& row : r)
        ids.push_back(row[0].as<std::string>());
      return ids;
    });
  }

  bool set_state(const std::string& node_id, int64_t epoch, const std::string& state) override {
    return run([&](pqxx::work& tx) {
      auto r = tx.exec_params("UPDATE cluster_members SET state = $3 WHERE node_id = $1 AND epoch = $2", node_id,
                              epoch, state);
      return r.affected_rows() == 1;
    });
  }

  int64_t purge_down(std::chrono::milliseconds age) override {
    return run([&](pqxx::work& tx) {
      auto r = tx.exec_params("DELETE FROM cluster_members WHERE state = 'down' "
                              "AND last_seen_at < now() - make_interval(secs => $1::double precision / 1000)",
                              static_cast<int64_t>(age.count()));
      return static_cast<int64_t>(r.affected_rows());
    });
  }

private:
  /// Runs `body` in a transaction on the (re)opened connection; a failure closes it and throws a one-line error.
  template <class F>
  auto run(F body) -> decltype(body(std::declval<pqxx::work&>())) {
    try {
      if (!conn_ || !conn_->is_open()) {
        conn_ = std::make_unique<pqxx::connection>(url_);
        conn_->set_variable("statement_timeout", statement_timeout_ms_);
      }
      pqxx::work tx{*conn_};
      auto result = body(tx);
      tx.commit();
      return result;
    } catch (const pqxx::broken_connection&) {
      conn_.reset();
      throw std::runtime_error{"cannot connect to the database"};
    } catch (const std::exception& e) {
      conn_.reset();
      std::string text = e.what();
      if (auto newline = text.find('\n'); newline != std::string::npos)
        text.resize(newline);
      throw std::runtime_error{text};
    }
  }

  std::string url_;
  std::string statement_timeout_ms_;
  std::unique_ptr<pqxx::connection> conn_;
};

} // namespace

std::unique_ptr<membership_store> make_membership_store(std::string url, std::chrono::milliseconds timeout) {
  return std::make_unique<pg_membership_store>(std::move(url), timeout);
}

} // namespace troupe

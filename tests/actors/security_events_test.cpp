// The security event aggregator with a fake DB writer and an injected clock: events of one type from one address in
// one minute become one row with a count, flushes are periodic (critical events at once), and memory is bounded.

#include "actors/messages.hpp"
#include "actors/security_events.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct written_rows {
  std::mutex mutex;
  std::vector<security_event_row> rows;
  std::atomic<int> writes{0};
};

db_writer_actor::behavior_type fake_writer(db_writer_actor::pointer self, std::shared_ptr<written_rows> out) {
  return {[out](write_atom, write_request& w) {
            std::lock_guard<std::mutex> guard{out->mutex};
            ++out->writes;
            out->rows.insert(out->rows.end(), w.security_events.begin(), w.security_events.end());
            return write_result{w.result, false};
          },
          // Security events are awaited: they never take the background lane.
          [](write_later_atom, write_request&) { ADD_FAILURE() << "a security event was written in the background"; },
          [self](mailbox_atom) -> size_t { return self->mailbox().size(); }};
}

class SecurityEvents : public ::testing::Test {
protected:
  SecurityEvents() {
    register_message_types(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    writer_ = sys_->spawn(fake_writer, written_);
  }
  ~SecurityEvents() override {
    for (auto& a : {caf::actor_cast<caf::actor>(writer_), events_})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  void start(size_t max_aggregates = 10000) {
    opts_.flush_interval = 1h; // flushes only when the test asks (or a critical event comes)
    opts_.max_aggregates = max_aggregates;
    opts_.writer = [w = writer_]() -> std::optional<db_writer_actor> { return w; };
    opts_.now_unix_ms = [this] { return now_ms_.load(); };
    events_ = spawn_security_events(*sys_, opts_);
  }

  /// An event that happened `at` (unix ms; 0 = whenever the aggregator handles it, by its clock).
  void send(const std::string& type, const std::string& ip, const std::string& severity = "warning",
            const std::string& user = "", int64_t at = 0) {
    caf::anon_send(events_, security_event_atom::value,
                   security_event_row{type, severity, user, ip, "req-" + std::to_string(sent_++), "{}", 1, at, 0});
  }

  int64_t flush() {
    caf::scoped_actor self{*sys_};
    int64_t n = -1;
    self->request(events_, caf::infinite, security_flush_atom::value)
      .receive([&](int64_t x) { n = x; }, [](caf::error&) { ADD_FAILURE(); });
    return n;
  }

  /// Rows the writer received, once it has received `rows` of them.
  std::vector<security_event_row> rows(size_t rows) {
    for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
      {
        std::lock_guard<std::mutex> guard{written_->mutex};
        if (written_->rows.size() >= rows)
          return written_->rows;
      }
      std::this_thread::sleep_for(5ms);
    }
    std::lock_guard<std::mutex> guard{written_->mutex};
    return written_->rows;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<written_rows> written_ = std::make_shared<written_rows>();
  db_writer_actor writer_;
  caf::actor events_;
  security_event_options opts_;
  std::atomic<int64_t> now_ms_{1795300000000}; // a whole minute
  int sent_ = 0;
};

} // namespace

// 1,000 events of one type from one address in one minute reach the writer as one row counting 1,000, carrying the
// first event's request id; another address and another type are rows of their own.
TEST_F(SecurityEvents, OneRowPerTypeAddressAndMinute) {
  start();
  for (int i = 0; i < 1000; ++i)
    send("invalid_api_key", "198.51.100.7");
  send("invalid_api_key", "198.51.100.8");
  send("invalid_token", "198.51.100.7");
  EXPECT_EQ(flush(), 1002);
  auto out = rows(3);
  ASSERT_EQ(out.size(), 3u);
  int64_t total = 0;
  for (const auto& row : out) {
    total += row.count;
    if (row.type == "invalid_api_key" && row.ip == "198.51.100.7") {
      EXPECT_EQ(row.count, 1000);
      EXPECT_EQ(row.request_id, "req-0");
      EXPECT_EQ(row.first_at_ms, now_ms_.load());
    } else {
      EXPECT_EQ(row.count, 1);
    }
  }
  EXPECT_EQ(total, 1002);
  EXPECT_EQ(written_->writes, 1) << "one write per flush";
  EXPECT_EQ(opts_.counters->recorded.load(), 1002u);
}

// Later flushes carry only what was counted since the previous one (the writer adds it to the row); a new minute is
// a new row; nothing counted, nothing written.
TEST_F(SecurityEvents, FlushesCarryDeltasAndMinutesSplitRows) {
  start();
  send("login_failed", "203.0.113.1");
  send("login_failed", "203.0.113.1");
  EXPECT_EQ(flush(), 2);
  send("login_failed", "203.0.113.1", "warning", "", now_ms_);
  send("login_failed", "203.0.113.1", "warning", "", now_ms_ + 60000);
  now_ms_ += 60000;
  EXPECT_EQ(flush(), 2);
  EXPECT_EQ(flush(), 0);
  auto out = rows(3);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].count, 2);
  EXPECT_EQ(out[1].count + out[2].count, 2);
  EXPECT_NE(out[1].first_at_ms / 60000, out[2].first_at_ms / 60000);
  EXPECT_EQ(written_->writes, 2);
}

// A critical event is handed to the writer at once, without waiting for the flush interval.
TEST_F(SecurityEvents, CriticalEventsAreWrittenAtOnce) {
  start();
  send("refresh_reuse", "203.0.113.5", "critical", "u1");
  auto out = rows(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, "refresh_reuse");
  EXPECT_EQ(out[0].severity, "critical");
  EXPECT_EQ(out[0].user_id, "u1");
}

// With more distinct aggregates than max_aggregates, everything is flushed and forgotten before a new one is added:
// nothing is lost, and the aggregator never holds more than the bound.
TEST_F(SecurityEvents, AggregatesAreBounded) {
  start(10);
  for (int i = 0; i < 25; ++i)
    send("invalid_token", "10.0.0." + std::to_string(i));
  flush();
  auto out = rows(25);
  int64_t total = 0;
  for (const auto& row : out)
    total += row.count;
  EXPECT_EQ(total, 25);
  EXPECT_GE(written_->writes, 3);
}

// The DB writer against a real PostgreSQL: group commit, ack only after COMMIT, a bad request fails alone,
// idempotency keys, a bounded queue, and riding out a database that goes away. Fake connection actors stand in
// for the database where a test needs one that hangs or fails on cue.

#include "tests/persistence/scratch_database.hpp"

#include "actors/messages.hpp"
#include "config/service_error.hpp"
#include "persistence/database.hpp"
#include "persistence/writer.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// Runs an actor system with the given connection actors and a writer over them.
class Writer : public ::testing::Test {
protected:
  struct system_holder {
    system_holder() { register_message_types(cfg); }
    caf::actor_system_config cfg;
    std::unique_ptr<caf::actor_system> sys;
  };

  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    holder_.sys = std::make_unique<caf::actor_system>(holder_.cfg);
  }

  void TearDown() override {
    if (!holder_.sys)
      return;
    for (auto& a : connections_)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    if (writer_)
      caf::anon_send_exit(writer_, caf::exit_reason::kill);
  }

  caf::actor_system& sys() { return *holder_.sys; }

  caf::actor real_connection(const std::string& url) {
    return caf::actor_cast<caf::actor>(spawn_database_connection(sys(), database_options{url, 2000ms}));
  }

  void start_writer(std::vector<caf::actor> connections, writer_options opts) {
    connections_ = connections;
    opts.connections = connections.size();
    opts.connection = [connections](size_t i) -> std::optional<db_connection_actor> {
      return caf::actor_cast<db_connection_actor>(connections.at(i));
    };
    counters_ = opts.counters;
    writer_ = spawn_db_writer(sys(), std::move(opts));
  }

  static write_request events_request(std::vector<std::string> names, std::string result = R"({"accepted":1})") {
    write_request req;
    req.scope = "ip:127.0.0.1";
    req.request_hash = "hash";
    req.result = std::move(result);
    for (auto& n : names) {
      event_row row;
      row.event = std::move(n);
      row.ip = "127.0.0.1";
      req.events.push_back(std::move(row));
    }
    return req;
  }

  struct outcomes {
    std::vector<write_result> results;
    std::vector<caf::error> errors;
  };

  /// Sends every request at once, then collects one answer per request.
  outcomes write_all(const std::vector<write_request>& requests) {
    outcomes out;
    caf::scoped_actor self{sys()};
    for (const auto& req : requests)
      self->send(writer_, write_atom::value, req);
    for (size_t i = 0; i < requests.size(); ++i)
      self->receive([&](write_result& r) { out.results.push_back(std::move(r)); },
                    [&](caf::error& e) { out.errors.push_back(std::move(e)); },
                    caf::after(std::chrono::seconds{30}) >> [&] { ADD_FAILURE() << "no answer from the writer"; });
    return out;
  }

  std::string count(const std::string& where) const {
    return db_.scalar("SELECT count(*) FROM funnel_events WHERE " + where);
  }

  troupe::testing::scratch_database db_;
  system_holder holder_;
  std::vector<caf::actor> connections_;
  db_writer_actor writer_;
  std::shared_ptr<writer_counters> counters_;
};

/// A connection that takes batches and never answers (a hung database).
caf::behavior black_hole(caf::stateful_actor<std::vector<caf::response_promise>>* self) {
  return {[self](commit_atom, std::vector<write_request>&) {
    auto promise = self->make_response_promise();
    self->state.push_back(promise);
    return promise;
  }};
}

/// A connection that fails the first `failures` batches as if the database were down, then forwards to `real`.
caf::behavior flaky(caf::stateful_actor<int>* self, int failures, caf::actor real) {
  self->state = failures;
  return {[self, real](commit_atom, std::vector<write_request>& batch) -> caf::result<std::vector<write_outcome>> {
    if (self->state-- > 0)
      return make_error(service_error::unavailable, "down");
    auto promise = self->make_response_promise<std::vector<write_outcome>>();
    self->request(real, caf::infinite, commit_atom::value, std::move(batch))
      .then([promise](std::vector<write_outcome>& out) mutable { promise.deliver(std::move(out)); },
            [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
    return promise;
  }};
}

} // namespace

// Many concurrent requests end up in few transactions, and every acknowledged row is in the table.
TEST_F(Writer, GroupsConcurrentRequestsIntoFewTransactions) {
  writer_options opts;
  opts.flush_interval = 5ms;
  start_writer({real_connection(db_.url()), real_connection(db_.url())}, opts);
  std::vector<write_request> requests;
  for (int i = 0; i < 300; ++i)
    requests.push_back(events_request({"group_commit"}));
  auto out = write_all(requests);
  EXPECT_EQ(out.results.size(), 300u);
  EXPECT_TRUE(out.errors.empty());
  EXPECT_EQ(count("event = 'group_commit'"), "300");
  EXPECT_LE(counters_->batches.load(), 30u) << "300 requests took " << counters_->batches.load() << " transactions";
  EXPECT_EQ(counters_->rows.load(), 300u);
}

// With batch_max_rows = 1 every request commits alone (the baseline of the benchmark).
TEST_F(Writer, BatchMaxRowsOneCommitsEachRequestAlone) {
  writer_options opts;
  opts.batch_max_rows = 1;
  start_writer({real_connection(db_.url())}, opts);
  std::vector<write_request> requests(20, events_request({"alone"}));
  auto out = write_all(requests);
  EXPECT_EQ(out.results.size(), 20u);
  EXPECT_EQ(counters_->batches.load(), 20u);
}

// A request whose rows the database rejects fails alone; the rest of its batch commits.
TEST_F(Writer, BadRequestFailsAloneAndTheRestCommits) {
  writer_options opts;
  opts.flush_interval = 50ms; // all ten land in one batch
  start_writer({real_connection(db_.url())}, opts);
  std::vector<write_request> requests;
  for (int i = 0; i < 9; ++i)
    requests.push_back(events_request({"good_" + std::to_string(i)}));
  requests.insert(requests.begin() + 4, events_request({std::string(65, 'x')})); // violates the length check
  auto out = write_all(requests);
  EXPECT_EQ(out.results.size(), 9u);
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(service_code(out.errors[0]), service_error::invalid_input);
  EXPECT_NE(service_message(out.errors[0]).find("funnel_events"), std::string::npos);
  EXPECT_EQ(count("event LIKE 'good_%'"), "9");
  EXPECT_EQ(count("length(event) > 64"), "0");
}

// A request whose COMMIT fails is never acknowledged; the others in its batch still commit.
TEST_F(Writer, FailedCommitIsNeverAcknowledged) {
  writer_options opts;
  opts.flush_interval = 50ms;
  start_writer({real_connection(db_.url())}, opts);
  ASSERT_EQ(write_all({events_request({"warm_up"})}).results.size(), 1u); // the schema is migrated now
  db_.execute(R"(
    CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.event = 'fail_at_commit' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER refuse_marked AFTER INSERT ON funnel_events
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_marked();)");
  auto out = write_all({events_request({"before"}), events_request({"fail_at_commit"}), events_request({"after"})});
  EXPECT_EQ(out.results.size(), 2u);
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(count("event = 'fail_at_commit'"), "0");
  EXPECT_EQ(count("event IN ('before', 'after')"), "2");
}

// The same idempotency key twice writes once and replays the first result; another body with it is a conflict.
TEST_F(Writer, IdempotencyKeyWritesOnceAndReplays) {
  start_writer({real_connection(db_.url()), real_connection(db_.url())}, writer_options{});
  auto first = events_request({"idem"}, R"({"accepted":1,"first":true})");
  first.idempotency_key = "key-1";
  auto retry = events_request({"idem"}, R"({"accepted":1,"first":false})");
  retry.idempotency_key = "key-1";
  auto out = write_all({first});
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_FALSE(out.results[0].replayed);
  out = write_all({retry, retry, retry}); // concurrently, possibly in one batch
  ASSERT_EQ(out.results.size(), 3u);
  for (const auto& r : out.results) {
    EXPECT_TRUE(r.replayed);
    EXPECT_NE(r.result.find("true"), std::string::npos) << r.result; // the first request's result
  }
  EXPECT_EQ(count("event = 'idem'"), "1");
  auto other = events_request({"idem_other"});
  other.idempotency_key = "key-1";
  other.request_hash = "another-hash";
  out = write_all({other});
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(service_code(out.errors[0]), service_error::conflict);
  EXPECT_EQ(count("event = 'idem_other'"), "0");
  // Keys are per scope: another caller may use the same key.
  auto elsewhere = events_request({"idem_elsewhere"});
  elsewhere.idempotency_key = "key-1";
  elsewhere.scope = "ip:10.0.0.9";
  EXPECT_EQ(write_all({elsewhere}).results.size(), 1u);
}

// Security events of one type, user and address within one UTC minute share one row whose count adds up, across
// requests, batches and the one-by-one path; the first event's request and detail stay; another minute, address or
// type is another row; events without a user or an address aggregate too.
TEST_F(Writer, SecurityEventsOfOneMinuteShareARow) {
  // One connection: batches commit in the order they were sent, so the row's first request is r1.
  start_writer({real_connection(db_.url())}, writer_options{});
  constexpr int64_t minute = 1893456000000; // 2030-01-01T00:00:00Z
  auto event = [](std::string type, std::string ip, int64_t count, int64_t at, std::string request_id,
                  std::string detail = "{}") {
    write_request w;
    w.result = "{}";
    w.security_events.push_back(security_event_row{std::move(type), "warning", "", std::move(ip), std::move(request_id),
                                                   std::move(detail), count, at, at + 10});
    return w;
  };
  auto out =
    write_all({event("invalid_api_key", "198.51.100.7", 3, minute + 1000, "r1", R"({"q":"a\"b\\c"})"),
               event("invalid_api_key", "198.51.100.7", 4, minute + 2000, "r2"),
               event("invalid_api_key", "198.51.100.7", 1, minute + 61000, "r3"),
               event("invalid_api_key", "198.51.100.8", 1, minute + 3000, "r4"),
               event("invalid_token", "", 2, minute + 4000, "r5"), event("invalid_token", "", 5, minute + 5000, "r6")});
  ASSERT_EQ(out.results.size(), 6u);
  out = write_all({event("invalid_api_key", "198.51.100.7", 10, minute + 59000, "r7")});
  ASSERT_EQ(out.results.size(), 1u);
  auto first_minute = "minute = to_timestamp(" + std::to_string(minute / 1000) + ")";
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM security_events"), "4");
  EXPECT_EQ(db_.scalar("SELECT count FROM security_events WHERE ip = '198.51.100.7' AND " + first_minute), "17");
  EXPECT_EQ(db_.scalar("SELECT request_id FROM security_events WHERE ip = '198.51.100.7' AND " + first_minute), "r1");
  EXPECT_EQ(db_.scalar("SELECT detail->>'q' FROM security_events WHERE ip = '198.51.100.7' AND " + first_minute),
            "a\"b\\c");
  EXPECT_EQ(db_.scalar("SELECT extract(epoch FROM last_seen_at)::bigint FROM security_events WHERE ip = "
                       "'198.51.100.7' AND "
                       + first_minute),
            std::to_string((minute + 59010) / 1000));
  EXPECT_EQ(db_.scalar("SELECT count FROM security_events WHERE type = 'invalid_token'"), "7");
  EXPECT_EQ(db_.scalar("SELECT sum(count) FROM security_events"), "26");
}

// A full queue refuses new requests at once instead of growing.
TEST_F(Writer, FullQueueIsRefusedAtOnce) {
  writer_options opts;
  opts.max_queue_rows = 5;
  opts.batch_max_rows = 1;
  start_writer({sys().spawn(black_hole)}, opts);
  caf::scoped_actor self{sys()};
  for (int i = 0; i < 5; ++i)
    self->send(writer_, write_atom::value, events_request({"stuck"}));
  auto out = write_all({events_request({"one_too_many"})});
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(service_code(out.errors[0]), service_error::overloaded);
  EXPECT_EQ(counters_->rejected.load(), 1u);
}

// A write nobody awaits (write_later_atom) does not go alone while its interval lasts: it rides along with the next
// awaited write's batch, and commits with it.
TEST_F(Writer, BackgroundWriteRidesAlongWithTheNextBatch) {
  writer_options opts;
  opts.flush_interval = 1ms;
  opts.background_flush_interval = 1h;
  start_writer({real_connection(db_.url())}, opts);
  caf::scoped_actor self{sys()};
  for (int i = 0; i < 3; ++i)
    self->send(writer_, write_later_atom::value, events_request({"metered"}));
  // Absent for a while (many times flush_interval): they linger rather than going as awaited writes would.
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(counters_->batches.load(), 0u) << "background writes went at flush_interval";
  auto out = write_all({events_request({"awaited"})}); // queued behind them: the same thread enqueues in order
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(count("event = 'metered'"), "3");
  EXPECT_EQ(counters_->batches.load(), 1u) << "a background write went alone";
  EXPECT_EQ(counters_->requests.load(), 4u);
}

// Alone, background writes commit once their interval has passed, in one transaction, with nobody asking; one
// that finds the queue full is refused and counted.
TEST_F(Writer, BackgroundWritesCommitWithinTheirInterval) {
  writer_options opts;
  opts.background_flush_interval = 200ms; // long enough for all six to be queued before it ends
  opts.max_queue_rows = 5;
  start_writer({real_connection(db_.url())}, opts);
  caf::scoped_actor self{sys()};
  for (int i = 0; i < 6; ++i)
    self->send(writer_, write_later_atom::value, events_request({"metered_alone"}));
  // Nothing answers a background write: wait (bounded) for the writer's count of what it committed.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (counters_->requests.load() < 5 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(counters_->requests.load(), 5u);
  EXPECT_EQ(counters_->batches.load(), 1u);
  EXPECT_EQ(counters_->rejected.load(), 1u);
  EXPECT_EQ(count("event = 'metered_alone'"), "5");
}

// Stopped, the writer commits what it holds, background writes included, before it quits.
TEST_F(Writer, CommitsWhatItHoldsBeforeItStops) {
  writer_options opts;
  opts.background_flush_interval = 1h;
  start_writer({real_connection(db_.url())}, opts);
  caf::scoped_actor self{sys()};
  self->monitor(writer_);
  self->send(writer_, write_later_atom::value, events_request({"held_at_stop"}));
  self->send_exit(writer_, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive(
    [&](caf::down_msg& msg) {
      down = true;
      EXPECT_EQ(msg.reason, caf::exit_reason::user_shutdown);
    },
    caf::after(10s) >> [] {});
  ASSERT_TRUE(down) << "the writer did not stop";
  EXPECT_EQ(count("event = 'held_at_stop'"), "1");
}

// An unreachable database fails a write after max_wait (not before it, nor long after it), and once it has been
// down for max_wait later writes fail at once, with 503's code.
TEST_F(Writer, UnreachableDatabaseFailsAfterMaxWait) {
  writer_options opts;
  opts.max_wait = 1000ms;
  start_writer({real_connection("postgresql://troupe@127.0.0.1:1/none")}, opts);
  auto started = std::chrono::steady_clock::now();
  auto out = write_all({events_request({"nowhere"})});
  auto first = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(service_code(out.errors[0]), service_error::unavailable);
  EXPECT_GE(first, opts.max_wait) << "failed before max_wait";
  EXPECT_LT(first, opts.max_wait + 5s) << "failed long after max_wait";
  started = std::chrono::steady_clock::now();
  out = write_all({events_request({"nowhere_again"})});
  auto second = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(service_code(out.errors[0]), service_error::unavailable);
  EXPECT_LT(second, opts.max_wait / 2) << "a write to a database known to be down waited";
}

// Batches that fail because the database is down are retried and commit once it is back.
TEST_F(Writer, RetriesUntilTheDatabaseIsBack) {
  writer_options opts;
  opts.max_wait = 10s;
  auto real = real_connection(db_.url());
  start_writer({sys().spawn(flaky, 3, real)}, opts);
  auto out = write_all({events_request({"survivor_1"}), events_request({"survivor_2"})});
  EXPECT_EQ(out.results.size(), 2u);
  EXPECT_TRUE(out.errors.empty());
  EXPECT_GE(counters_->retried_batches.load(), 3u);
  EXPECT_EQ(count("event LIKE 'survivor_%'"), "2");
  caf::anon_send_exit(real, caf::exit_reason::kill);
}

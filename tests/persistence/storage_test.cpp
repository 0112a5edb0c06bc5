// The storage quota against a real PostgreSQL, through connection actors with a small limit: what an upload
// reserves and when it gives it back (termination, expiry, its job registering files or failing for good), the
// limit checked exactly under concurrent creations, registrations over the limit writing nothing, empty uploads,
// and storage_usage always equal to what the uploads and files hold (migration 0005's triggers).

#include "tests/persistence/scratch_database.hpp"

#include "actors/messages.hpp"
#include "config/service_error.hpp"
#include "persistence/database.hpp"
#include "persistence/jobs.hpp"
#include "persistence/repositories.hpp"
#include "persistence/uploads.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <random>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

constexpr int64_t limit = 1000;
constexpr int64_t expire_ms = 3600000;

struct system_holder {
  system_holder() { register_message_types(cfg); }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

template <class T>
service_error code_of(const caf::expected<T>& x) {
  return x ? service_error::none : service_code(x.error());
}

class Storage : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    holder_.sys = std::make_unique<caf::actor_system>(holder_.cfg);
    database_options options{db_.url(), 2000ms};
    options.storage.free_bytes = limit;
    options.storage.pro_bytes = 10 * limit;
    options.storage_changes = epoch_;
    for (int i = 0; i < 2; ++i)
      connections_.push_back(caf::actor_cast<caf::actor>(spawn_database_connection(sys(), options)));
    // Connected, and the schema migrated, before the tests write to it directly.
    caf::scoped_actor self{sys()};
    for (auto& connection : connections_)
      self->request(connection, std::chrono::seconds{30}, ping_atom::value)
        .receive([](health_check& h) { ASSERT_EQ(h.status, "healthy") << h.detail; },
                 [](caf::error& err) { FAIL() << to_string(err); });
  }

  void TearDown() override {
    for (auto& a : connections_)
      caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  caf::actor_system& sys() { return *holder_.sys; }
  std::shared_ptr<storage_epoch> epoch_ = std::make_shared<storage_epoch>();

  template <class T, class... Ts>
  caf::expected<T> query(Ts&&... xs) {
    caf::expected<T> out{caf::make_error(caf::sec::request_timeout)};
    caf::scoped_actor self{sys()};
    self->request(connections_[0], std::chrono::seconds{30}, std::forward<Ts>(xs)...)
      .receive([&](T& value) { out = std::move(value); }, [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  /// A user with a repository.
  struct owner {
    std::string user_id;
    std::string repository_id;
  };

  owner make_owner(const std::string& email, const std::string& plan = "free") {
    owner o;
    o.user_id = db_.scalar("INSERT INTO users (email, password_hash, plan) VALUES ('" + email + "', 'x', '" + plan
                           + "') RETURNING id");
    o.repository_id =
      db_.scalar("INSERT INTO repositories (user_id, name) VALUES ('" + o.user_id + "', 'r') RETURNING id");
    return o;
  }

  upload_record draft(const owner& o, int64_t length, const std::string& filename = "f.txt") {
    upload_record d;
    d.id = random_uuid();
    d.user_id = o.user_id;
    d.repository_id = o.repository_id;
    d.filename = filename;
    d.storage_path = "/nowhere/" + d.id;
    d.length = length;
    return d;
  }

  caf::expected<upload_record> create(const owner& o, int64_t length, const std::string& filename = "f.txt") {
    return query<upload_record>(upload_create_atom::value, draft(o, length, filename), expire_ms);
  }

  int64_t used(const owner& o) {
    auto status = query<storage_status>(storage_get_atom::value, o.user_id);
    EXPECT_TRUE(status) << to_string(status.error());
    return status ? status->used_bytes : -1;
  }

  /// What the user's uploads and files hold, summed from scratch: storage_usage must always say the same.
  int64_t recomputed(const owner& o) {
    return std::stoll(db_.scalar("SELECT (SELECT COALESCE(sum(reserved_bytes), 0) FROM uploads WHERE user_id = '"
                                 + o.user_id
                                 + "') + (SELECT COALESCE(sum(f.size_bytes), 0) FROM files f JOIN repositories r "
                                   "ON r.id = f.repository_id WHERE r.user_id = '"
                                 + o.user_id + "')"));
  }

  /// Creates an upload of `length` and completes it: its job is enqueued, not run.
  upload_record completed(const owner& o, int64_t length, const std::string& filename = "f.txt") {
    auto u = create(o, length, filename);
    EXPECT_TRUE(u) << to_string(u.error());
    if (!u)
      return {};
    job_draft job;
    job.kind = "upload";
    auto done = query<upload_record>(upload_complete_atom::value, u->id, int64_t{0}, job);
    EXPECT_TRUE(done) << to_string(done.error());
    return done ? *done : upload_record{};
  }

  static std::string random_uuid() {
    static std::mt19937_64 random{std::random_device{}()};
    char buf[37];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-8%03x-%012llx", static_cast<unsigned>(random()),
                  static_cast<unsigned>(random() & 0xffff), static_cast<unsigned>(random() & 0xfff),
                  static_cast<unsigned>(random() & 0xfff),
                  static_cast<unsigned long long>(random() & 0xffffffffffffULL));
    return buf;
  }

  troupe::testing::scratch_database db_;
  system_holder holder_;
  std::vector<caf::actor> connections_;
};

// Two creations near the limit sent at once, on two connections: one passes, the other is refused with the limit
// and the use in its message, whichever commits first. Twenty rounds, each a fresh user.
TEST_F(Storage, ConcurrentReservationsNearTheLimitNeverBothPass) {
  for (int round = 0; round < 20; ++round) {
    auto o = make_owner("u" + std::to_string(round) + "@example.com");
    caf::scoped_actor self{sys()};
    std::vector<caf::expected<upload_record>> answers;
    // Both requests are on their way before either answer is awaited.
    auto first =
      self->request(connections_[0], std::chrono::seconds{30}, upload_create_atom::value, draft(o, 600), expire_ms);
    auto second =
      self->request(connections_[1], std::chrono::seconds{30}, upload_create_atom::value, draft(o, 600), expire_ms);
    for (auto* handle : {&first, &second})
      handle->receive([&](upload_record& u) { answers.emplace_back(std::move(u)); },
                      [&](caf::error& err) { answers.emplace_back(std::move(err)); });
    ASSERT_EQ(answers.size(), 2u);
    int passed = 0;
    for (const auto& a : answers) {
      if (a) {
        ++passed;
        continue;
      }
      EXPECT_EQ(code_of(a), service_error::storage_quota_exceeded);
      auto message = service_message(a.error());
      EXPECT_NE(message.find("600 of its 1000 bytes are in use"), std::string::npos) << message;
    }
    EXPECT_EQ(passed, 1) << "round " << round;
    EXPECT_EQ(used(o), 600);
    EXPECT_EQ(recomputed(o), 600);
  }
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM uploads"), "20"); // a refused creation wrote nothing
}

// The limit is the plan's: pro has its own.
TEST_F(Storage, LimitIsThePlans) {
  auto free = make_owner("free@example.com");
  auto pro = make_owner("pro@example.com", "pro");
  EXPECT_EQ(code_of(create(free, limit + 1)), service_error::storage_quota_exceeded);
  EXPECT_TRUE(create(pro, 5 * limit));
  auto status = query<storage_status>(storage_get_atom::value, pro.user_id);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->used_bytes, 5 * limit);
  EXPECT_EQ(status->limit_bytes, 10 * limit);
  EXPECT_EQ(status->plan, "pro");
  EXPECT_EQ(code_of(query<storage_status>(storage_get_atom::value, std::string{"not-a-uuid"})),
            service_error::not_found);
}

// Termination and expiry of an unfinished upload give its reservation back; a completed upload keeps it (its bytes
// are its job's) even when terminated.
TEST_F(Storage, UnfinishedUploadsGiveTheirReservationBack) {
  auto o = make_owner("u@example.com");
  auto first = create(o, 700);
  ASSERT_TRUE(first);
  EXPECT_EQ(used(o), 700);
  ASSERT_TRUE(query<upload_record>(upload_terminate_atom::value, first->id));
  EXPECT_EQ(used(o), 0);
  auto second = create(o, 800);
  ASSERT_TRUE(second) << to_string(second.error());
  db_.execute("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = '" + second->id + "'");
  auto expired = query<std::vector<upload_record>>(upload_expire_atom::value, int32_t{10});
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->size(), 1u);
  EXPECT_EQ(used(o), 0);
  auto done = completed(o, 900);
  EXPECT_FALSE(done.job_id.empty());
  ASSERT_TRUE(query<upload_record>(upload_terminate_atom::value, done.id));
  EXPECT_EQ(used(o), 900);
  EXPECT_EQ(recomputed(o), 900);
}

// Registering a job's files swaps the upload's reservation for the files' sizes, once (a retried registration
// counts nothing twice); replacing a file counts the difference.
TEST_F(Storage, RegisteredFilesReplaceTheReservation) {
  auto o = make_owner("u@example.com");
  auto upload = completed(o, 100, "a.tar");
  EXPECT_EQ(used(o), 100);
  std::vector<file_entry> files{{"a", 600}, {"b", 300}};
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto registered =
      query<std::vector<file_record>>(files_register_atom::value, upload.job_id, o.repository_id, files);
    ASSERT_TRUE(registered) << to_string(registered.error());
    EXPECT_EQ(used(o), 900);
  }
  // Another upload replaces a with 50 bytes: the reservation of 80 comes and goes, and a gives 550 back.
  auto replacing = completed(o, 80, "b.tar");
  EXPECT_EQ(used(o), 980);
  ASSERT_TRUE(query<std::vector<file_record>>(files_register_atom::value, replacing.job_id, o.repository_id,
                                              std::vector<file_entry>{{"a", 50}}));
  EXPECT_EQ(used(o), 350);
  EXPECT_EQ(recomputed(o), 350);
}

// Files that would take the user over the limit are refused when registered: nothing is written, the upload keeps
// its reservation until its job fails for good, which gives it back.
TEST_F(Storage, RegistrationOverTheLimitWritesNothing) {
  auto o = make_owner("u@example.com");
  auto first = completed(o, 10, "one.tar");
  ASSERT_TRUE(query<std::vector<file_record>>(files_register_atom::value, first.job_id, o.repository_id,
                                              std::vector<file_entry>{{"kept", 700}}));
  auto second = completed(o, 50, "two.tar");
  EXPECT_EQ(used(o), 750);
  auto refused = query<std::vector<file_record>>(files_register_atom::value, second.job_id, o.repository_id,
                                                 std::vector<file_entry>{{"new1", 200}, {"new2", 200}});
  ASSERT_EQ(code_of(refused), service_error::storage_quota_exceeded);
  auto message = service_message(refused.error());
  EXPECT_NE(message.find("1100 bytes, over the 1000 bytes"), std::string::npos) << message;
  EXPECT_EQ(db_.scalar("SELECT string_agg(path, ',') FROM files"), "kept");
  EXPECT_EQ(used(o), 750);
  // The job fails for good (claimed, then failed): the reservation goes.
  auto claimed =
    query<std::vector<job_record>>(job_claim_atom::value, std::string{"node"}, int64_t{60000}, int32_t{10});
  ASSERT_TRUE(claimed);
  ASSERT_EQ(claimed->size(), 2u);
  ASSERT_TRUE(query<job_record>(job_fail_atom::value, second.job_id, std::string{"node"}, int32_t{1},
                                std::string{"over quota"}, true, int64_t{1000}));
  EXPECT_EQ(used(o), 700);
  EXPECT_EQ(recomputed(o), 700);
}

// A registration that frees bytes passes even when the user is over the limit (a limit lowered since, say), while
// a new upload is refused there.
TEST_F(Storage, RegistrationThatFreesBytesPassesOverTheLimit) {
  auto o = make_owner("u@example.com");
  auto first = completed(o, 10, "one.tar");
  ASSERT_TRUE(query<std::vector<file_record>>(files_register_atom::value, first.job_id, o.repository_id,
                                              std::vector<file_entry>{{"big", 900}}));
  auto second = completed(o, 5, "two.tar");
  db_.execute("UPDATE files SET size_bytes = 1500"); // as if the limit had been lowered under the use
  EXPECT_EQ(used(o), 1505);
  EXPECT_EQ(code_of(create(o, 1)), service_error::storage_quota_exceeded);
  EXPECT_TRUE(query<std::vector<file_record>>(files_register_atom::value, second.job_id, o.repository_id,
                                              std::vector<file_entry>{{"big", 100}}));
  EXPECT_EQ(used(o), 100);
}

// An empty upload completes without a job; as a file it is registered at once (done, empty), replacing one of that
// path; an empty "archive" registers nothing.
TEST_F(Storage, EmptyUploadsCompleteWithoutAJob) {
  auto o = make_owner("u@example.com");
  auto replaced = completed(o, 10, "x.tar");
  ASSERT_TRUE(query<std::vector<file_record>>(files_register_atom::value, replaced.job_id, o.repository_id,
                                              std::vector<file_entry>{{"empty.py", 40}}));
  EXPECT_EQ(used(o), 40);
  auto empty = create(o, 0, "empty.py");
  ASSERT_TRUE(empty);
  auto done = query<upload_record>(upload_empty_atom::value, empty->id, true, std::string{"Python"});
  ASSERT_TRUE(done) << to_string(done.error());
  EXPECT_NE(done->completed_at_ms, 0);
  EXPECT_EQ(done->job_id, "");
  EXPECT_EQ(db_.scalar("SELECT size_bytes || ' ' || status || ' ' || language || ' ' || line_count || ' ' || sha256 "
                       "FROM files WHERE path = 'empty.py'"),
            "0 done Python 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(used(o), 0);
  auto archive = create(o, 0, "nothing.zip");
  ASSERT_TRUE(archive);
  ASSERT_TRUE(query<upload_record>(upload_empty_atom::value, archive->id, false, std::string{}));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM files"), "1");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobs"), "1"); // only x.tar's
  // Completing an empty upload through upload_complete enqueues nothing either; a non-empty one is refused here.
  auto other = create(o, 0, "other.txt");
  ASSERT_TRUE(other);
  job_draft job;
  job.kind = "upload";
  ASSERT_TRUE(query<upload_record>(upload_complete_atom::value, other->id, int64_t{0}, job));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobs"), "1");
  auto full = create(o, 5, "full.txt");
  ASSERT_TRUE(full);
  EXPECT_EQ(code_of(query<upload_record>(upload_empty_atom::value, full->id, true, std::string{})),
            service_error::invalid_input);
  EXPECT_EQ(recomputed(o), used(o));
}

// Deleting a repository or a user keeps the accounting right (the triggers that count files on delete).
TEST_F(Storage, DeletionsKeepTheAccountExact) {
  auto o = make_owner("u@example.com");
  auto upload = completed(o, 10, "x.tar");
  ASSERT_TRUE(query<std::vector<file_record>>(files_register_atom::value, upload.job_id, o.repository_id,
                                              std::vector<file_entry>{{"a", 100}, {"b", 200}}));
  auto second_repo =
    db_.scalar("INSERT INTO repositories (user_id, name) VALUES ('" + o.user_id + "', 'second') RETURNING id");
  db_.execute("INSERT INTO files (repository_id, path, size_bytes) VALUES ('" + second_repo + "', 'c', 50)");
  ASSERT_TRUE(create(o, 25));
  EXPECT_EQ(used(o), 375);
  db_.execute("DELETE FROM files WHERE path = 'a'");
  EXPECT_EQ(used(o), 275);
  db_.execute("DELETE FROM repositories WHERE id = '" + o.repository_id + "'");
  EXPECT_EQ(used(o), 75);
  EXPECT_EQ(recomputed(o), 75);
  db_.execute("DELETE FROM users WHERE id = '" + o.user_id + "'");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM storage_usage"), "0");
}

} // namespace

// Every transaction that changes a user's storage use is counted in the storage epoch (what lets a session keep the
// use it read: actors/sessions.hpp); reads are not counted.
TEST_F(Storage, ChangesOfStorageUseAdvanceTheEpoch) {
  auto o = make_owner("epoch@example.com");
  auto at = [&] {
    auto e = epoch_->settled();
    EXPECT_TRUE(e) << "a change is still counted as under way";
    return e.value_or(0);
  };
  auto e0 = at();
  EXPECT_EQ(used(o), 0);
  EXPECT_EQ(at(), e0); // a read
  auto first = create(o, 700);
  ASSERT_TRUE(first) << to_string(first.error());
  auto e1 = at();
  EXPECT_GT(e1, e0); // the reservation
  EXPECT_TRUE(query<upload_record>(upload_load_atom::value, first->id));
  EXPECT_EQ(at(), e1); // a read
  ASSERT_TRUE(query<upload_record>(upload_terminate_atom::value, first->id));
  auto e2 = at();
  EXPECT_GT(e2, e1); // the reservation given back
  auto done = completed(o, 100, "a.tar");
  auto e3 = at();
  EXPECT_GT(e3, e2);
  ASSERT_TRUE(query<std::vector<file_record>>(files_register_atom::value, done.job_id, o.repository_id,
                                              std::vector<file_entry>{{"a", 60}}));
  EXPECT_GT(at(), e3); // files registered, the reservation released
  EXPECT_EQ(used(o), 60);
  // A change that fails (over the limit) is counted too: it may have run statements before failing.
  auto e4 = at();
  EXPECT_FALSE(create(o, 10 * limit));
  EXPECT_GT(at(), e4);
}

// A claim is counted as a storage change only when it ends a lapsed attempt (a last one fails its job and releases
// its upload's reservation), not on every poll of the queue.
TEST_F(Storage, ALapsedLastAttemptCountsAsAStorageChange) {
  auto o = make_owner("lapse@example.com");
  auto upload = completed(o, 400, "lapse.tar");
  EXPECT_EQ(used(o), 400);
  auto claim = [&] {
    return query<std::vector<job_record>>(job_claim_atom::value, std::string{"node"}, int64_t{60000}, int32_t{10});
  };
  auto before = epoch_->settled();
  ASSERT_TRUE(before);
  auto claimed = claim();
  ASSERT_TRUE(claimed) << to_string(claimed.error());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_TRUE(epoch_->unchanged_since(*before)); // an ordinary claim changes no storage
  // Its worker vanished on its last attempt: the lease lapses, and the next poll fails the job.
  db_.execute("UPDATE jobs SET lease_until = now() - interval '1 second', max_attempts = attempts WHERE id = '"
              + upload.job_id + "'");
  ASSERT_TRUE(claim());
  EXPECT_FALSE(epoch_->unchanged_since(*before));
  EXPECT_TRUE(epoch_->settled());
  EXPECT_EQ(used(o), 0);
  EXPECT_EQ(recomputed(o), 0);
}

// Accounts against a real PostgreSQL, through "db.query" (the query router) over two connection actors: users,
// session snapshots, refresh token rotation with reuse detection (also under concurrency), API keys, revoked
// access tokens and the purge.

#include "tests/persistence/scratch_database.hpp"

#include "actors/messages.hpp"
#include "config/service_error.hpp"
#include "persistence/accounts.hpp"
#include "persistence/database.hpp"
#include "persistence/query_router.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <type_traits>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A distinct 64-hex-digit "SHA-256" per n.
std::string hash_of(int n) {
  char buf[65];
  std::snprintf(buf, sizeof(buf), "%064x", n);
  return buf;
}

const std::string password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";

struct system_holder {
  system_holder() { register_message_types(cfg); }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

/// Sends one request and waits for its answer: the value or the error.
template <class T, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const caf::actor& dest, Ts&&... xs) {
  caf::expected<T> out{caf::make_error(caf::sec::request_timeout)};
  caf::scoped_actor self{sys};
  self->request(dest, std::chrono::seconds{30}, std::forward<Ts>(xs)...)
    .receive([&](T& value) { out = std::move(value); }, [&](caf::error& err) { out = std::move(err); });
  return out;
}

/// The value, or `fallback` when the answer was an error.
template <class T>
T value_or(caf::expected<T> x, std::common_type_t<T> fallback) {
  return x ? std::move(*x) : fallback;
}

template <class T>
service_error code_of(const caf::expected<T>& x) {
  return x ? service_error::none : service_code(x.error());
}

/// A scratch database, an actor system, two connection actors and the query router over them.
class Accounts : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    holder_.sys = std::make_unique<caf::actor_system>(holder_.cfg);
    for (int i = 0; i < 2; ++i)
      connections_.push_back(
        caf::actor_cast<caf::actor>(spawn_database_connection(sys(), database_options{db_.url(), 2000ms})));
    auto connections = connections_;
    router_ = caf::actor_cast<caf::actor>(
      spawn_query_router(sys(), connections.size(), [connections](size_t i) -> std::optional<db_connection_actor> {
        return caf::actor_cast<db_connection_actor>(connections.at(i));
      }));
  }

  void TearDown() override {
    if (!holder_.sys)
      return;
    for (auto& a : connections_)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    caf::anon_send_exit(router_, caf::exit_reason::kill);
  }

  caf::actor_system& sys() { return *holder_.sys; }

  template <class T, class... Ts>
  caf::expected<T> query(Ts&&... xs) {
    return ask<T>(sys(), router_, std::forward<Ts>(xs)...);
  }

  user_record create_user(const std::string& email) {
    auto user = query<user_record>(user_create_atom::value, email, password_hash, std::string{});
    EXPECT_TRUE(user) << to_string(user.error());
    return user ? *user : user_record{};
  }

  std::string issue(const std::string& user_id, const std::string& family, int token, int64_t ttl = 3600) {
    auto fam = query<std::string>(refresh_issue_atom::value, user_id, family, hash_of(token), unix_now() + ttl);
    EXPECT_TRUE(fam) << to_string(fam.error());
    return fam ? *fam : std::string{};
  }

  refresh_rotation rotate(int old_token, int new_token) {
    auto r =
      query<refresh_rotation>(refresh_rotate_atom::value, hash_of(old_token), hash_of(new_token), unix_now() + 3600);
    EXPECT_TRUE(r) << to_string(r.error());
    return r ? *r : refresh_rotation{};
  }

  api_key_record create_key(const std::string& user_id, const std::string& name, int key,
                            const api_key_limits& limits = {}) {
    auto k =
      query<api_key_record>(api_key_create_atom::value, user_id, name, hash_of(key), std::string{"abcd"}, limits);
    EXPECT_TRUE(k) << to_string(k.error());
    return k ? *k : api_key_record{};
  }

  troupe::testing::scratch_database db_;
  system_holder holder_;
  std::vector<caf::actor> connections_;
  caf::actor router_;
};

} // namespace

// --- Users -----------------------------------------------------------------------------------------------------------

// A created user is found by email and by id, with the schema's defaults.
TEST_F(Accounts, CreatedUserIsFoundByEmailAndId) {
  auto user = create_user("ada@example.com");
  EXPECT_EQ(user.id.size(), 36u);
  EXPECT_EQ(user.email, "ada@example.com");
  EXPECT_EQ(user.password_hash, password_hash);
  EXPECT_EQ(user.role, "user");
  EXPECT_EQ(user.plan, "free");
  EXPECT_NEAR(user.created_at, unix_now(), 5);
  auto by_email = query<user_record>(user_by_email_atom::value, std::string{"ada@example.com"});
  ASSERT_TRUE(by_email);
  EXPECT_EQ(by_email->id, user.id);
  auto by_id = query<user_record>(user_by_id_atom::value, user.id);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->email, user.email);
  EXPECT_EQ(by_id->created_at, user.created_at);
}

// A second account with the same email is a conflict; a non-normalised email is invalid input.
TEST_F(Accounts, DuplicateEmailIsConflict) {
  create_user("bob@example.com");
  auto again =
    query<user_record>(user_create_atom::value, std::string{"bob@example.com"}, password_hash, std::string{"user"});
  EXPECT_EQ(code_of(again), service_error::conflict);
  auto upper =
    query<user_record>(user_create_atom::value, std::string{"Bob@Example.com"}, password_hash, std::string{});
  EXPECT_EQ(code_of(upper), service_error::invalid_input);
}

// Unknown emails, unknown ids and malformed ids are all not_found (never a 500).
TEST_F(Accounts, UnknownOrMalformedUserIsNotFound) {
  create_user("carol@example.com");
  EXPECT_EQ(code_of(query<user_record>(user_by_email_atom::value, std::string{"nobody@example.com"})),
            service_error::not_found);
  for (std::string id : {"00000000-0000-0000-0000-000000000000", "not-a-uuid", "", "'; DROP TABLE users; --",
                         "0000000000000000000000000000000000000"})
    EXPECT_EQ(code_of(query<user_record>(user_by_id_atom::value, id)), service_error::not_found) << id;
  EXPECT_EQ(code_of(query<session_snapshot>(session_load_atom::value, std::string{"x"})), service_error::not_found);
}

// The role can be changed by email; unknown emails are not_found and unknown roles invalid.
TEST_F(Accounts, SetRoleChangesTheRole) {
  auto user = create_user("dan@example.com");
  auto admin = query<user_record>(user_set_role_atom::value, std::string{"dan@example.com"}, std::string{"admin"});
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->id, user.id);
  EXPECT_EQ(admin->role, "admin");
  EXPECT_EQ(query<user_record>(user_by_id_atom::value, user.id)->role, "admin");
  EXPECT_EQ(code_of(query<user_record>(user_set_role_atom::value, std::string{"x@example.com"}, std::string{"admin"})),
            service_error::not_found);
  EXPECT_EQ(code_of(query<user_record>(user_set_role_atom::value, user.email, std::string{"root"})),
            service_error::invalid_input);
}

// --- Sessions --------------------------------------------------------------------------------------------------------

// A session snapshot holds the user, the revoked access tokens that have not expired yet and the revoked keys.
TEST_F(Accounts, SessionLoadReturnsLiveRevocations) {
  auto user = create_user("eve@example.com");
  auto other = create_user("frank@example.com");
  auto now = unix_now();
  ASSERT_TRUE(query<bool>(jti_revoke_atom::value, user.id, std::string{"live-jti"}, now + 600));
  ASSERT_TRUE(query<bool>(jti_revoke_atom::value, user.id, std::string{"expired-jti"}, now - 600));
  ASSERT_TRUE(query<bool>(jti_revoke_atom::value, other.id, std::string{"other-jti"}, now + 600));
  auto revoked = create_key(user.id, "old", 1);
  create_key(user.id, "current", 2);
  ASSERT_TRUE(query<api_key_record>(api_key_revoke_atom::value, user.id, revoked.id));

  auto snapshot = query<session_snapshot>(session_load_atom::value, user.id);
  ASSERT_TRUE(snapshot) << to_string(snapshot.error());
  EXPECT_EQ(snapshot->user.email, "eve@example.com");
  EXPECT_EQ(snapshot->revoked_jtis, std::vector<std::string>{"live-jti"});
  EXPECT_EQ(snapshot->revoked_jti_expiries, std::vector<int64_t>{now + 600});
  EXPECT_EQ(snapshot->revoked_key_ids, std::vector<std::string>{revoked.id});
  EXPECT_EQ(
    code_of(query<session_snapshot>(session_load_atom::value, std::string{"00000000-0000-0000-0000-000000000000"})),
    service_error::not_found);
}

// --- Refresh tokens --------------------------------------------------------------------------------------------------

// Presenting a token that was already rotated revokes its whole family, the token it was rotated into included.
TEST_F(Accounts, ReusedRefreshTokenRevokesItsFamily) {
  auto user = create_user("gina@example.com");
  auto family = issue(user.id, "", 1);
  EXPECT_EQ(family.size(), 36u);

  auto first = rotate(1, 2);
  EXPECT_EQ(first.outcome, "rotated");
  EXPECT_EQ(first.user_id, user.id);
  EXPECT_EQ(first.family_id, family);

  auto replay = rotate(1, 3);
  EXPECT_EQ(replay.outcome, "reused");
  EXPECT_EQ(replay.user_id, user.id);
  EXPECT_EQ(replay.family_id, family);

  EXPECT_EQ(rotate(2, 4).outcome, "invalid") << "the token rotated into must be revoked with its family";
  EXPECT_EQ(rotate(1, 5).outcome, "invalid");
  EXPECT_EQ(
    db_.scalar("SELECT count(*) FROM refresh_tokens WHERE family_id = '" + family + "' AND revoked_at IS NOT NULL"),
    "2");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM refresh_tokens"), "2") << "no token is issued on reuse";
}

// Expired, unknown and malformed tokens are invalid; a malformed new hash is invalid input.
TEST_F(Accounts, ExpiredOrUnknownRefreshTokenIsInvalid) {
  auto user = create_user("hal@example.com");
  issue(user.id, "", 1);
  db_.execute("UPDATE refresh_tokens SET created_at = now() - interval '2 hours', "
              "expires_at = now() - interval '1 hour'");
  EXPECT_EQ(rotate(1, 2).outcome, "invalid");
  EXPECT_EQ(rotate(99, 2).outcome, "invalid");
  auto malformed = query<refresh_rotation>(refresh_rotate_atom::value, std::string{"xyz"}, hash_of(2), unix_now() + 60);
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->outcome, "invalid");
  EXPECT_EQ(
    code_of(query<refresh_rotation>(refresh_rotate_atom::value, hash_of(1), std::string{"short"}, unix_now() + 60)),
    service_error::invalid_input);
  EXPECT_EQ(code_of(query<std::string>(refresh_issue_atom::value, user.id, std::string{}, hash_of(7), unix_now() - 60)),
            service_error::invalid_input)
    << "a token that expires before it is created";
  EXPECT_EQ(code_of(query<std::string>(refresh_issue_atom::value, std::string{"00000000-0000-0000-0000-000000000000"},
                                       std::string{}, hash_of(8), unix_now() + 60)),
            service_error::not_found);
}

// Two rotations of one token at the same time (on two connections): exactly one rotates, the other is a reuse. The
// test holds the token's row lock until both rotations wait on it, so they really overlap in the database.
TEST_F(Accounts, ConcurrentRotationsOfOneTokenRotateOnce) {
  auto user = create_user("ivy@example.com");
  caf::scoped_actor self{sys()};
  pqxx::connection blocker{db_.url()};
  for (int round = 0; round < 10; ++round) {
    int token = 1000 * (round + 1);
    issue(user.id, "", token);
    pqxx::work hold{blocker};
    hold.exec("SELECT 1 FROM refresh_tokens WHERE token_hash = decode('" + hash_of(token) + "', 'hex') FOR UPDATE");
    for (int i = 1; i <= 2; ++i)
      self->send(router_, refresh_rotate_atom::value, hash_of(token), hash_of(token + i), unix_now() + 3600);
    // Both rotations must be waiting on the held row, or this round would not test the overlap.
    ASSERT_TRUE(db_.wait_for_lock_waiters(2)) << "round " << round << ": the two rotations never waited together";
    hold.commit();
    std::multiset<std::string> outcomes;
    for (int i = 0; i < 2; ++i)
      self->receive([&](refresh_rotation& r) { outcomes.insert(r.outcome); },
                    [&](caf::error& e) { ADD_FAILURE() << to_string(e); },
                    caf::after(std::chrono::seconds{30}) >> [&] { ADD_FAILURE() << "no answer"; });
    EXPECT_EQ(outcomes, (std::multiset<std::string>{"reused", "rotated"})) << "round " << round;
  }
}

// Logout revokes the whole family of the presented token and nothing else; revoking a user ends every family.
TEST_F(Accounts, RevokeEndsTheTokensFamily) {
  auto user = create_user("jack@example.com");
  auto family = issue(user.id, "", 1);
  EXPECT_EQ(rotate(1, 2).outcome, "rotated");
  auto other_family = issue(user.id, "", 10);
  EXPECT_EQ(issue(user.id, other_family, 11), other_family) << "issuing into a live family of the user";

  EXPECT_EQ(value_or(query<int64_t>(refresh_revoke_atom::value, hash_of(2)), -1), 2);
  EXPECT_EQ(rotate(2, 3).outcome, "invalid");
  EXPECT_EQ(value_or(query<int64_t>(refresh_revoke_atom::value, hash_of(2)), -1), 0) << "already revoked";
  EXPECT_EQ(value_or(query<int64_t>(refresh_revoke_atom::value, hash_of(999)), -1), 0) << "unknown";
  EXPECT_EQ(code_of(query<std::string>(refresh_issue_atom::value, user.id, family, hash_of(4), unix_now() + 60)),
            service_error::not_found)
    << "a revoked family takes no new token";

  EXPECT_EQ(rotate(10, 12).outcome, "rotated");
  EXPECT_EQ(value_or(query<int64_t>(refresh_revoke_user_atom::value, user.id), -1), 3);
  EXPECT_EQ(rotate(12, 13).outcome, "invalid");
  EXPECT_EQ(rotate(11, 14).outcome, "invalid");
}

// --- API keys --------------------------------------------------------------------------------------------------------

// Keys are listed newest first, revoked ones too; another user's key is not_found and stays active; a revoked key
// no longer authenticates and keeps its first revoked_at; touching only moves last_used_at forward.
TEST_F(Accounts, ApiKeyLifecycle) {
  auto owner = create_user("kim@example.com");
  auto stranger = create_user("lou@example.com");
  auto first = create_key(owner.id, "laptop", 1);
  auto second = create_key(owner.id, "ci", 2);
  EXPECT_EQ(first.user_id, owner.id);
  EXPECT_EQ(first.last4, "abcd");
  EXPECT_EQ(first.last_used_at, 0);
  EXPECT_EQ(first.revoked_at, 0);
  EXPECT_EQ(code_of(query<api_key_record>(api_key_create_atom::value, stranger.id, std::string{"dup"}, hash_of(1),
                                          std::string{"abcd"}, api_key_limits{})),
            service_error::conflict);
  EXPECT_EQ(
    code_of(query<api_key_record>(api_key_create_atom::value, std::string{"00000000-0000-0000-0000-000000000000"},
                                  std::string{"x"}, hash_of(3), std::string{"abcd"}, api_key_limits{})),
    service_error::not_found);

  // Another user's key: 404, and it keeps working.
  EXPECT_EQ(code_of(query<api_key_record>(api_key_revoke_atom::value, stranger.id, first.id)),
            service_error::not_found);
  auto found = query<api_key_record>(api_key_lookup_atom::value, hash_of(1));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, first.id);
  EXPECT_EQ(found->user_id, owner.id);

  // Revoke, and revoke again: the first revoked_at stays.
  auto revoked = query<api_key_record>(api_key_revoke_atom::value, owner.id, first.id);
  ASSERT_TRUE(revoked);
  EXPECT_NEAR(revoked->revoked_at, unix_now(), 5);
  db_.execute("UPDATE api_keys SET revoked_at = to_timestamp(1000000000) WHERE id = '" + first.id + "'");
  EXPECT_EQ(query<api_key_record>(api_key_revoke_atom::value, owner.id, first.id)->revoked_at, 1000000000);
  EXPECT_EQ(code_of(query<api_key_record>(api_key_lookup_atom::value, hash_of(1))), service_error::unauthenticated);
  EXPECT_EQ(code_of(query<api_key_record>(api_key_lookup_atom::value, hash_of(42))), service_error::unauthenticated);
  EXPECT_EQ(code_of(query<api_key_record>(api_key_revoke_atom::value, owner.id, std::string{"nope"})),
            service_error::not_found);

  // Touch.
  auto now = unix_now();
  EXPECT_EQ(value_or(query<bool>(api_key_touch_atom::value, second.id, now), false), true);
  EXPECT_EQ(value_or(query<bool>(api_key_touch_atom::value, second.id, now - 100), false), true);
  EXPECT_EQ(query<api_key_record>(api_key_lookup_atom::value, hash_of(2))->last_used_at, now);
  EXPECT_EQ(
    value_or(query<bool>(api_key_touch_atom::value, std::string{"00000000-0000-0000-0000-000000000000"}, now), true),
    false);

  auto listed = query<std::vector<api_key_record>>(api_key_list_atom::value, owner.id);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, second.id);
  EXPECT_EQ((*listed)[0].last_used_at, now);
  EXPECT_EQ((*listed)[1].id, first.id);
  EXPECT_EQ((*listed)[1].revoked_at, 1000000000);
  EXPECT_TRUE(query<std::vector<api_key_record>>(api_key_list_atom::value, stranger.id)->empty());
}

// A key's limits are stored as given and come back from a look-up and a listing; the listing and a session's
// snapshot carry the spend of the key's current budget period (usage_events since its start), and a key without
// limits has none.
TEST_F(Accounts, ApiKeyLimitsAndTheirSpend) {
  auto owner = create_user("vic@example.com");
  api_key_limits limits;
  limits.models = {"mock-1", "mock-\"2\""};
  limits.max_budget_pusd = 2500000000000; // 2.50 USD
  limits.budget_duration_s = 86400;
  limits.tpm_limit = 1000;
  limits.rpm_limit = 10;
  limits.max_parallel_requests = 2;
  auto limited = create_key(owner.id, "limited", 1, limits);
  auto plain = create_key(owner.id, "plain", 2);
  EXPECT_EQ(limited.limits.models, limits.models);
  EXPECT_EQ(limited.limits.max_budget_pusd, limits.max_budget_pusd);
  EXPECT_EQ(limited.limits.budget_duration_s, 86400);
  EXPECT_EQ(limited.limits.tpm_limit, 1000);
  EXPECT_EQ(limited.limits.rpm_limit, 10);
  EXPECT_EQ(limited.limits.max_parallel_requests, 2);
  EXPECT_FALSE(plain.limits.metered());
  EXPECT_TRUE(plain.limits.models.empty());
  auto looked_up = query<api_key_record>(api_key_lookup_atom::value, hash_of(1));
  ASSERT_TRUE(looked_up);
  EXPECT_EQ(looked_up->limits.models, limits.models);
  EXPECT_EQ(looked_up->limits.max_parallel_requests, 2);

  {
    // 1.25 USD through the key in its current period (now), and 7 USD before it began (two days ago): the key
    // was created now, so only the first counts.
    pqxx::connection conn{db_.url()};
    pqxx::work tx{conn};
    tx.exec_params("INSERT INTO usage_events (id, user_id, api_key_id, model, upstream, prompt_tokens, "
                   "completion_tokens, cost_usd, estimated, outcome, created_at) VALUES "
                   "(gen_random_uuid(), $1::uuid, $2::uuid, 'm', 'u', 1, 1, 1.25, false, 'complete', now()), "
                   "(gen_random_uuid(), $1::uuid, $2::uuid, 'm', 'u', 1, 1, 7, false, 'complete', "
                   "now() - interval '2 days')",
                   owner.id, limited.id);
    tx.commit();
  }
  auto listed = query<std::vector<api_key_record>>(api_key_list_atom::value, owner.id);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  const auto& with_spend = (*listed)[0].id == limited.id ? (*listed)[0] : (*listed)[1];
  EXPECT_EQ(with_spend.spend_pusd, 1250000000000);
  EXPECT_EQ(with_spend.period_start, limited.created_at);
  EXPECT_EQ(with_spend.limits.models, limits.models);

  auto snapshot = query<session_snapshot>(session_load_atom::value, owner.id);
  ASSERT_TRUE(snapshot);
  ASSERT_EQ(snapshot->key_spends.size(), 1u); // only keys with a budget
  EXPECT_EQ(snapshot->key_spends[0].key_id, limited.id);
  EXPECT_EQ(snapshot->key_spends[0].spent_pusd, 1250000000000);
  EXPECT_EQ(snapshot->key_spends[0].period_start, limited.created_at);
}

TEST(KeyPeriod, CountsWholePeriodsFromTheKeysCreation) {
  EXPECT_EQ(key_period_start(1000, 0, 5000), 1000); // a lifetime budget
  EXPECT_EQ(key_period_start(1000, 100, 1000), 1000);
  EXPECT_EQ(key_period_start(1000, 100, 1099), 1000);
  EXPECT_EQ(key_period_start(1000, 100, 1100), 1100);
  EXPECT_EQ(key_period_start(1000, 100, 5050), 5000);
  EXPECT_EQ(key_period_start(1000, 100, 900), 1000); // a clock behind the key's creation
}

// --- Access tokens and purge -----------------------------------------------------------------------------------------

// Revoking an access token twice succeeds twice and stores it once.
TEST_F(Accounts, JtiRevokeIsIdempotent) {
  auto user = create_user("max@example.com");
  auto expires = unix_now() + 900;
  EXPECT_EQ(value_or(query<bool>(jti_revoke_atom::value, user.id, std::string{"jti-1"}, expires), false), true);
  EXPECT_EQ(value_or(query<bool>(jti_revoke_atom::value, user.id, std::string{"jti-1"}, expires), true), false);
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM revoked_tokens"), "1");
  EXPECT_EQ(code_of(query<bool>(jti_revoke_atom::value, std::string{"00000000-0000-0000-0000-000000000000"},
                                std::string{"jti-2"}, expires)),
            service_error::not_found);
}

// The purge deletes expired revoked access tokens and refresh tokens expired over a day ago, nothing else.
TEST_F(Accounts, PurgeDeletesOnlyWhatExpired) {
  auto user = create_user("ned@example.com");
  auto now = unix_now();
  query<bool>(jti_revoke_atom::value, user.id, std::string{"expired"}, now - 1);
  query<bool>(jti_revoke_atom::value, user.id, std::string{"live"}, now + 600);
  issue(user.id, "", 1);
  issue(user.id, "", 2);
  issue(user.id, "", 3);
  db_.execute(
    "UPDATE refresh_tokens SET created_at = now() - interval '3 days', expires_at = now() - interval '2 days' "
    "WHERE token_hash = decode('"
    + hash_of(1) + "', 'hex')");
  db_.execute(
    "UPDATE refresh_tokens SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' "
    "WHERE token_hash = decode('"
    + hash_of(2) + "', 'hex')");

  EXPECT_EQ(value_or(query<int64_t>(auth_purge_atom::value), -1), 2);
  EXPECT_EQ(db_.scalar("SELECT string_agg(jti, ',') FROM revoked_tokens"), "live");
  EXPECT_EQ(db_.scalar("SELECT string_agg(encode(token_hash, 'hex'), ',' ORDER BY token_hash) FROM refresh_tokens"),
            hash_of(2) + "," + hash_of(3));
  EXPECT_EQ(value_or(query<int64_t>(auth_purge_atom::value), -1), 0);
}

// A connection lost under a query answers unavailable (never an exception or a hang) and reconnects afterwards.
TEST_F(Accounts, LostConnectionIsUnavailableThenRecovers) {
  create_user("olga@example.com");
  db_.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  auto lost = query<user_record>(user_by_email_atom::value, std::string{"olga@example.com"});
  EXPECT_EQ(code_of(lost), service_error::unavailable);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  caf::expected<user_record> again = caf::make_error(caf::sec::request_timeout);
  while (!again && std::chrono::steady_clock::now() < deadline) {
    again = query<user_record>(user_by_email_atom::value, std::string{"olga@example.com"});
    if (!again) {
      EXPECT_EQ(code_of(again), service_error::unavailable);
    }
  }
  EXPECT_TRUE(again) << "no reconnection within 10 s";
}

// --- The router ------------------------------------------------------------------------------------------------------

// A connection that is not running is skipped; the queries go to the ones that are.
TEST_F(Accounts, RouterSkipsConnectionsThatAreDown) {
  auto live = connections_.at(1);
  auto router =
    caf::actor_cast<caf::actor>(spawn_query_router(sys(), 2, [live](size_t i) -> std::optional<db_connection_actor> {
      return i == 0 ? std::nullopt : std::optional<db_connection_actor>{caf::actor_cast<db_connection_actor>(live)};
    }));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(code_of(ask<user_record>(sys(), router, user_by_email_atom::value, std::string{"z@example.com"})),
              service_error::not_found);
  caf::anon_send_exit(router, caf::exit_reason::kill);
}

// Without any running connection the router answers unavailable itself; a connection without a database too.
TEST(QueryRouter, AnswersUnavailableWithoutConnections) {
  system_holder holder;
  holder.sys = std::make_unique<caf::actor_system>(holder.cfg);
  auto& sys = *holder.sys;
  auto none = caf::actor_cast<caf::actor>(
    spawn_query_router(sys, 2, [](size_t) -> std::optional<db_connection_actor> { return std::nullopt; }));
  EXPECT_EQ(code_of(ask<user_record>(sys, none, user_by_id_atom::value, std::string{"x"})), service_error::unavailable);
  auto empty = caf::actor_cast<caf::actor>(spawn_query_router(sys, 0, {}));
  EXPECT_EQ(code_of(ask<int64_t>(sys, empty, auth_purge_atom::value)), service_error::unavailable);
  EXPECT_EQ(value_or(ask<size_t>(sys, none, mailbox_atom::value), 99), 0u);

  auto unconfigured = caf::actor_cast<caf::actor>(spawn_database_connection(sys, database_options{}));
  auto router = caf::actor_cast<caf::actor>(
    spawn_query_router(sys, 1, [unconfigured](size_t) -> std::optional<db_connection_actor> {
      return caf::actor_cast<db_connection_actor>(unconfigured);
    }));
  EXPECT_EQ(code_of(ask<user_record>(sys, router, user_by_email_atom::value, std::string{"a@example.com"})),
            service_error::unavailable);
  for (auto& a : {none, empty, unconfigured, router})
    caf::anon_send_exit(a, caf::exit_reason::kill);
}

// Crash points where the promises live (a 2xx on a write means committed; a restart never hands out a fresh
// allowance), on the real binary and a scratch PostgreSQL: the server is killed with SIGKILL right after each
// acknowledged account write, after a quota reservation and in the middle of a tus PATCH (between the chunk's fsync
// and its offset's COMMIT), and each test then reads what PostgreSQL and the disk hold before it restarts the
// server and checks that it carries on from there.
//
//   - A 2xx on a write means the data is committed: register, API key create and revoke, refresh rotation.
//   - A budget is reserved before an upstream call and settled after it: the reservation is in PostgreSQL while the
//     call is at the upstream, and a restart does not hand out a fresh allowance; a failed call gives it back.
//   - Upload offsets never move backwards, and bytes below the reported offset are stored: a chunk whose offset was
//     never committed is cut off on resume (actors/uploads.cpp write_chunk), whether the server died or the COMMIT
//     failed; backwards and overlapping PATCHes change nothing.
//
// Deterministic: the PATCH is held in its offset UPDATE by a row lock this test takes (scratch_database reports the
// lock wait), the generation is held at the mock upstream by its latency knob (the mock reports it in flight).

#include "tests/integration/upload_client.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

std::string field(const http_result& res, const char* name) {
  return json_string(res, name);
}

http_result post_json(const troupe_process& t, const std::string& path, const std::string& body,
                      const std::string& bearer = "") {
  std::vector<std::string> headers{"Content-Type: application/json"};
  if (!bearer.empty())
    headers.push_back("Authorization: Bearer " + bearer);
  return http({"POST", t.url(path), body, headers, 20000});
}

http_result get(const troupe_process& t, const std::string& path, const std::string& bearer) {
  return http({"GET", t.url(path), "", {"Authorization: Bearer " + bearer}, 20000});
}

/// Kills `t` with SIGKILL and waits until it is gone.
void kill_dash_nine(troupe_process& t) {
  t.signal(SIGKILL);
  auto status = t.wait_exit(10s);
  ASSERT_TRUE(status.has_value()) << "the server did not die";
  EXPECT_EQ(*status, -SIGKILL);
}

// --- Account writes ----------------------------------------------------------------------------------------------

class AccountCrash : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides one)"; }

  std::unique_ptr<troupe_process> start() {
    troupe_process::options opts;
    opts.args = {"--set", "limits.auth_burst=1000"};
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    return std::make_unique<troupe_process>(opts);
  }

  static std::string credentials(const std::string& email) {
    return R"({"email":")" + email + R"(","password":"correct horse battery"})";
  }

  std::string count(const std::string& from_where) { return db_.scalar("SELECT count(*) FROM " + from_where); }

  scratch_database db_;
};

// A 201 from register is a committed account: killed right after it, the row is there and the account logs in.
TEST_F(AccountCrash, RegisteredAccountSurvivesKillDashNine) {
  std::string user_id;
  {
    auto t = start();
    auto reg = post_json(*t, "/api/auth/register", credentials("kim@example.com"));
    ASSERT_EQ(reg.status, 201) << reg.body;
    user_id = field(reg, "user_id");
    kill_dash_nine(*t);
  }
  EXPECT_EQ(count("users WHERE id = '" + user_id + "' AND email = 'kim@example.com' AND password_hash LIKE '$argon2id$%'"),
            "1");
  auto t = start();
  auto login = post_json(*t, "/api/auth/login", credentials("kim@example.com"));
  ASSERT_EQ(login.status, 200) << login.body;
  EXPECT_EQ(field(get(*t, "/api/me", field(login, "access_token")), "user_id"), user_id);
}

// A 201 from POST /api/keys is a committed key, and a 204 from DELETE a committed revocation: killed right after
// each, PostgreSQL holds the key's hash (then its revoked_at), and the restarted server accepts (then refuses) it.
TEST_F(AccountCrash, ApiKeyCreateAndRevokeSurviveKillDashNine) {
  std::string key, id, access;
  {
    auto t = start();
    ASSERT_EQ(post_json(*t, "/api/auth/register", credentials("lee@example.com")).status, 201);
    access = field(post_json(*t, "/api/auth/login", credentials("lee@example.com")), "access_token");
    auto created = post_json(*t, "/api/keys", R"({"name":"deploy"})", access);
    ASSERT_EQ(created.status, 201) << created.body;
    key = field(created, "key");
    id = field(created, "id");
    kill_dash_nine(*t);
  }
  EXPECT_EQ(count("api_keys WHERE id = '" + id + "' AND key_hash = sha256('" + key + "'::bytea) AND revoked_at IS NULL"),
            "1");
  {
    auto t = start();
    EXPECT_EQ(get(*t, "/api/me", key).status, 200);
    auto revoked = http({"DELETE", t->url("/api/keys/" + id), "", {"Authorization: Bearer " + access}, 10000});
    ASSERT_EQ(revoked.status, 204) << revoked.body;
    kill_dash_nine(*t);
  }
  EXPECT_EQ(count("api_keys WHERE id = '" + id + "' AND revoked_at IS NOT NULL"), "1");
  auto t = start();
  EXPECT_EQ(get(*t, "/api/me", key).status, 401);
}

// A 200 from refresh is a committed rotation: killed right after it, the old token is marked used and the new one
// is stored in the same family; the restarted server rotates the new token, and treats the old one as a reuse.
TEST_F(AccountCrash, RefreshRotationSurvivesKillDashNine) {
  std::string first, second;
  {
    auto t = start();
    ASSERT_EQ(post_json(*t, "/api/auth/register", credentials("max@example.com")).status, 201);
    first = field(post_json(*t, "/api/auth/login", credentials("max@example.com")), "refresh_token");
    ASSERT_FALSE(first.empty());
    auto rotated = post_json(*t, "/api/auth/refresh", R"({"refresh_token":")" + first + "\"}");
    ASSERT_EQ(rotated.status, 200) << rotated.body;
    second = field(rotated, "refresh_token");
    kill_dash_nine(*t);
  }
  auto hash = [](const std::string& token) { return "sha256('" + token + "'::bytea)"; };
  EXPECT_EQ(count("refresh_tokens WHERE token_hash = " + hash(first) + " AND used_at IS NOT NULL"), "1");
  EXPECT_EQ(count("refresh_tokens n JOIN refresh_tokens o ON o.family_id = n.family_id WHERE n.token_hash = "
                  + hash(second) + " AND o.token_hash = " + hash(first) + " AND n.used_at IS NULL"),
            "1");
  auto t = start();
  auto third = post_json(*t, "/api/auth/refresh", R"({"refresh_token":")" + second + "\"}");
  EXPECT_EQ(third.status, 200) << third.body;
  EXPECT_EQ(post_json(*t, "/api/auth/refresh", R"({"refresh_token":")" + first + "\"}").status, 401);
}

// --- The daily quota ---------------------------------------------------------------------------------------------

class QuotaCrash : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides one)"; }

  std::unique_ptr<troupe_process> start(int free_per_day) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] =
      R"([{"name":"mock","base_url":")" + mock_.base_url() + R"(/v1","models":["mock-1"],"timeout_ms":60000}])";
    opts.args = {"--set", "quota.free_per_day=" + std::to_string(free_per_day), "--set", "retry.max_attempts=1",
                 "--set", "limits.auth_burst=1000"};
    return std::make_unique<troupe_process>(opts);
  }

  /// Registers (the first time) and logs in; the access token.
  std::string log_in(const troupe_process& t) {
    auto body = R"({"email":"quota@example.com","password":"correct horse battery"})";
    post_json(t, "/api/auth/register", body);
    return field(post_json(t, "/api/auth/login", body), "access_token");
  }

  http_result generate(const troupe_process& t, const std::string& token, const std::string& prompt) {
    return post_json(t, "/v1/chat/completions",
                     R"({"model":"mock-1","messages":[{"role":"user","content":")" + prompt + "\"}]}", token);
  }

  int64_t quota_used(const troupe_process& t, const std::string& token) {
    auto doc = parse_json(get(t, "/api/me", token).body);
    if (!doc.IsObject() || !doc.HasMember("quota") || !doc["quota"].HasMember("used"))
      return -1;
    return doc["quota"]["used"].GetInt64();
  }

  /// Generations PostgreSQL holds for the user today, once that count stops changing for 200 ms (the writer commits
  /// usage in batches within milliseconds); bounded by 15 s.
  std::string stored_requests() {
    auto read = [&] { return db_.scalar("SELECT coalesce(sum(requests), 0) FROM usage"); };
    auto deadline = std::chrono::steady_clock::now() + 15s;
    auto last = read();
    auto since = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      auto now = read();
      if (now != last) {
        last = now;
        since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - since > 200ms) {
        break;
      }
    }
    return last;
  }

  int64_t mock_stat(const char* name) {
    auto doc = parse_json(http_get(mock_.base_url() + "/mock/stats").body);
    return doc.IsObject() && doc.HasMember(name) ? doc[name].GetInt64() : -1;
  }

  void configure_mock(const std::string& json) {
    auto res = http({"POST", mock_.base_url() + "/mock/config", json, {"Content-Type: application/json"}, 5000});
    ASSERT_EQ(res.status, 200) << res.body;
  }

  scratch_database db_;
  mock_upstream_process mock_;
};

// Killed while a generation is at the upstream: its reservation is already in PostgreSQL, and the restarted server
// counts it (no fresh allowance): with a quota of 2, one more generation passes and the next is refused.
TEST_F(QuotaCrash, ReservationSurvivesKillDashNineDuringTheUpstreamCall) {
  {
    auto t = start(2);
    auto token = log_in(*t);
    ASSERT_FALSE(token.empty());
    configure_mock(R"({"latency_ms":30000,"count":1})");
    auto held = std::async(std::launch::async, [&] { return generate(*t, token, "held at the upstream"); });
    for (auto deadline = std::chrono::steady_clock::now() + 20s;
         mock_stat("in_flight") < 1 && std::chrono::steady_clock::now() < deadline;)
      std::this_thread::sleep_for(10ms);
    ASSERT_EQ(mock_stat("in_flight"), 1) << "the generation never reached the upstream";
    EXPECT_EQ(stored_requests(), "1") << "the reservation is not in PostgreSQL while the call is at the upstream";
    kill_dash_nine(*t);
    held.get();
  }
  EXPECT_EQ(stored_requests(), "1");
  auto t = start(2);
  auto token = log_in(*t);
  EXPECT_EQ(quota_used(*t, token), 1);
  EXPECT_EQ(generate(*t, token, "the second of two").status, 200);
  auto refused = generate(*t, token, "one too many");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(stored_requests(), "2");
}

// A generation whose upstream call fails gives its reservation back (http/gateway.cpp give_back_quota): with a quota
// of 1, a failed call leaves the one generation for the next call, in the session and in PostgreSQL, also after a
// restart.
TEST_F(QuotaCrash, FailedGenerationGivesItsQuotaBack) {
  auto t = start(1);
  auto token = log_in(*t);
  ASSERT_FALSE(token.empty());
  configure_mock(R"({"status":500,"count":1})");
  auto failed = generate(*t, token, "fails upstream");
  EXPECT_EQ(failed.status, 502) << failed.body;
  EXPECT_EQ(mock_stat("requests"), 1);
  EXPECT_EQ(quota_used(*t, token), 0);
  EXPECT_EQ(stored_requests(), "0");
  auto ok = generate(*t, token, "passes");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(quota_used(*t, token), 1);
  EXPECT_EQ(stored_requests(), "1");
  t.reset();
  t = start(1);
  token = log_in(*t);
  EXPECT_EQ(quota_used(*t, token), 1);
  EXPECT_EQ(generate(*t, token, "over").status, 429);
}

// --- Uploads -----------------------------------------------------------------------------------------------------

class UploadCrash : public upload_fixture {
protected:
  std::string incoming(const std::string& location) const {
    return dir_.path() + "/incoming/" + location.substr(location.rfind('/') + 1);
  }
  static std::string id_of(const std::string& location) { return location.substr(location.rfind('/') + 1); }
  int64_t size_on_disk(const std::string& location) const {
    std::error_code ec;
    auto size = std::filesystem::file_size(incoming(location), ec);
    return ec ? -1 : static_cast<int64_t>(size);
  }
  std::string stored_offset(const std::string& location) const {
    return db_.scalar("SELECT upload_offset FROM uploads WHERE id = '" + id_of(location) + "'");
  }
  static std::string read_file(const std::string& path) {
    std::ifstream in{path, std::ios::binary};
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
  }

  /// PATCHes bytes[from, end) in chunks of `chunk`, then checks the processed file's SHA-256 against all `bytes`.
  void finish_and_verify(const std::string& repo, const std::string& location, const std::string& bytes, size_t from,
                         size_t chunk) {
    http_result last;
    for (size_t at = from; at < bytes.size(); at += chunk) {
      last = client().patch(location, static_cast<int64_t>(at), bytes.substr(at, chunk));
      ASSERT_EQ(last.status, 204) << "at " << at << ": " << last.body;
    }
    auto job = client().wait_for_job(last.header("troupe-job-id"));
    ASSERT_STREQ(job["state"].GetString(), "done");
    auto files = parse_json(client().call("GET", "/api/repositories/" + repo + "/files", "", {}, false).body);
    ASSERT_EQ(files["files"].Size(), 1u);
    EXPECT_EQ(std::string{files["files"][0]["sha256"].GetString()}, sha256_hex_of(bytes));
    EXPECT_EQ(files["files"][0]["size"].GetInt64(), static_cast<int64_t>(bytes.size()));
  }
};

constexpr size_t upload_chunk = 256 * 1024;

// Killed between a chunk's fsync and its offset's COMMIT (the UPDATE waits on a row lock this test holds): the disk
// holds the chunk past the committed offset, PostgreSQL the old offset. After a restart HEAD reports the old offset;
// a shorter chunk from there cuts the unacknowledged tail off, and the finished upload's SHA-256 is the file's.
TEST_F(UploadCrash, KillDashNineBetweenFsyncAndOffsetCommitResumesExactly) {
  auto bytes = random_bytes(4 * upload_chunk + 999, 5);
  std::string location, repo;
  {
    auto t = start();
    repo = client().create_repository("torn");
    location = client().create(static_cast<int64_t>(bytes.size()), "torn.bin", repo).header("location");
    ASSERT_EQ(client().patch(location, 0, bytes.substr(0, upload_chunk)).status, 204);
    pqxx::connection conn{db_.url()};
    pqxx::work lock{conn};
    lock.exec("SELECT 1 FROM uploads WHERE id = '" + id_of(location) + "' FOR UPDATE");
    auto patch = std::async(std::launch::async, [&] {
      return client().patch(location, static_cast<int64_t>(upload_chunk), bytes.substr(upload_chunk, upload_chunk));
    });
    ASSERT_TRUE(db_.wait_for_lock_waiters(1)) << "the PATCH never reached its offset COMMIT";
    // The chunk is on disk (written and fsynced before the COMMIT), its offset is not committed.
    EXPECT_EQ(size_on_disk(location), static_cast<int64_t>(2 * upload_chunk));
    kill_dash_nine(*t);
    lock.abort();
    EXPECT_NE(patch.get().status, 204) << "a PATCH whose offset was never committed was acknowledged";
  }
  EXPECT_EQ(stored_offset(location), std::to_string(upload_chunk));
  EXPECT_EQ(size_on_disk(location), static_cast<int64_t>(2 * upload_chunk));
  auto t = start();
  auto head = client().head(location);
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("upload-offset"), std::to_string(upload_chunk));
  // A shorter chunk than the torn one: the bytes past it must go, or the file would keep the torn tail's length.
  constexpr size_t short_chunk = upload_chunk / 4;
  ASSERT_EQ(client().patch(location, static_cast<int64_t>(upload_chunk), bytes.substr(upload_chunk, short_chunk)).status,
            204);
  EXPECT_EQ(size_on_disk(location), static_cast<int64_t>(upload_chunk + short_chunk));
  EXPECT_EQ(read_file(incoming(location)), bytes.substr(0, upload_chunk + short_chunk));
  finish_and_verify(repo, location, bytes, upload_chunk + short_chunk, upload_chunk);
}

// The offset COMMIT fails after the chunk's fsync (its database connection is terminated while the UPDATE waits):
// the PATCH is not acknowledged, the offset stays, and the next PATCH from that offset repairs the file in the
// running server; the finished upload's SHA-256 is the file's.
TEST_F(UploadCrash, FailedOffsetCommitAfterFsyncIsRepairedOnResume) {
  auto bytes = random_bytes(3 * upload_chunk + 17, 9);
  auto t = start();
  auto repo = client().create_repository("failed-commit");
  auto location = client().create(static_cast<int64_t>(bytes.size()), "f.bin", repo).header("location");
  ASSERT_EQ(client().patch(location, 0, bytes.substr(0, upload_chunk)).status, 204);
  pqxx::connection conn{db_.url()};
  pqxx::work lock{conn};
  lock.exec("SELECT 1 FROM uploads WHERE id = '" + id_of(location) + "' FOR UPDATE");
  auto patch = std::async(std::launch::async, [&] {
    return client().patch(location, static_cast<int64_t>(upload_chunk), bytes.substr(upload_chunk, upload_chunk));
  });
  ASSERT_TRUE(db_.wait_for_lock_waiters(1)) << "the PATCH never reached its offset COMMIT";
  EXPECT_EQ(size_on_disk(location), static_cast<int64_t>(2 * upload_chunk));
  EXPECT_EQ(db_.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()"),
            "1");
  auto answer = patch.get();
  lock.abort();
  EXPECT_GE(answer.status, 500) << answer.body;
  EXPECT_EQ(stored_offset(location), std::to_string(upload_chunk));
  // The next PATCH may meet the connection actor reconnecting (503): retried, bounded.
  http_result head;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(50ms))
    if ((head = client().head(location)).status == 200)
      break;
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("upload-offset"), std::to_string(upload_chunk));
  constexpr size_t short_chunk = 1000;
  ASSERT_EQ(client().patch(location, static_cast<int64_t>(upload_chunk), bytes.substr(upload_chunk, short_chunk)).status,
            204);
  EXPECT_EQ(size_on_disk(location), static_cast<int64_t>(upload_chunk + short_chunk));
  finish_and_verify(repo, location, bytes, upload_chunk + short_chunk, upload_chunk);
}

// A PATCH that starts below the offset (backwards, or overlapping what is stored) or past it is a 409 and changes
// neither the offset in PostgreSQL nor a byte on disk.
TEST_F(UploadCrash, BackwardsOrOverlappingPatchChangesNothing) {
  auto bytes = random_bytes(3 * upload_chunk, 3);
  auto t = start();
  auto repo = client().create_repository("order");
  auto location = client().create(static_cast<int64_t>(bytes.size()), "o.bin", repo).header("location");
  ASSERT_EQ(client().patch(location, 0, bytes.substr(0, upload_chunk)).status, 204);
  auto stored = read_file(incoming(location));
  auto junk = std::string(upload_chunk, 'j');
  for (int64_t at : {int64_t{0}, int64_t{upload_chunk / 2}, int64_t{upload_chunk - 1}, int64_t{upload_chunk + 1}}) {
    auto res = client().patch(location, at, junk);
    EXPECT_EQ(res.status, 409) << "offset " << at << ": " << res.body;
    EXPECT_EQ(stored_offset(location), std::to_string(upload_chunk)) << "offset " << at;
    EXPECT_EQ(read_file(incoming(location)), stored) << "offset " << at;
  }
  EXPECT_EQ(client().head(location).header("upload-offset"), std::to_string(upload_chunk));
  finish_and_verify(repo, location, bytes, upload_chunk, upload_chunk);
}

} // namespace

// The tus 1.0.0 server at /api/uploads/ on the real binary against a real PostgreSQL: every status of the protocol
// and its extensions (creation, creation-with-upload, termination, checksum, expiration), ownership, CORS,
// X-HTTP-Method-Override, expiry, resumption after kill -9, and memory bounded by the chunk size.

#include "tests/integration/upload_client.hpp"
#include "tests/sanitizers/sanitizers.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <future>
#include <sstream>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

class Uploads : public upload_fixture {
protected:
  std::string incoming(const std::string& location) const {
    return dir_.path() + "/incoming/" + location.substr(location.rfind('/') + 1);
  }

  static std::string read_file(const std::string& path) {
    std::ifstream in{path, std::ios::binary};
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
  }

  std::string repo_;
};

// OPTIONS names the version, the extensions, the largest size and the checksum algorithms, without Tus-Resumable.
TEST_F(Uploads, OptionsDescribesTheServer) {
  auto t = start({"--set", "uploads.max_size_bytes=123456"});
  for (const char* path : {"/api/uploads/", "/api/uploads/any-id"}) {
    auto res = http({"OPTIONS", t->url(path), "", {}, 10000});
    EXPECT_EQ(res.status, 204) << path;
    EXPECT_EQ(res.header("tus-version"), "1.0.0");
    EXPECT_EQ(res.header("tus-extension"), "creation,creation-with-upload,termination,checksum,expiration");
    EXPECT_EQ(res.header("tus-max-size"), "123456");
    EXPECT_EQ(res.header("tus-checksum-algorithm"), "sha1,sha256");
    EXPECT_EQ(res.header("tus-resumable"), "");
  }
}

// Another protocol version gets 412 with Tus-Version, and nothing is created.
TEST_F(Uploads, OtherVersionIsPreconditionFailed) {
  auto t = start();
  auto repo = client().create_repository("r");
  for (const char* version : {"0.2.2", ""}) {
    std::vector<std::string> headers{"Upload-Length: 10", tus_client::metadata("a.txt", repo), client().bearer()};
    if (*version)
      headers.push_back(std::string{"Tus-Resumable: "} + version);
    auto res = http({"POST", t->url("/api/uploads/"), "", headers, 10000});
    EXPECT_EQ(res.status, 412) << res.body;
    EXPECT_EQ(res.header("tus-version"), "1.0.0");
    EXPECT_EQ(res.header("tus-resumable"), "1.0.0");
  }
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM uploads"), "0");
}

// The whole life of an upload: 201 with Location, HEAD, PATCHes moving the offset, and a final PATCH after which the
// processing job is committed (its id in Troupe-Job-Id) and the bytes are exactly what was sent.
TEST_F(Uploads, CreateHeadPatchAndComplete) {
  auto t = start();
  auto repo = client().create_repository("main");
  ASSERT_FALSE(repo.empty());
  auto created = client().create(11, "hello.txt", repo);
  ASSERT_EQ(created.status, 201) << created.body;
  auto location = created.header("location");
  EXPECT_EQ(location.rfind("/api/uploads/", 0), 0u);
  EXPECT_EQ(created.header("tus-resumable"), "1.0.0");
  EXPECT_NE(created.header("upload-expires").find(" GMT"), std::string::npos);

  auto head = client().head(location);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("upload-offset"), "0");
  EXPECT_EQ(head.header("upload-length"), "11");
  EXPECT_EQ(head.header("upload-metadata"), tus_client::metadata("hello.txt", repo).substr(17));
  EXPECT_EQ(head.header("cache-control"), "no-store");
  EXPECT_EQ(head.header("tus-resumable"), "1.0.0");

  auto first = client().patch(location, 0, "hello");
  EXPECT_EQ(first.status, 204) << first.body;
  EXPECT_EQ(first.header("upload-offset"), "5");
  EXPECT_FALSE(first.header("upload-expires").empty());
  EXPECT_EQ(first.header("troupe-job-id"), "");
  EXPECT_EQ(client().head(location).header("upload-offset"), "5");

  auto last = client().patch(location, 5, " world");
  ASSERT_EQ(last.status, 204) << last.body;
  EXPECT_EQ(last.header("upload-offset"), "11");
  auto job_id = last.header("troupe-job-id");
  ASSERT_FALSE(job_id.empty());
  // Committed before the 204: the job row is there the moment the answer is.
  EXPECT_EQ(db_.scalar("SELECT kind FROM jobs WHERE id = '" + job_id + "'"), "upload");
  EXPECT_EQ(db_.scalar("SELECT completed_at IS NOT NULL FROM uploads WHERE job_id = '" + job_id + "'"), "t");
  EXPECT_EQ(client().head(location).header("troupe-job-id"), job_id);

  // Another PATCH of a complete upload at its end is harmless; anywhere else it conflicts.
  EXPECT_EQ(client().patch(location, 11, "").status, 204);
  EXPECT_EQ(client().patch(location, 5, "x").status, 409);
}

// Creation validates its headers: length, size limit, metadata, filename and repository.
TEST_F(Uploads, CreationIsValidated) {
  auto t = start({"--set", "uploads.max_size_bytes=1000"});
  auto repo = client().create_repository("r");
  auto post = [&](std::vector<std::string> headers) { return client().call("POST", "/api/uploads/", "", headers); };
  EXPECT_EQ(post({tus_client::metadata("a", repo)}).status, 400);                      // no Upload-Length
  EXPECT_EQ(post({"Upload-Length: -1", tus_client::metadata("a", repo)}).status, 400); // not a size
  auto too_big = post({"Upload-Length: 1001", tus_client::metadata("a", repo)});
  EXPECT_EQ(too_big.status, 413);
  EXPECT_NE(too_big.body.find("Tus-Max-Size 1000"), std::string::npos) << too_big.body;
  EXPECT_EQ(post({"Upload-Length: 5", "Upload-Metadata: filename !!!"}).status, 400); // not base64
  EXPECT_EQ(post({"Upload-Length: 5", "Upload-Metadata: repository_id " + base64(repo)}).status, 400);
  EXPECT_EQ(post({"Upload-Length: 5", "Upload-Metadata: filename " + base64("a")}).status, 400);
  EXPECT_EQ(post({"Upload-Length: 5", tus_client::metadata("bad\x01name", repo)}).status, 400);
  EXPECT_EQ(post({"Upload-Length: 5", tus_client::metadata("..", repo)}).status, 400);
  // A repository that is not the caller's is not found.
  EXPECT_EQ(post({"Upload-Length: 5", tus_client::metadata("a", "00000000-0000-4000-8000-000000000000")}).status, 404);
  tus_client other{*t, bearer_of(*t, "other@example.com")};
  auto others_repo = other.create_repository("theirs");
  EXPECT_EQ(post({"Upload-Length: 5", tus_client::metadata("a", others_repo)}).status, 404);
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM uploads"), "0");
  // A path is reduced to its file name: nothing can be written outside uploads.dir.
  auto created = client().create(3, "../../etc/passwd", repo);
  ASSERT_EQ(created.status, 201);
  EXPECT_EQ(db_.scalar("SELECT filename FROM uploads"), "passwd");
}

// PATCH needs the offset content type (415), a valid Upload-Offset (400) equal to the upload's (409), must not pass
// Upload-Length (413) nor uploads.max_chunk_bytes (413, saying the limit); none of these moves the offset.
TEST_F(Uploads, PatchIsValidated) {
  auto t = start({"--set", "uploads.max_chunk_bytes=4096"});
  auto repo = client().create_repository("r");
  auto location = client().create(10000, "big.bin", repo).header("location");
  auto wrong_type = client().call("PATCH", location, "abc", {"Upload-Offset: 0", "Content-Type: text/plain"});
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_EQ(client().call("PATCH", location, "abc", {"Content-Type: application/offset+octet-stream"}).status, 400);
  EXPECT_EQ(client().patch(location, 1, "abc").status, 409);
  auto chunk_too_big = client().patch(location, 0, std::string(5000, 'x'));
  EXPECT_EQ(chunk_too_big.status, 413);
  EXPECT_NE(chunk_too_big.body.find("4096 bytes"), std::string::npos) << chunk_too_big.body;
  EXPECT_EQ(client().head(location).header("upload-offset"), "0");
  ASSERT_EQ(client().patch(location, 0, std::string(4000, 'x')).status, 204);
  ASSERT_EQ(client().patch(location, 4000, std::string(4000, 'y')).status, 204);
  EXPECT_EQ(client().patch(location, 8000, std::string(2001, 'z')).status, 413); // past Upload-Length
  EXPECT_EQ(client().head(location).header("upload-offset"), "8000");
  EXPECT_EQ(read_file(incoming(location)), std::string(4000, 'x') + std::string(4000, 'y'));
}

// A chunk whose Upload-Checksum does not match is refused with 460 and discarded; sha1 and sha256 that match are
// accepted; an unknown algorithm is 400.
TEST_F(Uploads, ChecksumsAreVerified) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto location = client().create(12, "c.txt", repo).header("location");
  auto checksum = [](const char* algorithm, const EVP_MD* md, const std::string& bytes) {
    return std::string{"Upload-Checksum: "} + algorithm + " " + base64(digest_raw(md, bytes));
  };
  auto bad = client().patch(location, 0, "aaaa", {checksum("sha1", EVP_sha1(), "bbbb")});
  EXPECT_EQ(bad.status, 460) << bad.body;
  EXPECT_EQ(client().head(location).header("upload-offset"), "0");
  EXPECT_EQ(client().patch(location, 0, "aaaa", {checksum("sha1", EVP_sha1(), "aaaa")}).status, 204);
  EXPECT_EQ(client().patch(location, 4, "bbbb", {checksum("sha256", EVP_sha256(), "bbbb")}).status, 204);
  EXPECT_EQ(client().patch(location, 8, "cccc", {"Upload-Checksum: md5 " + base64("0123456789abcdef")}).status, 400);
  EXPECT_EQ(client().patch(location, 8, "cccc", {"Upload-Checksum: sha256 " + base64("short")}).status, 400);
  EXPECT_EQ(client().head(location).header("upload-offset"), "8");
  EXPECT_EQ(read_file(incoming(location)), "aaaabbbb");
}

// A PATCH while another PATCH of the same upload is under way gets 423. The first one is held in its COMMIT by a
// row lock this test takes, so the overlap is certain; it completes once the lock is released.
TEST_F(Uploads, ConcurrentPatchIsLocked) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto location = client().create(100, "l.txt", repo).header("location");
  auto id = location.substr(location.rfind('/') + 1);
  pqxx::connection conn{db_.url()};
  pqxx::work lock{conn};
  lock.exec("SELECT 1 FROM uploads WHERE id = '" + id + "' FOR UPDATE");
  auto first = std::async(std::launch::async, [&] { return client().patch(location, 0, "first"); });
  // The first PATCH is held once its UPDATE waits for the lock; without that wait there is no overlap to test.
  ASSERT_TRUE(db_.wait_for_lock_waiters(1)) << "the first PATCH never waited on the row lock";
  auto second = client().patch(location, 0, "second");
  EXPECT_EQ(second.status, 423) << second.body;
  lock.abort();
  EXPECT_EQ(first.get().status, 204);
  EXPECT_EQ(client().head(location).header("upload-offset"), "5");
}

// DELETE answers 204; afterwards the upload is 404 to every method and its bytes are gone.
TEST_F(Uploads, TerminationDeletesTheUpload) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto location = client().create(100, "d.txt", repo).header("location");
  ASSERT_EQ(client().patch(location, 0, "some bytes").status, 204);
  ASSERT_TRUE(std::filesystem::exists(incoming(location)));
  EXPECT_EQ(client().call("DELETE", location).status, 204);
  EXPECT_EQ(client().head(location).status, 404);
  EXPECT_EQ(client().patch(location, 10, "more").status, 404);
  EXPECT_EQ(client().call("DELETE", location).status, 404);
  for (int i = 0; i < 500 && std::filesystem::exists(incoming(location)); ++i) // removed after the answer (up to 10 s)
    std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(std::filesystem::exists(incoming(location)));
}

// Another user's upload does not exist for the caller, whatever the method.
TEST_F(Uploads, OtherUsersUploadIsNotFound) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto location = client().create(10, "mine.txt", repo).header("location");
  tus_client other{*t, bearer_of(*t, "intruder@example.com")};
  EXPECT_EQ(other.head(location).status, 404);
  EXPECT_EQ(other.patch(location, 0, "x").status, 404);
  EXPECT_EQ(other.call("DELETE", location).status, 404);
  EXPECT_EQ(other.call("GET", location, "", {}, false).status, 404);
  EXPECT_EQ(client().head(location).status, 200);
  EXPECT_EQ(client().head("/api/uploads/not-a-uuid").status, 404);
  EXPECT_EQ(http({"HEAD", t->url(location), "", {"Tus-Resumable: 1.0.0"}, 10000}).status, 401);
}

// creation-with-upload: a body on the POST is the first chunk.
TEST_F(Uploads, CreationWithUpload) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto res = client().call(
    "POST", "/api/uploads/", "first",
    {"Upload-Length: 8", tus_client::metadata("w.txt", repo), "Content-Type: application/offset+octet-stream"});
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.header("upload-offset"), "5");
  auto location = res.header("location");
  EXPECT_EQ(client().patch(location, 5, "end").header("upload-offset"), "8");
}

// An empty upload completes at once and enqueues nothing (nothing to process): no Troupe-Job-Id, job_id null.
// An empty file is the repository's at once (done, with the digest of nothing); an empty "archive" adds nothing.
TEST_F(Uploads, EmptyUploadCompletesWithoutAJob) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto empty = client().create(0, "__init__.py", repo);
  ASSERT_EQ(empty.status, 201) << empty.body;
  EXPECT_EQ(empty.header("upload-offset"), "0");
  EXPECT_EQ(empty.header("troupe-job-id"), "");
  EXPECT_EQ(empty.header("upload-expires"), ""); // complete: it never expires
  auto status = parse_json(client().call("GET", empty.header("location"), "", {}, false).body);
  ASSERT_TRUE(status.IsObject());
  EXPECT_TRUE(status["completed"].GetBool());
  EXPECT_TRUE(status["job_id"].IsNull());
  auto files = parse_json(client().call("GET", "/api/repositories/" + repo + "/files", "", {}, false).body);
  ASSERT_EQ(files["files"].Size(), 1u);
  const auto& file = files["files"][0];
  EXPECT_STREQ(file["path"].GetString(), "__init__.py");
  EXPECT_STREQ(file["status"].GetString(), "done");
  EXPECT_EQ(file["size"].GetInt64(), 0);
  EXPECT_EQ(file["lines"].GetInt64(), 0);
  EXPECT_STREQ(file["language"].GetString(), "Python");
  EXPECT_STREQ(file["sha256"].GetString(), sha256_hex_of("").c_str());
  auto archive = client().create(0, "nothing.tar.gz", repo);
  ASSERT_EQ(archive.status, 201);
  EXPECT_EQ(archive.header("troupe-job-id"), "");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobs"), "0");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM files"), "1");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM uploads WHERE completed_at IS NOT NULL"), "2");
}

/// GET /api/me's storage_bytes_used and storage_bytes_limit.
std::pair<int64_t, int64_t> storage_of(const tus_client& c) {
  auto me = parse_json(c.call("GET", "/api/me", "", {}, false).body);
  if (!me.IsObject() || !me.HasMember("storage_bytes_used") || !me["storage_bytes_used"].IsInt64())
    return {-1, -1};
  return {me["storage_bytes_used"].GetInt64(), me["storage_bytes_limit"].GetInt64()};
}

// The storage quota: an upload reserves its Upload-Length at creation; one that would take the user over the plan's
// limit is refused before any byte is stored (413, naming the limit and the use); DELETE and expiry give the
// reservation back; GET /api/me shows the use and the limit.
TEST_F(Uploads, StorageQuotaRefusesUploadsOverTheLimit) {
  auto t = start(
    {"--set", "quota.free_storage_bytes=1000", "--set", "uploads.expire_ms=3000", "--set", "uploads.sweep_ms=100"});
  auto repo = client().create_repository("r");
  EXPECT_EQ(storage_of(client()), std::make_pair(int64_t{0}, int64_t{1000}));
  auto first = client().create(600, "a.bin", repo);
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(storage_of(client()), std::make_pair(int64_t{600}, int64_t{1000}));
  // Many at once (they share reads in flight): every one answers, with the use.
  std::vector<std::future<std::pair<int64_t, int64_t>>> many;
  for (int i = 0; i < 16; ++i)
    many.push_back(std::async(std::launch::async, [&] { return storage_of(client()); }));
  for (auto& f : many)
    EXPECT_EQ(f.get(), std::make_pair(int64_t{600}, int64_t{1000}));
  auto refused = client().create(500, "b.bin", repo);
  EXPECT_EQ(refused.status, 413);
  auto error = parse_json(refused.body);
  ASSERT_TRUE(error.IsObject()) << refused.body;
  EXPECT_STREQ(error["error"]["code"].GetString(), "storage_quota_exceeded");
  std::string message = error["error"]["message"].GetString();
  EXPECT_NE(message.find("600 of its 1000 bytes are in use"), std::string::npos) << message;
  EXPECT_EQ(refused.header("tus-resumable"), "1.0.0");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM uploads"), "1");
  // DELETE gives the reservation back.
  ASSERT_EQ(client().call("DELETE", first.header("location")).status, 204);
  EXPECT_EQ(storage_of(client()).first, 0);
  // So does expiry (the sweeper), here of an upload that received some bytes.
  auto expiring = client().create(900, "c.bin", repo);
  ASSERT_EQ(expiring.status, 201);
  ASSERT_EQ(client().patch(expiring.header("location"), 0, "partial").status, 204);
  EXPECT_EQ(storage_of(client()).first, 900);
  for (int i = 0; i < 600 && storage_of(client()).first != 0; ++i) // up to 15 s: expiry follows the server's clock
    std::this_thread::sleep_for(25ms);
  EXPECT_EQ(storage_of(client()).first, 0);
  EXPECT_EQ(client().create(1000, "d.bin", repo).status, 201);
}

// Two creations near the limit at once: at most one passes (the reservation is made under a row lock in
// PostgreSQL, not read-then-written). Ten rounds.
TEST_F(Uploads, ConcurrentCreationsNearTheLimit) {
  auto t = start({"--set", "quota.free_storage_bytes=1000"});
  auto repo = client().create_repository("r");
  for (int round = 0; round < 10; ++round) {
    auto one = std::async(std::launch::async, [&] { return client().create(600, "x.bin", repo); });
    auto two = std::async(std::launch::async, [&] { return client().create(600, "y.bin", repo); });
    std::vector<http_result> answers{one.get(), two.get()};
    int created = 0;
    for (const auto& a : answers) {
      EXPECT_TRUE(a.status == 201 || a.status == 413) << a.status << " " << a.body;
      if (a.status == 201) {
        ++created;
        ASSERT_EQ(client().call("DELETE", a.header("location")).status, 204);
      }
    }
    EXPECT_EQ(created, 1) << "round " << round;
  }
  EXPECT_EQ(storage_of(client()).first, 0);
}

// A POST with X-HTTP-Method-Override is handled as the method it names.
TEST_F(Uploads, MethodOverride) {
  auto t = start();
  auto repo = client().create_repository("r");
  auto location = client().create(4, "o.txt", repo).header("location");
  auto patched = client().call(
    "POST", location, "abcd",
    {"X-HTTP-Method-Override: PATCH", "Upload-Offset: 0", "Content-Type: application/offset+octet-stream"});
  EXPECT_EQ(patched.status, 204) << patched.body;
  EXPECT_EQ(patched.header("upload-offset"), "4");
  auto other = client().create(4, "p.txt", repo).header("location");
  EXPECT_EQ(client().call("POST", other, "", {"X-HTTP-Method-Override: DELETE"}).status, 204);
  EXPECT_EQ(client().head(other).status, 404);
}

// An unfinished upload expires uploads.expire_ms after its last PATCH: then it is 404 and its bytes are removed.
TEST_F(Uploads, UnfinishedUploadsExpire) {
  // 3 s: room for a loaded machine between the creation and the PATCH, which must come before the expiry.
  auto t = start({"--set", "uploads.expire_ms=3000", "--set", "uploads.sweep_ms=100"});
  auto repo = client().create_repository("r");
  auto location = client().create(100, "e.txt", repo).header("location");
  auto patched = client().patch(location, 0, "partial");
  ASSERT_EQ(patched.status, 204);
  EXPECT_FALSE(patched.header("upload-expires").empty());
  ASSERT_TRUE(std::filesystem::exists(incoming(location)));
  // Bounded wait: expiry is driven by the server's clock.
  for (int i = 0; i < 600 && std::filesystem::exists(incoming(location)); ++i) // up to 15 s
    std::this_thread::sleep_for(25ms);
  EXPECT_FALSE(std::filesystem::exists(incoming(location)));
  EXPECT_EQ(client().head(location).status, 404);
  EXPECT_EQ(client().patch(location, 7, "more").status, 404);
  EXPECT_EQ(db_.scalar("SELECT deleted_at IS NOT NULL FROM uploads"), "t");
}

// Browsers: a configured origin gets CORS headers exposing the tus headers (and a preflight its methods); another
// origin gets none.
TEST_F(Uploads, CorsForConfiguredOrigins) {
  auto t = start({"--set", "http.cors_origins=https://app.example.com"});
  auto preflight = http({"OPTIONS",
                         t->url("/api/uploads/"),
                         "",
                         {"Origin: https://app.example.com", "Access-Control-Request-Method: POST"},
                         10000});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.header("access-control-allow-origin"), "https://app.example.com");
  EXPECT_NE(preflight.header("access-control-allow-methods").find("PATCH"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-headers").find("Upload-Offset"), std::string::npos);
  auto repo = client().create_repository("r");
  auto created = client().create(5, "cors.txt", repo, {"Origin: https://app.example.com"});
  EXPECT_EQ(created.header("access-control-allow-origin"), "https://app.example.com");
  auto exposed = created.header("access-control-expose-headers");
  for (const char* name : {"Location", "Upload-Offset", "Tus-Resumable", "Upload-Expires"})
    EXPECT_NE(exposed.find(name), std::string::npos) << name;
  auto foreign = client().create(5, "cors2.txt", repo, {"Origin: https://evil.example.com"});
  EXPECT_EQ(foreign.status, 201);
  EXPECT_EQ(foreign.header("access-control-allow-origin"), "");
}

// kill -9 in the middle of an upload: after a restart HEAD reports the acknowledged offset and the upload resumes
// from there; the stored bytes are exactly the file (SHA-256).
TEST_F(Uploads, ResumesAfterKillDashNine) {
  auto bytes = random_bytes(3 * 1024 * 1024 + 12345, 42);
  constexpr size_t chunk = 512 * 1024;
  std::string location;
  {
    auto t = start();
    repo_ = client().create_repository("r");
    location = client().create(static_cast<int64_t>(bytes.size()), "data.bin", repo_).header("location");
    for (size_t offset = 0; offset < 2 * 1024 * 1024; offset += chunk)
      ASSERT_EQ(client().patch(location, static_cast<int64_t>(offset), bytes.substr(offset, chunk)).status, 204);
    t->signal(SIGKILL);
    ASSERT_TRUE(t->wait_exit(10s).has_value());
  }
  auto t = start();
  auto head = client().head(location);
  ASSERT_EQ(head.status, 200);
  auto offset = std::stoll(head.header("upload-offset"));
  EXPECT_EQ(offset, 2 * 1024 * 1024);
  http_result last;
  for (auto at = static_cast<size_t>(offset); at < bytes.size(); at += chunk) {
    last = client().patch(location, static_cast<int64_t>(at), bytes.substr(at, chunk));
    ASSERT_EQ(last.status, 204) << last.body;
  }
  auto job_id = last.header("troupe-job-id");
  ASSERT_FALSE(job_id.empty());
  // The processed file's SHA-256 is computed from the stored bytes.
  auto job = client().wait_for_job(job_id);
  ASSERT_STREQ(job["state"].GetString(), "done");
  auto files = parse_json(client().call("GET", "/api/repositories/" + repo_ + "/files", "", {}, false).body);
  ASSERT_EQ(files["files"].Size(), 1u);
  EXPECT_EQ(std::string{files["files"][0]["sha256"].GetString()}, sha256_hex_of(bytes));
  EXPECT_EQ(files["files"][0]["size"].GetInt64(), static_cast<int64_t>(bytes.size()));
}

/// VmHWM of a process, in bytes.
int64_t peak_rss(pid_t pid) {
  std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stoll(line.substr(6)) * 1024;
  return -1;
}

// Memory is bounded by the chunk size, not the upload size: 256 MiB in 4 MiB chunks over 2 HTTP threads raise the
// peak RSS by less than threads x 3 x max_chunk_bytes (plus 16 MiB of slack for everything else). Under ASan the
// server runs without its quarantine (which would hold every freed chunk, up to 256 MiB); under TSan RSS counts the
// shadow memory of every byte touched, and the test skips.
TEST_F(Uploads, MemoryIsBoundedByTheChunkSize) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer's shadow memory is part of RSS: this bound measures nothing under it";
#endif
  constexpr int64_t chunk = 4 << 20;
  constexpr int64_t total = 256 << 20;
  std::map<std::string, std::string> env;
  if (under_sanitizer)
    env["ASAN_OPTIONS"] = asan_options_without_quarantine();
  auto t = start({"--set", "uploads.max_chunk_bytes=" + std::to_string(chunk), "--set", "http.threads=2"}, env);
  auto repo = client().create_repository("r");
  auto location = client().create(total, "big.bin", repo).header("location");
  auto piece = random_bytes(static_cast<size_t>(chunk), 7);
  ASSERT_EQ(client().patch(location, 0, piece).status, 204); // warm: first buffers, first session
  // Reset the high-water mark to the current RSS (Linux >= 4.0).
  { std::ofstream{"/proc/" + std::to_string(t->pid()) + "/clear_refs"} << "5"; }
  auto before = peak_rss(t->pid());
  for (int64_t offset = chunk; offset < total; offset += chunk)
    ASSERT_EQ(client().patch(location, offset, piece).status, 204);
  auto growth = peak_rss(t->pid()) - before;
  std::printf("peak RSS grew by %lld KiB\n", static_cast<long long>(growth / 1024));
  EXPECT_LT(growth, 2 * 3 * chunk + (16 << 20));
  EXPECT_EQ(db_.scalar("SELECT upload_offset FROM uploads"), std::to_string(total));
}

} // namespace

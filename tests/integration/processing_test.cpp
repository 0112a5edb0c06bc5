// Background processing of completed uploads on the real binary against a real PostgreSQL: a file and archives
// become repository files (SHA-256, size, lines, language, binary), searchable by full text; zip bombs and path
// traversal archives end in a failed job with a clear error and nothing written; repositories and jobs are their
// owner's; a job whose node is killed (kill -9) is taken back after its lease and completed by the next node.
// The storage quota in processing (archives over it fail, replacements fit), and searches: their timeout, and
// their own connections, which slow searches cannot take from logins and writes.

#include "tests/actors/archive_writer.hpp"
#include "tests/integration/upload_client.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <cctype>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>

using namespace troupe::testing;
using troupe::archive_kind;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

class Processing : public upload_fixture {
protected:
  /// Uploads `bytes` as `filename` into `repo` and waits for its job; the job's final JSON.
  rapidjson::Document upload_and_wait(const std::string& repo, const std::string& filename, const std::string& bytes) {
    std::string location;
    auto last = client().upload(filename, repo, bytes, 1 << 20, location);
    EXPECT_TRUE(last.status == 204 || last.status == 201) << last.status << " " << last.body;
    auto job_id = last.header("troupe-job-id");
    EXPECT_FALSE(job_id.empty());
    return client().wait_for_job(job_id);
  }

  std::string archive_bytes(archive_kind kind, const std::vector<archive_item>& items) {
    auto file = dir_.path() + "/test-archive.tmp"; // beside incoming/, staging/ and repositories/
    write_archive(file, kind, items);
    std::ifstream in{file, std::ios::binary};
    std::stringstream s;
    s << in.rdbuf();
    fs::remove(file);
    return s.str();
  }

  /// The repository's files, all pages.
  std::vector<rapidjson::Document> files_of(const std::string& repo, int limit = 100) {
    std::vector<rapidjson::Document> files;
    std::string after;
    for (;;) {
      auto res = client().call("GET",
                               "/api/repositories/" + repo + "/files?limit=" + std::to_string(limit)
                                 + (after.empty() ? "" : "&after=" + after),
                               "", {}, false);
      EXPECT_EQ(res.status, 200) << res.body;
      auto page = parse_json(res.body);
      if (!page.IsObject())
        return files;
      for (auto& f : page["files"].GetArray()) {
        rapidjson::Document copy;
        copy.CopyFrom(f, copy.GetAllocator());
        files.push_back(std::move(copy));
      }
      if (page["next_after"].IsNull())
        return files;
      after = page["next_after"].GetString();
    }
  }
};

std::string str(const rapidjson::Value& v, const char* key) {
  return v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}

/// GET /api/me's storage_bytes_used (-1 if absent).
int64_t storage_used(const tus_client& c) {
  auto me = parse_json(c.call("GET", "/api/me", "", {}, false).body);
  return me.IsObject() && me.HasMember("storage_bytes_used") && me["storage_bytes_used"].IsInt64()
           ? me["storage_bytes_used"].GetInt64()
           : -1;
}

/// `n` bytes of source-like text.
std::string text_of(size_t n, const std::string& word) {
  std::string out;
  for (int i = 0; out.size() < n; ++i)
    out += "int " + word + "_" + std::to_string(i) + "(void) { return " + std::to_string(i) + "; }\n";
  out.resize(n);
  return out;
}

std::string url_encoded(const std::string& raw) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : raw) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// A repository of `segments` processed text segments, written straight into PostgreSQL: each the words w0 to w299.
void make_corpus(const scratch_database& db, const std::string& repo, int segments) {
  db.execute("WITH f AS (INSERT INTO files (repository_id, path, status) VALUES ('" + repo
             + "', 'corpus.txt', 'done') RETURNING id) "
               "INSERT INTO file_segments (file_id, seq, start_line, end_line, content) "
               "SELECT f.id, g, g + 1, g + 1, (SELECT string_agg('w' || i, ' ') FROM generate_series(0, 299) i) "
               "FROM f, generate_series(0, "
             + std::to_string(segments - 1) + ") g");
  db.execute("ANALYZE file_segments");
}

/// A search that is slow on that corpus, as a long query is on a large repository: the 1000 bytes of w0 w1 w2 ...
/// match every segment, and ranking a segment against n words that must all be there compares every pair of them.
std::string slow_query() {
  std::string q;
  for (int i = 0; q.size() + std::to_string(i).size() + 2 <= 1000; ++i)
    q += (q.empty() ? "w" : " w") + std::to_string(i);
  return url_encoded(q);
}

// A single file: its repository file has the SHA-256, size, line count and language of its bytes, and the job ends
// done with progress 1 and a result.
TEST_F(Processing, SingleFileIsProcessed) {
  auto t = start();
  auto repo = client().create_repository("single");
  std::string script = "#!/usr/bin/env python3\nimport sys\n\ndef main():\n    print('hi')\n";
  auto job = upload_and_wait(repo, "tool", script);
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(job["progress"].GetDouble(), 1.0);
  EXPECT_EQ(job["attempts"].GetInt(), 1);
  EXPECT_EQ(job["result"]["files"].GetInt(), 1);
  auto files = files_of(repo);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(str(files[0], "path"), "tool");
  EXPECT_EQ(files[0]["size"].GetInt64(), static_cast<int64_t>(script.size()));
  EXPECT_EQ(str(files[0], "sha256"), sha256_hex_of(script));
  EXPECT_EQ(files[0]["lines"].GetInt64(), 5);
  EXPECT_EQ(str(files[0], "language"), "Python");
  EXPECT_FALSE(files[0]["binary"].GetBool());
  EXPECT_EQ(str(files[0], "status"), "done");
  EXPECT_TRUE(fs::exists(dir_.path() + "/repositories/" + repo + "/tool"));
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/incoming")); // the upload's bytes moved into the repository
}

// A binary file is recognised: no line count, no searchable text.
TEST_F(Processing, BinaryFileIsRecognised) {
  auto t = start();
  auto repo = client().create_repository("bin");
  auto bytes = std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16) + random_bytes(300000, 3);
  auto job = upload_and_wait(repo, "logo.png", bytes);
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  auto files = files_of(repo);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0]["binary"].GetBool());
  EXPECT_TRUE(files[0]["lines"].IsNull());
  EXPECT_EQ(str(files[0], "sha256"), sha256_hex_of(bytes));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM file_segments"), "0");
}

// An archive becomes the repository's files (listed by path, in pages); full-text search finds a function name with
// its path and the line range that holds it, ranked.
TEST_F(Processing, ArchiveIsExpandedAndSearchable) {
  auto t = start();
  auto repo = client().create_repository("code");
  std::string big; // more than one 64 KiB chunk, so segments from several chunks are numbered right
  for (int i = 1; i <= 3000; ++i)
    big += "int helper_" + std::to_string(i) + "(int x) { return x + " + std::to_string(i) + "; }\n";
  std::vector<archive_item> items = {
    {"src/", "", "", true},
    {"src/main.c", "#include <stdio.h>\n\nint main(void) {\n  return parse_archive_entry(0);\n}\n"},
    {"src/archive.c", "// Archive reading.\n\nint parse_archive_entry(int flags) {\n  return flags;\n}\n"},
    {"src/helpers.c", big},
    {"docs/README.md", "# Demo\n\nUploads are processed in the background.\n"},
    {"scripts/build", "#!/bin/bash\nset -e\nmake all\n"},
  };
  auto job = upload_and_wait(repo, "code.tar.gz", archive_bytes(archive_kind::tar_gz, items));
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(job["result"]["files"].GetInt(), 5);
  EXPECT_TRUE(job["result"]["archive"].GetBool());

  auto files = files_of(repo, 2); // three pages
  ASSERT_EQ(files.size(), 5u);
  std::vector<std::string> paths;
  for (auto& f : files)
    paths.push_back(str(f, "path"));
  EXPECT_EQ(paths, (std::vector<std::string>{"docs/README.md", "scripts/build", "src/archive.c", "src/helpers.c",
                                             "src/main.c"}));
  EXPECT_EQ(str(files[1], "language"), "Shell");
  EXPECT_EQ(str(files[3], "language"), "C");
  EXPECT_EQ(files[3]["lines"].GetInt64(), 3000);
  EXPECT_EQ(str(files[3], "sha256"), sha256_hex_of(big));

  auto res = client().call("GET", "/api/repositories/" + repo + "/search?q=parse_archive_entry", "", {}, false);
  ASSERT_EQ(res.status, 200) << res.body;
  auto found = parse_json(res.body);
  ASSERT_EQ(found["results"].Size(), 2u) << res.body;
  for (auto& hit : found["results"].GetArray()) {
    auto path = str(hit, "path");
    int line = path == "src/archive.c" ? 3 : 4; // where the name is
    EXPECT_TRUE(path == "src/archive.c" || path == "src/main.c") << path;
    EXPECT_LE(hit["start_line"].GetInt(), line);
    EXPECT_GE(hit["end_line"].GetInt(), line);
    EXPECT_NE(str(hit, "snippet").find("«parse"), std::string::npos) << str(hit, "snippet");
    EXPECT_GT(hit["rank"].GetDouble(), 0.0);
  }
  // A name deep in the big file: its segment's line range holds its line.
  auto deep = client().call("GET", "/api/repositories/" + repo + "/search?q=helper_2345", "", {}, false);
  auto deep_hits = parse_json(deep.body);
  ASSERT_EQ(deep_hits["results"].Size(), 1u) << deep.body;
  EXPECT_EQ(str(deep_hits["results"][0], "path"), "src/helpers.c");
  EXPECT_LE(deep_hits["results"][0]["start_line"].GetInt(), 2345);
  EXPECT_GE(deep_hits["results"][0]["end_line"].GetInt(), 2345);
  auto none = client().call("GET", "/api/repositories/" + repo + "/search?q=no_such_identifier", "", {}, false);
  EXPECT_EQ(parse_json(none.body)["results"].Size(), 0u);
  EXPECT_EQ(client().call("GET", "/api/repositories/" + repo + "/search", "", {}, false).status, 400);

  auto summary = parse_json(client().call("GET", "/api/repositories/" + repo, "", {}, false).body);
  EXPECT_EQ(summary["files"].GetInt(), 5);
  EXPECT_EQ(summary["files_done"].GetInt(), 5);
}

// A zip archive works the same way.
TEST_F(Processing, ZipArchiveIsExpanded) {
  auto t = start();
  auto repo = client().create_repository("zipped");
  auto job = upload_and_wait(repo, "bundle.zip",
                             archive_bytes(archive_kind::zip, {{"a/one.js", "export function zipped_function() {}\n"},
                                                               {"a/two.ts", "let x: number = 1;\n"}}));
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  auto files = files_of(repo);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(str(files[0], "language"), "JavaScript");
  auto res = client().call("GET", "/api/repositories/" + repo + "/search?q=zipped_function", "", {}, false);
  EXPECT_EQ(parse_json(res.body)["results"].Size(), 1u) << res.body;
}

// A zip bomb ends in a failed job after one attempt with a clear error; no file reaches the repository.
TEST_F(Processing, ZipBombFailsTheJob) {
  auto t = start({"--set", "uploads.archive_max_ratio=50"});
  auto repo = client().create_repository("bomb");
  auto job =
    upload_and_wait(repo, "bomb.zip", archive_bytes(archive_kind::zip, {{"zeros", std::string(64 << 20, '\0')}}));
  ASSERT_EQ(str(job, "state"), "failed");
  EXPECT_EQ(job["attempts"].GetInt(), 1);
  EXPECT_NE(str(job, "error").find("zip bomb"), std::string::npos) << str(job, "error");
  EXPECT_TRUE(files_of(repo).empty());
  EXPECT_FALSE(fs::exists(dir_.path() + "/repositories/" + repo));
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/staging"));
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/incoming"));
}

// An archive with a path climbing out of the tree ends in a failed job; nothing is written outside uploads.dir, nor
// into the repository.
TEST_F(Processing, PathTraversalArchiveFailsTheJob) {
  auto t = start();
  auto repo = client().create_repository("traversal");
  auto escaped = fs::path{dir_.path()}.parent_path() / "troupe-escaped.txt";
  fs::remove(escaped);
  auto job = upload_and_wait(repo, "evil.tar",
                             archive_bytes(archive_kind::tar, {{"fine.txt", "ok"},
                                                               {"../../../troupe-escaped.txt", "escaped"},
                                                               {"../troupe-escaped.txt", "escaped"}}));
  ASSERT_EQ(str(job, "state"), "failed");
  EXPECT_NE(str(job, "error").find("path traversal"), std::string::npos) << str(job, "error");
  EXPECT_FALSE(fs::exists(escaped));
  EXPECT_FALSE(fs::exists(dir_.path() + "/troupe-escaped.txt"));
  EXPECT_FALSE(fs::exists(dir_.path() + "/repositories/" + repo));
  EXPECT_TRUE(files_of(repo).empty());
}

// Repositories and jobs belong to their owner: another user gets 404 for each route, and a name is unique per user.
TEST_F(Processing, RepositoriesAndJobsAreTheOwners) {
  auto t = start();
  auto repo = client().create_repository("private");
  auto job = upload_and_wait(repo, "a.txt", "secret words\n");
  ASSERT_EQ(str(job, "state"), "done");
  EXPECT_EQ(client()
              .call("POST", "/api/repositories", R"({"name":"private"})", {"Content-Type: application/json"}, false)
              .status,
            409);
  EXPECT_EQ(
    client().call("POST", "/api/repositories", R"({"name":""})", {"Content-Type: application/json"}, false).status,
    400);
  tus_client other{*t, bearer_of(*t, "stranger@example.com")};
  for (const auto& path : {"/api/repositories/" + repo, "/api/repositories/" + repo + "/files",
                           "/api/repositories/" + repo + "/search?q=secret", "/api/jobs/" + str(job, "id")})
    EXPECT_EQ(other.call("GET", path, "", {}, false).status, 404) << path;
  EXPECT_EQ(parse_json(other.call("GET", "/api/repositories", "", {}, false).body)["repositories"].Size(), 0u);
  EXPECT_EQ(parse_json(client().call("GET", "/api/repositories", "", {}, false).body)["repositories"].Size(), 1u);
}

// kill -9 while a job runs: after a restart the job is taken back once its lease lapses and completes; its
// attempt log shows the lapsed lease. The job is held inside its first attempt by a table lock this test takes,
// so the kill certainly lands while it runs.
TEST_F(Processing, JobSurvivesKillDashNine) {
  std::string job_id, repo;
  {
    auto t = start({"--set", "jobs.lease_ms=1000"});
    repo = client().create_repository("survivor");
    auto archive = archive_bytes(archive_kind::tar_gz, {{"lib/survive.c", "int survive_kill_nine(void);\n"}});
    pqxx::connection conn{db_.url()};
    pqxx::work lock{conn};
    lock.exec("LOCK TABLE files IN SHARE MODE"); // registering the archive's files waits for this
    std::string location;
    auto last = client().upload("survive.tar.gz", repo, archive, 1 << 20, location);
    ASSERT_EQ(last.status, 204) << last.body;
    job_id = last.header("troupe-job-id");
    // The job must be running and waiting on the lock when the kill lands, or this is not the crash point.
    ASSERT_TRUE(db_.wait_for_lock_waiters(1)) << "the job never waited on the files lock";
    ASSERT_EQ(db_.scalar("SELECT state FROM jobs WHERE id = '" + job_id + "'"), "running");
    t->signal(SIGKILL);
    ASSERT_TRUE(t->wait_exit(10s).has_value());
    lock.abort();
  }
  auto t = start({"--set", "jobs.lease_ms=1000"});
  auto job = client().wait_for_job(job_id);
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(job["attempts"].GetInt(), 2);
  ASSERT_EQ(job["attempt_log"].Size(), 2u);
  EXPECT_EQ(str(job["attempt_log"][0], "outcome"), "lease_expired");
  EXPECT_EQ(str(job["attempt_log"][1], "outcome"), "done");
  auto res = client().call("GET", "/api/repositories/" + repo + "/search?q=survive_kill_nine", "", {}, false);
  EXPECT_EQ(parse_json(res.body)["results"].Size(), 1u) << res.body;
}

// Across a cluster: a job running on a node that is killed (kill -9) is taken back by another node of the cluster
// once its lease lapses, and completed there (the nodes share uploads.dir, as nodes on one shared volume would).
// The job is held on the first node by a table lock; the second node joins only then, so the first certainly ran it.
TEST_F(Processing, AKilledNodesJobIsCompletedByAnotherClusterNode) {
  auto node = [](const std::string& id) {
    return std::vector<std::string>{"--set", "jobs.lease_ms=1000", "--set", "cluster.enabled=true",
                                    "--set", "cluster.node_id=" + id, "--set", "cluster.heartbeat_ms=200",
                                    "--set", "cluster.failure_ms=2000"};
  };
  auto first = start(node("jobs-a"));
  ASSERT_TRUE(first->wait_for_output(R"("msg":"cluster joined")", 10s));
  auto repo = client().create_repository("crossing");
  auto archive = archive_bytes(archive_kind::tar_gz, {{"lib/cross.c", "int crossed_the_cluster(void);\n"}});
  pqxx::connection conn{db_.url()};
  pqxx::work lock{conn};
  lock.exec("LOCK TABLE files IN SHARE MODE"); // registering the archive's files waits for this
  std::string location;
  auto last = client().upload("cross.tar.gz", repo, archive, 1 << 20, location);
  ASSERT_EQ(last.status, 204) << last.body;
  auto job_id = last.header("troupe-job-id");
  ASSERT_TRUE(db_.wait_for_lock_waiters(1)) << "the job never waited on the files lock";
  ASSERT_EQ(db_.scalar("SELECT state FROM jobs WHERE id = '" + job_id + "'"), "running");

  auto second = start(node("jobs-b"));
  ASSERT_TRUE(second->wait_for_output(R"("msg":"cluster joined")", 10s));
  first->signal(SIGKILL);
  ASSERT_TRUE(first->wait_exit(10s).has_value());
  lock.abort();

  auto job = client().wait_for_job(job_id);
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(job["attempts"].GetInt(), 2);
  ASSERT_EQ(job["attempt_log"].Size(), 2u);
  EXPECT_EQ(str(job["attempt_log"][0], "outcome"), "lease_expired");
  auto res = client().call("GET", "/api/repositories/" + repo + "/search?q=crossed_the_cluster", "", {}, false);
  EXPECT_EQ(parse_json(res.body)["results"].Size(), 1u) << res.body;
}

// The storage quota reaches processing: an archive whose files would take the owner over the limit fails its job for
// good, early (the expansion stops at the storage left), with a clear error; nothing is kept, and its reservation
// is given back.
TEST_F(Processing, ArchiveOverTheStorageQuotaFails) {
  auto t = start({"--set", "quota.free_storage_bytes=100000"});
  auto repo = client().create_repository("quota");
  auto archive =
    archive_bytes(archive_kind::tar_gz, {{"a.c", text_of(80000, "alpha")}, {"b.c", text_of(80000, "beta")}});
  ASSERT_LT(archive.size(), 100000u); // the upload itself fits
  auto job = upload_and_wait(repo, "big.tar.gz", archive);
  ASSERT_EQ(str(job, "state"), "failed");
  EXPECT_EQ(job["attempts"].GetInt(), 1);
  EXPECT_NE(str(job, "error").find("more storage than your plan has left"), std::string::npos) << str(job, "error");
  EXPECT_TRUE(files_of(repo).empty());
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/staging"));
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/incoming"));
  EXPECT_EQ(storage_used(client()), 0);
}

// The exact check when the files are registered: new files that do not fit fail the job (nothing registered, the
// limit and the use named), while files that replace others of the same paths fit at the same use.
TEST_F(Processing, FilesAreCheckedAgainstTheQuotaWhenRegistered) {
  auto t = start({"--set", "quota.free_storage_bytes=100000"});
  auto repo = client().create_repository("quota");
  auto kept = text_of(60000, "kept");
  ASSERT_EQ(str(upload_and_wait(repo, "kept.c", kept), "state"), "done");
  EXPECT_EQ(storage_used(client()), 60000);
  // 50000 bytes of new paths: the expansion passes (the 60000 bytes could have been replaced), the registration not.
  auto more =
    upload_and_wait(repo, "more.tar.gz", archive_bytes(archive_kind::tar_gz, {{"new.c", text_of(50000, "new")}}));
  ASSERT_EQ(str(more, "state"), "failed");
  EXPECT_NE(str(more, "error").find("110000 bytes, over the 100000 bytes your plan (free) allows"), std::string::npos)
    << str(more, "error");
  auto files = files_of(repo);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(str(files[0], "path"), "kept.c");
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/staging"));
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/incoming"));
  EXPECT_EQ(storage_used(client()), 60000);
  // The same bytes again under the same path: a replacement, at the same use.
  auto again = upload_and_wait(repo, "again.tar.gz", archive_bytes(archive_kind::tar_gz, {{"kept.c", kept}}));
  ASSERT_EQ(str(again, "state"), "done") << str(again, "error");
  EXPECT_EQ(storage_used(client()), 60000);
}

// An archive with no files: its job ends done at once with nothing registered, and the archive's bytes stop
// counting.
TEST_F(Processing, ArchiveWithNoFilesCompletesItsJob) {
  auto t = start();
  auto repo = client().create_repository("hollow");
  auto job = upload_and_wait(repo, "hollow.tar", archive_bytes(archive_kind::tar, {{"empty-dir/", "", "", true}}));
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(job["result"]["files"].GetInt(), 0);
  EXPECT_TRUE(files_of(repo).empty());
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/incoming"));
  EXPECT_EQ(storage_used(client()), 0);
}

// A search runs under db.search_timeout_ms: a real slow query on a real corpus is cancelled and answered 504 (the
// server's limit, like any request that outlives its bound), while an ordinary one answers.
TEST_F(Processing, SearchIsCancelledAtItsTimeout) {
  auto t = start({"--set", "db.search_timeout_ms=100"});
  auto repo = client().create_repository("corpus");
  make_corpus(db_, repo, 2000);
  auto slow = client().call("GET", "/api/repositories/" + repo + "/search?q=" + slow_query(), "", {}, false);
  EXPECT_EQ(slow.status, 504) << slow.body;
  auto error = parse_json(slow.body);
  ASSERT_TRUE(error.IsObject()) << slow.body;
  EXPECT_STREQ(error["error"]["code"].GetString(), "timeout");
  EXPECT_NE(std::string{error["error"]["message"].GetString()}.find("limit of 100 ms"), std::string::npos) << slow.body;
  auto quick = client().call("GET", "/api/repositories/" + repo + "/search?q=w7&limit=3", "", {}, false);
  EXPECT_EQ(quick.status, 200) << quick.body;
  auto hits = parse_json(quick.body);
  ASSERT_EQ(hits["results"].Size(), 3u) << quick.body;
  EXPECT_NE(std::string{hits["results"][0]["snippet"].GetString()}.find("«w7»"), std::string::npos) << quick.body;
}

// A query of many phrases is answered quickly, its snippets marking its words: PostgreSQL's ts_headline given such
// a query itself takes seconds and gigabytes per segment, so snippets are cut with the query's words instead.
TEST_F(Processing, SearchOfManyPhrasesIsCheap) {
  auto t = start({"--set", "db.search_timeout_ms=1000"}); // were it back, the slow headline would end here
  auto repo = client().create_repository("phrases");
  db_.execute("WITH f AS (INSERT INTO files (repository_id, path, status) VALUES ('" + repo
              + "', 'config.rs', 'done') RETURNING id) "
                "INSERT INTO file_segments (file_id, seq, start_line, end_line, content) "
                "SELECT f.id, g, g * 40 + 1, g * 40 + 40, repeat('let value_' || (g % 100) || "
                "' = parse_config(token, other_word, more_words); ', 40) FROM f, generate_series(0, 199) g");
  std::string q;
  for (int i = 0; i < 21; ++i)
    q += (i ? " or " : "") + std::string{"\"token other_word more_words let value_"} + std::to_string(i) + "\"";
  auto res = client().call("GET", "/api/repositories/" + repo + "/search?q=" + url_encoded(q), "", {}, false);
  ASSERT_EQ(res.status, 200) << res.body;
  auto hits = parse_json(res.body);
  ASSERT_EQ(hits["results"].Size(), 20u);
  EXPECT_NE(std::string{hits["results"][0]["snippet"].GetString()}.find("«token»"), std::string::npos) << res.body;
}

// Searches cannot take the connections of logins and writes: with slow searches saturating their connection (and
// the ones beyond what it holds refused at once with 503 and Retry-After), a login, a repository creation and an
// event are each answered in less than half the time of one search.
TEST_F(Processing, SearchesCannotStarveLoginsAndWrites) {
  auto t = start({"--set", "db.search_connections=1", "--set", "db.search_timeout_ms=60000"});
  auto repo = client().create_repository("corpus");
  make_corpus(db_, repo, 3000);
  auto path = "/api/repositories/" + repo + "/search?q=" + slow_query();
  auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(client().call("GET", path, "", {}, false, 120000).status, 200);
  auto one_search = std::chrono::steady_clock::now() - started;
  ASSERT_GT(one_search, 200ms) << "the corpus is too small to make a slow search on this machine";

  std::vector<std::future<http_result>> searches;
  for (int i = 0; i < 8; ++i)
    searches.push_back(
      std::async(std::launch::async, [&] { return client().call("GET", path, "", {}, false, 120000); }));
  // Until a search runs in PostgreSQL.
  for (int i = 0; i < 400
                  && db_.scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                                "query LIKE '%websearch_to_tsquery%' AND pid <> pg_backend_pid()")
                       == "0";
       ++i)
    std::this_thread::sleep_for(10ms);
  auto timed = [](auto call) {
    auto begin = std::chrono::steady_clock::now();
    auto res = call();
    return std::make_pair(res, std::chrono::steady_clock::now() - begin);
  };
  auto [login, login_time] = timed([&] {
    return http({"POST",
                 t->url("/api/auth/login"),
                 R"({"email":"uploader@example.com","password":"correct horse battery"})",
                 {"Content-Type: application/json"},
                 20000});
  });
  auto [created, create_time] = timed([&] {
    return client().call("POST", "/api/repositories", R"({"name":"written"})", {"Content-Type: application/json"},
                         false);
  });
  auto [event, event_time] = timed([&] {
    return client().call("POST", "/api/events", R"({"event":"e"})", {"Content-Type: application/json"}, false);
  });
  int answered = 0, refused = 0;
  for (auto& f : searches) {
    auto res = f.get();
    if (res.status == 200)
      ++answered;
    if (res.status == 503) {
      ++refused;
      EXPECT_EQ(res.header("retry-after"), "1");
    }
  }
  EXPECT_EQ(login.status, 200) << login.body;
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(event.status, 201) << event.body;
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  auto times = "one search " + std::to_string(ms(one_search)) + " ms; login " + std::to_string(ms(login_time))
               + " ms, repository " + std::to_string(ms(create_time)) + " ms, event " + std::to_string(ms(event_time))
               + " ms";
  EXPECT_LT(login_time, one_search / 2) << times;
  EXPECT_LT(create_time, one_search / 2) << times;
  EXPECT_LT(event_time, one_search / 2) << times;
  std::cout << "[ timings  ] " << times << "\n";
  EXPECT_EQ(answered + refused, 8);
  EXPECT_GE(refused, 1); // one connection runs one search and holds one more
  EXPECT_LE(answered, 4);
}

} // namespace

// Background processing of completed uploads on the real binary against a real PostgreSQL: a file and archives
// become repository files (SHA-256, size, lines, language, binary), searchable by full text; zip bombs and path
// traversal archives end in a failed job with a clear error and nothing written; repositories and jobs are their
// owner's; a job whose node is killed (kill -9) is taken back after its lease and completed by the next node.

#include "tests/actors/archive_writer.hpp"
#include "tests/integration/upload_client.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
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

} // namespace

// Interop with the real tus client: tus-js-client (npm, under Node) uploads a file to the real binary in chunks
// (creation-with-upload first), is interrupted, resumes from the offset the server reports (HEAD) with
// X-HTTP-Method-Override, and the processed file's SHA-256 equals the file's. tests/interop/tus_upload.mjs drives
// the client. Node and the client come from scripts/test-deps (make test runs it); without them the test fails.

#include "tests/integration/upload_client.hpp"
#include "tests/interop/node_packages.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

const std::string driver_dir = troupe::testing::interop_dir();

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

using TusInterop = upload_fixture;

TEST_F(TusInterop, TusJsClientUploadsInChunksAndResumes) {
  auto missing = node_packages_missing({"tus-js-client"});
  ASSERT_TRUE(missing.empty()) << missing;
  auto t = start({"--set", "uploads.max_chunk_bytes=1048576"});
  auto token = client().bearer().substr(std::string{"Authorization: Bearer "}.size());
  auto repo = client().create_repository("interop");
  ASSERT_FALSE(repo.empty());

  auto bytes = random_bytes(5 * 1024 * 1024 + 777, 11);
  auto file = dir_.path() + "/source.bin";
  std::ofstream{file, std::ios::binary}.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  std::string out;
  auto command = "timeout 120 node " + shell_quote(driver_dir + "/tus_upload.mjs") + " --endpoint "
                 + shell_quote(t->url("/api/uploads/")) + " --token " + shell_quote(token) + " --repository " + repo
                 + " --file " + shell_quote(file) + " --chunk 1048576 --interrupt-after 2097152";
  ASSERT_EQ(run_command(command, out), 0) << out;
  auto result = parse_json(out.substr(out.rfind('{')));
  ASSERT_TRUE(result.IsObject()) << out;
  EXPECT_GE(result["interrupted_at"].GetInt64(), 2097152);
  // Resumed exactly where the server had stored the bytes, not from zero.
  EXPECT_EQ(result["resumed_from"].GetInt64(), result["interrupted_at"].GetInt64()) << out;
  std::string job_id = result["job_id"].GetString();
  ASSERT_FALSE(job_id.empty()) << out;

  auto job = client().wait_for_job(job_id);
  ASSERT_STREQ(job["state"].GetString(), "done");
  auto files = parse_json(client().call("GET", "/api/repositories/" + repo + "/files", "", {}, false).body);
  ASSERT_EQ(files["files"].Size(), 1u);
  EXPECT_STREQ(files["files"][0]["path"].GetString(), "interop.bin");
  EXPECT_EQ(std::string{files["files"][0]["sha256"].GetString()}, sha256_hex_of(bytes));
  // The client's chunks were PATCHes of at most the configured size: 1 POST with data, then PATCHes.
  EXPECT_EQ(db_.scalar("SELECT upload_offset FROM uploads"), std::to_string(bytes.size()));
}

} // namespace

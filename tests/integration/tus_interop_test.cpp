// Interop with the real tus client: tus-js-client (npm, under Node) uploads a file to the real binary in chunks
// (creation-with-upload first), is interrupted, resumes from the offset the server reports (HEAD) with
// X-HTTP-Method-Override, and the processed file's SHA-256 equals the file's. tests/interop/tus_upload.mjs drives
// the client. Skipped, with the reason printed, only when Node is missing or npm cannot install the client.

#include "tests/integration/upload_client.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

const std::string interop_dir = std::string(TROUPE_SOURCE_DIR) + "/tests/interop";

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

/// "" when tus-js-client can run, else why not. Installs tests/interop/node_modules if needed (under flock: other
/// interop tests may install at the same time; bounded by timeout 120).
std::string client_unavailable() {
  std::string out;
  if (run_command("node --version", out) != 0)
    return "node is not installed";
  auto installed = [] { return std::filesystem::exists(interop_dir + "/node_modules/tus-js-client/package.json"); };
  if (!installed()) {
    auto dir = shell_quote(interop_dir);
    auto install =
      "test -d " + dir + "/node_modules/tus-js-client || timeout 120 npm install --no-audit --no-fund --prefix " + dir;
    int status = run_command("flock /tmp/troupe-interop-npm.lock sh -c " + shell_quote(install), out);
    if (status != 0 || !installed())
      return "npm install --prefix " + interop_dir + " failed (offline?): " + out.substr(0, 300);
  }
  return "";
}

using TusInterop = upload_fixture;

TEST_F(TusInterop, TusJsClientUploadsInChunksAndResumes) {
  auto reason = client_unavailable();
  if (!reason.empty()) {
    std::printf("skipping tus-js-client interop: %s\n", reason.c_str());
    GTEST_SKIP() << reason;
  }
  auto t = start({"--set", "uploads.max_chunk_bytes=1048576"});
  auto token = client().bearer().substr(std::string{"Authorization: Bearer "}.size());
  auto repo = client().create_repository("interop");
  ASSERT_FALSE(repo.empty());

  auto bytes = random_bytes(5 * 1024 * 1024 + 777, 11);
  auto file = dir_.path() + "/source.bin";
  std::ofstream{file, std::ios::binary}.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  std::string out;
  auto command = "timeout 120 node " + shell_quote(interop_dir + "/tus_upload.mjs") + " --endpoint "
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

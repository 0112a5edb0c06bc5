#pragma once
// Test helpers for the upload, repository and job routes: a temporary uploads.dir, a minimal tus client over the
// harness's http(), bounded waits on job states, and the fixture that starts troupe on a scratch database. Shared
// by uploads_test.cpp, processing_test.cpp and tus_interop_test.cpp.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace troupe::testing {

/// A directory under the system temp dir, removed with everything in it at the end.
class temp_dir {
public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "troupe-uploads-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) ? pattern : "";
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty())
      std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

inline std::string base64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

inline std::string digest_raw(const EVP_MD* md, const std::string& bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &n, md, nullptr);
  return std::string(reinterpret_cast<const char*>(out), n);
}

inline std::string sha256_hex_of(const std::string& bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest_raw(EVP_sha256(), bytes)) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

inline std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    auto v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k)
      out[i + k] = static_cast<char>(v >> (8 * k));
  }
  return out;
}

/// A signed-up user talking to one troupe process.
class tus_client {
public:
  tus_client(const troupe_process& t, std::string bearer) : t_(t), bearer_(std::move(bearer)) {}

  const std::string& bearer() const { return bearer_; }

  http_result call(const std::string& method, const std::string& path, const std::string& body = "",
                   std::vector<std::string> headers = {}, bool tus = true, long timeout_ms = 30000) const {
    headers.push_back(bearer_);
    if (tus)
      headers.push_back("Tus-Resumable: 1.0.0");
    return http({method, t_.url(path), body, headers, timeout_ms});
  }

  /// POST /api/repositories; returns the id ("" on failure).
  std::string create_repository(const std::string& name) const {
    auto res =
      call("POST", "/api/repositories", R"({"name":")" + name + "\"}", {"Content-Type: application/json"}, false);
    return json_string(res, "id");
  }

  static std::string metadata(const std::string& filename, const std::string& repository_id) {
    return "Upload-Metadata: filename " + base64(filename) + ",repository_id " + base64(repository_id);
  }

  /// POST /api/uploads/: the response (Location names the upload).
  http_result create(int64_t length, const std::string& filename, const std::string& repository_id,
                     std::vector<std::string> headers = {}) const {
    headers.push_back("Upload-Length: " + std::to_string(length));
    headers.push_back(metadata(filename, repository_id));
    return call("POST", "/api/uploads/", "", headers);
  }

  http_result patch(const std::string& location, int64_t offset, const std::string& bytes,
                    std::vector<std::string> headers = {}) const {
    headers.push_back("Upload-Offset: " + std::to_string(offset));
    headers.push_back("Content-Type: application/offset+octet-stream");
    return call("PATCH", location, bytes, headers);
  }

  http_result head(const std::string& location) const { return call("HEAD", location); }

  /// Creates an upload of `bytes` and PATCHes it in chunks of `chunk`; returns the last response (204 with
  /// Troupe-Job-Id when it worked) and sets `location`.
  http_result upload(const std::string& filename, const std::string& repository_id, const std::string& bytes,
                     size_t chunk, std::string& location) const {
    auto created = create(static_cast<int64_t>(bytes.size()), filename, repository_id);
    location = created.header("location");
    if (created.status != 201 || bytes.empty())
      return created;
    http_result last;
    for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
      last = patch(location, static_cast<int64_t>(offset), bytes.substr(offset, chunk));
      if (last.status != 204)
        return last;
    }
    return last;
  }

  /// Polls GET /api/jobs/{id} until the job is done or failed; the last body. Bounded: the job runs in another
  /// process, and its state can only be observed.
  rapidjson::Document wait_for_job(const std::string& job_id,
                                   std::chrono::seconds limit = std::chrono::seconds{60}) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto res = call("GET", "/api/jobs/" + job_id, "", {}, false);
      auto doc = parse_json(res.body);
      if (res.status == 200 && doc.IsObject() && doc.HasMember("state")) {
        std::string state = doc["state"].GetString();
        if (state == "done" || state == "failed" || std::chrono::steady_clock::now() > deadline)
          return doc;
      } else if (std::chrono::steady_clock::now() > deadline) {
        return doc;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
  }

private:
  const troupe_process& t_;
  std::string bearer_;
};

/// Bearer header of a freshly signed-up user.
inline std::string bearer_of(const troupe_process& t, const std::string& email) {
  return "Authorization: Bearer " + json_string(sign_up(t, email), "access_token");
}

/// A troupe process on a scratch database with a temporary uploads.dir (rate limits off: they are not what these
/// tests are about), and a signed-up user's tus client.
class upload_fixture : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  }

  /// Starts troupe (a restart keeps the database, the directory and the user).
  std::unique_ptr<troupe_process> start(std::vector<std::string> args = {},
                                        std::map<std::string, std::string> env = {}) {
    troupe_process::options opts;
    opts.env = std::move(env);
    opts.args = {"--set", "limits.enabled=false", "--set", "uploads.dir=" + dir_.path()};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    auto t = std::make_unique<troupe_process>(opts);
    client_ = std::make_unique<tus_client>(*t, bearer_of(*t, "uploader@example.com"));
    return t;
  }

  const tus_client& client() const { return *client_; }

  scratch_database db_;
  temp_dir dir_;
  std::unique_ptr<tus_client> client_;
};

} // namespace troupe::testing

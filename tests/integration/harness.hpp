#pragma once
// Test harness for integration tests: runs the real troupe binary and talks HTTP to it over loopback.

#include <rapidjson/document.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace troupe::testing {

/// The TROUPE_JWT_SECRET every troupe_process gets unless its options name another.
inline constexpr const char* test_jwt_secret = "integration-test-secret-0123456789abcdef";

/// A troupe process started with `--set http.port=0` plus the given arguments; the constructor waits for its
/// "listening" log line and reads the port from it. The destructor kills it if it still runs.
class troupe_process {
public:
  struct options {
    std::vector<std::string> args;
    std::map<std::string, std::string> env; // added to (or, with an empty value, removed from) the environment
    bool with_database = true;              // pass TROUPE_DATABASE_URL from the test environment through
  };

  explicit troupe_process(options opts);
  ~troupe_process();
  troupe_process(const troupe_process&) = delete;
  troupe_process& operator=(const troupe_process&) = delete;

  uint16_t port() const { return port_; }
  std::string url(const std::string& path) const;
  pid_t pid() const { return pid_; }

  void signal(int signo);
  /// Waits for the process to exit; returns its exit status, or nullopt on timeout (or death by signal: -signo).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  /// Everything it wrote to stdout and stderr so far.
  std::string output() const;
  /// Waits until its output contains `text`.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);

private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int out_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string output_;
  bool exited_ = false;
  int status_ = 0;
};

struct http_result {
  long status = 0;
  std::map<std::string, std::string> headers; // lower-cased names
  std::string body;
  std::string error; // curl's error, if the transfer failed
  std::string header(const std::string& lower_name) const;
};

struct http_request {
  std::string method = "GET";
  std::string url;
  std::string body;
  std::vector<std::string> headers; // "Name: value"
  long timeout_ms = 10000;
};

http_result http(const http_request& req);
inline http_result http_get(const std::string& url) {
  return http({"GET", url, "", {}, 10000});
}

/// Parses a response body (the document has a parse error when the body is not JSON).
rapidjson::Document parse_json(const std::string& body);

/// A string member of a JSON object body; "" when the body is not such an object or has no such string.
std::string json_string(const http_result& res, const char* name);

/// Registers `email` with the password "correct horse battery" (a 409 for an existing account is fine) and logs
/// in; returns the login response (its body has access_token and refresh_token).
http_result sign_up(const troupe_process& t, const std::string& email);

/// Runs a shell command; returns its exit status and fills `out` with stdout+stderr.
int run_command(const std::string& command, std::string& out);

/// TROUPE_DATABASE_URL from the environment, if the harness provides a database.
std::optional<std::string> test_database_url();

} // namespace troupe::testing

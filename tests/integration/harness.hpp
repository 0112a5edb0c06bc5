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
/// "listening" log line and reads the port from it.
///
/// At the end of every test the harness reads what the server said and how it ended (the destructor):
///   - a server still running is stopped with SIGTERM and must exit 0 within stop_timeout (a test about SIGKILL
///     sends it itself; a test that signals the server checks the exit itself);
///   - a sanitizer report (AddressSanitizer, LeakSanitizer, UBSan's "runtime error:", ThreadSanitizer) fails the test,
///     always;
///   - an error-level log line ("level":"error" or "critical"), a supervisor's restart ("msg":"actor failed",
///     "supervisor gives up") or CAF's "*** unexpected message" fails the test unless the test declared it: `expected_output` in the options, or
///     expect_output() later, lists substrings of the lines it provokes on purpose.
/// A test that fails this way, or any other way, gets the server's last output printed.
class troupe_process {
public:
  struct options {
    std::vector<std::string> args;
    std::map<std::string, std::string> env; // added to (or, with an empty value, removed from) the environment
    bool with_database = true;              // pass TROUPE_DATABASE_URL from the test environment through
    /// Substrings of error-level or restart lines this test provokes on purpose (see the class comment).
    std::vector<std::string> expected_output;
    /// How long a SIGTERM at the end of the test may take (the server's shutdown.grace_ms bounds the drain).
    std::chrono::milliseconds stop_timeout{30000};
  };

  explicit troupe_process(options opts);
  ~troupe_process();
  troupe_process(const troupe_process&) = delete;
  troupe_process& operator=(const troupe_process&) = delete;

  uint16_t port() const { return port_; }
  std::string url(const std::string& path) const;
  pid_t pid() const { return pid_; }

  /// Sends `signo`; the test then owns how the process ends (the destructor no longer requires exit status 0).
  void signal(int signo);
  /// Waits for the process to exit; returns its exit status, or nullopt on timeout (or death by signal: -signo).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  /// Everything it wrote to stdout and stderr so far.
  std::string output() const;
  /// Waits until its output contains `text`.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);
  /// Declares that lines containing `substring` are provoked by the test (see the class comment).
  void expect_output(std::string substring);

private:
  /// Lines of the output that fail the test (sanitizer reports, undeclared error-level and restart lines).
  std::vector<std::string> findings() const;

  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int out_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string output_;
  bool exited_ = false;
  int status_ = 0;
  bool signalled_ = false; // the test sent a signal: it checks how the process ended
  std::vector<std::string> expected_output_;
  std::chrono::milliseconds stop_timeout_;
};

/// The lines of a server's `output` that fail a test: sanitizer reports always; error-level log lines and supervisor
/// restarts unless they contain one of `expected`. Exposed for the harness's own tests.
std::vector<std::string> output_findings(const std::string& output, const std::vector<std::string>& expected);

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

/// Loads `url` in headless Chromium (a private profile, removed afterwards; at most 60 s, 4 s of virtual time for
/// the page's scripts) and fills `dom` with the DOM it ends with; returns Chromium's exit status.
int chromium_dump_dom(const std::string& url, std::string& dom);

/// Like chromium_dump_dom, and also writes a PNG of the page (window_width x window_height) to `png_path`.
int chromium_screenshot(const std::string& url, const std::string& png_path, int window_width, int window_height,
                        std::string& dom);

/// A tiny HTTP/1.1 server on a loopback port for what Troupe sends out (alert webhooks, OTLP exports): it records
/// every request (method, target, headers, body by Content-Length) and answers each with the next status of
/// `statuses` (then 200) and `body`. One thread; one request per connection (it answers with Connection: close).
class capture_server {
public:
  struct captured {
    std::string method, target, body;
    std::map<std::string, std::string> headers; // lower-cased names
  };
  /// `body` (with `content_type`) is what every answer carries; empty: none.
  explicit capture_server(std::vector<int> statuses = {}, std::string body = "",
                          std::string content_type = "application/json");
  ~capture_server();
  capture_server(const capture_server&) = delete;
  capture_server& operator=(const capture_server&) = delete;

  std::string url(const std::string& path) const;
  /// Waits until at least `n` requests arrived (false on timeout); returns a copy of them.
  bool wait_for(size_t n, std::chrono::milliseconds timeout);
  std::vector<captured> requests() const;

private:
  void run();
  int listener_ = -1;
  uint16_t port_ = 0;
  std::vector<int> statuses_;
  std::string body_, content_type_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<captured> requests_;
  bool stopping_ = false;
};

/// A span as an OTLP/HTTP JSON collector received it, with the service.instance.id (the node) that exported it.
struct otlp_span {
  std::string node, trace, id, parent, state, name;
  int kind = 0; // 1 internal, 2 server, 3 client, 5 consumer
  int64_t start = 0, end = 0;
  std::map<std::string, std::string> attributes; // the string ones
};
/// Every span in the OTLP JSON bodies `collector` received, in the order they arrived.
std::vector<otlp_span> otlp_spans(const capture_server& collector);

/// TROUPE_DATABASE_URL from the environment, if the harness provides a database.
std::optional<std::string> test_database_url();

} // namespace troupe::testing

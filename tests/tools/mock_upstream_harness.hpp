#pragma once
// Test harness for the mock upstream (tools/mock-upstream): runs the real binary on an ephemeral port, and a raw
// HTTP/1.1 client over loopback that shows what went over the wire: keep-alive reuse, interim responses, chunk
// boundaries and their arrival times, short bodies and closed connections. Gateway tests can use both.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::testing {

/// build/mock-upstream started with `--port 0` plus `args`; the constructor reads the port from its
/// "mock-upstream listening on HOST:PORT" line (or throws). The destructor kills it if it still runs.
class mock_upstream_process {
public:
  explicit mock_upstream_process(std::vector<std::string> args = {});
  ~mock_upstream_process();
  mock_upstream_process(const mock_upstream_process&) = delete;
  mock_upstream_process& operator=(const mock_upstream_process&) = delete;

  uint16_t port() const { return port_; }
  /// The line it printed, without the newline.
  const std::string& listening_line() const { return line_; }
  /// "http://127.0.0.1:PORT" (no trailing slash), e.g. for a gateway's upstream base_url.
  std::string base_url() const;

  /// Sends `signo` and waits for the exit: the exit status, -N when killed by signal N, nullopt on timeout.
  std::optional<int> stop(int signo, std::chrono::milliseconds timeout);

private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::string line_;
};

struct http_chunk {
  std::string data;
  std::chrono::steady_clock::time_point arrived;
};

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers; // lower-cased names
  std::string body;                           // de-chunked
  std::vector<http_chunk> chunks;             // chunked bodies: each chunk as it arrived
  bool complete = false;                      // the body ended as framed (length, last chunk, or close)
  bool closed = false;                        // the server closed the connection
  std::string error;                          // "" or what went wrong (timeout, bad framing, ...)
  std::vector<int> interim_statuses;          // 1xx responses seen before this one
  std::string header(const std::string& lower_name) const;
};

/// Options for reading one response.
struct read_options {
  std::chrono::milliseconds timeout{10000};
  size_t stop_after_body_bytes = SIZE_MAX; // return (incomplete) as soon as the body has this many bytes
  bool return_interim = false;             // return a 1xx response (e.g. 100 Continue) instead of skipping it
};

/// One client connection to 127.0.0.1:port.
class http_connection {
public:
  explicit http_connection(uint16_t port);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  bool connected() const { return fd_ >= 0; }
  /// Writes raw bytes; false when the connection is gone.
  bool send_raw(std::string_view bytes);
  /// Sends a request with a Content-Length body (none for an empty GET) and reads the response.
  http_response request(const std::string& method, const std::string& path, const std::string& body = {},
                        const std::vector<std::string>& headers = {}, read_options options = {});
  http_response read_response(read_options options = {});
  /// True when the server closes the connection within `timeout` without sending anything more.
  bool wait_closed(std::chrono::milliseconds timeout);
  void close();

private:
  /// Reads more bytes into buffer_; false on EOF, error or the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline, std::string& error, bool& eof);

  int fd_ = -1;
  std::string buffer_;
};

/// Formats a request with a Content-Length body.
std::string format_request(const std::string& method, const std::string& path, const std::string& body,
                           const std::vector<std::string>& headers);

/// One request on a fresh connection.
http_response http_once(uint16_t port, const std::string& method, const std::string& path, const std::string& body = {},
                        const std::vector<std::string>& headers = {});

/// A chat request body: one system and one user message.
std::string chat_body(const std::string& user_text, bool stream = false, const std::string& model = "mock-1",
                      const std::string& extra_fields = {});

/// The JSON payloads of a server-sent event stream's "data:" lines, in order ("[DONE]" included).
std::vector<std::string> sse_data(const std::string& stream_body);

} // namespace troupe::testing

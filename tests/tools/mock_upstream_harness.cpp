#include "tests/tools/mock_upstream_harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace troupe::testing {

namespace {

using clock_type = std::chrono::steady_clock;

int remaining_ms(clock_type::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
  return static_cast<int>(std::max<long long>(0, left));
}

/// Reads one line from `fd` within `timeout`; false on EOF or timeout.
bool read_line(int fd, std::string& line, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  line.clear();
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0)
      return false;
    char c;
    if (::read(fd, &c, 1) != 1)
      return false;
    if (c == '\n')
      return true;
    line.push_back(c);
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

} // namespace

// ---- mock_upstream_process ----------------------------------------------------------------------------------

mock_upstream_process::mock_upstream_process(std::vector<std::string> args) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  std::vector<std::string> argv_strings{MOCK_UPSTREAM_BINARY, "--port", "0"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL); // a crashing test leaves no mock behind
    ::dup2(pipe_fds[1], STDOUT_FILENO); // stderr stays the test's: a failing start explains itself there
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  stdout_fd_ = pipe_fds[0];
  const std::string prefix = "mock-upstream listening on ";
  if (pid_ < 0 || !read_line(stdout_fd_, line_, std::chrono::seconds{10}) || line_.rfind(prefix, 0) != 0) {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_fd_);
    throw std::runtime_error("mock-upstream did not start; it printed '" + line_ + "'");
  }
  port_ = static_cast<uint16_t>(std::stoi(line_.substr(line_.rfind(':') + 1)));
}

mock_upstream_process::~mock_upstream_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0)
    ::close(stdout_fd_);
}

std::string mock_upstream_process::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::optional<int> mock_upstream_process::stop(int signo, std::chrono::milliseconds timeout) {
  if (pid_ <= 0)
    return std::nullopt;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  ::kill(pid_, signo);
  if (pidfd >= 0) { // readable once the process exits
    pollfd p{pidfd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    ::close(pidfd);
    if (ready <= 0)
      return std::nullopt;
  }
  int status = 0;
  if (::waitpid(pid_, &status, 0) != pid_)
    return std::nullopt;
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// ---- http_connection ----------------------------------------------------------------------------------------

std::string http_response::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string{} : it->second;
}

http_connection::http_connection(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close();
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

http_connection::~http_connection() {
  close();
}

void http_connection::close() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

bool http_connection::send_raw(std::string_view bytes) {
  while (!bytes.empty() && fd_ >= 0) {
    auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return fd_ >= 0;
}

bool http_connection::fill(clock_type::time_point deadline, std::string& error, bool& eof) {
  if (fd_ < 0) {
    error = "not connected";
    return false;
  }
  pollfd p{fd_, POLLIN, 0};
  int ready = ::poll(&p, 1, remaining_ms(deadline));
  if (ready <= 0) {
    error = "timed out waiting for the server";
    return false;
  }
  char buf[65536];
  auto n = ::recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) {
    eof = true;
    if (n < 0)
      error = std::string{"recv: "} + std::strerror(errno);
    return false;
  }
  buffer_.append(buf, static_cast<size_t>(n));
  return true;
}

bool http_connection::wait_closed(std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  std::string error;
  bool eof = false;
  while (buffer_.empty() && fill(deadline, error, eof)) {
  }
  return eof && buffer_.empty();
}

http_response http_connection::read_response(read_options options) {
  http_response res;
  auto deadline = clock_type::now() + options.timeout;
  bool eof = false;
  // Reads until `ready()` holds; false (with res.closed or res.error set) when it cannot.
  auto wait_for = [&](auto ready) {
    while (!ready()) {
      if (!fill(deadline, res.error, eof)) {
        res.closed = eof;
        return false;
      }
    }
    return true;
  };

  // Head (skipping 1xx interim responses).
  for (;;) {
    if (!wait_for([&] { return buffer_.find("\r\n\r\n") != std::string::npos; })) {
      if (res.error.empty() && !buffer_.empty())
        res.error = "connection closed inside the response head";
      return res;
    }
    auto end = buffer_.find("\r\n\r\n");
    std::string head = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    if (head.size() < 12 || head.rfind("HTTP/1.", 0) != 0) {
      res.error = "not an HTTP response: " + head.substr(0, 40);
      return res;
    }
    res.status = std::atoi(head.c_str() + 9);
    res.headers.clear();
    for (size_t pos = head.find("\r\n") + 2; pos < head.size();) {
      auto eol = head.find("\r\n", pos);
      auto line = head.substr(pos, eol - pos);
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        res.headers[lower(line.substr(0, colon))] = value;
      }
      pos = eol + 2;
    }
    if (res.status >= 200)
      break;
    res.interim_statuses.push_back(res.status);
    if (options.return_interim) {
      res.complete = true;
      return res;
    }
  }

  auto stop_early = [&] { return res.body.size() >= options.stop_after_body_bytes; };
  if (lower(res.header("transfer-encoding")) == "chunked") {
    for (;;) {
      if (!wait_for([&] { return buffer_.find("\r\n") != std::string::npos; }))
        return res;
      auto size = std::strtoull(buffer_.c_str(), nullptr, 16);
      auto line_end = buffer_.find("\r\n") + 2;
      if (!wait_for([&] { return buffer_.size() >= line_end + size + 2; }))
        return res;
      auto data = buffer_.substr(line_end, size);
      buffer_.erase(0, line_end + size + 2);
      if (size == 0) {
        res.complete = true;
        return res;
      }
      res.body += data;
      res.chunks.push_back({std::move(data), clock_type::now()});
      if (stop_early())
        return res;
    }
  }
  if (res.headers.count("content-length")) {
    auto length = std::stoull(res.header("content-length"));
    bool got = wait_for([&] { return buffer_.size() >= length || buffer_.size() >= options.stop_after_body_bytes; });
    auto take = std::min<size_t>(buffer_.size(), length);
    res.body = buffer_.substr(0, take);
    buffer_.erase(0, take);
    res.complete = got && res.body.size() == length;
    return res;
  }
  // No framing: the body ends when the server closes the connection.
  wait_for([&] { return buffer_.size() >= options.stop_after_body_bytes; });
  res.body = std::move(buffer_);
  buffer_.clear();
  res.complete = res.closed;
  if (res.closed)
    res.error.clear();
  return res;
}

http_response http_connection::request(const std::string& method, const std::string& path, const std::string& body,
                                       const std::vector<std::string>& headers, read_options options) {
  if (!send_raw(format_request(method, path, body, headers))) {
    http_response res;
    res.error = "could not send the request";
    res.closed = true;
    return res;
  }
  return read_response(options);
}

std::string format_request(const std::string& method, const std::string& path, const std::string& body,
                           const std::vector<std::string>& headers) {
  std::string out = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!body.empty() || method == "POST")
    out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& h : headers)
    out += h + "\r\n";
  return out + "\r\n" + body;
}

http_response http_once(uint16_t port, const std::string& method, const std::string& path, const std::string& body,
                        const std::vector<std::string>& headers) {
  http_connection connection{port};
  return connection.request(method, path, body, headers);
}

std::string chat_body(const std::string& user_text, bool stream, const std::string& model,
                      const std::string& extra_fields) {
  auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\')
        out.push_back('\\');
      out.push_back(c);
    }
    return out + "\"";
  };
  return "{\"model\":" + quote(model) + ",\"stream\":" + (stream ? "true" : "false")
         + ",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":"
         + quote(user_text) + "}]" + (extra_fields.empty() ? "" : "," + extra_fields) + "}";
}

std::vector<std::string> sse_data(const std::string& stream_body) {
  std::vector<std::string> data;
  size_t pos = 0;
  while (pos < stream_body.size()) {
    auto eol = stream_body.find('\n', pos);
    if (eol == std::string::npos)
      eol = stream_body.size();
    auto line = stream_body.substr(pos, eol - pos);
    if (line.rfind("data: ", 0) == 0)
      data.push_back(line.substr(6));
    pos = eol + 1;
  }
  return data;
}

} // namespace troupe::testing

#pragma once
// A raw loopback HTTP client that sends bytes exactly as written (framing tests need requests no real client would
// send) and reads responses by hand.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

namespace troupe::http::testing {

/// A blocking loopback client with a receive timeout.
class raw_client {
public:
  explicit raw_client(uint16_t port, std::chrono::milliseconds timeout = std::chrono::milliseconds{5000}) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~raw_client() { close(); }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }
  /// Closes with a reset (SO_LINGER 0), as a client that crashes does.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  /// Sends everything; false if the server closed the connection meanwhile.
  bool send(const std::string& text) {
    size_t sent = 0;
    while (sent < text.size()) {
      auto n = ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  /// Reads until `marker` has arrived (or timeout/EOF); returns everything read so far.
  std::string read_until(const std::string& marker) {
    char buf[4096];
    while (received_.find(marker) == std::string::npos) {
      auto n = ::read(fd_, buf, sizeof(buf));
      if (n <= 0) {
        eof_ = n == 0;
        break;
      }
      received_.append(buf, static_cast<size_t>(n));
    }
    return received_;
  }
  /// Reads until the server closes the connection (or timeout); true if it was closed (EOF or reset).
  bool read_to_close() {
    char buf[4096];
    for (;;) {
      auto n = ::read(fd_, buf, sizeof(buf));
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        eof_ = true;
        return true;
      }
      if (n < 0)
        return false; // timeout
      received_.append(buf, static_cast<size_t>(n));
    }
  }
  /// Reads one whole response with a Content-Length body; "" on timeout or close.
  std::string read_response() {
    auto head_end = read_until("\r\n\r\n").find("\r\n\r\n");
    if (head_end == std::string::npos)
      return {};
    size_t length = 0;
    auto at = received_.find("Content-Length: ");
    if (at != std::string::npos && at < head_end)
      length = std::stoul(received_.substr(at + 16));
    while (received_.size() < head_end + 4 + length) {
      char buf[4096];
      auto n = ::read(fd_, buf, sizeof(buf));
      if (n <= 0)
        return {};
      received_.append(buf, static_cast<size_t>(n));
    }
    auto response = received_.substr(0, head_end + 4 + length);
    received_.erase(0, head_end + 4 + length);
    return response;
  }
  const std::string& received() const { return received_; }
  bool eof() const { return eof_; }
  void forget() { received_.clear(); }

private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string received_;
};

/// The value of header `name` in a raw response ("" if absent).
inline std::string header_of(const std::string& response, const std::string& name) {
  auto at = response.find("\r\n" + name + ": ");
  if (at == std::string::npos)
    return {};
  at += name.size() + 4;
  return response.substr(at, response.find("\r\n", at) - at);
}

} // namespace troupe::http::testing

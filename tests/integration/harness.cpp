#include "tests/integration/harness.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace troupe::testing {

namespace {

std::vector<std::string> build_environment(const troupe_process::options& opts) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    if (eq != std::string::npos)
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  if (!opts.with_database)
    env.erase("TROUPE_DATABASE_URL");
  // Serving needs a token key; tests that care pass their own.
  if (env.count("TROUPE_JWT_SECRET") == 0)
    env["TROUPE_JWT_SECRET"] = test_jwt_secret;
  for (const auto& [k, v] : opts.env) {
    if (v.empty())
      env.erase(k);
    else
      env[k] = v;
  }
  std::vector<std::string> result;
  for (const auto& [k, v] : env)
    result.push_back(k + "=" + v);
  return result;
}

} // namespace

troupe_process::troupe_process(options opts)
    : expected_output_(std::move(opts.expected_output)), stop_timeout_(opts.stop_timeout) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  std::vector<std::string> args{TROUPE_BINARY, "--set", "http.port=0"};
  args.insert(args.end(), opts.args.begin(), opts.args.end());
  auto env = build_environment(opts);
  std::vector<char*> argv, envp;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  out_fd_ = pipe_fds[0];
  reader_ = std::thread{[this] {
    char buf[4096];
    for (;;) {
      auto n = ::read(out_fd_, buf, sizeof(buf));
      if (n <= 0)
        break;
      std::lock_guard<std::mutex> guard{mutex_};
      output_.append(buf, static_cast<size_t>(n));
      changed_.notify_all();
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    std::lock_guard<std::mutex> guard{mutex_};
    exited_ = true;
    status_ = status;
    changed_.notify_all();
  }};
  // The port is in the "listening" line: ..."port":12345}
  if (!wait_for_output("\"msg\":\"listening\"", std::chrono::seconds{20})) {
    // No destructor runs after a throwing constructor: stop the process and the reader here.
    ::kill(pid_, SIGKILL);
    reader_.join();
    ::close(out_fd_);
    throw std::runtime_error("troupe did not start listening; output:\n" + output());
  }
  auto text = output();
  auto pos = text.find("\"port\":", text.find("\"msg\":\"listening\""));
  port_ = static_cast<uint16_t>(std::stoi(text.substr(pos + 7)));
}

troupe_process::~troupe_process() {
  std::vector<std::string> problems;
  bool running, signalled;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    running = !exited_;
    signalled = signalled_;
  }
  if (running) {
    // The ordinary end of a server: SIGTERM, a drain, exit 0.
    ::kill(pid_, SIGTERM);
    auto status = wait_exit(stop_timeout_);
    if (!status) {
      problems.push_back("did not exit within " + std::to_string(stop_timeout_.count()) + " ms of SIGTERM; killed");
      ::kill(pid_, SIGKILL);
    } else if (*status != 0) {
      problems.push_back("exit status " + std::to_string(*status) + " after SIGTERM (expected 0)");
    }
  } else if (!signalled) {
    auto status = wait_exit(std::chrono::milliseconds{0});
    if (status && *status != 0)
      problems.push_back("exited by itself with status " + std::to_string(*status));
  }
  if (reader_.joinable())
    reader_.join();
  if (out_fd_ >= 0)
    ::close(out_fd_);
  for (auto& line : findings())
    problems.push_back("its output has: " + line);
  for (const auto& problem : problems)
    ADD_FAILURE() << "troupe (pid " << pid_ << ") " << problem;
  // A failing test shows what the server said.
  if (::testing::Test::HasFailure()) {
    auto text = output();
    std::fprintf(stderr, "---- troupe output (last 16 KiB) ----\n%s\n----\n",
                 text.substr(text.size() > 16384 ? text.size() - 16384 : 0).c_str());
  }
}

void troupe_process::expect_output(std::string substring) {
  std::lock_guard<std::mutex> guard{mutex_};
  expected_output_.push_back(std::move(substring));
}

std::vector<std::string> troupe_process::findings() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return output_findings(output_, expected_output_);
}

std::vector<std::string> output_findings(const std::string& output, const std::vector<std::string>& expected) {
  // Sanitizer reports: never expected (a test cannot declare them away).
  static const char* const sanitizer_markers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                                  "runtime error:", "WARNING: ThreadSanitizer",
                                                  "ERROR: ThreadSanitizer"};
  // Log lines (config/log.cpp: {"ts":...,"level":"<spdlog level>","msg":...}) and supervisor restarts
  // (actors/supervisor.cpp) that need a declaration.
  // CAF's "*** unexpected message" (printed to stderr by an actor without a handler for what it was sent) is a
  // protocol mismatch between two of our actors.
  static const char* const declarable_markers[] = {"\"level\":\"error\"", "\"level\":\"critical\"",
                                                   "\"msg\":\"actor failed\"", "\"msg\":\"supervisor gives up\"",
                                                   "*** unexpected message"};
  std::vector<std::string> found;
  size_t start = 0;
  while (start < output.size()) {
    auto end = output.find('\n', start);
    if (end == std::string::npos)
      end = output.size();
    std::string_view line{output.data() + start, end - start};
    start = end + 1;
    auto has = [&](std::string_view marker) { return line.find(marker) != std::string_view::npos; };
    bool finding = std::any_of(std::begin(sanitizer_markers), std::end(sanitizer_markers), has);
    if (!finding && std::any_of(std::begin(declarable_markers), std::end(declarable_markers), has))
      finding = std::none_of(expected.begin(), expected.end(), [&](const std::string& e) { return has(e); });
    if (finding)
      found.emplace_back(line.substr(0, 600));
    if (found.size() >= 20)
      break;
  }
  return found;
}

std::string troupe_process::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void troupe_process::signal(int signo) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    signalled_ = true;
  }
  ::kill(pid_, signo);
}

std::optional<int> troupe_process::wait_exit(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{mutex_};
  if (!changed_.wait_for(guard, timeout, [this] { return exited_; }))
    return std::nullopt;
  if (WIFEXITED(status_))
    return WEXITSTATUS(status_);
  return -WTERMSIG(status_);
}

std::string troupe_process::output() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return output_;
}

bool troupe_process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{mutex_};
  return changed_.wait_for(guard, timeout, [&] { return output_.find(text) != std::string::npos || exited_; })
         && output_.find(text) != std::string::npos;
}

std::string http_result::header(const std::string& lower_name) const {
  auto i = headers.find(lower_name);
  return i == headers.end() ? std::string{} : i->second;
}

namespace {

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line{data, size * n};
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    auto name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    auto value = line.substr(colon + 1);
    auto first = value.find_first_not_of(" \t");
    auto last = value.find_last_not_of(" \t\r\n");
    (*headers)[name] = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  }
  return size * n;
}

} // namespace

http_result http(const http_request& req) {
  http_result result;
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  for (const auto& h : req.headers)
    headers = curl_slist_append(headers, h.c_str());
  // curl waits for 100-continue before large bodies otherwise (Pistache ignores Expect: LIBRARY-NOTES.md).
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method == "HEAD")
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  auto rc = curl_easy_perform(curl);
  if (rc != CURLE_OK)
    result.error = curl_easy_strerror(rc);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return result;
}

rapidjson::Document parse_json(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  return doc;
}

std::string json_string(const http_result& res, const char* name) {
  auto doc = parse_json(res.body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember(name) || !doc[name].IsString())
    return {};
  return doc[name].GetString();
}

http_result sign_up(const troupe_process& t, const std::string& email) {
  auto body = R"({"email":")" + email + R"(","password":"correct horse battery"})";
  http({"POST", t.url("/api/auth/register"), body, {"Content-Type: application/json"}, 20000});
  return http({"POST", t.url("/api/auth/login"), body, {"Content-Type: application/json"}, 20000});
}

int run_command(const std::string& command, std::string& out) {
  out.clear();
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe)
    return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    out.append(buf, n);
  int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int chromium_dump_dom(const std::string& url, std::string& dom) {
  // Chromium's own chatter on stderr is dropped.
  return run_command("profile=$(mktemp -d); (timeout 60 chromium --headless --no-sandbox --disable-gpu "
                     "--disable-dev-shm-usage --user-data-dir=$profile --virtual-time-budget=4000 --dump-dom '" +
                       url + "' 2>/dev/null); status=$?; rm -rf \"$profile\"; exit $status",
                     dom);
}

int chromium_screenshot(const std::string& url, const std::string& png_path, int window_width, int window_height,
                        std::string& dom) {
  return run_command("profile=$(mktemp -d); (timeout 60 chromium --headless --no-sandbox --disable-gpu "
                     "--disable-dev-shm-usage --hide-scrollbars --user-data-dir=$profile --virtual-time-budget=4000 "
                     "--window-size=" + std::to_string(window_width) + "," + std::to_string(window_height) +
                       " --screenshot='" + png_path + "' --dump-dom '" + url +
                       "' 2>/dev/null); status=$?; rm -rf \"$profile\"; exit $status",
                     dom);
}

capture_server::capture_server(std::vector<int> statuses, std::string body, std::string content_type)
  : statuses_(std::move(statuses)), body_(std::move(body)), content_type_(std::move(content_type)) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0
      || ::listen(listener_, 16) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("capture_server: cannot listen on loopback");
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread{[this] { run(); }};
}

capture_server::~capture_server() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  ::shutdown(listener_, SHUT_RDWR);
  thread_.join();
  ::close(listener_);
}

std::string capture_server::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

bool capture_server::wait_for(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{mutex_};
  return arrived_.wait_for(guard, timeout, [&] { return requests_.size() >= n; });
}

std::vector<capture_server::captured> capture_server::requests() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return requests_;
}

void capture_server::run() {
  for (;;) {
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      std::lock_guard<std::mutex> guard{mutex_};
      if (stopping_ || (errno != EINTR && errno != ECONNABORTED))
        return;
      continue;
    }
    // Reads the head, then Content-Length bytes of body; 10 s at most per connection.
    std::string in;
    captured request;
    size_t head_end = std::string::npos, body_length = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    bool complete = false;
    while (!complete && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0)
        continue;
      char buffer[16384];
      auto n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0)
        break;
      in.append(buffer, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        std::string head = in.substr(0, head_end);
        auto line_end = head.find("\r\n");
        auto first = head.substr(0, line_end);
        auto sp1 = first.find(' '), sp2 = first.rfind(' ');
        request.method = first.substr(0, sp1);
        request.target = sp1 == std::string::npos ? "" : first.substr(sp1 + 1, sp2 - sp1 - 1);
        size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
          auto end = head.find("\r\n", pos);
          if (end == std::string::npos)
            end = head.size();
          auto line = head.substr(pos, end - pos);
          auto colon = line.find(':');
          if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
            auto value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            request.headers[name] = value;
          }
          pos = end + 2;
        }
        if (auto length = request.headers.find("content-length"); length != request.headers.end())
          body_length = std::strtoul(length->second.c_str(), nullptr, 10);
      }
      if (head_end != std::string::npos && in.size() >= head_end + 4 + body_length)
        complete = true;
    }
    int status = 200;
    if (complete) {
      request.body = in.substr(head_end + 4, body_length);
      std::lock_guard<std::mutex> guard{mutex_};
      auto index = requests_.size();
      status = index < statuses_.size() ? statuses_[index] : 200;
      requests_.push_back(std::move(request));
      arrived_.notify_all();
    }
    std::string reply = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body_.size())
                        + (body_.empty() ? "" : "\r\nContent-Type: " + content_type_) + "\r\nConnection: close\r\n\r\n"
                        + body_;
    [[maybe_unused]] auto sent = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
}

std::optional<std::string> test_database_url() {
  if (const char* url = std::getenv("TROUPE_DATABASE_URL"); url && *url)
    return std::string{url};
  return std::nullopt;
}

std::vector<otlp_span> otlp_spans(const capture_server& collector) {
  std::vector<otlp_span> spans;
  auto text = [](const rapidjson::Value& object, const char* key) {
    return object.IsObject() && object.HasMember(key) && object[key].IsString() ? std::string{object[key].GetString()}
                                                                               : std::string{};
  };
  auto array = [](const rapidjson::Value& object, const char* key) -> const rapidjson::Value* {
    return object.IsObject() && object.HasMember(key) && object[key].IsArray() ? &object[key] : nullptr;
  };
  for (const auto& request : collector.requests()) {
    auto batch = parse_json(request.body);
    if (batch.HasParseError())
      continue;
    auto resources = array(batch, "resourceSpans");
    if (!resources)
      continue;
    for (const auto& resource : resources->GetArray()) {
      std::string node;
      if (resource.HasMember("resource"))
        if (auto attributes = array(resource["resource"], "attributes"))
          for (const auto& a : attributes->GetArray())
            if (text(a, "key") == "service.instance.id" && a.HasMember("value"))
              node = text(a["value"], "stringValue");
      auto scopes = array(resource, "scopeSpans");
      if (!scopes)
        continue;
      for (const auto& scope : scopes->GetArray()) {
        auto list = array(scope, "spans");
        if (!list)
          continue;
        for (const auto& span : list->GetArray()) {
          otlp_span s;
          s.node = node;
          s.trace = text(span, "traceId");
          s.id = text(span, "spanId");
          s.parent = text(span, "parentSpanId");
          s.state = text(span, "traceState");
          s.name = text(span, "name");
          s.kind = span.HasMember("kind") && span["kind"].IsInt() ? span["kind"].GetInt() : 0;
          s.start = std::stoll("0" + text(span, "startTimeUnixNano"));
          s.end = std::stoll("0" + text(span, "endTimeUnixNano"));
          if (auto attributes = array(span, "attributes"))
            for (const auto& a : attributes->GetArray())
              if (a.HasMember("value") && a["value"].HasMember("stringValue"))
                s.attributes[text(a, "key")] = text(a["value"], "stringValue");
          spans.push_back(std::move(s));
        }
      }
    }
  }
  return spans;
}

} // namespace troupe::testing

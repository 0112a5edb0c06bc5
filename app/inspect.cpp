#include "app/inspect.hpp"

#include "config/json.hpp"

#include <curl/curl.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace troupe::app {

namespace {

const char* inspect_usage = R"(Usage: troupe inspect [--url URL] [--token TOKEN] [--json] COMMAND

Looks into a running Troupe in debug mode (--set debug.enabled=true; make run turns it on).

Commands:
  actors                   the supervision tree: state, mailbox size, processed messages, restarts, last error
  mailbox ID [--limit N]   one actor (by id or name) and its first N queued messages (default 50), secrets redacted
  top [--interval-ms MS] [--iterations N]
                           refreshing view of the actors with the most queued messages (Ctrl-C to quit)

Flags:
  --url URL      the server (default http://127.0.0.1:8080)
  --token TOKEN  admin bearer token, when the server does not listen on loopback only (or TROUPE_TOKEN)
  --json         print JSON (top: one line per refresh)
)";

struct inspect_options {
  std::string url = "http://127.0.0.1:8080";
  std::string token;
  bool json = false;
  std::string command;
  std::string actor;
  long limit = 50;
  long interval_ms = 1000;
  long iterations = 0; // 0 = until interrupted
};

struct fetched {
  long status = 0;
  std::string body;
  std::string error;
};

size_t append_body(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

fetched fetch(const inspect_options& opts, const std::string& path) {
  fetched result;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    result.error = "curl_easy_init failed";
    return result;
  }
  auto url = opts.url + path;
  curl_slist* headers = nullptr;
  std::string auth = "Authorization: Bearer " + opts.token;
  if (!opts.token.empty())
    headers = curl_slist_append(headers, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  auto code = curl_easy_perform(curl);
  if (code != CURLE_OK)
    result.error = curl_easy_strerror(code);
  else
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return result;
}

/// The body as JSON, or nullopt after printing why not (exit status 1 follows).
std::optional<rapidjson::Document> fetch_json(const inspect_options& opts, const std::string& path) {
  auto res = fetch(opts, path);
  if (!res.error.empty()) {
    std::cerr << "troupe: cannot reach " << opts.url << ": " << res.error << "\n";
    return std::nullopt;
  }
  if (res.status == 404 && path == "/debug/actors") {
    std::cerr << "troupe: " << opts.url << " has no debug routes (404): start it with --set debug.enabled=true\n";
    return std::nullopt;
  }
  if (res.status == 401 || res.status == 403) {
    std::cerr << "troupe: " << opts.url << " answered " << res.status
              << ": its debug routes need an admin token (--token or TROUPE_TOKEN)\n";
    return std::nullopt;
  }
  auto parsed = json::parse(res.body);
  auto& doc = parsed.document();
  if (res.status != 200 || !parsed || !doc.IsObject()) {
    std::string message = parsed ? res.body : res.body + " (" + parsed.error().reason + ")";
    if (parsed && doc.IsObject() && doc.HasMember("error") && doc["error"].IsObject()
        && doc["error"].HasMember("message") && doc["error"]["message"].IsString())
      message = doc["error"]["message"].GetString();
    std::cerr << "troupe: " << path << " answered " << res.status << ": " << message << "\n";
    return std::nullopt;
  }
  return std::move(doc);
}

std::string json_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
  v.Accept(w);
  return buffer.GetString();
}

std::string str(const rapidjson::Value& obj, const char* key) {
  if (!obj.HasMember(key) || obj[key].IsNull())
    return "";
  const auto& v = obj[key];
  if (v.IsString())
    return v.GetString();
  if (v.IsInt64())
    return std::to_string(v.GetInt64());
  if (v.IsUint64())
    return std::to_string(v.GetUint64());
  if (v.IsDouble()) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.3f", v.GetDouble());
    return text;
  }
  return json_text(v);
}

int64_t num(const rapidjson::Value& obj, const char* key) {
  if (!obj.HasMember(key))
    return -1;
  const auto& v = obj[key];
  if (v.IsInt64())
    return v.GetInt64();
  if (v.IsUint64())
    return static_cast<int64_t>(v.GetUint64());
  if (v.IsDouble())
    return static_cast<int64_t>(v.GetDouble());
  return -1;
}

std::string uptime_text(int64_t ms) {
  if (ms < 0)
    return "-";
  auto s = ms / 1000;
  if (s < 120)
    return std::to_string(s) + "s";
  if (s < 7200)
    return std::to_string(s / 60) + "m";
  return std::to_string(s / 3600) + "h";
}

std::string cut(std::string text, size_t width) {
  if (text.size() > width)
    text = text.substr(0, width > 1 ? width - 1 : 0) + "~";
  return text;
}

std::string padded(const std::string& text, size_t width, bool right = false) {
  auto t = cut(text, width);
  std::string pad(width - t.size(), ' ');
  return right ? pad + t : t + pad;
}

int print_actors(const inspect_options& opts) {
  auto doc = fetch_json(opts, "/debug/actors");
  if (!doc)
    return 1;
  if (opts.json) {
    std::cout << json_text(*doc) << "\n";
    return 0;
  }
  std::map<std::string, int> depth;
  std::cout << padded("ACTOR", 34) << padded("TYPE", 18) << padded("STATE", 9) << padded("MAILBOX", 8, true)
            << padded("PROCESSED", 11, true) << padded("RESTARTS", 9, true) << padded("UPTIME", 7, true)
            << "  LAST ERROR\n";
  for (const auto& a : (*doc)["actors"].GetArray()) {
    auto name = str(a, "name");
    auto parent = str(a, "supervisor");
    depth[name] = parent.empty() ? 0 : depth[parent] + 1;
    auto type = str(a, "type");
    std::cout << padded(std::string(static_cast<size_t>(depth[name]) * 2, ' ') + name, 34)
              << padded(type.empty() ? str(a, "kind") : type, 18) << padded(str(a, "state"), 9)
              << padded(str(a, "mailbox_size"), 8, true) << padded(str(a, "processed"), 11, true)
              << padded(str(a, "restarts"), 9, true) << padded(uptime_text(num(a, "uptime_ms")), 7, true) << "  "
              << str(a, "last_error") << (str(a, "last_error_at").empty() ? "" : " at " + str(a, "last_error_at"))
              << "\n";
  }
  return 0;
}

std::string url_encoded(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

int print_mailbox(const inspect_options& opts) {
  auto doc = fetch_json(opts, "/debug/actors/" + url_encoded(opts.actor) + "?limit=" + std::to_string(opts.limit));
  if (!doc)
    return 1;
  if (opts.json) {
    std::cout << json_text(*doc) << "\n";
    return 0;
  }
  const auto& a = *doc;
  std::cout << str(a, "name") << " (id " << str(a, "id") << ", " << str(a, "type") << ", " << str(a, "state")
            << ", supervisor " << str(a, "supervisor") << ")\n"
            << "  processed " << str(a, "processed") << ", restarts " << str(a, "restarts") << ", busy "
            << str(a, "busy_ms") << " ms, uptime " << uptime_text(num(a, "uptime_ms")) << "\n";
  if (!str(a, "last_error").empty())
    std::cout << "  last error: " << str(a, "last_error") << " at " << str(a, "last_error_at") << "\n";
  if (!a.HasMember("mailbox") || a["mailbox"].IsNull()) {
    std::cout << "  mailbox size (from its probe): " << str(a, "mailbox_size") << "\n  " << str(a, "mailbox_error")
              << "\n";
    return 0;
  }
  const auto& box = a["mailbox"];
  std::cout << "  mailbox: " << str(box, "size") << " messages queued";
  if (box["messages"].Size() < static_cast<rapidjson::SizeType>(num(box, "size")))
    std::cout << " (the first " << box["messages"].Size() << " below)";
  std::cout << "\n";
  for (const auto& t : box["by_type"].GetArray())
    std::cout << "    " << padded(str(t, "type"), 30) << padded(str(t, "count"), 8, true) << "\n";
  size_t i = 0;
  for (const auto& m : box["messages"].GetArray()) {
    std::cout << padded(std::to_string(++i), 5, true) << "  " << padded(str(m, "type"), 20) << " from "
              << padded(str(m, "sender"), 18) << (str(m, "priority") == "high" ? " [high] " : " ") << str(m, "text")
              << "\n";
  }
  return 0;
}

size_t terminal_rows() {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_row > 0)
    return size.ws_row;
  return 24;
}

int run_top(const inspect_options& opts) {
  bool tty = ::isatty(STDOUT_FILENO) != 0;
  for (long round = 0; opts.iterations == 0 || round < opts.iterations; ++round) {
    if (round > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds{opts.interval_ms});
    auto doc = fetch_json(opts, "/debug/actors");
    if (!doc)
      return 1;
    std::vector<const rapidjson::Value*> actors;
    int64_t queued = 0;
    for (const auto& a : (*doc)["actors"].GetArray()) {
      actors.push_back(&a);
      queued += std::max<int64_t>(0, num(a, "mailbox_size"));
    }
    std::stable_sort(actors.begin(), actors.end(), [](const auto* x, const auto* y) {
      auto mx = num(*x, "mailbox_size");
      auto my = num(*y, "mailbox_size");
      return mx != my ? mx > my : num(*x, "busy_ms") > num(*y, "busy_ms");
    });
    if (opts.json) {
      rapidjson::Document out;
      out.SetArray();
      for (const auto* a : actors)
        out.PushBack(rapidjson::Value{*a, out.GetAllocator()}, out.GetAllocator());
      std::cout << json_text(out) << std::endl;
      continue;
    }
    std::ostringstream screen;
    if (tty)
      screen << "\x1b[H\x1b[2J";
    screen << "troupe top  " << opts.url << "  " << str(*doc, "collected_at") << "  " << actors.size() << " actors, "
           << queued << " messages queued\n\n"
           << padded("ACTOR", 34) << padded("TYPE", 18) << padded("MAILBOX", 9, true) << padded("BUSY_MS", 9, true)
           << padded("PROCESSED", 11, true) << padded("RESTARTS", 9, true) << "  STATE\n";
    auto rows = terminal_rows();
    size_t shown = 0;
    for (const auto* a : actors) {
      if (tty && shown + 5 >= rows)
        break;
      auto type = str(*a, "type");
      screen << padded(str(*a, "name"), 34) << padded(type.empty() ? str(*a, "kind") : type, 18)
             << padded(str(*a, "mailbox_size"), 9, true) << padded(str(*a, "busy_ms"), 9, true)
             << padded(str(*a, "processed"), 11, true) << padded(str(*a, "restarts"), 9, true) << "  "
             << str(*a, "state") << "\n";
      ++shown;
    }
    std::cout << screen.str() << std::flush;
  }
  return 0;
}

std::optional<long> parse_long(const char* text, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
    return std::nullopt;
  return value;
}

int bad_usage(const std::string& message) {
  std::cerr << "troupe inspect: " << message << " (see troupe inspect --help)\n";
  return 2;
}

} // namespace

int run_inspect(int argc, char** argv) {
  inspect_options opts;
  if (const char* token = std::getenv("TROUPE_TOKEN"))
    opts.token = token;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    auto number = [&](long min, long max, long& out) -> bool {
      const char* v = next();
      auto parsed = v ? parse_long(v, min, max) : std::nullopt;
      if (!parsed)
        return false;
      out = *parsed;
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << inspect_usage;
      return 0;
    } else if (arg == "--url") {
      const char* v = next();
      if (!v)
        return bad_usage("--url needs a URL");
      opts.url = v;
      while (!opts.url.empty() && opts.url.back() == '/')
        opts.url.pop_back();
    } else if (arg == "--token") {
      const char* v = next();
      if (!v)
        return bad_usage("--token needs a token");
      opts.token = v;
    } else if (arg == "--json") {
      opts.json = true;
    } else if (arg == "--limit") {
      if (!number(0, 1000, opts.limit))
        return bad_usage("--limit needs an integer from 0 to 1000");
    } else if (arg == "--interval-ms") {
      if (!number(100, 3600000, opts.interval_ms))
        return bad_usage("--interval-ms needs an integer from 100 to 3600000");
    } else if (arg == "--iterations") {
      if (!number(1, 1000000000, opts.iterations))
        return bad_usage("--iterations needs a positive integer");
    } else if (opts.command.empty() && (arg == "actors" || arg == "top" || arg == "mailbox")) {
      opts.command = arg;
      if (arg == "mailbox") {
        const char* v = next();
        if (!v)
          return bad_usage("mailbox needs an actor id or name");
        opts.actor = v;
      }
    } else {
      return bad_usage("unknown argument \"" + arg + "\"");
    }
  }
  if (opts.command.empty())
    return bad_usage("which command: actors, mailbox ID or top?");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int status = opts.command == "actors" ? print_actors(opts)
               : opts.command == "top"  ? run_top(opts)
                                        : print_mailbox(opts);
  curl_global_cleanup();
  return status;
}

} // namespace troupe::app

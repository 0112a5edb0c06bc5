// Debug mode's JSON (actors/debug_json.hpp).

#include "actors/debug_json.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <ctime>

namespace troupe {

namespace {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;
using std::chrono::milliseconds;

int64_t unix_ms_now() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void string_or_null(json_writer& w, const std::string& value) {
  if (value.empty())
    w.Null();
  else
    w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
}

void time_or_null(json_writer& w, int64_t unix_ms) {
  if (unix_ms <= 0)
    w.Null();
  else
    w.String(rfc3339_ms(unix_ms).c_str());
}

void write_actor_fields(json_writer& w, const actor_view& a, int64_t now_ms) {
  w.Key("id");
  w.Uint64(a.id);
  w.Key("name");
  w.String(a.name.c_str());
  w.Key("kind");
  w.String(a.kind.c_str());
  w.Key("type");
  string_or_null(w, a.type);
  w.Key("supervisor");
  string_or_null(w, a.supervisor);
  w.Key("restart");
  w.String(a.restart.c_str());
  w.Key("state");
  w.String(a.state.c_str());
  w.Key("mailbox_size");
  if (a.mailbox_size < 0)
    w.Null();
  else
    w.Int64(a.mailbox_size);
  w.Key("processed");
  if (a.processed < 0)
    w.Null();
  else
    w.Int64(a.processed);
  w.Key("busy_ms");
  w.Int64(a.busy_ms);
  w.Key("restarts");
  w.Uint64(a.restarts);
  w.Key("last_error");
  string_or_null(w, a.last_error);
  w.Key("last_error_at");
  time_or_null(w, a.last_error_unix_ms);
  w.Key("started_at");
  time_or_null(w, a.state == "running" ? a.started_unix_ms : 0);
  w.Key("uptime_ms");
  if (a.state == "running" && a.started_unix_ms > 0)
    w.Int64(std::max<int64_t>(0, now_ms - a.started_unix_ms));
  else
    w.Null();
}

std::string actors_json_body(const std::vector<actor_view>& actors, const std::string& node) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  auto now = unix_ms_now();
  w.StartObject();
  w.Key("node");
  string_or_null(w, node);
  w.Key("collected_at");
  w.String(rfc3339_ms(now).c_str());
  w.Key("actors");
  w.StartArray();
  for (const auto& a : actors) {
    w.StartObject();
    write_actor_fields(w, a, now);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

std::string actor_json(const actor_view& a, const caf::expected<mailbox_view>& mailbox,
                       const std::unordered_map<uint64_t, std::string>& names, milliseconds peek_timeout,
                       const std::string& node) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
  w.Key("node");
  string_or_null(w, node);
  write_actor_fields(w, a, unix_ms_now());
  w.Key("mailbox");
  if (mailbox) {
    w.StartObject();
    w.Key("size");
    w.Uint64(mailbox->size);
    w.Key("messages");
    w.StartArray();
    for (const auto& m : mailbox->first) {
      w.StartObject();
      w.Key("type");
      w.String(m.type.c_str());
      w.Key("text");
      w.String(m.text.c_str(), static_cast<rapidjson::SizeType>(m.text.size()));
      w.Key("sender");
      w.String(sender_name(names, m.sender_id).c_str());
      w.Key("priority");
      w.String(m.urgent ? "high" : "normal");
      w.Key("response");
      w.Bool(m.response);
      w.Key("waited_ms");
      write_ms_or_null(w, m.waited_us);
      w.EndObject();
    }
    w.EndArray();
    w.Key("by_type");
    w.StartArray();
    for (const auto& [type, count] : mailbox->by_type) {
      w.StartObject();
      w.Key("type");
      w.String(type.c_str());
      w.Key("count");
      w.Uint64(count);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  } else {
    w.Null();
    w.Key("mailbox_error");
    std::string why;
    if (!a.handle)
      why = "The actor is not running.";
    else if (mailbox.error() == caf::sec::request_timeout)
      why = "The actor did not answer within " + std::to_string(peek_timeout.count()) + " ms: it is busy in one handler"
            + (a.busy_ms > 0 ? " (for " + std::to_string(a.busy_ms) + " ms so far)" : std::string{})
            + ". Its mailbox_size comes from its probe; try again later.";
    else
      why = "The actor could not be asked for its mailbox.";
    w.String(why.c_str());
  }
  w.EndObject();
  return buffer.GetString();
}

} // namespace

/// "2026-01-02T03:04:05.678Z"
std::string rfc3339_ms(int64_t unix_ms) {
  std::time_t seconds = unix_ms / 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[40];
  auto n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof(text) - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return text;
}

/// Microseconds as milliseconds with three decimals, or null when unknown (< 0).
void write_ms_or_null(rapidjson::Writer<rapidjson::StringBuffer>& w, int64_t micros) {
  if (micros < 0)
    w.Null();
  else
    w.Double(static_cast<double>(micros) / 1000.0);
}

/// The names of the actors in the tree by id, to name a message's sender.
std::unordered_map<uint64_t, std::string> names_by_id(const std::vector<actor_view>& actors) {
  std::unordered_map<uint64_t, std::string> result;
  for (const auto& a : actors)
    if (a.id != 0)
      result.emplace(a.id, a.name);
  return result;
}

std::string sender_name(const std::unordered_map<uint64_t, std::string>& names, uint64_t id) {
  if (id == 0)
    return "anonymous";
  auto i = names.find(id);
  return i != names.end() ? i->second : "actor #" + std::to_string(id);
}

const actor_view* find_actor(const std::vector<actor_view>& actors, const std::string& key) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
  bool numeric = ec == std::errc{} && end == key.data() + key.size();
  for (const auto& a : actors)
    if ((numeric && a.id == id && id != 0) || a.name == key)
      return &a;
  return nullptr;
}

std::string actors_json(const std::vector<actor_view>& actors, const std::string& node) {
  return actors_json_body(actors, node);
}

void debug_tree(caf::event_based_actor* self, const debug_sources& sources,
                std::function<void(caf::expected<std::vector<actor_view>>)> then) {
  auto root = sources.names->get(sources.root);
  if (!root) {
    then(make_error(service_error::unavailable, "The root supervisor is not running."));
    return;
  }
  collect_actor_tree(self, *root, sources.root, sources.probes, sources.tree_timeout,
                     [then](std::vector<actor_view> actors) { then(std::move(actors)); });
}

void debug_tree_json(caf::event_based_actor* self, const debug_sources& sources,
                     std::function<void(caf::expected<std::string>)> then) {
  debug_tree(self, sources, [then, node = sources.node](caf::expected<std::vector<actor_view>> actors) {
    if (!actors)
      then(std::move(actors.error()));
    else
      then(actors_json_body(*actors, node));
  });
}

void debug_actor_json(caf::event_based_actor* self, const debug_sources& sources, const std::string& key,
                      size_t limit, std::function<void(caf::expected<std::string>)> then) {
  auto timeout = sources.peek_timeout;
  auto node = sources.node;
  debug_tree(self, sources, [self, key, limit, timeout, node, then](caf::expected<std::vector<actor_view>> actors) {
    if (!actors) {
      then(std::move(actors.error()));
      return;
    }
    const auto* found = find_actor(*actors, key);
    if (found == nullptr) {
      then(make_error(service_error::not_found, "No actor with id or name \"" + key + "\" is in the tree."));
      return;
    }
    auto actor = *found;
    auto names = names_by_id(*actors);
    auto answer = [actor, names, timeout, node, then](caf::expected<mailbox_view> mailbox) {
      then(actor_json(actor, mailbox, names, timeout, node));
    };
    if (!actor.handle) {
      answer(make_error(service_error::unavailable, "not running"));
      return;
    }
    peek_mailbox(self, actor.handle, limit, timeout, answer);
  });
}

} // namespace troupe

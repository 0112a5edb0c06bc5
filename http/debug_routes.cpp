#include "http/debug_routes.hpp"

#include "http/error_mapping.hpp"
#include "http/hashing.hpp"

#include "actors/introspection.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <ctime>
#include <unordered_map>

namespace troupe::http {

namespace {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;
using std::chrono::milliseconds;

constexpr size_t default_peek_limit = 50;
constexpr size_t max_peek_limit = 1000;
constexpr int64_t max_trace_seconds = 60;
constexpr milliseconds trace_tick{250};

int64_t unix_ms_now() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

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

/// Microseconds as milliseconds with three decimals, or null when unknown (< 0).
void ms_or_null(json_writer& w, int64_t micros) {
  if (micros < 0)
    w.Null();
  else
    w.Double(static_cast<double>(micros) / 1000.0);
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

std::string actors_json(const std::vector<actor_view>& actors) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  auto now = unix_ms_now();
  w.StartObject();
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

std::string actor_json(const actor_view& a, const caf::expected<mailbox_view>& mailbox,
                       const std::unordered_map<uint64_t, std::string>& names, milliseconds peek_timeout) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
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
      ms_or_null(w, m.waited_us);
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

/// Parses an integer query parameter in [min, max]; `fallback` when absent. nullopt when malformed.
std::optional<int64_t> int_param(const request& req, std::string_view name, int64_t fallback, int64_t min,
                                 int64_t max) {
  auto text = req.query_param(name);
  if (!text)
    return fallback;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc{} || end != text->data() + text->size() || value < min || value > max)
    return std::nullopt;
  return value;
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

struct debug_context {
  actor_bridge& bridge;
  debug_route_options options;
};

/// Collects the tree inside a bridge worker, then calls `then` there.
void with_tree(debug_context& ctx, const std::shared_ptr<responder>& r,
               std::function<void(caf::event_based_actor*, std::vector<actor_view>)> then) {
  auto root = ctx.options.names->get(ctx.options.root);
  if (!root) {
    r->fail(make_error(service_error::unavailable, "The root supervisor is not running."));
    return;
  }
  ctx.bridge.run(r, [&ctx, root = *root, then = std::move(then)](caf::event_based_actor* self) {
    collect_actor_tree(self, root, ctx.options.root, ctx.options.probes, ctx.options.tree_timeout,
                       [self, then](std::vector<actor_view> actors) { then(self, std::move(actors)); });
  });
}

void get_actors(debug_context& ctx, const std::shared_ptr<responder>& r) {
  with_tree(ctx, r, [r](caf::event_based_actor*, std::vector<actor_view> actors) {
    r->send(json_response(200, actors_json(actors)).header("Cache-Control", "no-store"));
  });
}

void get_actor(debug_context& ctx, const std::shared_ptr<responder>& r) {
  auto limit = int_param(r->req(), "limit", default_peek_limit, 0, max_peek_limit);
  if (!limit) {
    r->send(error_response(service_error::invalid_input,
                           "limit must be an integer from 0 to " + std::to_string(max_peek_limit) + ".", r->req().id,
                           "limit"));
    return;
  }
  auto key = r->req().param("id").value_or("");
  auto timeout = ctx.options.peek_timeout;
  with_tree(ctx, r, [r, key, limit, timeout](caf::event_based_actor* self, std::vector<actor_view> actors) {
    const auto* found = find_actor(actors, key);
    if (found == nullptr) {
      r->fail(make_error(service_error::not_found, "No actor with id or name \"" + key + "\" is in the tree."));
      return;
    }
    auto actor = *found;
    auto names = names_by_id(actors);
    auto answer = [r, actor, names, timeout](caf::expected<mailbox_view> mailbox) {
      r->send(json_response(200, actor_json(actor, mailbox, names, timeout)).header("Cache-Control", "no-store"));
    };
    if (!actor.handle) {
      answer(make_error(service_error::unavailable, "not running"));
      return;
    }
    peek_mailbox(self, actor.handle, static_cast<size_t>(*limit), timeout, answer);
  });
}

// ---- trace ------------------------------------------------------------------------------------------------------

/// One running trace: its sink, its stream and when it ends. Ticks run in the bridge worker that started it.
struct trace_session {
  trace_sink_ptr sink;
  std::shared_ptr<response_stream> stream;
  std::unordered_map<uint64_t, std::string> names;
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::time_point next_stats;
  caf::actor target;
};

std::string sse(const char* event, const std::string& data) {
  return std::string{"event: "} + event + "\ndata: " + data + "\n\n";
}

std::string trace_event_json(const trace_event& e, const std::unordered_map<uint64_t, std::string>& names) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
  w.Key("at");
  w.String(rfc3339_ms(e.at_unix_us / 1000).c_str());
  w.Key("type");
  w.String(e.type.c_str());
  w.Key("sender");
  w.String(sender_name(names, e.sender_id).c_str());
  w.Key("waited_ms");
  ms_or_null(w, e.waited_us);
  w.Key("processing_ms");
  ms_or_null(w, e.processing_us);
  w.EndObject();
  return buffer.GetString();
}

std::string trace_stats_json(const trace_sink& sink) {
  return R"({"seen":)" + std::to_string(sink.seen()) + R"(,"dropped":)" + std::to_string(sink.dropped()) + "}";
}

void end_trace(const std::shared_ptr<trace_session>& t, const std::string& reason) {
  t->sink->close();
  auto stats = trace_stats_json(*t->sink);
  t->stream->write(sse("end", R"({"reason":")" + reason + R"(",)" + stats.substr(1)));
  t->stream->end();
}

/// Writes what the sink gathered; schedules the next tick or ends the trace.
void trace_tick_once(caf::event_based_actor* self, const std::shared_ptr<trace_session>& t) {
  bool actor_gone = t->sink->closed(); // only the traced actor closes it before we do: it terminated
  std::string chunk;
  for (const auto& e : t->sink->drain())
    chunk += sse("message", trace_event_json(e, t->names));
  auto now = std::chrono::steady_clock::now();
  if (now >= t->next_stats) {
    chunk += sse("stats", trace_stats_json(*t->sink));
    t->next_stats = now + std::chrono::seconds{1};
  }
  if (!chunk.empty() && !t->stream->write(chunk)) {
    t->sink->close(); // the client went away
    t->stream->end();
    return;
  }
  if (actor_gone) {
    end_trace(t, "the actor stopped");
    return;
  }
  if (now >= t->deadline) {
    end_trace(t, "time is up");
    return;
  }
  self->delayed_send(self, trace_tick, bridge_job{[t](caf::event_based_actor* s) { trace_tick_once(s, t); }});
}

void get_trace(debug_context& ctx, const std::shared_ptr<responder>& r) {
  auto seconds = int_param(r->req(), "seconds", 10, 1, max_trace_seconds);
  if (!seconds) {
    r->send(
      error_response(service_error::invalid_input, "seconds must be an integer from 1 to 60.", r->req().id, "seconds"));
    return;
  }
  auto rate = int_param(r->req(), "rate", 100, 1, 1000);
  if (!rate) {
    r->send(error_response(service_error::invalid_input, "rate must be an integer from 1 to 1000 (events per second).",
                           r->req().id, "rate"));
    return;
  }
  auto key = r->req().param("id").value_or("");
  auto timeout = ctx.options.peek_timeout;
  with_tree(ctx, r, [r, key, seconds, rate, timeout](caf::event_based_actor* self, std::vector<actor_view> actors) {
    const auto* found = find_actor(actors, key);
    if (found == nullptr || !found->handle) {
      r->fail(make_error(service_error::not_found, "No running actor with id or name \"" + key + "\" is in the tree."));
      return;
    }
    auto t = std::make_shared<trace_session>();
    t->sink = std::make_shared<trace_sink>(static_cast<size_t>(*rate), static_cast<size_t>(*rate) * 2);
    t->names = names_by_id(actors);
    t->target = found->handle;
    auto attach_seconds = *seconds;
    auto actor_name = found->name;
    self->request<caf::message_priority::high>(t->target, caf::duration{timeout}, debug_trace_atom::value, t->sink)
      .then(
        [self, r, t, attach_seconds, actor_name](bool attached) {
          if (!attached) {
            r->fail(make_error(service_error::unavailable, "This actor cannot be traced (debug mode has no probe)."));
            return;
          }
          response head{200, "", "text/event-stream", {}};
          head.header("Cache-Control", "no-store");
          t->stream = r->stream(std::move(head));
          if (!t->stream) {
            t->sink->close();
            return;
          }
          auto now = std::chrono::steady_clock::now();
          t->deadline = now + std::chrono::seconds{attach_seconds};
          t->next_stats = now + std::chrono::seconds{1};
          t->stream->write(
            sse("start", R"({"actor":")" + actor_name + R"(","seconds":)" + std::to_string(attach_seconds) + "}"));
          self->delayed_send(self, trace_tick, bridge_job{[t](caf::event_based_actor* s) { trace_tick_once(s, t); }});
        },
        [r, t](caf::error& err) {
          t->sink->close();
          if (err == caf::sec::request_timeout)
            r->fail(make_error(service_error::timeout,
                               "The actor is busy in one handler and did not accept the trace; try again later."));
          else
            r->fail(err);
        });
  });
}

} // namespace

void add_debug_routes(router& routes, actor_bridge& bridge, debug_route_options options, route_guard guard) {
  auto ctx = std::make_shared<debug_context>(debug_context{bridge, std::move(options)});
  auto guarded = [guard, ctx](void (*handler)(debug_context&, const std::shared_ptr<responder>&)) {
    return [guard, ctx, handler](const std::shared_ptr<responder>& r) {
      guard(r, [ctx, handler](const std::shared_ptr<responder>& inner) { handler(*ctx, inner); });
    };
  };
  routes.add("GET", "/debug/actors", guarded(get_actors), without_admission_control());
  routes.add("GET", "/debug/actors/{id}", guarded(get_actor), without_admission_control());
  routes.add("GET", "/debug/actors/{id}/trace", guarded(get_trace), without_admission_control());
  // The page holds no data (see the header): served without a credential, with its own CSP.
  routes.add("GET", "/debug", [](const std::shared_ptr<responder>& r) {
    auto nonce = random_url_token(18);
    response res{200, debug_page_html(nonce), "text/html; charset=utf-8", {}};
    res.header("Content-Security-Policy", "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'nonce-"
                                            + nonce
                                            + "'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                              "frame-ancestors 'none'");
    res.header("Cache-Control", "no-store");
    r->send(std::move(res));
  });
}

} // namespace troupe::http

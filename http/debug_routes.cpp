#include "http/debug_routes.hpp"

#include "http/error_mapping.hpp"
#include "config/hashing.hpp"

#include "actors/cluster.hpp"
#include "actors/debug_json.hpp"
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


struct debug_context {
  actor_bridge& bridge;
  debug_route_options options;

  /// What this node's own answers read (its node id is read per request: it is resolved once HTTP listens).
  debug_sources sources() const {
    debug_sources s{options.names, options.probes, options.root, options.tree_timeout, options.peek_timeout, ""};
    if (options.cluster && options.cluster->enabled())
      s.node = options.cluster->node_id();
    return s;
  }
};

/// Collects the tree inside a bridge worker, then calls `then` there.
void with_tree(debug_context& ctx, const std::shared_ptr<responder>& r,
               std::function<void(caf::event_based_actor*, std::vector<actor_view>)> then) {
  ctx.bridge.run(r, [&ctx, r, then = std::move(then)](caf::event_based_actor* self) {
    debug_tree(self, ctx.sources(), [self, r, then](caf::expected<std::vector<actor_view>> actors) {
      if (!actors)
        r->fail(actors.error());
      else
        then(self, std::move(*actors));
    });
  });
}

/// Where ?node= sends a debug request: nullopt for this node (no parameter, or this node's id), else the member's
/// endpoint; answers the request itself (404, 503) and returns an invalid handle when there is none.
std::optional<caf::actor> remote_node(debug_context& ctx, const std::shared_ptr<responder>& r) {
  auto node = r->req().query_param("node");
  if (!node || node->empty())
    return std::nullopt;
  std::string id{*node};
  auto* cluster = ctx.options.cluster.get();
  if (cluster && cluster->enabled() && id == cluster->node_id())
    return std::nullopt;
  auto view = cluster && cluster->enabled() ? cluster->view() : nullptr;
  const auto* member = view ? view->find(id) : nullptr;
  if (member == nullptr) {
    r->send(error_response(service_error::not_found, "No cluster member is called \"" + id + "\".", r->req().id,
                           "node"));
    return caf::actor{};
  }
  if (!member->endpoint) {
    r->send(error_response(service_error::unavailable, "This node is not connected to " + id + " (it is " +
                                                         member->state + "); try again shortly.",
                           r->req().id));
    return caf::actor{};
  }
  return member->endpoint;
}

/// Asks another node's endpoint for a debug answer (its JSON) from a bridge worker.
template <class... Ts>
void ask_node(debug_context& ctx, const std::shared_ptr<responder>& r, caf::actor endpoint, Ts... msg) {
  auto timeout = caf::duration{ctx.options.tree_timeout * 3 + ctx.options.peek_timeout};
  ctx.bridge.run(r, [r, endpoint, timeout, msg...](caf::event_based_actor* self) {
    self->request(endpoint, timeout, msg...)
      .then([r](std::string& json) { r->send(json_response(200, std::move(json)).header("Cache-Control", "no-store")); },
            [r](caf::error& err) { r->fail(err); });
  });
}

void get_actors(debug_context& ctx, const std::shared_ptr<responder>& r) {
  if (auto remote = remote_node(ctx, r)) {
    if (*remote)
      ask_node(ctx, r, *remote, cluster_debug_tree_atom::value);
    return;
  }
  ctx.bridge.run(r, [&ctx, r](caf::event_based_actor* self) {
    debug_tree_json(self, ctx.sources(), [r](caf::expected<std::string> json) {
      if (!json)
        r->fail(json.error());
      else
        r->send(json_response(200, std::move(*json)).header("Cache-Control", "no-store"));
    });
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
  if (auto remote = remote_node(ctx, r)) {
    if (*remote)
      ask_node(ctx, r, *remote, cluster_debug_actor_atom::value, key, static_cast<uint64_t>(*limit));
    return;
  }
  ctx.bridge.run(r, [&ctx, r, key, limit](caf::event_based_actor* self) {
    debug_actor_json(self, ctx.sources(), key, static_cast<size_t>(*limit), [r](caf::expected<std::string> json) {
      if (!json)
        r->fail(json.error());
      else
        r->send(json_response(200, std::move(*json)).header("Cache-Control", "no-store"));
    });
  });
}

/// {"node": this node's id (null on a single node), "nodes": [{node_id, state, connected, http_url}]}: the members
/// whose trees ?node= opens.
void get_nodes(debug_context& ctx, const std::shared_ptr<responder>& r) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
  w.Key("node");
  auto* cluster = ctx.options.cluster.get();
  auto view = cluster && cluster->enabled() ? cluster->view() : nullptr;
  if (cluster && cluster->enabled())
    w.String(cluster->node_id().c_str());
  else
    w.Null();
  w.Key("nodes");
  w.StartArray();
  if (view)
    for (const auto& m : view->members) {
      w.StartObject();
      w.Key("node_id");
      w.String(m.node_id.c_str());
      w.Key("state");
      w.String(m.state.c_str());
      w.Key("connected");
      w.Bool(m.connected);
      w.Key("http_url");
      w.String(m.http_url.c_str());
      w.EndObject();
    }
  w.EndArray();
  w.EndObject();
  r->send(json_response(200, {buffer.GetString(), buffer.GetSize()}).header("Cache-Control", "no-store"));
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
  write_ms_or_null(w, e.waited_us);
  w.Key("processing_ms");
  write_ms_or_null(w, e.processing_us);
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
  if (auto remote = remote_node(ctx, r)) {
    if (*remote)
      r->send(error_response(service_error::invalid_input,
                             "A trace streams from the traced actor's own node: ask that node directly (its http_url "
                             "is in GET /debug/nodes).",
                             r->req().id, "node"));
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
  routes.add("GET", "/debug/nodes", guarded(get_nodes), without_admission_control());
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

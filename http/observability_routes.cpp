#include "http/observability_routes.hpp"

#include "http/compression.hpp"
#include "http/error_mapping.hpp"
#include "config/hashing.hpp"
#include "http/json_out.hpp"

#include "actors/messages.hpp"
#include "actors/ops_history.hpp"
#include "config/build_info.hpp"
#include "config/loader.hpp"
#include "config/service_error.hpp"
#include "ops/history.hpp"

#include <caf/all.hpp>

#include <charconv>
#include <unistd.h>

namespace troupe::http {

namespace {

using std::chrono::milliseconds;

const caf::duration ask_timeout{milliseconds{5000}};

response no_store(response res) {
  res.header("Cache-Control", "no-store");
  return res;
}

int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

/// ?name=<window> as milliseconds: the default when absent, nullopt (after a 400) when malformed.
std::optional<int64_t> window_param(const std::shared_ptr<responder>& r, const char* name, int64_t fallback,
                                    int64_t min_ms, int64_t max_ms) {
  auto text = r->req().query_param(name);
  if (!text)
    return fallback;
  auto parsed = ops::parse_window(*text, max_ms);
  if (!parsed || *parsed < min_ms) {
    r->fail(make_error(service_error::invalid_input,
                       std::string(name) + " must be a duration such as 15m, 1h or 24h, from "
                         + std::to_string(min_ms / 1000) + " s to " + std::to_string(max_ms / 1000) + " s."));
    return std::nullopt;
  }
  return parsed;
}

/// ?points=N within [1, 2000]; the default when absent, nullopt (after a 400) when malformed.
std::optional<int64_t> points_param(const std::shared_ptr<responder>& r) {
  auto text = r->req().query_param("points");
  if (!text)
    return 360;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc{} || end != text->data() + text->size() || n < 1 || n > 2000) {
    r->fail(make_error(service_error::invalid_input, "points must be an integer from 1 to 2000."));
    return std::nullopt;
  }
  return n;
}

const char* breaker_state_name(int state) {
  return state == 1 ? "open" : state == 2 ? "half_open" : "closed";
}

void write_breakers(json_writer& w, const observability_route_options& o) {
  w.Key("breakers");
  w.StartArray();
  for (size_t i = 0; i < o.breakers.size() && i < o.settings->upstreams.size(); ++i) {
    const auto& g = *o.breakers[i];
    w.StartObject();
    write_string(w, "upstream", o.settings->upstreams[i].name);
    write_string(w, "state", breaker_state_name(g.state.load()));
    w.Key("opened");
    w.Uint64(g.opened.load());
    w.Key("rejected");
    w.Uint64(g.rejected.load());
    w.Key("failures");
    w.Uint64(g.failures.load());
    w.EndObject();
  }
  w.EndArray();
}

void write_tallies(json_writer& w, const char* key, const char* subject_key, const std::vector<security_tally>& list,
                   const char* only_type = nullptr) {
  w.Key(key);
  w.StartArray();
  for (const auto& t : list) {
    if (only_type && t.type != only_type)
      continue;
    w.StartObject();
    write_string(w, subject_key, t.subject);
    if (!t.type.empty() && !only_type)
      write_string(w, "type", t.type);
    w.Key("count");
    w.Int64(t.count);
    w.Key("last_at_ms");
    w.Int64(t.last_at_ms);
    w.EndObject();
  }
  w.EndArray();
}

std::string security_json(const security_report& report, const std::vector<throttled_entry>& throttled,
                          bool throttle_known, int64_t window_ms, const observability_route_options& o) {
  return json_of([&](json_writer& w) {
    w.StartObject();
    w.Key("window_ms");
    w.Int64(window_ms);
    w.Key("since_ms");
    w.Int64(report.since_ms);
    w.Key("events");
    w.StartObject();
    write_tallies(w, "by_type", "type", report.by_type);
    write_tallies(w, "by_address", "address", report.by_address);
    write_tallies(w, "by_account", "user_id", report.by_account);
    w.EndObject();
    w.Key("throttled"); // null: the login throttle did not answer (restarting)
    if (!throttle_known) {
      w.Null();
    } else {
      w.StartArray();
      for (const auto& t : throttled) {
        w.StartObject();
        write_string(w, "kind", t.kind);
        write_string(w, "address", t.address);
        if (!t.email.empty())
          write_string(w, "email", t.email);
        w.Key("failures");
        w.Int64(t.failures);
        w.Key("wait_seconds");
        w.Int64(t.wait_seconds);
        w.EndObject();
      }
      w.EndArray();
    }
    w.Key("rate_limited");
    w.StartObject();
    write_tallies(w, "addresses", "address", report.by_address, "rate_limited");
    write_tallies(w, "accounts", "user_id", report.by_account, "rate_limited");
    w.EndObject();
    w.Key("revoked_keys");
    w.StartObject();
    w.Key("in_window");
    w.Int64(report.revoked_keys_in_window);
    w.Key("recent");
    w.StartArray();
    for (const auto& k : report.revoked_keys) {
      w.StartObject();
      write_string(w, "id", k.id);
      write_string(w, "user_id", k.user_id);
      write_string(w, "name", k.name);
      w.Key("revoked_at_ms");
      w.Int64(k.revoked_at_ms);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.Key("revoked_tokens_active");
    w.Int64(report.revoked_tokens_active);
    write_breakers(w, o);
    w.EndObject();
  });
}

std::string status_json(const observability_route_options& o, const std::vector<health_check>& checks,
                        bool checks_known) {
  auto now = std::chrono::system_clock::now();
  auto view = o.cluster ? o.cluster->view() : nullptr;
  return json_of([&](json_writer& w) {
    w.StartObject();
    write_string(w, "service", "troupe");
    write_string(w, "version", build_info::version);
    w.Key("build");
    w.StartObject();
    write_string(w, "commit", build_info::commit);
    write_string(w, "type", build_info::build_type);
    write_string(w, "compiler", build_info::compiler);
    write_string(w, "caf", build_info::caf_version());
    w.EndObject();
    w.Key("pid");
    w.Int64(static_cast<int64_t>(::getpid()));
    w.Key("started_at_ms");
    w.Int64(unix_ms(o.started));
    w.Key("uptime_s");
    w.Int64(std::chrono::duration_cast<std::chrono::seconds>(now - o.started).count());
    w.Key("node");
    w.StartObject();
    write_string(w, "node_id", o.cluster ? o.cluster->node_id() : "");
    w.Key("cluster_enabled");
    w.Bool(o.cluster && o.cluster->enabled());
    w.Key("epoch");
    w.Int64(view ? view->epoch : 0);
    w.Key("members");
    w.StartArray();
    if (view)
      for (const auto& m : view->members) {
        w.StartObject();
        write_string(w, "node_id", m.node_id);
        write_string(w, "state", m.state);
        write_string(w, "http_url", m.http_url);
        w.Key("connected");
        w.Bool(m.connected);
        w.Key("sessions");
        w.Int64(m.sessions);
        w.EndObject();
      }
    w.EndArray();
    w.EndObject();
    w.Key("subsystems"); // null: the readiness checks did not answer in time
    if (!checks_known) {
      w.Null();
    } else {
      w.StartArray();
      for (const auto& c : checks) {
        w.StartObject();
        write_string(w, "name", c.name);
        write_string(w, "status", c.status);
        w.Key("latency_ms");
        w.Double(c.latency_ms);
        write_string(w, "detail", c.detail);
        w.EndObject();
      }
      w.EndArray();
    }
    w.Key("configuration");
    auto config = config::render_effective_json(*o.settings); // secrets as "***" (or "" when unset)
    w.RawValue(config.data(), config.size(), rapidjson::kObjectType);
    w.EndObject();
  });
}

} // namespace

void add_observability_routes(router& routes, authenticator& auth, observability_route_options options) {
  auto o = std::make_shared<const observability_route_options>(std::move(options));
  routes.add("GET", "/api/performance", [&auth, o](const std::shared_ptr<responder>& r) {
    auth.require_admin(r, [&auth, o, r](caf::event_based_actor* self, const identity&) {
      auto window = window_param(r, "window", 15 * 60 * 1000, 1000, o->settings->ops.history_ms);
      if (!window)
        return;
      auto points = points_param(r);
      if (!points)
        return;
      auto sampler = auth.bridge().find(o->sampler);
      if (!sampler) {
        r->fail(make_error(service_error::unavailable, "The sampler is restarting; retry shortly."));
        return;
      }
      self->request(*sampler, ask_timeout, perf_atom::value, *window, *points)
        .then([r](std::string& body) { r->send(no_store(json_response(200, std::move(body)))); },
              [r](caf::error& err) { r->fail(err); });
    });
  });
  routes.add("GET", "/api/alerts", [&auth, o](const std::shared_ptr<responder>& r) {
    auth.require_admin(r, [&auth, o, r](caf::event_based_actor* self, const identity&) {
      auto alerts = auth.bridge().find(o->alerts);
      if (!alerts) {
        r->fail(make_error(service_error::unavailable, "The alerts actor is restarting; retry shortly."));
        return;
      }
      self->request(*alerts, ask_timeout, alerts_atom::value)
        .then([r](std::string& body) { r->send(no_store(json_response(200, std::move(body)))); },
              [r](caf::error& err) { r->fail(err); });
    });
  });
  routes.add("GET", "/api/status", [&auth, o](const std::shared_ptr<responder>& r) {
    auth.require_admin(r, [&auth, o, r](caf::event_based_actor* self, const identity&) {
      auto health = auth.bridge().find(o->health);
      if (!health) {
        r->send(no_store(json_response(200, status_json(*o, {}, false))));
        return;
      }
      self->request(*health, ask_timeout, check_atom::value)
        .then(
          [o, r](std::vector<health_check>& checks) {
            r->send(no_store(json_response(200, status_json(*o, checks, true))));
          },
          [o, r](caf::error&) { r->send(no_store(json_response(200, status_json(*o, {}, false)))); });
    });
  });
  routes.add("GET", "/api/security/status", [&auth, o](const std::shared_ptr<responder>& r) {
    auth.require_admin(r, [&auth, o, r](caf::event_based_actor* self, const identity&) {
      constexpr int64_t day_ms = 24LL * 3600 * 1000;
      auto window = window_param(r, "window", day_ms, 60 * 1000, 30 * day_ms);
      if (!window)
        return;
      auto db = auth.bridge().find(o->db_query);
      if (!db) {
        r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
        return;
      }
      auto since = unix_ms(std::chrono::system_clock::now()) - *window;
      auto window_ms = *window;
      auto throttle = auth.bridge().find(o->throttle); // now: the reply handler holds no reference to auth
      self->request(*db, ask_timeout, security_report_atom::value, since, int32_t{50})
        .then(
          [o, r, self, window_ms, throttle](security_report& report) {
            if (!throttle) {
              r->send(no_store(json_response(200, security_json(report, {}, false, window_ms, *o))));
              return;
            }
            self->request(*throttle, ask_timeout, throttle_list_atom::value, int32_t{50})
              .then(
                [o, r, report, window_ms](std::vector<throttled_entry>& throttled) {
                  r->send(no_store(json_response(200, security_json(report, throttled, true, window_ms, *o))));
                },
                [o, r, report, window_ms](caf::error&) {
                  r->send(no_store(json_response(200, security_json(report, {}, false, window_ms, *o))));
                });
          },
          [r](caf::error& err) { r->fail(err); });
    });
  });
  // The page and its library hold no data (see the header): served without a credential, with their own CSP.
  routes.add("GET", "/dashboard", [](const std::shared_ptr<responder>& r) {
    auto nonce = random_url_token(18);
    response res{200, dashboard_page_html(nonce), "text/html; charset=utf-8", {}};
    res.header("Content-Security-Policy", "default-src 'none'; script-src 'self' 'nonce-" + nonce
                                            + "'; style-src 'nonce-" + nonce
                                            + "'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                                              "form-action 'none'; frame-ancestors 'none'");
    res.header("Cache-Control", "no-store");
    res.header("Referrer-Policy", "no-referrer");
    r->send(std::move(res));
  });
  routes.add("GET", "/dashboard/chart.js", [](const std::shared_ptr<responder>& r) {
    // Compressed once, at the best level, instead of on every request: 200 KB at http.gzip_level cost about 2.5 ms
    // of CPU each time (make bench-ops, part D). A client that does not take gzip gets the bytes as they are.
    static const std::optional<std::string> zipped = gzip_compress(embedded_chart_js(), 9);
    response res{200, {}, "text/javascript; charset=utf-8", {}};
    if (zipped && accepts_gzip(r->req().header_list("Accept-Encoding"))) {
      res.body = *zipped;
      res.header("Content-Encoding", "gzip");
      res.header("Vary", "Accept-Encoding");
    } else {
      res.body = std::string{embedded_chart_js()}; // (the server adds Vary to an answer it could have compressed)
    }
    res.header("Cache-Control", "public, max-age=86400");
    r->send(std::move(res));
  });
}

} // namespace troupe::http

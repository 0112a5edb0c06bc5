#include "http/ops_routes.hpp"

#include "http/error_mapping.hpp"
#include "http/json_body.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>

namespace troupe::http {

response readiness_response(const std::vector<health_check>& checks, bool details) {
  std::string overall = "healthy";
  for (const auto& check : checks) {
    if (check.status == "unhealthy")
      overall = "unhealthy";
    else if (check.status == "degraded" && overall == "healthy")
      overall = "degraded";
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
  w.StartObject();
  w.Key("status");
  w.String(overall.c_str());
  w.Key("checks");
  w.StartObject();
  for (const auto& check : checks) {
    w.Key(check.name.c_str());
    w.StartObject();
    w.Key("status");
    w.String(check.status.c_str());
    if (details) {
      w.Key("latency_ms");
      w.Double(static_cast<double>(static_cast<int64_t>(check.latency_ms * 1000)) / 1000);
      w.Key("detail");
      w.String(check.detail.c_str());
    }
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  auto res = json_response(overall == "unhealthy" ? 503 : 200, buffer.GetString());
  res.header("Cache-Control", "no-store");
  if (res.status == 503)
    res.header("Retry-After", "5");
  return res;
}

void add_ops_routes(router& routes, actor_bridge& bridge, const ops_actor_names& names, route_guard debug_guard,
                    detail_access health_details) {
  routes.add("GET", "/health", [](const std::shared_ptr<responder>& r) {
    r->send(json_response(200, R"({"status":"ok"})").header("Cache-Control", "no-store"));
  }, without_admission_control());

  routes.add("GET", "/api/health", [&bridge, names, health_details](const std::shared_ptr<responder>& r) {
    auto answer = [&bridge, names, r](bool details) {
      bridge.ask_named<std::vector<health_check>>(
        r, names.health, [details](std::vector<health_check>& checks) { return readiness_response(checks, details); },
        check_atom::value);
    };
    if (health_details)
      health_details(r, answer);
    else
      answer(false);
  }, without_admission_control());

  routes.add("GET", "/metrics", [&bridge, names](const std::shared_ptr<responder>& r) {
    bridge.ask_named<std::string>(
      r, names.metrics,
      [](std::string& text) {
        return response{200, std::move(text), "text/plain; version=0.0.4; charset=utf-8", {}};
      },
      metrics_atom::value);
  }, without_admission_control());

  if (!debug_guard)
    return;
  auto guarded = [debug_guard](route_handler handler) {
    return [debug_guard, handler](const std::shared_ptr<responder>& r) { debug_guard(r, handler); };
  };

  routes.add("GET", "/debug/sleep", guarded([&bridge, names](const std::shared_ptr<responder>& r) {
    auto text = r->req().query_param("ms").value_or("");
    int64_t ms = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec != std::errc{} || end != text.data() + text.size() || ms < 0 || ms > 600000) {
      r->send(
        error_response(service_error::invalid_input, "ms must be an integer from 0 to 600000.", r->req().id, "ms"));
      return;
    }
    bridge.ask_named<int64_t>(
      r, names.debug_helper,
      [](int64_t slept) { return json_response(200, R"({"slept_ms":)" + std::to_string(slept) + "}"); },
      delay_atom::value, ms);
  }));

  routes.add("POST", "/debug/echo", guarded([&bridge, names](const std::shared_ptr<responder>& r) {
    auto doc = parse_json_body(r);
    if (!doc)
      return;
    bridge.ask_named<std::string>(
      r, names.debug_helper, [](std::string& text) { return json_response(200, R"({"echo":)" + text + "}"); },
      echo_atom::value, to_json(*doc));
  }));
}

} // namespace troupe::http

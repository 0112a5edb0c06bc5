#include "ops/alerts.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdio>

namespace troupe::ops {

const char* to_string(alert_figure f) {
  switch (f) {
    case alert_figure::cpu: return "cpu";
    case alert_figure::memory: return "memory";
    case alert_figure::cache_hit: return "cache_hit_rate";
    case alert_figure::response_time: return "response_time";
    case alert_figure::db_latency: return "db_latency";
    case alert_figure::error_rate: return "error_rate";
  }
  return "cpu";
}

std::optional<double> figure_of(const ops_sample& s, alert_figure f) {
  auto present = [](double v) -> std::optional<double> {
    if (v < 0 || !std::isfinite(v))
      return std::nullopt;
    return v;
  };
  switch (f) {
    case alert_figure::cpu: return present(s.cpu_machine_pct);
    case alert_figure::memory: return present(s.memory_pct);
    case alert_figure::cache_hit: return s.cache_hit_rate < 0 ? std::nullopt : present(100.0 * s.cache_hit_rate);
    case alert_figure::response_time: return present(s.all.p95_ms);
    case alert_figure::db_latency: return present(s.db_commit_ms);
    case alert_figure::error_rate: return s.all.error_rate < 0 ? std::nullopt : present(100.0 * s.all.error_rate);
  }
  return std::nullopt;
}

std::vector<alert_rule> default_alert_rules(int64_t hold_ms) {
  return {
    {"cpu", alert_figure::cpu, false, 70, 90, hold_ms, "%"},
    {"memory", alert_figure::memory, false, 70, 90, hold_ms, "%"},
    {"cache_hit_rate", alert_figure::cache_hit, true, 80, 70, hold_ms, "%"},
    {"response_time", alert_figure::response_time, false, 100, 500, hold_ms, "ms"},
    {"db_latency", alert_figure::db_latency, false, 500, 2000, hold_ms, "ms"},
    {"error_rate", alert_figure::error_rate, false, 5, 20, hold_ms, "%"},
  };
}

alert_evaluator::alert_evaluator(std::vector<alert_rule> rules) : rules_(std::move(rules)), states_(rules_.size()) {}

namespace {

std::string format_value(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

std::string describe(const alert_rule& rule, const char* severity, double value, double threshold, int64_t for_ms) {
  return rule.name + " at " + format_value(value) + rule.unit + " (" + severity + (rule.below ? " under " : " over ")
         + format_value(threshold) + rule.unit + ") for " + std::to_string(for_ms / 1000) + " s";
}

} // namespace

std::vector<alert_event> alert_evaluator::observe(const ops_sample& s) {
  std::vector<alert_event> events;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const auto& rule = rules_[i];
    auto& st = states_[i];
    auto value = figure_of(s, rule.figure);
    if (!value)
      continue;
    auto past = [&](double threshold) { return rule.below ? *value < threshold : *value > threshold; };
    st.value = *value;
    st.updated = s.at_ms;
    bool past_warn = past(rule.warn);
    bool past_critical = past(rule.critical);
    if (!past_warn) {
      if (st.severity > 0) {
        alert_event e{rule.name,          st.severity == 2 ? "critical" : "warning",
                      "resolved",         *value,
                      rule.warn,          rule.unit,
                      s.at_ms,            st.fired_at,
                      rule.name + " back at " + format_value(*value) + rule.unit};
        events.push_back(std::move(e));
      }
      st = rule_state{};
      continue;
    }
    if (st.warn_since < 0)
      st.warn_since = s.at_ms;
    if (past_critical) {
      if (st.critical_since < 0)
        st.critical_since = s.at_ms;
    } else {
      st.critical_since = -1;
    }
    int wanted = 0;
    if (st.critical_since >= 0 && s.at_ms - st.critical_since >= rule.hold_ms)
      wanted = 2;
    else if (s.at_ms - st.warn_since >= rule.hold_ms)
      wanted = 1;
    // Escalate when held long enough; a critical alert whose figure falls back under critical (but not under warn)
    // stays critical until it resolves: no flapping between severities.
    if (wanted > st.severity) {
      st.severity = wanted;
      st.fired_at = s.at_ms;
      double threshold = wanted == 2 ? rule.critical : rule.warn;
      int64_t since = wanted == 2 ? st.critical_since : st.warn_since;
      const char* severity = wanted == 2 ? "critical" : "warning";
      events.push_back(alert_event{rule.name, severity, "firing", *value, threshold, rule.unit, s.at_ms, since,
                                   describe(rule, severity, *value, threshold, s.at_ms - since)});
    }
  }
  return events;
}

std::vector<active_alert> alert_evaluator::active() const {
  std::vector<active_alert> out;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const auto& st = states_[i];
    if (st.severity == 0)
      continue;
    const auto& rule = rules_[i];
    out.push_back(active_alert{rule.name, st.severity == 2 ? "critical" : "warning", st.value,
                               st.severity == 2 ? rule.critical : rule.warn, rule.unit, st.fired_at, st.updated});
  }
  return out;
}

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

void str(writer& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
}

void num(writer& w, const char* key, double value) {
  w.Key(key);
  if (std::isfinite(value))
    w.Double(std::round(value * 1000.0) / 1000.0);
  else
    w.Null();
}

void write_event(writer& w, const alert_event& e) {
  w.StartObject();
  str(w, "rule", e.rule);
  str(w, "severity", e.severity);
  str(w, "state", e.state);
  num(w, "value", e.value);
  num(w, "threshold", e.threshold);
  str(w, "unit", e.unit);
  w.Key("at_ms");
  w.Int64(e.at_ms);
  w.Key("since_ms");
  w.Int64(e.since_ms);
  str(w, "message", e.message);
  w.EndObject();
}

} // namespace

std::string alert_event_json(const alert_event& e) {
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  write_event(w, e);
  return {buffer.GetString(), buffer.GetSize()};
}

std::string webhook_body(const std::vector<alert_event>& events, const std::string& node_id) {
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  w.StartObject();
  str(w, "source", "troupe");
  str(w, "node", node_id);
  w.Key("alerts");
  w.StartArray();
  for (const auto& e : events)
    write_event(w, e);
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string alerts_json(const std::vector<active_alert>& active, const std::deque<alert_event>& recent,
                        const std::vector<alert_rule>& rules) {
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  w.StartObject();
  w.Key("active");
  w.StartArray();
  for (const auto& a : active) {
    w.StartObject();
    str(w, "rule", a.rule);
    str(w, "severity", a.severity);
    num(w, "value", a.value);
    num(w, "threshold", a.threshold);
    str(w, "unit", a.unit);
    w.Key("since_ms");
    w.Int64(a.since_ms);
    w.Key("updated_ms");
    w.Int64(a.updated_ms);
    w.EndObject();
  }
  w.EndArray();
  w.Key("recent"); // newest first
  w.StartArray();
  for (auto i = recent.rbegin(); i != recent.rend(); ++i)
    write_event(w, *i);
  w.EndArray();
  w.Key("rules");
  w.StartArray();
  for (const auto& r : rules) {
    w.StartObject();
    str(w, "rule", r.name);
    str(w, "figure", to_string(r.figure));
    w.Key("fires_below");
    w.Bool(r.below);
    num(w, "warn", r.warn);
    num(w, "critical", r.critical);
    str(w, "unit", r.unit);
    w.Key("hold_ms");
    w.Int64(r.hold_ms);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

} // namespace troupe::ops

// Threshold alerts (ops/alerts.hpp): a rule fires once its figure has been past a threshold for the hold time,
// escalates to critical, resolves at the first sample back within warn, ignores samples without the figure, and
// fires below for the cache hit rate.

#include "ops/alerts.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

namespace troupe::ops {
namespace {

ops_sample cpu(int64_t at_ms, float pct) {
  ops_sample s;
  s.at_ms = at_ms;
  s.cpu_machine_pct = pct;
  return s;
}

alert_rule cpu_rule(int64_t hold_ms) {
  return {"cpu", alert_figure::cpu, false, 70, 90, hold_ms, "%"};
}

TEST(Alerts, FiresAfterTheHoldEscalatesAndResolves) {
  alert_evaluator alerts({cpu_rule(10000)});
  EXPECT_TRUE(alerts.observe(cpu(0, 75)).empty()) << "past warn, not for long enough";
  EXPECT_TRUE(alerts.observe(cpu(5000, 80)).empty());
  auto fired = alerts.observe(cpu(10000, 85));
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].state, "firing");
  EXPECT_EQ(fired[0].severity, "warning");
  EXPECT_EQ(fired[0].since_ms, 0);
  EXPECT_EQ(fired[0].threshold, 70);
  EXPECT_NE(fired[0].message.find("cpu at 85.0%"), std::string::npos) << fired[0].message;
  ASSERT_EQ(alerts.active().size(), 1u);
  EXPECT_TRUE(alerts.observe(cpu(15000, 95)).empty()) << "critical, not yet for long enough";
  EXPECT_TRUE(alerts.observe(cpu(20000, 80)).empty()) << "under critical again: its clock restarts";
  EXPECT_TRUE(alerts.observe(cpu(25000, 95)).empty());
  auto critical = alerts.observe(cpu(35000, 96));
  ASSERT_EQ(critical.size(), 1u);
  EXPECT_EQ(critical[0].severity, "critical");
  EXPECT_EQ(critical[0].since_ms, 25000);
  EXPECT_TRUE(alerts.observe(cpu(40000, 80)).empty()) << "still past warn: stays critical, no flapping";
  EXPECT_EQ(alerts.active()[0].severity, "critical");
  auto resolved = alerts.observe(cpu(45000, 40));
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].state, "resolved");
  EXPECT_EQ(resolved[0].severity, "critical");
  EXPECT_TRUE(alerts.active().empty());
  EXPECT_TRUE(alerts.observe(cpu(50000, 75)).empty()) << "a new run starts its hold again";
}

TEST(Alerts, ASampleWithoutTheFigureChangesNothing) {
  alert_evaluator alerts({cpu_rule(0)});
  ASSERT_EQ(alerts.observe(cpu(0, 99)).size(), 1u) << "hold 0: at once, and critical";
  EXPECT_EQ(alerts.active()[0].severity, "critical");
  EXPECT_TRUE(alerts.observe(cpu(1000, -1)).empty()) << "no figure: no resolve";
  EXPECT_EQ(alerts.active().size(), 1u);
}

TEST(Alerts, CacheHitRateFiresBelow) {
  alert_evaluator alerts({{"cache_hit_rate", alert_figure::cache_hit, true, 80, 70, 0, "%"}});
  ops_sample s;
  s.cache_hit_rate = 0.9f;
  EXPECT_TRUE(alerts.observe(s).empty());
  s.cache_hit_rate = 0.75f;
  auto warn = alerts.observe(s);
  ASSERT_EQ(warn.size(), 1u);
  EXPECT_EQ(warn[0].severity, "warning");
  s.cache_hit_rate = 0.5f;
  auto critical = alerts.observe(s);
  ASSERT_EQ(critical.size(), 1u);
  EXPECT_EQ(critical[0].severity, "critical");
  s.cache_hit_rate = -1; // too few lookups
  EXPECT_TRUE(alerts.observe(s).empty());
}

TEST(Alerts, DefaultRulesCoverTheProductsThresholds) {
  auto rules = default_alert_rules(60000);
  ASSERT_EQ(rules.size(), 6u);
  EXPECT_EQ(rules[0].name, "cpu");
  EXPECT_EQ(rules[2].name, "cache_hit_rate");
  EXPECT_TRUE(rules[2].below);
  EXPECT_EQ(rules[3].warn, 100);
  EXPECT_EQ(rules[3].critical, 500);
  EXPECT_EQ(rules[4].warn, 500);
}

TEST(Alerts, WebhookBodyAndListing) {
  alert_evaluator alerts({cpu_rule(0)});
  auto events = alerts.observe(cpu(1000, 75));
  auto body = webhook_body(events, "node-a");
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  ASSERT_FALSE(doc.HasParseError()) << body;
  EXPECT_EQ(doc["node"], "node-a");
  EXPECT_EQ(doc["alerts"][0]["rule"], "cpu");
  EXPECT_EQ(doc["alerts"][0]["state"], "firing");
  std::deque<alert_event> recent(events.begin(), events.end());
  auto listing = alerts_json(alerts.active(), recent, alerts.rules());
  rapidjson::Document list;
  list.Parse(listing.c_str());
  ASSERT_FALSE(list.HasParseError()) << listing;
  EXPECT_EQ(list["active"].Size(), 1u);
  EXPECT_EQ(list["recent"].Size(), 1u);
  EXPECT_EQ(list["rules"][0]["warn"].GetDouble(), 70);
}

} // namespace
} // namespace troupe::ops

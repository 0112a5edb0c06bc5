// The reader of the Prometheus text format (ops/prometheus_text.hpp): what metrics_registry::render writes, read back
// sample by sample; malformed lines skipped and counted, never fatal.

#include "ops/prometheus_text.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace troupe::ops {
namespace {

TEST(PrometheusText, ReadsSamplesLabelsAndSkipsComments) {
  auto text = parse_prometheus_text("# HELP troupe_x Things.\n"
                                    "# TYPE troupe_x counter\n"
                                    "troupe_x 3\n"
                                    "troupe_y{route=\"/api/me\",status=\"200\"} 1.5e3\n"
                                    "\n"
                                    "troupe_z_bucket{le=\"+Inf\"} 7 1700000000000\n");
  ASSERT_EQ(text.samples.size(), 3u);
  EXPECT_EQ(text.bad_lines, 0u);
  EXPECT_EQ(text.samples[0].name, "troupe_x");
  EXPECT_TRUE(text.samples[0].labels.empty());
  EXPECT_EQ(text.samples[0].value, 3);
  EXPECT_EQ(text.samples[1].label("route"), "/api/me");
  EXPECT_EQ(text.samples[1].label("status"), "200");
  EXPECT_EQ(text.samples[1].label("absent"), "");
  EXPECT_EQ(text.samples[1].value, 1500);
  EXPECT_EQ(text.samples[2].label("le"), "+Inf");
  EXPECT_EQ(text.samples[2].value, 7);
}

TEST(PrometheusText, UnescapesLabelValues) {
  auto text = parse_prometheus_text("m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"two\\nlines\",} 1\n");
  ASSERT_EQ(text.samples.size(), 1u);
  EXPECT_EQ(text.samples[0].label("a"), "x\"y");
  EXPECT_EQ(text.samples[0].label("b"), "back\\slash");
  EXPECT_EQ(text.samples[0].label("c"), "two\nlines");
}

TEST(PrometheusText, SpecialValues) {
  auto text = parse_prometheus_text("a NaN\nb +Inf\nc -Inf\nd -0.5\n");
  ASSERT_EQ(text.samples.size(), 4u);
  EXPECT_TRUE(std::isnan(text.samples[0].value));
  EXPECT_TRUE(std::isinf(text.samples[1].value) && text.samples[1].value > 0);
  EXPECT_TRUE(std::isinf(text.samples[2].value) && text.samples[2].value < 0);
  EXPECT_EQ(text.samples[3].value, -0.5);
}

TEST(PrometheusText, MalformedLinesAreSkippedAndCounted) {
  auto text = parse_prometheus_text("ok 1\n"
                                    "9bad 1\n"                // name starts with a digit
                                    "m{a=\"unterminated} 1\n" // open quote
                                    "m{a=x} 1\n"              // unquoted value
                                    "m 1 2 3\n"               // extra tokens
                                    "m one\n"                 // not a number
                                    "m{a=\"\\q\"} 1\n"        // unknown escape
                                    "m\n"                     // no value
                                    "also_ok{x=\"1\"} 2\r\n");
  EXPECT_EQ(text.samples.size(), 2u);
  EXPECT_EQ(text.bad_lines, 7u);
  EXPECT_EQ(text.samples[1].name, "also_ok");
}

TEST(PrometheusText, StopsAtTheSampleCap) {
  std::string body;
  for (int i = 0; i < 50; ++i)
    body += "m{i=\"" + std::to_string(i) + "\"} 1\n";
  auto text = parse_prometheus_text(body, 10);
  EXPECT_EQ(text.samples.size(), 10u);
  EXPECT_EQ(text.dropped, 40u);
}

} // namespace
} // namespace troupe::ops

// Fuzz target: the Prometheus text reader and what the history derives from it (ops/prometheus_text.hpp,
// ops/history.hpp), and the window parameter of GET /api/performance (parse_window).
//
// Invariants: every sample read has a valid metric name and a line of its own; a line is either read, skipped as a
// comment or blank, or counted bad; summarizing any text and deriving a sample between two readings of it never
// yields negative rates, shares outside [0, 1] or a NaN; the JSON of the series is valid; a parsed window is within
// its bounds.

#include "tests/fuzz/fuzz_check.hpp"

#include "ops/history.hpp"
#include "ops/prometheus_text.hpp"

#include <rapidjson/document.h>

#include <cmath>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe::ops;
  using troupe::fuzz::check;
  const auto text = troupe::fuzz::text_of(data, size);

  auto parsed = parse_prometheus_text(text, 1000);
  size_t lines = 1;
  for (char c : text)
    lines += c == '\n';
  check(parsed.samples.size() + parsed.bad_lines + parsed.dropped <= lines, "at most one outcome per line");
  for (const auto& s : parsed.samples) {
    check(!s.name.empty(), "a sample has a name");
    check(!(s.name[0] >= '0' && s.name[0] <= '9'), "a name does not start with a digit");
  }

  proc_figures proc;
  auto before = summarize(parse_prometheus_text(""), proc, 0, 0);
  auto after = summarize(parsed, proc, 5000, 5000);
  auto sample = derive_sample(before, after);
  auto share_ok = [](float v) { return v == -1 || (v >= 0 && v <= 1); };
  check(std::isfinite(sample.all.rps) && sample.all.rps >= 0, "the request rate is a non-negative number");
  check(share_ok(sample.all.error_rate), "the error share is in [0, 1] or absent");
  check(share_ok(sample.cache_hit_rate), "the hit rate is in [0, 1] or absent");
  for (const auto& f : sample.families)
    check(!std::isnan(f.p95_ms) && !std::isnan(f.rps), "no NaN in a family");
  history ring(4);
  ring.add(sample);
  auto json = performance_json(ring.window(0, 10), ring.latest(), 5000, 60000, 5000, after.top_mailboxes);
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  check(!doc.HasParseError(), "the series are valid JSON");

  if (auto window = parse_window(text, 7LL * 24 * 3600 * 1000))
    check(*window >= 1000 && *window <= 7LL * 24 * 3600 * 1000, "a window is within its bounds");
  return 0;
}

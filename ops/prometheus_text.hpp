#pragma once
// A reader of the Prometheus text exposition format 0.0.4, as metrics_registry::render writes it: the sampler
// (ops/sampler.hpp) turns each scrape of ops.metrics into numbers this way, so every value /metrics shows (including
// the scrape-time ones its collectors write) reaches the history without a second path into each subsystem.
//
// Accepted per line: `# ...` comments (HELP, TYPE) and blank lines are skipped; a sample is
//   name [ "{" label="value" { "," label="value" } [","] "}" ] value [ timestamp ]
// with label values escaped as \\, \" and \n. A line that does not parse is skipped and counted; parsing never
// throws and stops after `max_samples` samples (the rest are counted as dropped).

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::ops {

struct prom_sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;

  /// The value of label `key`, or "" when the sample has none.
  std::string_view label(std::string_view key) const;
};

struct prom_text {
  std::vector<prom_sample> samples;
  size_t bad_lines = 0; // lines that were not a comment, blank, or a sample
  size_t dropped = 0;   // samples past max_samples
};

prom_text parse_prometheus_text(std::string_view text, size_t max_samples = 100000);

} // namespace troupe::ops

// Fuzz target: W3C Trace Context headers (ops/tracing.hpp): traceparent and tracestate as a request sends them.
//
// Invariants: a parsed traceparent has non-zero ids whose hex is the header's own; a valid tracestate is at most 512
// characters; the context of any header pair has a non-zero trace and span id, keeps a tracestate only with a parsed
// traceparent, and a traceparent formatted from it parses back to the same ids.

#include "tests/fuzz/fuzz_check.hpp"

#include "ops/tracing.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe::tracing;
  using troupe::fuzz::check;
  const auto text = troupe::fuzz::text_of(data, size);

  if (auto p = parse_traceparent(text)) {
    check(!is_zero(p->trace.data(), p->trace.size()) && !is_zero(p->parent.data(), p->parent.size()),
          "parsed ids are not zero");
    check(text.find(hex(p->trace)) != std::string_view::npos && text.find(hex(p->parent)) != std::string_view::npos,
          "the ids are the header's own");
  }
  if (valid_tracestate(text))
    check(text.size() <= 512, "a valid tracestate is at most 512 characters");

  // The input split in two: a traceparent and a tracestate.
  auto cut = text.find('\n');
  std::string first{text.substr(0, cut)};
  std::optional<std::string> second;
  if (cut != std::string_view::npos)
    second = std::string{text.substr(cut + 1)};
  auto c = context_for(first, second, 0.5);
  check(!is_zero(c.trace.data(), c.trace.size()) && !is_zero(c.span.data(), c.span.size()), "ids are never zero");
  check(c.tracestate.empty() || parse_traceparent(first).has_value(), "a tracestate only with a traceparent");
  auto back = parse_traceparent(c.traceparent_for(c.span));
  check(back && back->trace == c.trace && back->parent == c.span && back->sampled == c.sampled,
        "a formatted traceparent parses back");
  return 0;
}

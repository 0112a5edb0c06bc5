#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/) and OpenTelemetry spans as OTLP/HTTP JSON: the pure part
// of tracing (ops/span_queue.hpp holds them, actors/span_export.hpp sends them). No I/O.
//
// A request's context comes from its `traceparent` header when that parses (its trace id, its span as our parent,
// its sampled flag decides), else a new trace starts (sampled with probability tracing.sample_ratio). `tracestate`
// is carried on when it is valid, dropped otherwise. What the server does for the request is one span of kind
// SERVER with a child per stage (auth, rate_limit, cache, upstream, database: responder::mark); an upstream call's
// span id is the parent id in the traceparent sent to the upstream.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::tracing {

using trace_id = std::array<uint8_t, 16>;
using span_id = std::array<uint8_t, 8>;

struct traceparent {
  trace_id trace{};
  span_id parent{};
  bool sampled = false;
};

/// Parses a traceparent header: version 00 exactly "00-<32 hex>-<16 hex>-<2 hex>", a later version (not ff) at least
/// that with more fields after a '-'; lower-case hex only; an all-zero trace or span id is invalid.
std::optional<traceparent> parse_traceparent(std::string_view header);
/// True for a tracestate header that may be passed on: at most 32 comma-separated key=value members, at most 512
/// characters, keys and values of the characters the spec allows.
bool valid_tracestate(std::string_view header);
/// "00-<trace>-<span>-01" (or -00 when not sampled).
std::string format_traceparent(const trace_id& trace, const span_id& span, bool sampled);

std::string hex(const uint8_t* bytes, size_t size);
template <size_t N>
std::string hex(const std::array<uint8_t, N>& id) {
  return hex(id.data(), N);
}
bool is_zero(const uint8_t* bytes, size_t size);

/// Random ids (a per-thread generator seeded from the system's randomness; never all zero).
trace_id new_trace_id();
span_id new_span_id();

/// The trace a request belongs to.
struct context {
  trace_id trace{};
  span_id span{};   // the request's own (SERVER) span
  span_id parent{}; // the caller's span (from its traceparent), zero when the trace started here
  bool sampled = false;
  std::string tracestate; // valid tracestate of the caller, or ""

  bool remote_parent() const { return !is_zero(parent.data(), parent.size()); }
  std::string trace_hex() const { return hex(trace); }
  /// The traceparent to send downstream with `child` as the parent span.
  std::string traceparent_for(const span_id& child) const { return format_traceparent(trace, child, sampled); }
};

/// The context of a request with these headers (nullopt values: absent); `sample_ratio` decides a new trace.
context context_for(const std::optional<std::string>& traceparent_header,
                    const std::optional<std::string>& tracestate_header, double sample_ratio);

enum class span_kind : int { internal = 1, server = 2, client = 3, consumer = 5 };

struct span {
  trace_id trace{};
  span_id id{};
  span_id parent{}; // zero: a root span
  std::string name;
  span_kind kind = span_kind::internal;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  std::vector<std::pair<std::string, std::string>> attributes; // string values
  std::vector<std::pair<std::string, int64_t>> int_attributes;
  bool error = false; // status ERROR (else UNSET)
  std::string tracestate;
};

/// Now on the wall clock, in nanoseconds since the epoch (span times).
int64_t unix_now_ns();

/// A SERVER span started now for work done on behalf of a caller that sent `traceparent` (another node: the
/// cluster_origin of its message), as a child of the caller's span; nullopt when the traceparent does not parse or
/// its trace is not sampled (nothing is recorded then). `tracestate` is kept when valid.
std::optional<span> server_span_for(std::string_view traceparent, std::string_view tracestate, std::string name);

/// An OTLP/HTTP JSON ExportTraceServiceRequest body for `spans` (ids as hex, times as decimal strings, per the OTLP
/// JSON mapping), with the resource attributes service.name, service.version and service.instance.id.
std::string otlp_json(const std::vector<span>& spans, const std::string& service_version, const std::string& instance);

} // namespace troupe::tracing

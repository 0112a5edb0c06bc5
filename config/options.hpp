#pragma once
// Every Troupe option, once. The table in options.cpp gives each option its key, default, unit, range and
// one-line doc and binds it to a member of `settings`; the loader, the validator, `troupe --help` and the
// README's option table are all generated from that table.
//
// The settings structs carry no defaults of their own: a `settings` means something only after
// config::load (loader.hpp) has filled it from the table, the file, the environment and --set.

#include "config/prices.hpp"
#include "config/upstreams.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace troupe::config {

struct http_settings {
  std::string address;
  int64_t port;
  int64_t threads;
  bool gzip;                // gzip responses when the client accepts it
  int64_t gzip_min_bytes;   // smaller bodies are sent as they are
  int64_t gzip_max_bytes;   // and larger ones (the compression runs on the answering thread)
  int64_t gzip_level;       // zlib level 1..9
  int64_t max_body_bytes;
  int64_t max_json_depth;
  int64_t header_timeout_ms;
  int64_t body_timeout_ms;
  int64_t keepalive_timeout_ms;
  int64_t send_timeout_ms;
  int64_t max_header_bytes;
  int64_t max_connections;
  int64_t max_body_memory_bytes;
  bool admission_control;
  std::string trusted_proxies;
  int64_t request_timeout_ms;
  std::string cors_origins;
};

struct actors_settings {
  int64_t threads;
  int64_t max_throughput;
  int64_t idle_polls;
};

struct log_settings {
  std::string level;
  double request_sample;
};

struct shutdown_settings {
  int64_t grace_ms;
};

struct db_settings {
  std::string url; // secret: from the environment only, never printed
  int64_t pool_size;
  int64_t connect_timeout_ms;
  int64_t batch_max_rows;
  int64_t flush_ms;
  int64_t background_flush_ms; // the longest a write nobody awaits (usage, quota) waits for its batch
  int64_t max_queue;
  int64_t max_wait_ms;
  int64_t search_connections; // connections of their own for repository searches, beside pool_size
  int64_t search_timeout_ms;  // statement_timeout of one search
};

struct debug_settings {
  bool enabled;
  bool admin_only;
  int64_t mailbox_warn;
  int64_t mailbox_warn_ms;
};

struct auth_settings {
  std::string jwt_secret; // secret: from the environment only, never printed
  std::string issuer;
  std::string audience;
  int64_t access_ttl_ms;
  int64_t refresh_ttl_ms;
  std::string admin_emails;
  int64_t hashers;
  int64_t login_max_failures;         // of one account from one address
  int64_t login_max_address_failures; // of any accounts from one address
};

struct session_settings {
  int64_t idle_ms;
};

struct limits_settings {
  bool enabled;
  int64_t shards;
  int64_t max_keys;
  double default_per_minute;
  double default_burst;
  double generate_per_minute;
  double generate_burst;
  double auth_per_minute;
  double auth_burst;
  double anonymous_per_minute;
  double anonymous_burst;
  double upload_per_minute;
  double upload_burst;
  int64_t generate_max_inflight;
  int64_t debug_max_inflight;
  int64_t queue;
  int64_t queue_wait_ms;
  int64_t max_rss_bytes;
  int64_t mailbox_threshold;
};

struct quota_settings {
  int64_t free_per_day;
  int64_t pro_per_day;
  int64_t reset_utc_hour;
  int64_t free_storage_bytes; // uploads and repository files, per user
  int64_t pro_storage_bytes;
  // Spend budgets (USD; 0 = none) and tokens per minute (0 = none) of each plan, and what a reservation assumes
  // for a request without max_tokens (actors/spend.hpp).
  double free_usd_per_day;
  double free_usd_per_month;
  int64_t free_tokens_per_minute;
  double pro_usd_per_day;
  double pro_usd_per_month;
  int64_t pro_tokens_per_minute;
  int64_t default_max_tokens;

  /// Whether any plan has a spend budget or a tokens-per-minute limit (else calls reserve no spend and sessions never
  /// read it).
  bool any_spend_limit() const {
    return free_usd_per_day > 0 || free_usd_per_month > 0 || free_tokens_per_minute > 0 || pro_usd_per_day > 0
           || pro_usd_per_month > 0 || pro_tokens_per_minute > 0;
  }
};

struct breaker_settings {
  int64_t failures;
  int64_t open_ms;
  int64_t half_open_probes;
};

struct retry_settings {
  int64_t max_attempts;
  int64_t base_ms;
  int64_t max_backoff_ms;
};

struct upstream_client_settings {
  int64_t max_response_bytes;
  int64_t clients;
};

struct gateway_settings {
  int64_t cache_ttl_ms;
  int64_t max_messages;
  int64_t max_generation_ms;
  int64_t stream_idle_ms;
  int64_t stream_heartbeat_ms;
  int64_t stream_drain_ms;         // how long a stream's upstream is still read after its client left
  int64_t request_timeout_ms;      // time a generation route has to start its answer
  int64_t max_images;              // image parts in one request
  int64_t max_image_bytes;         // decoded bytes of one inline image
  int64_t max_image_request_bytes; // decoded bytes of all inline images of one request
};

struct cache_settings {
  int64_t shards;         // 0 = 2 x cores
  int64_t max_bytes;      // over all shards
  int64_t default_ttl_ms;
  int64_t sweep_ms;
  int64_t near_ttl_ms;    // a cluster's near tier (cache_placement::near_ttl)
};

struct uploads_settings {
  std::string dir;           // incoming/, staging/ and repositories/ live under it
  int64_t max_size_bytes;    // Tus-Max-Size
  int64_t max_chunk_bytes;   // largest PATCH (or creation-with-upload POST) body
  int64_t expire_ms;         // an unfinished upload expires this long after its last PATCH
  int64_t sweep_ms;
  int64_t session_idle_ms;
  int64_t archive_max_entries;
  int64_t archive_max_bytes;
  double archive_max_ratio;
  int64_t archive_max_depth;
};

struct jobs_settings {
  int64_t concurrency;      // jobs running at once on this node
  int64_t processors;       // file-chunk processor actors; 0 = cores
  int64_t max_attempts;
  int64_t backoff_base_ms;
  int64_t lease_ms;
  int64_t poll_ms;
  int64_t events_poll_ms;             // job event streams: how often watched jobs are read
  int64_t max_event_streams;          // per node
  int64_t max_event_streams_per_user; // per node
};

/// Anonymous generation (options guest.*; POST /api/guest/token).
struct guest_settings {
  bool enabled;
  int64_t per_day; // generations per day of one guest (one client address)
};

/// The WebSocket channel (options ws.*; GET /ws, http/websocket.hpp).
struct ws_settings {
  bool enabled;
  int64_t max_connections;     // open at once on this node
  int64_t max_connections_per_user; // of one user, open at once on this node
  int64_t max_message_bytes;   // one message from a client (a larger one closes the connection with 1009)
  double messages_per_second;  // per connection, refilled continuously
  int64_t burst;               // per connection
  int64_t max_inflight;        // chats of one connection being answered at once
  int64_t ping_interval_ms;    // the server's pings
  int64_t idle_timeout_ms;     // nothing heard (a pong included) for this long closes the connection
  int64_t auth_timeout_ms;     // a connection without a credential must send an auth message within this
};

/// AI plans for repositories (options plans.*; http/plan_job.hpp).
struct plans_settings {
  std::string model;        // the model a plan is asked of when the request names none
  int64_t context_segments; // repository segments retrieved for a plan's prompt
  int64_t max_active_per_user; // plan jobs one user may have queued or running at once
};

/// Retention periods of append-only tables (options security.retention_days, idempotency.retention_days,
/// events.retention_days, feedback.retention_days) and the sweep interval (retention.sweep_ms).
/// Observability (ops/): the history sampler, threshold alerts, slow operations (ops/sampler.hpp).
struct ops_settings {
  int64_t sample_ms;      // one sample of the process every sample_ms
  int64_t history_ms;     // how much history the ring keeps (history_ms / sample_ms samples)
  int64_t slow_ms;        // operations over this are logged with their stages and counted
  std::string alert_webhook; // POST alert events here ("" = none); secret: it may carry a token
  int64_t alert_hold_ms;  // how long a figure must stay past a threshold before its alert fires
  double cpu_warn_pct, cpu_critical_pct;
  double memory_warn_pct, memory_critical_pct;
  double cache_hit_warn_pct, cache_hit_critical_pct;
  int64_t latency_warn_ms, latency_critical_ms;
  int64_t db_latency_warn_ms, db_latency_critical_ms;
  double error_warn_pct, error_critical_pct;
};

/// Distributed tracing (ops/tracing.hpp, actors/span_export.hpp).
struct tracing_settings {
  std::string otlp_endpoint; // OTLP/HTTP traces URL ("" = no export; trace context is still read and forwarded)
  double sample_ratio;       // share of new traces recorded; a caller's traceparent decides for its own
  int64_t export_ms;
  int64_t max_queue; // spans waiting at most; more are dropped and counted
};

struct retention_settings {
  int64_t security_days; // 0 = keep
  int64_t idempotency_days;
  int64_t events_days;   // 0 = keep
  int64_t feedback_days; // 0 = keep
  int64_t sweep_ms;
};

/// The cluster (actors/cluster.hpp): nodes sharing one PostgreSQL, joined over CAF's middleman (BASP).
struct cluster_settings {
  bool enabled;
  std::string node_id;   // "" = <hostname>-<cluster.port or http.port>
  std::string host;      // where the BASP endpoint listens and what the membership table advertises
  int64_t port;          // 0 = ephemeral (the bound port is published in the table)
  int64_t heartbeat_ms;  // membership table heartbeat and read; also BASP's heartbeat
  int64_t failure_ms;    // silent this long (table and BASP) = down
  int64_t purge_ms;      // down rows older than this are deleted
  int64_t request_timeout_ms; // a request to another node's endpoint
  std::string tls_cert;  // PEM files; all three set = mutual TLS between nodes
  std::string tls_key;
  std::string tls_ca;
  bool insecure;         // allow plain BASP on a non-loopback address
};

/// The effective configuration the rest of the code reads, e.g. `s.http.port`.
struct settings {
  http_settings http;
  actors_settings actors;
  log_settings log;
  shutdown_settings shutdown;
  db_settings db;
  debug_settings debug;
  auth_settings auth;
  session_settings session;
  cache_settings cache;
  limits_settings limits;
  quota_settings quota;
  breaker_settings breaker;
  retry_settings retry;
  upstream_client_settings upstream;
  gateway_settings gateway;
  /// Not options: the top-level "upstreams" list of the file, or TROUPE_UPSTREAMS (config/upstreams.hpp).
  std::vector<upstream_settings> upstreams;
  /// Not options: the top-level "prices" table of the file, or TROUPE_PRICES (config/prices.hpp).
  price_table prices;
  uploads_settings uploads;
  jobs_settings jobs;
  plans_settings plans;
  guest_settings guest;
  ws_settings ws;
  retention_settings retention;
  ops_settings ops;
  tracing_settings tracing;
  cluster_settings cluster;
};

/// The kinds of value an option takes; the C++ type of its settings member decides which.
enum class option_type { boolean, integer, number, string };

/// "boolean", "integer", "number" or "string".
const char* to_string(option_type type);

/// Access to one member of `settings` (e.g. `s.http.port`), for reading and for writing.
template <class T>
struct member_binding {
  using value_type = T;
  T& (*get)(settings&);
  const T& (*get_const)(const settings&);
};

using option_binding =
  std::variant<member_binding<bool>, member_binding<int64_t>, member_binding<double>, member_binding<std::string>>;

/// One row of the option table.
struct option_spec {
  std::string key;          // "section.name", as written in the file, in --set and in the docs
  option_binding binding;   // the settings member that holds the value; its type is the option's
  std::string default_text; // the default, written as in the environment; parsed like it
  std::string unit;         // "ms", "bytes", "threads" or "" (for integer and number options)
  std::string doc;          // one line, lower-case start, no final period
  double min = 0;           // inclusive range of an integer or number option
  double max = 0;
  std::vector<std::string> allowed; // the values a string option accepts; empty = any string
  bool secret = false;              // set from the environment only; never printed or logged
  std::string env_override;         // environment variable when it is not derived from the key

  option_type type() const;
  std::string section() const;  // "http" for "http.port"
  std::string name() const;     // "port" for "http.port"
  std::string env_name() const; // env_override, or derived_env_name(key)
  // The values accepted beyond the type, for docs: "0 to 65535", "1 to 600000 ms",
  // "one of trace, debug, info, warn, error, off", or "" when any value of the type goes.
  std::string accepted_values() const;
  // What a valid value looks like, for errors: "an integer from 0 to 65535", "true or false", "a string", ...
  std::string expected() const;
};

/// "TROUPE_" + the key upper-cased with '.' -> '_': http.max_body_bytes -> TROUPE_HTTP_MAX_BODY_BYTES.
std::string derived_env_name(std::string_view key);

/// The table, in documentation order, grouped by section. Built once; safe to call from any thread.
const std::vector<option_spec>& all_options();

/// The option with this key, or nullptr.
const option_spec* find_option(std::string_view key);

/// The number of cores (at least 1), and the reading of the count options whose 0 means "the number of cores"
/// (http.threads, actors.threads, jobs.processors): `configured` when it is positive, else the number of cores.
size_t cores();
size_t or_cores(int64_t configured);

} // namespace troupe::config

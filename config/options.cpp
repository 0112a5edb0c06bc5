#include "config/options.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <thread>
#include <type_traits>
#include <utility>

namespace troupe::config {

namespace {

/// Binds an option to `settings.*Section.*Field`, e.g. bind<&settings::http, &http_settings::port>().
template <auto Section, auto Field>
option_binding bind() {
  using value_type = std::remove_reference_t<decltype((std::declval<settings&>().*Section).*Field)>;
  return member_binding<value_type>{[](settings& s) -> value_type& { return (s.*Section).*Field; },
                                    [](const settings& s) -> const value_type& { return (s.*Section).*Field; }};
}

/// Builds one table row: the required columns up front, the optional ones by name.
struct entry {
  option_spec spec;

  entry(std::string key, option_binding binding, std::string default_text, std::string doc) {
    spec.key = std::move(key);
    spec.binding = std::move(binding);
    spec.default_text = std::move(default_text);
    spec.doc = std::move(doc);
  }
  entry& range(double min, double max, std::string unit = "") {
    spec.min = min;
    spec.max = max;
    spec.unit = std::move(unit);
    return *this;
  }
  entry& one_of(std::vector<std::string> allowed) {
    spec.allowed = std::move(allowed);
    return *this;
  }
  entry& in_env(std::string env_name) {
    spec.env_override = std::move(env_name);
    return *this;
  }
  entry& secret_in_env(std::string env_name) {
    spec.secret = true;
    spec.env_override = std::move(env_name);
    return *this;
  }
  operator option_spec() const { return spec; }
};

/// A bound for docs and errors: 65535 and 0.5 rather than 65535.000000 or 6.5535e+04.
std::string bound_text(double bound) {
  char text[32];
  std::snprintf(text, sizeof text, "%.15g", bound);
  return text;
}

} // namespace

const char* to_string(option_type type) {
  switch (type) {
  case option_type::boolean:
    return "boolean";
  case option_type::integer:
    return "integer";
  case option_type::number:
    return "number";
  case option_type::string:
    return "string";
  }
  return "string";
}

option_type option_spec::type() const {
  // The variant's alternatives are listed in option_type's order.
  return static_cast<option_type>(binding.index());
}

std::string option_spec::section() const {
  return key.substr(0, key.find('.'));
}

std::string option_spec::name() const {
  return key.substr(key.find('.') + 1);
}

std::string option_spec::env_name() const {
  return env_override.empty() ? derived_env_name(key) : env_override;
}

std::string option_spec::accepted_values() const {
  switch (type()) {
  case option_type::boolean:
    return "";
  case option_type::integer:
  case option_type::number:
    return bound_text(min) + " to " + bound_text(max) + (unit.empty() ? "" : " " + unit);
  case option_type::string:
    break;
  }
  if (allowed.empty())
    return "";
  std::string text = "one of ";
  for (size_t i = 0; i < allowed.size(); ++i)
    text += (i == 0 ? "" : ", ") + allowed[i];
  return text;
}

std::string option_spec::expected() const {
  switch (type()) {
  case option_type::boolean:
    return "true or false";
  case option_type::integer:
    return "an integer from " + accepted_values();
  case option_type::number:
    return "a number from " + accepted_values();
  case option_type::string:
    break;
  }
  return allowed.empty() ? "a string" : accepted_values();
}

std::string derived_env_name(std::string_view key) {
  std::string name = "TROUPE_";
  for (char c : key)
    name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

const std::vector<option_spec>& all_options() {
  static const std::vector<option_spec> table = {
    // http
    entry("http.address", bind<&settings::http, &http_settings::address>(), "127.0.0.1", "address to listen on"),
    entry("http.port", bind<&settings::http, &http_settings::port>(), "8080",
          "TCP port; 0 picks a free port (the chosen one is logged)")
      .range(0, 65535),
    entry("http.threads", bind<&settings::http, &http_settings::threads>(), "0",
          "HTTP reactor threads (each serves its share of the connections); 0 = number of cores")
      .range(0, 256, "threads"),
    entry("http.max_body_bytes", bind<&settings::http, &http_settings::max_body_bytes>(), "1048576",
          "largest request body of a JSON route (routes such as tus PATCH set their own); a larger Content-Length "
          "gets 413 before the body is read")
      .range(1, 1073741824, "bytes"),
    entry("http.gzip", bind<&settings::http, &http_settings::gzip>(), "true",
          "gzip a response of a compressible type (JSON, text, JavaScript, XML, SVG; never an event stream) of at "
          "least http.gzip_min_bytes when the client's Accept-Encoding takes gzip; such responses carry "
          "Vary: Accept-Encoding"),
    entry("http.gzip_min_bytes", bind<&settings::http, &http_settings::gzip_min_bytes>(), "1024",
          "smallest response body http.gzip compresses")
      .range(0, 1073741824, "bytes"),
    entry("http.gzip_max_bytes", bind<&settings::http, &http_settings::gzip_max_bytes>(), "4194304",
          "largest response body http.gzip compresses (it is compressed on the thread that answers: a larger one is "
          "sent as it is rather than hold that thread)")
      .range(0, 1073741824, "bytes"),
    entry("http.gzip_level", bind<&settings::http, &http_settings::gzip_level>(), "5",
          "zlib's compression level for http.gzip: 1 is fastest, 9 smallest")
      .range(1, 9, "level"),
    entry("http.max_json_depth", bind<&settings::http, &http_settings::max_json_depth>(), "64",
          "deepest nesting of arrays and objects a JSON body may have; deeper gets 400 json_too_deep")
      .range(1, 512, "levels"),
    entry("http.max_header_bytes", bind<&settings::http, &http_settings::max_header_bytes>(), "32768",
          "largest request head (request line and headers); larger gets 431 (a target over 8 KiB gets 414)")
      .range(1024, 1048576, "bytes"),
    entry("http.max_connections", bind<&settings::http, &http_settings::max_connections>(), "10000",
          "open client connections; a connection beyond it gets a 503 and is closed at once")
      .range(1, 1000000, "connections"),
    entry("http.max_body_memory_bytes", bind<&settings::http, &http_settings::max_body_memory_bytes>(), "268435456",
          "request bodies held in memory at once over all connections; a request whose body would exceed it gets 503 "
          "before its body is read")
      .range(1048576, 1099511627776, "bytes"),
    entry("http.admission_control", bind<&settings::http, &http_settings::admission_control>(), "true",
          "admit per route only as many requests at once as it answers without queueing (the limit adapts to its "
          "latency); beyond it 503 with Retry-After at once. Health, metrics, the /debug/actors API and gated routes are "
          "exempt; /debug/sleep and /debug/echo, helpers for load tests, are not"),
    entry("http.header_timeout_ms", bind<&settings::http, &http_settings::header_timeout_ms>(), "5000",
          "time a request's head may take from its first byte (and a new connection to start its first request); "
          "slower gets 408 and the connection is closed")
      .range(1, 600000, "ms"),
    entry("http.body_timeout_ms", bind<&settings::http, &http_settings::body_timeout_ms>(), "30000",
          "longest pause between two bytes of a request body; longer gets 408")
      .range(1, 600000, "ms"),
    entry("http.keepalive_timeout_ms", bind<&settings::http, &http_settings::keepalive_timeout_ms>(), "60000",
          "a kept-alive connection idle this long between requests is closed (a response in progress is bounded by "
          "its route, not by this)")
      .range(1, 3600000, "ms"),
    entry("http.send_timeout_ms", bind<&settings::http, &http_settings::send_timeout_ms>(), "60000",
          "a client that reads none of its response for this long is disconnected (streams may set their own limit)")
      .range(1, 3600000, "ms"),
    entry("http.trusted_proxies", bind<&settings::http, &http_settings::trusted_proxies>(), "",
          "comma-separated proxy addresses whose X-Forwarded-For is believed (exact IPs)"),
    entry("http.request_timeout_ms", bind<&settings::http, &http_settings::request_timeout_ms>(), "30000",
          "time a route has to start its answer, and an actor to answer one of its requests, before 504 (generation "
          "routes: gateway.request_timeout_ms)")
      .range(1, 600000, "ms"),
    entry("http.cors_origins", bind<&settings::http, &http_settings::cors_origins>(), "",
          "comma-separated browser origins (scheme://host[:port]) allowed to call the upload, repository and job "
          "routes (CORS); * allows any"),
    // actors
    entry("actors.threads", bind<&settings::actors, &actors_settings::threads>(), "0",
          "CAF scheduler threads; 0 = number of cores")
      .range(0, 256, "threads"),
    entry("actors.max_throughput", bind<&settings::actors, &actors_settings::max_throughput>(), "300",
          "messages an actor handles before yielding its thread")
      .range(1, 1000000, "messages"),
    entry("actors.idle_polls", bind<&settings::actors, &actors_settings::idle_polls>(), "0",
          "polls, 50 us apart, by a scheduler thread that ran out of work before it sleeps until woken (CAF's "
          "work-stealing.moderate-poll-attempts, 500 in CAF, which keeps an idle node's threads spinning; each "
          "poll is a sleep and a wake-up)")
      .range(0, 100000, "polls"),
    // log
    entry("log.level", bind<&settings::log, &log_settings::level>(), "info", "least severe level written")
      .one_of({"trace", "debug", "info", "warn", "error", "off"}),
    entry("log.request_sample", bind<&settings::log, &log_settings::request_sample>(), "1.0",
          "fraction of requests written to the access log; 0 turns it off")
      .range(0, 1),
    // shutdown
    entry("shutdown.grace_ms", bind<&settings::shutdown, &shutdown_settings::grace_ms>(), "10000",
          "how long in-flight requests may finish after SIGTERM")
      .range(0, 600000, "ms"),
    // db
    entry("db.url", bind<&settings::db, &db_settings::url>(), "",
          "PostgreSQL connection URI (libpq); empty = no database configured")
      .secret_in_env("TROUPE_DATABASE_URL"),
    entry("db.pool_size", bind<&settings::db, &db_settings::pool_size>(), "4",
          "database connections, each owned by one actor; batches commit on them in parallel")
      .range(1, 64, "connections"),
    entry("db.connect_timeout_ms", bind<&settings::db, &db_settings::connect_timeout_ms>(), "2000",
          "timeout of one connection attempt")
      .range(100, 60000, "ms"),
    entry("db.batch_max_rows", bind<&settings::db, &db_settings::batch_max_rows>(), "1000",
          "rows that make a write batch full; 1 commits every request alone")
      .range(1, 100000, "rows"),
    entry("db.flush_ms", bind<&settings::db, &db_settings::flush_ms>(), "2",
          "longest a write waits for its batch to fill before it is committed")
      .range(0, 10000, "ms"),
    entry("db.background_flush_ms", bind<&settings::db, &db_settings::background_flush_ms>(), "20",
          "longest a write nobody waits for (usage rows, quota counts) waits for its batch; it rides along with any "
          "batch sent earlier")
      .range(0, 10000, "ms"),
    entry("db.max_queue", bind<&settings::db, &db_settings::max_queue>(), "100000",
          "rows waiting or being committed beyond which writes get 503")
      .range(1, 10000000, "rows"),
    entry("db.max_wait_ms", bind<&settings::db, &db_settings::max_wait_ms>(), "2000",
          "how long a write waits for an unreachable database before it gets 503")
      .range(1, 600000, "ms"),
    entry("db.search_connections", bind<&settings::db, &db_settings::search_connections>(), "2",
          "database connections of their own for repository searches, beside db.pool_size (so searches never hold "
          "the connections of logins and writes); each runs one search and holds one more, beyond that 503")
      .range(1, 64, "connections"),
    entry("db.search_timeout_ms", bind<&settings::db, &db_settings::search_timeout_ms>(), "5000",
          "statement_timeout of a repository search; a longer one is cancelled and answered 504")
      .range(1, 600000, "ms"),
    // debug
    entry("debug.enabled", bind<&settings::debug, &debug_settings::enabled>(), "false",
          "serve the /debug routes (actor tree, mailboxes, traces); make run turns it on"),
    entry("debug.admin_only", bind<&settings::debug, &debug_settings::admin_only>(), "false",
          "require an admin credential for /debug even from a client on this machine (shared machines)"),
    entry("debug.mailbox_warn", bind<&settings::debug, &debug_settings::mailbox_warn>(), "1000",
          "log a warning when a named actor's mailbox stays above this many messages (0 = never)")
      .range(0, 100000000, "messages"),
    entry("debug.mailbox_warn_ms", bind<&settings::debug, &debug_settings::mailbox_warn_ms>(), "5000",
          "how long a mailbox must stay above debug.mailbox_warn before the warning")
      .range(1000, 3600000, "ms"),
    // auth
    entry("auth.jwt_secret", bind<&settings::auth, &auth_settings::jwt_secret>(), "",
          "HS256 key of access tokens, at least 32 bytes; make run generates one under var/")
      .secret_in_env("TROUPE_JWT_SECRET"),
    entry("auth.issuer", bind<&settings::auth, &auth_settings::issuer>(), "troupe", "iss of access tokens"),
    entry("auth.audience", bind<&settings::auth, &auth_settings::audience>(), "troupe-api", "aud of access tokens"),
    entry("auth.access_ttl_ms", bind<&settings::auth, &auth_settings::access_ttl_ms>(), "900000",
          "lifetime of an access token")
      .range(10000, 86400000, "ms"),
    entry("auth.refresh_ttl_ms", bind<&settings::auth, &auth_settings::refresh_ttl_ms>(), "2592000000",
          "lifetime of a refresh token (rotated on every use)")
      .range(60000, 31536000000.0, "ms"),
    entry("auth.admin_emails", bind<&settings::auth, &auth_settings::admin_emails>(), "",
          "comma-separated emails whose accounts are made admins at start-up, if they exist (registration never "
          "grants admin: troupe admin grant EMAIL does)")
      .in_env("TROUPE_ADMIN_EMAILS"),
    entry("auth.hashers", bind<&settings::auth, &auth_settings::hashers>(), "2",
          "password hashing actors (argon2id, 64 MiB each while hashing)")
      .range(1, 64, "actors"),
    entry("auth.login_max_failures", bind<&settings::auth, &auth_settings::login_max_failures>(), "5",
          "failed sign-ins of one account from one client address within 15 minutes, after which that address "
          "waits (429); the account stays open from other addresses")
      .range(1, 1000, "failures"),
    entry("auth.login_max_address_failures", bind<&settings::auth, &auth_settings::login_max_address_failures>(),
          "20", "failed sign-ins of any accounts from one client address within 15 minutes, after which it waits")
      .range(1, 1000000, "failures"),
    // limits
    entry("limits.enabled", bind<&settings::limits, &limits_settings::enabled>(), "true",
          "rate limiting of API routes (RateLimit headers, 429); off only for comparisons"),
    entry("limits.shards", bind<&settings::limits, &limits_settings::shards>(), "0",
          "rate limiter shard actors; 0 = 2 x cores")
      .range(0, 1024, "actors"),
    entry("limits.max_keys", bind<&settings::limits, &limits_settings::max_keys>(), "100000",
          "token buckets a shard keeps at most (idle full buckets are dropped first)")
      .range(100, 100000000, "buckets"),
    entry("limits.default_per_minute", bind<&settings::limits, &limits_settings::default_per_minute>(), "120",
          "policy default: requests per minute per user on authenticated API routes")
      .range(0.001, 1000000),
    entry("limits.default_burst", bind<&settings::limits, &limits_settings::default_burst>(), "40",
          "policy default: largest burst")
      .range(1, 1000000),
    entry("limits.generate_per_minute", bind<&settings::limits, &limits_settings::generate_per_minute>(), "30",
          "policy generate: generations per minute per user")
      .range(0.001, 1000000),
    entry("limits.generate_burst", bind<&settings::limits, &limits_settings::generate_burst>(), "10",
          "policy generate: largest burst")
      .range(1, 1000000),
    entry("limits.auth_per_minute", bind<&settings::limits, &limits_settings::auth_per_minute>(), "10",
          "policy auth: register/login/refresh and anonymous wishlist requests per minute per client IP")
      .range(0.001, 1000000),
    entry("limits.auth_burst", bind<&settings::limits, &limits_settings::auth_burst>(), "5",
          "policy auth: largest burst")
      .range(1, 1000000),
    entry("limits.anonymous_per_minute", bind<&settings::limits, &limits_settings::anonymous_per_minute>(), "60",
          "policy anonymous: failed authentications (refused tokens or API keys) per minute per client IP; beyond "
          "them 429 without a database look-up or a security event")
      .range(0.001, 1000000),
    entry("limits.anonymous_burst", bind<&settings::limits, &limits_settings::anonymous_burst>(), "20",
          "policy anonymous: largest burst of failed authentications")
      .range(1, 1000000),
    entry("limits.upload_per_minute", bind<&settings::limits, &limits_settings::upload_per_minute>(), "1200",
          "policy upload: tus requests (POST, PATCH, DELETE) per minute per user; 1200 x 8 MiB chunks is 160 MB/s")
      .range(0.001, 1000000),
    entry("limits.upload_burst", bind<&settings::limits, &limits_settings::upload_burst>(), "300",
          "policy upload: largest burst")
      .range(1, 1000000),
    entry("limits.generate_max_inflight", bind<&settings::limits, &limits_settings::generate_max_inflight>(), "64",
          "generation requests running at once (0 = no cap); with 25, a node on one core under 3x overload served "
          "0.46x its capacity while its core idled a third of the time")
      .range(0, 100000, "requests"),
    entry("limits.debug_max_inflight", bind<&settings::limits, &limits_settings::debug_max_inflight>(), "0",
          "debug requests running at once (0 = no cap)")
      .range(0, 100000, "requests"),
    entry("limits.queue", bind<&settings::limits, &limits_settings::queue>(), "25",
          "requests that may wait for a capped route group; beyond it 503 at once")
      .range(0, 100000, "requests"),
    entry("limits.queue_wait_ms", bind<&settings::limits, &limits_settings::queue_wait_ms>(), "250",
          "longest a request waits in that queue before 503")
      .range(1, 60000, "ms"),
    entry("limits.max_rss_bytes", bind<&settings::limits, &limits_settings::max_rss_bytes>(), "0",
          "process RSS beyond which new work is refused with 503 (0 = no limit)")
      .range(0, 1099511627776.0, "bytes"),
    entry("limits.mailbox_threshold", bind<&settings::limits, &limits_settings::mailbox_threshold>(), "10000",
          "mailbox size of a critical actor (DB writer, sessions, limiters) beyond which its work is shed")
      .range(1, 100000000, "messages"),
    // quota
    entry("quota.free_per_day", bind<&settings::quota, &quota_settings::free_per_day>(), "50",
          "generations per quota day on the free plan")
      .range(0, 100000000),
    entry("quota.pro_per_day", bind<&settings::quota, &quota_settings::pro_per_day>(), "1000",
          "generations per quota day on the pro plan")
      .range(0, 100000000),
    entry("quota.free_usd_per_day", bind<&settings::quota, &quota_settings::free_usd_per_day>(), "0",
          "spend budget of a free-plan user per quota day in USD, at the prices table (0 = none); a generation "
          "reserves its estimated cost first and is refused with 402 insufficient_quota when it does not fit")
      .range(0, 9000000, "USD"),
    entry("quota.free_usd_per_month", bind<&settings::quota, &quota_settings::free_usd_per_month>(), "0",
          "spend budget of a free-plan user per UTC calendar month in USD (0 = none)")
      .range(0, 9000000, "USD"),
    entry("quota.free_tokens_per_minute", bind<&settings::quota, &quota_settings::free_tokens_per_minute>(), "0",
          "prompt and completion tokens per minute of a free-plan user (0 = none); a generation reserves its "
          "estimate first and is refused with 429 and Retry-After when the window lacks it")
      .range(0, 1000000000000, "tokens"),
    entry("quota.pro_usd_per_day", bind<&settings::quota, &quota_settings::pro_usd_per_day>(), "0",
          "spend budget of a pro-plan user per quota day in USD (0 = none)")
      .range(0, 9000000, "USD"),
    entry("quota.pro_usd_per_month", bind<&settings::quota, &quota_settings::pro_usd_per_month>(), "0",
          "spend budget of a pro-plan user per UTC calendar month in USD (0 = none)")
      .range(0, 9000000, "USD"),
    entry("quota.pro_tokens_per_minute", bind<&settings::quota, &quota_settings::pro_tokens_per_minute>(), "0",
          "prompt and completion tokens per minute of a pro-plan user (0 = none)")
      .range(0, 1000000000000, "tokens"),
    entry("quota.default_max_tokens", bind<&settings::quota, &quota_settings::default_max_tokens>(), "4096",
          "completion tokens a generation's reservation assumes per choice when the request sets no max_tokens "
          "(its estimate is the prompt's tokens plus this, times n)")
      .range(1, 10000000, "tokens"),
    entry("quota.reset_utc_hour", bind<&settings::quota, &quota_settings::reset_utc_hour>(), "0",
          "UTC hour at which quota days roll over")
      .range(0, 23, "hour"),
    entry("quota.free_storage_bytes", bind<&settings::quota, &quota_settings::free_storage_bytes>(), "10737418240",
          "storage per user on the free plan: unfinished uploads (their Upload-Length) plus repository files; "
          "more gets 413")
      .range(0, 1125899906842624.0, "bytes"),
    entry("quota.pro_storage_bytes", bind<&settings::quota, &quota_settings::pro_storage_bytes>(), "107374182400",
          "storage per user on the pro plan (as quota.free_storage_bytes)")
      .range(0, 1125899906842624.0, "bytes"),
    // session
    entry("session.idle_ms", bind<&settings::session, &session_settings::idle_ms>(), "900000",
          "a user's session actor is passivated after this long without requests")
      .range(1000, 86400000, "ms"),
    // cache
    entry("cache.shards", bind<&settings::cache, &cache_settings::shards>(), "0",
          "cache shard actors; keys are spread over them by hash; 0 = 2 x number of cores")
      .range(0, 1024, "shards"),
    entry("cache.max_bytes", bind<&settings::cache, &cache_settings::max_bytes>(), "268435456",
          "bound of the cache over all shards (keys, values, tags and per-entry overhead); LRU entries are evicted")
      .range(65536, 1099511627776.0, "bytes"),
    entry("cache.default_ttl_ms", bind<&settings::cache, &cache_settings::default_ttl_ms>(), "300000",
          "lifetime of a cache entry stored without its own TTL")
      .range(1, 604800000, "ms"),
    entry("cache.sweep_ms", bind<&settings::cache, &cache_settings::sweep_ms>(), "1000",
          "how often each cache shard drops expired entries (they are also dropped when read)")
      .range(10, 600000, "ms"),
    entry("cache.near_ttl_ms", bind<&settings::cache, &cache_settings::near_ttl_ms>(), "1000",
          "in a cluster, how long a node keeps its own copy of a gateway answer another node holds, after reading it "
          "there (0 = always ask that node); cache clears remove the copies too")
      .range(0, 60000, "ms"),
    // breaker
    entry("breaker.failures", bind<&settings::breaker, &breaker_settings::failures>(), "5",
          "consecutive failures (connect error, timeout, 429, 500, 502-504) that open an upstream's breaker")
      .range(1, 1000, "failures"),
    entry("breaker.open_ms", bind<&settings::breaker, &breaker_settings::open_ms>(), "60000",
          "how long an open breaker keeps traffic away (an upstream 429's Retry-After wins when given)")
      .range(1, 86400000, "ms"),
    entry("breaker.half_open_probes", bind<&settings::breaker, &breaker_settings::half_open_probes>(), "3",
          "requests a half-open breaker lets through; all succeed: closed, any fails: open again")
      .range(1, 1000, "requests"),
    // retry
    entry("retry.max_attempts", bind<&settings::retry, &retry_settings::max_attempts>(), "3",
          "attempts per upstream for a retryable failure (1 = no retry), before falling back to the next one")
      .range(1, 20, "attempts"),
    entry("retry.base_ms", bind<&settings::retry, &retry_settings::base_ms>(), "200",
          "base of the exponential backoff with full jitter between attempts")
      .range(0, 60000, "ms"),
    entry("retry.max_backoff_ms", bind<&settings::retry, &retry_settings::max_backoff_ms>(), "5000",
          "cap of one backoff")
      .range(0, 600000, "ms"),
    // upstream
    entry("upstream.max_response_bytes", bind<&settings::upstream, &upstream_client_settings::max_response_bytes>(),
          "8388608", "largest upstream answer accepted; larger ones end in 502")
      .range(1024, 1073741824, "bytes"),
    entry("upstream.clients", bind<&settings::upstream, &upstream_client_settings::clients>(), "1",
          "HTTP client actors (each a libcurl multi handle on its own thread) calling upstreams")
      .range(1, 64, "clients"),
    // gateway
    entry("gateway.cache_ttl_ms", bind<&settings::gateway, &gateway_settings::cache_ttl_ms>(), "3600000",
          "lifetime of a cached deterministic chat completion")
      .range(1, 604800000, "ms"),
    entry("gateway.max_messages", bind<&settings::gateway, &gateway_settings::max_messages>(), "1000",
          "messages accepted in one chat completion request")
      .range(1, 100000, "messages"),
    entry("gateway.max_generation_ms", bind<&settings::gateway, &gateway_settings::max_generation_ms>(), "600000",
          "longest a generation (chat completion, /api/generate) may take in all, every attempt and fallback "
          "included; a stream that reaches it ends with an error event")
      .range(1000, 86400000, "ms"),
    entry("gateway.stream_idle_ms", bind<&settings::gateway, &gateway_settings::stream_idle_ms>(), "60000",
          "a stream ends with an error event when its upstream sends nothing for this long, and a client that "
          "reads nothing of a stream for this long is disconnected")
      .range(100, 3600000, "ms"),
    entry("gateway.stream_heartbeat_ms", bind<&settings::gateway, &gateway_settings::stream_heartbeat_ms>(), "15000",
          "while a stream has nothing to send (an upstream thinking before its first token), an SSE comment goes "
          "out this often so proxies keep the connection; the first one commits the answer (no retry after it)")
      .range(100, 3600000, "ms"),
    entry("gateway.request_timeout_ms", bind<&settings::gateway, &gateway_settings::request_timeout_ms>(), "60000",
          "time a generation route (chat completions, messages, generate, embeddings) has to start its answer before "
          "504: a non-streamed call makes no attempt past it; a stream has started with its first byte or heartbeat, "
          "and is then bounded by gateway.stream_idle_ms and gateway.max_generation_ms")
      .range(1000, 3600000, "ms"),
    entry("gateway.stream_drain_ms", bind<&settings::gateway, &gateway_settings::stream_drain_ms>(), "30000",
          "when a client leaves a stream, its upstream is still read (nothing buffered) for up to this long so the "
          "usage recorded is the upstream's own; 0 drops the upstream call at once (the usage is then estimated)")
      .range(0, 3600000, "ms"),
    entry("gateway.max_images", bind<&settings::gateway, &gateway_settings::max_images>(), "32",
          "image parts (type image_url) accepted in one chat completion request")
      .range(0, 10000, "images"),
    entry("gateway.max_image_bytes", bind<&settings::gateway, &gateway_settings::max_image_bytes>(), "20971520",
          "decoded size of one inline image (a base64 data URL; its type is checked by its first bytes); the body "
          "that carries it is bounded by http.max_body_bytes first")
      .range(1, 1073741824, "bytes"),
    entry("gateway.max_image_request_bytes",
          bind<&settings::gateway, &gateway_settings::max_image_request_bytes>(), "52428800",
          "decoded size of all inline images of one chat completion request together")
      .range(1, 1073741824, "bytes"),
    // uploads
    entry("uploads.dir", bind<&settings::uploads, &uploads_settings::dir>(), "var/uploads",
          "directory of upload bytes (incoming/), archive staging (staging/) and repository files (repositories/); "
          "relative to the working directory"),
    entry("uploads.max_size_bytes", bind<&settings::uploads, &uploads_settings::max_size_bytes>(), "10737418240",
          "largest Upload-Length accepted (Tus-Max-Size); larger gets 413")
      .range(1, 1099511627776.0, "bytes"),
    entry("uploads.max_chunk_bytes", bind<&settings::uploads, &uploads_settings::max_chunk_bytes>(), "8388608",
          "largest PATCH body (bodies are buffered in memory: clients send chunks); larger gets 413")
      .range(1024, 268435456, "bytes"),
    entry("uploads.expire_ms", bind<&settings::uploads, &uploads_settings::expire_ms>(), "86400000",
          "an unfinished upload expires this long after its creation or last PATCH; its bytes are removed")
      .range(1000, 31536000000.0, "ms"),
    entry("uploads.sweep_ms", bind<&settings::uploads, &uploads_settings::sweep_ms>(), "60000",
          "how often expired uploads are looked for and removed")
      .range(50, 86400000, "ms"),
    entry("uploads.session_idle_ms", bind<&settings::uploads, &uploads_settings::session_idle_ms>(), "60000",
          "an upload's session actor is passivated after this long without requests")
      .range(100, 86400000, "ms"),
    entry("uploads.archive_max_entries", bind<&settings::uploads, &uploads_settings::archive_max_entries>(),
          "100000", "entries an archive may hold; more fails its job")
      .range(1, 100000000, "entries"),
    entry("uploads.archive_max_bytes", bind<&settings::uploads, &uploads_settings::archive_max_bytes>(),
          "4294967296", "total size an archive may expand to; more fails its job")
      .range(1, 1099511627776.0, "bytes"),
    entry("uploads.archive_max_ratio", bind<&settings::uploads, &uploads_settings::archive_max_ratio>(), "200",
          "largest expanded/compressed size ratio of an archive once it has expanded past 1 MiB (zip bombs)")
      .range(1, 1000000),
    entry("uploads.archive_max_depth", bind<&settings::uploads, &uploads_settings::archive_max_depth>(), "32",
          "most directory levels of an archive entry's path")
      .range(1, 1024, "levels"),
    // jobs
    entry("jobs.concurrency", bind<&settings::jobs, &jobs_settings::concurrency>(), "2",
          "background jobs this node runs at once")
      .range(1, 1024, "jobs"),
    entry("jobs.processors", bind<&settings::jobs, &jobs_settings::processors>(), "0",
          "file-chunk processor actors shared by running jobs; 0 = number of cores")
      .range(0, 256, "actors"),
    entry("jobs.max_attempts", bind<&settings::jobs, &jobs_settings::max_attempts>(), "3",
          "attempts of a job before it fails for good")
      .range(1, 100, "attempts"),
    entry("jobs.backoff_base_ms", bind<&settings::jobs, &jobs_settings::backoff_base_ms>(), "2000",
          "delay before the first retry of a failed job; doubled for each further attempt")
      .range(1, 3600000, "ms"),
    entry("jobs.lease_ms", bind<&settings::jobs, &jobs_settings::lease_ms>(), "30000",
          "a running job's lease, renewed while its worker lives; once it lapses another worker takes the job")
      .range(100, 3600000, "ms"),
    entry("jobs.poll_ms", bind<&settings::jobs, &jobs_settings::poll_ms>(), "1000",
          "how often the job queue looks for runnable jobs it was not told about (other nodes, lapsed leases)")
      .range(10, 600000, "ms"),
    entry("jobs.events_poll_ms", bind<&settings::jobs, &jobs_settings::events_poll_ms>(), "250",
          "how often a node reads the jobs its clients watch (GET /api/jobs/{id}/events): one statement for all of "
          "them")
      .range(20, 60000, "ms"),
    entry("jobs.max_event_streams", bind<&settings::jobs, &jobs_settings::max_event_streams>(), "1000",
          "job event streams open at once on this node; more get 503")
      .range(1, 1000000, "streams"),
    entry("jobs.max_event_streams_per_user", bind<&settings::jobs, &jobs_settings::max_event_streams_per_user>(),
          "8", "job event streams one user may have open at once on this node; more get 429")
      .range(1, 10000, "streams"),
    // guests (POST /api/guest/token)
    entry("guest.enabled", bind<&settings::guest, &guest_settings::enabled>(), "false",
          "anonymous generation: POST /api/guest/token gives a client address a guest token (its own guest, bound "
          "to that address) for chat completions, messages and generate, with the guest tier's daily quota"),
    entry("guest.per_day", bind<&settings::guest, &guest_settings::per_day>(), "5",
          "generations per day of one guest (one client address), counted like a user's quota")
      .range(0, 1000000, "generations"),
    // the WebSocket channel (GET /ws, http/websocket.hpp)
    entry("ws.enabled", bind<&settings::ws, &ws_settings::enabled>(), "true",
          "serve the WebSocket channel at GET /ws: chat completions (streamed or not) as JSON messages"),
    entry("ws.max_connections", bind<&settings::ws, &ws_settings::max_connections>(), "10000",
          "WebSocket connections open at once on this node; another handshake gets 503")
      .range(1, 1000000, "connections"),
    entry("ws.max_connections_per_user", bind<&settings::ws, &ws_settings::max_connections_per_user>(), "32",
          "WebSocket connections one user may have open at once on this node; another gets 429 (its handshake, or "
          "its auth message, which then closes the connection with 1008)")
      .range(1, 1000000, "connections"),
    entry("ws.max_message_bytes", bind<&settings::ws, &ws_settings::max_message_bytes>(), "1048576",
          "largest message a client may send (reassembled from its frames); a larger one closes the connection "
          "with 1009 before it is buffered, and at most http.max_body_bytes is taken either way")
      .range(1024, 67108864, "bytes"),
    entry("ws.messages_per_second", bind<&settings::ws, &ws_settings::messages_per_second>(), "10",
          "messages one connection may send per second on average (beyond its burst, each is answered with a 429 "
          "error message; a client that keeps sending while 64 wait is disconnected with 1008)")
      .range(0.001, 100000, "messages/s"),
    entry("ws.burst", bind<&settings::ws, &ws_settings::burst>(), "20",
          "messages one connection may send at once before ws.messages_per_second applies")
      .range(1, 100000, "messages"),
    entry("ws.max_inflight", bind<&settings::ws, &ws_settings::max_inflight>(), "8",
          "chats of one connection answered at once; another gets a 429 error message")
      .range(1, 1000, "chats"),
    entry("ws.ping_interval_ms", bind<&settings::ws, &ws_settings::ping_interval_ms>(), "30000",
          "how often the server pings a connection")
      .range(100, 3600000, "ms"),
    entry("ws.idle_timeout_ms", bind<&settings::ws, &ws_settings::idle_timeout_ms>(), "75000",
          "a connection from which nothing (not even a pong) arrived for this long is closed with 1001")
      .range(200, 86400000, "ms"),
    entry("ws.auth_timeout_ms", bind<&settings::ws, &ws_settings::auth_timeout_ms>(), "10000",
          "a connection opened without an Authorization header must send its auth message within this, or it is "
          "closed with 1008")
      .range(100, 600000, "ms"),
    // plans (http/plan_job.hpp)
    entry("plans.model", bind<&settings::plans, &plans_settings::model>(), "gpt-4o-mini",
          "the model a plan is asked of when POST /api/repositories/{id}/plans names none (one an upstream serves)"),
    entry("plans.context_segments", bind<&settings::plans, &plans_settings::context_segments>(), "12",
          "repository segments (about 2 KiB each) the full-text search retrieves for a plan's prompt")
      .range(1, 50, "segments"),
    entry("plans.max_active_per_user", bind<&settings::plans, &plans_settings::max_active_per_user>(), "4",
          "plan jobs one user may have queued or running at once; another request gets 429 (plan jobs share "
          "jobs.concurrency with uploads' processing, after it)")
      .range(1, 1000, "jobs"),
    // retention (the sweeper of actors/retention.hpp)
    entry("security.retention_days", bind<&settings::retention, &retention_settings::security_days>(), "90",
          "security events older than this are deleted; 0 keeps them")
      .range(0, 36500, "days"),
    entry("idempotency.retention_days", bind<&settings::retention, &retention_settings::idempotency_days>(), "1",
          "Idempotency-Key records older than this are deleted (a key is honoured for 24 hours either way)")
      .range(1, 36500, "days"),
    entry("events.retention_days", bind<&settings::retention, &retention_settings::events_days>(), "0",
          "funnel events received longer ago than this are deleted; 0 keeps them")
      .range(0, 36500, "days"),
    entry("feedback.retention_days", bind<&settings::retention, &retention_settings::feedback_days>(), "0",
          "feedback older than this is deleted; 0 keeps it")
      .range(0, 36500, "days"),
    entry("retention.sweep_ms", bind<&settings::retention, &retention_settings::sweep_ms>(), "3600000",
          "how often expired rows (and expired token revocations) are deleted, in batches of 5000 rows")
      .range(1000, 86400000, "ms"),
    // ops (ops/sampler.hpp): history, alerts, slow operations
    entry("ops.sample_ms", bind<&settings::ops, &ops_settings::sample_ms>(), "5000",
          "interval of the process history's samples (GET /api/performance, /dashboard, alerts)")
      .range(100, 3600000, "ms"),
    entry("ops.history_ms", bind<&settings::ops, &ops_settings::history_ms>(), "86400000",
          "how far back the history goes; it keeps history_ms / sample_ms samples (about 400 bytes each)")
      .range(1000, 604800000, "ms"),
    entry("ops.slow_ms", bind<&settings::ops, &ops_settings::slow_ms>(), "1000",
          "requests, upstream calls, database batches and job steps slower than this are logged with their stages")
      .range(1, 3600000, "ms"),
    entry("ops.alert_webhook", bind<&settings::ops, &ops_settings::alert_webhook>(), "",
          "http(s) URL that firing and resolved alerts are POSTed to as JSON; empty = none")
      .secret_in_env("TROUPE_OPS_ALERT_WEBHOOK"),
    entry("ops.alert_hold_ms", bind<&settings::ops, &ops_settings::alert_hold_ms>(), "60000",
          "how long a figure must stay past a threshold before its alert fires")
      .range(0, 86400000, "ms"),
    entry("ops.cpu_warn_pct", bind<&settings::ops, &ops_settings::cpu_warn_pct>(), "70",
          "the machine's CPU use that fires a warning").range(0, 100, "%"),
    entry("ops.cpu_critical_pct", bind<&settings::ops, &ops_settings::cpu_critical_pct>(), "90",
          "the machine's CPU use that fires a critical alert").range(0, 100, "%"),
    entry("ops.memory_warn_pct", bind<&settings::ops, &ops_settings::memory_warn_pct>(), "70",
          "the machine's memory in use that fires a warning").range(0, 100, "%"),
    entry("ops.memory_critical_pct", bind<&settings::ops, &ops_settings::memory_critical_pct>(), "90",
          "the machine's memory in use that fires a critical alert").range(0, 100, "%"),
    entry("ops.cache_hit_warn_pct", bind<&settings::ops, &ops_settings::cache_hit_warn_pct>(), "80",
          "a gateway cache hit rate under this fires a warning").range(0, 100, "%"),
    entry("ops.cache_hit_critical_pct", bind<&settings::ops, &ops_settings::cache_hit_critical_pct>(), "70",
          "a gateway cache hit rate under this fires a critical alert").range(0, 100, "%"),
    entry("ops.latency_warn_ms", bind<&settings::ops, &ops_settings::latency_warn_ms>(), "100",
          "a p95 response time over this fires a warning").range(1, 3600000, "ms"),
    entry("ops.latency_critical_ms", bind<&settings::ops, &ops_settings::latency_critical_ms>(), "500",
          "a p95 response time over this fires a critical alert").range(1, 3600000, "ms"),
    entry("ops.db_latency_warn_ms", bind<&settings::ops, &ops_settings::db_latency_warn_ms>(), "500",
          "a mean database commit time over this fires a warning").range(1, 3600000, "ms"),
    entry("ops.db_latency_critical_ms", bind<&settings::ops, &ops_settings::db_latency_critical_ms>(), "2000",
          "a mean database commit time over this fires a critical alert").range(1, 3600000, "ms"),
    entry("ops.error_warn_pct", bind<&settings::ops, &ops_settings::error_warn_pct>(), "5",
          "a share of requests answered 5xx over this fires a warning").range(0, 100, "%"),
    entry("ops.error_critical_pct", bind<&settings::ops, &ops_settings::error_critical_pct>(), "20",
          "a share of requests answered 5xx over this fires a critical alert").range(0, 100, "%"),
    // tracing (ops/tracing.hpp)
    entry("tracing.otlp_endpoint", bind<&settings::tracing, &tracing_settings::otlp_endpoint>(), "",
          "OTLP/HTTP JSON traces endpoint spans are POSTed to (e.g. http://127.0.0.1:4318/v1/traces); empty = none"),
    entry("tracing.sample_ratio", bind<&settings::tracing, &tracing_settings::sample_ratio>(), "1",
          "share of traces started here that are recorded; a caller's traceparent decides for its own trace")
      .range(0, 1),
    entry("tracing.export_ms", bind<&settings::tracing, &tracing_settings::export_ms>(), "1000",
          "how often waiting spans are sent, in batches of up to 512")
      .range(10, 60000, "ms"),
    entry("tracing.max_queue", bind<&settings::tracing, &tracing_settings::max_queue>(), "8192",
          "spans waiting for export at most; a request's spans that do not fit are dropped and counted")
      .range(64, 1000000, "spans"),
    // cluster (actors/cluster.hpp)
    entry("cluster.enabled", bind<&settings::cluster, &cluster_settings::enabled>(), "false",
          "join the nodes of the same database as a cluster: each user is served by one owner node"),
    entry("cluster.node_id", bind<&settings::cluster, &cluster_settings::node_id>(), "",
          "this node's id in the membership table; empty = <hostname>-<cluster.port, else http.port>"),
    entry("cluster.host", bind<&settings::cluster, &cluster_settings::host>(), "127.0.0.1",
          "address the node listens on for other nodes (BASP) and advertises to them"),
    entry("cluster.port", bind<&settings::cluster, &cluster_settings::port>(), "0",
          "port for other nodes (BASP); 0 = any free port, published in the membership table")
      .range(0, 65535, ""),
    entry("cluster.heartbeat_ms", bind<&settings::cluster, &cluster_settings::heartbeat_ms>(), "1000",
          "how often a node refreshes its membership row, reads the others' and BASP sends heartbeats")
      .range(100, 60000, "ms"),
    entry("cluster.failure_ms", bind<&settings::cluster, &cluster_settings::failure_ms>(), "5000",
          "a member silent this long in the membership table and on BASP is down; its users move")
      .range(500, 600000, "ms"),
    entry("cluster.purge_ms", bind<&settings::cluster, &cluster_settings::purge_ms>(), "86400000",
          "membership rows down for longer than this are deleted")
      .range(60000, 31536000000.0, "ms"),
    entry("cluster.request_timeout_ms", bind<&settings::cluster, &cluster_settings::request_timeout_ms>(), "5000",
          "how long a request to a user's owner node may take before it is answered 503")
      .range(100, 600000, "ms"),
    entry("cluster.tls_cert", bind<&settings::cluster, &cluster_settings::tls_cert>(), "",
          "PEM certificate of this node; with tls_key and tls_ca, nodes authenticate each other (mutual TLS)"),
    entry("cluster.tls_key", bind<&settings::cluster, &cluster_settings::tls_key>(), "",
          "PEM private key of cluster.tls_cert"),
    entry("cluster.tls_ca", bind<&settings::cluster, &cluster_settings::tls_ca>(), "",
          "PEM file of the CA that signed every node's certificate"),
    entry("cluster.insecure", bind<&settings::cluster, &cluster_settings::insecure>(), "false",
          "allow plain (unauthenticated) BASP on a non-loopback cluster.host; never on an untrusted network"),
  };
  return table;
}

const option_spec* find_option(std::string_view key) {
  for (const auto& spec : all_options())
    if (spec.key == key)
      return &spec;
  return nullptr;
}

size_t cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

size_t or_cores(int64_t configured) {
  return configured > 0 ? static_cast<size_t>(configured) : cores();
}

} // namespace troupe::config

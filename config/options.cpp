#include "config/options.hpp"

#include <cctype>
#include <cstdio>
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
          "Pistache worker threads; 0 = number of cores")
      .range(0, 256, "threads"),
    entry("http.max_body_bytes", bind<&settings::http, &http_settings::max_body_bytes>(), "1048576",
          "largest accepted request body; larger gets 413")
      .range(1, 1073741824, "bytes"),
    entry("http.header_timeout_ms", bind<&settings::http, &http_settings::header_timeout_ms>(), "5000",
          "time a client has to send the request headers")
      .range(1, 600000, "ms"),
    entry("http.body_timeout_ms", bind<&settings::http, &http_settings::body_timeout_ms>(), "30000",
          "time a client has to send the body")
      .range(1, 600000, "ms"),
    entry("http.keepalive_timeout_ms", bind<&settings::http, &http_settings::keepalive_timeout_ms>(), "60000",
          "idle keep-alive connections are closed after this")
      .range(1, 3600000, "ms"),
    entry("http.request_timeout_ms", bind<&settings::http, &http_settings::request_timeout_ms>(), "30000",
          "time an actor has to answer a request before 504")
      .range(1, 600000, "ms"),
    // actors
    entry("actors.threads", bind<&settings::actors, &actors_settings::threads>(), "0",
          "CAF scheduler threads; 0 = number of cores")
      .range(0, 256, "threads"),
    entry("actors.max_throughput", bind<&settings::actors, &actors_settings::max_throughput>(), "300",
          "messages an actor handles before yielding its thread")
      .range(1, 1000000, "messages"),
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
    entry("db.max_queue", bind<&settings::db, &db_settings::max_queue>(), "100000",
          "rows waiting or being committed beyond which writes get 503")
      .range(1, 10000000, "rows"),
    entry("db.max_wait_ms", bind<&settings::db, &db_settings::max_wait_ms>(), "2000",
          "how long a write waits for an unreachable database before it gets 503")
      .range(1, 600000, "ms"),
    // debug
    entry("debug.enabled", bind<&settings::debug, &debug_settings::enabled>(), "false", "serve the /debug routes"),
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
          "comma-separated emails that are admins (granted at start-up and at registration)")
      .in_env("TROUPE_ADMIN_EMAILS"),
    entry("auth.hashers", bind<&settings::auth, &auth_settings::hashers>(), "2",
          "password hashing actors (argon2id, 64 MiB each while hashing)")
      .range(1, 64, "actors"),
    // session
    entry("session.idle_ms", bind<&settings::session, &session_settings::idle_ms>(), "900000",
          "a user's session actor is passivated after this long without requests")
      .range(1000, 86400000, "ms"),
  };
  return table;
}

const option_spec* find_option(std::string_view key) {
  for (const auto& spec : all_options())
    if (spec.key == key)
      return &spec;
  return nullptr;
}

} // namespace troupe::config

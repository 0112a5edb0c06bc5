#pragma once
// Loading the configuration: defaults from the option table < JSON file (--config FILE) < environment
// (TROUPE_SECTION_KEY) < --set section.key=value. Also renders the table for --help, --print-config and the
// README. Secrets (db.url) come from the environment only and are never printed.

#include "config/options.hpp"

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace troupe::config {

/// Why a configuration was rejected. `troupe` prints message() and exits with status 2.
struct config_error {
  std::string option;   // "http.port", or "--config" / "--set" when the problem is not one option's
  std::string value;    // the offending value as given ("***" for secrets)
  std::string expected; // what a valid value looks like
  std::string detail;   // optional: where the value came from, or the parser's complaint

  /// One line, e.g.: invalid value for http.port: "abc" (expected an integer from 0 to 65535): from
  /// TROUPE_HTTP_PORT. Control characters and quotes in the value are escaped; long values are cut.
  std::string message() const;
};

/// Looks up one environment variable; injectable so tests need not touch the process environment.
using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The process environment (getenv). Only the names of known options, TROUPE_UPSTREAMS, TROUPE_PRICES and the upstreams' key
/// variables are ever asked for, so unrelated TROUPE_* variables (e.g. TROUPE_JWT_SECRET) are ignored.
env_lookup process_env();

/// What the command line asked for.
struct load_request {
  std::optional<std::string> file; // --config FILE
  std::vector<std::string> sets;   // raw "section.key=value" of each --set, in order (later wins)
};

/// Parses the upstream list (config/upstreams.hpp) from JSON text into `out`, reading keys through `env`.
/// `source` says where the text came from, for errors ("set in FILE", "set by TROUPE_UPSTREAMS").
std::optional<config_error> parse_upstreams(const std::string& json, const std::string& source, const env_lookup& env,
                                            std::vector<upstream_settings>& out);

/// Builds the effective settings, or returns the first error found. Never throws, never exits.
std::variant<settings, config_error> load(const load_request& req, const env_lookup& env);

/// The same with the --config file's content given (tests, the config fuzzer): `file_text` is read instead of the
/// file `req.file`, which then only names it in errors.
std::variant<settings, config_error> load(const load_request& req, const std::string& file_text, const env_lookup& env);

/// The effective configuration as pretty JSON nested by section, secrets shown as "***" (or "" when unset).
/// For `troupe --print-config`; the output is a valid --config file apart from the secrets.
std::string render_effective_json(const settings& s);

/// An aligned plain-text list of every option (key, type, default, env var, doc) for `troupe --help`.
std::string render_options_help();

/// A Markdown table `| option | type | default | env | description |`, one row per option, for the README.
std::string render_options_markdown();

} // namespace troupe::config

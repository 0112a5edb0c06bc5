// Fuzz target: the configuration loader (config/loader.hpp) with everything an operator can give it: the --config
// file's text, TROUPE_UPSTREAMS, and --set assignments.
//
// Input layout: file text, then optionally a NUL and the TROUPE_UPSTREAMS value, then optionally a NUL and --set
// assignments, one per line. Every upstream's api_key_env resolves to a fixed key.
//
// Invariants: load never throws; a refusal is one line naming an option; an accepted configuration renders
// (--print-config) as JSON that json::parse accepts, without the key.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "config/loader.hpp"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe;
  using fuzz::check;
  auto rest = fuzz::text_of(data, size);
  auto take = [&rest] {
    auto nul = rest.find('\0');
    auto part = rest.substr(0, nul);
    rest = nul == std::string_view::npos ? std::string_view{} : rest.substr(nul + 1);
    return std::string{part};
  };
  config::load_request request;
  request.file = "fuzz.json";
  const std::string file_text = take();
  const bool has_upstreams = !rest.empty();
  const std::string upstreams = take();
  const std::string set_lines = take();
  for (std::string_view sets = set_lines; !sets.empty();) {
    auto newline = sets.find('\n');
    request.sets.emplace_back(sets.substr(0, newline));
    sets = newline == std::string_view::npos ? std::string_view{} : sets.substr(newline + 1);
  }
  const std::string key = "sk-fuzz-secret-key-0123456789";
  config::env_lookup env = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "TROUPE_UPSTREAMS")
      return has_upstreams ? std::optional<std::string>{upstreams} : std::nullopt;
    if (name.rfind("TROUPE_", 0) == 0)
      return std::nullopt; // options come from the file and --set here
    return key;            // any upstream's api_key_env
  };

  auto loaded = config::load(request, file_text, env);
  if (auto* err = std::get_if<config::config_error>(&loaded)) {
    auto line = err->message();
    check(!line.empty() && line.find('\n') == std::string::npos, "a refusal is one line");
    check(!err->option.empty(), "a refusal names an option");
    // (Unless the input holds the key's text itself: a refusal may quote what was given.)
    check(line.find(key) == std::string::npos || fuzz::text_of(data, size).find(key) != std::string_view::npos,
          "a refusal never shows a key");
    return 0;
  }
  auto rendered = config::render_effective_json(std::get<config::settings>(loaded));
  check(json::parse(rendered).ok(), "the effective configuration renders as JSON");
  check(rendered.find(key) == std::string::npos || fuzz::text_of(data, size).find(key) != std::string_view::npos,
        "the effective configuration never shows a key");
  return 0;
}

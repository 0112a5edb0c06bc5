// Tests of config/options.cpp and config/loader.cpp: the option table, precedence, validation and rendering.

#include "config/loader.hpp"
#include "config/options.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using namespace troupe::config;

namespace {

/// An environment made of exactly these variables.
env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto found = vars.find(name);
    if (found == vars.end())
      return std::nullopt;
    return found->second;
  };
}

/// Gives each test its own temporary directory for config files.
class ConfigLoad : public ::testing::Test {
protected:
  void SetUp() override {
    char pattern[] = "/tmp/troupe_config_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  /// Writes `content` to a file in the temp directory and returns its path.
  std::string write_file(const std::string& content, const std::string& name = "troupe.json") {
    auto path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  /// Loads and expects success.
  settings load_ok(const load_request& req, const env_lookup& env = env_of({})) {
    auto result = load(req, env);
    if (auto* err = std::get_if<config_error>(&result)) {
      ADD_FAILURE() << "unexpected error: " << err->message();
      return settings{};
    }
    return std::get<settings>(result);
  }

  /// Loads and expects an error.
  config_error load_error(const load_request& req, const env_lookup& env = env_of({})) {
    auto result = load(req, env);
    if (std::holds_alternative<settings>(result)) {
      ADD_FAILURE() << "expected a config_error";
      return config_error{};
    }
    return std::get<config_error>(result);
  }

  load_request with_file(const std::string& content) { return load_request{write_file(content), {}}; }

  static load_request with_sets(std::vector<std::string> sets) { return load_request{std::nullopt, std::move(sets)}; }

  std::string dir_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

// --- Defaults ---

// With no file, environment or --set, every option has the default the table documents.
TEST_F(ConfigLoad, DefaultsMatchTheTable) {
  auto s = load_ok({});
  EXPECT_EQ(s.http.address, "127.0.0.1");
  EXPECT_EQ(s.http.port, 8080);
  EXPECT_EQ(s.http.threads, 0);
  EXPECT_EQ(s.http.max_body_bytes, 1048576);
  EXPECT_EQ(s.http.header_timeout_ms, 5000);
  EXPECT_EQ(s.http.body_timeout_ms, 30000);
  EXPECT_EQ(s.http.keepalive_timeout_ms, 60000);
  EXPECT_EQ(s.http.request_timeout_ms, 30000);
  EXPECT_EQ(s.actors.threads, 0);
  EXPECT_EQ(s.actors.max_throughput, 300);
  EXPECT_EQ(s.log.level, "info");
  EXPECT_DOUBLE_EQ(s.log.request_sample, 1.0);
  EXPECT_EQ(s.shutdown.grace_ms, 10000);
  EXPECT_EQ(s.db.url, "");
  EXPECT_EQ(s.db.connect_timeout_ms, 2000);
  EXPECT_FALSE(s.debug.enabled);
}

// Each default, set explicitly through --set, gives the same settings as no --set at all.
TEST_F(ConfigLoad, DefaultTextsParseAsTheirOwnValues) {
  std::vector<std::string> sets;
  for (const auto& spec : all_options())
    if (!spec.secret)
      sets.push_back(spec.key + "=" + spec.default_text);
  EXPECT_EQ(render_effective_json(load_ok(with_sets(sets))), render_effective_json(load_ok({})));
}

// --- Precedence: defaults < file < environment < --set ---

// A value in the file replaces the default.
TEST_F(ConfigLoad, FileOverridesDefault) {
  EXPECT_EQ(load_ok(with_file(R"({"http": {"port": 9000}})")).http.port, 9000);
}

// An environment variable replaces the default.
TEST_F(ConfigLoad, EnvOverridesDefault) {
  EXPECT_EQ(load_ok({}, env_of({{"TROUPE_HTTP_PORT", "9001"}})).http.port, 9001);
}

// --set replaces the default.
TEST_F(ConfigLoad, SetOverridesDefault) {
  EXPECT_EQ(load_ok(with_sets({"http.port=9002"})).http.port, 9002);
}

// The environment wins over the file.
TEST_F(ConfigLoad, EnvOverridesFile) {
  auto req = with_file(R"({"http": {"port": 9000}})");
  EXPECT_EQ(load_ok(req, env_of({{"TROUPE_HTTP_PORT", "9001"}})).http.port, 9001);
}

// --set wins over the environment and the file; the last --set of a key wins.
TEST_F(ConfigLoad, SetOverridesEnvAndFile) {
  auto req = with_file(R"({"http": {"port": 9000}})");
  req.sets = {"http.port=9002", "http.port=9003"};
  EXPECT_EQ(load_ok(req, env_of({{"TROUPE_HTTP_PORT", "9001"}})).http.port, 9003);
}

// Layers only replace the keys they name; the others keep the value of the layer below.
TEST_F(ConfigLoad, LayersMergePerKey) {
  auto req = with_file(R"({"http": {"port": 9000, "address": "0.0.0.0"}, "upstreams": []})");
  req.sets = {"log.level=debug"};
  auto s = load_ok(req, env_of({{"TROUPE_HTTP_THREADS", "3"}}));
  EXPECT_EQ(s.http.port, 9000);
  EXPECT_EQ(s.http.address, "0.0.0.0");
  EXPECT_EQ(s.http.threads, 3);
  EXPECT_EQ(s.log.level, "debug");
  EXPECT_EQ(s.http.max_body_bytes, 1048576);
}

// --- Accepted forms ---

// Text booleans accept true/false/1/0/yes/no in any case.
TEST_F(ConfigLoad, TextBooleansAcceptCommonSpellings) {
  for (const char* yes : {"true", "TRUE", "1", "yes", "Yes"})
    EXPECT_TRUE(load_ok(with_sets({std::string("debug.enabled=") + yes})).debug.enabled) << yes;
  for (const char* no : {"false", "False", "0", "no", "NO"})
    EXPECT_FALSE(load_ok({}, env_of({{"TROUPE_DEBUG_ENABLED", no}})).debug.enabled) << no;
}

// Text integers take an optional sign; text numbers take decimals and exponents.
TEST_F(ConfigLoad, TextNumbersAcceptSignsAndExponents) {
  auto s = load_ok(with_sets({"http.port=+81", "log.request_sample=2.5e-1", "shutdown.grace_ms=-0"}));
  EXPECT_EQ(s.http.port, 81);
  EXPECT_DOUBLE_EQ(s.log.request_sample, 0.25);
  EXPECT_EQ(s.shutdown.grace_ms, 0);
}

// A number option accepts a JSON integer as well as a JSON double.
TEST_F(ConfigLoad, JsonNumberAcceptsIntegers) {
  EXPECT_DOUBLE_EQ(load_ok(with_file(R"({"log": {"request_sample": 0}})")).log.request_sample, 0.0);
  EXPECT_DOUBLE_EQ(load_ok(with_file(R"({"log": {"request_sample": 0.5}})")).log.request_sample, 0.5);
}

// A top-level "upstreams" array lists the upstreams; any other JSON type there is an error.
TEST_F(ConfigLoad, UpstreamsMustBeAnArray) {
  EXPECT_TRUE(load_ok(with_file(R"({"upstreams": []})")).upstreams.empty());
  auto err = load_error(with_file(R"({"upstreams": {"name": "a"}})"));
  EXPECT_EQ(err.option, "upstreams");
  EXPECT_EQ(err.expected, "an array");
}

// An upstream entry: defaults for what is left out, the key read from the variable it names, never shown.
TEST_F(ConfigLoad, UpstreamsAreParsedWithTheirKeysFromTheEnvironment) {
  auto s = load_ok(with_file(R"({"upstreams": [
      {"name": "openai", "base_url": "https://api.openai.com/v1/", "api_key_env": "OPENAI_API_KEY",
       "models": ["gpt-4o-mini", "gpt-4o"], "priority": 2, "weight": 3, "timeout_ms": 1000},
      {"name": "mock", "base_url": "http://127.0.0.1:9999/v1", "models": ["gpt-4o-mini"]}]})"),
                   env_of({{"OPENAI_API_KEY", "sk-secret-value"}}));
  ASSERT_EQ(s.upstreams.size(), 2u);
  const auto& a = s.upstreams[0];
  EXPECT_EQ(a.name, "openai");
  EXPECT_EQ(a.base_url, "https://api.openai.com/v1"); // trailing slash dropped
  EXPECT_EQ(a.api_key, "sk-secret-value");
  EXPECT_EQ(a.models, (std::vector<std::string>{"gpt-4o-mini", "gpt-4o"}));
  EXPECT_EQ(a.priority, 2);
  EXPECT_EQ(a.weight, 3);
  EXPECT_EQ(a.timeout_ms, 1000);
  EXPECT_EQ(a.first_byte_timeout_ms, 1000); // defaults to the whole timeout
  const auto& b = s.upstreams[1];
  EXPECT_EQ(b.api_key, "");
  EXPECT_EQ(b.priority, 1);
  EXPECT_EQ(b.max_inflight, 64);
  auto printed = render_effective_json(s);
  EXPECT_EQ(printed.find("sk-secret-value"), std::string::npos);
  EXPECT_NE(printed.find("OPENAI_API_KEY"), std::string::npos);
}

// TROUPE_UPSTREAMS replaces the file's list.
TEST_F(ConfigLoad, UpstreamsFromTheEnvironmentReplaceTheFile) {
  auto s = load_ok(with_file(R"({"upstreams": [{"name": "a", "base_url": "http://a/v1", "models": ["m"]}]})"),
                   env_of({{"TROUPE_UPSTREAMS", R"([{"name": "b", "base_url": "http://b/v1", "models": ["m"]}])"}}));
  ASSERT_EQ(s.upstreams.size(), 1u);
  EXPECT_EQ(s.upstreams[0].name, "b");
}

// Bad entries name the entry and field; a missing key variable is an error, not an unauthenticated upstream.
TEST_F(ConfigLoad, RejectsBadUpstreams) {
  auto field_of = [&](const std::string& list, std::map<std::string, std::string> env = {}) {
    return load_error(with_file(R"({"upstreams": )" + list + "}"), env_of(std::move(env))).option;
  };
  EXPECT_EQ(field_of(R"([{"base_url": "http://a/v1", "models": ["m"]}])"), "upstreams[0].name");
  EXPECT_EQ(field_of(R"([{"name": "A B", "base_url": "http://a/v1", "models": ["m"]}])"), "upstreams[0].name");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "ftp://a/v1", "models": ["m"]}])"), "upstreams[0].base_url");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://user:pw@a/v1", "models": ["m"]}])"),
            "upstreams[0].base_url");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://a/v1?x=1", "models": ["m"]}])"), "upstreams[0].base_url");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://a/v1", "models": []}])"), "upstreams[0].models");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://a/v1", "models": ["m"], "weight": 0}])"),
            "upstreams[0].weight");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://a/v1", "models": ["m"], "api_key": "sk-x"}])"),
            "upstreams[0].api_key");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://a/v1", "models": ["m"], "api_key_env": "NOPE"}])"),
            "upstreams[0].api_key_env");
  EXPECT_EQ(field_of(R"([{"name": "a", "base_url": "http://a/v1", "models": ["m"]},
                         {"name": "a", "base_url": "http://b/v1", "models": ["m"]}])"),
            "upstreams[1].name");
  auto err = load_error(with_file(R"({"upstreams": [{"name": "a", "base_url": "http://a/v1", "models": ["m"],
                                                     "api_key": "sk-should-not-show"}]})"));
  EXPECT_EQ(err.message().find("sk-should-not-show"), std::string::npos);
}

// An upstream's active health check: a path under its base URL, an interval and a timeout.
TEST_F(ConfigLoad, UpstreamHealthChecks) {
  auto s = load_ok(with_file(R"({"upstreams": [{"name": "a", "base_url": "http://a/v1", "models": ["m"],
                                                "health_check_path": "/models", "health_check_interval_ms": 500,
                                                "health_check_timeout_ms": 100}]})"));
  ASSERT_EQ(s.upstreams.size(), 1u);
  EXPECT_EQ(s.upstreams[0].health_check_path, "/models");
  EXPECT_EQ(s.upstreams[0].health_check_interval_ms, 500);
  EXPECT_EQ(s.upstreams[0].health_check_timeout_ms, 100);
  EXPECT_NE(render_effective_json(s).find(R"("health_check_path": "/models")"), std::string::npos);
  for (const char* bad : {R"("health_check_path": "models")", R"("health_check_path": "/a b")",
                          R"("health_check_interval_ms": 10)"}) {
    auto err = load_error(with_file(std::string(R"({"upstreams": [{"name": "a", "base_url": "http://a/v1",
                                                   "models": ["m"], )") + bad + "}]}"));
    EXPECT_NE(err.option.find("upstreams[0].health_check_"), std::string::npos) << bad << ": " << err.message();
  }
}

TEST_F(ConfigLoad, UpstreamTypes) {
  auto s = load_ok(with_file(R"({"upstreams": [{"name": "a", "base_url": "http://a/v1", "models": ["m"]},
                                               {"name": "b", "type": "anthropic", "base_url": "http://b/v1",
                                                "models": ["c"]}]})"));
  ASSERT_EQ(s.upstreams.size(), 2u);
  EXPECT_EQ(s.upstreams[0].type, "openai");
  EXPECT_EQ(s.upstreams[1].type, "anthropic");
  EXPECT_NE(render_effective_json(s).find(R"("type": "anthropic")"), std::string::npos);
  auto err = load_error(with_file(R"({"upstreams": [{"name": "a", "type": "gemini", "base_url": "http://a/v1",
                                                     "models": ["m"]}]})"));
  EXPECT_EQ(err.option, "upstreams[0].type") << err.message();
}

// TROUPE_* variables that are not options (other subsystems' settings) are ignored.
TEST_F(ConfigLoad, UnknownEnvVariablesAreIgnored) {
  std::set<std::string> asked;
  env_lookup env = [&asked](const std::string& name) -> std::optional<std::string> {
    asked.insert(name);
    return name == "TROUPE_JWT_SECRET" || name == "TROUPE_HTTP_PROT" ? std::optional<std::string>("x") : std::nullopt;
  };
  load_ok({}, env);
  std::set<std::string> expected;
  for (const auto& spec : all_options())
    expected.insert(spec.env_name());
  expected.insert("TROUPE_UPSTREAMS");
  expected.insert("TROUPE_PRICES");
  EXPECT_EQ(asked, expected);
}

// The price table: USD per million tokens, kept as integer pico-dollars per token, so a call's cost is exact.
TEST_F(ConfigLoad, PricesAreReadAsExactPicoDollarsPerToken) {
  auto s = load_ok(with_file(R"({"prices": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
                                            "free": {"input_per_mtok": 0, "output_per_mtok": 0}}})"));
  ASSERT_EQ(s.prices.size(), 2u);
  EXPECT_EQ(s.prices["gpt-4o-mini"].input_pusd_per_token, 150000);
  EXPECT_EQ(s.prices["gpt-4o-mini"].output_pusd_per_token, 600000);
  // 1000 prompt and 500 completion tokens: 0.00015 + 0.0003 USD.
  EXPECT_EQ(cost_pusd(s.prices, "gpt-4o-mini", 1000, 500), 450000000);
  EXPECT_EQ(usd_text(cost_pusd(s.prices, "gpt-4o-mini", 1000, 500)), "0.000450000000");
  EXPECT_EQ(usd_text(1234567890123456), "1234.567890123456");
  EXPECT_EQ(cost_pusd(s.prices, "unpriced-model", 1000, 500), 0);
  EXPECT_EQ(cost_pusd(s.prices, "gpt-4o-mini", INT64_MAX / 2, INT64_MAX / 2), INT64_MAX); // saturates

  // TROUPE_PRICES replaces the file's table.
  env_lookup env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "TROUPE_PRICES")
      return std::string(R"({"m": {"input_per_mtok": 2.5, "output_per_mtok": 10}})");
    return std::nullopt;
  };
  auto from_env = load_ok(with_file(R"({"prices": {"other": {"input_per_mtok": 1, "output_per_mtok": 1}}})"), env);
  ASSERT_EQ(from_env.prices.size(), 1u);
  EXPECT_EQ(from_env.prices["m"].output_pusd_per_token, 10000000);
  EXPECT_NE(render_effective_json(from_env).find(R"("prices": {)"), std::string::npos) << render_effective_json(from_env);
}

TEST_F(ConfigLoad, BadPricesAreRefusedByTheirField) {
  struct expectation {
    const char* file;
    const char* option;
  };
  for (const auto& e : {
         expectation{R"({"prices": [1]})", "prices"},
         expectation{R"({"prices": {"m": 1}})", "prices.m"},
         expectation{R"({"prices": {"m": {"input_per_mtok": -1, "output_per_mtok": 1}}})", "prices.m.input_per_mtok"},
         expectation{R"({"prices": {"m": {"input_per_mtok": 1, "output_per_mtok": "1"}}})", "prices.m.output_per_mtok"},
         expectation{R"({"prices": {"m": {"input_per_mtok": 1, "output_per_mtok": 1e9}}})", "prices.m.output_per_mtok"},
         expectation{R"({"prices": {"m": {"input_per_mtok": 1}}})", "prices.m.output_per_mtok"},
         expectation{R"({"prices": {"m": {"input_per_mtok": 1, "output_per_mtok": 1, "cached": 1}}})",
                     "prices.m.cached"},
         expectation{R"({"prices": {"": {"input_per_mtok": 1, "output_per_mtok": 1}}})", "prices"},
       }) {
    auto err = load_error(with_file(e.file));
    EXPECT_EQ(err.option, e.option) << e.file << ": " << err.message();
  }
}

// --- Bad values ---

// A JSON value of the wrong type is rejected, naming the option and the expected form.
TEST_F(ConfigLoad, RejectsWrongJsonType) {
  auto err = load_error(with_file(R"({"http": {"port": "8080"}})"));
  EXPECT_EQ(err.option, "http.port");
  EXPECT_EQ(err.value, R"("8080")");
  EXPECT_EQ(err.expected, "an integer from 0 to 65535");
  EXPECT_EQ(load_error(with_file(R"({"http": {"port": 80.5}})")).option, "http.port");
  EXPECT_EQ(load_error(with_file(R"({"debug": {"enabled": 1}})")).option, "debug.enabled");
  EXPECT_EQ(load_error(with_file(R"({"log": {"level": null}})")).option, "log.level");
  EXPECT_EQ(load_error(with_file(R"({"log": {"request_sample": "1"}})")).option, "log.request_sample");
}

// A value below the minimum is rejected.
TEST_F(ConfigLoad, RejectsValueBelowRange) {
  auto err = load_error({}, env_of({{"TROUPE_HTTP_PORT", "-1"}}));
  EXPECT_EQ(err.option, "http.port");
  EXPECT_EQ(err.value, "-1");
  EXPECT_EQ(err.detail, "set by TROUPE_HTTP_PORT");
  EXPECT_EQ(load_error(with_file(R"({"db": {"connect_timeout_ms": 99}})")).option, "db.connect_timeout_ms");
}

// A value above the maximum is rejected, including ones too big for 64 bits.
TEST_F(ConfigLoad, RejectsValueAboveRange) {
  EXPECT_EQ(load_error(with_sets({"http.port=65536"})).value, "65536");
  EXPECT_EQ(load_error(with_sets({"log.request_sample=1.01"})).option, "log.request_sample");
  EXPECT_EQ(load_error(with_sets({"http.port=99999999999999999999"})).option, "http.port");
  EXPECT_EQ(load_error(with_file(R"({"http": {"port": 18446744073709551615}})")).option, "http.port");
}

// Text that is not a number is rejected, as are empty text, NaN and whitespace.
TEST_F(ConfigLoad, RejectsNonNumericText) {
  auto err = load_error(with_sets({"http.port=abc"}));
  EXPECT_EQ(err.option, "http.port");
  EXPECT_EQ(err.value, "abc");
  for (const char* bad : {"", " 80", "+", "+-1", "0x50"})
    EXPECT_EQ(load_error(with_sets({std::string("http.port=") + bad})).option, "http.port") << bad;
  EXPECT_EQ(load_error(with_sets({"log.request_sample=nan"})).option, "log.request_sample");
}

// A number followed by anything else is rejected: the whole text must parse.
TEST_F(ConfigLoad, RejectsTrailingGarbage) {
  EXPECT_EQ(load_error({}, env_of({{"TROUPE_HTTP_PORT", "80x"}})).value, "80x");
  EXPECT_EQ(load_error(with_sets({"log.request_sample=0.5 "})).option, "log.request_sample");
}

// A key the table does not know is rejected in the file, naming it.
TEST_F(ConfigLoad, RejectsUnknownKeyInFile) {
  auto err = load_error(with_file(R"({"http": {"prot": 8080}})"));
  EXPECT_EQ(err.value, "http.prot");
  EXPECT_TRUE(contains(err.message(), "http.prot"));
  EXPECT_TRUE(contains(err.expected, "port"));
}

// A section the table does not know is rejected in the file, naming it; a section must be an object.
TEST_F(ConfigLoad, RejectsUnknownSectionInFile) {
  auto err = load_error(with_file(R"({"htp": {"port": 8080}})"));
  EXPECT_EQ(err.value, "htp");
  EXPECT_TRUE(contains(err.detail, "unknown section"));
  EXPECT_EQ(load_error(with_file(R"({"http": 8080})")).option, "http");
  EXPECT_EQ(load_error(with_file(R"([1, 2])")).option, "--config");
}

// --set with a key the table does not know is rejected.
TEST_F(ConfigLoad, RejectsUnknownSetKey) {
  auto err = load_error(with_sets({"http.prot=8080"}));
  EXPECT_EQ(err.option, "--set");
  EXPECT_EQ(err.value, "http.prot");
}

// --set without '=' is rejected.
TEST_F(ConfigLoad, RejectsSetWithoutEquals) {
  auto err = load_error(with_sets({"http.port"}));
  EXPECT_EQ(err.option, "--set");
  EXPECT_EQ(err.value, "http.port");
  EXPECT_EQ(err.expected, "section.key=value");
}

// A boolean spelled any other way is rejected.
TEST_F(ConfigLoad, RejectsBadBoolean) {
  auto err = load_error({}, env_of({{"TROUPE_DEBUG_ENABLED", "maybe"}}));
  EXPECT_EQ(err.option, "debug.enabled");
  EXPECT_EQ(err.value, "maybe");
  EXPECT_EQ(err.expected, "true or false");
}

// A string option with allowed values rejects anything else.
TEST_F(ConfigLoad, RejectsStringNotInAllowedSet) {
  auto err = load_error(with_sets({"log.level=verbose"}));
  EXPECT_EQ(err.option, "log.level");
  EXPECT_EQ(err.expected, "one of trace, debug, info, warn, error, off");
}

// A file that is not valid JSON is rejected, naming the file and the parse error with its offset.
TEST_F(ConfigLoad, RejectsInvalidJsonWithOffset) {
  auto req = with_file(R"({"http": {"port": 80,}})");
  auto err = load_error(req);
  EXPECT_EQ(err.option, "--config");
  EXPECT_EQ(err.value, *req.file);
  EXPECT_TRUE(contains(err.detail, "offset 21")) << err.detail;
}

// A file or TROUPE_UPSTREAMS with a key twice in one object is ambiguous (which value wins?): rejected, naming the
// key's path; so is one nested deeper than any configuration (and, read recursively, deep enough to crash).
TEST_F(ConfigLoad, RejectsDuplicateKeysAndDeepNesting) {
  auto err = load_error(with_file(R"({"http": {"port": 80, "threads": 2, "port": 9090}})"));
  EXPECT_EQ(err.option, "--config");
  EXPECT_TRUE(contains(err.detail, "appears twice")) << err.detail;
  EXPECT_TRUE(contains(err.detail, "(at http.port)")) << err.detail;
  err = load_error(with_file(R"({"http": {"port": 80}, "http": {"port": 81}})"));
  EXPECT_TRUE(contains(err.detail, "(at http)")) << err.detail;
  err = load_error(with_file(std::string(100000, '[')));
  EXPECT_TRUE(contains(err.detail, "deeper than 64 levels")) << err.detail;
  err = load_error(with_sets({}),
                   env_of({{"TROUPE_UPSTREAMS", R"([{"name": "a", "base_url": "http://a/v1", "models": ["m"],
                                                     "base_url": "http://evil/v1"}])"}}));
  EXPECT_EQ(err.option, "upstreams");
  EXPECT_TRUE(contains(err.detail, "(at upstreams[0].base_url)")) << err.detail;
  // The text can come from the caller instead of a file.
  load_request from_text;
  from_text.file = "inline.json";
  auto loaded = load(from_text, R"({"http": {"port": 8181}})", env_of({}));
  ASSERT_TRUE(std::holds_alternative<settings>(loaded));
  EXPECT_EQ(std::get<settings>(loaded).http.port, 8181);
}

// A file that cannot be read is rejected, naming it and the system's reason.
TEST_F(ConfigLoad, RejectsMissingFile) {
  auto missing = dir_ + "/missing.json";
  auto err = load_error(load_request{missing, {}});
  EXPECT_EQ(err.option, "--config");
  EXPECT_EQ(err.value, missing);
  EXPECT_TRUE(contains(err.detail, "No such file")) << err.detail;
}

// A directory given as the file is an error value, not an exception.
TEST_F(ConfigLoad, RejectsDirectoryAsFile) {
  auto err = load_error(load_request{dir_, {}});
  EXPECT_EQ(err.option, "--config");
  EXPECT_TRUE(contains(err.detail, "Is a directory")) << err.detail;
}

// A secret in the file is rejected without echoing it, pointing at its environment variable.
TEST_F(ConfigLoad, RejectsSecretInFile) {
  auto err = load_error(with_file(R"({"db": {"url": "postgres://u:hunter2@h/db"}})"));
  EXPECT_EQ(err.option, "db.url");
  EXPECT_FALSE(contains(err.message(), "hunter2"));
  EXPECT_TRUE(contains(err.message(), "db.url is a secret: set it in the environment as TROUPE_DATABASE_URL"));
}

// A secret given with --set is rejected the same way.
TEST_F(ConfigLoad, RejectsSecretViaSet) {
  auto err = load_error(with_sets({"db.url=postgres://u:hunter2@h/db"}));
  EXPECT_EQ(err.option, "db.url");
  EXPECT_FALSE(contains(err.message(), "hunter2"));
  EXPECT_TRUE(contains(err.message(), "TROUPE_DATABASE_URL"));
}

// --- Secrets ---

// A secret from its environment variable lands in settings and is printed only as "***".
TEST_F(ConfigLoad, SecretFromEnvIsLoadedAndRedacted) {
  auto s = load_ok({}, env_of({{"TROUPE_DATABASE_URL", "postgres://u:hunter2@h/db"}}));
  EXPECT_EQ(s.db.url, "postgres://u:hunter2@h/db");
  auto json = render_effective_json(s);
  EXPECT_FALSE(contains(json, "hunter2"));
  EXPECT_TRUE(contains(json, R"("url": "***")")) << json;
  EXPECT_TRUE(contains(render_effective_json(load_ok({})), R"("url": "")"));
}

// --- Names and messages ---

// The environment name is TROUPE_ + the upper-cased key with '.' -> '_', unless the option names its own.
TEST(ConfigOptions, EnvNamesDeriveFromKeys) {
  EXPECT_EQ(derived_env_name("http.max_body_bytes"), "TROUPE_HTTP_MAX_BODY_BYTES");
  ASSERT_NE(find_option("http.max_body_bytes"), nullptr);
  EXPECT_EQ(find_option("http.max_body_bytes")->env_name(), "TROUPE_HTTP_MAX_BODY_BYTES");
  ASSERT_NE(find_option("db.url"), nullptr);
  EXPECT_EQ(find_option("db.url")->env_name(), "TROUPE_DATABASE_URL");
  EXPECT_EQ(find_option("no.such"), nullptr);
}

// message() is one line naming the option, the value and the expected form, even for a value with newlines.
TEST_F(ConfigLoad, MessageIsOneLineWithOptionValueAndExpected) {
  auto err = load_error(with_sets({"http.port=abc"}));
  EXPECT_EQ(err.message(), R"(invalid value for http.port: "abc" (expected an integer from 0 to 65535); set by --set)");
  auto multiline = load_error({}, env_of({{"TROUPE_LOG_LEVEL", "a\nb\"c"}})).message();
  EXPECT_EQ(multiline.find('\n'), std::string::npos);
  EXPECT_TRUE(contains(multiline, R"("a\nb\"c")")) << multiline;
  EXPECT_TRUE(contains(multiline, "log.level"));
}

// --- The table and what is generated from it ---

// Every option has a unique "section.name" key, a one-line doc and an env name.
TEST(ConfigOptions, EveryOptionIsDocumented) {
  std::set<std::string> keys;
  for (const auto& spec : all_options()) {
    EXPECT_TRUE(keys.insert(spec.key).second) << spec.key;
    EXPECT_FALSE(spec.doc.empty()) << spec.key;
    EXPECT_EQ(spec.doc.find('\n'), std::string::npos) << spec.key;
    EXPECT_FALSE(spec.section().empty()) << spec.key;
    EXPECT_FALSE(spec.name().empty()) << spec.key;
    EXPECT_EQ(spec.env_name().rfind("TROUPE_", 0), 0u) << spec.key;
  }
  EXPECT_EQ(all_options().size(), 176u);
}

// The README table has a header, a separator and one row per option.
TEST(ConfigOptions, MarkdownHasOneRowPerOption) {
  auto markdown = render_options_markdown();
  size_t rows = 0;
  for (size_t at = markdown.find("\n| `"); at != std::string::npos; at = markdown.find("\n| `", at + 1))
    ++rows;
  EXPECT_EQ(rows, all_options().size());
  EXPECT_EQ(markdown.rfind("| option | type | default | env | description |\n|---|", 0), 0u);
  EXPECT_TRUE(contains(markdown, "| `http.port` | integer | `8080` | `TROUPE_HTTP_PORT` |"));
}

// --help lists every key with its env var on its own line.
TEST(ConfigOptions, HelpListsEveryOption) {
  auto help = render_options_help();
  for (const auto& spec : all_options()) {
    auto at = help.find("  " + spec.key + " ");
    ASSERT_NE(at, std::string::npos) << spec.key;
    auto line = help.substr(at, help.find('\n', at) - at);
    EXPECT_TRUE(contains(line, spec.env_name())) << line;
    EXPECT_TRUE(contains(line, spec.doc)) << line;
  }
}

// --print-config output, minus the secrets, loads back as a --config file to the same settings.
TEST_F(ConfigLoad, EffectiveJsonRoundTripsAsConfigFile) {
  auto s = load_ok(with_sets({"http.port=1234", "log.request_sample=0.125", "debug.enabled=yes"}));
  auto rendered = render_effective_json(s);
  rapidjson::Document doc;
  doc.Parse(rendered.c_str());
  ASSERT_FALSE(doc.HasParseError()) << rendered;
  // Secrets are rendered redacted and cannot come from a file.
  for (const auto& spec : all_options())
    if (spec.secret)
      doc[spec.section().c_str()].RemoveMember(spec.name().c_str());
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  doc.Accept(writer);
  EXPECT_EQ(render_effective_json(load_ok(with_file(buffer.GetString()))), rendered);
}

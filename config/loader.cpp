#include "config/loader.hpp"

#include "config/json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

namespace troupe::config {

namespace {

constexpr const char* redacted = "***";
constexpr size_t max_shown_value = 120; // longer values are cut in messages

/// How a secret is shown: "***" when set, "" when empty.
std::string redact(const std::string& value) {
  return value.empty() ? "" : redacted;
}

config_error make_config_error(std::string option, std::string value, std::string expected, std::string detail = "") {
  return config_error{std::move(option), std::move(value), std::move(expected), std::move(detail)};
}

/// A secret was given in the file or with --set; the message names the environment variable to use.
config_error secret_error(const option_spec& spec) {
  return make_config_error(spec.key, redacted, "no value outside the environment",
                           spec.key + " is a secret: set it in the environment as " + spec.env_name());
}

/// The sections of the table, in table order.
std::vector<std::string> sections() {
  std::vector<std::string> result;
  for (const auto& spec : all_options())
    if (std::find(result.begin(), result.end(), spec.section()) == result.end())
      result.push_back(spec.section());
  return result;
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items)
    text += (text.empty() ? "" : ", ") + item;
  return text;
}

// --- Values written as text: defaults, environment, --set ---

template <class T>
struct type_tag {};

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// Removes a leading '+' that is followed by a digit; returns false if the text cannot be a number.
bool strip_plus(std::string_view& text) {
  if (text.empty() || text[0] != '+')
    return true;
  text.remove_prefix(1);
  return !text.empty() && std::isdigit(static_cast<unsigned char>(text[0]));
}

std::optional<bool> parse_text(type_tag<bool>, std::string_view text) {
  for (const char* yes : {"true", "1", "yes"})
    if (equals_ignoring_case(text, yes))
      return true;
  for (const char* no : {"false", "0", "no"})
    if (equals_ignoring_case(text, no))
      return false;
  return std::nullopt;
}

/// Base 10 with an optional sign; the whole text must be the number, and it must fit int64.
std::optional<int64_t> parse_text(type_tag<int64_t>, std::string_view text) {
  int64_t value = 0;
  if (!strip_plus(text))
    return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

/// A decimal or exponent number (locale-independent); the whole text must be the number.
std::optional<double> parse_text(type_tag<double>, std::string_view text) {
  double value = 0;
  if (!strip_plus(text))
    return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

std::optional<std::string> parse_text(type_tag<std::string>, std::string_view text) {
  return std::string(text);
}

// --- Values from the JSON file: the JSON type must match the option's ---

std::optional<bool> from_json(type_tag<bool>, const rapidjson::Value& json) {
  return json.IsBool() ? std::optional<bool>(json.GetBool()) : std::nullopt;
}

std::optional<int64_t> from_json(type_tag<int64_t>, const rapidjson::Value& json) {
  return json.IsInt64() ? std::optional<int64_t>(json.GetInt64()) : std::nullopt;
}

std::optional<double> from_json(type_tag<double>, const rapidjson::Value& json) {
  return json.IsNumber() ? std::optional<double>(json.GetDouble()) : std::nullopt;
}

std::optional<std::string> from_json(type_tag<std::string>, const rapidjson::Value& json) {
  if (!json.IsString())
    return std::nullopt;
  return std::string(json.GetString(), json.GetStringLength());
}

/// Compact JSON text of a value, to show it in an error.
std::string json_text(const rapidjson::Value& json) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  json.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// --- Storing a value into settings ---

bool acceptable(const option_spec&, bool) {
  return true;
}

bool acceptable(const option_spec& spec, double value) {
  return value >= spec.min && value <= spec.max; // false for NaN
}

bool acceptable(const option_spec& spec, int64_t value) {
  return acceptable(spec, static_cast<double>(value));
}

bool acceptable(const option_spec& spec, const std::string& value) {
  return spec.allowed.empty() || std::find(spec.allowed.begin(), spec.allowed.end(), value) != spec.allowed.end();
}

/// Converts a value with `convert(type_tag<T>)` (which yields std::optional<T>) and stores it in the option's
/// member of `s`. If it has the wrong form or is out of range, returns an error that shows `shown` (redacted
/// for secrets) and says where the value came from (`source`).
template <class Convert>
std::optional<config_error> assign(const option_spec& spec, settings& s, const std::string& shown,
                                   const std::string& source, Convert convert) {
  return std::visit(
    [&](const auto& member) -> std::optional<config_error> {
      using value_type = typename std::decay_t<decltype(member)>::value_type;
      auto value = convert(type_tag<value_type>{});
      if (!value || !acceptable(spec, *value))
        return make_config_error(spec.key, spec.secret ? redact(shown) : shown, spec.expected(), source);
      member.get(s) = std::move(*value);
      return std::nullopt;
    },
    spec.binding);
}

std::optional<config_error> assign_text(const option_spec& spec, settings& s, const std::string& text,
                                        const std::string& source) {
  return assign(spec, s, text, source, [&](auto tag) { return parse_text(tag, text); });
}

// --- The layers ---

struct file_read {
  std::string content;
  std::string error; // the system's reason when the file could not be read; empty on success
};

/// Reads a whole file with C stdio: unlike std::ifstream, it reports errors such as reading a directory
/// without throwing.
file_read read_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file)
    return {"", std::strerror(errno)};
  file_read result;
  char chunk[65536];
  size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof chunk, file.get())) > 0)
    result.content.append(chunk, got);
  if (std::ferror(file.get()))
    result.error = std::strerror(errno);
  return result;
}

/// Applies the text of a JSON file nested by section: {"http": {"port": 8080}}. `path` names it in errors.
std::optional<config_error> apply_file_text(const std::string& text, const std::string& path, settings& s,
                                            const env_lookup& env) {
  const std::string object_form = R"(a JSON object nested by section, e.g. {"http": {"port": 8080}})";
  auto parsed = json::parse(text);
  if (!parsed) {
    const auto& e = parsed.error();
    return make_config_error("--config", path, object_form,
                             "parse error at offset " + std::to_string(e.offset) + ": " + e.reason
                               + (e.param.empty() ? "" : " (at " + e.param + ")"));
  }
  const auto& doc = parsed.document();
  if (!doc.IsObject())
    return make_config_error("--config", path, object_form, "the top level is not an object");

  const std::string source = "set in " + path;
  for (const auto& section : doc.GetObject()) {
    const std::string section_name(section.name.GetString(), section.name.GetStringLength());
    if (section_name == "upstreams") {
      if (!section.value.IsArray())
        return make_config_error("upstreams", json_text(section.value), "an array", source);
      if (auto err = parse_upstreams(json_text(section.value), source, env, s.upstreams))
        return err;
      continue;
    }
    if (section_name == "prices") {
      if (auto err = parse_prices(json_text(section.value), source, s.prices))
        return err;
      continue;
    }
    const auto known_sections = sections();
    if (std::find(known_sections.begin(), known_sections.end(), section_name) == known_sections.end())
      return make_config_error("--config", section_name, "a section: one of " + join(known_sections) + ", upstreams, prices",
                               "unknown section in " + path);
    if (!section.value.IsObject())
      return make_config_error(section_name, json_text(section.value), "an object of " + section_name + " options",
                               source);
    for (const auto& member : section.value.GetObject()) {
      const std::string key = section_name + "." + std::string(member.name.GetString(), member.name.GetStringLength());
      const option_spec* spec = find_option(key);
      // The value of an unknown key is not shown: it may be a misspelt secret.
      if (spec == nullptr) {
        std::vector<std::string> names;
        for (const auto& known : all_options())
          if (known.section() == section_name)
            names.push_back(known.name());
        return make_config_error("--config", key, "one of the " + section_name + " options " + join(names),
                                 "unknown option in " + path);
      }
      if (spec->secret)
        return secret_error(*spec);
      auto shown = json_text(member.value);
      if (auto err = assign(*spec, s, shown, source, [&](auto tag) { return from_json(tag, member.value); }))
        return err;
    }
  }
  return std::nullopt;
}

/// Applies a JSON file nested by section.
std::optional<config_error> apply_file(const std::string& path, settings& s, const env_lookup& env) {
  auto file = read_file(path);
  if (!file.error.empty())
    return make_config_error("--config", path, "a readable JSON file", file.error);
  return apply_file_text(file.content, path, s, env);
}

std::optional<config_error> apply_env(const env_lookup& env, settings& s) {
  if (!env)
    return std::nullopt;
  for (const auto& spec : all_options())
    if (auto text = env(spec.env_name()))
      if (auto err = assign_text(spec, s, *text, "set by " + spec.env_name()))
        return err;
  return std::nullopt;
}

/// Applies "section.key=value" assignments in order.
std::optional<config_error> apply_sets(const std::vector<std::string>& sets, settings& s) {
  for (const auto& assignment : sets) {
    auto equals = assignment.find('=');
    if (equals == std::string::npos)
      return make_config_error("--set", assignment, "section.key=value");
    auto key = assignment.substr(0, equals);
    const option_spec* spec = find_option(key);
    if (spec == nullptr)
      return make_config_error("--set", key, "an option listed by troupe --help", "unknown option");
    if (spec->secret)
      return secret_error(*spec);
    if (auto err = assign_text(*spec, s, assignment.substr(equals + 1), "set by --set"))
      return err;
  }
  return std::nullopt;
}

// --- Rendering ---

using pretty_writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void write_value(pretty_writer& writer, const option_spec&, bool value) {
  writer.Bool(value);
}

void write_value(pretty_writer& writer, const option_spec&, int64_t value) {
  writer.Int64(value);
}

void write_value(pretty_writer& writer, const option_spec&, double value) {
  writer.Double(value);
}

void write_value(pretty_writer& writer, const option_spec& spec, const std::string& value) {
  const std::string shown = spec.secret ? redact(value) : value;
  writer.String(shown.data(), static_cast<rapidjson::SizeType>(shown.size()));
}

/// The default as shown in docs: "" for an empty one.
std::string default_shown(const option_spec& spec) {
  return spec.default_text.empty() ? "\"\"" : spec.default_text;
}

/// The doc line followed by the accepted values, e.g. "TCP port; ... (0 to 65535)".
std::string description(const option_spec& spec) {
  if (spec.secret)
    return spec.doc + " (secret: environment only)";
  auto values = spec.accepted_values();
  return values.empty() ? spec.doc : spec.doc + " (" + values + ")";
}

/// Escapes quotes, backslashes and control characters and cuts long values, so a value fits in one line.
std::string quoted(const std::string& value) {
  std::string text = "\"";
  for (size_t i = 0; i < value.size(); ++i) {
    if (i == max_shown_value) {
      text += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      text += '\\';
      text += static_cast<char>(c);
    } else if (c == '\n') {
      text += "\\n";
    } else if (c == '\t') {
      text += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      text += escaped;
    } else {
      text += static_cast<char>(c);
    }
  }
  return text + "\"";
}

} // namespace

std::string config_error::message() const {
  std::string line = "invalid value for " + option + ": " + quoted(value) + " (expected " + expected + ")";
  if (!detail.empty())
    line += "; " + detail;
  // The value is escaped already; a control character elsewhere (e.g. in a file name) must not break the line.
  std::replace_if(
    line.begin(), line.end(), [](char c) { return std::iscntrl(static_cast<unsigned char>(c)); }, ' ');
  return line;
}

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* value = std::getenv(name.c_str()))
      return std::string(value);
    return std::nullopt;
  };
}

namespace {

/// load(), with the file's text given (`file_text` non-null) or read from req.file.
std::variant<settings, config_error> load_layers(const load_request& req, const std::string* file_text,
                                                 const env_lookup& env) {
  settings s{};
  for (const auto& spec : all_options())
    if (auto err = assign_text(spec, s, spec.default_text, "the default of the option table"))
      return *err;
  if (file_text) {
    if (auto err = apply_file_text(*file_text, req.file.value_or("the configuration"), s, env))
      return *err;
  } else if (req.file) {
    if (auto err = apply_file(*req.file, s, env))
      return *err;
  }
  if (auto err = apply_env(env, s))
    return *err;
  // The whole list from the environment replaces the file's.
  if (auto list = env ? env("TROUPE_UPSTREAMS") : std::nullopt)
    if (auto err = parse_upstreams(*list, "set by TROUPE_UPSTREAMS", env, s.upstreams))
      return *err;
  if (auto table = env ? env("TROUPE_PRICES") : std::nullopt)
    if (auto err = parse_prices(*table, "set by TROUPE_PRICES", s.prices))
      return *err;
  if (auto err = apply_sets(req.sets, s))
    return *err;
  return s;
}

} // namespace

std::variant<settings, config_error> load(const load_request& req, const env_lookup& env) {
  return load_layers(req, nullptr, env);
}

std::variant<settings, config_error> load(const load_request& req, const std::string& file_text,
                                          const env_lookup& env) {
  return load_layers(req, &file_text, env);
}

std::string render_effective_json(const settings& s) {
  rapidjson::StringBuffer buffer;
  pretty_writer writer(buffer);
  writer.SetIndent(' ', 2);
  writer.StartObject();
  for (const auto& section : sections()) {
    writer.Key(section.c_str());
    writer.StartObject();
    for (const auto& spec : all_options()) {
      if (spec.section() != section)
        continue;
      writer.Key(spec.name().c_str());
      std::visit([&](const auto& member) { write_value(writer, spec, member.get_const(s)); }, spec.binding);
    }
    writer.EndObject();
  }
  // The upstream list, keys never shown (only the variable that holds each).
  writer.Key("upstreams");
  writer.StartArray();
  for (const auto& u : s.upstreams) {
    writer.StartObject();
    writer.Key("name");
    writer.String(u.name.c_str());
    writer.Key("type");
    writer.String(u.type.c_str());
    writer.Key("base_url");
    writer.String(u.base_url.c_str());
    writer.Key("api_key_env");
    writer.String(u.api_key_env.c_str());
    writer.Key("models");
    writer.StartArray();
    for (const auto& m : u.models)
      writer.String(m.c_str());
    writer.EndArray();
    for (auto [key, value] : {std::pair<const char*, int64_t>{"priority", u.priority},
                              {"weight", u.weight},
                              {"timeout_ms", u.timeout_ms},
                              {"connect_timeout_ms", u.connect_timeout_ms},
                              {"first_byte_timeout_ms", u.first_byte_timeout_ms},
                              {"max_inflight", u.max_inflight},
                              {"health_check_interval_ms", u.health_check_interval_ms},
                              {"health_check_timeout_ms", u.health_check_timeout_ms}}) {
      writer.Key(key);
      writer.Int64(value);
    }
    writer.Key("health_check_path");
    writer.String(u.health_check_path.c_str());
    writer.EndObject();
  }
  writer.EndArray();
  writer.Key("prices");
  writer.StartObject();
  for (const auto& [model, price] : s.prices) {
    writer.Key(model.c_str(), static_cast<rapidjson::SizeType>(model.size()));
    writer.StartObject();
    writer.Key("input_per_mtok");
    writer.Double(static_cast<double>(price.input_pusd_per_token) / 1e6);
    writer.Key("output_per_mtok");
    writer.Double(static_cast<double>(price.output_pusd_per_token) / 1e6);
    writer.EndObject();
  }
  writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

std::string render_options_help() {
  std::vector<std::vector<std::string>> rows{{"OPTION", "TYPE", "DEFAULT", "ENVIRONMENT", "DESCRIPTION"}};
  for (const auto& spec : all_options())
    rows.push_back({spec.key, to_string(spec.type()), default_shown(spec), spec.env_name(), description(spec)});
  std::vector<size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows)
    for (size_t column = 0; column < row.size(); ++column)
      widths[column] = std::max(widths[column], row[column].size());

  std::string text;
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t column = 0; column < row.size(); ++column) {
      line += " " + row[column];
      if (column + 1 < row.size())
        line += std::string(widths[column] - row[column].size() + 1, ' ');
    }
    text += line + "\n";
  }
  return text;
}

std::string render_options_markdown() {
  auto code = [](const std::string& text) { return "`" + text + "`"; };
  std::string text = "| option | type | default | env | description |\n|---|---|---|---|---|\n";
  for (const auto& spec : all_options()) {
    auto doc = description(spec);
    for (size_t at = doc.find('|'); at != std::string::npos; at = doc.find('|', at + 2))
      doc.replace(at, 1, "\\|");
    text += "| " + code(spec.key) + " | " + to_string(spec.type()) + " | " + code(default_shown(spec)) + " | "
            + code(spec.env_name()) + " | " + doc + " |\n";
  }
  return text;
}

} // namespace troupe::config

#include "tools/mock-upstream/control.hpp"

#include "tools/mock-upstream/json_text.hpp"

#include "config/json.hpp"

#include <rapidjson/document.h>

namespace troupe::mock {

namespace {

constexpr size_t max_authorization_values = 16;
constexpr size_t max_authorization_bytes = 256;

/// A JSON member's value in the text form set_knob() reads.
bool knob_text(const rapidjson::Value& value, std::string& out) {
  if (value.IsString())
    out.assign(value.GetString(), value.GetStringLength());
  else if (value.IsInt64())
    out = std::to_string(value.GetInt64());
  else if (value.IsUint64())
    out = std::to_string(value.GetUint64());
  else if (value.IsDouble())
    out = json_number(value.GetDouble());
  else if (value.IsNull())
    out = "none";
  else
    return false;
  return true;
}

void append_counts(std::string& out, const char* name, const std::map<std::string, uint64_t>& counts) {
  out += ",\"";
  out += name;
  out += "\":{";
  bool first = true;
  for (const auto& [key, n] : counts) {
    if (!first)
      out += ',';
    first = false;
    append_json_string(out, key);
    out += ':';
    out += std::to_string(n);
  }
  out += '}';
}

} // namespace

mock_state::mock_state(knobs flag_defaults, uint64_t seed, std::vector<std::string> models,
                       connection_counters& connections)
  : flag_defaults_(flag_defaults), seed_(seed), models_(std::move(models)), connections_(connections),
    defaults_(flag_defaults), random_(seed) {}

admission mock_state::admit_chat(const knob_overrides& per_request, std::string_view model, bool stream,
                                 std::string_view authorization) {
  std::lock_guard<std::mutex> guard{mutex_};
  admission result;
  result.number = ++requests_;
  result.resolved = defaults_;
  if (!script_.empty()) {
    script_.front().knobs.apply_to(result.resolved);
    if (--script_.front().remaining == 0)
      script_.pop_front();
  }
  per_request.apply_to(result.resolved);

  const auto& k = result.resolved;
  if (k.status >= 400)
    result.status = k.status;
  else if (k.error_rate > 0 && std::uniform_real_distribution<double>{0.0, 1.0}(random_) < k.error_rate)
    result.status = k.error_status;

  bool hangup = result.status == 200 && k.malformed == malformed_mode::hangup;
  ++by_status_[hangup ? std::string{"hangup"} : std::to_string(result.status)];
  ++by_model_[std::string{model}];
  if (stream)
    ++streams_;
  count_authorization(authorization);
  return result;
}

void mock_state::count_embedding_inputs(uint64_t inputs) {
  std::lock_guard<std::mutex> guard{mutex_};
  embedding_inputs_ += inputs;
}

void mock_state::count_rejected_chat(int status, std::string_view authorization) {
  std::lock_guard<std::mutex> guard{mutex_};
  ++requests_;
  ++by_status_[std::to_string(status)];
  count_authorization(authorization);
}

void mock_state::count_authorization(std::string_view authorization) {
  if (authorization.empty() || authorization_.size() >= max_authorization_values)
    return;
  // Printable ASCII only, so the stats stay valid JSON whatever a client sent.
  std::string value;
  for (char c : authorization.substr(0, max_authorization_bytes))
    value.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  authorization_.insert(std::move(value));
}

void mock_state::remember_request(std::string_view body) {
  std::lock_guard<std::mutex> guard{mutex_};
  last_request_.emplace(body);
}

std::optional<std::string> mock_state::last_request() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return last_request_;
}

in_flight_guard mock_state::track_in_flight() {
  return in_flight_guard{&in_flight_, &aborted_};
}

std::string mock_state::configure(std::string_view json_body) {
  auto body = json::parse(json_body);
  if (!body)
    return std::string{"the body is not JSON: "} + body.error().reason;
  const auto& doc = body.document();
  if (!doc.IsObject())
    return "the body must be a JSON object of knobs";
  knob_overrides parsed;
  std::string text;
  for (const auto& member : doc.GetObject()) {
    std::string_view name{member.name.GetString(), member.name.GetStringLength()};
    if (!knob_text(member.value, text))
      return "mock knob " + std::string{name} + " must be a number or a string";
    if (auto error = set_knob(parsed, name, text); !error.empty())
      return error;
  }

  std::lock_guard<std::mutex> guard{mutex_};
  if (parsed.count) {
    auto count = *parsed.count;
    parsed.count.reset();
    script_.push_back(scripted{parsed, count});
  } else {
    parsed.apply_to(defaults_);
  }
  return {};
}

void mock_state::reset() {
  std::lock_guard<std::mutex> guard{mutex_};
  defaults_ = flag_defaults_;
  script_.clear();
  random_.seed(seed_);
  requests_ = 0;
  streams_ = 0;
  embedding_inputs_ = 0;
  by_status_.clear();
  by_model_.clear();
  authorization_.clear();
  last_request_.reset();
  aborted_ = 0;
  connections_.accepted = 0;
}

std::string mock_state::stats_json() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::string out = "{\"requests\":" + std::to_string(requests_) + ",\"streams\":" + std::to_string(streams_)
                    + ",\"embedding_inputs\":" + std::to_string(embedding_inputs_);
  append_counts(out, "by_status", by_status_);
  append_counts(out, "by_model", by_model_);
  out += ",\"in_flight\":" + std::to_string(in_flight_.load());
  out += ",\"aborted\":" + std::to_string(aborted_.load());
  out += ",\"connections_open\":" + std::to_string(connections_.open.load());
  out += ",\"connections_accepted\":" + std::to_string(connections_.accepted.load());
  out += ",\"authorization\":[";
  bool first = true;
  for (const auto& value : authorization_) {
    if (!first)
      out += ',';
    first = false;
    append_json_string(out, value);
  }
  out += "]}";
  return out;
}

std::string mock_state::config_json() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::string out = "{\"defaults\":" + to_json(defaults_) + ",\"scripted\":[";
  bool first = true;
  for (const auto& entry : script_) {
    if (!first)
      out += ',';
    first = false;
    out += "{\"knobs\":" + to_json(entry.knobs) + ",\"remaining\":" + std::to_string(entry.remaining) + "}";
  }
  out += "]}";
  return out;
}

} // namespace troupe::mock

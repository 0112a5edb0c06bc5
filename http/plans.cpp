#include "http/plans.hpp"

#include "config/json_schema.hpp"

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

namespace troupe::http {

const char* const plan_schema = R"({
  "type": "object", "additionalProperties": false, "required": ["title", "overview", "sections"],
  "properties": {
    "title": {"type": "string", "minLength": 1, "maxLength": 200},
    "overview": {"type": "string", "minLength": 1, "maxLength": 4000},
    "sections": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
      "type": "object", "additionalProperties": false, "required": ["title", "steps"],
      "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "files": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 1024}},
        "steps": {"type": "array", "minItems": 1, "maxItems": 20,
                  "items": {"type": "string", "minLength": 1, "maxLength": 2000}}
      }
    }}
  }
})";

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr size_t max_query_words = 16;
constexpr size_t max_context_bytes = 24 * 1024;
constexpr size_t max_retry_answer_bytes = 16 * 1024;

constexpr const char* system_prompt =
  "You are a senior software engineer writing an implementation plan for a code repository (troupe-plan-v1). "
  "Answer with one JSON object and nothing else, of this shape: {\"title\": string, \"overview\": string, "
  "\"sections\": [{\"title\": string, \"files\": [repository paths], \"steps\": [strings]}]}. Base the plan on the "
  "repository excerpts the user gives and name files by the paths given. Write 1 to 20 sections, each with 1 to 20 "
  "concrete steps.";

bool is_word_char(unsigned char c) {
  return std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '/' || c >= 0x80;
}

const std::set<std::string_view>& common_words() {
  static const std::set<std::string_view> words = {
    "the",  "and",  "for",   "with",  "that",  "this",  "from",  "into",   "add",   "make",  "use",   "using",
    "should", "would", "could", "can", "how", "what", "when", "where", "which", "who", "why", "are", "was",
    "were", "been", "has",  "have",  "had",   "not",   "but",   "all",    "any",   "our",   "your",  "their",
    "its",  "there", "then", "than", "them",  "they",  "you",   "will",   "want",  "need",  "please", "plan",
    "code", "also", "some",  "more", "most",  "each",  "other", "about",  "like",  "new",   "way",   "get"};
  return words;
}

void write_messages(writer& w, const plan_prompt& p) {
  w.StartObject();
  w.Key("role");
  w.String("system");
  w.Key("content");
  w.String(system_prompt);
  w.EndObject();
  std::string user = "Request: " + p.prompt + "\n";
  if (!p.title.empty())
    user += "Title: " + p.title + "\n";
  user += "\nRelevant code from the repository (path:first-last line, best match first):\n";
  size_t used = 0;
  size_t shown = 0;
  for (const auto& hit : p.context) {
    auto entry = "--- " + hit.path + ":" + std::to_string(hit.start_line) + "-" + std::to_string(hit.end_line) + "\n"
                 + hit.snippet + "\n";
    if (used + entry.size() > max_context_bytes)
      break;
    used += entry.size();
    user += entry;
    ++shown;
  }
  if (shown == 0)
    user += "(No excerpt of the repository matched the request.)\n";
  w.StartObject();
  w.Key("role");
  w.String("user");
  w.Key("content");
  w.String(user.c_str(), static_cast<rapidjson::SizeType>(user.size()));
  w.EndObject();
}

template <class ExtraMessages>
std::string request_body(const plan_prompt& p, ExtraMessages extra) {
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  w.StartObject();
  w.Key("model");
  w.String(p.model.c_str(), static_cast<rapidjson::SizeType>(p.model.size()));
  w.Key("messages");
  w.StartArray();
  write_messages(w, p);
  extra(w);
  w.EndArray();
  w.Key("response_format");
  w.StartObject();
  w.Key("type");
  w.String("json_object");
  w.EndObject();
  w.Key("temperature");
  w.Int(0);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

/// At most `limit` bytes of `text`, not cut inside a UTF-8 sequence, with " [...]" when it was cut.
std::string bounded_utf8(const std::string& text, size_t limit) {
  if (text.size() <= limit)
    return text;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  return text.substr(0, end) + " [...]";
}

/// The text inside a ``` fence when the content is one (models often wrap JSON so), else the content.
std::string_view unfenced(std::string_view text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text.compare(first, 3, "```") != 0)
    return text;
  auto body = text.find('\n', first);
  auto close = text.rfind("```");
  if (body == std::string_view::npos || close == std::string_view::npos || close <= body)
    return text;
  return text.substr(body + 1, close - body - 1);
}

std::string serialise(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  v.Accept(w);
  return {buffer.GetString(), buffer.GetSize()};
}

} // namespace

std::string plan_search_query(const std::string& prompt) {
  std::vector<std::string> words;
  std::set<std::string> seen;
  size_t i = 0;
  while (i < prompt.size() && words.size() < max_query_words) {
    while (i < prompt.size() && !is_word_char(static_cast<unsigned char>(prompt[i])))
      ++i;
    size_t start = i;
    while (i < prompt.size() && is_word_char(static_cast<unsigned char>(prompt[i])))
      ++i;
    std::string word = prompt.substr(start, i - start);
    // Trailing punctuation of a sentence is not part of a name ("config." -> "config").
    while (!word.empty() && (word.back() == '.' || word.back() == '-' || word.back() == '/'))
      word.pop_back();
    while (!word.empty() && (word.front() == '.' || word.front() == '-' || word.front() == '/'))
      word.erase(word.begin());
    std::string lower = word;
    for (auto& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (word.size() < 3 || word.size() > 100 || common_words().count(lower) != 0 || lower == "or"
        || !seen.insert(lower).second)
      continue;
    words.push_back(word);
  }
  std::string query;
  for (const auto& word : words)
    query += (query.empty() ? "" : " or ") + word;
  return query;
}

std::string plan_request(const plan_prompt& p) {
  return request_body(p, [](writer&) {});
}

std::string retry_request(const plan_prompt& p, const std::string& answer, const std::string& problem) {
  // The misfit answer goes back bounded: the retry must fit the model's context and the server's memory whatever
  // the first answer's size (the upstream's answer limit is megabytes).
  auto shown = bounded_utf8(answer, max_retry_answer_bytes);
  auto why = bounded_utf8(problem, 1024);
  return request_body(p, [&](writer& w) {
    w.StartObject();
    w.Key("role");
    w.String("assistant");
    w.Key("content");
    w.String(shown.c_str(), static_cast<rapidjson::SizeType>(shown.size()));
    w.EndObject();
    auto correction = "That answer does not fit the plan's shape: " + why
                      + " Answer again with only the JSON object, fixing that.";
    w.StartObject();
    w.Key("role");
    w.String("user");
    w.Key("content");
    w.String(correction.c_str(), static_cast<rapidjson::SizeType>(correction.size()));
    w.EndObject();
  });
}

std::optional<checked_plan> check_plan_answer(const std::string& content, std::string& problem) {
  static const json_schema schema{plan_schema};
  auto text = unfenced(content);
  auto parsed = json::parse(text, 16);
  if (!parsed) {
    problem = "It is not one JSON object (" + parsed.error().reason + ").";
    return std::nullopt;
  }
  const auto& doc = parsed.document();
  if (auto bad = schema.validate(doc)) {
    problem = (bad->param.empty() ? std::string{} : bad->param + ": ") + bad->message;
    return std::nullopt;
  }
  checked_plan plan;
  plan.title.assign(doc["title"].GetString(), doc["title"].GetStringLength());
  plan.overview.assign(doc["overview"].GetString(), doc["overview"].GetStringLength());
  plan.sections = serialise(doc["sections"]);
  plan.section_count = doc["sections"].Size();
  if (plan.title.find('\0') != std::string::npos || plan.overview.find('\0') != std::string::npos
      || plan.sections.find("\\u0000") != std::string::npos) {
    problem = "Text must not contain NUL characters.";
    return std::nullopt;
  }
  return plan;
}

std::optional<completion_parts> completion_of(const std::string& body) {
  auto parsed = json::parse(body);
  if (!parsed)
    return std::nullopt;
  const auto& doc = parsed.document();
  if (!doc.IsObject() || !doc.HasMember("choices") || !doc["choices"].IsArray() || doc["choices"].Empty())
    return std::nullopt;
  const auto& choice = doc["choices"][0];
  if (!choice.IsObject() || !choice.HasMember("message") || !choice["message"].IsObject())
    return std::nullopt;
  const auto& message = choice["message"];
  if (!message.HasMember("content") || !message["content"].IsString())
    return std::nullopt;
  completion_parts out;
  out.content.assign(message["content"].GetString(), message["content"].GetStringLength());
  if (doc.HasMember("model") && doc["model"].IsString())
    out.model = doc["model"].GetString();
  if (doc.HasMember("usage") && doc["usage"].IsObject()) {
    const auto& usage = doc["usage"];
    if (usage.HasMember("prompt_tokens") && usage["prompt_tokens"].IsInt64())
      out.prompt_tokens = usage["prompt_tokens"].GetInt64();
    if (usage.HasMember("completion_tokens") && usage["completion_tokens"].IsInt64())
      out.completion_tokens = usage["completion_tokens"].GetInt64();
  }
  return out;
}

} // namespace troupe::http

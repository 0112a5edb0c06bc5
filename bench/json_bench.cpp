// The cost of reading JSON bodies safely (`make bench-json`, recorded in bench/RESULTS.md).
//
// Parse/...: RapidJSON's Document::Parse as Troupe called it before issue 13 (recursive, no UTF-8 check, duplicate
// keys kept) against json::parse (iterative, depth limit, duplicate keys refused, UTF-8 checked), on the bodies the
// authenticated routes see most: a 2 KiB chat completion request and a batch of 1000 funnel events.
// ChatRequest/...: the gateway's whole reading of a chat request: before (parse, validate, cache key over a
// recursively key-sorted copy, the client's bytes copied for forwarding; reproduced below as it was) against now
// (json::parse, allow-list validation writing the canonical body and hashing its deciding part).
// Refuse/...: what a body nested a million levels deep costs now (before, it killed the process).

#include "config/json.hpp"
#include "config/hashing.hpp"
#include "ai/openai.hpp"

#include <benchmark/benchmark.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace troupe;

/// A chat request of about 2 KiB: a system prompt, a short exchange, and sampling parameters.
std::string chat_request_body() {
  std::string filler;
  while (filler.size() < 1500)
    filler += "The quick brown fox jumps over the lazy dog; caf\u00e9 \u20ac 12.50. ";
  return R"({"model":"gpt-4o-mini","messages":[)"
         R"({"role":"system","content":"You are a concise assistant. Answer in English and cite sources."},)"
         R"({"role":"user","content":"Summarise this text: )"
         + filler
         + R"("},{"role":"assistant","content":"Here is a summary of the text you sent."},)"
           R"({"role":"user","content":[{"type":"text","text":"Shorter, please."}]}],)"
           R"("temperature":0,"max_tokens":256,"top_p":1,"stream":false,"user":"user-1234"})";
}

/// {"events":[...]} with 1000 funnel events of about 190 bytes each.
std::string event_batch_body() {
  std::string body = R"({"events":[)";
  for (int i = 0; i < 1000; ++i) {
    if (i > 0)
      body += ',';
    body += R"({"event":"page_view","session_id":"sess-)" + std::to_string(100000 + i)
            + R"(","source":"web","lang":"en-GB","properties":{"path":"/pricing","ref":"google","step":)"
            + std::to_string(i % 7) + R"(},"occurred_at":"2026-11-21T10:00:00.123Z"})";
  }
  return body + "]}";
}

void parse_before(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    benchmark::DoNotOptimize(doc.HasParseError());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void parse_now(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto parsed = json::parse(body);
    benchmark::DoNotOptimize(parsed.ok());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void Parse_ChatRequest_Before(benchmark::State& state) {
  parse_before(state, chat_request_body());
}
void Parse_ChatRequest_Now(benchmark::State& state) {
  parse_now(state, chat_request_body());
}
void Parse_EventBatch1000_Before(benchmark::State& state) {
  parse_before(state, event_batch_body());
}
void Parse_EventBatch1000_Now(benchmark::State& state) {
  parse_now(state, event_batch_body());
}

// --- The gateway's reading of a chat request before issue 13, as it was (ai/openai.cpp at f6833cf) ---

namespace before {

using rapidjson::Value;

size_t text_chars(const Value& content) {
  if (content.IsString())
    return content.GetStringLength();
  size_t n = 0;
  if (content.IsArray())
    for (const auto& part : content.GetArray())
      if (part.IsObject()) {
        auto text = part.FindMember("text");
        if (text != part.MemberEnd() && text->value.IsString())
          n += text->value.GetStringLength();
      }
  return n;
}

void write_canonical(const Value& v, rapidjson::Writer<rapidjson::StringBuffer>& w) {
  if (v.IsObject()) {
    std::vector<const Value::Member*> members;
    for (const auto& m : v.GetObject())
      members.push_back(&m);
    std::sort(members.begin(), members.end(), [](const Value::Member* a, const Value::Member* b) {
      return std::string_view(a->name.GetString(), a->name.GetStringLength())
             < std::string_view(b->name.GetString(), b->name.GetStringLength());
    });
    w.StartObject();
    for (const auto* m : members) {
      w.Key(m->name.GetString(), m->name.GetStringLength());
      write_canonical(m->value, w);
    }
    w.EndObject();
  } else if (v.IsArray()) {
    w.StartArray();
    for (const auto& x : v.GetArray())
      write_canonical(x, w);
    w.EndArray();
  } else {
    v.Accept(w);
  }
}

struct chat_request {
  std::string model;
  bool stream = false;
  double temperature = -1;
  std::string body;
  size_t prompt_chars = 0;
};

bool validate(const rapidjson::Document& doc, chat_request& out) {
  static const std::set<std::string> roles{"system", "developer", "user", "assistant", "tool", "function"};
  if (!doc.IsObject())
    return false;
  auto model = doc.FindMember("model");
  if (model == doc.MemberEnd() || !model->value.IsString())
    return false;
  out.model.assign(model->value.GetString(), model->value.GetStringLength());
  auto messages = doc.FindMember("messages");
  if (messages == doc.MemberEnd() || !messages->value.IsArray() || messages->value.Empty())
    return false;
  for (const auto& m : messages->value.GetArray()) {
    if (!m.IsObject())
      return false;
    auto role = m.FindMember("role");
    if (role == m.MemberEnd() || !role->value.IsString()
        || !roles.count(std::string(role->value.GetString(), role->value.GetStringLength())))
      return false;
    auto content = m.FindMember("content");
    if (content != m.MemberEnd())
      out.prompt_chars += text_chars(content->value);
  }
  auto stream = doc.FindMember("stream");
  out.stream = stream != doc.MemberEnd() && stream->value.IsBool() && stream->value.GetBool();
  auto temperature = doc.FindMember("temperature");
  if (temperature != doc.MemberEnd() && temperature->value.IsNumber())
    out.temperature = temperature->value.GetDouble();
  for (const char* field : {"max_tokens", "max_completion_tokens", "n"}) {
    auto it = doc.FindMember(field);
    if (it != doc.MemberEnd() && !it->value.IsNull() && !it->value.IsInt64())
      return false;
  }
  return true;
}

std::string cache_key(const rapidjson::Document& doc) {
  static const char* const deciding[] = {"model",
                                         "messages",
                                         "temperature",
                                         "top_p",
                                         "max_tokens",
                                         "max_completion_tokens",
                                         "n",
                                         "stop",
                                         "presence_penalty",
                                         "frequency_penalty",
                                         "seed",
                                         "logit_bias",
                                         "logprobs",
                                         "top_logprobs",
                                         "tools",
                                         "tool_choice",
                                         "parallel_tool_calls",
                                         "response_format",
                                         "functions",
                                         "function_call",
                                         "reasoning_effort",
                                         "modalities"};
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  std::vector<std::string_view> names(std::begin(deciding), std::end(deciding));
  std::sort(names.begin(), names.end());
  for (auto name : names) {
    auto it = doc.FindMember(rapidjson::StringRef(name.data(), name.size()));
    if (it == doc.MemberEnd() || it->value.IsNull())
      continue;
    writer.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    write_canonical(it->value, writer);
  }
  writer.EndObject();
  return "gw::" + troupe::sha256_hex(std::string_view(buffer.GetString(), buffer.GetSize()));
}

} // namespace before

void ChatRequest_Before(benchmark::State& state) {
  const auto body = chat_request_body();
  for (auto _ : state) {
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    before::chat_request req;
    bool ok = before::validate(doc, req);
    req.body = body; // forwarded as it came
    auto key = before::cache_key(doc);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(key.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void ChatRequest_Now(benchmark::State& state) {
  const auto body = chat_request_body();
  const openai::chat_validator validator{1000};
  for (auto _ : state) {
    auto parsed = json::parse(body);
    openai::chat_request req;
    auto err = validator.validate(parsed.document(), req);
    auto key = openai::cache_key(req, "");
    benchmark::DoNotOptimize(err.has_value());
    benchmark::DoNotOptimize(key.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void Refuse_MillionLevelsDeep_Now(benchmark::State& state) {
  const std::string body(1000000, '[');
  for (auto _ : state) {
    auto parsed = json::parse(body);
    benchmark::DoNotOptimize(parsed.ok());
  }
}

} // namespace

BENCHMARK(Parse_ChatRequest_Before);
BENCHMARK(Parse_ChatRequest_Now);
BENCHMARK(Parse_EventBatch1000_Before);
BENCHMARK(Parse_EventBatch1000_Now);
BENCHMARK(ChatRequest_Before);
BENCHMARK(ChatRequest_Now);
BENCHMARK(Refuse_MillionLevelsDeep_Now);

BENCHMARK_MAIN();

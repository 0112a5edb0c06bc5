// The gateway's protocol helpers (ai/openai.hpp): request validation, cache keys, answer checks, SSE relay.

#include "ai/openai.hpp"

#include "config/json.hpp"
#include "config/hashing.hpp"

#include <gtest/gtest.h>

#include <set>

#include <string>
#include <vector>

namespace troupe::openai {
namespace {

rapidjson::Document parse(const std::string& text) {
  auto parsed = json::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return std::move(parsed.document());
}

std::optional<request_error> validate(const std::string& text, chat_request* out = nullptr) {
  chat_request req;
  auto err = validate_chat_request(parse(text), 4, req);
  if (out)
    *out = req;
  return err;
}

chat_request valid(const std::string& text) {
  chat_request req;
  auto err = validate_chat_request(parse(text), 4, req);
  EXPECT_FALSE(err) << text << ": " << (err ? err->message : "");
  return req;
}

TEST(OpenAiRequest, AcceptsAValidRequest) {
  chat_request req;
  EXPECT_FALSE(validate(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hello"}]}],"stream":true,"temperature":0,"max_tokens":5,
      "top_p":0.5,"stop":["x"],"seed":7,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto",
      "response_format":{"type":"json_object"},"user":"u-1","stream_options":{"include_usage":true},
      "metadata":{"k":"v"},"logit_bias":{"50256":-100},"n":null})",
                        &req));
  EXPECT_EQ(req.model, "m");
  EXPECT_TRUE(req.stream);
  EXPECT_EQ(req.temperature, 0.0);
  EXPECT_EQ(req.prompt_chars, 13u);
}

TEST(OpenAiRequest, NamesTheOffendingField) {
  auto param = [](const std::string& text) { return validate(text).value_or(request_error{"", "(none)"}).param; };
  EXPECT_EQ(param(R"({"messages":[{"role":"user","content":"x"}]})"), "model");
  EXPECT_EQ(param(R"({"model":"m"})"), "messages");
  EXPECT_EQ(param(R"({"model":"m","messages":[]})"), "messages");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"},{"role":"user"},{"role":"user"},{"role":"user"},)"
                  R"({"role":"user"}]})"),
            "messages");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"robot"}]})"), "messages[1].role");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":5}]})"), "messages[0].content");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":["x"]}]})"), "messages[0].content[0]");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"stream":"yes"})"), "stream");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"temperature":3})"), "temperature");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":0})"), "max_tokens");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"n":9})"), "n");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"top_p":1.5})"), "top_p");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"stop":[1]})"), "stop[0]");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"tools":[{"function":{}}]})"), "tools[0].type");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"logit_bias":{"1":500}})"), "logit_bias.1");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","name":7}]})"), "messages[0].name");
  // Found by the openai_request fuzzer: a field that must be a typed object given a scalar read past the value.
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"prediction":100})"), "prediction");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"response_format":"json"})"), "response_format");
  EXPECT_EQ(param(R"([1])"), "");
  // Integers are 64-bit: a larger one is refused, never read as absent.
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":18446744073709551615})"), "max_tokens");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"seed":18446744073709551615})"), "seed");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":5.0})"), "max_tokens");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"metadata":{"k":1}})"), "metadata.k");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user"}],"metadata":{")" + std::string(65, 'k') + R"(":"v"}})"),
            "metadata");
}

// The schema's own words, with its limits: what a client reads in error.message.
TEST(OpenAiRequest, SaysWhatTheFieldMustBe) {
  auto message = [](const std::string& text) { return validate(text).value_or(request_error{"(none)", ""}).message; };
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"user"}],"temperature":3})"),
            "temperature must be from 0 to 2.");
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":0})"), "max_tokens must be at least 1.");
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"user"}],"stop":7})"),
            "stop must be a string or an array.");
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"robot"}]})"),
            "messages[0].role must be one of system, developer, user, assistant, tool, function.");
  EXPECT_EQ(message(R"({"model":"m","messages":[{"content":"x"}]})"), "messages[0].role is required.");
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"user"},{"role":"user"},{"role":"user"},{"role":"user"},)"
                    R"({"role":"user"}]})"),
            "messages must have at most 4 items.");
  EXPECT_EQ(message(R"({"model":"m","messages":[1]})"), "messages[0] must be an object.");
  EXPECT_EQ(message(R"({"messages":[{"role":"user"}]})"), "model is required.");
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"user"}],"logit_bias":{"1":500}})"),
            "logit_bias.1 must be from -100 to 100.");
}

// Only the allow-list is ever forwarded: any other field, at the top or in a message, is refused by name.
TEST(OpenAiRequest, RefusesUnknownFields) {
  auto err = validate(R"({"model":"m","messages":[{"role":"user","content":"x"}],"vendor_field":{"x":1}})");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "vendor_field");
  EXPECT_EQ(err->message, "vendor_field is not a known field.");
  err = validate(R"({"model":"m","messages":[{"role":"user","content":"x","extra":true}]})");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].extra");
}

// What goes upstream is the canonical form of the validated request: the client's whitespace, key order, escapes
// and null fields are gone; messages have their fields in a fixed order; deeper values are kept as parsed.
TEST(OpenAiRequest, ForwardsTheCanonicalFormNeverTheClientsBytes) {
  auto req = valid(R"( { "stream" : false , "messages" : [ { "content" : "h\u0069 \"you\"", "role" : "user" } ],
                        "temperature" : null, "user":"u", "model" : "m",
                        "response_format":{"type":"json_schema","json_schema":{"schema":{"properties":{"b":{},"a":{}}}}}})");
  EXPECT_EQ(req.body,
            R"({"model":"m","messages":[{"role":"user","content":"hi \"you\""}],)"
            R"("response_format":{"type":"json_schema","json_schema":{"schema":{"properties":{"b":{},"a":{}}}}},)"
            R"("stream":false,"user":"u"})");
  // The deciding part of that same text is what the cache key hashes.
  auto deciding = req.body.substr(0, req.body.find(R"(,"stream")")) + "}";
  EXPECT_EQ(req.deciding_hash, sha256_hex(deciding));
  EXPECT_EQ(cache_key(req, "t"), "gw:t:" + sha256_hex(deciding));
}

// A stream always asks its upstream for usage (stream_options.include_usage true, after the client's other stream
// options), whatever the client asked; include_usage says what the client asked, so its relay knows whether the
// usage chunk goes through. A non-streamed request is forwarded as it was validated.
TEST(OpenAiRequest, AStreamAlwaysAsksTheUpstreamForUsage) {
  auto plain = valid(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true})");
  EXPECT_FALSE(plain.include_usage);
  EXPECT_EQ(plain.body, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,)"
                        R"("stream_options":{"include_usage":true}})");
  auto asked = valid(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,
                         "stream_options":{"include_usage":true},"user":"u"})");
  EXPECT_TRUE(asked.include_usage);
  EXPECT_EQ(asked.body, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,)"
                        R"("stream_options":{"include_usage":true},"user":"u"})");
  auto declined = valid(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,
                            "stream_options":{"include_obfuscation":false,"include_usage":false}})");
  EXPECT_FALSE(declined.include_usage);
  EXPECT_EQ(declined.body, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,)"
                           R"("stream_options":{"include_obfuscation":false,"include_usage":true}})");
  // The same decision whatever the client asked: the cache key is the same.
  EXPECT_EQ(plain.deciding_hash, declined.deciding_hash);
  auto not_streamed = valid(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(not_streamed.body, R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  chat_request req;
  auto err = validate_chat_request(
    parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":1}})"),
    4, req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "stream_options.include_usage");
}

// A base64 data URL of `bytes` as `media_type`.
std::string data_url(const std::string& media_type, const std::string& bytes) {
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "data:" + media_type + ";base64,";
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    auto n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8)
             | static_cast<unsigned char>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0})
      out += digits[(n >> shift) & 63];
  }
  if (i < bytes.size()) {
    unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size())
      n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? digits[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

const std::string png = std::string{"\x89PNG\r\n\x1a\n", 8} + std::string(100, 'p');
const std::string jpeg = std::string{"\xff\xd8\xff\xe0", 4} + std::string(101, 'j');
const std::string gif = "GIF89a" + std::string(50, 'g');
const std::string webp = std::string{"RIFF\x10\0\0\0WEBPVP8 ", 16} + std::string(40, 'w');

std::string with_images(const std::vector<std::string>& urls, const std::string& detail = "") {
  std::string parts = R"({"type":"text","text":"what is this?"})";
  for (const auto& url : urls)
    parts += R"(,{"type":"image_url","image_url":{"url":")" + url + "\"" + (detail.empty() ? "" : R"(,"detail":)" + detail) + "}}";
  return R"({"model":"m","messages":[{"role":"user","content":[)" + parts + "]}]}";
}

std::optional<request_error> validate_images(const std::string& text, const image_limits& limits) {
  chat_request req;
  return validate_chat_request(parse(text), 4, req, limits);
}

TEST(OpenAiImages, AcceptsUrlsAndInlineImagesOfTheirDeclaredType) {
  image_limits limits;
  EXPECT_FALSE(validate_images(with_images({"https://example.com/cat.png", "http://example.com/dog.jpg"}), limits));
  EXPECT_FALSE(validate_images(with_images({data_url("image/png", png), data_url("image/jpeg", jpeg),
                                            data_url("image/gif", gif), data_url("image/webp", webp)}),
                               limits));
  EXPECT_FALSE(validate_images(with_images({"https://example.com/a.png"}, R"("low")"), limits));
  EXPECT_FALSE(validate_images(with_images({"https://example.com/a.png"}, "null"), limits));
  // Forwarded as given: the canonical form keeps the part.
  chat_request req;
  ASSERT_FALSE(validate_chat_request(parse(with_images({data_url("image/png", png)})), 4, req, limits));
  EXPECT_NE(req.body.find(data_url("image/png", png)), std::string::npos);
}

TEST(OpenAiImages, RefusesWhatIsNotTheImageItClaims) {
  image_limits limits;
  auto param = [&](const std::string& text) {
    auto err = validate_images(text, limits);
    return err ? err->param : "(accepted)";
  };
  const std::string at = "messages[0].content[1].image_url.url";
  EXPECT_EQ(param(with_images({data_url("image/png", jpeg)})), at) << "JPEG bytes declared as PNG";
  EXPECT_EQ(param(with_images({data_url("image/jpeg", "<svg onload=alert(1)>")})), at);
  EXPECT_EQ(param(with_images({data_url("image/svg+xml", "<svg/>")})), at) << "not an accepted type";
  EXPECT_EQ(param(with_images({data_url("text/html", png)})), at);
  EXPECT_EQ(param(with_images({"data:image/png," + png.substr(8)})), at) << "not base64";
  EXPECT_EQ(param(with_images({"data:image/png;base64,***"})), at) << "invalid base64";
  EXPECT_EQ(param(with_images({"data:image/png;base64,"})), at) << "empty";
  EXPECT_EQ(param(with_images({"file:///etc/passwd"})), at);
  EXPECT_EQ(param(with_images({"ftp://example.com/a.png"})), at);
  EXPECT_EQ(param(with_images({"https://example.com/" + std::string(9000, 'a')})), at);
  EXPECT_EQ(param(with_images({"https://example.com/a.png"}, R"("ultra")")), "messages[0].content[1].image_url.detail");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})"),
            "messages[0].content[0].image_url");
  EXPECT_EQ(param(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":7}}]}]})"),
            "messages[0].content[0].image_url.url");
}

TEST(OpenAiImages, CountsAndSizesAreCapped) {
  image_limits limits;
  limits.max_images = 2;
  limits.max_image_bytes = 100;
  limits.max_request_image_bytes = 250;
  auto small = data_url("image/gif", gif); // 56 bytes
  EXPECT_FALSE(validate_images(with_images({small, small}), limits));
  auto three = validate_images(with_images({small, small, "https://example.com/x.png"}), limits);
  ASSERT_TRUE(three);
  EXPECT_EQ(three->param, "messages[0].content[3]");
  EXPECT_NE(three->message.find("at most 2 images"), std::string::npos) << three->message;
  // One image over its cap (108 bytes of PNG), whatever its count.
  auto big = validate_images(with_images({data_url("image/png", png)}), limits);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->param, "messages[0].content[1].image_url.url");
  // Together over the request's cap: three of 96 bytes, in two messages.
  limits.max_images = 10;
  auto gif96 = data_url("image/gif", "GIF87a" + std::string(90, 'g'));
  std::string two_messages = R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":")"
                             + gif96 + R"("}},{"type":"image_url","image_url":{"url":")" + gif96
                             + R"("}}]},{"role":"user","content":[{"type":"image_url","image_url":{"url":")" + gif96
                             + R"("}}]}]})";
  auto total = validate_images(two_messages, limits);
  ASSERT_TRUE(total);
  EXPECT_EQ(total->param, "messages[1].content[0].image_url.url");
  EXPECT_NE(total->message.find("together"), std::string::npos) << total->message;
  // No images allowed at all.
  limits.max_images = 0;
  EXPECT_TRUE(validate_images(with_images({"https://example.com/x.png"}), limits));
  EXPECT_FALSE(validate_images(with_images({}), limits));
}

TEST(OpenAiCacheKey, IgnoresKeyOrderWhitespaceAndNonDecidingFields) {
  auto key = [](const std::string& text, const std::string& tenant) { return cache_key(valid(text), tenant); };
  auto a = key(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]})", "u1");
  auto b = key(R"({ "messages" : [ {"content":"hi", "role":"user"} ], "temperature":0, "model":"m",
                    "user":"someone", "stream_options":{"include_usage":true}})",
               "u1");
  EXPECT_EQ(a, b);
  EXPECT_EQ(
    a, key(R"({"model":"m","temperature":0,"top_p":null,"messages":[{"role":"user","content":"h\u0069"}]})", "u1"));
  EXPECT_NE(a, key(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]})", "u2"));
  EXPECT_NE(a, key(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"ho"}]})", "u1"));
  EXPECT_NE(a, key(R"({"model":"m","temperature":0,"max_tokens":3,
                       "messages":[{"role":"user","content":"hi"}]})",
                   "u1"));
  EXPECT_EQ(a.rfind("gw:u1:", 0), 0u);
}

// Every field that changes an answer changes the key (issue 16: keys that ignore tools, response_format or seed
// serve one request another's answer): each one, added to the same request, gives a key of its own; the fields that
// do not change the answer give the same key.
TEST(OpenAiCacheKey, EveryDecidingFieldChangesTheKey) {
  const std::string base = R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}])";
  auto key_with = [&](const std::string& extra) { return cache_key(valid(base + extra + "}"), "t"); };
  const auto plain = key_with("");
  std::set<std::string> keys{plain};
  for (const char* extra : {
         R"(,"top_p":0.5)", R"(,"max_tokens":5)", R"(,"max_completion_tokens":5)", R"(,"n":2)", R"(,"stop":"x")",
         R"(,"presence_penalty":1)", R"(,"frequency_penalty":1)", R"(,"seed":7)", R"(,"logit_bias":{"50256":-100})",
         R"(,"logprobs":true)", R"(,"top_logprobs":2)", R"(,"tools":[{"type":"function","function":{"name":"f"}}])",
         R"(,"tool_choice":"none")", R"(,"parallel_tool_calls":false)", R"(,"response_format":{"type":"json_object"})",
         R"(,"functions":[{"name":"f"}])", R"(,"function_call":"none")", R"(,"reasoning_effort":"low")",
         R"(,"verbosity":"low")", R"(,"modalities":["text"])", R"(,"audio":{"voice":"alloy"})",
         R"(,"prediction":{"type":"content","content":"x"})", R"(,"web_search_options":{})"}) {
    EXPECT_TRUE(keys.insert(key_with(extra)).second) << extra << " does not change the key";
  }
  // Temperature, the model, tool calls and their ids, and an image part's content are part of it too.
  EXPECT_NE(cache_key(valid(R"({"model":"m","temperature":1,"messages":[{"role":"user","content":"hi"}]})"), "t"), plain);
  EXPECT_NE(cache_key(valid(R"({"model":"m2","temperature":0,"messages":[{"role":"user","content":"hi"}]})"), "t"),
            plain);
  auto tool_call = [](const std::string& id) {
    return cache_key(valid(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"},)"
                           R"({"role":"assistant","content":null,"tool_calls":[{"id":")" + id
                           + R"(","type":"function","function":{"name":"f","arguments":"{}"}}]},)"
                             R"({"role":"tool","tool_call_id":")" + id + R"(","content":"42"}]})"),
                     "t");
  };
  EXPECT_NE(tool_call("call_1"), tool_call("call_2"));
  auto image = [](const std::string& url) {
    return cache_key(valid(R"({"model":"m","temperature":0,"messages":[{"role":"user","content":[)"
                           R"({"type":"image_url","image_url":{"url":")" + url + R"("}}]}]})"),
                     "t");
  };
  EXPECT_NE(image("https://example.com/a.png"), image("https://example.com/b.png"));
  for (const char* extra : {R"(,"stream":false)", R"(,"user":"u")", R"(,"metadata":{"k":"v"})", R"(,"store":true)",
                            R"(,"service_tier":"auto")"})
    EXPECT_EQ(key_with(extra), plain) << extra << " changes the key";
}

// An upstream's answer or event that two parsers could read differently (a repeated key), or that nests deeper
// than any OpenAI answer, is refused like garbage.
TEST(OpenAiCompletion, RefusesAmbiguousOrDeepAnswers) {
  std::string why;
  EXPECT_FALSE(check_completion(R"({"choices":[{"message":{"content":"x"}}],"usage":{"total_tokens":1},
                                   "usage":{"total_tokens":1000}})",
                                0, why));
  EXPECT_NE(why.find("ambiguous"), std::string::npos) << why;
  EXPECT_NE(why.find("usage"), std::string::npos) << why;
  EXPECT_FALSE(check_completion(
    R"({"choices":[{"message":{"content":)" + std::string(100, '[') + "1" + std::string(100, ']') + "}}]}", 0, why));
  EXPECT_NE(why.find("deeper than"), std::string::npos) << why;
  sse_relay relay{0};
  relay.feed("data: {\"choices\":[],\"choices\":[]}\n\n");
  EXPECT_TRUE(relay.failed());
}

TEST(OpenAiCompletion, ChecksTheAnswer) {
  std::string why;
  auto u = check_completion(R"({"choices":[{"message":{"role":"assistant","content":"hey"}}],
                                "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
                            100, why);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->total_tokens, 5);
  EXPECT_FALSE(u->estimated);
  u = check_completion(R"({"choices":[{"message":{"role":"assistant","content":"12345678"}}]})", 40, why);
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->estimated);
  EXPECT_EQ(u->prompt_tokens, 10);
  EXPECT_EQ(u->completion_tokens, 2);
  EXPECT_FALSE(check_completion("{not json", 0, why));
  EXPECT_NE(why.find("not valid JSON"), std::string::npos);
  EXPECT_FALSE(check_completion("{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}", 0, why));
  EXPECT_NE(why.find("UTF-8"), std::string::npos);
  EXPECT_FALSE(check_completion(R"({"choices":[]})", 0, why));
  EXPECT_FALSE(check_completion(R"({"id":"x"})", 0, why));
  EXPECT_EQ(completion_text(R"({"choices":[{"message":{"content":"hey"}}]})"), "hey");
}

TEST(OpenAiUtf8, Validates) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xc3"));         // truncated
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));     // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80")); // surrogate
  EXPECT_FALSE(valid_utf8("\xff"));
}

TEST(OpenAiSse, RelaysEventsSplitAnywhere) {
  sse_relay relay{40};
  std::string stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                       ": keep-alive\n\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\r\n\r\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\n"
                       "data: [DONE]\n\n";
  std::string out;
  for (char c : stream) // one byte at a time: events leave only once complete
    out += relay.feed(std::string_view(&c, 1));
  EXPECT_FALSE(relay.failed()) << relay.why();
  EXPECT_TRUE(relay.done());
  EXPECT_FALSE(relay.pending());
  EXPECT_NE(out.find("data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n"), std::string::npos);
  EXPECT_NE(out.find(": keep-alive\n\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 14), "data: [DONE]\n\n");
  auto u = relay.totals();
  EXPECT_TRUE(u.estimated);
  EXPECT_EQ(u.completion_tokens, 3); // 11 characters
}

TEST(OpenAiSse, UsesReportedUsage) {
  sse_relay relay{0};
  relay.feed("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9,\"total_tokens\":16}}\n\n");
  EXPECT_EQ(relay.totals().total_tokens, 16);
}

// The usage chunk (empty choices, a usage object) reaches a client that asked for it; for one that did not, it is
// read (its usage counts) and not relayed. Every other event passes either way.
TEST(OpenAiSse, RelaysTheUsageChunkOnlyWhenTheClientAskedForIt) {
  std::string stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
                       "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,"
                       "\"total_tokens\":9}}\n\n"
                       "data: [DONE]\n\n";
  sse_relay asked{0, true};
  auto relayed = asked.feed(stream);
  EXPECT_NE(relayed.find("\"usage\":{\"prompt_tokens\":7"), std::string::npos) << relayed;
  EXPECT_EQ(asked.totals().total_tokens, 9);
  sse_relay not_asked{0, false};
  auto out = not_asked.feed(stream);
  EXPECT_EQ(out, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n");
  EXPECT_TRUE(not_asked.done());
  EXPECT_TRUE(not_asked.produced());
  auto u = not_asked.totals();
  EXPECT_FALSE(u.estimated);
  EXPECT_EQ(u.prompt_tokens, 7);
  EXPECT_EQ(u.completion_tokens, 2);
  sse_relay silent{0, false};
  silent.feed(": keep-alive\n\n");
  EXPECT_FALSE(silent.produced());
}

TEST(OpenAiSse, StopsAtTheFirstBadEvent) {
  sse_relay relay{0};
  auto out = relay.feed("data: {\"choices\":[]}\n\ndata: {broken\n\ndata: {\"choices\":[]}\n\n");
  EXPECT_TRUE(relay.failed());
  EXPECT_EQ(out, "data: {\"choices\":[]}\n\n");
  sse_relay bad_utf8{0};
  bad_utf8.feed("data: {\"x\":\"\xff\"}\n\n");
  EXPECT_TRUE(bad_utf8.failed());
  sse_relay huge{0, true, 64};
  huge.feed("data: " + std::string(100, 'x'));
  EXPECT_TRUE(huge.failed());
  EXPECT_EQ(
    sse_error_event("server_error", "upstream_failed", "a \"b\""),
    "data: {\"error\":{\"type\":\"server_error\",\"code\":\"upstream_failed\",\"message\":\"a \\\"b\\\"\"}}\n\n");
}

// Found by the upstream_answer fuzzer: an event whose data spans several lines was checked as a whole but sent as
// "data: <line 1>\n<line 2>", so a client read only the first line (broken JSON); and lines ended by a lone CR were
// one line to the relay but two to a client. Each data line is now framed on its own, CR ends a line, and a bare
// "data" line is data as a client reads it.
TEST(OpenAiSse, ClientsReadExactlyTheDataThatWasChecked) {
  sse_relay multi{0};
  EXPECT_EQ(multi.feed("data: {\"choices\":\ndata: []}\n\n"), "data: {\"choices\":\ndata: []}\n\n");
  EXPECT_FALSE(multi.failed()) << multi.why();
  sse_relay cr{0};
  EXPECT_EQ(cr.feed("data: {\"a\":\rdata: 1}\r\rdata: [DONE]\r\r\n"), "data: {\"a\":\ndata: 1}\n\ndata: [DONE]\n\n");
  EXPECT_FALSE(cr.failed()) << cr.why();
  EXPECT_TRUE(cr.done());
  sse_relay lone_cr{0};
  lone_cr.feed("data: {\"a\":\r1}\n\n"); // a client reads data {"a": (the CR ends the line): refused
  EXPECT_TRUE(lone_cr.failed());
  sse_relay bare{0};
  bare.feed("data\ndata: {}\n\n"); // data is "\n{}": still one JSON object
  EXPECT_FALSE(bare.failed()) << bare.why();
  sse_relay bad{0};
  bad.feed("data\ndata: {\n\n"); // data "\n{" is not JSON, whatever the relay used to think of the bare line
  EXPECT_TRUE(bad.failed());
  // A CR at the end of what arrived waits for a possible LF.
  sse_relay split{0};
  EXPECT_EQ(split.feed("data: {}\r"), "");
  EXPECT_EQ(split.feed("\n\r\n"), "data: {}\n\n");
  EXPECT_FALSE(split.pending());
}

} // namespace
} // namespace troupe::openai

// The embeddings protocol (ai/embeddings.hpp): request validation, per-input cache keys, the upstream's body,
// answer checks, and the client's answer in either encoding.

#include "ai/embeddings.hpp"

#include "config/json.hpp"
#include "config/hashing.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace troupe::embeddings {
namespace {

rapidjson::Document parse(const std::string& text) {
  auto parsed = json::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return std::move(parsed.document());
}

request valid(const std::string& text) {
  request r;
  auto err = validate_request(parse(text), r);
  EXPECT_FALSE(err) << text << ": " << (err ? err->message : "");
  return r;
}

std::string refused(const std::string& text) {
  request r;
  auto err = validate_request(parse(text), r);
  EXPECT_TRUE(err) << text;
  return err ? err->param : "<accepted>";
}

std::string vector_of(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return base64_encode(bytes);
}

TEST(EmbeddingsRequest, AcceptsEveryInputShape) {
  auto one = valid(R"({"model":"m","input":"hello"})");
  EXPECT_EQ(one.inputs, std::vector<std::string>{"\"hello\""});
  EXPECT_EQ(one.prompt_chars, 5u);
  EXPECT_FALSE(one.base64);
  EXPECT_EQ(one.dimensions, 0);

  auto many = valid(R"({"model":"m","input":["a","b\u0063"],"encoding_format":"base64","dimensions":256,"user":"u"})");
  EXPECT_EQ(many.inputs, (std::vector<std::string>{"\"a\"", "\"bc\""}));
  EXPECT_TRUE(many.base64);
  EXPECT_EQ(many.dimensions, 256);
  EXPECT_EQ(many.user, "u");
  EXPECT_EQ(many.input_chars, (std::vector<size_t>{1, 2}));

  auto tokens = valid(R"({"model":"m","input":[1, 2, 3]})");
  EXPECT_EQ(tokens.inputs, std::vector<std::string>{"[1,2,3]"});
  EXPECT_EQ(tokens.prompt_chars, 12u); // four characters a token

  auto token_lists = valid(R"({"model":"m","input":[[1],[2,3]],"encoding_format":null})");
  EXPECT_EQ(token_lists.inputs, (std::vector<std::string>{"[1]", "[2,3]"}));
}

TEST(EmbeddingsRequest, RefusesWhatIsNotAnEmbeddingsRequest) {
  EXPECT_EQ(refused(R"([])"), "");
  EXPECT_EQ(refused(R"({"input":"x"})"), "model");
  EXPECT_EQ(refused(R"({"model":"","input":"x"})"), "model");
  EXPECT_EQ(refused(R"({"model":"m"})"), "input");
  EXPECT_EQ(refused(R"({"model":"m","input":""})"), "input");
  EXPECT_EQ(refused(R"({"model":"m","input":[]})"), "input");
  EXPECT_EQ(refused(R"({"model":"m","input":{"text":"x"}})"), "input");
  EXPECT_EQ(refused(R"({"model":"m","input":["a",""]})"), "input[1]");
  EXPECT_EQ(refused(R"({"model":"m","input":["a",[1]]})"), "input[1]");
  EXPECT_EQ(refused(R"({"model":"m","input":[[1],"a"]})"), "input[1]");
  EXPECT_EQ(refused(R"({"model":"m","input":[[1],[]]})"), "input[1]");
  EXPECT_EQ(refused(R"({"model":"m","input":[1,-2]})"), "input[1]");
  EXPECT_EQ(refused(R"({"model":"m","input":[1,2.5]})"), "input[1]");
  EXPECT_EQ(refused(R"({"model":"m","input":[2147483648]})"), "input[0]");
  EXPECT_EQ(refused(R"({"model":"m","input":[[1,"a"]]})"), "input[0][1]");
  EXPECT_EQ(refused(R"({"model":"m","input":"x","encoding_format":"binary"})"), "encoding_format");
  EXPECT_EQ(refused(R"({"model":"m","input":"x","dimensions":0})"), "dimensions");
  EXPECT_EQ(refused(R"({"model":"m","input":"x","dimensions":65537})"), "dimensions");
  EXPECT_EQ(refused(R"({"model":"m","input":"x","user":7})"), "user");
  EXPECT_EQ(refused(R"({"model":"m","input":"x","temperature":0})"), "temperature");

  std::string too_many = R"({"model":"m","input":[)";
  for (size_t i = 0; i <= max_inputs; ++i)
    too_many += (i > 0 ? ",\"x\"" : "\"x\"");
  EXPECT_EQ(refused(too_many + "]}"), "input");
}

TEST(EmbeddingsKey, OnlyTheModelTheDimensionsAndTheInputDecide) {
  auto a = valid(R"({"model":"m","input":["x","y"],"encoding_format":"float"})");
  auto b = valid(R"({"model":"m","input":["y","x"],"encoding_format":"base64","user":"someone"})");
  EXPECT_EQ(input_key(a, 0, "t"), input_key(b, 1, "t"));
  EXPECT_EQ(input_key(a, 1, "t"), input_key(b, 0, "t"));
  EXPECT_NE(input_key(a, 0, "t"), input_key(a, 1, "t"));
  EXPECT_NE(input_key(a, 0, "t"), input_key(a, 0, "u")); // another tenant
  EXPECT_EQ(input_key(a, 0, "t").rfind("emb:t:", 0), 0u);
  auto other_model = valid(R"({"model":"n","input":"x"})");
  auto other_dimensions = valid(R"({"model":"m","input":"x","dimensions":8})");
  auto escaped = valid(R"({"model":"m","input":"\u0078"})");
  EXPECT_NE(input_key(a, 0, "t"), input_key(other_model, 0, "t"));
  EXPECT_NE(input_key(a, 0, "t"), input_key(other_dimensions, 0, "t"));
  EXPECT_EQ(input_key(a, 0, "t"), input_key(escaped, 0, "t"));
  // A string and the token list that looks like it are different inputs.
  auto text = valid(R"({"model":"m","input":"[1]"})");
  auto tokens = valid(R"({"model":"m","input":[[1]]})");
  EXPECT_NE(input_key(text, 0, "t"), input_key(tokens, 0, "t"));
}

TEST(EmbeddingsUpstream, AsksForTheChosenInputsAsBase64) {
  auto r = valid(R"({"model":"m","input":["a","b","c"],"dimensions":4,"user":"u"})");
  EXPECT_EQ(upstream_body(r, {2, 0}),
            R"({"model":"m","input":["c","a"],"encoding_format":"base64","dimensions":4,"user":"u"})");
  auto plain = valid(R"({"model":"m","input":[[5,6]]})");
  EXPECT_EQ(upstream_body(plain, {0}), R"({"model":"m","input":[[5,6]],"encoding_format":"base64"})");
}

TEST(EmbeddingsAnswer, TakesBase64OrNumbersByIndex) {
  std::string why;
  auto v0 = vector_of({0.5f, -1.0f});
  auto answer = check_answer(R"({"data":[{"index":1,"embedding":[0.25,0.1]},{"index":0,"embedding":")" + v0
                               + R"("}],"model":"m-2024","usage":{"prompt_tokens":7,"total_tokens":7}})",
                             2, 100, why);
  ASSERT_TRUE(answer) << why;
  EXPECT_EQ(answer->vectors[0], v0);
  EXPECT_EQ(answer->vectors[1], vector_of({0.25f, 0.1f}));
  EXPECT_EQ(answer->model, "m-2024");
  EXPECT_EQ(answer->used.prompt_tokens, 7);
  EXPECT_EQ(answer->used.total_tokens, 7);
  EXPECT_FALSE(answer->used.estimated);

  auto unreported = check_answer(R"({"data":[{"index":0,"embedding":[1]}]})", 1, 40, why);
  ASSERT_TRUE(unreported) << why;
  EXPECT_EQ(unreported->used.prompt_tokens, 10);
  EXPECT_TRUE(unreported->used.estimated);
}

TEST(EmbeddingsAnswer, RefusesAnswersThatDoNotMatchTheRequest) {
  std::string why;
  auto v = vector_of({1.0f});
  EXPECT_FALSE(check_answer("not json", 1, 0, why));
  EXPECT_FALSE(check_answer("[]", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":{}})", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[]})", 1, 0, why));
  EXPECT_NE(why.find("0 embeddings for 1 inputs"), std::string::npos) << why;
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]})", 2, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"index":2,"embedding":[1]},{"index":0,"embedding":[1]}]})", 2, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"embedding":[1]}]})", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":[]}]})", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":["1"]}]})", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":[1e300]}]})", 1, 0, why)); // not a float32
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":"AAA="}]})", 1, 0, why)); // 2 bytes
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":"@@@@"}]})", 1, 0, why));
  // Base64 of a NaN or an infinity: no JSON number could carry it to a client asking for floats.
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":")" + vector_of({1.0f, NAN}) + R"("}]})", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":")" + vector_of({INFINITY}) + R"("}]})", 1, 0, why));
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":")" + v + R"("},{"index":1,"embedding":[1,2]}]})", 2,
                            0, why));
  EXPECT_NE(why.find("differ in length"), std::string::npos) << why;
  // Asked for 2 dimensions, answered 1: refused, so the entry of 2 dimensions never holds it.
  EXPECT_FALSE(check_answer(R"({"data":[{"index":0,"embedding":")" + v + R"("}]})", 1, 0, why, 2));
  EXPECT_NE(why.find("1 dimensions for 2 asked"), std::string::npos) << why;
  EXPECT_TRUE(check_answer(R"({"data":[{"index":0,"embedding":")" + v + R"("}]})", 1, 0, why, 1));
}

TEST(EmbeddingsAnswer, WritesFloatsInTheirShortestExactForm) {
  std::vector<float> values{0.1f, -0.25f, 1e-7f, 3.4028235e38f, 0.0f, 0.123456789f, -0.0f, 1e-45f};
  auto numbers = as_numbers(vector_of(values));
  EXPECT_EQ(numbers, "[0.1,-0.25,1e-07,3.4028235e+38,0,0.12345679,-0.0,1e-45]");
  auto parsed = json::parse(numbers);
  ASSERT_TRUE(parsed.ok());
  for (size_t i = 0; i < values.size(); ++i) {
    auto read = static_cast<float>(parsed.document()[static_cast<rapidjson::SizeType>(i)].GetDouble());
    EXPECT_EQ(std::memcmp(&read, &values[i], sizeof(float)), 0) << i; // bit for bit: -0.0 stays negative
  }
  EXPECT_EQ(as_numbers("AAA="), "");
  EXPECT_FALSE(valid_vector(""));
  EXPECT_TRUE(valid_vector(vector_of({2.0f})));
}

TEST(EmbeddingsAnswer, PutsTheVectorsInTheRequestsOrder) {
  auto a = vector_of({1.0f}), b = vector_of({0.5f, 2.0f});
  openai::usage used;
  used.prompt_tokens = 3;
  auto both = answer_body({a, b}, {1, 0, 1}, true, "m", used);
  EXPECT_EQ(both, R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":")" + b
                    + R"("},{"object":"embedding","index":1,"embedding":")" + a
                    + R"("},{"object":"embedding","index":2,"embedding":")" + b
                    + R"("}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}})");
  EXPECT_LE(both.size(), answer_bytes({a, b}, {1, 0, 1}, true, "m"));
  auto numbers = answer_body({b}, {0}, false, "m", {});
  EXPECT_EQ(numbers, R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,2]}],"model":"m",)"
                     R"("usage":{"prompt_tokens":0,"total_tokens":0}})");
  EXPECT_LE(numbers.size(), answer_bytes({b}, {0}, false, "m"));
}

} // namespace
} // namespace troupe::embeddings

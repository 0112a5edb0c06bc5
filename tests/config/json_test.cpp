// The safe JSON parser (config/json.hpp): depth limit, duplicate keys, UTF-8, offsets and param paths.

#include "config/json.hpp"

#include <gtest/gtest.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace troupe::json {
namespace {

std::string nested_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string nested_objects(size_t depth) {
  std::string text;
  for (size_t i = 0; i < depth; ++i)
    text += "{\"a\":";
  text += "1";
  text += std::string(depth, '}');
  return text;
}

parse_error error_of(const std::string& text, size_t max_depth = default_max_depth) {
  auto result = parse(text, max_depth);
  EXPECT_FALSE(result.ok()) << text.substr(0, 200);
  return result ? parse_error{} : result.error();
}

// Ordinary documents parse into the same values RapidJSON gives, a UTF-8 BOM is skipped.
TEST(JsonParse, ParsesOrdinaryDocuments) {
  auto r = parse(R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9 \u20ac"}],"n":2,"t":0.5,"ok":true,
                     "none":null,"big":18446744073709551615,"neg":-3})");
  ASSERT_TRUE(r.ok()) << r.error().reason;
  EXPECT_EQ(std::string((*r)["model"].GetString()), "m");
  EXPECT_EQ(std::string((*r)["messages"][0]["content"].GetString()), "caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(r->FindMember("n")->value.GetInt64(), 2);
  EXPECT_DOUBLE_EQ((*r)["t"].GetDouble(), 0.5);
  EXPECT_TRUE((*r)["none"].IsNull());
  EXPECT_EQ((*r)["big"].GetUint64(), 18446744073709551615ull);
  EXPECT_EQ((*r)["neg"].GetInt(), -3);
  EXPECT_TRUE(parse("\xEF\xBB\xBF[1]").ok());
  for (const char* scalar : {"1", "\"s\"", "true", "null", " 2.5e3 "})
    EXPECT_TRUE(parse(scalar).ok()) << scalar;
  // The result moves with its document.
  auto moved = std::move(r);
  EXPECT_EQ(moved->MemberCount(), 8u);
}

// Depth is the number of arrays and objects around a value: exactly the limit passes, one more fails.
TEST(JsonParse, DepthExactlyAtTheLimitPassesOneMoreFails) {
  for (size_t limit : {1u, 2u, 64u, 200u}) {
    EXPECT_TRUE(parse(nested_arrays(limit), limit).ok()) << limit;
    EXPECT_TRUE(parse(nested_objects(limit), limit).ok()) << limit;
    auto arrays = error_of(nested_arrays(limit + 1), limit);
    EXPECT_EQ(arrays.code, parse_errc::too_deep);
    EXPECT_EQ(arrays.offset, limit); // at the bracket one level too deep
    auto objects = error_of(nested_objects(limit + 1), limit);
    EXPECT_EQ(objects.code, parse_errc::too_deep);
    EXPECT_EQ(objects.offset, 5 * limit);
  }
  // The default limit is 64 and the reason names it.
  EXPECT_TRUE(parse(nested_arrays(64)).ok());
  auto e = error_of(nested_arrays(65));
  EXPECT_EQ(e.reason, "arrays and objects nest deeper than 64 levels");
  // 0: scalars only.
  EXPECT_TRUE(parse("7", 0).ok());
  EXPECT_EQ(error_of("[]", 0).code, parse_errc::too_deep);
  EXPECT_EQ(error_of("{}", 0).param, "");
}

// The param names the container one level too deep, in the syntax of json_schema's param paths.
TEST(JsonParse, TooDeepNamesWhere) {
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":[[1]]}]})", 4).param, "messages[0].content[0]");
  EXPECT_EQ(error_of(R"([1,2,{"a":[3]}])", 2).param, "[2].a");
  EXPECT_EQ(error_of(R"({"a":{"b":{}}})", 2).param, "a.b");
  EXPECT_EQ(error_of(nested_arrays(3), 2).param, "[0][0]");
}

// A million levels (the attack of issue 13) is refused at the limit, without deep recursion and quickly.
TEST(JsonParse, AMillionLevelsIsRefusedNotACrash) {
  auto started = std::chrono::steady_clock::now();
  for (const std::string& text :
       {std::string(1000000, '['), nested_arrays(1000000), nested_objects(1000000), std::string(1000000, '{')}) {
    auto result = parse(text);
    ASSERT_FALSE(result.ok());
    // An unclosed run of '{' fails as a syntax error at the second '{' (a key must come first).
    if (text[1] == '{')
      EXPECT_EQ(result.error().code, parse_errc::syntax);
    else
      EXPECT_EQ(result.error().code, parse_errc::too_deep);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds{5});
}

// The same key twice in one object is refused at any level; keys are compared after unescaping.
TEST(JsonParse, RefusesDuplicateKeysAtEveryLevel) {
  struct expectation {
    const char* text;
    const char* param;
    size_t offset;
  };
  for (auto e : {
         expectation{R"({"model":"a","model":"b"})", "model", 20},
         expectation{R"({"a":1,"\u0061":2})", "a", 15},
         expectation{R"({"m":[{"role":"user","content":"x","role":"system"}]})", "m[0].role", 41},
         expectation{R"({"x":{"y":{"z":1,"z":2}}})", "x.y.z", 20},
         expectation{R"([{},{"k":1,"k":1}])", "[1].k", 14},
         expectation{R"({"n":1,"stream":true,"n":2})", "n", 24},
       }) {
    auto err = error_of(e.text);
    EXPECT_EQ(err.code, parse_errc::duplicate_key) << e.text;
    EXPECT_EQ(err.param, e.param) << e.text;
    EXPECT_EQ(err.offset, e.offset) << e.text;
  }
  EXPECT_EQ(error_of(R"({"model":"a","model":"b"})").reason, "the key \"model\" appears twice in one object");
  // Not duplicates: the same key in sibling objects, at other levels, after a nested object closed, or differing
  // only in case.
  for (const char* fine : {R"([{"a":1},{"a":2}])", R"({"a":{"a":{"a":1}}})", R"({"a":{"b":1},"b":2})",
                           R"({"a":1,"A":2,"a ":3})", R"({"":1,"x":{"":2}})"})
    EXPECT_TRUE(parse(fine).ok()) << fine;
}

// Large objects switch to an index: no false positives, the duplicate is found wherever it is, and a big object
// costs O(n log n).
TEST(JsonParse, LargeObjects) {
  std::string text = "{";
  for (int i = 0; i < 100000; ++i)
    text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  text += "}";
  auto started = std::chrono::steady_clock::now();
  auto ok = parse(text);
  ASSERT_TRUE(ok.ok()) << ok.error().reason;
  EXPECT_EQ(ok->MemberCount(), 100000u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds{5});
  for (int at : {5, 40, 99999}) {
    std::string dup = text;
    dup.insert(dup.size() - 1, ",\"k" + std::to_string(at) + "\":0");
    auto err = error_of(dup);
    EXPECT_EQ(err.code, parse_errc::duplicate_key);
    EXPECT_EQ(err.param, "k" + std::to_string(at));
  }
  // A nested large object does not see its parent's keys, nor its parent its keys.
  std::string nested = R"({"k1":{)" + text.substr(1) + R"(,"k2":2})";
  EXPECT_TRUE(parse(nested).ok());
}

// Strings must be UTF-8: the offset is where the bad sequence starts.
TEST(JsonParse, RefusesInvalidUtf8) {
  auto e = error_of("{\"a\":\"ok \xff\"}");
  EXPECT_EQ(e.code, parse_errc::invalid_utf8);
  EXPECT_EQ(e.offset, 9u);
  EXPECT_EQ(error_of("[\"\xc0\xaf\"]").code, parse_errc::invalid_utf8);     // overlong
  EXPECT_EQ(error_of("[\"\xed\xa0\x80\"]").code, parse_errc::invalid_utf8); // surrogate
  EXPECT_EQ(error_of("{\"\xff\":1}").code, parse_errc::invalid_utf8);       // in a key
}

// Found by the json_body fuzzer: RapidJSON 1.1 decodes a lone low surrogate escape into bytes that are not UTF-8
// (the serialised document then failed to parse again, and PostgreSQL refuses such text). Refused, with its path.
TEST(JsonParse, RefusesLoneSurrogateEscapes) {
  auto e = error_of(R"({"a":["ok","caf\ude00"]})");
  EXPECT_EQ(e.code, parse_errc::invalid_utf8);
  EXPECT_EQ(e.param, "a[1]");
  EXPECT_EQ(e.offset, 22u);
  EXPECT_EQ(error_of(R"({"\udfff":1})").param, "\xed\xbf\xbf");
  EXPECT_EQ(error_of(R"(["\ud83d"])").code, parse_errc::syntax); // a high one without its pair: RapidJSON refuses
  // Pairs, and characters near the surrogates, are fine.
  auto ok = parse("[\"\\ud83d\\ude00\",\"\\ud7ff\",\"\\ue000\",\"\xed\x9f\xbf\"]");
  ASSERT_TRUE(ok.ok()) << ok.error().reason;
  EXPECT_EQ(std::string((*ok)[0].GetString()), "\xf0\x9f\x98\x80");
}

// Found by the json_body fuzzer: numbers are read correctly rounded, so writing a document and reading it again
// gives the same numbers (RapidJSON's fast default drifted by a unit in the last place on each round).
TEST(JsonParse, NumbersSurviveARoundTrip) {
  auto write = [](const rapidjson::Value& v) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
    v.Accept(w);
    return std::string{buffer.GetString(), buffer.GetSize()};
  };
  for (const std::string& text : {"[" + std::string(69, '9') + "7777]", std::string{"[0.30000000000000004]"},
                                  std::string{"[1.7976931348623157e308,5e-324,2.2250738585072014e-308]"}}) {
    auto once = parse(text);
    ASSERT_TRUE(once.ok()) << text;
    auto first = write(*once);
    auto again = parse(first);
    ASSERT_TRUE(again.ok()) << first;
    EXPECT_EQ(write(*again), first) << text;
  }
  auto numbers = parse("[0.1,-0,18446744073709551615,18446744073709551616,-9223372036854775808,1e-400,"
                       "0.0000000000000000000000000000000000000001e-320,2.2250738585072011e-308]");
  ASSERT_TRUE(numbers.ok()) << numbers.error().reason;
  const auto& n = *numbers;
  EXPECT_EQ(n[0].GetDouble(), 0.1);
  EXPECT_TRUE(n[1].IsInt64());
  EXPECT_EQ(n[2].GetUint64(), 18446744073709551615ull);
  EXPECT_TRUE(n[3].IsDouble());
  EXPECT_EQ(n[4].GetInt64(), INT64_MIN);
  EXPECT_EQ(n[5].GetDouble(), 0.0); // underflow reads as zero, as RapidJSON reads it
  EXPECT_EQ(n[6].GetDouble(), 0.0); // (RapidJSON 1.1's full-precision mode reads out of bounds here)
  EXPECT_EQ(n[7].GetDouble(), 2.2250738585072009e-308);
  // Beyond double's range: refused at the number's first byte.
  auto big = error_of("[1, 1.8e308]");
  EXPECT_EQ(big.code, parse_errc::syntax);
  EXPECT_EQ(big.reason, "Number too big to be stored in double");
  EXPECT_EQ(big.offset, 4u);
}

// Syntax errors carry RapidJSON's reason without the final period, and the offset.
TEST(JsonParse, SyntaxErrors) {
  auto e = error_of("[1,]");
  EXPECT_EQ(e.code, parse_errc::syntax);
  EXPECT_EQ(e.reason, "Invalid value");
  EXPECT_EQ(e.offset, 3u);
  EXPECT_EQ(e.param, "");
  EXPECT_EQ(error_of("").reason, "The document is empty");
  EXPECT_EQ(error_of("{} x").reason, "The document root must not be followed by other values");
  EXPECT_EQ(error_of("[\"a\x01\"]").code, parse_errc::syntax); // raw control character
  EXPECT_EQ(error_of(std::string("[\"a\0b\"]", 7)).code, parse_errc::syntax);
  for (const char* text : {"[NaN]", "[Infinity]", "[1e400]", "{'a':1}", "[1,2", "{\"a\" 1}", "// c\n1", "[01]"})
    EXPECT_EQ(error_of(text).code, parse_errc::syntax) << text;
}

// Found by the json_body fuzzer: RapidJSON reads a NUL byte as the end of the text, so a document followed by a NUL
// and anything at all was accepted as the document alone, where other parsers refuse the text. Refused wherever it
// is (or the first bad UTF-8 byte, if that comes first).
TEST(JsonParse, RefusesNulBytesAnywhere) {
  auto e = error_of(std::string("{}\0{\"model\":\"x\"}", 16));
  EXPECT_EQ(e.code, parse_errc::syntax);
  EXPECT_EQ(e.reason, "a NUL byte, which JSON does not allow anywhere");
  EXPECT_EQ(e.offset, 2u);
  EXPECT_EQ(error_of(std::string("1\0\xff", 3)).offset, 1u);
  auto utf8_first = error_of(std::string("[\"\xff\"]\0", 6));
  EXPECT_EQ(utf8_first.code, parse_errc::invalid_utf8);
  EXPECT_EQ(utf8_first.offset, 2u);
}

// A reported path is capped, cut at a character boundary.
TEST(JsonParse, LongParamsAreCapped) {
  std::string key = "\xc3\xa9" + std::string(2000, 'x');
  auto e = error_of("{\"" + key + "\":1,\"" + key + "\":2}");
  EXPECT_EQ(e.code, parse_errc::duplicate_key);
  EXPECT_LE(e.param.size(), max_param_bytes + 3);
  EXPECT_EQ(e.param.substr(e.param.size() - 3), "...");
  EXPECT_EQ(e.param.substr(0, 2), "\xc3\xa9");
  // Not cut inside the two-byte character.
  auto cut = error_of("{\"" + std::string(max_param_bytes - 1, 'y') + "\xc3\xa9\":1,\""
                      + std::string(max_param_bytes - 1, 'y') + "\xc3\xa9\":2}");
  EXPECT_EQ(cut.param, std::string(max_param_bytes - 1, 'y') + "...");
}

} // namespace
} // namespace troupe::json

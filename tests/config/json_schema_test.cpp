// Request bodies against a JSON Schema (config/json_schema.hpp): the field named in `param`, and a sentence built from
// the schema's own limits.

#include "config/json_schema.hpp"

#include "config/json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace troupe {
namespace {

const json_schema& schema() {
  static const json_schema s{R"({
    "type": "object", "additionalProperties": false, "required": ["name"],
    "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 8},
      "kind": {"type": "string", "enum": ["a", "b"]},
      "either": {"type": ["string", "array", "null"], "items": {"type": "string"}},
      "count": {"type": ["integer", "null"], "minimum": 1, "maximum": 9223372036854775807},
      "ratio": {"type": "number", "minimum": 0, "maximum": 2},
      "bias": {"type": "object", "maxProperties": 2, "additionalProperties": {"type": "number", "maximum": 5}},
      "list": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                                            "properties": {"x": {"type": "integer"}}}}
    }
  })"};
  return s;
}

json_schema::violation fails(const std::string& text) {
  auto parsed = json::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  auto v = schema().validate(parsed.document());
  EXPECT_TRUE(v) << text;
  return v.value_or(json_schema::violation{"(none)", "(none)"});
}

TEST(JsonSchema, AcceptsWhatConforms) {
  auto parsed = json::parse(R"({"name":"n","kind":"a","either":null,"count":7,"bias":{"1":2},"list":[{"x":1}]})");
  EXPECT_FALSE(schema().validate(parsed.document()));
}

TEST(JsonSchema, NamesTheFieldAndSaysWhatItMustBe) {
  auto v = fails(R"({"name":""})");
  EXPECT_EQ(v.param, "name");
  EXPECT_EQ(v.message, "name must not be empty.");
  v = fails(R"({})");
  EXPECT_EQ(v.param, "name");
  EXPECT_EQ(v.message, "name is required.");
  v = fails(R"({"name":"n","kind":"c"})");
  EXPECT_EQ(v.message, "kind must be one of a, b.");
  // A list of types names each but null.
  v = fails(R"({"name":"n","either":5})");
  EXPECT_EQ(v.message, "either must be a string or an array.");
  v = fails(R"({"name":"n","either":[1]})");
  EXPECT_EQ(v.param, "either[0]");
  // A bound that only keeps integers within 64 bits is not quoted.
  v = fails(R"({"name":"n","count":0})");
  EXPECT_EQ(v.message, "count must be at least 1.");
  EXPECT_EQ(fails(R"({"name":"n","count":18446744073709551615})").param, "count");
  EXPECT_EQ(fails(R"({"name":"n","ratio":3})").message, "ratio must be from 0 to 2.");
  v = fails(R"({"name":"n","bias":{"1":1,"2":1,"3":1}})");
  EXPECT_EQ(v.message, "bias must have at most 2 fields.");
}

TEST(JsonSchema, ANumericKeyIsAFieldNotAnIndex) {
  auto v = fails(R"({"name":"n","bias":{"17":9}})");
  EXPECT_EQ(v.param, "bias.17");
  EXPECT_EQ(v.message, "bias.17 must be at most 5.");
}

TEST(JsonSchema, AnUnknownFieldIsNamedWhateverItsValue) {
  for (auto text : {R"({"name":"n","extra":1})", R"({"name":"n","extra":{"x":1}})", R"({"extra":[{"y":2}],"name":"n"})"}) {
    auto v = fails(text);
    EXPECT_EQ(v.param, "extra") << text;
    EXPECT_EQ(v.message, "extra is not a known field.") << text;
  }
  EXPECT_EQ(fails(R"({"name":"n","list":[{"x":1},{"x":1,"y":{"z":1}}]})").param, "list[1].y");
}

} // namespace
} // namespace troupe

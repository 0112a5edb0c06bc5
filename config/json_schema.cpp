#include "config/json_schema.hpp"

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace troupe {

namespace {

bool is_index(const rapidjson::Pointer::Token& token) {
  return token.index != rapidjson::kPointerInvalidIndex;
}

/// The sub-schema that governs the value at `pointer` (following properties and items), or nullptr.
const rapidjson::Value* schema_at(const rapidjson::Value& schema, const rapidjson::Pointer& pointer) {
  const rapidjson::Value* current = &schema;
  for (size_t i = 0; i < pointer.GetTokenCount() && current; ++i) {
    const auto& token = pointer.GetTokens()[i];
    if (is_index(token) && current->HasMember("items")) {
      current = &(*current)["items"];
    } else {
      // A named property, else the first pattern's schema (an approximation: what a message quotes is a limit),
      // else additionalProperties when it is a schema.
      const rapidjson::Value* next = nullptr;
      if (current->HasMember("properties")) {
        const auto& props = (*current)["properties"];
        auto member = props.FindMember(rapidjson::Value{token.name, token.length});
        if (member != props.MemberEnd())
          next = &member->value;
      }
      if (!next && current->HasMember("patternProperties") && (*current)["patternProperties"].IsObject()
          && (*current)["patternProperties"].MemberCount() > 0)
        next = &(*current)["patternProperties"].MemberBegin()->value;
      if (!next && current->HasMember("additionalProperties") && (*current)["additionalProperties"].IsObject())
        next = &(*current)["additionalProperties"];
      current = next;
    }
  }
  return current;
}

std::string number_text(const rapidjson::Value& v) {
  if (v.IsInt64())
    return std::to_string(v.GetInt64());
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer{buffer};
  v.Accept(writer);
  return buffer.GetString();
}

std::string with_field(const std::string& param, const std::string& rest) {
  return (param.empty() ? std::string{"The body"} : param) + " " + rest;
}

/// A sentence for `keyword` failing at `param`, using the limits of `schema` (the governing sub-schema).
std::string describe(const std::string& keyword, const std::string& param, const rapidjson::Value* schema) {
  auto limit = [&](const char* name) {
    return schema && schema->HasMember(name) ? number_text((*schema)[name]) : std::string{"?"};
  };
  if (keyword == "type") {
    auto article = [](const std::string& type) {
      return std::string{type == "integer" || type == "object" || type == "array" ? "an " : "a "} + type;
    };
    // A list of types names each but null (null stands for an absent field): "a string or an array".
    std::vector<std::string> types;
    if (schema && schema->HasMember("type") && (*schema)["type"].IsString())
      types.emplace_back((*schema)["type"].GetString());
    if (schema && schema->HasMember("type") && (*schema)["type"].IsArray())
      for (const auto& t : (*schema)["type"].GetArray())
        if (t.IsString() && std::string_view{t.GetString()} != "null")
          types.emplace_back(t.GetString());
    if (types.empty())
      return with_field(param, "must be a value of another type.");
    std::string what;
    for (size_t i = 0; i < types.size(); ++i)
      what += (i == 0 ? "" : i + 1 == types.size() ? " or " : ", ") + article(types[i]);
    return with_field(param, "must be " + what + ".");
  }
  if (keyword == "maxLength")
    return with_field(param, "must be at most " + limit("maxLength") + " characters.");
  if (keyword == "minLength")
    return with_field(param, limit("minLength") == "1" ? "must not be empty."
                                                       : "must be at least " + limit("minLength") + " characters.");
  if (keyword == "minimum" || keyword == "maximum") {
    // A bound at the edge of 64-bit integers only keeps out what does not fit one: it is not a limit to quote.
    auto edge = [&](const char* name) {
      return !schema || !schema->HasMember(name)
             || ((*schema)[name].IsNumber() && std::abs((*schema)[name].GetDouble()) >= 9.2e18);
    };
    if (edge("maximum") && !edge("minimum"))
      return with_field(param, "must be at least " + limit("minimum") + ".");
    if (edge("minimum") && !edge("maximum"))
      return with_field(param, "must be at most " + limit("maximum") + ".");
    return with_field(param, "must be from " + limit("minimum") + " to " + limit("maximum") + ".");
  }
  if (keyword == "maxItems")
    return with_field(param, "must have at most " + limit("maxItems") + " items.");
  if (keyword == "minItems")
    return with_field(param, "must have at least " + limit("minItems") + " item(s).");
  if (keyword == "pattern")
    return with_field(param, "has the wrong format.");
  if (keyword == "enum") {
    std::string values;
    if (schema && schema->HasMember("enum") && (*schema)["enum"].IsArray())
      for (const auto& v : (*schema)["enum"].GetArray()) {
        if (!v.IsString()) {
          values.clear();
          break;
        }
        values += (values.empty() ? "" : ", ") + std::string{v.GetString(), v.GetStringLength()};
      }
    return with_field(param, values.empty() ? "is not one of the allowed values." : "must be one of " + values + ".");
  }
  if (keyword == "maxProperties")
    return with_field(param, "must have at most " + limit("maxProperties") + " fields.");
  return with_field(param, "is invalid (" + keyword + ").");
}


} // namespace

std::string param_path(const rapidjson::Value& doc, const rapidjson::Pointer& pointer) {
  std::string out;
  const rapidjson::Value* current = &doc;
  for (size_t i = 0; i < pointer.GetTokenCount(); ++i) {
    const auto& token = pointer.GetTokens()[i];
    if (current && current->IsArray() && is_index(token)) {
      out += "[" + std::to_string(token.index) + "]";
      current = token.index < current->Size() ? &(*current)[static_cast<rapidjson::SizeType>(token.index)] : nullptr;
      continue;
    }
    if (!out.empty())
      out += '.';
    out.append(token.name, token.length);
    if (current && current->IsObject()) {
      auto member = current->FindMember(rapidjson::Value{token.name, token.length});
      current = member == current->MemberEnd() ? nullptr : &member->value;
    } else {
      current = nullptr;
    }
  }
  return out;
}

json_schema::json_schema(std::string_view schema_json) {
  auto parsed = json::parse(schema_json);
  if (!parsed)
    throw std::invalid_argument("invalid JSON schema: " + parsed.error().reason);
  schema_json_ = std::move(parsed.document());
  schema_ = std::make_unique<rapidjson::SchemaDocument>(schema_json_);
}

std::optional<json_schema::violation> json_schema::validate(const rapidjson::Value& doc) const {
  rapidjson::SchemaValidator validator{*schema_};
  if (doc.Accept(validator))
    return std::nullopt;
  std::string keyword = validator.GetInvalidSchemaKeyword();
  auto pointer = validator.GetInvalidDocumentPointer();
  const auto* at = pointer.Get(doc);
  const auto* schema = schema_at(schema_json_, pointer);
  // For object-level keywords the pointer names the object: find the field at fault.
  if (keyword == "required" && schema && schema->HasMember("required") && at && at->IsObject()) {
    for (const auto& name : (*schema)["required"].GetArray())
      if (!at->HasMember(name)) {
        auto field = pointer.Append(name.GetString(), name.GetStringLength());
        return violation{param_path(doc, field), param_path(doc, field) + " is required."};
      }
  }
  // RapidJSON names the unknown field itself (its value may be an object too: {"extra": {"x": 1}}) or the object
  // that holds it: the field when its parent's schema does not know it.
  bool names_field = false;
  if (keyword == "additionalProperties" && pointer.GetTokenCount() > 0) {
    rapidjson::Pointer parent{pointer.GetTokens(), pointer.GetTokenCount() - 1};
    const auto* parent_schema = schema_at(schema_json_, parent);
    const auto& last = pointer.GetTokens()[pointer.GetTokenCount() - 1];
    const auto* parent_value = parent.Get(doc);
    names_field = parent_schema && parent_value && parent_value->IsObject()
                  && !(parent_schema->HasMember("properties")
                       && (*parent_schema)["properties"].HasMember(rapidjson::Value{last.name, last.length}));
  }
  if (keyword == "additionalProperties" && !names_field && at && at->IsObject()) {
    const rapidjson::Value* props = schema && schema->HasMember("properties") ? &(*schema)["properties"] : nullptr;
    for (const auto& member : at->GetObject())
      if (!props || !props->HasMember(member.name)) {
        auto field = pointer.Append(member.name.GetString(), member.name.GetStringLength());
        return violation{param_path(doc, field), param_path(doc, field) + " is not a known field."};
      }
  }
  auto param = param_path(doc, pointer);
  if (keyword == "additionalProperties")  // the pointer already names the unknown field
    return violation{param, param + " is not a known field."};
  return violation{param, describe(keyword, param, schema)};
}

} // namespace troupe

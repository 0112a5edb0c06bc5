#include "http/json_schema.hpp"

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <stdexcept>

namespace troupe::http {

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
    } else if (current->HasMember("properties")) {
      const auto& props = (*current)["properties"];
      auto member = props.FindMember(rapidjson::Value{token.name, token.length});
      current = member == props.MemberEnd() ? nullptr : &member->value;
    } else {
      current = nullptr;
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
    std::string type = schema && schema->HasMember("type") && (*schema)["type"].IsString()
                         ? (*schema)["type"].GetString()
                         : "value of another type";
    return with_field(param, "must be " + std::string{type == "integer" || type == "object" || type == "array"
                                                        ? "an "
                                                        : "a "}
                               + type + ".");
  }
  if (keyword == "maxLength")
    return with_field(param, "must be at most " + limit("maxLength") + " characters.");
  if (keyword == "minLength")
    return with_field(param, limit("minLength") == "1" ? "must not be empty."
                                                       : "must be at least " + limit("minLength") + " characters.");
  if (keyword == "minimum" || keyword == "maximum")
    return with_field(param, "must be from " + limit("minimum") + " to " + limit("maximum") + ".");
  if (keyword == "maxItems")
    return with_field(param, "must have at most " + limit("maxItems") + " items.");
  if (keyword == "minItems")
    return with_field(param, "must have at least " + limit("minItems") + " item(s).");
  if (keyword == "pattern")
    return with_field(param, "has the wrong format.");
  if (keyword == "enum")
    return with_field(param, "is not one of the allowed values.");
  return with_field(param, "is invalid (" + keyword + ").");
}

} // namespace

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
        return violation{param_path(field), param_path(field) + " is required."};
      }
  }
  if (keyword == "additionalProperties" && at && at->IsObject()) {
    const rapidjson::Value* props = schema && schema->HasMember("properties") ? &(*schema)["properties"] : nullptr;
    for (const auto& member : at->GetObject())
      if (!props || !props->HasMember(member.name)) {
        auto field = pointer.Append(member.name.GetString(), member.name.GetStringLength());
        return violation{param_path(field), param_path(field) + " is not a known field."};
      }
  }
  auto param = param_path(pointer);
  if (keyword == "additionalProperties")  // the pointer already names the unknown field
    return violation{param, param + " is not a known field."};
  return violation{param, describe(keyword, param, schema)};
}

std::string param_path(const rapidjson::Pointer& pointer) {
  std::string out;
  for (size_t i = 0; i < pointer.GetTokenCount(); ++i) {
    const auto& token = pointer.GetTokens()[i];
    if (is_index(token)) {
      out += "[" + std::to_string(token.index) + "]";
    } else {
      if (!out.empty())
        out += '.';
      out.append(token.name, token.length);
    }
  }
  return out;
}

} // namespace troupe::http

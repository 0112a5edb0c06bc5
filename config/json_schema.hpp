#pragma once
// Request bodies validated against a JSON Schema (draft 4, RapidJSON's validator) before anything reaches an actor.
// A violation names the failing field as a path ("events[3].event") for the error body's `param`, with a sentence
// built from the schema itself ("events[3].event must be at most 64 characters").

#include <rapidjson/document.h>
#include <rapidjson/schema.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace troupe {

class json_schema {
public:
  /// Compiles the schema. Throws std::invalid_argument if `schema_json` is not valid JSON (a programming error:
  /// schemas are constants of the code).
  explicit json_schema(std::string_view schema_json);

  struct violation {
    std::string param;    // "events[3].event", "" for the whole body
    std::string message;  // a sentence for the client
  };

  /// The first violation, or nullopt when `doc` conforms. Thread-safe: the compiled schema is immutable.
  /// RapidJSON's validator recurses once per nesting level: `doc` must be bounded (from json::parse).
  std::optional<violation> validate(const rapidjson::Value& doc) const;

private:
  rapidjson::Document schema_json_;
  std::unique_ptr<rapidjson::SchemaDocument> schema_;
};

/// A pointer into `doc` as a param path: ["events", "3", "event"] -> "events[3].event", each token read as the
/// document has it (a numeric key of an object, "logit_bias": {"1": ...}, is a field: "logit_bias.1").
std::string param_path(const rapidjson::Value& doc, const rapidjson::Pointer& pointer);

} // namespace troupe

#pragma once
// OpenAI's embeddings protocol as the gateway needs it, as pure functions (no actors, no I/O): validating a client's
// request, the cache key of each of its inputs, the body that asks an upstream for the inputs the cache lacks,
// checking the upstream's answer, and writing the client's answer from cached and fresh vectors in the request's
// order.
//
// A vector travels between these functions, and lives in the cache, as base64 of its float32 little-endian bytes:
// the form OpenAI's `encoding_format: "base64"` sends (and the OpenAI SDKs ask for by default). The upstream is
// always asked for it; an upstream that answers numbers anyway is converted. A client asking for "float" gets each
// float32 written in its shortest exact decimal form. So one cache entry per input serves both encodings.

#include "ai/openai.hpp"

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::embeddings {

/// Inputs one request may carry (OpenAI's own limit).
inline constexpr size_t max_inputs = 2048;
/// Largest `dimensions` a request may ask for.
inline constexpr int64_t max_dimensions = 65536;

/// A client's embeddings request, validated.
struct request {
  std::string model;
  /// Each input in canonical JSON: a string (its escapes as RapidJSON writes them) or an array of token ids.
  std::vector<std::string> inputs;
  bool base64 = false;     // encoding_format "base64"; else "float"
  int64_t dimensions = 0;  // 0: the model's own
  std::string user;        // forwarded upstream when set
  /// Per input, what the token estimate reads: a string's characters, 4 per token id.
  std::vector<size_t> input_chars;
  size_t prompt_chars = 0; // their sum
};

/// Validates a parsed body (from json::parse: no duplicate keys, bounded depth): `model` (1-128 characters);
/// `input` a non-empty string, an array of 1..max_inputs non-empty strings, a non-empty array of token ids
/// (integers 0..2^31-1), or an array of 1..max_inputs such arrays; `encoding_format` "float" or "base64";
/// `dimensions` 1..max_dimensions; `user` (at most 512 characters). Any other field is refused. Null counts as
/// absent, except for `model` and `input`, which are required.
std::optional<openai::request_error> validate_request(const rapidjson::Document& doc, request& out);

/// The cache key of input `i` for a tenant: "emb:<tenant>:<sha256 hex of model, dimensions and the input>". The
/// encoding and `user` do not change it; the same text inside another batch, or at another position, has the same
/// key.
std::string input_key(const request& r, size_t i, const std::string& tenant);

/// The body that asks an upstream for the inputs `which` (indices into r.inputs), in that order, as base64.
std::string upstream_body(const request& r, const std::vector<size_t>& which);

/// What an upstream answered, checked.
struct upstream_answer {
  std::vector<std::string> vectors; // by the upstream's `index`: the vector of the index-th input sent, as base64
  std::string model;                // the model the answer names ("" when it names none)
  openai::usage used;               // completion_tokens 0
};

/// Checks an upstream answer to `expected` inputs: a JSON object whose `data` array holds one embedding per input
/// (each `index` 0..expected-1 exactly once; `embedding` base64 of whole finite float32s, or an array of numbers
/// that are finite as float32s),
/// all of the same non-zero length: `dimensions` when that is not 0 (an upstream that ignores the request's
/// dimensions would otherwise fill the cache entry of those dimensions with vectors of another size). Usage is
/// `usage.prompt_tokens` when reported, else estimated from `prompt_chars` (and marked so). nullopt with `why` set
/// when the answer is not that.
std::optional<upstream_answer> check_answer(std::string_view body, size_t expected, size_t prompt_chars,
                                            std::string& why, int64_t dimensions = 0);

/// The client's answer, OpenAI's shape: {"object":"list","data":[{"object":"embedding","index":i,"embedding":E}],
/// "model":M,"usage":{"prompt_tokens":P,"total_tokens":P}}, E being vectors[slot[i]] as base64 or as numbers (each
/// distinct vector is converted once, however many inputs share it).
std::string answer_body(const std::vector<std::string>& vectors, const std::vector<size_t>& slot, bool base64,
                        const std::string& model, const openai::usage& used);

/// At least as many bytes as answer_body will write (a vector as numbers: at most 16 characters a float), without
/// writing it: a batch repeating one input many times may ask for an answer far larger than its request.
size_t answer_bytes(const std::vector<std::string>& vectors, const std::vector<size_t>& slot, bool base64,
                    const std::string& model);

/// Whether `vector` is base64 of whole finite float32s, at least one (a cache entry is checked before it is used).
bool valid_vector(std::string_view vector);

/// The float32 values of a base64 vector, written as a JSON array of numbers in their shortest exact form
/// ("[0.1,-0.25]", negative zero as "-0.0"); "" when `vector` is not valid_vector.
std::string as_numbers(std::string_view vector);

} // namespace troupe::embeddings

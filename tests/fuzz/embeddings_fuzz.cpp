// Fuzz target: the embeddings protocol (ai/embeddings.hpp). The input is used twice: as a client's request body
// (json::parse, validate_request, then the cache keys and the upstream's body), and as an upstream's answer to one,
// two or three inputs (check_answer, then the client's answer in both encodings).
//
// Invariants:
//   - an accepted request has 1..max_inputs inputs; its upstream body is a valid request again, with the same
//     inputs, asking for base64; the key of an input does not depend on its position;
//   - an accepted answer has one valid vector per input, all of one length; the client's answer is JSON in both
//     encodings, with the vectors in order, and the numbers read back as exactly the float32s sent.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "ai/embeddings.hpp"
#include "config/hashing.hpp"

#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace troupe;
using fuzz::check;
namespace emb = embeddings;

void as_request(std::string_view text) {
  auto parsed = json::parse(text);
  if (!parsed)
    return;
  emb::request r;
  if (emb::validate_request(parsed.document(), r))
    return;
  check(!r.inputs.empty() && r.inputs.size() <= emb::max_inputs, "an accepted request has 1..max_inputs inputs");
  check(r.input_chars.size() == r.inputs.size(), "every input has its character count");
  std::vector<size_t> reversed;
  for (size_t i = r.inputs.size(); i-- > 0;)
    reversed.push_back(i);
  auto body = emb::upstream_body(r, reversed);
  auto again = json::parse(body);
  check(again.ok(), "the upstream body is JSON");
  emb::request upstream;
  check(!emb::validate_request(again.document(), upstream), "the upstream body is a valid request");
  check(upstream.base64, "the upstream is asked for base64");
  check(upstream.model == r.model && upstream.dimensions == r.dimensions && upstream.user == r.user,
        "the upstream body keeps the model, dimensions and user");
  check(upstream.inputs.size() == r.inputs.size(), "the upstream body has every input");
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    check(upstream.inputs[r.inputs.size() - 1 - i] == r.inputs[i], "the upstream body has the inputs in its order");
    check(emb::input_key(upstream, r.inputs.size() - 1 - i, "t") == emb::input_key(r, i, "t"),
          "an input's key does not depend on its position");
  }
}

void as_answer(std::string_view text, size_t expected) {
  std::string why;
  auto answer = emb::check_answer(text, expected, 40, why);
  if (!answer) {
    check(!why.empty(), "a refused answer says why");
    return;
  }
  check(answer->vectors.size() == expected, "one vector per input");
  std::string first;
  check(base64_decode(answer->vectors[0], first), "a vector is base64");
  for (const auto& v : answer->vectors) {
    std::string bytes;
    check(emb::valid_vector(v) && base64_decode(v, bytes) && bytes.size() == first.size(),
          "every vector is valid and of one length");
  }
  check(answer->used.prompt_tokens >= 0 && answer->used.total_tokens == answer->used.prompt_tokens,
        "usage is prompt tokens only, never negative");
  // Every answered vector twice, in reverse order: each output position takes the vector its slot names.
  std::vector<size_t> slot;
  for (size_t i = expected; i-- > 0;)
    slot.insert(slot.end(), {i, i});
  for (bool base64 : {true, false}) {
    auto body = emb::answer_body(answer->vectors, slot, base64, answer->model, answer->used);
    check(body.size() <= emb::answer_bytes(answer->vectors, slot, base64, answer->model),
          "answer_bytes is never below the answer's size");
    auto out = json::parse(body);
    check(out.ok() && out->IsObject(), "the client's answer is JSON");
    const auto& data = (*out)["data"];
    check(data.IsArray() && data.Size() == slot.size(), "the client's answer has every vector");
    for (rapidjson::SizeType i = 0; i < data.Size(); ++i) {
      const auto& e = data[i]["embedding"];
      const auto& vector = answer->vectors[slot[i]];
      if (base64) {
        check(e.IsString() && e.GetString() == vector, "base64 vectors are sent as they are");
        continue;
      }
      std::string bytes;
      base64_decode(vector, bytes);
      check(e.IsArray() && e.Size() * sizeof(float) == bytes.size(), "every float is written");
      for (rapidjson::SizeType j = 0; j < e.Size(); ++j) {
        float sent;
        std::memcpy(&sent, bytes.data() + j * sizeof(float), sizeof(float));
        auto read = static_cast<float>(e[j].GetDouble());
        check(std::memcmp(&read, &sent, sizeof(float)) == 0, "the numbers read back as the float32s sent");
      }
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* bytes, size_t size) {
  const auto text = fuzz::text_of(bytes, size);
  as_request(text);
  for (size_t expected : {1, 2, 3})
    as_answer(text, expected);
  return 0;
}

#include "actors/gateway_answer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

using namespace troupe;

TEST(GatewayAnswer, ComesBackAsItWent) {
  // Newlines, NUL bytes and the old separator in either field are bytes like any other.
  for (const auto& answer : {gateway_answer{"primary", R"({"choices":[]})"}, gateway_answer{"a\nb", "x\ny\n"},
                             gateway_answer{"", ""}, gateway_answer{"u", std::string("\0\n\0", 3)},
                             gateway_answer{"up", std::string(100000, 'z')}}) {
    auto decoded = decode_gateway_answer(encode(answer));
    ASSERT_TRUE(decoded) << to_string(decoded.error());
    EXPECT_EQ(*decoded, answer);
  }
}

TEST(GatewayAnswer, ATruncatedOrExtendedValueIsAnErrorNotAnAnswer) {
  auto value = encode(gateway_answer{"primary", R"({"choices":[{"message":{"content":"hi"}}]})"});
  for (size_t n = 0; n < value.size(); ++n)
    EXPECT_FALSE(decode_gateway_answer(std::string_view{value}.substr(0, n))) << "cut at " << n;
  EXPECT_FALSE(decode_gateway_answer(value + "x"));
}

TEST(GatewayAnswer, TheOldSeparatedFormAndForeignValuesAreRefused) {
  EXPECT_FALSE(decode_gateway_answer("primary\n{\"choices\":[]}"));
  EXPECT_FALSE(decode_gateway_answer(""));
  // A huge declared length is refused without allocating it.
  EXPECT_FALSE(decode_gateway_answer(std::string("A\xff\xff\xff\xff\x0f", 6)));
}

TEST(GatewayAnswer, RandomBytesNeverDecodeIntoMoreThanTheyHold) {
  std::mt19937 rng{42};
  for (int round = 0; round < 20000; ++round) {
    std::string value(rng() % 24, '\0');
    for (auto& c : value)
      c = static_cast<char>(rng());
    if (!value.empty() && rng() % 2)
      value[0] = 'A';
    auto decoded = decode_gateway_answer(value);
    if (decoded) { // whatever decodes came from the value's own bytes
      EXPECT_LE(decoded->upstream.size() + decoded->body.size(), value.size());
    }
  }
}

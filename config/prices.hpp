#pragma once
// The price table: what a model's tokens cost, configured as the top-level "prices" object of the configuration file
// (README, AI gateway), or as the same JSON object in TROUPE_PRICES (which replaces the file's table).
//
//   "prices": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}
//
// USD per million tokens, prompt (input) and completion (output). A model without a price costs nothing: its usage is
// still recorded in tokens. Costs are computed in integer pico-dollars (10^-12 USD), so a sum of calls is exact.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace troupe::config {

struct config_error;

struct model_price {
  /// Pico-dollars per token: USD per million tokens x 10^6, rounded to the nearest integer.
  int64_t input_pusd_per_token = 0;
  int64_t output_pusd_per_token = 0;
};

/// By model name.
using price_table = std::map<std::string, model_price>;

/// At most this many USD per million tokens (keeps a call's cost far inside int64 pico-dollars).
constexpr double max_price_per_mtok = 100000;

/// Parses the table from JSON text into `out` (replaced only on success). `source` says where the text came from,
/// for errors ("set in FILE", "set by TROUPE_PRICES"); an error names the field, e.g. prices.gpt-4o.input_per_mtok.
std::optional<config_error> parse_prices(const std::string& json, const std::string& source, price_table& out);

/// The cost in pico-dollars of a call with these token counts (0 for a model without a price); saturates at INT64_MAX.
int64_t cost_pusd(const price_table& prices, const std::string& model, int64_t prompt_tokens,
                  int64_t completion_tokens);

/// Pico-dollars as a decimal USD text with 12 decimals ("0.000001500000"), as PostgreSQL's numeric reads it.
std::string usd_text(int64_t pusd);

} // namespace troupe::config

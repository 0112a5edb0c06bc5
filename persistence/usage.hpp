#pragma once
// The usage ledger's report (table usage_events, migration 0008): messages to the database query router (db.query).
// Rows are written by the AI gateway through the writer (usage_event_row in persistence/messages.hpp).

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// One group of a usage report: the calls of one model, one API key or one UTC day.
struct usage_group {
  std::string key;   // the model, the API key's id ("" for calls made with a bearer token), or the day (YYYY-MM-DD)
  std::string label; // by key: the key's name ("" for a bearer token); otherwise ""
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t estimated = 0;  // calls whose tokens were estimated (the upstream reported none)
  std::string cost_usd;   // the sum of the calls' costs, as exact decimal text ("0.000123000000")
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, usage_group& x) {
  return f(caf::meta::type_name("usage_group"), x.key, x.label, x.requests, x.prompt_tokens, x.completion_tokens,
           x.estimated, x.cost_usd);
}

/// How a usage report groups the calls.
enum class usage_grouping : uint8_t { model, key, day };

/// (usage_report_atom, user_id, from_day, to_day, uint8_t grouping) -> std::vector<usage_group>: the user's calls
/// from the start of UTC day `from_day` to the end of UTC day `to_day` (both YYYY-MM-DD, valid dates, from <= to),
/// grouped by `grouping` (a usage_grouping) and ordered by the group's key.
using usage_report_atom = caf::atom_constant<caf::atom("usagerep")>;

/// Settled spend of one user, in pico-dollars (10^-12 USD).
struct spend_totals {
  int64_t day_pusd = 0;
  int64_t month_pusd = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, spend_totals& x) {
  return f(caf::meta::type_name("spend_totals"), x.day_pusd, x.month_pusd);
}

/// (spend_load_atom, user_id, int64_t day_start, int64_t month_start) -> spend_totals: the cost of the user's calls
/// since each unix time (a session's spend ledger starts from it).
using spend_load_atom = caf::atom_constant<caf::atom("spendload")>;

} // namespace troupe

#pragma once
// A user's spend and token limits (issue 16), as the user's session keeps them: reserve before an upstream call,
// settle to what it really used afterwards. Pure logic, no actors: the session owns one spend_ledger and feeds it
// its clock; tests drive it directly.
//
// Reserve, then settle: a call reserves its estimate (the prompt's tokens plus its max_tokens, or
// budget.default_max_tokens, times n) and that estimate's price before it goes upstream; it is refused, changing
// nothing, when the reservation would take the day's or the month's settled spend plus what is reserved past its
// budget, or when the user's tokens-per-minute window has not that many tokens. Settling removes the reservation and
// adds what the call really cost; a call that fails settles at 0. So under any concurrency the settled spend
// exceeds a budget by at most what the estimates under-counted, never by what calls in flight could add.

#include "persistence/accounts.hpp"

#include "config/service_error.hpp"

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace troupe {

/// A plan's limits; 0 = none.
struct spend_limits {
  int64_t day_pusd = 0;          // pico-dollars per quota day
  int64_t month_pusd = 0;        // pico-dollars per UTC calendar month
  int64_t tokens_per_minute = 0; // prompt and completion tokens

  bool any() const { return day_pusd > 0 || month_pusd > 0 || tokens_per_minute > 0; }
};

/// Ends a reservation: its id (spend_status::reservation) and what the call really used; `key_id`: the API key
/// whose own limits it was reserved against too ("" for none).
struct spend_settlement {
  uint64_t reservation = 0;
  int64_t used_tokens = 0;
  int64_t used_pusd = 0;
  std::string key_id{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, spend_settlement& x) {
  return f(caf::meta::type_name("spend_settlement"), x.reservation, x.used_tokens, x.used_pusd, x.key_id);
}

/// A reservation not settled yet, as a hand-off carries it to the user's next owner.
struct spend_hold {
  uint64_t id = 0;
  int64_t tokens = 0;
  int64_t pusd = 0;
  int64_t expires_at = 0; // unix seconds: dropped then, unsettled (its caller is gone or very late)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, spend_hold& x) {
  return f(caf::meta::type_name("spend_hold"), x.id, x.tokens, x.pusd, x.expires_at);
}

/// The answer to a reservation.
struct spend_status {
  bool allowed = true;
  uint64_t reservation = 0; // the granted reservation's id, for its settlement; 0: nothing was reserved
  // "" (allowed); the plan's "tokens_per_minute", "daily_budget" or "monthly_budget"; the API key's "key_budget",
  // "key_tokens_per_minute", "key_requests_per_minute" or "key_parallel_requests"
  std::string refused;
  int64_t retry_after_s = 0;
  int64_t limit = 0;   // the limit that refused: pico-dollars, tokens or requests per minute, requests in flight
  int64_t used = 0;    // what counts against it: settled plus reserved pico-dollars, tokens or requests taken this
                       // minute, requests in flight
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, spend_status& x) {
  return f(caf::meta::type_name("spend_status"), x.allowed, x.reservation, x.refused, x.retry_after_s, x.limit,
           x.used);
}

/// A refused reservation as its caller reads it: 429 for a window (tokens or requests per minute, calls in flight),
/// 402 insufficient_quota for a budget, with what refused, the call's estimate when it alone is too much, and when
/// to retry. The key's model list ("key_model") is not a spend refusal: the gateway answers it (403).
struct spend_refusal {
  service_error code = service_error::rate_limited;
  std::string message;
  int64_t retry_after_s = 0; // > 0: Retry-After; 0: a budget that does not renew
};

/// What `status` (refused) tells a caller whose call was estimated at `tokens` tokens costing `pusd` pico-dollars;
/// `inputs`: the estimate is of embeddings inputs (their tokens), not a prompt plus max_tokens per choice.
spend_refusal explain_refusal(const spend_status& status, int64_t tokens, int64_t pusd, bool inputs);

/// A per-minute allowance: a bucket of `per_minute` refilling at per_minute / 60 a second, which may go below zero
/// (a call that used more tokens than it reserved delays the next ones). Starts full.
class minute_window {
public:
  /// What the bucket holds at `now_s` (monotonic seconds); `per_minute` when it never started.
  double left(int64_t per_minute, double now_s) const;
  /// Takes `n` if the bucket holds that much: true; else false with the seconds until it will in `wait_s` (60 when
  /// `n` is more than the whole minute), changing nothing.
  bool take(int64_t per_minute, double n, double now_s, double& wait_s);
  /// Gives `n` back (negative: takes it, into debt if need be), never past full.
  void give(int64_t per_minute, double n, double now_s);
  /// Holds at most `n` from now on.
  void cap_at(int64_t per_minute, double n, double now_s);

private:
  void set(double value, double now_s);
  bool started_ = false;
  double value_ = 0;
  double at_ = 0;
};

/// The first second of the UTC calendar month holding `unix_seconds`, and of the next one.
int64_t month_start(int64_t unix_seconds);
int64_t next_month_start(int64_t unix_seconds);

class spend_ledger {
public:
  /// Starts with what PostgreSQL holds for the current quota day (starting at `day_start`) and month.
  spend_ledger(int64_t day_start, int64_t spent_day, int64_t spent_month, int64_t now_unix);

  /// Reserves `tokens` and `pusd` at `now_unix` (wall clock, for days, months and the hold's expiry at `expires_at`)
  /// and `now_s` (monotonic seconds, for the tokens-per-minute window), or refuses, changing nothing. A granted
  /// reservation has an id (status.reservation) that its settlement names.
  spend_status reserve(const spend_limits& limits, int64_t tokens, int64_t pusd, int64_t now_unix, double now_s,
                       int64_t expires_at);
  /// Ends a reservation: removes what it holds, adds what was used (the window may go into debt: a call that used
  /// more than it reserved delays the next ones). An unknown id (expired, or reserved on a session that is gone)
  /// only adds what was used.
  void settle(const spend_limits& limits, const spend_settlement& s, int64_t now_unix, double now_s);
  /// Takes over a hand-off from the user's previous owner: no less spend, its reservations that this ledger does not
  /// hold yet (they settle here now), no more window tokens than it had.
  void take_over(const spend_limits& limits, int64_t day_start, int64_t spent_day, int64_t month_start,
                 int64_t spent_month, const std::vector<spend_hold>& holds, double window_tokens, int64_t now_unix,
                 double now_s);

  int64_t day_start() const { return day_start_; }
  int64_t spent_day() const { return spent_day_; }
  int64_t month_start() const { return month_start_; }
  int64_t spent_month() const { return spent_month_; }
  int64_t reserved_pusd() const { return reserved_pusd_; }
  /// The reservations not settled yet.
  std::vector<spend_hold> holds() const;
  /// Tokens the window holds at `now_s` (negative: in debt); the limit itself when the window never started.
  double window_tokens(const spend_limits& limits, double now_s) const;

private:
  /// Rolls the day and month over and drops expired reservations (their tokens go back to the window).
  void roll(const spend_limits& limits, int64_t now_unix, double now_s);
  void release(const spend_limits& limits, const spend_hold& hold, int64_t used_tokens, double now_s);

  int64_t day_start_;
  int64_t spent_day_;
  int64_t month_start_;
  int64_t spent_month_;
  int64_t reserved_pusd_ = 0;
  std::map<uint64_t, spend_hold> holds_;
  minute_window window_; // tokens per minute
};

/// An API key's own limits (persistence/accounts.hpp: api_key_limits), as its owner's session meters them: a budget
/// per period (or for the key's life), tokens and requests per minute, requests in flight. Reservations share their
/// id with the user's spend_ledger reservation of the same call, so that one settlement ends both.
class key_ledger {
public:
  /// Starts with the spend PostgreSQL holds for the period starting at `period_start`.
  key_ledger(int64_t period_start, int64_t spent);

  /// Reserves the call `id` (its tokens and pusd, one request, one slot in flight) or refuses, changing nothing.
  /// `created_at`: the key's creation, from which budget periods count.
  spend_status reserve(const api_key_limits& limits, int64_t created_at, uint64_t id, int64_t tokens, int64_t pusd,
                       int64_t now_unix, double now_s, int64_t expires_at);
  /// Ends the call `id`: frees its slot and what it held, adds what it used (an unknown id only adds what was used).
  void settle(const api_key_limits& limits, int64_t created_at, const spend_settlement& s, int64_t now_unix,
              double now_s);
  /// Takes over the key's state from the user's previous owner: no less spend in the same period, its calls in
  /// flight, no more tokens or requests left in the minute than it had.
  void take_over(const api_key_limits& limits, int64_t created_at, int64_t period_start, int64_t spent,
                 const std::vector<spend_hold>& holds, double tokens_left, double requests_left, int64_t now_unix,
                 double now_s);
  /// Both minute windows hold nothing at `at_s` (a failover: what the dead owner handed out is unknown).
  void empty_windows(const api_key_limits& limits, double at_s);

  int64_t period_start() const { return period_start_; }
  int64_t spent() const { return spent_; }
  std::vector<spend_hold> holds() const;
  double tokens_left(const api_key_limits& limits, double now_s) const { return tokens_.left(limits.tpm_limit, now_s); }
  double requests_left(const api_key_limits& limits, double now_s) const {
    return requests_.left(limits.rpm_limit, now_s);
  }

private:
  void roll(const api_key_limits& limits, int64_t created_at, int64_t now_unix, double now_s);

  int64_t period_start_;
  int64_t spent_;
  int64_t reserved_pusd_ = 0;
  std::map<uint64_t, spend_hold> holds_;
  minute_window tokens_;
  minute_window requests_;
};

/// A key's ledger as a hand-off carries it to the user's next owner.
struct key_handoff {
  std::string key_id;
  api_key_limits limits;
  int64_t created_at = 0;
  int64_t period_start = 0;
  int64_t spent = 0;
  std::vector<spend_hold> holds;
  double tokens_left = 0;
  double requests_left = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_handoff& x) {
  return f(caf::meta::type_name("key_handoff"), x.key_id, x.limits, x.created_at, x.period_start, x.spent, x.holds,
           x.tokens_left, x.requests_left);
}

} // namespace troupe

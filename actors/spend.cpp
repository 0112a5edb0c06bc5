#include "actors/spend.hpp"

#include "config/calendar.hpp"
#include "config/prices.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace troupe {

spend_refusal explain_refusal(const spend_status& spend, int64_t tokens, int64_t pusd, bool inputs) {
  spend_refusal out;
  auto wait = std::max<int64_t>(1, spend.retry_after_s);
  bool key = spend.refused.rfind("key_", 0) == 0;
  std::string whose = key ? "this API key's" : "your plan's";
  std::string Whose = key ? "This API key's" : "Your plan's";
  std::string estimate = inputs ? "its inputs' tokens" : "its prompt plus max_tokens for each choice";
  std::string smaller = inputs ? "send fewer inputs" : "lower max_tokens or n";
  bool renews = true;
  if (spend.refused == "tokens_per_minute" || spend.refused == "key_tokens_per_minute") {
    if (tokens > spend.limit)
      out.message = "This request may use up to " + std::to_string(tokens) + " tokens (" + estimate + "), more than "
                    + whose + " " + std::to_string(spend.limit) + " tokens per minute: " + smaller + ".";
    else
      out.message = "This request may use up to " + std::to_string(tokens) + " tokens; " + std::to_string(spend.used)
                    + " of " + whose + " " + std::to_string(spend.limit) + " tokens per minute are in use. Retry in "
                    + std::to_string(wait) + " s.";
  } else if (spend.refused == "key_requests_per_minute") {
    out.message = Whose + " limit of " + std::to_string(spend.limit) + " requests per minute is reached; retry in "
                  + std::to_string(wait) + " s.";
  } else if (spend.refused == "key_parallel_requests") {
    out.message = Whose + " limit of " + std::to_string(spend.limit)
                  + " requests in flight at once is reached; retry when one has finished.";
  } else {
    out.code = service_error::insufficient_quota;
    renews = !(key && spend.retry_after_s <= 0);
    auto budget = spend.refused == "monthly_budget" ? "monthly budget"
                  : spend.refused == "daily_budget" ? "daily budget"
                  : renews                          ? "budget for its current period"
                                                    : "lifetime budget";
    if (pusd > spend.limit)
      out.message = "This request may cost up to " + config::usd_text(pusd) + " USD (" + estimate
                    + " at the model's price), more than " + whose + " " + budget + " of "
                    + config::usd_text(spend.limit) + " USD: " + smaller + ".";
    else
      out.message = Whose + " " + budget + " of " + config::usd_text(spend.limit) + " USD is used up ("
                    + config::usd_text(spend.used) + " USD spent or reserved by calls in progress); "
                    + (renews ? "it renews in " + std::to_string(wait) + " s." : std::string{"it does not renew."});
  }
  out.retry_after_s = renews ? wait : 0;
  return out;
}

namespace {

constexpr int64_t day_seconds = 86400;

int64_t floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

} // namespace

int64_t month_start(int64_t unix_seconds) {
  auto date = calendar::civil_from_days(floor_div(unix_seconds, day_seconds));
  return calendar::days_from_civil(date.year, date.month, 1) * day_seconds;
}

int64_t next_month_start(int64_t unix_seconds) {
  auto date = calendar::civil_from_days(floor_div(unix_seconds, day_seconds));
  return (date.month == 12 ? calendar::days_from_civil(date.year + 1, 1, 1)
                           : calendar::days_from_civil(date.year, date.month + 1, 1))
         * day_seconds;
}

namespace {

int64_t saturating_add(int64_t a, int64_t b) {
  return b > 0 && a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

spend_status refusal(const char* why, int64_t limit, int64_t used, int64_t retry_after_s) {
  spend_status status;
  status.allowed = false;
  status.refused = why;
  status.limit = limit;
  status.used = used;
  status.retry_after_s = retry_after_s;
  return status;
}

std::vector<spend_hold> holds_of(const std::map<uint64_t, spend_hold>& holds) {
  std::vector<spend_hold> out;
  out.reserve(holds.size());
  for (const auto& [id, hold] : holds)
    out.push_back(hold);
  return out;
}

/// A reservation id: random, so that ids made on two nodes never meet in one ledger after a hand-off.
uint64_t new_reservation_id() {
  thread_local std::mt19937_64 random{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64{seed};
  }()};
  uint64_t id = 0;
  while (id == 0)
    id = random();
  return id;
}

} // namespace

double minute_window::left(int64_t per_minute, double now_s) const {
  auto cap = static_cast<double>(per_minute);
  if (!started_)
    return cap;
  return std::min(cap, value_ + std::max(0.0, now_s - at_) * cap / 60.0);
}

void minute_window::set(double value, double now_s) {
  value_ = value;
  at_ = now_s;
  started_ = true;
}

bool minute_window::take(int64_t per_minute, double n, double now_s, double& wait_s) {
  auto have = left(per_minute, now_s);
  auto cap = static_cast<double>(per_minute);
  if (n > have) {
    // More than the whole window could never pass: a minute's wait (the caller says why); else the time the window
    // needs to refill that far.
    // Deep in debt (calls that used far more than they reserved), the wait is bounded: it becomes an integer.
    wait_s = n > cap ? 60.0 : std::min((n - have) * 60.0 / cap, 86400.0 * 366);
    return false;
  }
  set(have - n, now_s);
  return true;
}

void minute_window::give(int64_t per_minute, double n, double now_s) {
  set(std::min(static_cast<double>(per_minute), left(per_minute, now_s) + n), now_s);
}

void minute_window::cap_at(int64_t per_minute, double n, double now_s) {
  set(std::min(left(per_minute, now_s), n), now_s);
}

spend_ledger::spend_ledger(int64_t day_start, int64_t spent_day, int64_t spent_month, int64_t now_unix)
  : day_start_(day_start), spent_day_(std::max<int64_t>(0, spent_day)), month_start_(troupe::month_start(now_unix)),
    spent_month_(std::max<int64_t>(0, spent_month)) {
  roll(spend_limits{}, now_unix, 0);
}

void spend_ledger::roll(const spend_limits& limits, int64_t now_unix, double now_s) {
  if (now_unix >= day_start_ + day_seconds) {
    day_start_ += floor_div(now_unix - day_start_, day_seconds) * day_seconds;
    spent_day_ = 0;
  }
  if (now_unix >= next_month_start(month_start_)) {
    month_start_ = troupe::month_start(now_unix);
    spent_month_ = 0;
  }
  for (auto i = holds_.begin(); i != holds_.end();) {
    if (i->second.expires_at > now_unix) {
      ++i;
      continue;
    }
    auto hold = i->second;
    i = holds_.erase(i);
    release(limits, hold, 0, now_s);
  }
}

void spend_ledger::release(const spend_limits& limits, const spend_hold& hold, int64_t used_tokens, double now_s) {
  reserved_pusd_ = std::max<int64_t>(0, reserved_pusd_ - hold.pusd);
  if (limits.tokens_per_minute > 0)
    window_.give(limits.tokens_per_minute,
                 static_cast<double>(hold.tokens) - static_cast<double>(std::max<int64_t>(0, used_tokens)), now_s);
}

double spend_ledger::window_tokens(const spend_limits& limits, double now_s) const {
  return window_.left(limits.tokens_per_minute, now_s);
}

std::vector<spend_hold> spend_ledger::holds() const {
  return holds_of(holds_);
}

spend_status spend_ledger::reserve(const spend_limits& limits, int64_t tokens, int64_t pusd, int64_t now_unix,
                                   double now_s, int64_t expires_at) {
  roll(limits, now_unix, now_s);
  tokens = std::max<int64_t>(0, tokens);
  pusd = std::max<int64_t>(0, pusd);
  spend_status status;
  auto refuse = [](const char* why, int64_t limit, int64_t used, int64_t retry_after_s) {
    return refusal(why, limit, used, std::max<int64_t>(1, retry_after_s));
  };
  // Compared as "what is left", so that no sum can overflow.
  auto fits = [pusd](int64_t limit, int64_t counted) { return counted <= limit && pusd <= limit - counted; };
  auto day_counted = saturating_add(spent_day_, reserved_pusd_);
  if (limits.day_pusd > 0 && !fits(limits.day_pusd, day_counted))
    return refuse("daily_budget", limits.day_pusd, day_counted, day_start_ + day_seconds - now_unix);
  auto month_counted = saturating_add(spent_month_, reserved_pusd_);
  if (limits.month_pusd > 0 && !fits(limits.month_pusd, month_counted))
    return refuse("monthly_budget", limits.month_pusd, month_counted, next_month_start(month_start_) - now_unix);
  if (limits.tokens_per_minute > 0) {
    auto have = window_.left(limits.tokens_per_minute, now_s);
    double wait = 0;
    if (!window_.take(limits.tokens_per_minute, static_cast<double>(tokens), now_s, wait))
      return refuse("tokens_per_minute", limits.tokens_per_minute,
                    static_cast<int64_t>(std::ceil(static_cast<double>(limits.tokens_per_minute) - std::max(have, 0.0))),
                    static_cast<int64_t>(std::ceil(wait)));
  }
  reserved_pusd_ = saturating_add(reserved_pusd_, pusd);
  spend_hold hold{new_reservation_id(), tokens, pusd, expires_at};
  holds_.emplace(hold.id, hold);
  status.reservation = hold.id;
  status.used = saturating_add(spent_day_, reserved_pusd_);
  status.limit = limits.day_pusd;
  return status;
}

void spend_ledger::settle(const spend_limits& limits, const spend_settlement& s, int64_t now_unix, double now_s) {
  roll(limits, now_unix, now_s);
  auto used = std::max<int64_t>(0, s.used_pusd);
  spent_day_ = saturating_add(spent_day_, used);
  spent_month_ = saturating_add(spent_month_, used);
  auto hold = holds_.find(s.reservation);
  if (hold != holds_.end()) {
    auto held = hold->second;
    holds_.erase(hold);
    release(limits, held, s.used_tokens, now_s);
  } else if (limits.tokens_per_minute > 0) {
    // Unknown (expired, or reserved where the user was before): what it used still counts.
    release(limits, spend_hold{0, 0, 0, 0}, s.used_tokens, now_s);
  }
}

void spend_ledger::take_over(const spend_limits& limits, int64_t day_start, int64_t spent_day, int64_t month_start,
                             int64_t spent_month, const std::vector<spend_hold>& holds, double window_tokens_left,
                             int64_t now_unix, double now_s) {
  roll(limits, now_unix, now_s);
  if (day_start == day_start_)
    spent_day_ = std::max(spent_day_, spent_day);
  if (month_start == month_start_)
    spent_month_ = std::max(spent_month_, spent_month);
  for (const auto& hold : holds)
    if (hold.id != 0 && hold.expires_at > now_unix && holds_.emplace(hold.id, hold).second)
      reserved_pusd_ = saturating_add(reserved_pusd_, std::max<int64_t>(0, hold.pusd));
  if (limits.tokens_per_minute > 0)
    window_.cap_at(limits.tokens_per_minute, window_tokens_left, now_s);
}

// --- key_ledger ---

key_ledger::key_ledger(int64_t period_start, int64_t spent)
  : period_start_(period_start), spent_(std::max<int64_t>(0, spent)) {}

void key_ledger::roll(const api_key_limits& limits, int64_t created_at, int64_t now_unix, double now_s) {
  auto start = key_period_start(created_at, limits.budget_duration_s, now_unix);
  if (start > period_start_) {
    period_start_ = start;
    spent_ = 0;
  }
  for (auto i = holds_.begin(); i != holds_.end();) {
    if (i->second.expires_at > now_unix) {
      ++i;
      continue;
    }
    // Its caller is gone or very late: its slot, tokens and money come back.
    reserved_pusd_ = std::max<int64_t>(0, reserved_pusd_ - i->second.pusd);
    if (limits.tpm_limit > 0)
      tokens_.give(limits.tpm_limit, static_cast<double>(i->second.tokens), now_s);
    i = holds_.erase(i);
  }
}

spend_status key_ledger::reserve(const api_key_limits& limits, int64_t created_at, uint64_t id, int64_t tokens,
                                 int64_t pusd, int64_t now_unix, double now_s, int64_t expires_at) {
  roll(limits, created_at, now_unix, now_s);
  tokens = std::max<int64_t>(0, tokens);
  pusd = std::max<int64_t>(0, pusd);
  spend_status status;
  auto refuse = refusal;
  if (limits.max_parallel_requests > 0 && static_cast<int64_t>(holds_.size()) >= limits.max_parallel_requests)
    return refuse("key_parallel_requests", limits.max_parallel_requests, static_cast<int64_t>(holds_.size()), 1);
  if (limits.max_budget_pusd > 0) {
    auto counted = saturating_add(spent_, reserved_pusd_);
    if (counted > limits.max_budget_pusd || pusd > limits.max_budget_pusd - counted)
      // A lifetime budget never renews: 0 says so.
      return refuse("key_budget", limits.max_budget_pusd, counted,
                    limits.budget_duration_s > 0 ? std::max<int64_t>(1, period_start_ + limits.budget_duration_s
                                                                          - now_unix)
                                                 : 0);
  }
  // The two windows are checked before either is taken from, so that a refusal changes nothing.
  double wait = 0;
  if (limits.rpm_limit > 0 && requests_.left(limits.rpm_limit, now_s) < 1) {
    requests_.take(limits.rpm_limit, 1, now_s, wait);
    return refuse("key_requests_per_minute", limits.rpm_limit, limits.rpm_limit,
                  std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait))));
  }
  if (limits.tpm_limit > 0) {
    auto have = tokens_.left(limits.tpm_limit, now_s);
    if (!tokens_.take(limits.tpm_limit, static_cast<double>(tokens), now_s, wait))
      return refuse("key_tokens_per_minute", limits.tpm_limit,
                    static_cast<int64_t>(std::ceil(static_cast<double>(limits.tpm_limit) - std::max(have, 0.0))),
                    std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait))));
  }
  if (limits.rpm_limit > 0)
    requests_.take(limits.rpm_limit, 1, now_s, wait);
  reserved_pusd_ = saturating_add(reserved_pusd_, pusd);
  holds_.emplace(id, spend_hold{id, tokens, pusd, expires_at});
  status.reservation = id;
  return status;
}

void key_ledger::settle(const api_key_limits& limits, int64_t created_at, const spend_settlement& s, int64_t now_unix,
                        double now_s) {
  roll(limits, created_at, now_unix, now_s);
  spent_ = saturating_add(spent_, std::max<int64_t>(0, s.used_pusd));
  double held = 0;
  if (auto hold = holds_.find(s.reservation); hold != holds_.end()) {
    reserved_pusd_ = std::max<int64_t>(0, reserved_pusd_ - hold->second.pusd);
    held = static_cast<double>(hold->second.tokens);
    holds_.erase(hold);
  }
  if (limits.tpm_limit > 0)
    tokens_.give(limits.tpm_limit, held - static_cast<double>(std::max<int64_t>(0, s.used_tokens)), now_s);
}

void key_ledger::take_over(const api_key_limits& limits, int64_t created_at, int64_t period_start, int64_t spent,
                           const std::vector<spend_hold>& holds, double tokens_left, double requests_left,
                           int64_t now_unix, double now_s) {
  roll(limits, created_at, now_unix, now_s);
  if (period_start == period_start_)
    spent_ = std::max(spent_, spent);
  for (const auto& hold : holds)
    if (hold.id != 0 && hold.expires_at > now_unix && holds_.emplace(hold.id, hold).second)
      reserved_pusd_ = saturating_add(reserved_pusd_, std::max<int64_t>(0, hold.pusd));
  if (limits.tpm_limit > 0)
    tokens_.cap_at(limits.tpm_limit, tokens_left, now_s);
  if (limits.rpm_limit > 0)
    requests_.cap_at(limits.rpm_limit, requests_left, now_s);
}

void key_ledger::empty_windows(const api_key_limits& limits, double at_s) {
  if (limits.tpm_limit > 0)
    tokens_.cap_at(limits.tpm_limit, 0, at_s);
  if (limits.rpm_limit > 0)
    requests_.cap_at(limits.rpm_limit, 0, at_s);
}

std::vector<spend_hold> key_ledger::holds() const {
  return holds_of(holds_);
}

} // namespace troupe

#include "actors/spend.hpp"

#include "config/calendar.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace troupe {

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
  if (limits.tokens_per_minute > 0) {
    auto have = window_tokens(limits, now_s);
    auto back = static_cast<double>(hold.tokens) - static_cast<double>(std::max<int64_t>(0, used_tokens));
    window_ = std::min(static_cast<double>(limits.tokens_per_minute), have + back);
    window_at_ = now_s;
    window_started_ = true;
  }
}

double spend_ledger::window_tokens(const spend_limits& limits, double now_s) const {
  auto cap = static_cast<double>(limits.tokens_per_minute);
  if (!window_started_)
    return cap;
  return std::min(cap, window_ + std::max(0.0, now_s - window_at_) * cap / 60.0);
}

std::vector<spend_hold> spend_ledger::holds() const {
  std::vector<spend_hold> out;
  out.reserve(holds_.size());
  for (const auto& [id, hold] : holds_)
    out.push_back(hold);
  return out;
}

spend_status spend_ledger::reserve(const spend_limits& limits, int64_t tokens, int64_t pusd, int64_t now_unix,
                                   double now_s, int64_t expires_at) {
  roll(limits, now_unix, now_s);
  tokens = std::max<int64_t>(0, tokens);
  pusd = std::max<int64_t>(0, pusd);
  spend_status status;
  auto refuse = [&](const char* why, int64_t limit, int64_t used, int64_t retry_after_s) {
    status.allowed = false;
    status.refused = why;
    status.limit = limit;
    status.used = used;
    status.retry_after_s = std::max<int64_t>(1, retry_after_s);
    return status;
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
    auto have = window_tokens(limits, now_s);
    auto want = static_cast<double>(tokens);
    auto cap = static_cast<double>(limits.tokens_per_minute);
    if (want > have) {
      // A reservation larger than the whole window could never pass: say so with a minute's wait (the caller names
      // the limit); otherwise the time the window needs to refill that far.
      auto wait = want > cap ? 60.0 : (want - have) * 60.0 / cap;
      return refuse("tokens_per_minute", limits.tokens_per_minute,
                    static_cast<int64_t>(std::ceil(cap - std::max(have, 0.0))),
                    static_cast<int64_t>(std::ceil(wait)));
    }
    window_ = have - want;
    window_at_ = now_s;
    window_started_ = true;
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
  if (limits.tokens_per_minute > 0) {
    window_ = std::min(window_tokens(limits, now_s), window_tokens_left);
    window_at_ = now_s;
    window_started_ = true;
  }
}

} // namespace troupe

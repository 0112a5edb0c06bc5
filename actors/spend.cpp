#include "actors/spend.hpp"

#include "config/calendar.hpp"

#include <algorithm>
#include <cmath>

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

spend_ledger::spend_ledger(int64_t day_start, int64_t spent_day, int64_t spent_month, int64_t now_unix)
  : day_start_(day_start), spent_day_(std::max<int64_t>(0, spent_day)), month_start_(troupe::month_start(now_unix)),
    spent_month_(std::max<int64_t>(0, spent_month)) {
  roll(now_unix);
}

void spend_ledger::roll(int64_t now_unix) {
  if (now_unix >= day_start_ + day_seconds) {
    day_start_ += floor_div(now_unix - day_start_, day_seconds) * day_seconds;
    spent_day_ = 0;
  }
  if (now_unix >= next_month_start(month_start_)) {
    month_start_ = troupe::month_start(now_unix);
    spent_month_ = 0;
  }
}

double spend_ledger::window_tokens(const spend_limits& limits, double now_s) const {
  auto cap = static_cast<double>(limits.tokens_per_minute);
  if (!window_started_)
    return cap;
  return std::min(cap, window_ + std::max(0.0, now_s - window_at_) * cap / 60.0);
}

spend_status spend_ledger::reserve(const spend_limits& limits, int64_t tokens, int64_t pusd, int64_t now_unix,
                                   double now_s) {
  roll(now_unix);
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
  if (limits.day_pusd > 0 && spent_day_ + reserved_pusd_ + pusd > limits.day_pusd)
    return refuse("daily_budget", limits.day_pusd, spent_day_ + reserved_pusd_, day_start_ + day_seconds - now_unix);
  if (limits.month_pusd > 0 && spent_month_ + reserved_pusd_ + pusd > limits.month_pusd)
    return refuse("monthly_budget", limits.month_pusd, spent_month_ + reserved_pusd_,
                  next_month_start(month_start_) - now_unix);
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
  reserved_pusd_ += pusd;
  status.used = spent_day_ + reserved_pusd_;
  status.limit = limits.day_pusd;
  return status;
}

void spend_ledger::settle(const spend_limits& limits, const spend_settlement& s, int64_t now_unix, double now_s) {
  roll(now_unix);
  reserved_pusd_ = std::max<int64_t>(0, reserved_pusd_ - std::max<int64_t>(0, s.reserved_pusd));
  auto used = std::max<int64_t>(0, s.used_pusd);
  spent_day_ += used;
  spent_month_ += used;
  if (limits.tokens_per_minute > 0) {
    auto have = window_tokens(limits, now_s);
    auto back = static_cast<double>(std::max<int64_t>(0, s.reserved_tokens) - std::max<int64_t>(0, s.used_tokens));
    window_ = std::min(static_cast<double>(limits.tokens_per_minute), have + back);
    window_at_ = now_s;
    window_started_ = true;
  }
}

void spend_ledger::take_over(const spend_limits& limits, int64_t day_start, int64_t spent_day, int64_t month_start,
                             int64_t spent_month, int64_t reserved_pusd, double window_tokens_left, int64_t now_unix,
                             double now_s) {
  roll(now_unix);
  if (day_start == day_start_)
    spent_day_ = std::max(spent_day_, spent_day);
  if (month_start == month_start_)
    spent_month_ = std::max(spent_month_, spent_month);
  reserved_pusd_ += std::max<int64_t>(0, reserved_pusd);
  if (limits.tokens_per_minute > 0) {
    window_ = std::min(window_tokens(limits, now_s), window_tokens_left);
    window_at_ = now_s;
    window_started_ = true;
  }
}

} // namespace troupe

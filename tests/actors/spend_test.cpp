// The spend ledgers (actors/spend.hpp): a user's calendar budgets and token window, and an API key's own limits.

#include "actors/spend.hpp"

#include <gtest/gtest.h>

using namespace troupe;

TEST(SpendLedger, MonthsAreUtcCalendarMonths) {
  EXPECT_EQ(month_start(1795300000), 1793491200);      // 2026-11-21 -> 2026-11-01T00:00:00Z
  EXPECT_EQ(next_month_start(1795300000), 1796083200); // 2026-12-01
  EXPECT_EQ(month_start(1798761599), 1796083200);      // 2026-12-31T23:59:59Z -> 2026-12-01
  EXPECT_EQ(next_month_start(1798761599), 1798761600); // 2027-01-01
  EXPECT_EQ(month_start(1709251199), 1706745600);      // 2024-02-29T23:59:59Z (leap) -> 2024-02-01
  EXPECT_EQ(next_month_start(1709251199), 1709251200); // 2024-03-01
}

TEST(SpendLedger, DaysAndMonthsRollOverAndReservationsStay) {
  const int64_t day = 1795233600; // a quota day starting 2026-11-21T04:00:00Z
  const int64_t far = 1900000000; // reservations that do not expire in this test
  spend_ledger ledger{day, 300, 800, day + 3600};
  spend_limits limits{1000, 1500, 0};
  auto held = ledger.reserve(limits, 0, 600, day + 3600, 0, far);
  EXPECT_TRUE(held.allowed);
  EXPECT_FALSE(ledger.reserve(limits, 0, 200, day + 3600, 0, far).allowed); // 300 + 600 + 200 > 1000
  // The next quota day: nothing spent yet, the 600 still reserved; the month counts 800.
  EXPECT_EQ(ledger.reserve(limits, 0, 200, day + 86400, 0, far).refused, "monthly_budget"); // 800 + 600 + 200 > 1500
  ledger.settle(limits, spend_settlement{held.reservation, 0, 0}, day + 86400, 0);
  EXPECT_EQ(ledger.spent_day(), 0);
  EXPECT_EQ(ledger.spent_month(), 800);
  EXPECT_EQ(ledger.reserved_pusd(), 0);
  // An unknown reservation (expired, or made elsewhere) still counts what it used.
  ledger.settle(limits, spend_settlement{12345, 0, 50}, day + 86400, 0);
  EXPECT_EQ(ledger.spent_month(), 850);
  // December: the month is new.
  auto status = ledger.reserve(limits, 0, 1000, 1796083200 + 10, 0, far);
  EXPECT_TRUE(status.allowed) << status.refused;
  EXPECT_EQ(ledger.spent_month(), 0);
  EXPECT_EQ(ledger.month_start(), 1796083200);
}

TEST(SpendLedger, NothingOverflows) {
  spend_ledger ledger{1795233600, INT64_MAX - 5, INT64_MAX - 5, 1795233600};
  spend_limits limits{1000, 0, 0};
  auto status = ledger.reserve(limits, INT64_MAX, INT64_MAX, 1795233600, 0, 1900000000);
  EXPECT_FALSE(status.allowed);
  spend_ledger fresh{1795233600, 0, 0, 1795233600};
  EXPECT_FALSE(fresh.reserve(limits, 0, INT64_MAX, 1795233600, 0, 1900000000).allowed);
  EXPECT_TRUE(fresh.reserve(limits, 0, 1000, 1795233600, 0, 1900000000).allowed);
  EXPECT_FALSE(fresh.reserve(limits, 0, 1, 1795233600, 0, 1900000000).allowed);
  fresh.settle(limits, spend_settlement{0, 0, INT64_MAX}, 1795233600, 0);
  EXPECT_EQ(fresh.spent_day(), INT64_MAX);
}

// --- An API key's own ledger (issue 16, virtual keys) ---

namespace {

constexpr int64_t created = 1795233600; // the key's creation
constexpr int64_t far = 1900000000;     // reservations that do not expire

spend_settlement settled(uint64_t id, int64_t tokens, int64_t pusd) {
  return spend_settlement{id, tokens, pusd, "k"};
}

} // namespace

// Calls in flight are counted from reservation to settlement; an expired reservation frees its slot.
TEST(KeyLedger, CapsTheCallsInFlight) {
  api_key_limits limits;
  limits.max_parallel_requests = 2;
  key_ledger ledger{created, 0};
  EXPECT_TRUE(ledger.reserve(limits, created, 1, 0, 0, created, 0, far).allowed);
  EXPECT_TRUE(ledger.reserve(limits, created, 2, 0, 0, created, 0, created + 60).allowed);
  auto third = ledger.reserve(limits, created, 3, 0, 0, created, 0, far);
  EXPECT_EQ(third.refused, "key_parallel_requests");
  EXPECT_EQ(third.limit, 2);
  EXPECT_EQ(third.used, 2);
  ledger.settle(limits, created, settled(1, 0, 0), created, 0);
  EXPECT_TRUE(ledger.reserve(limits, created, 4, 0, 0, created, 0, far).allowed);
  EXPECT_FALSE(ledger.reserve(limits, created, 5, 0, 0, created, 0, far).allowed);
  // Reservation 2 was abandoned: at its expiry its slot comes back.
  EXPECT_TRUE(ledger.reserve(limits, created, 6, 0, 0, created + 60, 0, far).allowed);
}

// Requests and tokens per minute: refused with the wait until the window has room, and a refusal takes nothing.
TEST(KeyLedger, LimitsRequestsAndTokensPerMinute) {
  api_key_limits limits;
  limits.rpm_limit = 2;
  limits.tpm_limit = 600;
  key_ledger ledger{created, 0};
  EXPECT_TRUE(ledger.reserve(limits, created, 1, 300, 0, created, 0, far).allowed);
  auto tokens = ledger.reserve(limits, created, 2, 400, 0, created, 0, far); // 300 left
  EXPECT_EQ(tokens.refused, "key_tokens_per_minute");
  EXPECT_EQ(tokens.retry_after_s, 10); // 100 tokens at 10 a second
  EXPECT_TRUE(ledger.reserve(limits, created, 3, 300, 0, created, 0, far).allowed);
  auto requests = ledger.reserve(limits, created, 4, 0, 0, created, 0, far);
  EXPECT_EQ(requests.refused, "key_requests_per_minute");
  EXPECT_EQ(requests.retry_after_s, 30); // one request every 30 s
  // Settling gives back what was reserved and not used (not the request).
  ledger.settle(limits, created, settled(1, 100, 0), created, 0);
  EXPECT_DOUBLE_EQ(ledger.tokens_left(limits, 0), 200);
  EXPECT_EQ(ledger.reserve(limits, created, 5, 0, 0, created, 0, far).refused, "key_requests_per_minute");
  EXPECT_TRUE(ledger.reserve(limits, created, 6, 200, 0, created, 30, far).allowed); // 30 s later: one request back
  // More than the whole minute could ever hold.
  EXPECT_EQ(ledger.reserve(limits, created, 7, 601, 0, created, 120, far).retry_after_s, 60);
}

// A budget per period renews with each period counted from the key's creation; a lifetime budget never does.
TEST(KeyLedger, BudgetsRenewByPeriodOrNever) {
  api_key_limits daily;
  daily.max_budget_pusd = 1000;
  daily.budget_duration_s = 86400;
  key_ledger ledger{created, 700};
  EXPECT_TRUE(ledger.reserve(daily, created, 1, 0, 200, created + 10, 0, far).allowed);
  auto over = ledger.reserve(daily, created, 2, 0, 200, created + 10, 0, far); // 700 + 200 + 200 > 1000
  EXPECT_EQ(over.refused, "key_budget");
  EXPECT_EQ(over.used, 900);
  EXPECT_EQ(over.retry_after_s, 86400 - 10);
  ledger.settle(daily, created, settled(1, 0, 150), created + 20, 0);
  EXPECT_EQ(ledger.spent(), 850);
  EXPECT_TRUE(ledger.reserve(daily, created, 3, 0, 1000, created + 86400, 0, far).allowed); // a new period
  EXPECT_EQ(ledger.spent(), 0);
  EXPECT_EQ(ledger.period_start(), created + 86400);

  api_key_limits lifetime;
  lifetime.max_budget_pusd = 1000;
  key_ledger once{created, 1000};
  auto spent = once.reserve(lifetime, created, 1, 0, 1, created + 365 * 86400, 0, far);
  EXPECT_EQ(spent.refused, "key_budget");
  EXPECT_EQ(spent.retry_after_s, 0); // it does not renew
}

// A hand-off carries spend, calls in flight and what the minute windows had left; the new owner never has more.
TEST(KeyLedger, TakesOverNoMoreThanThePreviousOwnerHad) {
  api_key_limits limits;
  limits.max_budget_pusd = 1000;
  limits.budget_duration_s = 86400;
  limits.max_parallel_requests = 1;
  limits.rpm_limit = 60;
  key_ledger before{created, 0};
  ASSERT_TRUE(before.reserve(limits, created, 7, 0, 400, created, 0, far).allowed);
  before.settle(limits, created, settled(99, 0, 300), created, 0); // another call's settlement
  key_ledger after{created, 0};
  after.take_over(limits, created, before.period_start(), before.spent(), before.holds(), 0,
                  before.requests_left(limits, 0), created, 0);
  EXPECT_EQ(after.spent(), 300);
  EXPECT_EQ(after.reserve(limits, created, 8, 0, 0, created, 0, far).refused, "key_parallel_requests");
  after.settle(limits, created, settled(7, 0, 400), created, 0); // the call in flight settles on the new owner
  EXPECT_EQ(after.spent(), 700);
  EXPECT_EQ(after.reserve(limits, created, 9, 0, 301, created, 0, far).refused, "key_budget");
  EXPECT_TRUE(after.reserve(limits, created, 10, 0, 300, created, 0, far).allowed);

  // A failover: the windows start empty (what the dead owner handed out is unknown).
  key_ledger failed_over{created, 0};
  failed_over.empty_windows(limits, 100);
  EXPECT_EQ(failed_over.reserve(limits, created, 1, 0, 0, created, 100, far).refused, "key_requests_per_minute");
  EXPECT_TRUE(failed_over.reserve(limits, created, 2, 0, 0, created, 101, far).allowed);
}

// What a refused caller reads: which limit refused, whether the call alone is too much, and when to retry.
TEST(SpendRefusal, SaysWhichLimitRefusedAndWhenToRetry) {
  auto refused = [](std::string what, int64_t limit, int64_t used, int64_t retry_after_s) {
    spend_status s;
    s.allowed = false;
    s.refused = std::move(what);
    s.limit = limit;
    s.used = used;
    s.retry_after_s = retry_after_s;
    return s;
  };
  // A window: 429 with the wait; the call alone too big says so, and what to lower.
  auto r = explain_refusal(refused("tokens_per_minute", 1000, 900, 12), 500, 0, false);
  EXPECT_EQ(r.code, service_error::rate_limited);
  EXPECT_EQ(r.retry_after_s, 12);
  EXPECT_EQ(r.message, "This request may use up to 500 tokens; 900 of your plan's 1000 tokens per minute are in use. "
                       "Retry in 12 s.");
  r = explain_refusal(refused("key_tokens_per_minute", 10, 0, 60), 500, 0, true);
  EXPECT_EQ(r.message, "This request may use up to 500 tokens (its inputs' tokens), more than this API key's 10 "
                       "tokens per minute: send fewer inputs.");
  r = explain_refusal(refused("key_parallel_requests", 2, 2, 0), 1, 0, false);
  EXPECT_EQ(r.code, service_error::rate_limited);
  EXPECT_EQ(r.retry_after_s, 1); // at least a second
  // A budget: 402; a lifetime budget (a key's, renewing never) has no Retry-After.
  r = explain_refusal(refused("monthly_budget", 1000000000000, 1000000000000, 3600), 10, 5, false);
  EXPECT_EQ(r.code, service_error::insufficient_quota);
  EXPECT_EQ(r.retry_after_s, 3600);
  EXPECT_EQ(r.message.rfind("Your plan's monthly budget of 1.000000000000 USD is used up (1.000000000000 USD spent or "
                           "reserved by calls in progress); it renews in 3600 s.", 0),
            0u)
    << r.message;
  r = explain_refusal(refused("key_budget", 1000000000000, 1000000000000, 0), 10, 5, false);
  EXPECT_EQ(r.retry_after_s, 0);
  EXPECT_NE(r.message.find("This API key's lifetime budget"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("it does not renew."), std::string::npos) << r.message;
  r = explain_refusal(refused("daily_budget", 1000000, 0, 60), 10, 2000000, false);
  EXPECT_NE(r.message.find("more than your plan's daily budget"), std::string::npos) << r.message;
}

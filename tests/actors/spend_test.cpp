// The spend ledger's calendar (actors/spend.hpp): UTC months and quota days roll over where they should.

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

// The wishlist's CSV cells and listing cursor (http/wishlist_routes.hpp).

#include "http/wishlist_routes.hpp"

#include <gtest/gtest.h>

namespace troupe::http {
namespace {

TEST(WishlistCsv, PlainCellsAreWrittenAsTheyAre) {
  EXPECT_EQ(csv_cell(""), "");
  EXPECT_EQ(csv_cell("ada@example.com"), "ada@example.com");
  EXPECT_EQ(csv_cell("pt-BR"), "pt-BR");
}

TEST(WishlistCsv, CommasQuotesAndLineBreaksAreQuoted) {
  EXPECT_EQ(csv_cell("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_cell("one\ntwo"), "\"one\ntwo\"");
  EXPECT_EQ(csv_cell("one\r\ntwo"), "\"one\r\ntwo\"");
}

TEST(WishlistCsv, FormulaCellsAreDefused) {
  EXPECT_EQ(csv_cell("=1+1"), "'=1+1");
  EXPECT_EQ(csv_cell("+1"), "'+1");
  EXPECT_EQ(csv_cell("-1"), "'-1");
  EXPECT_EQ(csv_cell("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(csv_cell("\tx"), "'\tx");
  EXPECT_EQ(csv_cell("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
  EXPECT_EQ(csv_cell("a=b"), "a=b"); // only a leading sign runs
}

TEST(WishlistCursor, RoundTrips) {
  wishlist_cursor c{1733550000123456, "0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e"};
  auto text = wishlist_cursor_text(c);
  EXPECT_EQ(text, "1733550000123456_0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e");
  auto back = parse_wishlist_cursor(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->created_at_us, c.created_at_us);
  EXPECT_EQ(back->id, c.id);
}

TEST(WishlistCursor, RefusesWhatItDidNotWrite) {
  for (const char* bad : {"", "_", "123", "123_", "_0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e",
                          "-5_0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e", "12x_0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e",
                          "99999999999999999999_0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e", "12_not-a-uuid",
                          "12_0b7e8c1e-8d1f-4c52-9a43-6f3c2a1b0d9e' OR 1=1"})
    EXPECT_FALSE(parse_wishlist_cursor(bad)) << bad;
}

} // namespace
} // namespace troupe::http

// How client and archive names are made safe before anything touches the file system (actors/paths.cpp): pure
// functions, no actors.

#include "actors/paths.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace troupe;

// Upload filenames: reduced to their last component; NUL, control characters, invalid UTF-8, "." and ".." refused.
TEST(Paths, FilenamesAreSanitised) {
  std::string why;
  EXPECT_EQ(sanitise_filename("report.pdf", why).value_or("?"), "report.pdf");
  EXPECT_EQ(sanitise_filename("../../etc/passwd", why).value_or("?"), "passwd");
  EXPECT_EQ(sanitise_filename("C:\\Users\\me\\a.txt", why).value_or("?"), "a.txt");
  EXPECT_EQ(sanitise_filename("r\xC3\xA9sum\xC3\xA9.txt", why).value_or("?"), "r\xC3\xA9sum\xC3\xA9.txt");
  for (std::string bad : {std::string{".."}, std::string{"dir/"}, std::string{"a\nb"}, std::string("a\0b", 3),
                          std::string{"\xFF.txt"}, std::string(256, 'a')}) {
    EXPECT_FALSE(sanitise_filename(bad, why).has_value()) << bad;
    EXPECT_FALSE(why.empty());
  }
}

// Archive paths: normalised, never absolute, never climbing, bounded in depth.
TEST(Paths, ArchivePathsAreNormalisedOrRefused) {
  std::string why;
  EXPECT_EQ(normalise_relative_path("./src//main.c", 32, why).value_or("?"), "src/main.c");
  EXPECT_EQ(normalise_relative_path("dir/", 32, why).value_or("?"), "dir");
  EXPECT_EQ(normalise_relative_path("a\\b.txt", 32, why).value_or("?"), "a/b.txt");
  EXPECT_FALSE(normalise_relative_path("../evil", 32, why));
  EXPECT_NE(why.find("path traversal"), std::string::npos);
  EXPECT_FALSE(normalise_relative_path("a/../../evil", 32, why));
  EXPECT_FALSE(normalise_relative_path("/etc/passwd", 32, why));
  EXPECT_NE(why.find("absolute"), std::string::npos);
  EXPECT_FALSE(normalise_relative_path("a/b/c/d", 3, why));
  EXPECT_NE(why.find("deeper than 3"), std::string::npos);
  EXPECT_FALSE(normalise_relative_path(std::string("a\0b", 3), 32, why));
  EXPECT_FALSE(normalise_relative_path("./", 32, why));
}

// A link stays inside when it never climbs above the root, resolved from its own directory.
TEST(Paths, LinksInsideAndOutside) {
  EXPECT_TRUE(link_stays_inside("a/link", "b"));
  EXPECT_TRUE(link_stays_inside("a/link", "../c"));
  EXPECT_FALSE(link_stays_inside("a/link", "../../c"));
  EXPECT_FALSE(link_stays_inside("link", "/etc/passwd"));
  EXPECT_FALSE(link_stays_inside("link", ".."));
}

// UTF-8 validation: well-formed text passes; overlong forms, surrogates, code points past U+10FFFF and truncated
// sequences do not.
TEST(Paths, Utf8IsValidated) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("r\xC3\xA9sum\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));         // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));     // a surrogate (U+D800)
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80")); // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));         // truncated
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

// Archive expansion (actors/archive.cpp) with archives written by libarchive in the test: tar, tar.gz and zip are
// expanded; zip bombs, path traversal, absolute paths, links out of the tree and each limit are refused with a
// sentence saying why, and nothing is written outside the target directory.

#include "tests/actors/archive_writer.hpp"

#include "actors/archive.hpp"
#include "config/service_error.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace troupe;
namespace fs = std::filesystem;

namespace {

using entry = troupe::testing::archive_item;
using troupe::testing::write_archive;

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class Archive : public ::testing::Test {
protected:
  void SetUp() override {
    // A fresh directory of its own (mkdtemp): parallel runs and earlier leftovers never meet.
    std::string pattern = (fs::temp_directory_path() / "troupe-archive-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "out");
  }
  void TearDown() override { fs::remove_all(root_); }

  caf::expected<expansion> expand(archive_kind kind, const std::vector<entry>& entries, archive_limits limits = {}) {
    auto file = (root_ / "upload").string();
    write_archive(file, kind, entries);
    return expand_archive(file, kind, (root_ / "out").string(), limits);
  }

  /// Every file under the test's root but the archive itself and out/: what an expansion must never create.
  std::vector<std::string> outside() const {
    std::vector<std::string> found;
    for (const auto& p : fs::recursive_directory_iterator(root_)) {
      auto rel = fs::relative(p.path(), root_).string();
      if (rel != "upload" && rel != "out" && rel.rfind("out/", 0) != 0)
        found.push_back(rel);
    }
    return found;
  }

  fs::path root_;
};

const std::vector<entry> source_tree = {
  {"./", "", "", true},  // the root, as `tar -C dir -c .` writes it
  {"project/", "", "", true},
  {"project/src/main.c", "int main(void) { return 0; }\n"},
  {"project/README.md", "# Project\n"},
  {"./project/src/util/strings.c", "void parse_archive_entry(void) {}\n"},
};

// tar, tar.gz and zip expand into the directory, with normalised paths and exact contents.
TEST_F(Archive, ExpandsEveryFormat) {
  for (auto kind : {archive_kind::tar, archive_kind::tar_gz, archive_kind::zip}) {
    fs::remove_all(root_ / "out");
    fs::create_directories(root_ / "out");
    auto result = expand(kind, source_tree);
    ASSERT_TRUE(result) << to_string(result.error());
    ASSERT_EQ(result->files.size(), 3u);
    EXPECT_EQ(result->files[0].path, "project/README.md");
    EXPECT_EQ(result->files[1].path, "project/src/main.c");
    EXPECT_EQ(result->files[2].path, "project/src/util/strings.c");
    EXPECT_EQ(result->bytes,
              source_tree[2].content.size() + source_tree[3].content.size() + source_tree[4].content.size());
    EXPECT_EQ(read_file(root_ / "out/project/src/util/strings.c"), "void parse_archive_entry(void) {}\n");
    EXPECT_TRUE(outside().empty());
  }
}

// The kind of archive comes from the file name.
TEST_F(Archive, KindByName) {
  EXPECT_EQ(archive_kind_of("a.tar"), archive_kind::tar);
  EXPECT_EQ(archive_kind_of("a.TAR.GZ"), archive_kind::tar_gz);
  EXPECT_EQ(archive_kind_of("a.tgz"), archive_kind::tar_gz);
  EXPECT_EQ(archive_kind_of("a.zip"), archive_kind::zip);
  EXPECT_EQ(archive_kind_of("a.gz"), archive_kind::none);
  EXPECT_EQ(archive_kind_of(".zip"), archive_kind::none);
}

// "../" in an entry's path is path traversal: refused, and nothing lands outside the directory.
TEST_F(Archive, PathTraversalIsRefused) {
  for (auto kind : {archive_kind::tar_gz, archive_kind::zip}) {
    auto result = expand(kind, {{"ok.txt", "fine"}, {"../escaped.txt", "evil"}, {"a/../../escaped2.txt", "evil"}});
    ASSERT_FALSE(result);
    EXPECT_EQ(service_code(result.error()), service_error::invalid_input);
    EXPECT_NE(service_message(result.error()).find("path traversal"), std::string::npos)
      << service_message(result.error());
    EXPECT_TRUE(outside().empty());
    EXPECT_FALSE(fs::exists(root_ / "escaped.txt")); // where both entries would land, beside out/
    EXPECT_FALSE(fs::exists(root_ / "escaped2.txt"));
  }
}

// Absolute paths are refused.
TEST_F(Archive, AbsolutePathIsRefused) {
  // An absolute path into this test's own directory: had it been followed, the file would be there.
  auto target = (root_ / "absolute-target.txt").string();
  auto result = expand(archive_kind::tar, {{target, "evil"}});
  ASSERT_FALSE(result);
  EXPECT_NE(service_message(result.error()).find("absolute"), std::string::npos);
  EXPECT_FALSE(fs::exists(target));
}

// A symbolic link out of the tree is refused; one inside it is skipped (Troupe never creates links).
TEST_F(Archive, LinksOutsideAreRefusedInsideSkipped) {
  auto outside_link = expand(archive_kind::tar, {{"a.txt", "x"}, {"evil", "", "../../../etc/passwd"}});
  ASSERT_FALSE(outside_link);
  EXPECT_NE(service_message(outside_link.error()).find("symbolic link outside"), std::string::npos);
  fs::remove_all(root_ / "out");
  fs::create_directories(root_ / "out");
  auto inside = expand(archive_kind::tar, {{"dir/a.txt", "x"}, {"dir/alias", "", "a.txt"}});
  ASSERT_TRUE(inside) << to_string(inside.error());
  EXPECT_EQ(inside->files.size(), 1u);
  EXPECT_EQ(inside->skipped, 1u);
  EXPECT_FALSE(fs::exists(fs::symlink_status(root_ / "out/dir/alias")));
}

// A zip bomb (highly compressible data) stops at the ratio limit, long before it would fill the disk.
TEST_F(Archive, ZipBombIsRefused) {
  archive_limits limits;
  limits.max_ratio = 50;
  auto result = expand(archive_kind::zip, {{"zeros.bin", std::string(32 << 20, '\0')}}, limits);
  ASSERT_FALSE(result);
  EXPECT_NE(service_message(result.error()).find("zip bomb"), std::string::npos) << service_message(result.error());
  EXPECT_LT(fs::file_size(root_ / "out/zeros.bin"), uintmax_t{32} << 20);
}

// The total expanded size, the number of entries and the path depth are bounded.
TEST_F(Archive, LimitsAreEnforced) {
  archive_limits small;
  small.max_bytes = 1000;
  auto too_big = expand(archive_kind::tar, {{"a.bin", std::string(600, 'a')}, {"b.bin", std::string(600, 'b')}}, small);
  ASSERT_FALSE(too_big);
  EXPECT_NE(service_message(too_big.error()).find("more than 1000 bytes"), std::string::npos);

  archive_limits few;
  few.max_entries = 3;
  auto too_many = expand(archive_kind::tar, {{"1", "x"}, {"2", "x"}, {"3", "x"}, {"4", "x"}}, few);
  ASSERT_FALSE(too_many);
  EXPECT_NE(service_message(too_many.error()).find("more than 3 entries"), std::string::npos);

  archive_limits shallow;
  shallow.max_depth = 2;
  auto too_deep = expand(archive_kind::tar, {{"a/b/c.txt", "x"}}, shallow);
  ASSERT_FALSE(too_deep);
  EXPECT_NE(service_message(too_deep.error()).find("deeper than 2"), std::string::npos);
}

// A file that is not an archive of its kind is refused with libarchive's reason.
TEST_F(Archive, NotAnArchive) {
  auto file = (root_ / "upload").string();
  std::ofstream{file} << "this is not a zip file at all";
  auto result = expand_archive(file, archive_kind::zip, (root_ / "out").string(), {});
  ASSERT_FALSE(result);
  EXPECT_EQ(service_code(result.error()), service_error::invalid_input);
  EXPECT_NE(service_message(result.error()).find("not a valid zip archive"), std::string::npos);
}

// The same path twice: the last one stands.
TEST_F(Archive, RepeatedPathKeepsTheLast) {
  auto result = expand(archive_kind::tar, {{"a.txt", "first version"}, {"a.txt", "second"}});
  ASSERT_TRUE(result);
  ASSERT_EQ(result->files.size(), 1u);
  EXPECT_EQ(result->files[0].size, 6);
  EXPECT_EQ(read_file(root_ / "out/a.txt"), "second");
}

} // namespace

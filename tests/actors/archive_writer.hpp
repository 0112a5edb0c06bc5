#pragma once
// Writes tar, tar.gz and zip archives with libarchive for tests (archive_test.cpp, integration/processing_test.cpp).

#include "actors/archive.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::testing {

struct archive_item {
  std::string path;
  std::string content;
  std::string symlink = ""; // non-empty: a symbolic link to this target
  bool directory = false;
};

/// Writes an archive of `kind` with these items to `file`. Throws std::runtime_error if libarchive fails.
inline void write_archive(const std::string& file, archive_kind kind, const std::vector<archive_item>& items) {
  struct archive* a = archive_write_new();
  if (kind == archive_kind::zip) {
    archive_write_set_format_zip(a);
  } else {
    archive_write_set_format_pax_restricted(a);
    if (kind == archive_kind::tar_gz)
      archive_write_add_filter_gzip(a);
  }
  if (archive_write_open_filename(a, file.c_str()) != ARCHIVE_OK) {
    archive_write_free(a);
    throw std::runtime_error("cannot write " + file);
  }
  for (const auto& item : items) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, item.path.c_str());
    if (!item.symlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, item.symlink.c_str());
      archive_entry_set_perm(entry, 0777);
    } else if (item.directory) {
      archive_entry_set_filetype(entry, AE_IFDIR);
      archive_entry_set_perm(entry, 0755);
    } else {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_perm(entry, 0644);
      archive_entry_set_size(entry, static_cast<la_int64_t>(item.content.size()));
    }
    archive_write_header(a, entry);
    if (!item.content.empty())
      archive_write_data(a, item.content.data(), item.content.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

} // namespace troupe::testing

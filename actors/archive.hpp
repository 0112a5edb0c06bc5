#pragma once
// Expanding an uploaded archive (.tar, .tar.gz/.tgz, .zip; libarchive) into a directory, defensively.
//
// Blocking (file I/O and decompression): call it from a detached actor, never on a scheduler thread.
//
// Every entry's path goes through normalise_relative_path (actors/paths.hpp): absolute paths and ".." are refused,
// as are paths deeper than the limit. Symbolic and hard links are never created: one that points outside the tree
// is refused, one inside it is skipped (counted). Devices, FIFOs and sockets are skipped. Limits are checked while
// the data streams, so a zip bomb stops at the limit rather than at the end of the disk: the number of entries,
// the total expanded size, and (once more than 1 MiB has expanded) the ratio of expanded to archive bytes; and the
// bytes the files written would store (a path written twice counts once), against the storage left to the owner.
//
// A refusal is service_error::invalid_input with a sentence naming the entry and the rule, or
// service_error::storage_quota_exceeded for the storage left. The caller expands into
// a fresh staging directory and removes it on failure, so a refused archive writes nothing where it matters.

#include "persistence/repositories.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

enum class archive_kind { none, tar, tar_gz, zip };

/// By the file name, case-insensitively: .tar, .tar.gz or .tgz, .zip; anything else is not an archive.
archive_kind archive_kind_of(std::string_view filename);

struct archive_limits {
  uint64_t max_entries = 100000;
  uint64_t max_bytes = uint64_t{4} << 30;
  double max_ratio = 200;
  size_t max_depth = 32;
  uint64_t max_stored_bytes = UINT64_MAX; // the storage left to the owner (persistence: storage_room_atom)
};

struct expansion {
  std::vector<file_entry> files; // regular files written, by path (a path given twice: the last one)
  uint64_t bytes = 0;            // their total size
  uint64_t entries = 0;          // every entry read, directories and skipped ones included
  uint64_t skipped = 0;          // links inside the tree, devices, FIFOs, sockets
};

/// Expands `archive_path` (of the given kind) into `into`, which must be an existing, empty directory.
caf::expected<expansion> expand_archive(const std::string& archive_path, archive_kind kind, const std::string& into,
                                        const archive_limits& limits);

} // namespace troupe

#pragma once
// Names that come from clients and archives, made safe before anything touches the file system.
//
// Every path Troupe writes under uploads.dir is built from a UUID and, for repository files, a path that went
// through normalise_relative_path: '/'-separated components that are never empty, "." or "..", contain no NUL or
// control characters, are valid UTF-8 and stay within the limits below. Joined under a directory, such a path
// cannot leave it (no component climbs, and Troupe never creates symbolic links).

#include <optional>
#include <string>
#include <string_view>

namespace troupe {

/// The longest file name component and the longest relative path accepted (Linux's NAME_MAX and PATH_MAX).
constexpr size_t max_name_bytes = 255;
constexpr size_t max_path_bytes = 4096;

/// An upload's filename made safe: the part after the last '/' or '\' (clients may send a path), which must be
/// valid UTF-8 of at most 255 bytes without NUL or control characters, and not empty, "." or "..". Returns the
/// name, or nullopt with `why` set to a sentence for the client.
std::optional<std::string> sanitise_filename(std::string_view raw, std::string& why);

/// An archive entry's path as a relative '/'-separated path ("./a//b/" -> "a/b"). '\' counts as a separator too.
/// Refused (nullopt, `why` set): absolute paths, any ".." component, NUL or control characters, invalid UTF-8,
/// more than `max_depth` components, components over 255 bytes, paths over 4096 bytes, and paths with no
/// component left.
std::optional<std::string> normalise_relative_path(std::string_view raw, size_t max_depth, std::string& why);

/// Whether a symbolic link at `link_path` (normalised, relative to the tree's root) pointing to `target` resolves
/// inside the tree. Absolute targets and targets that climb above the root do not.
bool link_stays_inside(std::string_view link_path, std::string_view target);

/// Whether `text` is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool is_valid_utf8(std::string_view text);

} // namespace troupe

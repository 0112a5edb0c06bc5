#include "actors/archive.hpp"

#include "actors/paths.hpp"

#include "config/service_error.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>

namespace troupe {

namespace {

constexpr uint64_t ratio_floor_bytes = 1 << 20; // the ratio rule applies once this much has expanded
constexpr size_t read_block = 64 * 1024;

/// An entry name as it may appear in an error sentence: control characters escaped, at most 200 bytes.
std::string printable(std::string_view raw) {
  std::string out;
  for (unsigned char c : raw.substr(0, 200)) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return raw.size() > 200 ? out + "..." : out;
}

caf::error refused(const std::string& sentence) {
  return make_error(service_error::invalid_input, sentence + " Nothing from this archive was kept.");
}

caf::error io_failure(const std::string& what, const std::string& path) {
  return make_error(service_error::unavailable, what + " " + path + " failed: " + std::strerror(errno) + ".");
}

struct archive_closer {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

/// Creates `dir` and its missing parents under `root` (relative, normalised).
caf::error make_dirs(const std::string& root, const std::string& dir) {
  if (dir.empty())
    return {};
  for (size_t pos = 0;;) {
    auto slash = dir.find('/', pos);
    auto prefix = root + "/" + dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0755) != 0) {
      if (errno != EEXIST)
        return io_failure("Creating directory", prefix);
      struct stat st {};
      if (::lstat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return refused("Archive path \"" + printable(dir.substr(0, slash)) + "\" is both a file and a directory.");
    }
    if (slash == std::string::npos)
      return {};
    pos = slash + 1;
  }
}

/// Whether a path is the tree's root: only "." components ("./", "./.").
bool names_the_root(const std::string& path) {
  for (size_t start = 0; start <= path.size();) {
    auto slash = path.find('/', start);
    auto part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty() && part != ".")
      return false;
    if (slash == std::string::npos)
      return true;
    start = slash + 1;
  }
  return true;
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string{} : path.substr(0, slash);
}

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    auto n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

/// The expansion of one archive: state shared by the entry handlers below.
class expander {
public:
  expander(struct archive* a, std::string into, const archive_limits& limits, uint64_t archive_size)
    : a_(a), into_(std::move(into)), limits_(limits), archive_size_(std::max<uint64_t>(archive_size, 1)) {}

  caf::error entry(struct archive_entry* e) {
    if (++result_.entries > limits_.max_entries)
      return refused("The archive has more than " + std::to_string(limits_.max_entries) + " entries.");
    const char* raw = archive_entry_pathname(e);
    std::string raw_path = raw ? raw : "";
    if (archive_entry_filetype(e) == AE_IFDIR && names_the_root(raw_path))
      return {};  // "./", as `tar -C dir -c .` writes it
    std::string why;
    auto path = normalise_relative_path(raw_path, limits_.max_depth, why);
    if (!path)
      return refused("Archive entry \"" + printable(raw_path) + "\" " + why + ".");
    if (const char* target = archive_entry_hardlink(e)) {
      std::string target_why;
      if (!normalise_relative_path(target, limits_.max_depth, target_why))
        return refused("Archive entry \"" + printable(raw_path) + "\" is a hard link outside the archive's tree.");
      ++result_.skipped;
      return {};
    }
    switch (archive_entry_filetype(e)) {
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (!target || !link_stays_inside(*path, target))
        return refused("Archive entry \"" + printable(raw_path) + "\" is a symbolic link outside the archive's tree.");
      ++result_.skipped;
      return {};
    }
    case AE_IFDIR:
      return make_dirs(into_, *path);
    case AE_IFREG:
      return regular_file(e, *path, raw_path);
    default:
      ++result_.skipped;
      return {};
    }
  }

  expansion finish() {
    for (auto& [path, size] : files_) {
      result_.files.push_back({path, static_cast<int64_t>(size)});
      result_.bytes += size;
    }
    return std::move(result_);
  }

private:
  caf::error regular_file(struct archive_entry* e, const std::string& path, const std::string& raw_path) {
    // A path written again replaces its earlier bytes (O_TRUNC below): they are no longer stored.
    if (auto earlier = files_.find(path); earlier != files_.end()) {
      stored_ -= earlier->second;
      files_.erase(earlier);
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
      auto declared = static_cast<uint64_t>(archive_entry_size(e));
      if (expanded_ + declared > limits_.max_bytes)
        return too_big();
      if (stored_ + declared > limits_.max_stored_bytes)
        return over_quota();
    }
    if (auto err = make_dirs(into_, parent_of(path)))
      return err;
    auto full = into_ + "/" + path;
    int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EISDIR || errno == ELOOP)
        return refused("Archive path \"" + printable(raw_path) + "\" is both a file and a directory.");
      return io_failure("Creating", full);
    }
    std::unique_ptr<int, void (*)(int*)> closer{&fd, [](int* f) { ::close(*f); }};
    uint64_t written = 0;
    for (;;) {
      auto n = archive_read_data(a_, buffer_, sizeof buffer_);
      if (n == 0)
        break;
      if (n < 0)
        return refused(std::string{"The archive is damaged at \""} + printable(raw_path)
                       + "\": " + (archive_error_string(a_) ? archive_error_string(a_) : "read error") + ".");
      written += static_cast<uint64_t>(n);
      expanded_ += static_cast<uint64_t>(n);
      stored_ += static_cast<uint64_t>(n);
      if (expanded_ > limits_.max_bytes)
        return too_big();
      if (stored_ > limits_.max_stored_bytes)
        return over_quota();
      if (expanded_ > ratio_floor_bytes && static_cast<double>(expanded_) > limits_.max_ratio * archive_size_)
        return refused("The archive expands to more than " + std::to_string(static_cast<int64_t>(limits_.max_ratio))
                       + " times its own size (a zip bomb?).");
      if (!write_all(fd, buffer_, static_cast<size_t>(n)))
        return io_failure("Writing", full);
    }
    files_[path] = written; // the same path twice: the last one stands (O_TRUNC dropped the earlier bytes)
    return {};
  }

  caf::error too_big() {
    return refused("The archive expands to more than " + std::to_string(limits_.max_bytes) + " bytes.");
  }

  caf::error over_quota() {
    return make_error(service_error::storage_quota_exceeded,
                      "The archive's files take more than " + std::to_string(limits_.max_stored_bytes)
                        + " bytes: more storage than your plan has left, even counting the files they could replace. "
                          "Nothing from this archive was kept.");
  }

  struct archive* a_;
  std::string into_;
  archive_limits limits_;
  uint64_t archive_size_;
  uint64_t expanded_ = 0; // every byte decompressed so far, overwritten ones included: what the limits count
  uint64_t stored_ = 0;   // the bytes of the files as they stand: what the storage quota counts
  expansion result_;
  std::map<std::string, uint64_t> files_;
  char buffer_[read_block];
};

} // namespace

archive_kind archive_kind_of(std::string_view filename) {
  std::string name{filename};
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto ends_with = [&name](std::string_view suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".tar.gz") || ends_with(".tgz"))
    return archive_kind::tar_gz;
  if (ends_with(".tar"))
    return archive_kind::tar;
  if (ends_with(".zip"))
    return archive_kind::zip;
  return archive_kind::none;
}

caf::expected<expansion> expand_archive(const std::string& archive_path, archive_kind kind, const std::string& into,
                                        const archive_limits& limits) {
  struct stat st {};
  if (::stat(archive_path.c_str(), &st) != 0)
    return io_failure("Reading", archive_path);
  std::unique_ptr<struct archive, archive_closer> a{archive_read_new()};
  if (!a)
    return make_error(service_error::internal, "libarchive could not start.");
  switch (kind) {
  case archive_kind::tar:
    archive_read_support_format_tar(a.get());
    break;
  case archive_kind::tar_gz:
    archive_read_support_format_tar(a.get());
    archive_read_support_filter_gzip(a.get());
    break;
  case archive_kind::zip:
    archive_read_support_format_zip(a.get());
    break;
  case archive_kind::none:
    return make_error(service_error::invalid_input, "Not an archive.");
  }
  const char* expected = kind == archive_kind::zip ? "zip" : kind == archive_kind::tar ? "tar" : "tar.gz";
  if (archive_read_open_filename(a.get(), archive_path.c_str(), read_block) != ARCHIVE_OK)
    return refused(std::string{"The upload is not a valid "} + expected + " archive: "
                   + (archive_error_string(a.get()) ? archive_error_string(a.get()) : "unknown format") + ".");
  expander x{a.get(), into, limits, static_cast<uint64_t>(st.st_size)};
  for (;;) {
    struct archive_entry* entry = nullptr;
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN)
      return refused(std::string{"The upload is not a valid "} + expected + " archive: "
                     + (archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable entry") + ".");
    if (auto err = x.entry(entry))
      return err;
  }
  return x.finish();
}

} // namespace troupe

#pragma once
// SHA-1 and SHA-256, one-shot and incremental (OpenSSL's EVP interface, which uses the CPU's SHA instructions).

#include <memory>
#include <string>
#include <string_view>

namespace troupe {

enum class digest_algorithm { sha1, sha256 };

/// An incremental digest. Not copyable; cheap to move.
class digest {
public:
  explicit digest(digest_algorithm algorithm);
  ~digest();
  digest(digest&&) noexcept;
  digest& operator=(digest&&) noexcept;

  void update(std::string_view bytes);
  /// The raw digest (20 or 32 bytes). The digest is spent afterwards.
  std::string finish();

private:
  struct state;
  std::unique_ptr<state> state_;
};

/// The raw digest of `bytes`.
std::string digest_of(digest_algorithm algorithm, std::string_view bytes);

/// Lower-case hex of raw bytes.
std::string to_hex(std::string_view raw);

} // namespace troupe

#pragma once
// SHA-1 and SHA-256, one-shot and incremental: Troupe's one implementation (OpenSSL's EVP interface, which uses the
// CPU's SHA instructions: 3-5x libsodium's portable SHA-256 on this machine for bodies of a few KiB). In config/,
// the lowest layer, because every layer hashes: tus checksums and file digests (actors/), ETags, idempotency and
// cache keys, token and API key hashes (http/).

#include <memory>
#include <string>
#include <string_view>

namespace troupe {

enum class digest_algorithm { sha1, sha256 };

/// An incremental digest. Not copyable; cheap to move. Throws std::runtime_error on construction if OpenSSL cannot
/// start one (out of memory).
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

/// The raw digest of `bytes`. May be called from any thread.
std::string digest_of(digest_algorithm algorithm, std::string_view bytes);

/// Lower-case hex of raw bytes.
std::string to_hex(std::string_view raw);

/// Lower-case hex of the SHA-256 of `text` (64 characters). May be called from any thread.
std::string sha256_hex(std::string_view text);

} // namespace troupe

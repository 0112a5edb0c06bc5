#include "config/digest.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace troupe {

namespace {

/// The algorithm's implementation, fetched from OpenSSL's default provider once per process: EVP_sha256() and
/// friends make OpenSSL 3 look it up again on every EVP_DigestInit_ex (measured: over half the time of a short
/// digest). Kept for the life of the process.
const EVP_MD* implementation(digest_algorithm algorithm) {
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* md = algorithm == digest_algorithm::sha1 ? sha1 : sha256;
  if (!md)
    throw std::runtime_error("OpenSSL has no SHA-1/SHA-256 implementation");
  return md;
}

/// One EVP context per thread for one-shot digests (re-initialised for each), so a short digest allocates nothing.
struct thread_context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~thread_context() { EVP_MD_CTX_free(ctx); }
};

} // namespace

struct digest::state {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~state() { EVP_MD_CTX_free(ctx); }
};

digest::digest(digest_algorithm algorithm) : state_(std::make_unique<state>()) {
  if (!state_->ctx || EVP_DigestInit_ex(state_->ctx, implementation(algorithm), nullptr) != 1)
    throw std::runtime_error("OpenSSL could not start a digest");
}

digest::~digest() = default;
digest::digest(digest&&) noexcept = default;
digest& digest::operator=(digest&&) noexcept = default;

void digest::update(std::string_view bytes) {
  EVP_DigestUpdate(state_->ctx, bytes.data(), bytes.size());
}

std::string digest::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->ctx, out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string digest_of(digest_algorithm algorithm, std::string_view bytes) {
  thread_local thread_context local;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!local.ctx || EVP_DigestInit_ex(local.ctx, implementation(algorithm), nullptr) != 1
      || EVP_DigestUpdate(local.ctx, bytes.data(), bytes.size()) != 1 || EVP_DigestFinal_ex(local.ctx, out, &length) != 1)
    throw std::runtime_error("OpenSSL could not compute a digest");
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string to_hex(std::string_view raw) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out += hex[c >> 4];
    out += hex[c & 0xF];
  }
  return out;
}

std::string sha256_hex(std::string_view text) {
  return to_hex(digest_of(digest_algorithm::sha256, text));
}

} // namespace troupe

#include "actors/digest.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace troupe {

struct digest::state {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~state() { EVP_MD_CTX_free(ctx); }
};

digest::digest(digest_algorithm algorithm) : state_(std::make_unique<state>()) {
  const EVP_MD* md = algorithm == digest_algorithm::sha1 ? EVP_sha1() : EVP_sha256();
  if (!state_->ctx || EVP_DigestInit_ex(state_->ctx, md, nullptr) != 1)
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
  digest d{algorithm};
  d.update(bytes);
  return d.finish();
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

} // namespace troupe

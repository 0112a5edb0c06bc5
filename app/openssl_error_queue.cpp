// OpenSSL's error queue is per thread: before a TLS I/O call, OpenSSL requires it to be empty, or SSL_get_error
// reports an error left by another connection as this call's (SSL_get_error(3)). CAF 0.17.6's OpenSSL module does not
// clear it (libcaf_openssl/src/openssl/session.cpp: do_some, try_connect, try_accept; it drains the queue only in
// log statements that the Debian build compiles out). All of a node's BASP connections share the middleman's thread,
// so one failed handshake (a node without the cluster's certificates, or anyone connecting to the BASP port) made
// the next read of every healthy cluster connection fail and dropped it: measured, a node that could not join made
// the connection between two good nodes drop every heartbeat (tests/integration/cluster_test.cpp, the TLS test).
//
// The executable defines the four calls CAF makes; the dynamic linker binds libcaf_openssl (and libcurl) to these,
// which clear the queue and call OpenSSL's own (RTLD_NEXT). Clearing before each call is what OpenSSL documents for
// every caller, so libcurl's use is unchanged.

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdlib>

namespace {

template <class F>
F openssl_own(const char* name) {
  auto f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
  if (!f)
    std::abort(); // libssl is linked into this executable: the symbol is there
  return f;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto own = openssl_own<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return own(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto own = openssl_own<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return own(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  static const auto own = openssl_own<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return own(ssl);
}

int SSL_accept(SSL* ssl) {
  static const auto own = openssl_own<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return own(ssl);
}

} // extern "C"

// TLS between nodes: the start-up check of the certificate, key and CA files (docs/cluster.md).
#include "tls.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace cafes::detail {

namespace {

/// OpenSSL's queued errors, oldest first, emptied.
std::string ssl_errors() {
  std::string out;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty())
      out += "; ";
    out += buf;
  }
  return out.empty() ? std::string{"no reason given"} : out;
}

cafes::error bad(const std::string& option, const std::string& path, const std::string& what) {
  return cafes::error{errc::invalid_argument, option + " '" + path + "' " + what};
}

// Answers OpenSSL's request for the key's passphrase: the configured one, or none (which fails
// the load instead of prompting on the terminal).
int passphrase_cb(char* buf, int size, int, void* user) {
  const auto& p = *static_cast<const std::string*>(user);
  if (p.empty() || size <= 0)
    return 0;
  const auto n = std::min(p.size(), static_cast<std::size_t>(size - 1));
  std::memcpy(buf, p.data(), n);
  buf[n] = '\0';
  return static_cast<int>(n);
}

expected<void> readable(const std::string& option, const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return bad(option, path, "cannot be read: " + std::string{std::strerror(errno)});
  return {};
}

} // namespace

expected<std::string> read_passphrase_file(const std::string& path) {
  const std::string option = "--tls-key-passphrase-file";
  if (auto ok = readable(option, path); !ok)
    return ok.error();
  std::ifstream in{path, std::ios::binary};
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r')
    line.pop_back();
  if (line.empty())
    return bad(option, path, "holds no passphrase (its first line is empty)");
  return line;
}

expected<void> check_tls(const tls_settings& s) {
  for (auto& [option, path] : {std::pair<std::string, const std::string*>{"--tls-cert", &s.cert},
                               {"--tls-key", &s.key},
                               {"--tls-ca", &s.ca}})
    if (auto ok = readable(option, *path); !ok)
      return ok;
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_method()), &SSL_CTX_free};
  if (!ctx)
    return cafes::error{errc::invalid_argument, "cannot create an OpenSSL context: " + ssl_errors()};
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.cert.c_str()) != 1)
    return bad("--tls-cert", s.cert, "is not a usable PEM certificate: " + ssl_errors());
  // The key alone first, so that a key that does not load and a key of another certificate
  // get messages of their own.
  std::unique_ptr<BIO, decltype(&BIO_free)> in{BIO_new_file(s.key.c_str(), "r"), &BIO_free};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey{
    in ? PEM_read_bio_PrivateKey(in.get(), nullptr, passphrase_cb, const_cast<std::string*>(&s.passphrase))
       : nullptr,
    &EVP_PKEY_free};
  if (!pkey)
    return bad("--tls-key", s.key,
               std::string{"is not a usable PEM private key"} +
                 (s.passphrase.empty() ? " (an encrypted key needs --tls-key-passphrase-file)"
                                       : " (or the passphrase is wrong)") +
                 ": " + ssl_errors());
  if (SSL_CTX_use_PrivateKey(ctx.get(), pkey.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    return bad("--tls-key", s.key, "does not match the certificate in --tls-cert '" + s.cert + "': " + ssl_errors());
  if (SSL_CTX_load_verify_locations(ctx.get(), s.ca.c_str(), nullptr) != 1)
    return bad("--tls-ca", s.ca, "holds no usable PEM CA certificate: " + ssl_errors());
  // The node's own certificate must chain to the CA, in both roles: it is the client of the
  // gateways it connects to and the server of the nodes that connect to its gateway.
  X509* leaf = SSL_CTX_get0_certificate(ctx.get());
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx.get(), &chain);
  for (int purpose : {X509_PURPOSE_SSL_CLIENT, X509_PURPOSE_SSL_SERVER}) {
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> vc{X509_STORE_CTX_new(), &X509_STORE_CTX_free};
    if (!vc || X509_STORE_CTX_init(vc.get(), SSL_CTX_get_cert_store(ctx.get()), leaf, chain) != 1)
      return cafes::error{errc::invalid_argument, "cannot check the certificate: " + ssl_errors()};
    X509_STORE_CTX_set_purpose(vc.get(), purpose);
    if (X509_verify_cert(vc.get()) != 1) {
      ERR_clear_error();
      return bad("--tls-cert", s.cert,
                 std::string{"does not verify against the CA in --tls-ca '"} + s.ca + "' as a TLS " +
                   (purpose == X509_PURPOSE_SSL_CLIENT ? "client" : "server") + ": " +
                   X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc.get())) +
                   " (the other nodes would refuse it)");
    }
  }
  return {};
}

} // namespace cafes::detail

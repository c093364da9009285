// TLS between nodes (internal): the files a node authenticates with, checked at start.
#pragma once

#include <string>

#include "cafes/core/error.hpp"
#include "cafes/persistence/errc.hpp"

namespace cafes::detail {

/// The PEM files of a node's TLS between nodes, as CAF's OpenSSL module takes them.
struct tls_settings {
  std::string cert;       ///< the node's certificate, then any intermediate CA certificates
  std::string key;        ///< its private key
  std::string ca;         ///< the CA certificates a peer's certificate must chain to
  std::string passphrase; ///< the key's passphrase; empty: the key is not encrypted
};

/// Loads the files as CAF's OpenSSL module will at each connection (certificate chain, key,
/// CA), and checks that the key matches the certificate and that the certificate chains to the
/// CA for both TLS roles (client and server). Fails with invalid_argument naming the option,
/// the file and OpenSSL's reason.
expected<void> check_tls(const tls_settings& s);

/// Reads a passphrase file: its first line, without the line end. Fails with invalid_argument
/// if the file cannot be read or the line is empty.
expected<std::string> read_passphrase_file(const std::string& path);

} // namespace cafes::detail

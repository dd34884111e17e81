// HTTPS: the server's TLS context (OpenSSL, loaded once at listen()) and the
// instantiation of HttpSession over TlsStream. WSS is in server_tls_ws.cpp.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http/http_session.hpp"
#include "http/tls_stream.hpp"

namespace meterhub::http::detail {

namespace ssl = net::ssl;

namespace {

// OpenSSL's reason for the last failure ("no start line", "key values
// mismatch", "No such file or directory"), without the library's prefix.
std::string reason(const beast::error_code& ec) {
  if (ec.category() == net::error::get_ssl_category()) {
    if (const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value()))) return r;
  }
  return ec.message();
}

}  // namespace

core::Result<std::shared_ptr<ssl::context>> make_tls_context(const std::string& cert,
                                                             const std::string& key) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use | ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  // An encrypted key must fail to load, not prompt on a terminal nobody watches.
  ctx->set_password_callback(
      [](std::size_t, ssl::context::password_purpose) -> std::string { return {}; });

  beast::error_code ec;
  ctx->use_certificate_chain_file(cert, ec);
  if (ec)
    return core::fail("bad_tls", "cannot load the TLS certificate chain from '" + cert +
                                     "': " + reason(ec) + " (expected PEM)");
  ctx->use_private_key_file(key, ssl::context::pem, ec);
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
    return core::fail("bad_tls", "the TLS private key '" + key +
                                     "' does not match the certificate '" + cert + "'");
  if (ec)
    return core::fail("bad_tls", "cannot load the TLS private key from '" + key +
                                     "': " + reason(ec) + " (expected an unencrypted PEM key)");
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return core::fail("bad_tls", "the TLS private key '" + key +
                                     "' does not match the certificate '" + cert + "'");
  }
  if (X509* x = SSL_CTX_get0_certificate(ctx->native_handle())) {
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
      spdlog::warn("the TLS certificate '{}' has expired: clients will refuse it", cert);
    else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
      spdlog::warn("the TLS certificate '{}' is not valid yet: clients will refuse it", cert);
  }
  return ctx;
}

bool is_tls_error(const beast::error_code& ec) {
  return ec.category() == net::error::get_ssl_category() || ec == ssl::error::stream_truncated;
}

void start_tls_session(std::shared_ptr<Server::Impl> srv, beast::tcp_stream&& stream,
                       Accepted conn) {
  auto ctx = srv->tls_context();
  std::make_shared<HttpSession<TlsStream>>(
      std::move(srv), TlsStream(std::move(stream), std::move(ctx)), std::move(conn))
      ->run();
}

}  // namespace meterhub::http::detail

// The stream of an HTTPS/WSS connection, shared by the two translation units
// that instantiate the sessions over it (server_tls.cpp: HTTP,
// server_tls_ws.cpp: WebSocket). Beast's ssl_stream rather than Asio's
// ssl::stream: it coalesces buffer sequences (an HTTP header and its body, a
// WebSocket frame header and its payload) into one TLS record per write.
#pragma once

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl.hpp>

namespace meterhub::http::detail {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

}  // namespace meterhub::http::detail

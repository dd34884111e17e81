// The stream of an HTTPS/WSS connection, shared by the two translation units
// that instantiate the sessions over it (server_tls.cpp: HTTP,
// server_tls_ws.cpp: WebSocket). Beast's ssl_stream rather than Asio's
// ssl::stream: it coalesces buffer sequences (an HTTP header and its body, a
// WebSocket frame header and its payload) into one TLS record per write.
//
// A class of our own rather than an alias, for two reasons. It keeps the
// connection's ssl::context alive (see TlsContextHolder). And with Boost 1.81,
// clang (16) finds two `async_teardown` templates for ssl_stream (a hidden
// friend and the namespace-scope definition that adds a default argument)
// and calls WebSocket close/read ambiguous (boostorg/beast#2661, fixed in
// later Boosts); g++ accepts it. Our own async_teardown takes TlsStream
// exactly, so overload resolution picks it with either compiler, and it
// does what Beast's does for an SSL stream: close_notify, then the TCP
// teardown.
#pragma once

#include <memory>

#include <boost/asio/compose.hpp>
#include <boost/asio/coroutine.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace meterhub::http::detail {

// Holds the connection's context, declared (as a base) before the stream so
// it outlives the SSL object made from it: a SIGHUP may replace the server's
// context while this connection still uses the old one.
struct TlsContextHolder {
  std::shared_ptr<boost::asio::ssl::context> context;
};

class TlsStream : private TlsContextHolder,
                  public boost::beast::ssl_stream<boost::beast::tcp_stream> {
 public:
  TlsStream(boost::beast::tcp_stream&& next, std::shared_ptr<boost::asio::ssl::context> ctx)
      : TlsContextHolder{std::move(ctx)},
        boost::beast::ssl_stream<boost::beast::tcp_stream>(std::move(next), *context) {}
};

namespace tls_detail {

// Beast's ssl_shutdown_op (websocket/impl/ssl.hpp), over TlsStream.
class ShutdownOp : boost::asio::coroutine {
 public:
  ShutdownOp(TlsStream& s, boost::beast::role_type role) : s_(s), role_(role) {}

  template <class Self>
  void operator()(Self& self, boost::system::error_code ec = {}) {
    BOOST_ASIO_CORO_REENTER(*this) {
      BOOST_ASIO_CORO_YIELD s_.async_shutdown(std::move(self));
      first_ = ec;
      {
        using boost::beast::websocket::async_teardown;  // and ADL: tcp_stream's own
        BOOST_ASIO_CORO_YIELD async_teardown(role_, s_.next_layer(), std::move(self));
      }
      self.complete(first_ ? first_ : ec);
    }
  }

 private:
  TlsStream& s_;
  boost::beast::role_type role_;
  boost::system::error_code first_;
};

}  // namespace tls_detail

// Found by argument-dependent lookup from Beast's WebSocket close and read.
template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, TlsStream& stream, TeardownHandler&& handler) {
  boost::asio::async_compose<TeardownHandler, void(boost::system::error_code)>(
      tls_detail::ShutdownOp(stream, role), handler, stream);
}

}  // namespace meterhub::http::detail

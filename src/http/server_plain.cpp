// Plain HTTP and WebSocket sessions: the instantiation of HttpSession and
// WsSession over beast::tcp_stream. The TLS ones are in server_tls.cpp and
// server_tls_ws.cpp; separate files so that they compile in parallel.
#include "http/http_session.hpp"
#include "http/ws_session.hpp"

namespace meterhub::http::detail {

void start_plain_session(std::shared_ptr<Server::Impl> srv, beast::tcp_stream&& stream,
                         Accepted conn, bool refuse) {
  std::make_shared<HttpSession<beast::tcp_stream>>(std::move(srv), std::move(stream),
                                                   std::move(conn), refuse)
      ->run();
}

}  // namespace meterhub::http::detail

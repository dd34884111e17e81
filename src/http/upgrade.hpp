// The hand-off from an HTTP session to a WebSocket session, declared apart
// from both: HttpSession<Stream> calls it, ws_session.hpp defines it, and it
// is instantiated in the translation unit that instantiates WsSession<Stream>
// (server_plain.cpp, server_tls_ws.cpp). The WebSocket templates are half of
// Beast's compile cost per stream type, so over TLS they get a file of their
// own that builds in parallel with the HTTP half.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "http/server_impl.hpp"

namespace meterhub::http::detail {

// Creates the WsSession on `stream` (its handshake answers `req`, with
// Sec-WebSocket-Protocol: subprotocol when not empty); meter_id nullopt: /ws;
// still_allowed: see WsSession.
template <class Stream>
void start_ws_session(std::shared_ptr<Server::Impl> srv, Stream&& stream, ConnectionSlot slot,
                      std::optional<std::string> meter_id,
                      beast::http::request<beast::http::string_body>&& req,
                      std::string subprotocol, std::function<bool()> still_allowed);

}  // namespace meterhub::http::detail

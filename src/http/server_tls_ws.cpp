// WSS: the instantiation of WsSession over TlsStream, apart from the HTTPS
// half (server_tls.cpp) so that the two compile in parallel.
#include "http/tls_stream.hpp"
#include "http/ws_session.hpp"

namespace meterhub::http::detail {

template void start_ws_session<TlsStream>(std::shared_ptr<Server::Impl> srv, TlsStream&& stream,
                                          ConnectionSlot slot, std::optional<std::string> meter_id,
                                          bhttp::request<bhttp::string_body>&& req,
                                          std::string subprotocol,
                                          std::function<bool()> still_allowed);

}  // namespace meterhub::http::detail

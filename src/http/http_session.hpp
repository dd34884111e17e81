// HTTP session over a plain or a TLS stream: Stream is beast::tcp_stream or
// beast::ssl_stream<beast::tcp_stream>. Private to src/http; instantiated
// once per stream type, in server_plain.cpp and server_tls.cpp, so that each
// pays for one set of Beast templates and the two compile in parallel.
//
// Contract: reads one request at a time (no pipelining of responses), hands
// it to the Router as an api::Request, writes the answer when the Router
// responds; every limit and timeout of ServerOptions applies the same to
// both stream types. A TLS session first completes the handshake (within the
// request timeout that began when the connection was accepted). An upgrade
// request becomes a WsSession<Stream> that takes over the stream and the
// ConnectionSlot.
#pragma once

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "api/router.hpp"
#include "http/server_impl.hpp"
#include "http/upgrade.hpp"

namespace meterhub::http::detail {

namespace bhttp = beast::http;
namespace websocket = beast::websocket;
using Impl = Server::Impl;

// The api::Request fields that come from headers; the same for a request and
// an upgrade. None of them is ever logged: several carry keys.
inline void copy_headers(const bhttp::request_header<>& msg, api::Request& req) {
  req.target = std::string(msg.target());
  req.content_type = std::string(msg[bhttp::field::content_type]);
  req.accept = std::string(msg[bhttp::field::accept]);
  req.if_none_match = std::string(msg[bhttp::field::if_none_match]);
  req.authorization = std::string(msg[bhttp::field::authorization]);
  req.api_key = std::string(msg["X-API-Key"]);
  req.origin = std::string(msg[bhttp::field::origin]);
  req.cors_method = std::string(msg[bhttp::field::access_control_request_method]);
  req.request_id = std::string(msg["X-Request-Id"].substr(0, 256));
  // A list header may arrive split over several lines (RFC 9110 5.3).
  auto [it, end] = msg.equal_range(bhttp::field::sec_websocket_protocol);
  for (; it != end; ++it) {
    if (!req.ws_protocols.empty()) req.ws_protocols += ", ";
    req.ws_protocols += std::string(it->value());
  }
}

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>>, public Drainable {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  // refuse (plain only, --tls-only): the first request is answered with
  // 400 tls_required and the connection closed.
  HttpSession(std::shared_ptr<Impl> srv, Stream&& stream, Accepted conn, bool refuse = false)
      : srv_(std::move(srv)),
        stream_(std::move(stream)),
        ex_(stream_.get_executor()),
        slot_(std::move(conn.slot)),
        remote_(std::move(conn.remote)),
        buffer_(std::move(conn.buffer)),
        refuse_(refuse),
        handshake_done_(!kTls) {}

  ~HttpSession() override { srv_->remove(this); }

  void run() {
    srv_->add(this, this->weak_from_this());
    net::dispatch(ex_, beast::bind_front_handler(&HttpSession::start, this->shared_from_this()));
  }

  // ex_, not stream_: the stream moves to a WsSession on upgrade.
  void drain() override {
    net::post(ex_, [self = this->shared_from_this()] {
      if (self->upgraded_ || self->closed_) return;
      // Mid-request (bytes received, or being handled): let it finish; the
      // answer then carries "Connection: close". Idle, or still in the TLS
      // handshake (no request yet): close now.
      bool mid_request = self->handshake_done_ && (self->busy_ || self->buffer_.size() > 0 ||
                                                   (self->parser_ && self->parser_->got_some()));
      if (!mid_request) self->close();
    });
  }

 private:
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  void start() {
    if constexpr (kTls) {
      if (srv_->draining) return close();
      // No new expiry: the one set at accept covers detection and handshake.
      stream_.async_handshake(
          Stream::server, buffer_.data(),
          beast::bind_front_handler(&HttpSession::on_handshake, this->shared_from_this()));
    } else {
      do_read();
    }
  }

  void on_handshake(beast::error_code ec, std::size_t used) {
    if (ec) {
      // Scanners, clients that do not trust the certificate, plain garbage:
      // common and harmless, so not a warning.
      if (ec != beast::error::timeout)
        spdlog::debug("TLS handshake with {} failed: {}", remote_, ec.message());
      else
        srv_->limited_log.warn("closing connection: TLS handshake not completed within {} ms",
                               srv_->opts.request_timeout.count());
      return close();
    }
    handshake_done_ = true;
    buffer_.consume(used);
    do_read();
  }

  void do_read() {
    if (srv_->draining && buffer_.size() == 0) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_->opts.max_header));
    parser_->body_limit(srv_->opts.max_body);
    tcp().expires_after(srv_->opts.request_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::on_header, this->shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    if (refuse_)
      return reply_and_close(
          api::error_response(400, "tls_required", "this server only accepts HTTPS; use https://"));
    if (websocket::is_upgrade(req)) return upgrade();
    if (req.method() == bhttp::verb::post && !parser_->content_length() && !parser_->chunked())
      return reply_and_close(api::error_response(
          411, "length_required", "a POST needs a Content-Length or a chunked body"));
    if (parser_->content_length() && *parser_->content_length() > srv_->opts.max_body)
      return reply_and_close(too_large());
    auto expect = req[bhttp::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      // curl and some HTTP libraries wait for this before sending the body.
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                       req.version());
      bhttp::async_write(
          stream_, *cont,
          [self = this->shared_from_this(), cont](beast::error_code wec, std::size_t) {
            if (wec) return self->close();
            self->read_body();
          });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
  }

  api::Response too_large() {
    return api::error_response(
        413, "body_too_large",
        "request body exceeds the limit of " + std::to_string(srv_->opts.max_body) + " bytes");
  }

  void on_read_error(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return close();
    if constexpr (kTls) {
      // The TLS layer broke (bad record, peer gone without close_notify):
      // nothing can be answered on it.
      if (is_tls_error(ec)) return close();
    }
    if (ec == beast::error::timeout) {
      // Nothing or too little arrived in time (idle keep-alive or slow-loris).
      if (parser_ && parser_->got_some())
        srv_->limited_log.warn("closing connection: request not received within {} ms",
                               srv_->opts.request_timeout.count());
      return close();
    }
    if (ec == bhttp::error::body_limit) return reply_and_close(too_large());
    if (ec == bhttp::error::header_limit)
      return reply_and_close(api::error_response(
          431, "headers_too_large",
          "request headers exceed " + std::to_string(srv_->opts.max_header) + " bytes"));
    reply_and_close(
        api::error_response(400, "bad_request", "malformed HTTP request: " + ec.message()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    api::Request req;
    // HEAD is answered as GET without the body (RFC 9110 9.3.2).
    head_ = msg.method() == bhttp::verb::head;
    req.method = head_ ? std::string("GET") : std::string(msg.method_string());
    copy_headers(msg, req);
    req.body = std::move(msg.body());
    req.remote = remote_;
    busy_ = true;
    tcp().expires_never();  // waiting for a commit is not the client's fault
    // The tracked executor keeps io_context::run() alive until the answer is
    // posted back, even when no socket operation is pending meanwhile.
    auto ex = net::prefer(ex_, net::execution::outstanding_work.tracked);
    srv_->router.handle(std::move(req), [self = this->shared_from_this(), ex](api::Response res) {
      net::post(ex, [self, res = std::move(res)]() mutable { self->send(std::move(res)); });
    });
  }

  void send(api::Response r, bool force_close = false) {
    busy_ = false;
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version_);
    res->result(r.status);
    res->set(bhttp::field::server, kServerName);
    if (!r.content_type.empty()) res->set(bhttp::field::content_type, r.content_type);
    res->set(bhttp::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");  // no content sniffing of API answers
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !force_close && !srv_->draining);
    // A 304 has no body and no Content-Length of its own (RFC 9110 8.6).
    if (r.status != 304) res->prepare_payload();
    if (head_) {
      res->body().clear();  // Content-Length still says what GET would send
      head_ = false;
    }
    tcp().expires_after(srv_->opts.request_timeout);
    bhttp::async_write(stream_, *res,
                       [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
                         if (ec) return self->close();
                         if (!res->keep_alive()) return self->linger_close();
                         self->do_read();
                       });
  }

  void reply_and_close(api::Response r) {
    if (parser_) {
      version_ = parser_->get().version() ? parser_->get().version() : 11;
    }
    send(std::move(r), true);
  }

  // After an answer that ends the connection: stop sending, then read and
  // discard for a moment, so a client still sending (e.g. an oversized body)
  // sees our answer instead of a connection reset.
  void linger_close() {
    tcp().expires_after(std::chrono::seconds(2));
    if constexpr (!kTls) {
      beast::error_code ignored;
      tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    // Over TLS there is no half-close: a close_notify now would make OpenSSL
    // fail on the rest of a refused body still arriving, and closing on that
    // error resets the connection, which can destroy our answer in the
    // client's receive buffer. So keep reading (and discarding) until the
    // client is done or the 2 s are up, as over plain TCP.
    linger_read(0);
  }

  // Discards at most this much: the rest of a refused body of up to 1 MiB (or
  // four times --max-body if larger) still reaches the bin, so the client's
  // send completes and it reads our answer; a flood beyond that is cut.
  std::size_t linger_cap() const {
    return std::max<std::size_t>(4 * srv_->opts.max_body, std::size_t{1} << 20);
  }

  void linger_read(std::size_t total) {
    if (total > linger_cap()) return close();
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(16 * 1024), [self = this->shared_from_this(), total](
                                                            beast::error_code ec, std::size_t n) {
      if (ec) return self->close();
      self->linger_read(total + n);
    });
  }

  void upgrade() {
    const auto& msg = parser_->get();
    api::Request req;
    req.method = "GET";  // websocket::is_upgrade() checked it
    copy_headers(msg, req);
    req.remote = remote_;
    auto grant = srv_->router.websocket(req);
    if (!grant) return reply_and_close(std::move(grant.error()));  // NOLINT
    upgraded_ = true;
    start_ws_session<Stream>(srv_, std::move(stream_), std::move(slot_), std::move(grant->meter),
                             parser_->release(), std::move(grant->subprotocol),
                             std::move(grant->still_allowed));
  }

  void close() {
    if (closed_ || upgraded_) return;
    closed_ = true;
    beast::error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().socket().close(ignored);
  }

  std::shared_ptr<Impl> srv_;
  Stream stream_;
  net::any_io_executor ex_;  // the connection's strand
  ConnectionSlot slot_;
  std::string remote_;  // peer address: logs and the Router's per-IP limits
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool busy_ = false;
  bool closed_ = false;
  bool upgraded_ = false;
  const bool refuse_;
  bool handshake_done_;  // plain, or the TLS handshake completed
};

}  // namespace meterhub::http::detail

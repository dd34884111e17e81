// The only translation unit that includes Beast and Asio (they cost ~45 s and
// ~1 GB of RAM to compile). Layout follows Beast's example/advanced/server:
// Listener -> HttpSession -> (upgrade) -> WsSession, each on its own strand,
// lifetime by shared_from_this, every async step a named on_... member.
#include "http/server.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "api/router.hpp"
#include "codec/reading_codec.hpp"
#include "codec/ws_protocol.hpp"
#include "core/time.hpp"
#include "hub/hub.hpp"
#include "hub/send_queue.hpp"

namespace meterhub::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr const char* kServerName = "meterhub";

// Something the server can ask to wind down at shutdown.
class Drainable {
 public:
  virtual ~Drainable() = default;
  virtual void drain() = 0;
};

// Warnings that a hostile peer could trigger at will are logged at most once
// per interval, with a count of what was suppressed.
class RateLimitedLog {
 public:
  template <class... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    auto now = Clock::now();
    std::lock_guard lk(mu_);
    if (now - last_ < std::chrono::seconds(10)) {
      ++suppressed_;
      return;
    }
    if (suppressed_ > 0) spdlog::warn("({} similar warnings suppressed)", suppressed_);
    suppressed_ = 0;
    last_ = now;
    spdlog::warn(fmt, std::forward<Args>(args)...);
  }

 private:
  std::mutex mu_;
  Clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  ServerOptions opts;
  api::Router& router;
  hub::Hub& hub;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::signal_set signals;
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> draining{false};
  RateLimitedLog limited_log;

  std::mutex reg_mu;
  std::unordered_map<Drainable*, std::weak_ptr<Drainable>> sessions;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool finished = false;

  Impl(ServerOptions o, api::Router& r, hub::Hub& h)
      : opts(std::move(o)),
        router(r),
        hub(h),
        ioc(static_cast<int>(opts.threads)),
        acceptor(net::make_strand(ioc)),
        signals(ioc) {}

  void add(Drainable* key, std::weak_ptr<Drainable> s) {
    std::lock_guard lk(reg_mu);
    sessions.emplace(key, std::move(s));
  }
  void remove(Drainable* key) {
    std::lock_guard lk(reg_mu);
    sessions.erase(key);
  }

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void stop();
};

namespace {

// Counts an open connection for as long as it lives (moves from the HTTP to
// the WebSocket session on upgrade).
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::atomic<std::size_t>& n) : n_(&n) {}
  ConnectionSlot(ConnectionSlot&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (n_) n_->fetch_sub(1);
  }

 private:
  std::atomic<std::size_t>* n_;
};

using Impl = Server::Impl;

// ---------------------------------------------------------------------------
// WebSocket session: /ws/{meter_id}. Receives hub messages on its strand,
// queues them by hub::SendQueue's policy (bounded, coalesced to the newest
// reading when full) and drops the connection if one send stays stuck past
// ws_stall_timeout.
class WsSession : public std::enable_shared_from_this<WsSession>,
                  public hub::Subscriber,
                  public Drainable {
 public:
  // meter_id: /ws/{meter_id}; nullopt: the multiplexed /ws.
  WsSession(std::shared_ptr<Impl> srv, beast::tcp_stream&& stream, ConnectionSlot slot,
            std::optional<std::string> meter_id)
      : srv_(std::move(srv)),
        ws_(std::move(stream)),
        slot_(std::move(slot)),
        multi_(!meter_id),
        meter_id_(meter_id ? std::move(*meter_id) : std::string("*")),
        queue_(srv_->opts.ws_queue),
        stall_timer_(ws_.get_executor()) {}

  ~WsSession() override {
    if (multi_) {
      if (all_) srv_->hub.unwatch_all(this);
      for (const auto& m : watched_) srv_->hub.unsubscribe(m, this);
    } else {
      srv_->hub.unsubscribe(meter_id_, this);
    }
    srv_->remove(this);
  }

  void start(bhttp::request<bhttp::string_body> req) {
    srv_->add(this, weak_from_this());
    beast::get_lowest_layer(ws_).expires_never();  // the websocket has its own timers
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = srv_->opts.ws_idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(bhttp::field::server, kServerName); }));
    if (srv_->opts.ws_deflate) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.server_max_window_bits = 10;  // bound zlib memory per connection
      pmd.compLevel = 3;
      pmd.memLevel = 4;
      ws_.set_option(pmd);
    }
    ws_.read_message_max(srv_->opts.ws_max_message);
    ws_.async_accept(req, beast::bind_front_handler(&WsSession::on_accept, shared_from_this()));
  }

  // Any thread (called by the Hub, maybe under its lock): only hop to our strand.
  void deliver(hub::MessagePtr msg) override {
    if (!multi_ && msg->kind != hub::MessageKind::reading) return;  // events are for /ws
    net::post(ws_.get_executor(), [self = shared_from_this(), msg = std::move(msg)]() mutable {
      self->enqueue(std::move(msg));
    });
  }

  void drain() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->begin_close(); });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return;  // handshake failed or timed out; the session just ends
    open_ = true;
    if (srv_->draining) return begin_close();
    if (!multi_) srv_->hub.subscribe(meter_id_, shared_from_this());
    do_read();
  }

  void do_read() {
    ws_.async_read(rbuf_, beast::bind_front_handler(&WsSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    // On /ws/{meter_id} client messages carry no meaning: they are discarded.
    // The read stays pending so pings, pongs and close frames are processed.
    if (ec) {
      rbuf_.consume(rbuf_.size());
      open_ = false;
      stall_timer_.cancel();
      return;
    }
    if (multi_ && !closing_) {
      const auto data = rbuf_.cdata();
      command(std::string_view(static_cast<const char*>(data.data()), data.size()), ws_.got_text());
    }
    rbuf_.consume(rbuf_.size());
    do_read();
  }

  // A command on /ws (codec/ws_protocol.hpp). Runs on our strand: the
  // snapshot is queued before any reading the Hub delivers after registering.
  void command(std::string_view text, bool is_text) {
    auto fail = [&](std::string message) {
      enqueue(hub::make_event(
          hub::MessageKind::error, "",
          codec::encode_ws_error(core::Error{"invalid_command", std::move(message), {}, {}})));
    };
    if (!is_text) return fail("commands are JSON text messages");
    auto c = codec::parse_ws_command(text, srv_->opts.ws_max_subscriptions);
    if (!c) return fail(c.error().message);
    auto self = shared_from_this();
    std::vector<codec::MeterState> snapshot;
    if (c->subscribe && c->all) {
      if (all_) {
        snapshot = srv_->hub.states_all();  // already watching: just a fresh view
      } else {
        snapshot = srv_->hub.watch_all(self);
        all_ = true;
        // Everything comes through watch_all now; a reading delivered twice
        // during this switch is possible and harmless (same meter, same ts).
        for (const auto& m : watched_) srv_->hub.unsubscribe(m, this);
      }
    } else if (c->subscribe) {
      std::vector<std::string> fresh;  // not watched yet, each once
      for (auto& m : c->meters)
        if (!watched_.contains(m) && std::find(fresh.begin(), fresh.end(), m) == fresh.end())
          fresh.push_back(m);
      if (watched_.size() + fresh.size() > srv_->opts.ws_max_subscriptions)
        return fail("at most " + std::to_string(srv_->opts.ws_max_subscriptions) +
                    " meters per connection; use \"*\" for all");
      // The states of newly watched meters come from the registration itself
      // (atomic with the live stream); meters already watched, or covered by
      // "*", get a fresh view.
      std::vector<codec::MeterState> registered;
      if (!all_) registered = srv_->hub.watch(fresh, self);
      for (auto& m : fresh) watched_.insert(m);
      std::vector<std::string> again;
      for (auto& m : c->meters)
        if (std::none_of(registered.begin(), registered.end(),
                         [&](const codec::MeterState& st) { return st.meter_id == m; }))
          again.push_back(m);
      auto viewed = srv_->hub.states(again);
      // In the order asked, each once.
      std::vector<std::string> seen;
      for (auto& m : c->meters) {
        if (std::find(seen.begin(), seen.end(), m) != seen.end()) continue;
        seen.push_back(m);
        auto from = [&](std::vector<codec::MeterState>& v) {
          auto it = std::find_if(v.begin(), v.end(),
                                 [&](const codec::MeterState& st) { return st.meter_id == m; });
          return it == v.end() ? nullptr : &*it;
        };
        if (auto* st = from(registered))
          snapshot.push_back(std::move(*st));
        else if (auto* st2 = from(viewed))
          snapshot.push_back(std::move(*st2));
      }
    } else if (c->all) {
      if (all_) {
        // Back to the named meters: register them before leaving "*".
        std::vector<std::string> named(watched_.begin(), watched_.end());
        srv_->hub.watch(named, self);
        srv_->hub.unwatch_all(this);
        all_ = false;
      }
      return;
    } else {
      for (auto& m : c->meters) {
        if (watched_.erase(m) && !all_) srv_->hub.unsubscribe(m, this);
      }
      return;
    }
    enqueue(hub::make_event(hub::MessageKind::snapshot, "", codec::encode_ws_snapshot(snapshot)));
  }

  void enqueue(hub::MessagePtr msg) {
    if (!open_ || closing_) return;
    if (queue_.push(std::move(msg))) do_write();
  }

  // Sends queue_.front(), which the queue has marked in flight.
  void do_write() {
    write_started_ = Clock::now();
    if (!stall_armed_) arm_stall_timer(srv_->opts.ws_stall_timeout);
    ws_.text(true);
    const hub::Message& m = *queue_.front();
    ws_.async_write(net::buffer(multi_ ? m.tagged : m.json),
                    beast::bind_front_handler(&WsSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    bool more = queue_.pop();
    if (ec) {
      open_ = false;
      queue_.clear_waiting();
      return;
    }
    if (closing_) return send_close();
    if (more) do_write();
  }

  void arm_stall_timer(Clock::duration after) {
    stall_armed_ = true;
    stall_timer_.expires_after(after);
    stall_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->stall_armed_ = false;
      if (ec || !self->open_) return;
      self->on_stall_check();
    });
  }

  void on_stall_check() {
    if (!queue_.in_flight()) return;  // idle: re-armed by the next write
    auto stuck_for = Clock::now() - write_started_;
    if (stuck_for < srv_->opts.ws_stall_timeout) {
      arm_stall_timer(srv_->opts.ws_stall_timeout - stuck_for);
      return;
    }
    // The peer has not taken a single message for ws_stall_timeout: its
    // receive window is full, so not even a close frame would get through.
    // Drop the TCP connection; the pending operations end with an error.
    srv_->limited_log.warn(
        "websocket {}: subscriber stalled for {} ms with {} queued ({} coalesced); "
        "disconnecting",
        meter_id_, std::chrono::duration_cast<std::chrono::milliseconds>(stuck_for).count(),
        queue_.waiting(), queue_.coalesced());
    open_ = false;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  void begin_close() {
    if (closing_) return;
    closing_ = true;
    queue_.clear_waiting();
    if (!open_) return;
    if (!queue_.in_flight()) send_close();
  }

  void send_close() {
    if (!open_ || close_sent_) return;
    close_sent_ = true;
    ws_.async_close(websocket::close_reason(websocket::close_code::going_away, "server shutdown"),
                    [self = shared_from_this()](beast::error_code) {});
  }

  std::shared_ptr<Impl> srv_;
  websocket::stream<beast::tcp_stream> ws_;
  ConnectionSlot slot_;
  const bool multi_;               // /ws: commands, snapshots, events
  std::string meter_id_;           // /ws/{meter_id}; "*" for /ws (logs)
  bool all_ = false;               // /ws subscribed to "*"
  std::set<std::string> watched_;  // /ws: named meters
  beast::flat_buffer rbuf_;
  hub::SendQueue queue_;
  net::steady_timer stall_timer_;
  Clock::time_point write_started_{};
  bool open_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool stall_armed_ = false;
};

// ---------------------------------------------------------------------------
// HTTP session: reads one request at a time (no pipelining of responses),
// hands it to the Router, writes the answer when the Router responds.
class HttpSession : public std::enable_shared_from_this<HttpSession>, public Drainable {
 public:
  HttpSession(std::shared_ptr<Impl> srv, tcp::socket&& socket, ConnectionSlot slot)
      : srv_(std::move(srv)), stream_(std::move(socket)), slot_(std::move(slot)) {
    // Once per connection, not per request (getpeername is a syscall).
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
  }

  ~HttpSession() override { srv_->remove(this); }

  void run() {
    srv_->add(this, weak_from_this());
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
  }

  void drain() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      // Mid-request (bytes received, or being handled): let it finish; the
      // answer then carries "Connection: close". Idle: close now.
      bool mid_request =
          self->busy_ || self->buffer_.size() > 0 || (self->parser_ && self->parser_->got_some());
      if (!mid_request && !self->closed_) self->close();
    });
  }

 private:
  void do_read() {
    if (srv_->draining && buffer_.size() == 0) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_->opts.max_header));
    parser_->body_limit(srv_->opts.max_body);
    stream_.expires_after(srv_->opts.request_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
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
      bhttp::async_write(stream_, *cont,
                         [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                           if (wec) return self->close();
                           self->read_body();
                         });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
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
    req.target = std::string(msg.target());
    req.content_type = std::string(msg[bhttp::field::content_type]);
    req.accept = std::string(msg[bhttp::field::accept]);
    req.if_none_match = std::string(msg[bhttp::field::if_none_match]);
    req.body = std::move(msg.body());
    req.remote = remote_;
    busy_ = true;
    stream_.expires_never();  // waiting for a commit is not the client's fault
    // The tracked executor keeps io_context::run() alive until the answer is
    // posted back, even when no socket operation is pending meanwhile.
    auto ex = net::prefer(stream_.get_executor(), net::execution::outstanding_work.tracked);
    srv_->router.handle(std::move(req), [self = shared_from_this(), ex](api::Response res) {
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
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !force_close && !srv_->draining);
    // A 304 has no body and no Content-Length of its own (RFC 9110 8.6).
    if (r.status != 304) res->prepare_payload();
    if (head_) {
      res->body().clear();  // Content-Length still says what GET would send
      head_ = false;
    }
    stream_.expires_after(srv_->opts.request_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
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
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    linger_read(0);
  }

  void linger_read(std::size_t total) {
    if (total > 4 * srv_->opts.max_body) return close();
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(16 * 1024), [self = shared_from_this(), total](
                                                            beast::error_code ec, std::size_t n) {
      if (ec) return self->close();
      self->linger_read(total + n);
    });
  }

  void upgrade() {
    auto meter = api::Router::websocket_meter(parser_->get().target());
    if (!meter) return reply_and_close(std::move(meter.error()));  // NOLINT
    auto ws =
        std::make_shared<WsSession>(srv_, std::move(stream_), std::move(slot_), std::move(*meter));
    ws->start(parser_->release());
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  std::shared_ptr<Impl> srv_;
  beast::tcp_stream stream_;
  ConnectionSlot slot_;
  std::string remote_;  // peer address, for logs
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool busy_ = false;
  bool closed_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------
void Server::Impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        beast::bind_front_handler(&Impl::on_accept, shared_from_this()));
}

void Server::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    // EMFILE and friends: log and back off a little instead of spinning.
    limited_log.warn("accept failed: {}", ec.message());
    auto t = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(50));
    t->async_wait([self = shared_from_this(), t](beast::error_code) {
      if (self->acceptor.is_open()) self->do_accept();
    });
    return;
  }
  if (connections.fetch_add(1) >= opts.max_connections) {
    connections.fetch_sub(1);
    limited_log.warn("connection limit ({}) reached; refusing connections", opts.max_connections);
    beast::error_code ignored;
    socket.close(ignored);
  } else {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<HttpSession>(shared_from_this(), std::move(socket),
                                  ConnectionSlot(connections))
        ->run();
  }
  do_accept();
}

void Server::Impl::stop() {
  if (draining.exchange(true)) return;
  spdlog::info("shutting down: draining connections");
  net::post(acceptor.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
  });
  net::post(ioc, [self = shared_from_this()] {
    beast::error_code ignored;
    self->signals.cancel(ignored);
  });
  std::vector<std::shared_ptr<Drainable>> live;
  {
    std::lock_guard lk(reg_mu);
    for (auto& [k, w] : sessions)
      if (auto s = w.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->drain();
}

namespace {
ServerOptions resolved(ServerOptions o) {
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  return o;
}
}  // namespace

Server::Server(ServerOptions opts, api::Router& router, hub::Hub& hub)
    : impl_(std::make_shared<Impl>(resolved(std::move(opts)), router, hub)) {}

Server::~Server() = default;

core::Result<std::uint16_t> Server::listen() {
  auto& a = impl_->acceptor;
  beast::error_code ec;
  auto addr = net::ip::make_address(impl_->opts.host, ec);
  if (ec) return core::fail("bad_listen", "invalid listen address '" + impl_->opts.host + "'");
  tcp::endpoint ep(addr, impl_->opts.port);
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return core::fail("bad_listen", "cannot listen on " + impl_->opts.host + ":" +
                                        std::to_string(impl_->opts.port) + ": " + ec.message());
  return a.local_endpoint().port();
}

void Server::run() {
  auto impl = impl_;
  if (impl->opts.handle_signals) {
    impl->signals.add(SIGINT);
    impl->signals.add(SIGTERM);
    impl->signals.async_wait([impl](beast::error_code ec, int sig) {
      if (ec) return;
      spdlog::info("received signal {}", sig);
      impl->stop();
    });
  }
  impl->do_accept();
  const unsigned n = impl->opts.threads;

  // Watchdog: after a stop began, give connections shutdown_timeout to finish.
  // Until then it also sweeps the Hub once a second for meters gone silent.
  std::thread watchdog([impl] {
    std::unique_lock lk(impl->stop_mu);
    auto next_sweep = std::chrono::steady_clock::now();
    while (!impl->finished) {
      if (std::chrono::steady_clock::now() >= next_sweep) {
        next_sweep += std::chrono::seconds(1);
        lk.unlock();
        for (auto& f : impl->hub.sweep(core::now_ms())) hub::Hub::deliver(std::move(f));
        lk.lock();
        continue;
      }
      if (impl->draining) {
        if (!impl->stop_cv.wait_for(lk, impl->opts.shutdown_timeout,
                                    [&] { return impl->finished; })) {
          spdlog::warn("shutdown timeout: closing remaining connections");
          impl->ioc.stop();
        }
        return;
      }
      impl->stop_cv.wait_for(lk, std::chrono::milliseconds(100));
    }
  });

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i) {
    threads.emplace_back([impl] { impl->ioc.run(); });
    pthread_setname_np(threads.back().native_handle(), "mh-net");
  }
  pthread_setname_np(pthread_self(), "mh-net");
  impl->ioc.run();
  for (auto& t : threads) t.join();
  {
    std::lock_guard lk(impl->stop_mu);
    impl->finished = true;
  }
  impl->stop_cv.notify_all();
  watchdog.join();
}

void Server::stop() { impl_->stop(); }

}  // namespace meterhub::http

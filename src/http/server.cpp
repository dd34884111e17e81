// The listener and the run/stop machinery. Layout follows Beast's
// example/advanced/server (and advanced/server-flex for TLS): Listener ->
// (TLS or plain?) -> HttpSession -> (upgrade) -> WsSession, each on its own
// strand, lifetime by shared_from_this, every async step a named on_...
// member. The sessions are templates over the stream (http_session.hpp,
// ws_session.hpp), instantiated in server_plain.cpp (plain HTTP and WS),
// server_tls.cpp (HTTPS) and server_tls_ws.cpp (WSS): Beast's templates cost
// over a minute of compile time per stream type, and those files build in
// parallel. This file includes neither Beast's HTTP nor its WebSocket code.
#include "http/server.hpp"

#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <boost/asio/detail/socket_option.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <thread>

#include "core/time.hpp"
#include "http/server_impl.hpp"
#include "hub/hub.hpp"

namespace meterhub::http {
namespace detail {

ConnectionCounter::Verdict ConnectionCounter::try_add(const std::string& ip) {
  if (total_.fetch_add(1) >= max_total_) {
    total_.fetch_sub(1);
    return Verdict::total_full;
  }
  if (max_per_ip_ == 0) return Verdict::ok;
  std::lock_guard lk(mu_);
  auto& n = per_ip_[ip];
  if (n >= max_per_ip_) {
    total_.fetch_sub(1);
    return Verdict::ip_full;  // n > 0 here, so the entry was not made by this call
  }
  ++n;
  return Verdict::ok;
}

void ConnectionCounter::remove(const std::string& ip) {
  if (max_per_ip_ != 0) {
    std::lock_guard lk(mu_);
    if (auto it = per_ip_.find(ip); it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  }
  total_.fetch_sub(1);
}

namespace {

// Unsent bytes the kernel may hold for one connection (HTTP answers and
// WebSocket messages alike). Without a cap, Linux grows a socket's send
// buffer up to net.ipv4.tcp_wmem[2] (4 MiB by default) for a peer that does
// not read: a client that asks for a large answer (10 000 readings, a year of
// series) and never reads it, or a deaf WebSocket subscriber, would pin
// megabytes of kernel memory each, and its writes would keep "succeeding"
// until the buffer was full, so neither the request timeout nor
// ws_stall_timeout could see a stuck write. With it, a write waits once
// 64 KiB are queued unsent (the congestion window for data in flight still
// grows freely, so a fast reader is not slowed down).
constexpr int kNotsentLowat = 64 * 1024;

// With TLS on, a connection's first bytes tell a TLS ClientHello from plain
// HTTP (Beast's detect_ssl: 0x16 = handshake record). The bytes read stay in
// the buffer for the session that takes over.
class Detector : public std::enable_shared_from_this<Detector>, public Drainable {
 public:
  Detector(std::shared_ptr<Server::Impl> srv, tcp::socket&& socket, Accepted conn)
      : srv_(std::move(srv)),
        stream_(std::move(socket)),
        ex_(stream_.get_executor()),
        conn_(std::move(conn)) {}

  ~Detector() override { srv_->remove(this); }

  void run() {
    srv_->add(this, weak_from_this());
    net::dispatch(ex_, beast::bind_front_handler(&Detector::do_detect, shared_from_this()));
  }

  // Nothing received yet: close. Otherwise the session that takes over sees
  // the stop.
  void drain() override {
    net::post(ex_, [self = shared_from_this()] {
      if (!self->done_ && self->conn_.buffer.size() == 0) self->close();
    });
  }

 private:
  void do_detect() {
    if (srv_->draining) return close();
    // One budget for detection and the TLS handshake; the request gets its own.
    stream_.expires_after(srv_->opts.request_timeout);
    beast::async_detect_ssl(stream_, conn_.buffer,
                            beast::bind_front_handler(&Detector::on_detect, shared_from_this()));
  }

  void on_detect(beast::error_code ec, bool tls) {
    if (ec) return close();  // gone, or silent until the timeout: like an idle connection
    done_ = true;
    if (tls) return start_tls_session(srv_, std::move(stream_), std::move(conn_));
    start_plain_session(srv_, std::move(stream_), std::move(conn_), srv_->opts.tls_only);
  }

  void close() {
    if (done_) return;
    done_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  std::shared_ptr<Server::Impl> srv_;
  beast::tcp_stream stream_;
  net::any_io_executor ex_;
  Accepted conn_;
  bool done_ = false;  // handed over or closed
};

// The peer's address as text; an IPv4 client of a dual-stack listener
// ("::ffff:192.0.2.1") is shown and counted as the IPv4 address.
std::string peer_address(const tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

}  // namespace
}  // namespace detail

using namespace detail;

Server::Impl::Impl(ServerOptions o, api::Router& r, hub::Hub& h)
    : opts(std::move(o)),
      router(r),
      hub(h),
      ioc(static_cast<int>(opts.threads)),
      acceptor(net::make_strand(ioc)),
      signals(ioc),
      connections(opts.max_connections, opts.max_connections_per_ip) {}

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
  do_accept();  // the next accept does not wait for this connection's set-up

  // Once per connection (getpeername is a syscall); an error means the peer
  // is already gone.
  beast::error_code peer_ec;
  auto ep = socket.remote_endpoint(peer_ec);
  if (peer_ec) {
    beast::error_code ignored;
    socket.close(ignored);
    return;
  }
  std::string remote = peer_address(ep);
  switch (connections.try_add(remote)) {
    case ConnectionCounter::Verdict::ok:
      break;
    case ConnectionCounter::Verdict::total_full: {
      refused_log.warn("connection limit ({}) reached; refusing connections", opts.max_connections);
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    case ConnectionCounter::Verdict::ip_full: {
      refused_log.warn("connection limit per IP ({}) reached for {}; refusing its connections",
                       opts.max_connections_per_ip, remote);
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  // An old kernel without it: only less bounded.
  socket.set_option(
      net::detail::socket_option::integer<IPPROTO_TCP, TCP_NOTSENT_LOWAT>(kNotsentLowat), ignored);
  Accepted conn{ConnectionSlot(connections, remote), std::move(remote), {}};
  if (tls_on)
    std::make_shared<Detector>(shared_from_this(), std::move(socket), std::move(conn))->run();
  else
    start_plain_session(shared_from_this(), beast::tcp_stream(std::move(socket)), std::move(conn),
                        false);
}

void Server::Impl::wait_signal() {
  signals.async_wait([self = shared_from_this()](beast::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      self->reload_tls();
      return self->wait_signal();
    }
    spdlog::info("received signal {}", sig);
    self->stop();
  });
}

void Server::Impl::reload_tls() {
  if (!tls_on) {
    spdlog::info("received SIGHUP: nothing to reload (TLS is off)");
    return;
  }
  auto ctx = make_tls_context(opts.tls_cert, opts.tls_key);
  if (!ctx) {
    spdlog::error("received SIGHUP: TLS reload failed, the current certificate stays in use: {}",
                  ctx.error().message);
    return;
  }
  {
    std::lock_guard lk(tls_mu);
    tls = std::move(*ctx);
  }
  spdlog::info("received SIGHUP: TLS certificate reloaded from {}; new connections use it",
               opts.tls_cert);
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
  const auto& o = impl_->opts;
  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    if (o.tls_cert.empty() || o.tls_key.empty())
      return core::fail("bad_tls", "TLS needs both a certificate and a private key");
    auto ctx = make_tls_context(o.tls_cert, o.tls_key);
    if (!ctx) return std::unexpected(std::move(ctx.error()));
    impl_->tls = std::move(*ctx);  // before any connection: no lock needed yet
    impl_->tls_on = true;
    spdlog::info("TLS on with certificate {}; plain HTTP on the same port is {}", o.tls_cert,
                 o.tls_only ? "refused (--tls-only)" : "served too");
  } else if (o.tls_only) {
    return core::fail("bad_tls", "--tls-only needs a TLS certificate and key");
  }
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
  // Catch SIGINT/SIGTERM from here on, before the caller announces the port:
  // a signal that arrives before run() waits for it is queued by the
  // signal_set and starts the graceful stop as soon as run() begins. SIGHUP
  // reloads the TLS certificate (and no longer ends the process).
  if (impl_->opts.handle_signals) {
    impl_->signals.add(SIGINT, ec);
    if (!ec) impl_->signals.add(SIGTERM, ec);
    if (!ec) impl_->signals.add(SIGHUP, ec);
    if (ec) return core::fail("bad_listen", "cannot install signal handlers: " + ec.message());
  }
  return a.local_endpoint().port();
}

void Server::run() {
  auto impl = impl_;
  if (impl->opts.handle_signals) impl->wait_signal();
  impl->do_accept();
  const unsigned n = impl->opts.threads;

  // Watchdog: after a stop began, give connections shutdown_timeout to finish.
  // Until then, once a second, it sweeps the Hub for meters gone silent and
  // runs opts.every_second.
  std::thread watchdog([impl] {
    pthread_setname_np(pthread_self(), "mh-watchdog");
    std::unique_lock lk(impl->stop_mu);
    auto next_sweep = std::chrono::steady_clock::now();
    while (!impl->finished) {
      if (std::chrono::steady_clock::now() >= next_sweep) {
        next_sweep += std::chrono::seconds(1);
        lk.unlock();
        for (auto& f : impl->hub.sweep(core::now_ms())) hub::Hub::deliver(std::move(f));
        if (impl->opts.every_second) impl->opts.every_second();
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

// Private to src/http: the state the listener and every session share
// (Server::Impl), the connection accounting, and the hand-off from the
// listener to a session. Split out of server.cpp so that the plain and the TLS
// sessions compile in two translation units (server_plain.cpp,
// server_tls.cpp) that ninja builds in parallel; server.cpp keeps the
// listener, protocol detection and the run/stop machinery.
//
// Only OpenSSL-free Asio/Beast headers here: the TLS context is an opaque
// pointer outside server_tls.cpp.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/error.hpp"
#include "http/server.hpp"

namespace boost::asio::ssl {
class context;
}

namespace meterhub::http {
namespace detail {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

inline constexpr const char* kServerName = "meterhub";

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

// Open connections (HTTP, WebSocket, and those still being told apart), in
// total and per client IP. The per-IP map holds only IPs with a connection
// open: an entry is erased when its count drops to zero.
class ConnectionCounter {
 public:
  ConnectionCounter(std::size_t max_total, std::size_t max_per_ip)
      : max_total_(max_total), max_per_ip_(max_per_ip) {}

  enum class Verdict { ok, total_full, ip_full };
  // Counts one more connection from `ip` unless that exceeds a limit.
  Verdict try_add(const std::string& ip);
  void remove(const std::string& ip);

 private:
  const std::size_t max_total_;
  const std::size_t max_per_ip_;  // 0: not counted per IP
  std::atomic<std::size_t> total_{0};
  std::mutex mu_;
  std::unordered_map<std::string, std::size_t> per_ip_;
};

// Holds one counted connection for as long as it lives; moves from the
// detector to the HTTP session and from there to the WebSocket session.
// Must not outlive its counter (sessions hold the Impl that owns it).
class ConnectionSlot {
 public:
  ConnectionSlot(ConnectionCounter& c, std::string ip) : c_(&c), ip_(std::move(ip)) {}
  ConnectionSlot(ConnectionSlot&& o) noexcept
      : c_(std::exchange(o.c_, nullptr)), ip_(std::move(o.ip_)) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (c_) c_->remove(ip_);
  }

 private:
  ConnectionCounter* c_;
  std::string ip_;
};

// What a new connection brings to the session that serves it.
struct Accepted {
  ConnectionSlot slot;
  std::string remote;         // peer address (IPv4-mapped IPv6 shown as IPv4)
  beast::flat_buffer buffer;  // bytes already read while telling TLS from plain
};

}  // namespace detail

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  ServerOptions opts;
  api::Router& router;
  hub::Hub& hub;
  detail::net::io_context ioc;
  detail::tcp::acceptor acceptor;
  detail::net::signal_set signals;
  detail::ConnectionCounter connections;
  std::atomic<bool> draining{false};
  detail::RateLimitedLog limited_log;
  detail::RateLimitedLog refused_log;  // connection limits: a flood must not hide the others
  // TLS: tls_on is set by listen() and read-only after. The context is
  // made by listen() and replaced on SIGHUP (reload_tls): every connection
  // takes the current one at its start and keeps it for its life (TlsStream
  // holds it). Only server_tls.cpp knows the type.
  bool tls_on = false;
  std::mutex tls_mu;
  std::shared_ptr<detail::net::ssl::context> tls;  // guarded by tls_mu

  std::shared_ptr<detail::net::ssl::context> tls_context() {
    std::lock_guard lk(tls_mu);
    return tls;
  }

  std::mutex reg_mu;
  std::unordered_map<detail::Drainable*, std::weak_ptr<detail::Drainable>> sessions;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool finished = false;

  Impl(ServerOptions o, api::Router& r, hub::Hub& h);

  void add(detail::Drainable* key, std::weak_ptr<detail::Drainable> s) {
    std::lock_guard lk(reg_mu);
    sessions.emplace(key, std::move(s));
  }
  void remove(detail::Drainable* key) {
    std::lock_guard lk(reg_mu);
    sessions.erase(key);
  }

  void do_accept();
  void on_accept(detail::beast::error_code ec, detail::tcp::socket socket);
  // SIGINT/SIGTERM: stop(); SIGHUP: reload_tls() and wait for the next.
  void wait_signal();
  // Loads the certificate and key files again; on any error the current
  // context stays in use (and the error is logged).
  void reload_tls();
  void stop();
};

namespace detail {

// server_plain.cpp: serves HTTP/WS on the connection. refuse: --tls-only,
// answer the first request with 400 tls_required and close.
void start_plain_session(std::shared_ptr<Server::Impl> srv, beast::tcp_stream&& stream,
                         Accepted conn, bool refuse);
// server_tls.cpp: TLS handshake (with the ClientHello bytes in conn.buffer),
// then HTTPS/WSS.
void start_tls_session(std::shared_ptr<Server::Impl> srv, beast::tcp_stream&& stream,
                       Accepted conn);
// server_tls.cpp: the server context from PEM files, or why it cannot be made.
core::Result<std::shared_ptr<net::ssl::context>> make_tls_context(const std::string& cert,
                                                                  const std::string& key);
// server_tls.cpp: true for errors of the TLS layer itself (handshake, alert,
// bad record, peer gone without close_notify): the connection is unusable.
bool is_tls_error(const beast::error_code& ec);

}  // namespace detail
}  // namespace meterhub::http

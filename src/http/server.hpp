// The network edge: one listener, an HTTP session per connection, and a
// WebSocket session per upgraded connection (Beast, after its
// example/advanced/server). This header is deliberately free of Beast and
// Asio so that only the files of src/http/ pay their compile cost.
//
// Contract:
//  - Requests go to api::Router; WebSocket /ws/{meter_id} subscribes to the Hub.
//  - Every limit below is enforced per connection; a peer that exceeds one is
//    answered with an error (HTTP) or disconnected, and never grows memory.
//  - stop() (or SIGINT/SIGTERM inside run()) drains gracefully: no new
//    connections, requests already received are answered (after their
//    commit), idle keep-alive connections are closed, WebSockets get close
//    code 1001; run() returns when all of that is done or shutdown_timeout passed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/error.hpp"

namespace meterhub::api {
class Router;
}
namespace meterhub::hub {
class Hub;
}

namespace meterhub::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;  // 0 picks a free port
  unsigned threads = 0;       // 0 = one per core
  std::size_t max_body = 1 << 20;
  std::size_t max_header = 16 * 1024;
  std::size_t max_connections = 20000;
  std::size_t max_connections_per_ip = 512;  // 0 = no limit
  // TLS: both PEM files set turns it on. HTTPS/WSS and plain HTTP/WS are then
  // served on the same port (the first byte of a connection tells them
  // apart) unless tls_only, which refuses plain connections.
  std::string tls_cert;  // certificate chain
  std::string tls_key;   // private key
  bool tls_only = false;
  // A whole request (headers and body) must arrive within this, and an idle
  // keep-alive connection is closed after it.
  std::chrono::milliseconds request_timeout{30'000};
  std::size_t ws_queue = 1024;                           // messages queued per subscriber
  std::chrono::milliseconds ws_stall_timeout{10'000};  // one send may take this long
  std::chrono::milliseconds ws_idle_timeout{60'000};   // ping at half, drop at full
  std::size_t ws_max_message = 4096;                   // largest client message
  std::size_t ws_max_subscriptions = 10000;            // named meters per /ws connection
  bool ws_deflate = false;                             // permessage-deflate
  std::chrono::milliseconds shutdown_timeout{10'000};
  bool handle_signals = true;  // SIGINT/SIGTERM start a graceful stop
  // Called about once a second by the server's watchdog thread while it runs
  // (beside the Hub's online sweep); must return quickly.
  std::function<void()> every_second;
};

class Server {
 public:
  Server(ServerOptions opts, api::Router& router, hub::Hub& hub);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; returns the bound port (useful with port 0). With
  // handle_signals, SIGINT/SIGTERM are caught from here on (a signal before
  // run() starts the graceful stop when run() begins).
  core::Result<std::uint16_t> listen();
  // Runs the network threads; returns after a graceful stop.
  void run();
  // Starts a graceful stop; thread-safe, idempotent.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace meterhub::http

// WebSocket session (/ws/{meter_id} and the multiplexed /ws), over a plain
// or a TLS stream: Stream is beast::tcp_stream or TlsStream. Private to
// src/http; instantiated once per stream type, in server_plain.cpp and
// server_tls_ws.cpp, through start_ws_session (upgrade.hpp).
//
// Contract: receives hub messages on its strand, queues them by
// hub::SendQueue's policy (bounded, coalesced to the newest reading when
// full), drops the connection if one send stays stuck past ws_stall_timeout
// (the kernel holds at most 64 KiB unsent: TCP_NOTSENT_LOWAT, set on every
// connection at accept in server.cpp), and answers drain() with close code
// 1001. It holds its ConnectionSlot for its whole life.
#pragma once

#include <algorithm>
#include <functional>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "codec/ws_protocol.hpp"
#include "http/server_impl.hpp"
#include "http/upgrade.hpp"
#include "hub/hub.hpp"
#include "hub/send_queue.hpp"
#include "metrics/instruments.hpp"

namespace meterhub::http::detail {

namespace bhttp = beast::http;
namespace websocket = beast::websocket;
using Impl = Server::Impl;

template <class Stream>
class WsSession : public std::enable_shared_from_this<WsSession<Stream>>,
                  public hub::Subscriber,
                  public Drainable {
 public:
  // meter_id: /ws/{meter_id}; nullopt: the multiplexed /ws.
  // still_allowed: whether the key the socket was opened with is still
  // valid (empty: no key, always); checked before each message is queued.
  WsSession(std::shared_ptr<Impl> srv, Stream&& stream, ConnectionSlot slot,
            std::optional<std::string> meter_id, std::function<bool()> still_allowed)
      : srv_(std::move(srv)),
        still_allowed_(std::move(still_allowed)),
        ws_(std::move(stream)),
        slot_(std::move(slot)),
        multi_(!meter_id),
        meter_id_(meter_id ? std::move(*meter_id) : std::string("*")),
        queue_(srv_->opts.ws_queue),
        stall_timer_(ws_.get_executor()) {
    metrics::instruments().ws_connections.add(1);
    metrics::instruments().ws_connections_total.inc();
  }

  ~WsSession() override {
    if (multi_) {
      if (all_) srv_->hub.unwatch_all(this);
      for (const auto& m : watched_) srv_->hub.unsubscribe(m, this);
    } else {
      srv_->hub.unsubscribe(meter_id_, this);
    }
    srv_->remove(this);
    metrics::instruments().ws_connections.add(-1);
  }

  // subprotocol: answered in Sec-WebSocket-Protocol when not empty.
  void start(bhttp::request<bhttp::string_body> req, std::string subprotocol) {
    srv_->add(this, this->weak_from_this());
    beast::get_lowest_layer(ws_).expires_never();  // the websocket has its own timers
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = srv_->opts.ws_idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [proto = std::move(subprotocol)](websocket::response_type& res) {
          res.set(bhttp::field::server, kServerName);
          if (!proto.empty()) res.set(bhttp::field::sec_websocket_protocol, proto);
        }));
    if (srv_->opts.ws_deflate) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.server_max_window_bits = 10;  // bound zlib memory per connection
      pmd.compLevel = 3;
      pmd.memLevel = 4;
      ws_.set_option(pmd);
    }
    ws_.read_message_max(srv_->opts.ws_max_message);
    ws_.async_accept(req,
                     beast::bind_front_handler(&WsSession::on_accept, this->shared_from_this()));
  }

  // Any thread (called by the Hub, maybe under its lock): only hop to our strand.
  void deliver(hub::MessagePtr msg) override {
    if (!multi_ && msg->kind != hub::MessageKind::reading) return;  // events are for /ws
    net::post(ws_.get_executor(),
              [self = this->shared_from_this(), msg = std::move(msg)]() mutable {
                self->enqueue(std::move(msg));
              });
  }

  void drain() override {
    net::post(ws_.get_executor(), [self = this->shared_from_this()] { self->begin_close(); });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return;  // handshake failed or timed out; the session just ends
    open_ = true;
    if (srv_->draining) return begin_close();
    if (!multi_) srv_->hub.subscribe(meter_id_, this->shared_from_this());
    do_read();
  }

  void do_read() {
    ws_.async_read(rbuf_, beast::bind_front_handler(&WsSession::on_read, this->shared_from_this()));
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
    auto self = this->shared_from_this();
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
    if (still_allowed_ && !still_allowed_()) {
      // The key was revoked: nothing more for this socket.
      closing_ = true;
      queue_.clear_waiting();
      if (!queue_.in_flight())
        send_close(websocket::close_code::policy_error, "key revoked");
      else
        close_code_ = websocket::close_code::policy_error;
      return;
    }
    if (queue_.push(std::move(msg))) do_write();
  }

  // Sends queue_.front(), which the queue has marked in flight.
  void do_write() {
    write_started_ = Clock::now();
    if (!stall_armed_) arm_stall_timer(srv_->opts.ws_stall_timeout);
    ws_.text(true);
    const hub::Message& m = *queue_.front();
    ws_.async_write(net::buffer(multi_ ? m.tagged : m.json),
                    beast::bind_front_handler(&WsSession::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    bool more = queue_.pop();
    if (ec) {
      open_ = false;
      queue_.clear_waiting();
      return;
    }
    if (closing_) return send_close(close_code_, close_code_ == websocket::close_code::going_away
                                                     ? "server shutdown"
                                                     : "key revoked");
    if (more) do_write();
  }

  void arm_stall_timer(Clock::duration after) {
    stall_armed_ = true;
    stall_timer_.expires_after(after);
    stall_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
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
    metrics::instruments().ws_dropped.inc();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  void begin_close() {
    if (closing_) return;
    closing_ = true;
    queue_.clear_waiting();
    if (!open_) return;
    if (!queue_.in_flight()) send_close(websocket::close_code::going_away, "server shutdown");
  }

  void send_close(websocket::close_code code, const char* reason) {
    if (!open_ || close_sent_) return;
    close_sent_ = true;
    ws_.async_close(websocket::close_reason(code, reason),
                    [self = this->shared_from_this()](beast::error_code) {});
  }

  std::shared_ptr<Impl> srv_;
  std::function<bool()> still_allowed_;
  websocket::close_code close_code_ = websocket::close_code::going_away;  // when closing_
  websocket::stream<Stream> ws_;
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

template <class Stream>
void start_ws_session(std::shared_ptr<Impl> srv, Stream&& stream, ConnectionSlot slot,
                      std::optional<std::string> meter_id, bhttp::request<bhttp::string_body>&& req,
                      std::string subprotocol, std::function<bool()> still_allowed) {
  std::make_shared<WsSession<Stream>>(std::move(srv), std::move(stream), std::move(slot),
                                      std::move(meter_id), std::move(still_allowed))
      ->start(std::move(req), std::move(subprotocol));
}

}  // namespace meterhub::http::detail

// meterhub-wsprobe: WebSocket benchmark client for meterhub and the seed.
//
// Two modes (see bench/README.md):
//
//  latency (default): opens --subs WebSocket connections spread round-robin
//    over --meters meters (path from --ws-path, "{meter}" replaced by
//    PREFIX<i>), waits until every connection is open and the
//    latest-on-connect messages have drained (--settle seconds of silence),
//    then POSTs single readings at --rate per second for --duration seconds
//    (round-robin over the meters, over --post-conns keep-alive HTTP
//    connections). For each POST it records the time just before the request
//    is written; for each WebSocket message the time it is read. Each reading
//    carries a unique energy value (energy-base + seq), which both servers
//    echo, so a message identifies its POST. Prints p50/p90/p99/max latency
//    (POST written -> message read, per subscriber) and the delivery ratio
//    (messages matched / (POSTs answered 2xx x subscribers of that meter)).
//
//  idle (--idle N --hold S): opens N connections, waits until all are open,
//    reads the server's VmRSS (--server-pid) before and after, holds them
//    open S seconds, then exits.
//
// --seed switches to the seed's API: POST /esp32/data without ts.
//
// Single-threaded Asio. Only loopback targets are accepted. Every phase has
// a deadline, so the probe always ends by itself. The last line of output is
// "RESULT key=value ..." for bench/run.sh to parse.
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using beast::error_code;

// ---------------------------------------------------------------------------
struct Options {
  std::string host = "127.0.0.1";
  unsigned port = 0;
  std::vector<unsigned> post_ports;  // empty: --port (scale-out: POST to other nodes)
  bool seed = false;
  std::string ws_path = "/ws/{meter}";
  std::string post_path;  // default depends on --seed
  std::string prefix = "wsprobe-m";
  unsigned subs = 1000;
  unsigned meters = 100;
  double rate = 50;
  double duration = 10;
  double grace = 2;
  double settle = 0.5;
  unsigned post_conns = 4;
  unsigned connect_parallel = 100;
  double connect_timeout = 60;
  unsigned idle = 0;
  double hold = 5;
  long server_pid = 0;
  long long energy_base = 1'000'000;
  long long ts_base_ms = 0;  // 0: now - 3 h
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "meterhub-wsprobe: %s\n"
               "usage: meterhub-wsprobe --port P [--host 127.0.0.1] [--seed]\n"
               "  latency mode: [--subs 1000] [--meters 100] [--rate 50] [--duration 10]\n"
               "                [--grace 2] [--post-conns 4] [--prefix wsprobe-m]\n"
               "  idle mode:    --idle N [--hold 5] [--meters 100] [--server-pid PID]\n"
               "  common:       [--ws-path /ws/{meter}] [--post-path PATH] [--settle 0.5]\n"
               "                [--post-ports P1,P2 (POST there, round-robin per connection)]\n"
               "                [--connect-parallel 100] [--connect-timeout 60]\n"
               "                [--energy-base 1000000] [--ts-base-ms MS]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage((std::string("missing value for ") + argv[i]).c_str());
    return argv[++i];
  };
  auto num = [&](int& i) -> double {
    std::string v = need(i);
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d) || d < 0)
      usage((std::string("bad number for ") + argv[i - 1] + ": " + v).c_str());
    return d;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--host") o.host = need(i);
    else if (a == "--port") o.port = static_cast<unsigned>(num(i));
    else if (a == "--post-ports") {
      std::string v = need(i);
      for (std::size_t k = 0; k <= v.size();) {
        const auto e = std::min(v.find(',', k), v.size());
        const long p = std::strtol(v.substr(k, e - k).c_str(), nullptr, 10);
        if (p <= 0 || p > 65535) usage("--post-ports: comma-separated ports");
        o.post_ports.push_back(static_cast<unsigned>(p));
        k = e + 1;
      }
    }
    else if (a == "--seed") o.seed = true;
    else if (a == "--ws-path") o.ws_path = need(i);
    else if (a == "--post-path") o.post_path = need(i);
    else if (a == "--prefix") o.prefix = need(i);
    else if (a == "--subs") o.subs = static_cast<unsigned>(num(i));
    else if (a == "--meters") o.meters = static_cast<unsigned>(num(i));
    else if (a == "--rate") o.rate = num(i);
    else if (a == "--duration") o.duration = num(i);
    else if (a == "--grace") o.grace = num(i);
    else if (a == "--settle") o.settle = num(i);
    else if (a == "--post-conns") o.post_conns = static_cast<unsigned>(num(i));
    else if (a == "--connect-parallel") o.connect_parallel = static_cast<unsigned>(num(i));
    else if (a == "--connect-timeout") o.connect_timeout = num(i);
    else if (a == "--idle") o.idle = static_cast<unsigned>(num(i));
    else if (a == "--hold") o.hold = num(i);
    else if (a == "--server-pid") o.server_pid = static_cast<long>(num(i));
    else if (a == "--energy-base") o.energy_base = static_cast<long long>(num(i));
    else if (a == "--ts-base-ms") o.ts_base_ms = static_cast<long long>(num(i));
    else if (a == "-h" || a == "--help") usage("help");
    else usage((std::string("unknown option ") + std::string(a)).c_str());
  }
  if (o.port == 0 || o.port > 65535) usage("--port is required (1..65535)");
  if (o.meters == 0) usage("--meters must be > 0");
  if (o.post_conns == 0) o.post_conns = 1;
  if (o.connect_parallel == 0) o.connect_parallel = 1;
  if (o.idle == 0 && (o.rate <= 0 || o.subs == 0)) usage("--rate and --subs must be > 0");
  if (o.idle == 0 && o.rate * o.duration > 5e6) usage("--rate x --duration is limited to 5e6 posts");
  if (o.duration > 600 || o.hold > 600) usage("--duration and --hold are limited to 600 s");
  if (o.post_path.empty()) o.post_path = o.seed ? "/esp32/data" : "/api/v1/readings";
  if (o.ts_base_ms == 0) {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    o.ts_base_ms = now - 3LL * 3600 * 1000;
  }
  return o;
}

void raise_nofile() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    std::fprintf(stderr, "wsprobe: RLIMIT_NOFILE %llu\n",
                 static_cast<unsigned long long>(rl.rlim_cur));
}

// VmRSS of a process in KiB, or -1.
long rss_kib(long pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string meter_name(const Options& o, unsigned i) { return o.prefix + std::to_string(i); }

// Extracts the number after "energy": in a JSON text (both servers echo it).
bool find_energy(std::string_view s, double& out) {
  constexpr std::string_view key = "\"energy\":";
  auto p = s.find(key);
  if (p == std::string_view::npos) return false;
  p += key.size();
  while (p < s.size() && s[p] == ' ') ++p;
  auto r = std::from_chars(s.data() + p, s.data() + s.size(), out);
  return r.ec == std::errc{};
}

// ---------------------------------------------------------------------------
struct SendRec {
  Clock::time_point t{};
  Clock::time_point acked{};  // POST answer read (2xx)
  unsigned meter = 0;
  unsigned expected = 0;  // subscribers of that meter open when it was sent
  unsigned received = 0;
  bool sent = false;
  bool ok = false;  // answered 2xx
};

class Probe;

// One WebSocket subscriber.
class Sub : public std::enable_shared_from_this<Sub> {
 public:
  Sub(Probe& p, net::io_context& ioc, unsigned meter) : p_(p), ws_(ioc), meter_(meter) {}
  void start(const tcp::endpoint& ep);
  bool open() const { return open_; }
  unsigned meter() const { return meter_; }
  void close() {
    error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

 private:
  void on_connect(error_code ec);
  void on_handshake(error_code ec);
  void do_read();
  void on_read(error_code ec, std::size_t n);

  Probe& p_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buf_;
  unsigned meter_;
  bool open_ = false;
  bool counted_ = false;
};

// One keep-alive HTTP connection that POSTs readings.
class Poster : public std::enable_shared_from_this<Poster> {
 public:
  Poster(Probe& p, net::io_context& ioc) : p_(p), stream_(ioc) {}
  void connect(const tcp::endpoint& ep, std::function<void(bool)> done);
  bool idle() const { return connected_ && !busy_; }
  void send(std::size_t seq);

 private:
  void on_write(error_code ec, std::size_t);
  void on_read(error_code ec, std::size_t);
  // Drops the connection and, while the probe is still posting, opens a new one.
  void reconnect();

  Probe& p_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  bhttp::request<bhttp::string_body> req_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  tcp::endpoint ep_;
  std::size_t seq_ = 0;
  bool connected_ = false;
  bool busy_ = false;
};

class Probe {
 public:
  explicit Probe(Options o) : o_(std::move(o)), timer_(ioc_), deadline_(ioc_) {}

  int run();

  // Called by Sub / Poster.
  void on_sub_done(bool ok) {
    --inflight_;
    if (ok) ++connected_;
    else ++connect_failed_;
    launch_connects();
    if (connected_ + connect_failed_ == target_subs_) on_all_connected();
  }
  void on_sub_open(unsigned meter) { ++open_per_meter_[meter]; }
  void on_sub_closed(unsigned meter) {
    if (open_per_meter_[meter] > 0) --open_per_meter_[meter];
    ++closed_;
  }
  void on_message(unsigned meter, std::string_view text);
  void on_post_sent(std::size_t seq) {
    SendRec& r = sends_[seq];
    r.t = Clock::now();
    r.meter = static_cast<unsigned>(seq % o_.meters);
    r.expected = open_per_meter_[r.meter];
    r.sent = true;
    ++posts_sent_;
  }
  void on_post_done(std::size_t seq, int status, std::string_view body) {
    SendRec& r = sends_[seq];
    post_rtt_us_.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - r.t).count());
    if (status >= 200 && status < 300) {
      r.ok = true;
      r.acked = Clock::now();
      ++posts_ok_;
      if (!o_.seed && body.find("\"duplicates\":0") == std::string_view::npos) ++post_dups_;
    } else {
      ++posts_bad_;
      if (posts_bad_ <= 3)
        std::fprintf(stderr, "wsprobe: POST answered %d: %.*s\n", status,
                     static_cast<int>(std::min<std::size_t>(body.size(), 200)), body.data());
    }
    pump_posts();
  }
  void on_post_error(std::size_t seq, error_code ec) {
    ++posts_err_;
    if (posts_err_ <= 3) std::fprintf(stderr, "wsprobe: POST %zu failed: %s\n", seq, ec.message().c_str());
  }
  void on_poster_reconnected() { pump_posts(); }

  const Options& opts() const { return o_; }
  const tcp::endpoint& endpoint() const { return ep_; }
  std::string host_header() const { return o_.host + ":" + std::to_string(o_.port); }
  std::string body_for(std::size_t seq) const;
  bool posting() const { return posting_; }

 private:
  void launch_connects();
  void on_all_connected();
  void wait_settle();
  void start_idle_hold();
  void connect_posters();
  void start_posting();
  void tick();
  void pump_posts();
  void finish_latency();
  void report_latency();
  void arm_deadline(double seconds, const char* phase);

  Options o_;
  net::io_context ioc_{1};
  tcp::endpoint ep_;
  net::steady_timer timer_;
  net::steady_timer deadline_;

  std::vector<std::shared_ptr<Sub>> subs_;
  std::vector<unsigned> open_per_meter_;
  unsigned target_subs_ = 0;
  unsigned next_sub_ = 0;
  unsigned inflight_ = 0;
  unsigned connected_ = 0;
  unsigned connect_failed_ = 0;
  unsigned closed_ = 0;
  Clock::time_point connect_start_{}, connect_end_{};
  Clock::time_point last_msg_{};
  std::uint64_t initial_msgs_ = 0;  // before posting (latest-on-connect)
  long rss_before_ = -1, rss_after_ = -1;

  std::vector<std::shared_ptr<Poster>> posters_;
  unsigned posters_ready_ = 0;
  std::vector<SendRec> sends_;
  std::size_t total_posts_ = 0;
  std::size_t due_ = 0;    // posts whose scheduled time has come
  std::size_t issued_ = 0;  // posts handed to a poster
  std::size_t max_backlog_ = 0;
  std::size_t posts_sent_ = 0, posts_ok_ = 0, posts_bad_ = 0, posts_err_ = 0, post_dups_ = 0;
  Clock::time_point post_start_{}, post_end_{};
  bool posting_ = false;

  std::vector<double> lat_us_;
  std::vector<double> post_rtt_us_;
  std::vector<std::pair<std::size_t, Clock::time_point>> arrivals_;  // (seq, read at)
  std::uint64_t unexpected_ = 0, dup_deliveries_ = 0, wrong_meter_ = 0;
  bool done_ = false;
  int exit_code_ = 0;
};

// --- Sub --------------------------------------------------------------------
void Sub::start(const tcp::endpoint& ep) {
  beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(15));
  beast::get_lowest_layer(ws_).async_connect(
      ep, beast::bind_front_handler(&Sub::on_connect, shared_from_this()));
}

void Sub::on_connect(error_code ec) {
  if (ec) return p_.on_sub_done(false);
  error_code ignored;
  beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ignored);
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout t{};
  t.handshake_timeout = std::chrono::seconds(15);
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  ws_.set_option(t);
  // No permessage-deflate offer (Beast's client default): both servers are
  // measured without compression.
  ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    req.set(bhttp::field::user_agent, "meterhub-wsprobe");
  }));
  std::string path = p_.opts().ws_path;
  auto pos = path.find("{meter}");
  if (pos != std::string::npos) path.replace(pos, 7, meter_name(p_.opts(), meter_));
  ws_.async_handshake(p_.host_header(), path,
                      beast::bind_front_handler(&Sub::on_handshake, shared_from_this()));
}

void Sub::on_handshake(error_code ec) {
  if (ec) return p_.on_sub_done(false);
  open_ = true;
  counted_ = true;
  p_.on_sub_open(meter_);
  p_.on_sub_done(true);
  do_read();
}

void Sub::do_read() {
  ws_.async_read(buf_, beast::bind_front_handler(&Sub::on_read, shared_from_this()));
}

void Sub::on_read(error_code ec, std::size_t) {
  if (ec) {
    if (open_) {
      open_ = false;
      if (counted_) p_.on_sub_closed(meter_);
    }
    return;
  }
  auto data = buf_.cdata();
  p_.on_message(meter_, std::string_view(static_cast<const char*>(data.data()), data.size()));
  buf_.consume(buf_.size());
  do_read();
}

// --- Poster -----------------------------------------------------------------
void Poster::connect(const tcp::endpoint& ep, std::function<void(bool)> done) {
  ep_ = ep;
  stream_.expires_after(std::chrono::seconds(10));
  stream_.async_connect(ep, [self = shared_from_this(), done = std::move(done)](error_code ec) {
    self->stream_.expires_never();
    if (!ec) {
      error_code ignored;
      self->stream_.socket().set_option(tcp::no_delay(true), ignored);
      self->connected_ = true;
    }
    done(!ec);
  });
}

void Poster::send(std::size_t seq) {
  busy_ = true;
  seq_ = seq;
  req_ = {};
  req_.method(bhttp::verb::post);
  req_.target(p_.opts().post_path);
  req_.version(11);
  req_.set(bhttp::field::host, p_.host_header());
  req_.set(bhttp::field::content_type, "application/json");
  req_.set(bhttp::field::user_agent, "meterhub-wsprobe");
  req_.keep_alive(true);
  req_.body() = p_.body_for(seq);
  req_.prepare_payload();
  stream_.expires_after(std::chrono::seconds(30));
  p_.on_post_sent(seq);  // the clock starts just before the request is written
  bhttp::async_write(stream_, req_, beast::bind_front_handler(&Poster::on_write, shared_from_this()));
}

void Poster::on_write(error_code ec, std::size_t) {
  if (ec) return on_read(ec, 0);
  parser_.emplace();
  parser_->body_limit(1 << 20);
  bhttp::async_read(stream_, buf_, *parser_,
                    beast::bind_front_handler(&Poster::on_read, shared_from_this()));
}

void Poster::reconnect() {
  connected_ = false;
  error_code ignored;
  stream_.socket().close(ignored);
  buf_.clear();
  if (!p_.posting()) return;
  auto self = shared_from_this();
  connect(ep_, [self](bool ok) {
    if (ok) self->p_.on_poster_reconnected();
  });
}

void Poster::on_read(error_code ec, std::size_t) {
  stream_.expires_never();
  if (ec) {
    // Broken connection: report, reconnect once per failure and go on.
    p_.on_post_error(seq_, ec);
    busy_ = false;
    return reconnect();
  }
  auto& res = parser_->get();
  bool keep = res.keep_alive();
  busy_ = false;
  p_.on_post_done(seq_, static_cast<int>(res.result_int()), res.body());
  if (!keep && !busy_) reconnect();
}

// --- Probe ------------------------------------------------------------------
std::string Probe::body_for(std::size_t seq) const {
  const unsigned meter = static_cast<unsigned>(seq % o_.meters);
  const long long energy = o_.energy_base + static_cast<long long>(seq);
  char buf[256];
  int n;
  if (o_.seed)
    n = std::snprintf(buf, sizeof buf,
                      R"({"meter_id":"%s","voltage":230.1,"current":1.5,"power":345.2,"energy":%lld})",
                      meter_name(o_, meter).c_str(), energy);
  else
    n = std::snprintf(
        buf, sizeof buf,
        R"({"meter_id":"%s","voltage":230.1,"current":1.5,"power":345.2,"energy":%lld,"ts":%lld})",
        meter_name(o_, meter).c_str(), energy, o_.ts_base_ms + static_cast<long long>(seq));
  return std::string(buf, static_cast<std::size_t>(std::max(n, 0)));
}

void Probe::arm_deadline(double seconds, const char* phase) {
  deadline_.expires_after(std::chrono::milliseconds(static_cast<long long>(seconds * 1000)));
  deadline_.async_wait([this, phase](error_code ec) {
    if (ec) return;
    std::fprintf(stderr, "wsprobe: deadline passed during %s; giving up\n", phase);
    exit_code_ = 1;
    if (std::string_view(phase) == "connect") {
      // Report what we have and stop.
      std::printf("RESULT mode=%s error=connect_timeout connected=%u failed=%u target=%u\n",
                  o_.idle ? "idle" : "latency", connected_, connect_failed_, target_subs_);
    }
    ioc_.stop();
  });
}

int Probe::run() {
  error_code ec;
  auto addr = net::ip::make_address(o_.host, ec);
  if (ec) usage("--host must be an IP address");
  if (!addr.is_loopback()) usage("only loopback targets (127.0.0.0/8, ::1) are allowed");
  ep_ = tcp::endpoint(addr, static_cast<unsigned short>(o_.port));

  target_subs_ = o_.idle ? o_.idle : o_.subs;
  open_per_meter_.assign(o_.meters, 0);
  rss_before_ = rss_kib(o_.server_pid);
  std::fprintf(stderr, "wsprobe: opening %u WebSockets over %u meters (%u handshakes in flight)\n",
               target_subs_, o_.meters, o_.connect_parallel);
  subs_.reserve(target_subs_);
  connect_start_ = Clock::now();
  arm_deadline(o_.connect_timeout, "connect");
  launch_connects();
  ioc_.run();
  return exit_code_;
}

void Probe::launch_connects() {
  while (inflight_ < o_.connect_parallel && next_sub_ < target_subs_) {
    auto s = std::make_shared<Sub>(*this, ioc_, next_sub_ % o_.meters);
    subs_.push_back(s);
    ++next_sub_;
    ++inflight_;
    s->start(ep_);
  }
}

void Probe::on_message(unsigned meter, std::string_view text) {
  last_msg_ = Clock::now();
  if (!posting_ && issued_ == 0) {
    ++initial_msgs_;
    return;
  }
  double e = 0;
  if (!find_energy(text, e)) {
    ++unexpected_;
    return;
  }
  long long seq = std::llround(e) - o_.energy_base;
  if (seq < 0 || static_cast<std::size_t>(seq) >= sends_.size() || !sends_[seq].sent) {
    ++unexpected_;
    return;
  }
  SendRec& r = sends_[seq];
  if (r.meter != meter) {
    ++wrong_meter_;
    return;
  }
  if (++r.received > r.expected) {
    ++dup_deliveries_;
    return;
  }
  lat_us_.push_back(std::chrono::duration<double, std::micro>(last_msg_ - r.t).count());
  arrivals_.emplace_back(static_cast<std::size_t>(seq), last_msg_);
}

void Probe::on_all_connected() {
  connect_end_ = Clock::now();
  deadline_.cancel();
  const double took = secs(connect_end_ - connect_start_);
  std::fprintf(stderr, "wsprobe: %u/%u connected in %.2f s (%u failed)\n", connected_,
               target_subs_, took, connect_failed_);
  last_msg_ = Clock::now();
  arm_deadline(30, "settle");
  wait_settle();
}

// Waits until no message has arrived for --settle seconds (latest-on-connect
// drained), bounded by the settle deadline.
void Probe::wait_settle() {
  timer_.expires_after(std::chrono::milliseconds(50));
  timer_.async_wait([this](error_code ec) {
    if (ec) return;
    if (secs(Clock::now() - last_msg_) < o_.settle) return wait_settle();
    deadline_.cancel();
    std::fprintf(stderr, "wsprobe: settled (%" PRIu64 " initial messages drained)\n",
                 initial_msgs_);
    if (o_.idle) return start_idle_hold();
    connect_posters();
  });
}

void Probe::start_idle_hold() {
  rss_after_ = rss_kib(o_.server_pid);
  unsigned open_now = 0;
  for (auto& s : subs_) open_now += s->open() ? 1 : 0;
  const double took = secs(connect_end_ - connect_start_);
  double per_conn = (rss_before_ >= 0 && rss_after_ >= 0 && open_now > 0)
                        ? (static_cast<double>(rss_after_ - rss_before_) * 1024.0 / open_now)
                        : -1;
  std::printf("idle: %u/%u open (%u failed) in %.2f s; server VmRSS %ld KiB -> %ld KiB; "
              "%.0f bytes per connection\n",
              open_now, target_subs_, connect_failed_, took, rss_before_, rss_after_, per_conn);
  std::fflush(stdout);
  timer_.expires_after(std::chrono::milliseconds(static_cast<long long>(o_.hold * 1000)));
  timer_.async_wait([this, open_now, took, per_conn](error_code ec) {
    if (ec) return;
    unsigned still = 0;
    for (auto& s : subs_) still += s->open() ? 1 : 0;
    long rss_end = rss_kib(o_.server_pid);
    std::printf("RESULT mode=idle target=%u connected=%u failed=%u open_after_hold=%u "
                "connect_s=%.2f rss_before_kib=%ld rss_after_kib=%ld rss_end_kib=%ld "
                "bytes_per_conn=%.0f\n",
                target_subs_, open_now, connect_failed_, still, took, rss_before_, rss_after_,
                rss_end, per_conn);
    std::fflush(stdout);
    for (auto& s : subs_) s->close();
    ioc_.stop();
  });
}

void Probe::connect_posters() {
  arm_deadline(15, "poster connect");
  for (unsigned i = 0; i < o_.post_conns; ++i) {
    auto p = std::make_shared<Poster>(*this, ioc_);
    posters_.push_back(p);
    tcp::endpoint to = ep_;
    if (!o_.post_ports.empty())
      to.port(static_cast<unsigned short>(o_.post_ports[i % o_.post_ports.size()]));
    p->connect(to, [this](bool ok) {
      if (!ok) {
        std::fprintf(stderr, "wsprobe: cannot open the HTTP connection for POSTs\n");
        exit_code_ = 1;
        ioc_.stop();
        return;
      }
      if (++posters_ready_ == o_.post_conns) {
        deadline_.cancel();
        start_posting();
      }
    });
  }
}

void Probe::start_posting() {
  total_posts_ = static_cast<std::size_t>(std::llround(o_.rate * o_.duration));
  sends_.assign(total_posts_, SendRec{});
  lat_us_.reserve(total_posts_ * (o_.subs / o_.meters + 1));
  arrivals_.reserve(lat_us_.capacity());
  post_start_ = Clock::now();
  posting_ = true;
  std::fprintf(stderr, "wsprobe: posting %zu readings at %.0f/s over %u connection(s)\n",
               total_posts_, o_.rate, o_.post_conns);
  arm_deadline(o_.duration + 30, "posting");
  tick();
}

// Fires at the scheduled time of each post (absolute schedule, no drift).
void Probe::tick() {
  if (due_ >= total_posts_) {
    post_end_ = Clock::now();
    // Stop waiting: whatever was not handed out by now is reported as unsent.
    timer_.expires_after(std::chrono::milliseconds(static_cast<long long>(o_.grace * 1000)));
    timer_.async_wait([this](error_code ec) {
      if (!ec) finish_latency();
    });
    return;
  }
  ++due_;
  pump_posts();
  auto next = post_start_ + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(due_ / o_.rate));
  timer_.expires_at(next);
  timer_.async_wait([this](error_code ec) {
    if (!ec) tick();
  });
}

void Probe::pump_posts() {
  if (!posting_) return;
  for (auto& p : posters_) {
    if (issued_ >= due_) break;
    if (p->idle()) p->send(issued_++);
  }
  max_backlog_ = std::max(max_backlog_, due_ - issued_);
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return NAN;
  std::size_t i = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  if (i > 0) --i;
  return v[std::min(i, v.size() - 1)];
}

void Probe::finish_latency() {
  posting_ = false;
  deadline_.cancel();
  report_latency();
  for (auto& s : subs_) s->close();
  ioc_.stop();
}

void Probe::report_latency() {
  std::uint64_t expected = 0, matched = 0;
  for (const SendRec& r : sends_) {
    if (!r.sent || !r.ok) continue;
    expected += r.expected;
    matched += std::min(r.received, r.expected);
  }
  std::sort(lat_us_.begin(), lat_us_.end());
  std::sort(post_rtt_us_.begin(), post_rtt_us_.end());
  // Fan-out share: each arrival relative to its POST's answer (negative when
  // the message beat the answer). Small values mean the latency is the commit.
  std::vector<double> after_ack_us_;
  after_ack_us_.reserve(arrivals_.size());
  for (const auto& [seq, at] : arrivals_)
    if (sends_[seq].ok)
      after_ack_us_.push_back(
          std::chrono::duration<double, std::micro>(at - sends_[seq].acked).count());
  std::sort(after_ack_us_.begin(), after_ack_us_.end());
  const double ratio = expected ? static_cast<double>(matched) / static_cast<double>(expected) : 0;
  const double post_secs = secs(post_end_ - post_start_);
  const double achieved = post_secs > 0 ? static_cast<double>(posts_sent_) / post_secs : 0;
  double mean = 0;
  for (double x : lat_us_) mean += x;
  if (!lat_us_.empty()) mean /= static_cast<double>(lat_us_.size());
  unsigned open_now = 0;
  for (auto& s : subs_) open_now += s->open() ? 1 : 0;

  std::printf("subscribers: %u/%u connected in %.2f s, %u still open, %u meters\n", connected_,
              target_subs_, secs(connect_end_ - connect_start_), open_now, o_.meters);
  std::printf("posts: %zu scheduled, %zu sent (%.1f/s achieved), %zu 2xx, %zu non-2xx, %zu errors, "
              "%zu with duplicates, max backlog %zu\n",
              total_posts_, posts_sent_, achieved, posts_ok_, posts_bad_, posts_err_, post_dups_,
              max_backlog_);
  std::printf("POST round trip: p50 %.3f ms, p99 %.3f ms\n", pct(post_rtt_us_, 50) / 1000,
              pct(post_rtt_us_, 99) / 1000);
  std::printf("WS arrival after the POST's answer: p50 %.3f ms, p99 %.3f ms (%zu samples; "
              "negative: before the answer)\n",
              pct(after_ack_us_, 50) / 1000, pct(after_ack_us_, 99) / 1000, after_ack_us_.size());
  std::printf("delivery: %" PRIu64 "/%" PRIu64 " (%.4f), unexpected %" PRIu64
              ", duplicate %" PRIu64 ", wrong meter %" PRIu64 "\n",
              matched, expected, ratio, unexpected_, dup_deliveries_, wrong_meter_);
  std::printf("latency POST->WS: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, mean %.3f ms "
              "(%zu samples)\n",
              pct(lat_us_, 50) / 1000, pct(lat_us_, 90) / 1000, pct(lat_us_, 99) / 1000,
              lat_us_.empty() ? NAN : lat_us_.back() / 1000, mean / 1000, lat_us_.size());
  std::printf("RESULT mode=latency server=%s subs=%u connected=%u meters=%u rate=%.0f "
              "achieved_rate=%.1f posts=%zu posts_ok=%zu posts_bad=%zu posts_err=%zu "
              "delivered=%" PRIu64 " expected=%" PRIu64 " delivery=%.4f p50_ms=%.3f p90_ms=%.3f "
              "p99_ms=%.3f max_ms=%.3f post_p50_ms=%.3f post_p99_ms=%.3f after_ack_p50_ms=%.3f "
              "after_ack_p99_ms=%.3f\n",
              o_.seed ? "seed" : "meterhub", target_subs_, connected_, o_.meters, o_.rate, achieved,
              posts_sent_, posts_ok_, posts_bad_, posts_err_, matched, expected, ratio,
              pct(lat_us_, 50) / 1000, pct(lat_us_, 90) / 1000, pct(lat_us_, 99) / 1000,
              lat_us_.empty() ? NAN : lat_us_.back() / 1000, pct(post_rtt_us_, 50) / 1000,
              pct(post_rtt_us_, 99) / 1000, pct(after_ack_us_, 50) / 1000,
              pct(after_ack_us_, 99) / 1000);
  std::fflush(stdout);
  if (posts_ok_ == 0 || connected_ == 0) exit_code_ = 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines, even when mixed with stderr
  Options o = parse(argc, argv);
  raise_nofile();
  Probe p(std::move(o));
  return p.run();
}

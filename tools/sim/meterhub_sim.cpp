// meterhub-sim: simulated electricity meters that post realistic readings to a
// meterhub server, so a newcomer sees live meters at once (`make run DEMO=1`)
// and tests can drive the server the way a fleet of devices would.
//
// Each simulated meter is a household or a small commercial site: a base load,
// appliances that switch on and off (kettle, fridge compressor, oven, HVAC,
// coffee machine), a daily pattern with morning and evening peaks, mains
// voltage 230 V with drift and noise, 50 Hz ± 0.05, a power factor from the mix
// of loads, current = P / (V·PF), and an energy counter (kWh) integrated from
// the power, rising monotonically (or reset once with --reset-after).
// Everything random comes from --seed, so the same seed gives the same
// sequence of choices (values also follow the local time of day).
//
// Delivery is what a careful device does: readings carry an explicit `ts`,
// go out in batches over one keep-alive HTTP connection, and stay in a bounded
// buffer while the server is unreachable or answers 503/429 (Retry-After is
// honoured, otherwise exponential backoff). A retry is safe because the server
// stores a (meter_id, ts) only once. A 4xx other than 408/429 drops the batch.
//
// With --mqtt instead, each batch is published to a broker as one message per
// meter (`meterhub/{meter_id}/readings`, the same {"readings":[…]} body, QoS 1;
// docs/mqtt.md). A reading counts as acknowledged on the broker's PUBACK;
// until then it stays in the same bounded buffer, and a lost connection puts
// the unacknowledged messages back at the front to be published again after
// a reconnect (with backoff). A re-publish is safe for the same reason.
//
// Single-threaded, synchronous by design: Asio is run one operation at a
// time only to put a timeout on each step, libmosquitto is driven with
// mosquitto_loop() from the same thread. Plain HTTP and plain MQTT only.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <mosquitto.h>
#include <numbers>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;
using beast::error_code;
using Steady = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// The one piece of global state: set by SIGINT/SIGTERM, polled by the loops.
// The first signal ends generation and starts the final flush; a second one
// abandons the flush.
volatile std::sig_atomic_t g_signals = 0;
extern "C" void on_signal(int) { g_signals = g_signals + 1; }

bool g_quiet = false;  // set once from --quiet before anything runs

template <class... Args>
void log(const char* fmt, Args... args) {
  if (g_quiet) return;
  std::fprintf(stderr, "meterhub-sim: ");
  if constexpr (sizeof...(Args) == 0) {
    std::fputs(fmt, stderr);
  } else {
    std::fprintf(stderr, fmt, args...);
  }
  std::fputc('\n', stderr);
}

// ---------------------------------------------------------------------------
// Random numbers: our own uniform/normal on top of mt19937_64, so a seed gives
// the same values with every standard library.

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  bool chance(double p) { return uniform() < p; }
  double normal(double sigma) {  // Box-Muller
    double u1 = std::max(uniform(), 1e-12), u2 = uniform();
    return sigma * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 gen_;
};

// ---------------------------------------------------------------------------
// One reading, serialised as the server's API expects (docs/api.md).

struct Reading {
  std::string meter_id;
  std::int64_t ts_ms = 0;
  double voltage = 0, current = 0, power = 0, energy = 0, frequency = 0, power_factor = 0;
};

void append_json(std::string& out, const Reading& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\",\"ts\":%lld,\"voltage\":%.1f,\"current\":%.3f,\"power\":%.1f,"
                "\"energy\":%.3f,\"frequency\":%.2f,\"power_factor\":%.2f}",
                static_cast<long long>(r.ts_ms), r.voltage, r.current, r.power, r.energy,
                r.frequency, r.power_factor);
  out += "{\"meter_id\":\"";
  out += r.meter_id;  // validated to [A-Za-z0-9_.:-] at start-up: no escaping needed
  out += buf;
}

// ---------------------------------------------------------------------------
// Load models.

enum class Profile { kHousehold, kCommercial };

// An appliance that runs for a while once started: `rate_per_hour(hour)` is
// how often it starts, `duty` an on/off thermostat cycle while it runs.
struct Appliance {
  double watts = 0;
  double pf = 1.0;
  double run_s = 0;      // how long one use lasts
  double duty_on_s = 0;  // 0 = always on while running; else on/off cycling
  double duty_off_s = 0;
  double remaining_s = 0;  // > 0 while running
  double phase_s = 0;      // position in the duty cycle
};

// A compressor (fridge, cold room) or HVAC unit: always cycling, on/off times
// drawn anew for each cycle.
struct Cycler {
  double watts = 0;
  double pf = 0.8;
  double on_lo = 0, on_hi = 0, off_lo = 0, off_hi = 0;  // seconds
  bool on = false;
  double left_s = 0;
};

class MeterModel {
 public:
  MeterModel(std::string meter_id, Profile profile, std::uint64_t seed, int reset_after)
      : id_(std::move(meter_id)), profile_(profile), rng_(seed), reset_after_(reset_after) {
    nominal_v_ = rng_.uniform(228.0, 233.0);
    freq_ = 50.0 + rng_.normal(0.01);
    if (profile_ == Profile::kHousehold) {
      base_w_ = rng_.uniform(60, 180);
      energy_ = rng_.uniform(1000, 20000);
      fridge_ = {rng_.uniform(90, 150), 0.75, 12 * 60, 20 * 60, 25 * 60, 40 * 60, false, 0};
      kettle_ = {rng_.uniform(1850, 2200), 1.0, 180, 0, 0, 0, 0};
      oven_ = {rng_.uniform(2000, 2500), 1.0, rng_.uniform(40, 60) * 60, 120, 60, 0, 0};
    } else {
      base_w_ = rng_.uniform(800, 2000);
      energy_ = rng_.uniform(20000, 300000);
      fridge_ = {rng_.uniform(600, 1000), 0.8, 8 * 60, 15 * 60, 10 * 60, 20 * 60, false, 0};
      hvac_ = {rng_.uniform(2000, 6000), 0.85, 10 * 60, 20 * 60, 4 * 60, 10 * 60, false, 0};
      kettle_ = {rng_.uniform(1400, 1700), 1.0, 120, 0, 0, 0, 0};  // coffee machine
      lights_w_ = rng_.uniform(1500, 3000);
      it_w_ = rng_.uniform(500, 1500);
    }
    fridge_.left_s = rng_.uniform(0, fridge_.off_hi);  // not all fridges in step
    hvac_.left_s = rng_.uniform(0, hvac_.off_hi);
  }

  const std::string& id() const { return id_; }

  // The reading at `ts_ms`, `dt_s` seconds after the previous one.
  Reading next(std::int64_t ts_ms, double dt_s) {
    const double hour = local_hour(ts_ms);
    const bool weekend = is_weekend(ts_ms);
    double p = 0, s = 0;  // real and apparent power
    auto add = [&](double watts, double pf) {
      p += watts;
      s += watts / pf;
    };
    add(base_w_ * (1 + rng_.normal(0.02)), 0.9);
    add(step(fridge_, dt_s), fridge_.pf);
    if (profile_ == Profile::kHousehold) {
      add(step(kettle_, dt_s, kettle_rate(hour)), 1.0);
      add(step(oven_, dt_s, oven_rate(hour, weekend)), 1.0);
      add(household_lights(hour), 0.95);
    } else {
      const bool open = !weekend && hour >= 8 && hour < 19;
      if (open || hvac_.on) add(step(hvac_, dt_s), hvac_.pf);
      add(step(kettle_, dt_s, open ? 3.0 : 0.0), 1.0);
      double ramp = open ? std::clamp(std::min(hour - 8, 19 - hour) * 2, 0.0, 1.0) : 0.0;
      add(lights_w_ * (0.1 + 0.9 * ramp), 0.95);
      add(it_w_ * (0.3 + 0.7 * ramp) * (1 + rng_.normal(0.05)), 0.92);
    }
    p = std::max(p, 1.0);

    // Mains: slow drift around the nominal voltage, a drop under load, noise.
    drift_v_ = std::clamp(drift_v_ * 0.98 + rng_.normal(0.15), -4.0, 4.0);
    double v = nominal_v_ + drift_v_ - p / 1000 * 0.6 + rng_.normal(0.3);
    v = std::clamp(v, 207.0, 253.0);
    freq_ = std::clamp(50 + (freq_ - 50) * 0.9 + rng_.normal(0.006), 49.95, 50.05);
    double pf = std::clamp(p / s, 0.85, 1.0);

    if (reset_after_ > 0 && count_ == reset_after_) energy_ = 0;  // meter replaced / reset
    ++count_;
    energy_ += p * dt_s / 3.6e6;

    Reading r;
    r.meter_id = id_;
    r.ts_ms = ts_ms;
    r.voltage = v;
    r.power = p;
    r.power_factor = pf;
    r.current = p / (v * pf);
    r.energy = energy_;
    r.frequency = freq_;
    return r;
  }

 private:
  static double local_hour(std::int64_t ts_ms) {
    std::time_t t = static_cast<std::time_t>(ts_ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    return tm.tm_hour + tm.tm_min / 60.0 + tm.tm_sec / 3600.0;
  }
  static bool is_weekend(std::int64_t ts_ms) {
    std::time_t t = static_cast<std::time_t>(ts_ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    return tm.tm_wday == 0 || tm.tm_wday == 6;
  }
  // Kettle starts per hour: breakfast and evening peaks, rarely at night.
  static double kettle_rate(double h) {
    if (h >= 6.5 && h < 9) return 1.5;
    if (h >= 17 && h < 21.5) return 0.8;
    if (h >= 9 && h < 17) return 0.3;
    return 0.03;
  }
  static double oven_rate(double h, bool weekend) {
    if (h >= 17 && h < 19.5) return 0.5;
    if (h >= 11 && h < 13) return weekend ? 0.4 : 0.1;
    return 0.0;
  }
  // Lights, TV, computers: a little in the morning, most in the evening.
  double household_lights(double h) {
    double w = 0;
    if (h >= 6 && h < 8.5) w = 80;
    if (h >= 17 && h < 23.5) w = 150 + 250 * std::sin((h - 17) / 6.5 * std::numbers::pi);
    return w * (1 + rng_.normal(0.05));
  }

  double step(Cycler& c, double dt) {
    c.left_s -= dt;
    if (c.left_s <= 0) {
      c.on = !c.on;
      c.left_s = c.on ? rng_.uniform(c.on_lo, c.on_hi) : rng_.uniform(c.off_lo, c.off_hi);
    }
    return c.on ? c.watts * (1 + rng_.normal(0.02)) : 0.0;
  }

  double step(Appliance& a, double dt, double rate_per_hour) {
    if (a.remaining_s <= 0) {
      // Poisson starts: P(start within dt) = 1 - exp(-rate·dt).
      if (rate_per_hour > 0 && rng_.chance(1 - std::exp(-rate_per_hour * dt / 3600))) {
        a.remaining_s = a.run_s;
        a.phase_s = 0;
      } else {
        return 0.0;
      }
    }
    a.remaining_s -= dt;
    bool on = true;
    if (a.duty_on_s > 0) {
      on = std::fmod(a.phase_s, a.duty_on_s + a.duty_off_s) < a.duty_on_s;
      a.phase_s += dt;
    }
    return on ? a.watts * (1 + rng_.normal(0.01)) : 0.0;
  }

  std::string id_;
  Profile profile_;
  Rng rng_;
  int reset_after_;
  int count_ = 0;
  double nominal_v_ = 230, drift_v_ = 0, freq_ = 50;
  double base_w_ = 100, lights_w_ = 0, it_w_ = 0;
  double energy_ = 0;
  Cycler fridge_, hvac_;
  Appliance kettle_, oven_;
};

// ---------------------------------------------------------------------------
// A keep-alive HTTP/1.1 client with a timeout on every step.

struct HttpResult {
  int status = 0;     // 0 = no answer (connection failed)
  std::string error;  // when status == 0
  std::string body;
  std::optional<int> retry_after_s;
};

class HttpClient {
 public:
  HttpClient(std::string host, std::string port, std::chrono::seconds timeout)
      : host_(std::move(host)), port_(std::move(port)), timeout_(timeout) {}

  HttpResult request(bhttp::verb method, const std::string& target, const std::string& body,
                     const std::string& key) {
    bhttp::request<bhttp::string_body> req{method, target, 11};
    req.set(bhttp::field::host, host_ + ":" + port_);
    req.set(bhttp::field::user_agent, "meterhub-sim");
    req.set(bhttp::field::content_type, "application/json");
    if (!key.empty()) req.set(bhttp::field::authorization, "Bearer " + key);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();

    // A kept-alive connection may have been closed by the server meanwhile
    // (idle timeout, restart): then reconnect once. Re-sending is safe, the
    // server stores a reading only once.
    for (int attempt = 0;; ++attempt) {
      const bool reused = open_;
      HttpResult out;
      if (!open_) {
        if (auto ec = connect()) {
          out.error = "connect: " + ec.message();
          return out;
        }
      }
      stream_.expires_after(timeout_);
      auto ec = run([&](auto h) { bhttp::async_write(stream_, req, h); });
      bhttp::response<bhttp::string_body> res;
      if (!ec) {
        stream_.expires_after(timeout_);
        ec = run([&](auto h) { bhttp::async_read(stream_, buffer_, res, h); });
      }
      if (ec) {
        close();
        if (reused && attempt == 0) continue;
        out.error = ec.message();
        return out;
      }
      if (!res.keep_alive()) close();
      out.status = static_cast<int>(res.result_int());
      out.body = std::move(res.body());
      auto ra = res[bhttp::field::retry_after];
      int secs = 0;
      if (!ra.empty() &&
          std::from_chars(ra.data(), ra.data() + ra.size(), secs).ec == std::errc{}) {
        out.retry_after_s = secs;
      }
      return out;
    }
  }

  void close() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    buffer_.clear();
    open_ = false;
  }

 private:
  error_code connect() {
    error_code ec;
    auto endpoints = resolver_.resolve(host_, port_, ec);
    if (ec) return ec;
    stream_.expires_after(timeout_);
    ec = run([&](auto h) { stream_.async_connect(endpoints, h); });
    if (!ec) {
      stream_.socket().set_option(tcp::no_delay(true), ec);
      open_ = true;
    }
    return ec;
  }

  // Runs one asynchronous operation to completion; tcp_stream's expiry turns
  // a stuck step into an error.
  template <class Start>
  error_code run(Start&& start) {
    error_code result = net::error::would_block;
    start([&result](error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  std::string host_, port_;
  std::chrono::seconds timeout_;
  net::io_context ioc_;
  tcp::resolver resolver_{ioc_};
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
  bool open_ = false;
};

// ---------------------------------------------------------------------------
// Delivery: the bounded buffer, batches, retries and the counters.

struct Counters {
  long long generated = 0;   // readings made
  long long sent = 0;        // readings put on the wire (re-sends included)
  long long acked = 0;       // readings in 201 answers (accepted + duplicates)
  long long accepted = 0;    // ... of which new to the server
  long long duplicates = 0;  // ... of which already stored (a retry whose answer was lost)
  long long retried = 0;     // readings sent again after a failed attempt
  long long dropped = 0;     // evicted from a full buffer, or refused with a 4xx
  long long errors = 0;      // failed requests (no answer, 4xx, 5xx)
  long long requests = 0;
  std::size_t buffered_max = 0;
};

struct Pending {
  Reading reading;
  int attempts = 0;
};

// Finds the integer after "name": in a small JSON object we produced the
// shape of (the server's {"accepted":N,"duplicates":M}).
long long json_int(std::string_view body, std::string_view name) {
  std::string key = "\"" + std::string(name) + "\":";
  auto pos = body.find(key);
  if (pos == std::string_view::npos) return 0;
  pos += key.size();
  while (pos < body.size() && body[pos] == ' ') ++pos;
  long long v = 0;
  std::from_chars(body.data() + pos, body.data() + body.size(), v);
  return v;
}

class Sender {
 public:
  Sender(HttpClient& http, std::string prefix, std::size_t batch, std::size_t max_buffer,
         double max_backoff_s)
      : http_(http),
        prefix_(std::move(prefix)),
        batch_(batch),
        max_buffer_(max_buffer),
        max_backoff_(std::chrono::duration<double>(max_backoff_s)) {}

  void set_admin_key(std::string key) { admin_key_ = std::move(key); }
  void add_device_key(std::string meter, std::string key) {
    device_keys_.emplace_back(std::move(meter), std::move(key));
  }

  Counters& counters() { return counters_; }
  std::size_t buffered() const { return buffer_.size(); }
  void close() { http_.close(); }

  void push(Reading r) {
    ++counters_.generated;
    buffer_.push_back({std::move(r), 0});
    if (buffer_.size() > max_buffer_) {
      buffer_.pop_front();
      ++counters_.dropped;
      if (!warned_full_) log("buffer full (%zu readings): dropping the oldest", max_buffer_);
      warned_full_ = true;
    }
    counters_.buffered_max = std::max(counters_.buffered_max, buffer_.size());
  }

  // Sends buffered readings until `until` or until `abort_at` signals have
  // arrived, waiting out backoffs meanwhile. An empty buffer ends it early
  // unless `idle` (then it sleeps until `until`, the next tick).
  void pump(Steady::time_point until, int abort_at, bool idle) {
    while (g_signals < abort_at) {
      auto now = Steady::now();
      if (now >= until) return;
      if (buffer_.empty()) {
        if (idle) sleep_until(until, abort_at);
        return;
      }
      if (now < retry_at_) {
        sleep_until(std::min(retry_at_, until), abort_at);
        continue;
      }
      send_batch();
    }
  }

  // POST /api/v1/meters for each id; 201 and 409 (exists) are both fine.
  // Retries while the server is unreachable or busy; false if refused.
  bool register_meters(const std::vector<std::string>& ids, int interval_s) {
    for (const auto& id : ids) {
      for (;;) {
        if (g_signals > 0) return false;
        std::string body = "{\"meter_id\":\"" + id + "\",\"name\":\"Simulated " + id +
                           "\",\"interval_s\":" + std::to_string(interval_s) + "}";
        auto res = http_.request(bhttp::verb::post, prefix_ + "/api/v1/meters", body, admin_key_);
        if (res.status == 201 || res.status == 409) {
          log("meter %s %s", id.c_str(), res.status == 201 ? "registered" : "already registered");
          break;
        }
        if (res.status != 0 && res.status != 408 && res.status != 429 && res.status < 500) {
          log("registering %s: HTTP %d %s", id.c_str(), res.status, res.body.c_str());
          return false;
        }
        auto wait = backoff(res);
        log("registering %s: %s; retrying in %.1f s", id.c_str(),
            res.status ? ("HTTP " + std::to_string(res.status)).c_str() : res.error.c_str(),
            std::chrono::duration<double>(wait).count());
        sleep_until(Steady::now() + wait, 1);
      }
    }
    backoff_ = {};
    return true;
  }

 private:
  const std::string& key_for(const std::string& meter) const {
    if (!admin_key_.empty()) return admin_key_;
    for (const auto& [m, k] : device_keys_) {
      if (m == meter) return k;
    }
    return admin_key_;  // empty: keyless (a server with --auto-register)
  }

  static void sleep_until(Steady::time_point tp, int abort_at) {
    while (g_signals < abort_at) {
      auto now = Steady::now();
      if (now >= tp) return;
      std::this_thread::sleep_for(std::min<Steady::duration>(tp - now, milliseconds(50)));
    }
  }

  // The wait before the next attempt: Retry-After when the server gave one,
  // else exponential backoff from 0.25 s up to --max-backoff.
  Steady::duration backoff(const HttpResult& res) {
    if (res.retry_after_s) {
      return std::chrono::seconds(std::clamp(*res.retry_after_s, 0, 3600));
    }
    backoff_ = backoff_ == Steady::duration{} ? duration_cast<Steady::duration>(milliseconds(250))
                                              : backoff_ * 2;
    backoff_ = std::min(backoff_, duration_cast<Steady::duration>(max_backoff_));
    return backoff_;
  }

  // One request: up to --batch readings from the front of the buffer that use
  // the same key (with one admin key: simply the oldest ones).
  void send_batch() {
    const std::string key = key_for(buffer_.front().reading.meter_id);
    std::vector<std::size_t> picked;
    for (std::size_t i = 0; i < buffer_.size() && picked.size() < batch_; ++i) {
      if (key_for(buffer_[i].reading.meter_id) == key) picked.push_back(i);
    }
    std::string body = "{\"readings\":[";
    for (std::size_t n = 0; n < picked.size(); ++n) {
      if (n) body += ',';
      Pending& p = buffer_[picked[n]];
      append_json(body, p.reading);
      if (p.attempts++ > 0) ++counters_.retried;
    }
    body += "]}";
    counters_.sent += static_cast<long long>(picked.size());
    ++counters_.requests;

    auto res = http_.request(bhttp::verb::post, prefix_ + "/api/v1/readings", body, key);
    if (res.status == 201) {
      long long acc = json_int(res.body, "accepted"), dup = json_int(res.body, "duplicates");
      counters_.accepted += acc;
      counters_.duplicates += dup;
      counters_.acked += acc + dup;
      if (down_) log("server back: %zu readings buffered, sending", buffer_.size());
      down_ = false;
      backoff_ = {};
      erase(picked);
      return;
    }
    ++counters_.errors;
    if (res.status == 0 || res.status == 408 || res.status == 429 || res.status >= 500) {
      auto wait = backoff(res);
      retry_at_ = Steady::now() + wait;
      if (!down_ || res.status == 429) {
        log("%s: keeping %zu readings, retrying in %.1f s",
            res.status ? ("HTTP " + std::to_string(res.status)).c_str() : res.error.c_str(),
            buffer_.size(), std::chrono::duration<double>(wait).count());
      }
      down_ = res.status != 429;
      return;
    }
    // Any other 4xx: the same bytes would be refused again. Drop and say why.
    log("HTTP %d, dropping %zu readings: %s", res.status, picked.size(), res.body.c_str());
    counters_.dropped += static_cast<long long>(picked.size());
    erase(picked);
  }

  void erase(const std::vector<std::size_t>& picked) {  // picked is ascending
    for (auto it = picked.rbegin(); it != picked.rend(); ++it) {
      buffer_.erase(buffer_.begin() + static_cast<std::ptrdiff_t>(*it));
    }
  }

  HttpClient& http_;
  std::string prefix_;
  std::size_t batch_;
  std::size_t max_buffer_;
  std::chrono::duration<double> max_backoff_;
  std::string admin_key_;
  std::vector<std::pair<std::string, std::string>> device_keys_;
  std::deque<Pending> buffer_;
  Counters counters_;
  Steady::time_point retry_at_{};
  Steady::duration backoff_{};
  bool down_ = false;
  bool warned_full_ = false;
};

// ---------------------------------------------------------------------------
// MQTT delivery (--mqtt): the same buffer and counters, one message per meter
// per batch, QoS 1, acknowledged on PUBACK. libmosquitto is driven from this
// thread with mosquitto_loop(); a lost connection discards the client (so it
// cannot re-send on its own behind our back), puts the unacknowledged readings
// back at the front of the buffer and reconnects after a backoff.

struct MqttUrl {
  std::string host;
  int port = 1883;
  std::string user, pass;
  bool has_pass = false;
};

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<MqttUrl> parse_mqtt_url(std::string_view s) {
  constexpr std::string_view kScheme = "mqtt://";
  if (!s.starts_with(kScheme)) return std::nullopt;
  s.remove_prefix(kScheme.size());
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  if (s.find('/') != std::string_view::npos) return std::nullopt;
  MqttUrl u;
  if (auto at = s.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = s.substr(0, at);
    s.remove_prefix(at + 1);
    auto c = cred.find(':');
    u.user = percent_decode(cred.substr(0, c));
    if (c != std::string_view::npos) {
      u.pass = percent_decode(cred.substr(c + 1));
      u.has_pass = true;
    }
    if (u.user.empty()) return std::nullopt;
  }
  auto colon = s.rfind(':');
  if (colon != std::string_view::npos && s.find(']', colon) == std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (std::from_chars(port.data(), port.data() + port.size(), u.port).ptr !=
            port.data() + port.size() ||
        u.port < 1 || u.port > 65535) {
      return std::nullopt;
    }
    s = s.substr(0, colon);
  }
  if (s.size() > 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  if (s.empty()) return std::nullopt;
  u.host = std::string(s);
  return u;
}

class MqttSender {
 public:
  MqttSender(MqttUrl url, std::string topic_prefix, std::size_t batch, std::size_t max_buffer,
             double max_backoff_s, int timeout_s)
      : url_(std::move(url)),
        topic_prefix_(std::move(topic_prefix)),
        batch_(batch),
        max_buffer_(max_buffer),
        max_backoff_(std::chrono::duration<double>(max_backoff_s)),
        timeout_(timeout_s),
        client_id_("meterhub-sim-" + std::to_string(::getpid())) {
    mosquitto_lib_init();
  }
  ~MqttSender() {
    drop_client();
    mosquitto_lib_cleanup();
  }
  MqttSender(const MqttSender&) = delete;
  MqttSender& operator=(const MqttSender&) = delete;

  Counters& counters() { return counters_; }
  // Readings not yet acknowledged: waiting, and published without a PUBACK.
  std::size_t buffered() const { return buffer_.size() + inflight_readings_; }

  void push(Reading r) {
    ++counters_.generated;
    buffer_.push_back({std::move(r), 0});
    if (buffered() > max_buffer_ && !buffer_.empty()) {
      buffer_.pop_front();
      ++counters_.dropped;
      if (!warned_full_) log("buffer full (%zu readings): dropping the oldest", max_buffer_);
      warned_full_ = true;
    }
    counters_.buffered_max = std::max(counters_.buffered_max, buffered());
  }

  // As Sender::pump: publishes and waits for PUBACKs until `until` or
  // `abort_at` signals; with nothing left to acknowledge it returns early
  // unless `idle` (then it keeps the connection serviced until `until`).
  void pump(Steady::time_point until, int abort_at, bool idle) {
    while (g_signals < abort_at) {
      auto now = Steady::now();
      if (now >= until) return;
      if (buffered() == 0 && !idle) return;
      if (!mosq_) {
        if (now < retry_at_) {
          sleep_until(std::min(retry_at_, until), abort_at);
          continue;
        }
        connect();
        continue;
      }
      if (!connected_ && now >= connect_deadline_) {
        fail("no CONNACK from the broker");
        continue;
      }
      while (connected_ && mosq_ && !buffer_.empty() && inflight_.size() < kMaxInflight) {
        publish_one();
      }
      if (!mosq_) continue;
      auto left = duration_cast<milliseconds>(until - Steady::now()).count();
      int rc = mosquitto_loop(mosq_, static_cast<int>(std::clamp<long long>(left, 1, 50)), 1);
      if (!failure_.empty()) {
        fail(failure_);
      } else if (rc != MOSQ_ERR_SUCCESS) {
        fail(rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc));
      }
    }
  }

  // A clean goodbye to the broker (DISCONNECT), then the client is freed.
  void close() {
    if (mosq_ && connected_) {
      mosquitto_disconnect(mosq_);
      mosquitto_loop(mosq_, 10, 1);
    }
    drop_client();
  }

 private:
  static constexpr std::size_t kMaxInflight = 20;  // libmosquitto's default window

  struct Message {
    std::uint64_t seq = 0;
    std::vector<Pending> readings;
  };

  static void sleep_until(Steady::time_point tp, int abort_at) {
    while (g_signals < abort_at) {
      auto now = Steady::now();
      if (now >= tp) return;
      std::this_thread::sleep_for(std::min<Steady::duration>(tp - now, milliseconds(50)));
    }
  }

  void connect() {
    failure_.clear();
    connected_ = false;
    mosq_ = mosquitto_new(client_id_.c_str(), true, this);
    if (!mosq_) {
      fail("mosquitto_new failed");
      return;
    }
    mosquitto_connect_callback_set(mosq_, &MqttSender::on_connect);
    mosquitto_disconnect_callback_set(mosq_, &MqttSender::on_disconnect);
    mosquitto_publish_callback_set(mosq_, &MqttSender::on_publish);
    if (!url_.user.empty()) {
      mosquitto_username_pw_set(mosq_, url_.user.c_str(),
                                url_.has_pass ? url_.pass.c_str() : nullptr);
    }
    connect_deadline_ = Steady::now() + timeout_;
    int rc = mosquitto_connect(mosq_, url_.host.c_str(), url_.port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
      fail(std::string("connect: ") +
           (rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc)));
    }
  }

  static void on_connect(mosquitto*, void* obj, int rc) {
    auto* self = static_cast<MqttSender*>(obj);
    if (rc != 0) {
      self->failure_ = std::string("broker refused the connection: ") + mosquitto_connack_string(rc);
      return;
    }
    self->connected_ = true;
    if (self->down_) log("broker back: %zu readings buffered, publishing", self->buffered());
    self->down_ = false;
    self->backoff_ = {};
  }

  static void on_disconnect(mosquitto*, void* obj, int rc) {
    auto* self = static_cast<MqttSender*>(obj);
    if (rc != 0 && self->failure_.empty()) self->failure_ = "connection lost";
  }

  static void on_publish(mosquitto*, void* obj, int mid) {
    auto* self = static_cast<MqttSender*>(obj);
    auto it = self->inflight_.find(mid);
    if (it == self->inflight_.end()) return;
    auto n = static_cast<long long>(it->second.readings.size());
    self->counters_.acked += n;
    self->counters_.accepted += n;  // the broker has it; duplicates are not reported back
    self->inflight_readings_ -= it->second.readings.size();
    self->inflight_.erase(it);
  }

  // One message: up to --batch readings of the oldest buffered reading's meter.
  void publish_one() {
    const std::string meter = buffer_.front().reading.meter_id;
    std::vector<std::size_t> picked;
    for (std::size_t i = 0; i < buffer_.size() && picked.size() < batch_; ++i) {
      if (buffer_[i].reading.meter_id == meter) picked.push_back(i);
    }
    std::string body = "{\"readings\":[";
    for (std::size_t n = 0; n < picked.size(); ++n) {
      if (n) body += ',';
      append_json(body, buffer_[picked[n]].reading);
    }
    body += "]}";
    const std::string topic = topic_prefix_ + "/" + meter + "/readings";
    int mid = 0;
    int rc = mosquitto_publish(mosq_, &mid, topic.c_str(), static_cast<int>(body.size()),
                               body.data(), 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
      fail(std::string("publish: ") +
           (rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc)));
      return;
    }
    Message msg{next_seq_++, {}};
    for (std::size_t i : picked) {
      Pending& p = buffer_[i];
      if (p.attempts++ > 0) ++counters_.retried;
      msg.readings.push_back(std::move(p));
    }
    for (auto it = picked.rbegin(); it != picked.rend(); ++it) {
      buffer_.erase(buffer_.begin() + static_cast<std::ptrdiff_t>(*it));
    }
    counters_.sent += static_cast<long long>(msg.readings.size());
    ++counters_.requests;
    inflight_readings_ += msg.readings.size();
    inflight_.emplace(mid, std::move(msg));
  }

  // The connection is gone or never came: unacknowledged readings go back to
  // the front of the buffer, oldest first, and the next attempt waits.
  void fail(std::string why) {  // by value: it may be failure_, which drop_client() clears
    ++counters_.errors;
    std::vector<Message*> msgs;
    for (auto& [mid, m] : inflight_) msgs.push_back(&m);
    std::sort(msgs.begin(), msgs.end(), [](auto* a, auto* b) { return a->seq > b->seq; });
    for (Message* m : msgs) {  // newest first, each pushed to the front
      for (auto it = m->readings.rbegin(); it != m->readings.rend(); ++it) {
        buffer_.push_front(std::move(*it));
      }
    }
    inflight_.clear();
    inflight_readings_ = 0;
    drop_client();
    backoff_ = backoff_ == Steady::duration{} ? duration_cast<Steady::duration>(milliseconds(250))
                                              : backoff_ * 2;
    backoff_ = std::min(backoff_, duration_cast<Steady::duration>(max_backoff_));
    retry_at_ = Steady::now() + backoff_;
    if (!down_) {
      log("mqtt %s:%d: %s; keeping %zu readings, retrying in %.1f s", url_.host.c_str(), url_.port,
          why.c_str(), buffered(), std::chrono::duration<double>(backoff_).count());
    }
    down_ = true;
  }

  void drop_client() {
    if (mosq_) mosquitto_destroy(mosq_);
    mosq_ = nullptr;
    connected_ = false;
    failure_.clear();
  }

  MqttUrl url_;
  std::string topic_prefix_;
  std::size_t batch_;
  std::size_t max_buffer_;
  std::chrono::duration<double> max_backoff_;
  std::chrono::seconds timeout_;
  std::string client_id_;
  mosquitto* mosq_ = nullptr;
  bool connected_ = false;
  std::string failure_;  // set by a callback, acted on after mosquitto_loop()
  Steady::time_point connect_deadline_{};
  std::deque<Pending> buffer_;
  std::map<int, Message> inflight_;  // by message id, until its PUBACK
  std::size_t inflight_readings_ = 0;
  std::uint64_t next_seq_ = 0;
  Counters counters_;
  Steady::time_point retry_at_{};
  Steady::duration backoff_{};
  bool down_ = false;
  bool warned_full_ = false;
};

// ---------------------------------------------------------------------------

bool valid_meter_id(std::string_view id) {
  if (id.empty() || id.size() > 64 || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

struct Url {
  std::string host, port, prefix;
};

std::optional<Url> parse_url(std::string_view s) {
  constexpr std::string_view kScheme = "http://";
  if (!s.starts_with(kScheme)) return std::nullopt;
  s.remove_prefix(kScheme.size());
  Url u;
  auto slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) u.prefix = std::string(s.substr(slash));
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  auto colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    u.port = std::string(authority.substr(colon + 1));
  } else {
    u.host = std::string(authority);
    u.port = "80";
  }
  if (u.host.size() > 2 && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  return u;
}

void print_summary(const Counters& c, std::size_t buffered, bool json) {
  if (json) {
    std::printf(
        "{\"generated\":%lld,\"sent\":%lld,\"acked\":%lld,\"accepted\":%lld,\"duplicates\":%lld,"
        "\"retried\":%lld,\"buffered\":%zu,\"buffered_max\":%zu,\"dropped\":%lld,"
        "\"errors\":%lld,\"requests\":%lld}\n",
        c.generated, c.sent, c.acked, c.accepted, c.duplicates, c.retried, buffered, c.buffered_max,
        c.dropped, c.errors, c.requests);
  } else {
    std::printf(
        "summary: generated %lld, sent %lld, acked %lld (accepted %lld, duplicates %lld), "
        "retried %lld, buffered %zu (max %zu), dropped %lld, errors %lld, requests %lld\n",
        c.generated, c.sent, c.acked, c.accepted, c.duplicates, c.retried, buffered, c.buffered_max,
        c.dropped, c.errors, c.requests);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "meterhub-sim: simulated smart meters (households and small businesses) posting\n"
      "realistic readings to a meterhub server over HTTP, or through an MQTT broker\n"
      "with --mqtt, with batching and offline buffering. Plain http:// and mqtt://\n"
      "only (no HTTPS, no mqtts://: use a local TLS-terminating proxy)."};
  std::string url = "http://127.0.0.1:8000";
  std::string mqtt_url, topic_prefix = "meterhub";
  int meters = 3;
  std::string prefix = "sim-";
  std::string profile_name = "mixed";
  double interval = 10;
  double duration = 0;
  std::size_t batch = 50;
  std::uint64_t seed = 1;
  std::string key, keys_file;
  bool do_register = false;
  std::size_t max_buffer = 100000;
  double max_backoff = 10;
  double flush_timeout = 10;
  int reset_after = 0;
  int timeout_s = 5;
  bool dry_run = false;
  double start_s = 0;
  bool json = false;

  app.add_option("--url", url,
                 "server base URL (http://HOST:PORT[/prefix]); with --mqtt only used by "
                 "--register")
      ->capture_default_str();
  app.add_option("--mqtt", mqtt_url,
                 "publish to this MQTT broker instead (mqtt://[user[:pass]@]HOST[:PORT], port "
                 "1883): one QoS 1 message per meter per batch on "
                 "TOPIC-PREFIX/{meter_id}/readings, acknowledged on PUBACK. The server must "
                 "subscribe to the broker (meterhub --mqtt) and know the meters: --register "
                 "(via --url), `meterhub meter add`, or a server with --auto-register. In the "
                 "summary acked = accepted = readings PUBACKed by the broker (which says nothing "
                 "of what the server stored; duplicates are not reported), requests = "
                 "messages");
  app.add_option("--mqtt-topic-prefix", topic_prefix,
                 "with --mqtt: topics are PREFIX/{meter_id}/readings")
      ->capture_default_str();
  app.add_option("--meters", meters, "number of simulated meters")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--prefix", prefix, "meter ids are PREFIX01, PREFIX02, …")->capture_default_str();
  app.add_option("--profile", profile_name,
                 "household, commercial, or mixed (every third meter commercial)")
      ->check(CLI::IsMember({"household", "commercial", "mixed"}))
      ->capture_default_str();
  app.add_option("--interval", interval, "seconds between readings of a meter")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--duration", duration, "seconds to run; 0 = until SIGINT, then flush")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--batch", batch,
                 "at most this many readings per request (per MQTT message: of one meter)")
      ->check(CLI::Range(1, 5000))
      ->capture_default_str();
  app.add_option("--seed", seed, "random seed (same seed, same choices)")->capture_default_str();
  app.add_option("--key", key,
                 "an admin API token (writes every registered meter), or a device key with "
                 "--meters 1; none for a server with --auto-register");
  app.add_option("--keys-file", keys_file,
                 "file of 'meter_id device_key' lines: simulate exactly these meters")
      ->check(CLI::ExistingFile);
  app.add_flag("--register", do_register,
               "create the meters first (POST /api/v1/meters with the admin --key; existing "
               "ones are fine)");
  app.add_option("--max-buffer", max_buffer,
                 "readings kept while the server (or broker) is unreachable; with --mqtt "
                 "including those published but not yet acknowledged")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
      ->capture_default_str();
  app.add_option("--max-backoff", max_backoff, "longest wait between retries, seconds")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--flush-timeout", flush_timeout,
                 "at the end, keep trying to send buffered readings this long")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--reset-after", reset_after,
                 "reset each energy counter to 0 once, after this many readings (0 = never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--timeout", timeout_s,
                 "seconds for each connect, send and answer (MQTT: until CONNACK)")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_flag("--dry-run", dry_run,
               "send nothing: print the readings (one JSON object a line) for --duration "
               "seconds of simulated time, at once");
  app.add_option("--start", start_s, "with --dry-run: epoch seconds of the first reading");
  app.add_flag("--json", json, "print the summary as one JSON object");
  app.add_flag("-q,--quiet", g_quiet, "no progress messages on stderr");
  CLI11_PARSE(app, argc, argv);

  // Meters: from the keys file, else PREFIX01…
  std::vector<std::pair<std::string, std::string>> keyed;
  if (!keys_file.empty()) {
    std::ifstream in(keys_file);
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      std::istringstream fields(line);
      std::string id, k;
      if (!(fields >> id) || id.starts_with('#')) continue;
      if (!(fields >> k)) {
        std::fprintf(stderr, "meterhub-sim: %s:%d: expected 'meter_id key'\n", keys_file.c_str(),
                     lineno);
        return 1;
      }
      keyed.emplace_back(id, k);
    }
    if (keyed.empty()) {
      std::fprintf(stderr, "meterhub-sim: %s lists no meters\n", keys_file.c_str());
      return 1;
    }
  }
  std::vector<std::string> ids;
  if (!keyed.empty()) {
    for (const auto& [id, k] : keyed) ids.push_back(id);
  } else {
    for (int i = 1; i <= meters; ++i) {
      char num[16];
      std::snprintf(num, sizeof num, "%02d", i);
      ids.push_back(prefix + num);
    }
  }
  for (const auto& id : ids) {
    if (!valid_meter_id(id)) {
      std::fprintf(stderr, "meterhub-sim: invalid meter id '%s' (1-64 of A-Z a-z 0-9 _ . : -)\n",
                   id.c_str());
      return 1;
    }
  }
  if (do_register && key.empty()) {
    std::fprintf(stderr, "meterhub-sim: --register needs an admin token in --key\n");
    return 1;
  }

  std::vector<MeterModel> models;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    Profile p = profile_name == "commercial"  ? Profile::kCommercial
                : profile_name == "household" ? Profile::kHousehold
                : (i % 3 == 2)                ? Profile::kCommercial
                                              : Profile::kHousehold;
    // splitmix-style mixing, so meters of nearby seeds are unrelated
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ULL + (i + 1) * 0xBF58476D1CE4E5B9ULL;
    models.emplace_back(ids[i], p, s ^ (s >> 31), reset_after);
  }
  const auto interval_ms = static_cast<std::int64_t>(std::llround(interval * 1000));

  if (dry_run) {
    if (duration <= 0) {
      std::fprintf(stderr, "meterhub-sim: --dry-run needs --duration\n");
      return 1;
    }
    auto t0 = start_s > 0
                  ? static_cast<std::int64_t>(std::llround(start_s * 1000))
                  : duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                        .count();
    for (std::int64_t k = 0; static_cast<double>(k) * interval < duration; ++k) {
      for (auto& m : models) {
        std::string line;
        append_json(line, m.next(t0 + k * interval_ms, interval));
        std::puts(line.c_str());
      }
    }
    return 0;
  }

  auto parsed = parse_url(url);
  if (!parsed) {
    std::fprintf(stderr, "meterhub-sim: --url must look like http://HOST:PORT (got '%s')\n",
                 url.c_str());
    return 1;
  }
  std::optional<MqttUrl> mqtt;
  if (!mqtt_url.empty()) {
    mqtt = parse_mqtt_url(mqtt_url);
    if (!mqtt) {
      std::fprintf(stderr,
                   "meterhub-sim: --mqtt must look like mqtt://[user[:pass]@]HOST[:PORT] (got "
                   "'%s')\n",
                   mqtt_url.c_str());
      return 1;
    }
    if (topic_prefix.empty() || topic_prefix.back() == '/' ||
        topic_prefix.find_first_of("+#") != std::string::npos) {
      std::fprintf(stderr,
                   "meterhub-sim: --mqtt-topic-prefix must be non-empty, without + # or a "
                   "trailing /\n");
      return 1;
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  HttpClient http(parsed->host, parsed->port, std::chrono::seconds(timeout_s));
  Sender sender(http, parsed->prefix, batch, max_buffer, max_backoff);
  sender.set_admin_key(key);
  for (auto& [id, k] : keyed) sender.add_device_key(id, k);

  log("%zu meters -> %s every %g s%s", models.size(), mqtt ? mqtt_url.c_str() : url.c_str(),
      interval, duration > 0 ? "" : " until Ctrl-C");
  if (do_register && !sender.register_meters(
                         ids, static_cast<int>(std::clamp(std::lround(interval), 1L, 86400L)))) {
    log("meters not registered; stopping");
    print_summary(sender.counters(), sender.buffered(), json);
    return 1;
  }

  // Readings are stamped with their scheduled time, so the timestamps of a
  // meter are evenly spaced and unique even when sending falls behind.
  auto simulate = [&](auto& out) {
    const auto t0 =
        duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const auto start = Steady::now();
    auto last_status = start;
    for (std::int64_t k = 0; g_signals == 0; ++k) {
      if (duration > 0 && static_cast<double>(k) * interval >= duration) break;
      auto tick = start + milliseconds(k * interval_ms);
      out.pump(tick, 1, true);
      if (g_signals > 0) break;
      for (auto& m : models) out.push(m.next(t0 + k * interval_ms, interval));
      if (Steady::now() - last_status >= std::chrono::seconds(60)) {
        last_status = Steady::now();
        const auto& c = out.counters();
        log("%lld readings generated, %lld acked, %zu buffered", c.generated, c.acked,
            out.buffered());
      }
    }
    // Final flush: whatever is buffered, for at most --flush-timeout.
    out.pump(Steady::now() +
                 duration_cast<Steady::duration>(std::chrono::duration<double>(flush_timeout)),
             2, false);
    if (out.buffered() > 0) log("%zu readings could not be sent", out.buffered());
    out.close();
    print_summary(out.counters(), out.buffered(), json);
    const auto& c = out.counters();
    return out.buffered() == 0 && c.dropped == 0 ? 0 : 3;
  };
  if (mqtt) {
    http.close();
    if (!keyed.empty()) log("--keys-file: over MQTT only its meter ids are used (no keys)");
    MqttSender mqtt_sender(*mqtt, topic_prefix, batch, max_buffer, max_backoff, timeout_s);
    return simulate(mqtt_sender);
  }
  return simulate(sender);
}

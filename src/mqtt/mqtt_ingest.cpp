#include "mqtt/mqtt_ingest.hpp"

#include <mosquitto.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>
#include <future>

#include "core/time.hpp"

namespace meterhub::mqtt {
namespace {

constexpr double kLogBurst = 5, kLogPerSecond = 2;

// libmosquitto keeps one global init count; the first MqttIngest starts it.
struct LibInit {
  LibInit() { mosquitto_lib_init(); }
  ~LibInit() { mosquitto_lib_cleanup(); }
};

std::string default_client_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "meterhub";
  // MQTT 3.1.1 servers must accept 23 bytes; most accept far more.
  return std::string("meterhub-") + host;
}

}  // namespace

core::Result<std::unique_ptr<MqttIngest>> MqttIngest::create(MqttOptions opts,
                                                             ingest::Ingest& ingest,
                                                             hub::Hub& hub) {
  static LibInit lib;
  auto zone = query::TimeZone::locate(opts.timezone);
  if (!zone) return std::unexpected(zone.error());
  if (opts.client_id.empty()) opts.client_id = default_client_id();
  std::unique_ptr<MqttIngest> self(new MqttIngest(std::move(opts), ingest, hub, *zone));
  self->mosq_ = mosquitto_new(self->opts_.client_id.c_str(), /*clean_session=*/false, self.get());
  if (!self->mosq_) return core::fail("mqtt", "mosquitto_new failed (client id?)");
  mosquitto_threaded_set(self->mosq_, true);  // our network thread + stop() from another
  mosquitto_int_option(self->mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_connect_callback_set(self->mosq_, &MqttIngest::on_connect);
  mosquitto_disconnect_callback_set(self->mosq_, &MqttIngest::on_disconnect);
  mosquitto_message_callback_set(self->mosq_, &MqttIngest::on_message);
  mosquitto_subscribe_callback_set(self->mosq_, &MqttIngest::on_subscribe);
  const auto& b = self->opts_.broker;
  if (!b.username.empty() &&
      mosquitto_username_pw_set(self->mosq_, b.username.c_str(),
                                b.password.empty() ? nullptr : b.password.c_str()) !=
          MOSQ_ERR_SUCCESS)
    return core::fail("mqtt", "cannot set the MQTT user name and password");
  if (b.tls) {
    int rc;
    if (self->opts_.cafile.empty()) {
      rc = mosquitto_int_option(self->mosq_, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    } else {
      rc = mosquitto_tls_set(self->mosq_, self->opts_.cafile.c_str(), nullptr, nullptr, nullptr,
                             nullptr);
    }
    if (rc != MOSQ_ERR_SUCCESS)
      return core::fail("mqtt", std::string("cannot set up MQTT TLS: ") + mosquitto_strerror(rc));
  }
  return self;
}

MqttIngest::MqttIngest(MqttOptions opts, ingest::Ingest& ingest, hub::Hub& hub,
                       query::TimeZone zone)
    : opts_(std::move(opts)), ingest_(ingest), hub_(hub), zone_(zone), router_(zone_) {}

MqttIngest::~MqttIngest() {
  stop();
  if (mosq_) mosquitto_destroy(mosq_);
}

core::Result<void> MqttIngest::start() {
  const auto& b = opts_.broker;
  int rc = mosquitto_connect_async(mosq_, b.host.c_str(), b.port,
                                   static_cast<int>(opts_.keepalive.count()));
  if (rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_CONN_REFUSED) {
    // Broker not reachable yet: the loop thread keeps trying (backoff).
    spdlog::warn("mqtt: cannot connect to {}:{} yet ({}); retrying", b.host, b.port,
                 rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc));
  } else if (rc == MOSQ_ERR_TLS) {
    // The TLS handshake failed (on a fast link it runs inside connect_async),
    // e.g. the broker's certificate does not verify against --mqtt-cafile.
    // Retried like an unreachable broker instead of stopping meterhub: it
    // depends on timing whether this shows here or later in the loop thread,
    // and the broker's certificate may be fixed while meterhub runs.
    spdlog::warn(
        "mqtt: TLS handshake with {}:{} failed ({}; certificate not trusted by --mqtt-cafile or "
        "host name mismatch?); retrying",
        b.host, b.port, mosquitto_strerror(rc));
  } else if (rc != MOSQ_ERR_SUCCESS) {
    return core::fail("mqtt",
                      std::string("cannot connect to the MQTT broker: ") + mosquitto_strerror(rc));
  }
  started_ = true;
  thread_ = std::thread([this] { run(); });
  spdlog::info("mqtt: client '{}' for {}://{}:{}, topics {}", opts_.client_id,
               b.tls ? "mqtts" : "mqtt", b.host, b.port, fmt::join(opts_.topics, " "));
  return {};
}

void MqttIngest::run() {
  const auto& b = opts_.broker;
  const auto min_delay = std::chrono::seconds(std::max(1u, opts_.reconnect_min_s));
  const auto max_delay =
      std::chrono::seconds(std::max(opts_.reconnect_min_s, opts_.reconnect_max_s));
  auto delay = min_delay;
  std::chrono::steady_clock::time_point stop_deadline{};
  for (;;) {
    const int rc = mosquitto_loop(mosq_, 200, 1);
    if (stopping_) {
      // Let the DISCONNECT go out (the loop then reports no connection), for at most 1 s.
      if (stop_deadline == std::chrono::steady_clock::time_point{})
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      if (rc != MOSQ_ERR_SUCCESS || std::chrono::steady_clock::now() > stop_deadline) return;
      continue;
    }
    if (rc == MOSQ_ERR_SUCCESS) continue;
    if (connected_.exchange(false)) delay = min_delay;
    // Anything else: not connected yet, connection lost, or an error
    // libmosquitto's own loop would give up on (TLS, auth, DNS): retry.
    if (rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST)
      warn_limited("mqtt: connection to {}:{} failed ({}); retrying in {} s", b.host, b.port,
                   rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc),
                   delay.count());
    {
      std::unique_lock lk(stop_mu_);
      if (stop_cv_.wait_for(lk, delay, [this] { return stopping_.load(); })) return;
    }
    delay = std::min(delay * 2, max_delay);
    const int rr = mosquitto_reconnect(mosq_);
    if (rr != MOSQ_ERR_SUCCESS)
      warn_limited("mqtt: cannot reach {}:{} ({}); retrying", b.host, b.port,
                   rr == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rr));
  }
}

void MqttIngest::stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lk(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  mosquitto_disconnect(mosq_);
  // The thread sends the DISCONNECT and leaves (a message callback that is
  // running finishes its commit first).
  if (thread_.joinable()) thread_.join();
  auto s = stats();
  spdlog::info(
      "mqtt: stopped ({} messages: {} readings stored, {} duplicates, {} garbled, {} for another "
      "meter, {} unregistered, {} unknown topics, {} deltas without status, {} dropped)",
      s.messages, s.readings, s.duplicates, s.garbled, s.mismatched, s.unregistered,
      s.unknown_topic, s.no_base, s.dropped);
}

MqttStats MqttIngest::stats() const {
  MqttStats s;
  s.connected = connected_;
  s.messages = messages_;
  s.readings = readings_;
  s.duplicates = duplicates_;
  s.garbled = garbled_;
  s.mismatched = mismatched_;
  s.unregistered = unregistered_;
  s.unknown_topic = unknown_topic_;
  s.no_base = no_base_;
  s.dropped = dropped_;
  s.connects = connects_;
  return s;
}

void MqttIngest::on_connect(struct mosquitto* m, void* p, int rc) {
  auto* self = static_cast<MqttIngest*>(p);
  if (rc != 0) {
    spdlog::warn("mqtt: broker refused the connection: {}", mosquitto_connack_string(rc));
    return;
  }
  ++self->connects_;
  self->connected_ = true;  // the next failure starts the backoff from the minimum
  spdlog::info("mqtt: connected to {}:{}", self->opts_.broker.host, self->opts_.broker.port);
  // With a persistent session the broker remembers the subscriptions; they
  // are renewed anyway (the topics may have changed since the last run).
  std::vector<char*> topics;
  for (auto& t : self->opts_.topics) topics.push_back(t.data());
  int s = mosquitto_subscribe_multiple(m, nullptr, static_cast<int>(topics.size()), topics.data(),
                                       1, 0, nullptr);
  if (s != MOSQ_ERR_SUCCESS) spdlog::warn("mqtt: cannot subscribe: {}", mosquitto_strerror(s));
}

void MqttIngest::on_subscribe(struct mosquitto*, void*, int, int count, const int* granted) {
  int refused = 0;
  for (int i = 0; i < count; ++i) refused += granted[i] > 2 ? 1 : 0;
  if (refused)
    spdlog::warn("mqtt: the broker refused {} of {} topic filters (ACL?)", refused, count);
  spdlog::info("mqtt: subscribed to {} topic filters at QoS 1", count - refused);
}

void MqttIngest::on_disconnect(struct mosquitto*, void* p, int rc) {
  auto* self = static_cast<MqttIngest*>(p);
  if (rc != 0)
    spdlog::warn("mqtt: lost the connection to {}:{} ({}); reconnecting", self->opts_.broker.host,
                 self->opts_.broker.port, mosquitto_strerror(rc));
}

void MqttIngest::on_message(struct mosquitto*, void* p, const struct mosquitto_message* msg) {
  auto* self = static_cast<MqttIngest*>(p);
  std::string_view payload;
  if (msg->payload && msg->payloadlen > 0)
    payload = {static_cast<const char*>(msg->payload), static_cast<std::size_t>(msg->payloadlen)};
  // Nothing may escape into libmosquitto's C code.
  try {
    self->handle(msg->topic ? msg->topic : "", payload);
  } catch (const std::exception& e) {
    ++self->dropped_;
    self->warn_limited("mqtt: message on '{}' dropped: {}", msg->topic ? msg->topic : "", e.what());
  }
}

void MqttIngest::handle(std::string_view topic, std::string_view payload) {
  ++messages_;
  if (payload.size() > opts_.max_payload) {
    ++garbled_;
    warn_limited("mqtt: '{}': payload of {} bytes is over the limit of {}; skipped", topic,
                 payload.size(), opts_.max_payload);
    return;
  }
  codec::DecodeOptions dopts;
  dopts.max_readings = opts_.max_readings;
  dopts.now = core::now_ms();
  dopts.future_tolerance_ms = opts_.future_tolerance_ms;
  auto routed = router_.route(topic, payload, dopts);
  if (!routed) {
    const auto& e = routed.error();
    if (e.code == "unknown_topic") {
      ++unknown_topic_;
      warn_limited("mqtt: '{}': not a meterhub, Tasmota or Shelly topic; skipped", topic);
    } else if (e.code == "meter_mismatch") {
      ++mismatched_;
      warn_limited("mqtt: '{}': {}; skipped", topic, e.message);
    } else {
      ++garbled_;
      warn_limited("mqtt: '{}': {} ({}); skipped", topic, e.message, e.code);
    }
    return;
  }
  if (routed->kind == Routed::Kind::presence) {
    // Tasmota LWT: the online state of the meter "<topic>" and its channels
    // "<topic>:N", for meters the Hub knows (others are left alone).
    spdlog::info("mqtt: Tasmota device '{}' is {}", routed->device,
                 routed->online ? "online" : "offline");
    for (auto& f : hub_.set_online(routed->device, routed->online, dopts.now))
      hub::Hub::deliver(std::move(f));
    return;
  }
  if (routed->no_base) {
    no_base_ += routed->no_base;
    warn_limited(
        "mqtt: '{}': NotifyStatus for {} component(s) without a full status yet (enable the "
        "status topics); skipped",
        topic, routed->no_base);
  }
  if (routed->kind != Routed::Kind::readings || routed->readings.empty()) return;

  // PUBACK already went out (libmosquitto 2.0.x acks before this callback):
  // wait for the commit so at most this one message is acknowledged but not
  // yet durable, and so a slow disk slows the broker's delivery down.
  std::promise<core::Result<ingest::IngestCounts>> committed;
  auto result = committed.get_future();
  const std::size_t n = routed->readings.size();
  if (!ingest_.submit(
          std::move(routed->readings),
          [&committed](core::Result<ingest::IngestCounts> r) { committed.set_value(std::move(r)); },
          opts_.create_meters)) {
    dropped_ += 1;
    warn_limited("mqtt: '{}': the writer is full or stopping; {} readings dropped", topic, n);
    return;
  }
  auto r = result.get();
  if (r) {
    readings_ += r->accepted;
    duplicates_ += r->duplicates;
    return;
  }
  if (r.error().code == "unknown_meter") {
    ++unregistered_;
    warn_limited("mqtt: '{}': {} (register the meter, or run with --auto-register); skipped", topic,
                 r.error().message);
  } else {
    ++dropped_;
    warn_limited("mqtt: '{}': not stored: {}", topic, r.error().message);
  }
}

template <class... Args>
void MqttIngest::warn_limited(const char* fmt, Args&&... args) {
  std::uint64_t suppressed = 0;
  {
    std::lock_guard lock(log_mu_);
    auto now = std::chrono::steady_clock::now();
    log_tokens_ = std::min(
        kLogBurst,
        log_tokens_ + kLogPerSecond * std::chrono::duration<double>(now - log_refill_).count());
    log_refill_ = now;
    if (log_tokens_ < 1) {
      ++log_suppressed_;
      return;
    }
    log_tokens_ -= 1;
    suppressed = std::exchange(log_suppressed_, 0);
  }
  spdlog::warn(fmt::runtime(fmt), std::forward<Args>(args)...);
  if (suppressed) spdlog::warn("mqtt: ({} similar lines suppressed)", suppressed);
}

}  // namespace meterhub::mqtt

#include "app/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>

namespace meterhub::app {
namespace {

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

// "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces).
bool split_listen(const std::string& s, std::string& host, std::uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  const std::string p = s.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long v = std::stoul(p);
  if (v > 65535) return false;
  // Check the address now, before the database is touched.
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
    return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

}  // namespace

ParseOutcome parse_config(int argc, char** argv) {
  Config c;
  CLI::App app{
      "meterhub: stores electricity smart-meter readings and streams them live over "
      "WebSockets.\nWith no subcommand it serves. Every option can also be set as an "
      "environment variable (shown as ENV)."};
  app.set_version_flag("--version", "meterhub 0.1.0");

  std::string listen = "127.0.0.1:8000";
  double request_timeout = 30, ws_stall = 10, ws_idle = 60, shutdown_timeout = 10;
  double future_tolerance = 300;
  long commit_delay_us = 0;
  double retention_raw_days = 90, retention_1m_days = 365, max_power_kw = 1000;
  double offline_after = 0;

  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->envname("METERHUB_LISTEN")
      ->capture_default_str();
  app.add_option("--db", c.db_path,
                 "SQLite database file (created with its directory), or a "
                 "postgresql://user:password@host:port/dbname URL to share one PostgreSQL "
                 "database between several nodes")
      ->envname("METERHUB_DB")
      ->capture_default_str();
  app.add_option("--node-id", c.node_id,
                 "PostgreSQL: this node's name among the nodes of one database "
                 "(default: hostname-pid)")
      ->envname("METERHUB_NODE_ID")
      ->check([](const std::string& v) -> std::string {
        if (v.empty() || v.find_first_of("\t\n ") != std::string::npos)
          return "must be non-empty, without spaces, tabs or newlines";
        return {};
      });
  app.add_option("--pg-connections", c.pg_connections,
                 "PostgreSQL: pooled connections for queries (besides the writer's, the "
                 "listener's and the alert leader's)")
      ->envname("METERHUB_PG_CONNECTIONS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--threads", c.server.threads, "network threads (0 = one per core)")
      ->envname("METERHUB_THREADS")
      ->capture_default_str();
  app.add_option("--query-threads", c.query_threads, "threads for read queries")
      ->envname("METERHUB_QUERY_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error or off")
      ->envname("METERHUB_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", c.log_format,
                 "text, or json: one JSON object per line (ts, level, msg, request_id, ...)")
      ->envname("METERHUB_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--max-body", c.server.max_body, "largest request body in bytes (413 above)")
      ->envname("METERHUB_MAX_BODY")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--max-batch", c.api.max_batch, "most readings in one POST")
      ->envname("METERHUB_MAX_BATCH")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  app.add_option("--max-connections", c.server.max_connections,
                 "open connections (HTTP + WebSocket) before new ones are refused")
      ->envname("METERHUB_MAX_CONNECTIONS")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
      ->capture_default_str();
  app.add_option("--request-timeout", request_timeout,
                 "seconds for a whole request to arrive; also the keep-alive idle limit")
      ->envname("METERHUB_REQUEST_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--future-tolerance", future_tolerance,
                 "seconds a reading's ts may be ahead of the server clock")
      ->envname("METERHUB_FUTURE_TOLERANCE")
      ->check(CLI::Range(0.0, 86400.0 * 366))
      ->capture_default_str();
  app.add_option("--commit-delay-us", commit_delay_us,
                 "extra microseconds the writer waits to gather a bigger group commit")
      ->envname("METERHUB_COMMIT_DELAY_US")
      ->check(CLI::Range(0L, 1000000L))
      ->capture_default_str();
  app.add_option("--ws-queue", c.server.ws_queue,
                 "messages queued per WebSocket before coalescing to the newest")
      ->envname("METERHUB_WS_QUEUE")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--ws-stall-timeout", ws_stall,
                 "seconds one WebSocket send may take before the client is dropped")
      ->envname("METERHUB_WS_STALL_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--ws-idle-timeout", ws_idle,
                 "seconds of silence before a WebSocket is dropped (pinged at half)")
      ->envname("METERHUB_WS_IDLE_TIMEOUT")
      ->check(CLI::Range(0.2, 86400.0))
      ->capture_default_str();
  app.add_flag("--ws-deflate", c.server.ws_deflate,
               "offer permessage-deflate (less bandwidth, ~100 KiB more RAM per socket)")
      ->envname("METERHUB_WS_DEFLATE");
  app.add_option("--shutdown-timeout", shutdown_timeout,
                 "seconds to finish in-flight work on SIGINT/SIGTERM")
      ->envname("METERHUB_SHUTDOWN_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  app.add_option("--web-root", c.web_root,
                 "directory of the dashboard files (default: web/ next to the executable)")
      ->envname("METERHUB_WEB_ROOT");
  app.add_option("--offline-after", offline_after,
                 "seconds without a reading before a meter shows offline (0 = three times its "
                 "usual interval, 60 s until known)")
      ->envname("METERHUB_OFFLINE_AFTER")
      ->check(CLI::Range(0.0, 86400.0 * 365))
      ->capture_default_str();
  app.add_option("--timezone", c.api.default_tz,
                 "IANA time zone of energy periods when a request names none (tz=)")
      ->envname("METERHUB_TIMEZONE")
      ->capture_default_str();
  app.add_option("--retention-raw-days", retention_raw_days,
                 "days raw readings are kept (rollups keep the history); 0 = forever")
      ->envname("METERHUB_RETENTION_RAW_DAYS")
      ->check(CLI::Range(0.0, 365.0 * 1000))
      ->capture_default_str();
  app.add_option("--retention-1m-days", retention_1m_days,
                 "days 1-minute rollups are kept (1-hour rollups stay forever); 0 = forever")
      ->envname("METERHUB_RETENTION_1M_DAYS")
      ->check(CLI::Range(0.0, 365.0 * 1000))
      ->capture_default_str();
  app.add_option("--max-power-kw", max_power_kw,
                 "fastest plausible consumption: a counter rising faster is a glitch, not "
                 "consumption (docs/energy.md)")
      ->envname("METERHUB_MAX_POWER_KW")
      ->check(CLI::Range(0.001, 1e9))
      ->capture_default_str();

  app.add_flag("--public-read", c.auth.public_read,
               "anyone may read history and watch WebSockets without a token (writing still "
               "needs a device key)")
      ->envname("METERHUB_PUBLIC_READ");
  app.add_flag("--auto-register", c.auth.auto_register,
               "lab mode: a reading for a meter without a device key needs no key and creates "
               "the meter (meters with a key always need it)")
      ->envname("METERHUB_AUTO_REGISTER");
  app.add_option("--ip-rate", c.api.ip_rate, "requests per second per client IP (0 = no limit)")
      ->envname("METERHUB_IP_RATE")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--ip-burst", c.api.ip_burst, "burst of requests per client IP")
      ->envname("METERHUB_IP_BURST")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--device-rate", c.api.device_rate,
                 "readings requests per second per meter (0 = no limit)")
      ->envname("METERHUB_DEVICE_RATE")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--device-burst", c.api.device_burst, "burst of readings requests per meter")
      ->envname("METERHUB_DEVICE_BURST")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--max-connections-per-ip", c.server.max_connections_per_ip,
                 "open connections per client IP (0 = no limit)")
      ->envname("METERHUB_MAX_CONNECTIONS_PER_IP")
      ->capture_default_str();
  app.add_option("--cors-origin", c.api.cors_origins,
                 "an origin allowed to call the API from a browser (repeatable; * = any)")
      ->envname("METERHUB_CORS_ORIGIN")
      ->delimiter(',');
  app.add_option("--tls-cert", c.server.tls_cert,
                 "PEM certificate chain: serve HTTPS/WSS (and plain HTTP on the same port)")
      ->envname("METERHUB_TLS_CERT")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", c.server.tls_key, "PEM private key of --tls-cert")
      ->envname("METERHUB_TLS_KEY")
      ->check(CLI::ExistingFile);
  app.add_flag("--tls-only", c.server.tls_only, "refuse plain HTTP/WS when TLS is on")
      ->envname("METERHUB_TLS_ONLY");

  // MQTT ingest (docs/mqtt.md).
  std::string mqtt_url, mqtt_client_id, mqtt_cafile;
  std::vector<std::string> mqtt_topics;
  int mqtt_keepalive = 30;
  app.add_option("--mqtt", mqtt_url,
                 "also take readings from an MQTT broker: mqtt://[user:pass@]host[:port] or "
                 "mqtts://… (docs/mqtt.md)")
      ->envname("METERHUB_MQTT");
  app.add_option("--mqtt-topic", mqtt_topics,
                 "topic filter to subscribe to, repeatable (default: meterhub/+/readings "
                 "tele/+/SENSOR tele/+/LWT +/status/+ +/events/rpc)")
      ->envname("METERHUB_MQTT_TOPIC")
      ->delimiter(',');
  app.add_option("--mqtt-client-id", mqtt_client_id,
                 "MQTT client id of the persistent session (default: meterhub-<hostname>)")
      ->envname("METERHUB_MQTT_CLIENT_ID");
  app.add_option("--mqtt-cafile", mqtt_cafile,
                 "PEM CA certificates for mqtts:// (default: the system's)")
      ->envname("METERHUB_MQTT_CAFILE")
      ->check(CLI::ExistingFile);
  app.add_option("--mqtt-keepalive", mqtt_keepalive, "MQTT keepalive in seconds")
      ->envname("METERHUB_MQTT_KEEPALIVE")
      ->check(CLI::Range(5, 3600))
      ->capture_default_str();

  // Alerts (docs/alerts.md).
  app.add_option("--alert-webhook", c.alert_webhook,
                 "POST every alert raised or cleared to this http:// or https:// URL (retried "
                 "with backoff)")
      ->envname("METERHUB_ALERT_WEBHOOK")
      ->check([](const std::string& u) -> std::string {
        if (u.starts_with("http://") || u.starts_with("https://")) return {};
        return "must start with http:// or https://";
      });

  // Administration without a running server (it works beside one, too).
  Config::Command cmd;
  auto* meter = app.add_subcommand("meter", "register and manage meters (prints device keys)");
  meter->require_subcommand(1);
  auto* m_add = meter->add_subcommand("add", "register a meter and print its device key");
  m_add->add_option("meter_id", cmd.target, "the meter id")->required();
  m_add->add_option("--name", cmd.name, "display name");
  m_add->add_option("--location", cmd.location, "where it is");
  m_add->add_option("--interval", cmd.interval_s, "expected seconds between readings")
      ->check(CLI::Range(1, 86400));
  auto* m_list = meter->add_subcommand("list", "list meters");
  auto* m_rot =
      meter->add_subcommand("rotate-key", "give a meter a new device key (old one stops)");
  m_rot->add_option("meter_id", cmd.target, "the meter id")->required();
  auto* token = app.add_subcommand("token", "create, list and revoke API tokens");
  token->require_subcommand(1);
  auto* t_new = token->add_subcommand("create", "create an API token and print it");
  t_new->add_option("--name", cmd.name, "what the token is for")->required();
  t_new->add_option("--scope", cmd.scope, "read or admin")
      ->check(CLI::IsMember({"read", "admin"}))
      ->capture_default_str();
  auto* t_list = token->add_subcommand("list", "list API tokens (never their secrets)");
  auto* t_rev = token->add_subcommand("revoke", "revoke an API token");
  t_rev->add_option("token_id", cmd.target, "the token id (12 hex digits)")->required();

  auto* backup = app.add_subcommand(
      "backup", "copy the database (online, consistent; safe while a server writes to it)");
  backup->add_option("--out", cmd.out, "the file to write")->required();
  backup->add_flag("--force", cmd.force, "replace --out if it exists");
  backup
      ->add_option("--step-pages", cmd.step_pages,
                   "database pages copied per step (a short pause follows each step)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();

  // --db and the other options may come after the subcommand too.
  for (auto* sub : {meter, m_add, m_list, m_rot, token, t_new, t_list, t_rev, backup})
    sub->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return ParseOutcome{std::nullopt, app.exit(e)};
  }
  for (auto* group : {meter, token})
    if (group->parsed())
      for (auto* sub : group->get_subcommands())
        if (sub->parsed()) {
          cmd.group = group->get_name();
          cmd.verb = sub->get_name();
          c.command = cmd;
        }
  if (backup->parsed()) {
    cmd.group = "backup";
    c.command = cmd;
  }
  if (c.node_id.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
      std::snprintf(host, sizeof host, "node");
    c.node_id = std::string(host) + "-" + std::to_string(getpid());
  }
  if (c.server.tls_cert.empty() != c.server.tls_key.empty()) {
    std::fprintf(stderr, "meterhub: --tls-cert and --tls-key go together\n");
    return ParseOutcome{std::nullopt, 2};
  }
  if (c.server.tls_only && c.server.tls_cert.empty()) {
    std::fprintf(stderr, "meterhub: --tls-only needs --tls-cert and --tls-key\n");
    return ParseOutcome{std::nullopt, 2};
  }
  if (!split_listen(listen, c.server.host, c.server.port)) {
    std::fprintf(stderr,
                 "meterhub: --listen must be IP:PORT (e.g. 127.0.0.1:8000, 0.0.0.0:8000, "
                 "[::1]:8000), got '%s'\n",
                 listen.c_str());
    return ParseOutcome{std::nullopt, 2};
  }
  c.server.request_timeout = seconds_to_ms(request_timeout);
  c.server.ws_stall_timeout = seconds_to_ms(ws_stall);
  c.server.ws_idle_timeout = seconds_to_ms(ws_idle);
  c.server.shutdown_timeout = seconds_to_ms(shutdown_timeout);
  c.api.future_tolerance_ms = seconds_to_ms(future_tolerance).count();
  c.ingest.commit_delay = std::chrono::microseconds(commit_delay_us);
  constexpr double kDayMs = 86'400'000.0;
  c.ingest.retention.raw_ms = static_cast<core::TimeMs>(retention_raw_days * kDayMs);
  c.ingest.retention.minute_ms = static_cast<core::TimeMs>(retention_1m_days * kDayMs);
  c.ingest.retention_interval = std::chrono::milliseconds(60'000);
  c.api.minute_rollup_ms = c.ingest.retention.minute_ms;
  c.counter_rules.max_power_w = max_power_kw * 1000.0;
  c.api.counter_rules = c.counter_rules;
  c.hub.offline_after = seconds_to_ms(offline_after);
  c.ingest.max_txn_readings = std::max<std::size_t>(c.ingest.max_txn_readings, c.api.max_batch);
  c.ingest.max_queue_readings =
      std::max<std::size_t>(c.ingest.max_queue_readings, 4 * c.api.max_batch);
  if (!mqtt_url.empty()) {
    auto broker = mqtt::parse_broker_url(mqtt_url);
    if (!broker) {
      std::fprintf(stderr, "meterhub: --mqtt: %s\n", broker.error().message.c_str());
      return ParseOutcome{std::nullopt, 2};
    }
    mqtt::MqttOptions m;
    m.broker = *broker;
    if (!mqtt_topics.empty()) m.topics = mqtt_topics;
    m.client_id = mqtt_client_id;
    m.cafile = mqtt_cafile;
    m.keepalive = std::chrono::seconds(mqtt_keepalive);
    m.create_meters = c.auth.auto_register;
    m.max_payload = c.server.max_body;
    m.max_readings = c.api.max_batch;
    m.future_tolerance_ms = c.api.future_tolerance_ms;
    m.timezone = c.api.default_tz;
    c.mqtt = std::move(m);
  } else if (!mqtt_topics.empty() || !mqtt_cafile.empty() || !mqtt_client_id.empty()) {
    std::fprintf(stderr,
                 "meterhub: --mqtt-topic, --mqtt-client-id and --mqtt-cafile need --mqtt\n");
    return ParseOutcome{std::nullopt, 2};
  }
  return ParseOutcome{std::move(c), 0};
}

}  // namespace meterhub::app

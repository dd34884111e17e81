// Wiring: configuration -> store -> hub -> ingest -> API -> network, and the
// reverse order on the way out. No logic of its own lives here.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>

#include "alerts/engine.hpp"
#include "alerts/webhook.hpp"
#include "api/query_pool.hpp"
#include "api/router.hpp"
#include "api/static_files.hpp"
#include "app/admin_cli.hpp"
#include "app/config.hpp"
#include "app/logging.hpp"
#include "app/observability.hpp"
#include "auth/authenticator.hpp"
#include "core/time.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "mqtt/mqtt_ingest.hpp"
#include "query/calendar.hpp"
#include "store/open.hpp"
#include "store/postgres/pg_admin.hpp"
#include "store/postgres/pg_listener.hpp"
#include "store/postgres/pg_store.hpp"

namespace {

// Each WebSocket is a file descriptor: lift the soft limit to the hard one.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace meterhub;
  auto parsed = app::parse_config(argc, argv);
  if (!parsed.config) return parsed.exit_code;
  app::Config& cfg = *parsed.config;

  app::setup_logging(cfg.log_level, cfg.log_format);
  if (cfg.command) return app::run_admin_command(cfg);  // logs go to stderr, keys to stdout
  raise_fd_limit();

  // The tz database is read once, now: a missing tzdata shows at start, and
  // the first energy request does not pay for it.
  if (auto tz = query::TimeZone::load_database(); !tz)
    spdlog::warn("time zones unavailable ({}); energy periods work in UTC only",
                 tz.error().message);
  if (auto tz = query::TimeZone::locate(cfg.api.default_tz); !tz) {
    spdlog::critical("--timezone: {}", tz.error().message);
    return 2;
  }

  store::StoreConfig sc;
  sc.db = cfg.db_path;
  sc.counter_rules = cfg.counter_rules;
  sc.pg_connections = cfg.pg_connections;
  sc.node_id = cfg.node_id;
  auto opened = store::open_store(sc);
  if (!opened) {
    spdlog::critical("{}", opened.error().message);
    return 1;
  }
  store::Store& st = *opened->store;
  const std::string db_name = store::describe_db(cfg.db_path);  // never the password

  hub::Hub hub(cfg.hub);
  // Before the listener, which publishes through it (and is destroyed first).
  ingest::Ingest ingest(st, hub, cfg.ingest);
  auth::Authenticator* auth_ptr = nullptr;  // set below, before the listener starts

  // PostgreSQL: readings and registry changes committed by other nodes reach
  // this node's Hub through the listener (docs/scale-out.md). It LISTENs and
  // marks what is already committed as seen *before* the Hub is primed from
  // the store, so nothing committed in between is lost or doubled.
  std::unique_ptr<store::PgListener> listener;
  std::unique_ptr<store::PgAdmin> pg_admin;
  if (opened->pg) {
    store::PgListenerOptions lo;
    lo.conninfo = cfg.db_path;
    auto on_readings = [&ingest](std::vector<core::Reading>&& readings,
                                 const store::PgListener::Claim& claim) {
      return ingest.publish_remote(readings, claim);
    };
    // What the registry API does locally (api/registry.cpp), for changes
    // made through another node.
    auto on_registry = [&hub, &st, &auth_ptr](store::RegistryChange change,
                                              const std::string& meter_id) {
      if (auth_ptr) auth_ptr->invalidate();
      auto m = st.find_meter(meter_id);
      if (!m) {
        spdlog::warn("fan-out: cannot read meter \"{}\" after a registry change: {}", meter_id,
                     m.error().message);
        return;
      }
      if (change == store::RegistryChange::deleted || !*m) {
        if (!*m) hub::Hub::deliver(hub.remove(meter_id));  // not re-created meanwhile
        return;
      }
      hub.set_interval(meter_id, (*m)->interval_s);
      if (change == store::RegistryChange::created) hub::Hub::deliver(hub.announce(meter_id));
    };
    listener = std::make_unique<store::PgListener>(*opened->pg, std::move(lo),
                                                   std::move(on_readings), std::move(on_registry));
    if (auto r = listener->prepare(); !r) {
      spdlog::critical("{}", r.error().message);
      return 1;
    }
    pg_admin = std::make_unique<store::PgAdmin>(cfg.db_path);
  }

  auto latest = st.latest_per_meter();
  if (!latest) {
    spdlog::critical("cannot read latest readings: {}", latest.error().message);
    return 1;
  }
  for (const auto& r : *latest) hub.prime(r);
  auto meters = st.list_meters();
  if (!meters) {
    spdlog::critical("cannot read meters: {}", meters.error().message);
    return 1;
  }
  for (const auto& m : *meters)
    if (m.interval_s) hub.set_interval(m.meter_id, m.interval_s);

  auth::Authenticator auth(st, cfg.auth);
  auth_ptr = &auth;
  // The listener calls into `auth`: on an early return it stops first.
  struct StopListener {
    std::unique_ptr<store::PgListener>& l;
    ~StopListener() {
      if (l) l->stop();
    }
  } stop_listener{listener};
  if (auto r = auth.load(); !r) {
    spdlog::critical("cannot read credentials: {}", r.error().message);
    return 1;
  }
  // The first start of a database: an admin token, shown once, on stdout
  // (never in the log).
  auto admin = auth.ensure_admin_token(core::now_ms());
  if (!admin) {
    spdlog::critical("cannot create the admin token: {}", admin.error().message);
    return 1;
  }
  if (*admin) {
    std::printf(
        "\n  An admin token was created for this database. It is shown only now; keep it:\n\n"
        "    %s\n\n  Use it as 'Authorization: Bearer <token>', to sign in to the dashboard, "
        "and to\n  register meters (POST /api/v1/meters). Lost it? meterhub token create "
        "--scope admin --name me --db %s\n\n",
        (*admin)->c_str(), db_name.c_str());
    std::fflush(stdout);
  }
  if (cfg.auth.public_read)
    spdlog::warn("--public-read: anyone who can reach this port can read every meter");
  if (cfg.auth.auto_register)
    spdlog::warn(
        "--auto-register: readings for meters without a device key are accepted without a key");
  {
    std::size_t keyless = 0;
    for (const auto& m : *meters) keyless += auth.meter_has_key(m.meter_id) ? 0 : 1;
    if (keyless && !cfg.auth.auto_register)
      spdlog::warn(
          "{} meters have no device key and cannot send readings: give them one with "
          "'meterhub meter rotate-key <id>' (see 'meterhub meter list')",
          keyless);
  }

  // Alerts: loaded (rules, active alerts) and watching before ingest starts.
  std::unique_ptr<alerts::Webhook> webhook;
  if (!cfg.alert_webhook.empty()) {
    webhook = std::make_unique<alerts::Webhook>(alerts::WebhookOptions{.url = cfg.alert_webhook});
    webhook->start();
  }
  alerts::Engine alert_engine(st, hub, webhook.get());
  if (auto r = alert_engine.load(); !r) {
    spdlog::critical("cannot read alerts: {}", r.error().message);
    return 1;
  }
  // Several nodes on one database: only the holder of the leader lock
  // evaluates, so each alert is raised once (store/postgres/pg_admin.hpp).
  std::unique_ptr<store::PgLeader> leader;
  if (opened->pg) {
    alert_engine.set_cluster();
    leader = std::make_unique<store::PgLeader>(
        store::PgLeaderOptions{.conninfo = cfg.db_path},
        [&alert_engine](bool is_leader) { alert_engine.set_active(is_leader); });
  }
  alert_engine.start();
  if (leader) leader->start();
  if (listener) listener->start();

  ingest.start();
  api::QueryPool queries(cfg.query_threads, 1024);
  api::Router router(ingest, st, queries, hub, auth, cfg.api);
  std::filesystem::path web_root = cfg.web_root;
  if (web_root.empty()) {
    std::error_code ec;
    web_root = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "web";
  }
  auto web = api::StaticFiles::load(web_root);
  if (!web) {
    spdlog::critical("--web-root: {}", web.error().message);
    ingest.stop();
    return 1;
  }
  if (web->find("/") == nullptr)
    spdlog::warn(
        "no dashboard in {} (index.html missing): build the 'web' target or pass "
        "--web-root; the API works without it",
        web_root.string());
  router.set_static_files(&*web);
  router.set_alerts(&alert_engine);

  // Revocations made elsewhere (CLI) reach open WebSockets within a second,
  // also when no request comes in to notice them.
  cfg.server.every_second = [&auth] { auth.poll(); };
  http::Server server(cfg.server, router, hub);
  auto port = server.listen();
  if (!port) {
    spdlog::critical("{}", port.error().message);
    ingest.stop();
    return 1;
  }
  std::string host = cfg.server.host.find(':') != std::string::npos ? "[" + cfg.server.host + "]"
                                                                    : cfg.server.host;
  const char* scheme = cfg.server.tls_cert.empty() ? "http" : "https";
  spdlog::info("meterhub 0.1.0 listening on {}://{}:{} (database {}, {} meters)", scheme, host,
               *port, db_name, meters->size());
  if (opened->pg)
    spdlog::info("node \"{}\" of a PostgreSQL cluster ({} pooled connections)",
                 opened->pg->node_id(), cfg.pg_connections);
  if (web->find("/") != nullptr)
    spdlog::info("dashboard: {}://{}:{}/  API reference: {}://{}:{}/docs", scheme, host, *port,
                 scheme, host, *port);
  // MQTT after the listener: a start-up failure above leaves no client behind.
  std::unique_ptr<mqtt::MqttIngest> mqtt_in;
  if (cfg.mqtt) {
    auto m = mqtt::MqttIngest::create(*cfg.mqtt, ingest, hub);
    if (m) {
      mqtt_in = std::move(*m);
      if (auto r = mqtt_in->start(); !r) m = std::unexpected(r.error());
    }
    if (!m) {
      spdlog::critical("--mqtt: {}", m.error().message);
      mqtt_in.reset();
      ingest.stop();
      return 1;
    }
    if (cfg.mqtt->create_meters)
      spdlog::warn(
          "--mqtt with --auto-register: whoever may publish on the broker creates "
          "meters and writes to every meter");
  }
  app::register_collectors(ingest, hub, mqtt_in, cfg.db_path, pg_admin.get());  // GET /metrics
  if (listener) app::register_cluster_collectors(*listener, *leader);
  app::register_alert_collectors(alert_engine, webhook.get());
  server.run();
  if (listener) listener->stop();  // nobody left to deliver to
  if (mqtt_in) mqtt_in->stop();    // before ingest.stop(): the message in hand is committed

  // Network is quiet: commit whatever is still queued, then close the store.
  ingest.stop();
  queries.stop();
  alert_engine.stop();         // after ingest: every committed reading is evaluated
  if (leader) leader->stop();  // ends the session: another node takes over alerts
  if (webhook) webhook->stop();
  auto is = ingest.stats();
  spdlog::info("stopped cleanly ({} commits, {} readings this run)", is.commits, is.readings);
  return 0;
}

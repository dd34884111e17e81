#include "app/observability.hpp"

#include <filesystem>

#include "alerts/engine.hpp"
#include "alerts/webhook.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "metrics/instruments.hpp"
#include "metrics/process.hpp"
#include "mqtt/mqtt_ingest.hpp"
#include "store/postgres/pg_admin.hpp"
#include "store/postgres/pg_listener.hpp"

namespace meterhub::app {
namespace {

using Labels = std::pair<std::string_view, std::string_view>;

void counter(metrics::TextWriter& w, std::string_view name, std::string_view help, double v) {
  w.header(name, help, "counter");
  w.sample(name, v);
}

void gauge(metrics::TextWriter& w, std::string_view name, std::string_view help, double v) {
  w.header(name, help, "gauge");
  w.sample(name, v);
}

}  // namespace

void register_collectors(const ingest::Ingest& ingest, const hub::Hub& hub,
                         const std::unique_ptr<mqtt::MqttIngest>& mqtt, std::string db_path,
                         store::PgAdmin* pg_admin) {
  auto& reg = metrics::instruments().registry;
  reg.add_collector([&ingest, &hub](metrics::TextWriter& w) {
    const auto s = ingest.stats();
    counter(w, "meterhub_ingest_commits_total", "Write transactions committed", double(s.commits));
    counter(w, "meterhub_ingest_commit_failures_total",
            "Write transactions that failed (their senders got 503; nothing stored)",
            double(s.failed_commits));
    counter(w, "meterhub_retention_runs_total", "Retention batches run", double(s.retention_runs));
    counter(w, "meterhub_retention_deleted_total",
            "Raw readings and minute rollups deleted by retention", double(s.retention_deleted));
    gauge(w, "meterhub_hub_subscribers", "Subscriptions registered in the hub (per meter and all)",
          double(hub.subscriber_count()));
  });
  if (pg_admin) {
    reg.add_collector([pg_admin](metrics::TextWriter& w) {
      // One small query per scrape, on the admin connection.
      auto size = pg_admin->database_size();
      if (!size) return;  // unreachable now: no sample rather than a false 0
      w.header("meterhub_store_size_bytes", "Size of the PostgreSQL database", "gauge");
      const Labels l[] = {{"file", "db"}};
      w.sample("meterhub_store_size_bytes", l, double(*size));
    });
  } else
    reg.add_collector([path = std::move(db_path)](metrics::TextWriter& w) {
      // The database and its WAL: what the disk holds for this store.
      w.header("meterhub_store_size_bytes", "Size of the SQLite database files", "gauge");
      for (auto [file, suffix] : {std::pair<const char*, const char*>{"db", ""}, {"wal", "-wal"}}) {
        std::error_code ec;
        auto size = std::filesystem::file_size(path + suffix, ec);
        const Labels l[] = {{"file", file}};
        w.sample("meterhub_store_size_bytes", l, ec ? 0.0 : double(size));
      }
    });
  reg.add_collector([&mqtt](metrics::TextWriter& w) {
    if (!mqtt) return;
    const auto s = mqtt->stats();
    gauge(w, "meterhub_mqtt_connected", "1 while connected to the MQTT broker",
          s.connected ? 1 : 0);
    counter(w, "meterhub_mqtt_connects_total", "Successful connections to the broker",
            double(s.connects));
    counter(w, "meterhub_mqtt_messages_received_total", "MQTT messages received",
            double(s.messages));
    w.header("meterhub_mqtt_messages_rejected_total",
             "MQTT messages whose readings were not stored, by reason", "counter");
    const std::pair<const char*, std::uint64_t> reasons[] = {
        {"garbled", s.garbled},           {"mismatched", s.mismatched},
        {"unregistered", s.unregistered}, {"unknown_topic", s.unknown_topic},
        {"no_base", s.no_base},           {"dropped", s.dropped}};
    for (auto [reason, v] : reasons) {
      const Labels l[] = {{"reason", reason}};
      w.sample("meterhub_mqtt_messages_rejected_total", l, double(v));
    }
    w.header("meterhub_mqtt_readings_total", "Readings from MQTT committed, new or duplicate",
             "counter");
    const Labels fresh[] = {{"result", "new"}};
    const Labels dup[] = {{"result", "duplicate"}};
    w.sample("meterhub_mqtt_readings_total", fresh, double(s.readings));
    w.sample("meterhub_mqtt_readings_total", dup, double(s.duplicates));
  });
  reg.add_collector([](metrics::TextWriter& w) { metrics::write_process_metrics(w); });
}

void register_cluster_collectors(const store::PgListener& listener, const store::PgLeader& leader) {
  metrics::instruments().registry.add_collector([&listener, &leader](metrics::TextWriter& w) {
    const auto s = listener.stats();
    gauge(w, "meterhub_fanout_connected", "1 while the fan-out listener is connected to PostgreSQL",
          s.connected ? 1 : 0);
    counter(w, "meterhub_fanout_notifications_total",
            "Notifications received from PostgreSQL (readings and registry)",
            double(s.notifications));
    counter(w, "meterhub_fanout_batches_total",
            "Batches of other nodes published to this node's subscribers", double(s.batches));
    counter(w, "meterhub_fanout_readings_total",
            "Readings of other nodes published to this node's subscribers", double(s.readings));
    counter(w, "meterhub_fanout_skipped_batches_total",
            "Notified batches not published again (own writes, already seen)", double(s.skipped));
    counter(w, "meterhub_fanout_pointer_fetches_total",
            "Batches too large for a notification, read back from the database",
            double(s.pointer_fetches));
    counter(w, "meterhub_fanout_resyncs_total",
            "Reads of the batches committed while the listener was not listening",
            double(s.resyncs));
    counter(w, "meterhub_fanout_resync_truncated_total",
            "Resyncs that hit their limit (later readings not published live)",
            double(s.resync_truncated));
    counter(w, "meterhub_fanout_reconnects_total",
            "Times the listener reconnected after losing PostgreSQL", double(s.reconnects));
    counter(w, "meterhub_fanout_errors_total", "Undecodable notifications and failed read-backs",
            double(s.errors));
    gauge(w, "meterhub_alert_leader", "1 while this node evaluates alerts for the cluster",
          leader.leader() ? 1 : 0);
  });
}

void register_alert_collectors(const alerts::Engine& engine, const alerts::Webhook* webhook) {
  metrics::instruments().registry.add_collector([&engine, webhook](metrics::TextWriter& w) {
    const auto e = engine.stats();
    counter(w, "meterhub_alert_readings_evaluated_total",
            "Committed readings evaluated by alert rules", double(e.readings));
    counter(w, "meterhub_alert_readings_dropped_total",
            "Readings not evaluated because the alert queue was full", double(e.dropped));
    w.header("meterhub_alert_events_total", "Alert events stored", "counter");
    const Labels raised[] = {{"event", "raised"}}, cleared[] = {{"event", "cleared"}};
    w.sample("meterhub_alert_events_total", raised, double(e.raised));
    w.sample("meterhub_alert_events_total", cleared, double(e.cleared));
    counter(w, "meterhub_alert_store_errors_total", "Alert events that could not be stored",
            double(e.store_errors));
    const auto h = webhook ? webhook->stats() : alerts::WebhookStats{};
    w.header("meterhub_alert_webhook_total", "Webhook deliveries by outcome", "counter");
    for (auto [result, v] : {std::pair<const char*, std::uint64_t>{"delivered", h.delivered},
                             {"retried", h.retries},
                             {"failed", h.failed},
                             {"dropped", h.dropped}}) {
      const Labels l[] = {{"result", result}};
      w.sample("meterhub_alert_webhook_total", l, double(v));
    }
  });
}

}  // namespace meterhub::app

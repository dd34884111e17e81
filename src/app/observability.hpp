// Wires the scrape-time collectors of GET /metrics: values that other
// modules already keep (ingest and MQTT counters), the store's file sizes,
// and the process (/proc). Called once from main, before the server runs;
// everything passed must outlive the server's run().
#pragma once

#include <memory>
#include <string>

namespace meterhub::ingest {
class Ingest;
}
namespace meterhub::mqtt {
class MqttIngest;
}
namespace meterhub::hub {
class Hub;
}

namespace meterhub::alerts {
class Engine;
class Webhook;
}  // namespace meterhub::alerts

namespace meterhub::store {
class PgAdmin;
class PgLeader;
class PgListener;
}  // namespace meterhub::store

namespace meterhub::app {

// mqtt: may hold nothing (no --mqtt); read at each scrape. pg_admin: set with
// PostgreSQL — the store size is then pg_database_size() instead of the
// SQLite files at db_path.
void register_collectors(const ingest::Ingest& ingest, const hub::Hub& hub,
                         const std::unique_ptr<mqtt::MqttIngest>& mqtt, std::string db_path,
                         store::PgAdmin* pg_admin = nullptr);

// PostgreSQL: the fan-out listener's counters and the alert leadership.
void register_cluster_collectors(const store::PgListener& listener, const store::PgLeader& leader);

// webhook: null without --alert-webhook (its counters then stay 0).
void register_alert_collectors(const alerts::Engine& engine, const alerts::Webhook* webhook);

}  // namespace meterhub::app

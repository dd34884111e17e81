// The scale-out store: PostgreSQL through libpq, shared by several meterhub
// nodes (docs/scale-out.md). Same contract as SqliteStore (store/store.hpp),
// checked by the same contract test suite.
//  - write() is one transaction: multi-row INSERT … ON CONFLICT DO NOTHING
//    into meter_readings, rollup maintenance (store/rollup_plan.hpp, shared
//    with SQLite), and one NOTIFY on the fan-out channel (fanout.hpp) that
//    PostgreSQL delivers to every node only when the transaction commits.
//    synchronous_commit is the server's (on by default): COMMIT returns
//    after the WAL is flushed.
//  - Several nodes may write the same meter: write() locks the meters it
//    writes (their smart_meter rows, in id order) so rollup maintenance of a
//    meter is serialised across nodes, and retries a transaction that hit a
//    deadlock or serialization failure.
//  - A broken connection (PostgreSQL restarted, network) fails the call with
//    "store_unavailable" (nothing of it stored) and is reopened on the next.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/energy.hpp"
#include "store/postgres/fanout.hpp"
#include "store/store.hpp"

namespace meterhub::store {

struct PgOptions {
  std::string conninfo;     // "postgresql://user@host:port/db" or "key=value …" (libpq)
  std::size_t readers = 4;  // pooled connections for every thread but the writer
  core::CounterRules counter_rules;
  std::string node_id;  // names this process in fan-out payloads; random if empty
  // Batches this node wrote are marked here before they commit, so the
  // listener (pg_listener.hpp) does not publish them a second time.
  std::shared_ptr<pg::SeenBatches> seen;
};

// True for the --db values that select PostgreSQL.
bool is_postgres_url(std::string_view db);

class PgStore final : public Store {
 public:
  // Connects, creates or migrates the schema (under an advisory lock, so
  // nodes starting together migrate once). Fails with a clear message when
  // the server cannot be reached or the schema is newer than this binary.
  static core::Result<std::unique_ptr<PgStore>> open(PgOptions opts);
  ~PgStore() override;

  const std::string& node_id() const;
  const std::shared_ptr<pg::SeenBatches>& seen() const;
  // The readings of one stored batch (a pointer notification), in the order
  // they were written; and every reading of the batches after `after_batch`
  // (a resync), batch by batch, each with its batch id, at most `limit`.
  core::Result<std::vector<core::Reading>> read_batch(std::int64_t batch);
  core::Result<std::vector<std::pair<std::int64_t, core::Reading>>> read_batches_after(
      std::int64_t after_batch, std::size_t limit);

  core::Result<WriteOutcome> write(std::span<const core::Reading> readings,
                                   core::TimeMs received_at) override;
  core::Result<void> probe_write(core::TimeMs now) override;
  bool receives_remote_commits() const override { return true; }
  core::Result<std::vector<core::Reading>> take_remote_commits() override;
  core::Result<std::vector<MeterInfo>> list_meters() override;
  core::Result<std::optional<MeterInfo>> find_meter(std::string_view meter_id) override;
  core::Result<std::vector<core::Reading>> read_range(const RangeQuery& q) override;
  core::Result<std::vector<core::Reading>> latest_per_meter() override;
  core::Result<std::vector<core::Aggregate>> read_rollup(std::string_view meter_id, Rollup table,
                                                         core::TimeMs from,
                                                         core::TimeMs to) override;
  core::Result<std::vector<std::pair<core::TimeMs, double>>> read_kwh(std::string_view meter_id,
                                                                      Rollup table,
                                                                      core::TimeMs from,
                                                                      core::TimeMs to) override;
  core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(Rollup table,
                                                                       core::TimeMs from,
                                                                       core::TimeMs to) override;
  core::Result<std::optional<std::string>> tariff(std::string_view meter_id) override;
  core::Result<bool> set_tariff(std::string_view meter_id, std::optional<std::string> doc,
                                core::TimeMs now) override;
  core::Result<RetentionOutcome> apply_retention(const RetentionPolicy& policy,
                                                 core::TimeMs now) override;
  core::Result<bool> create_meter(const NewMeter& m, const std::optional<Credential>& key,
                                  core::TimeMs now) override;
  core::Result<bool> update_meter(std::string_view meter_id, const MeterPatch& p) override;
  core::Result<std::optional<std::size_t>> delete_meter(std::string_view meter_id) override;
  core::Result<std::vector<std::string>> writer_missing_meters(
      std::span<const std::string> meter_ids) override;
  core::Result<bool> add_credential(const Credential& c, core::TimeMs now) override;
  core::Result<Revoke> revoke_credential(std::string_view id, core::TimeMs now) override;
  core::Result<std::vector<Credential>> list_credentials() override;
  core::Result<std::int64_t> registry_generation() override;
  core::Result<bool> set_alert_rules(std::string_view meter_id, const std::string& doc,
                                     core::TimeMs now) override;
  core::Result<std::optional<std::string>> alert_rules(std::string_view meter_id) override;
  core::Result<std::vector<std::pair<std::string, std::string>>> all_alert_rules() override;
  core::Result<std::int64_t> raise_alert(const AlertRecord& a) override;
  core::Result<void> clear_alert(std::int64_t id, core::TimeMs at, double value,
                                 const std::string& message) override;
  core::Result<std::vector<AlertRecord>> list_alerts(const AlertQuery& q) override;

  struct Impl;

 private:
  explicit PgStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meterhub::store

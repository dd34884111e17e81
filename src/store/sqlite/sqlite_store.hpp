// The embedded default store: one SQLite file in WAL mode with
// synchronous=FULL, so a commit that returns has reached the disk.
// One writer connection (owned by the ingest thread) and a pool of read-only
// connections that WAL lets run beside it. Schema and migrations are in
// sqlite_store.cpp (kMigrations) and docs/architecture.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "core/energy.hpp"
#include "store/store.hpp"

namespace meterhub::store {

struct SqliteOptions {
  SqliteOptions() = default;
  SqliteOptions(std::string p) : path(std::move(p)) {}  // NOLINT: {path} reads well

  std::string path;  // the database file; its directory is created
  int busy_timeout_ms = 5000;
  core::CounterRules counter_rules;  // how rollups attribute consumption
};

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) and migrates the database. Fails with a clear
  // message if the file cannot be created, opened for writing or migrated.
  static core::Result<std::unique_ptr<SqliteStore>> open(const SqliteOptions& opts);
  ~SqliteStore() override;

  core::Result<WriteOutcome> write(std::span<const core::Reading> readings,
                                   core::TimeMs received_at) override;
  core::Result<void> probe_write(core::TimeMs now) override;
  core::Result<std::vector<MeterInfo>> list_meters() override;
  core::Result<std::optional<MeterInfo>> find_meter(std::string_view meter_id) override;
  core::Result<std::vector<core::Reading>> read_range(const RangeQuery& q) override;
  core::Result<std::vector<core::Reading>> latest_per_meter() override;
  core::Result<std::vector<core::Aggregate>> read_rollup(std::string_view meter_id, Rollup table,
                                                         core::TimeMs from,
                                                         core::TimeMs to) override;
  core::Result<std::vector<std::pair<core::TimeMs, double>>> read_kwh(
      std::string_view meter_id, Rollup table, core::TimeMs from, core::TimeMs to) override;
  core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(
      Rollup table, core::TimeMs from, core::TimeMs to) override;
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
  // Alerts (store/sqlite/alerts.*).
  core::Result<bool> set_alert_rules(std::string_view meter_id, const std::string& doc,
                                     core::TimeMs now) override;
  core::Result<std::optional<std::string>> alert_rules(std::string_view meter_id) override;
  core::Result<std::vector<std::pair<std::string, std::string>>> all_alert_rules() override;
  core::Result<std::int64_t> raise_alert(const AlertRecord& a) override;
  core::Result<void> clear_alert(std::int64_t id, core::TimeMs at, double value,
                                 const std::string& message) override;
  core::Result<std::vector<AlertRecord>> list_alerts(const AlertQuery& q) override;

  // Background WAL checkpoints run so far (see checkpointer.hpp).
  std::uint64_t checkpoint_runs() const;
  // WAL pages those checkpoints copied back into the database file.
  std::uint64_t checkpoint_pages() const;

  struct Impl;

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meterhub::store

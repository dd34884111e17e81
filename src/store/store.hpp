// The storage contract. Every backend (SQLite now, PostgreSQL later) keeps
// these promises, and one contract test suite checks them:
//  - write() is all-or-nothing and durable when it returns a value: the
//    readings are committed to stable storage (not just the OS cache).
//  - (meter_id, ts) is unique: a reading already stored is reported as not
//    inserted and leaves the stored row untouched.
//  - a meter is created by its first written reading, or by create_meter()
//    (the registry; callers decide which writes may create meters).
//  - readers never see uncommitted data.
// Threads: write() and probe_write() are called from one thread only (the
// ingest writer); every other member may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/aggregate.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::store {

struct MeterInfo {
  std::string meter_id;
  std::string name;                        // empty until named (device registry)
  std::string location;                    // free text, empty if unset
  std::optional<std::int64_t> interval_s;  // the meter's expected reporting interval
  core::TimeMs created_at = 0;
  std::optional<core::TimeMs> last_seen;  // server time of the newest write
  std::optional<core::Reading> latest;    // the reading with the greatest ts
};

struct WriteOutcome {
  // inserted[i] is 1 when readings[i] was new, 0 when it was a duplicate of a
  // stored reading or of an earlier one in the same call.
  std::vector<unsigned char> inserted;
  std::vector<std::string> new_meters;  // meters created by this write
  // Readings other processes committed before this write and that this
  // process has not published yet (PostgreSQL with several nodes: see
  // store/postgres/pg_store.hpp), in commit order. The caller publishes
  // them before this write's own readings, so per meter every subscriber
  // sees commit order. Always empty for SQLite.
  std::vector<core::Reading> committed_before;
};

struct RangeQuery {
  std::string meter_id;
  core::TimeMs from = 0;  // inclusive
  core::TimeMs to = 0;    // exclusive
  std::size_t limit = 1000;
  bool descending = false;
};

// Rollup tables: per meter, one core::Aggregate per minute / per hour,
// maintained in the same transaction as the readings they aggregate (late
// readings included), equal to aggregating the raw readings.
enum class Rollup { minute, hour };

// The device registry: what an admin sets on a meter.
struct NewMeter {
  std::string meter_id;
  std::string name;
  std::string location;
  std::optional<std::int64_t> interval_s;
};
// Fields absent (nullopt) are left unchanged; interval_s may be set to null.
struct MeterPatch {
  std::optional<std::string> name;
  std::optional<std::string> location;
  std::optional<std::optional<std::int64_t>> interval_s;
};

// A device key or API token as stored: never the secret, only a salted hash
// of it (auth/keys.hpp makes and checks them). `id` is the public part of the
// key text and the lookup key.
enum class CredentialKind : std::uint8_t { device, token };
enum class Scope : std::uint8_t { none, read, admin };  // device keys: none
struct Credential {
  std::string id;
  CredentialKind kind = CredentialKind::token;
  std::string meter_id;  // device keys: the one meter it may write
  std::string name;      // tokens: what it is for
  Scope scope = Scope::none;
  std::string salt;  // raw bytes
  std::string hash;  // raw bytes: SHA-256(salt || secret)
  core::TimeMs created_at = 0;
  std::optional<core::TimeMs> revoked_at;
};

// Background deletion of old data. 0 = keep forever.
struct RetentionPolicy {
  core::TimeMs raw_ms = 90LL * 86'400'000;      // raw readings (the newest of a meter is kept)
  core::TimeMs minute_ms = 365LL * 86'400'000;  // rollup_1m rows; rollup_1h is kept forever
  std::size_t batch = 5'000;                    // rows per table per call, at most
};

struct RetentionOutcome {
  std::size_t raw_deleted = 0;
  std::size_t minute_deleted = 0;
  bool more = false;  // a batch was full: call again soon
};

// Per-meter alerts (src/alerts, docs/alerts.md): one row per alert, raised
// and later cleared (cleared_at set). `kind` is the rule kind's name.
struct AlertRecord {
  std::int64_t id = 0;
  std::string meter_id;
  std::string kind;
  core::TimeMs raised_at = 0;
  double raised_value = 0;
  std::string message;
  std::optional<core::TimeMs> cleared_at;
  std::optional<double> cleared_value;
  std::string clear_message;
};
struct AlertQuery {
  std::optional<bool> active;          // true: not cleared; false: cleared; nullopt: both
  std::string meter_id;                // empty: every meter
  std::optional<std::int64_t> before;  // cursor: only ids below this
  std::size_t limit = 100;             // newest (greatest id) first
};

class Store {
 public:
  virtual ~Store() = default;

  // Writer side. Errors carry code "store_unavailable" and mean nothing of
  // the call was stored.
  virtual core::Result<WriteOutcome> write(std::span<const core::Reading> readings,
                                           core::TimeMs received_at) = 0;
  // A real durable write of a tiny row: proves the store accepts writes now.
  virtual core::Result<void> probe_write(core::TimeMs now) = 0;
  // Several processes on one database (PostgreSQL): readings the others
  // committed that reached the writer's connection since its last write and
  // that this process has not published yet (now claimed as published), in
  // commit order, for the caller to publish. The writer calls it when idle,
  // so the connection never holds a backlog. Writer thread only; none by
  // default (SQLite).
  virtual bool receives_remote_commits() const { return false; }
  virtual core::Result<std::vector<core::Reading>> take_remote_commits() {
    return std::vector<core::Reading>{};
  }

  // Deletes one batch of data older than the policy allows, in its own
  // transaction. Writer thread only (between writes).
  virtual core::Result<RetentionOutcome> apply_retention(const RetentionPolicy& policy,
                                                         core::TimeMs now) = 0;

  // Reader side.
  virtual core::Result<std::vector<MeterInfo>> list_meters() = 0;
  virtual core::Result<std::optional<MeterInfo>> find_meter(std::string_view meter_id) = 0;
  virtual core::Result<std::vector<core::Reading>> read_range(const RangeQuery& q) = 0;
  // The newest reading (by ts) of every meter that has one.
  virtual core::Result<std::vector<core::Reading>> latest_per_meter() = 0;
  // Rollup rows of a meter with from <= bucket start < to, sorted by start.
  virtual core::Result<std::vector<core::Aggregate>> read_rollup(std::string_view meter_id,
                                                                 Rollup table, core::TimeMs from,
                                                                 core::TimeMs to) = 0;

  // Only (bucket start, kWh) of the same rows: what energy reports need, at a
  // fraction of the cost of decoding whole aggregates.
  virtual core::Result<std::vector<std::pair<core::TimeMs, double>>> read_kwh(
      std::string_view meter_id, Rollup table, core::TimeMs from, core::TimeMs to) = 0;
  // kWh per meter over rollup buckets with from <= start < to (meters with
  // no rows are missing), sorted by meter id.
  virtual core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(Rollup table,
                                                                               core::TimeMs from,
                                                                               core::TimeMs to) = 0;

  // Tariffs, stored as the JSON document the API accepted (codec/tariff_codec).
  // meter_id "" is the server-wide default. Any thread.
  virtual core::Result<std::optional<std::string>> tariff(std::string_view meter_id) = 0;
  // Sets (doc) or removes (nullopt) a tariff; false when the meter does not exist.
  virtual core::Result<bool> set_tariff(std::string_view meter_id, std::optional<std::string> doc,
                                        core::TimeMs now) = 0;

  // Device registry. Any thread unless noted.
  // Creates a meter (and its device key, when given) in one transaction;
  // false when a meter with that id exists.
  virtual core::Result<bool> create_meter(const NewMeter& m, const std::optional<Credential>& key,
                                          core::TimeMs now) = 0;
  // false when the meter does not exist.
  virtual core::Result<bool> update_meter(std::string_view meter_id, const MeterPatch& p) = 0;
  // Deletes a meter with its readings, rollups, tariff and keys; the number
  // of readings deleted, nullopt when it did not exist. Writer thread only
  // (it must not interleave with write(), which would create it again).
  virtual core::Result<std::optional<std::size_t>> delete_meter(std::string_view meter_id) = 0;
  // Of these meter ids, the ones that do not exist, as the writer sees it
  // (one registry check for the whole list). Writer thread only.
  virtual core::Result<std::vector<std::string>> writer_missing_meters(
      std::span<const std::string> meter_ids) = 0;

  // Credentials. Adding a device key revokes the meter's other device keys
  // in the same transaction (key rotation); false when its meter does not exist.
  virtual core::Result<bool> add_credential(const Credential& c, core::TimeMs now) = 0;
  // Revokes an active credential, in one transaction with the check that it
  // is not the last active admin token (so two concurrent revocations
  // cannot lock every admin out).
  enum class Revoke : std::uint8_t { revoked, unknown, last_admin };
  virtual core::Result<Revoke> revoke_credential(std::string_view id, core::TimeMs now) = 0;
  virtual core::Result<std::vector<Credential>> list_credentials() = 0;
  // A number that changes whenever a credential is added or revoked or the
  // registry creates, changes or deletes a meter (not when write() creates
  // one), by this process or another sharing the database: caches of
  // credentials and meter ids compare it to know when to reload.
  virtual core::Result<std::int64_t> registry_generation() = 0;

  // Alerts (store/sqlite/alerts.*). Any thread. Backends without them fail
  // with "store_unavailable" (these defaults), so a test double need not care.
  // Rules are stored as the JSON document the API accepted (codec/alert_codec).
  // set_alert_rules: false when the meter does not exist.
  virtual core::Result<bool> set_alert_rules(std::string_view meter_id, const std::string& doc,
                                             core::TimeMs now);
  virtual core::Result<std::optional<std::string>> alert_rules(std::string_view meter_id);
  // (meter id, doc) of every meter that has rules.
  virtual core::Result<std::vector<std::pair<std::string, std::string>>> all_alert_rules();
  // Stores a raised alert (id, cleared_* ignored); returns its id. 0 when
  // the meter no longer exists (nothing stored).
  virtual core::Result<std::int64_t> raise_alert(const AlertRecord& a);
  // Marks an active alert cleared.
  virtual core::Result<void> clear_alert(std::int64_t id, core::TimeMs at, double value,
                                         const std::string& message);
  virtual core::Result<std::vector<AlertRecord>> list_alerts(const AlertQuery& q);
};

}  // namespace meterhub::store

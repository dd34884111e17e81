// The storage contract. Every backend (SQLite now, PostgreSQL later) keeps
// these promises, and one contract test suite checks them:
//  - write() is all-or-nothing and durable when it returns a value: the
//    readings are committed to stable storage (not just the OS cache).
//  - (meter_id, ts) is unique: a reading already stored is reported as not
//    inserted and leaves the stored row untouched.
//  - a meter is created by its first written reading.
//  - readers never see uncommitted data.
// Threads: write() and probe_write() are called from one thread only (the
// ingest writer); every other member may be called from any thread.
#pragma once

#include <cstddef>
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
  std::string name;  // empty until named (device registry)
  core::TimeMs created_at = 0;
  std::optional<core::TimeMs> last_seen;  // server time of the newest write
  std::optional<core::Reading> latest;    // the reading with the greatest ts
};

struct WriteOutcome {
  // inserted[i] is 1 when readings[i] was new, 0 when it was a duplicate of a
  // stored reading or of an earlier one in the same call.
  std::vector<unsigned char> inserted;
  std::vector<std::string> new_meters;  // meters created by this write
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

class Store {
 public:
  virtual ~Store() = default;

  // Writer side. Errors carry code "store_unavailable" and mean nothing of
  // the call was stored.
  virtual core::Result<WriteOutcome> write(std::span<const core::Reading> readings,
                                           core::TimeMs received_at) = 0;
  // A real durable write of a tiny row: proves the store accepts writes now.
  virtual core::Result<void> probe_write(core::TimeMs now) = 0;

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
  virtual core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(
      Rollup table, core::TimeMs from, core::TimeMs to) = 0;

  // Tariffs, stored as the JSON document the API accepted (codec/tariff_codec).
  // meter_id "" is the server-wide default. Any thread.
  virtual core::Result<std::optional<std::string>> tariff(std::string_view meter_id) = 0;
  // Sets (doc) or removes (nullopt) a tariff; false when the meter does not exist.
  virtual core::Result<bool> set_tariff(std::string_view meter_id, std::optional<std::string> doc,
                                        core::TimeMs now) = 0;
};

}  // namespace meterhub::store

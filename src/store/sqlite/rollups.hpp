// Rollup tables of the SQLite store: one row per meter and minute
// (rollup_1m) and per meter and hour (rollup_1h) holding a core::Aggregate.
//
// Maintained inside the writer's transaction, for every write, in order or
// late: the statistics of new readings are merged into their buckets with an
// UPSERT (sums add, min/max and first/last merge), and the consumption of
// every reading whose attribution the new readings change (core/energy.hpp:
// the one before them and the three after them) is corrected by the
// difference between its attribution after and before the write. So a
// rollup row always equals the aggregation of the raw readings in its bucket
// (sums up to floating-point summation order), and no write rescans a bucket.
// What to write is decided by store/rollup_plan.hpp (shared with the
// PostgreSQL store); this file fetches the window and writes the rows.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/aggregate.hpp"
#include "core/energy.hpp"
#include "store/rollup_plan.hpp"
#include "store/sqlite/sqlite_util.hpp"

namespace meterhub::store::sqlite {

enum class RollupTable { minute, hour };
inline constexpr core::TimeMs kMinuteMs = kRollupMinuteMs;
inline constexpr core::TimeMs kHourMs = kRollupHourMs;

// The columns of a rollup row after meter_id, in order (25 values with bucket).
extern const char* const kRollupColumns;

// Schema of the two tables (part of migration 2).
extern const char* const kRollupSchema;

// Reads a rollup row's columns starting at `col` (bucket first).
core::Aggregate read_aggregate(sqlite3_stmt* s, int col);

// Writer-side maintenance. Uses the writer connection inside its transaction.
class RollupWriter {
 public:
  core::Result<void> prepare(sqlite3* db);

  // `fresh`: the readings of one meter that this transaction inserted (they
  // are already in meter_readings), sorted by ts, unique. `truncated`: the
  // meter's oldest raw readings were deleted by retention, so a stored
  // reading with fewer than three stored predecessors has a consumption the
  // raw rows can no longer recompute; such readings are left as they are
  // (a late reading there gets the consumption its stored neighbours give
  // it, and never takes any from them: totals never count twice).
  core::Result<void> apply(std::int64_t meter_id, std::span<const core::Reading* const> fresh,
                           bool truncated);

  // Recomputes both tables from meter_readings (after a migration that
  // created them on a database with readings).
  core::Result<void> rebuild();

  core::CounterRules rules;

  // The cache of each meter's newest readings must match the database: call
  // after a rollback, and after deleting readings.
  void forget() { planner_.forget(); }

 private:
  // Holds the tail cache: an append needs no query for its window.
  RollupPlanner planner_;

  core::Result<RollupWindow> fetch(std::int64_t meter_id, core::TimeMs lo, core::TimeMs hi);
  core::Result<void> flush(RollupTable t, std::int64_t meter_id,
                           const std::vector<core::Aggregate>& buckets);

  sqlite3* db_ = nullptr;
  Stmt before_, between_, after_;
  Stmt upsert_[2], add_kwh_[2];
};

}  // namespace meterhub::store::sqlite

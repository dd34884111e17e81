// The backend-neutral half of rollup maintenance (store/sqlite/rollups.hpp
// explains the scheme): given the readings one write inserted for a meter,
// which minute and hour buckets change and by how much. Each backend fetches
// the window of stored neighbours its own way and writes the contributions
// with its own UPSERT; both therefore give the same rollups for the same
// readings.
//
// The planner keeps a cache of each meter's newest stored readings (the
// "tail"), so an append needs no window query. The cache is only correct
// while nobody else writes or deletes the meter's readings: a backend
// forgets a meter (or everything) when that may have happened, and forgets
// everything after a rolled-back transaction (plan() updates the cache as if
// the transaction commits).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/aggregate.hpp"
#include "core/energy.hpp"
#include "core/error.hpp"

namespace meterhub::store {

inline constexpr core::TimeMs kRollupMinuteMs = 60'000;
inline constexpr core::TimeMs kRollupHourMs = 3'600'000;

// One stored reading as the planner needs it: time and counter value.
struct RollupPoint {
  core::TimeMs ts = 0;
  double energy = 0;
};

// A meter's stored readings (the new ones included) around the range
// [lo, hi] of its new readings, each part sorted by ts ascending:
// up to 4 with ts < lo (the newest ones), all with lo <= ts <= hi, and up to
// 4 with ts > hi (the oldest ones).
struct RollupWindow {
  std::vector<RollupPoint> before, between, after;
};

// What to write for one meter: at most one entry per bucket and table.
// count > 0: merge the aggregate into the row (UPSERT); count == 0: add
// `kwh` to the existing row only (a stored neighbour's consumption changed).
struct RollupContributions {
  std::vector<core::Aggregate> minute, hour;
};

class RollupPlanner {
 public:
  using FetchWindow = std::function<core::Result<RollupWindow>(std::int64_t meter_id,
                                                               core::TimeMs lo, core::TimeMs hi)>;

  core::CounterRules rules;

  // True when new readings starting at `lo` append to the cached tail of the
  // meter, so plan() will not call `fetch`.
  bool covers(std::int64_t meter_id, core::TimeMs lo) const;

  // `fresh`: the readings of one meter this transaction inserted (already
  // stored, so the window contains them), sorted by ts, unique.
  // `truncated`: retention deleted the meter's oldest raw readings (see
  // RollupWriter::apply in store/sqlite/rollups.hpp). `fetch` is called at
  // most once, unless covers(meter_id, lo).
  core::Result<RollupContributions> plan(std::int64_t meter_id,
                                         std::span<const core::Reading* const> fresh,
                                         bool truncated, const FetchWindow& fetch);

  void forget() { tails_.clear(); }
  void forget(std::int64_t meter_id) { tails_.erase(meter_id); }

 private:
  struct Point {
    core::TimeMs ts = 0;
    double kwh = 0;
    bool fresh = false;
  };
  // A meter's newest (up to) 4 stored readings, oldest first.
  struct Tail {
    std::array<Point, 4> pts;
    std::size_t n = 0;
  };
  std::unordered_map<std::int64_t, Tail> tails_;
};

}  // namespace meterhub::store

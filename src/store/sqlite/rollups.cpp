#include "store/sqlite/rollups.hpp"

#include <algorithm>
#include <string>

namespace meterhub::store::sqlite {

const char* const kRollupColumns =
    "bucket, n, v_sum, v_min, v_max, i_sum, i_min, i_max, p_sum, p_min, p_max, "
    "f_n, f_sum, f_min, f_max, pf_n, pf_sum, pf_min, pf_max, "
    "first_ts, e_first, last_ts, e_last, kwh";

#define MH_ROLLUP_TABLE(name)                                                   \
  "CREATE TABLE " name                                                          \
  " (\n"                                                                        \
  "  meter_id INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,\n" \
  "  v_sum REAL NOT NULL, v_min REAL NOT NULL, v_max REAL NOT NULL,\n"          \
  "  i_sum REAL NOT NULL, i_min REAL NOT NULL, i_max REAL NOT NULL,\n"          \
  "  p_sum REAL NOT NULL, p_min REAL NOT NULL, p_max REAL NOT NULL,\n"          \
  "  f_n INTEGER NOT NULL, f_sum REAL NOT NULL, f_min REAL, f_max REAL,\n"      \
  "  pf_n INTEGER NOT NULL, pf_sum REAL NOT NULL, pf_min REAL, pf_max REAL,\n"  \
  "  first_ts INTEGER NOT NULL, e_first REAL NOT NULL,\n"                       \
  "  last_ts INTEGER NOT NULL, e_last REAL NOT NULL, kwh REAL NOT NULL,\n"      \
  "  PRIMARY KEY (meter_id, bucket)\n"                                          \
  ") WITHOUT ROWID;\n"

const char* const kRollupSchema = MH_ROLLUP_TABLE("rollup_1m") MH_ROLLUP_TABLE("rollup_1h");
#undef MH_ROLLUP_TABLE

namespace {

const char* table_name(RollupTable t) {
  return t == RollupTable::minute ? "rollup_1m" : "rollup_1h";
}
core::TimeMs width(RollupTable t) { return t == RollupTable::minute ? kMinuteMs : kHourMs; }

void read_stats(sqlite3_stmt* s, int col, core::FieldStats& f, std::size_t n) {
  f.count = n;
  f.sum = sqlite3_column_double(s, col);
  if (n == 0) return;  // min/max stay +-inf: "no values"
  f.min = sqlite3_column_double(s, col + 1);
  f.max = sqlite3_column_double(s, col + 2);
}

int bind_stats(sqlite3_stmt* s, int col, const core::FieldStats& f) {
  sqlite3_bind_double(s, col, f.sum);
  if (f.count) {
    sqlite3_bind_double(s, col + 1, f.min);
    sqlite3_bind_double(s, col + 2, f.max);
  } else {
    sqlite3_bind_null(s, col + 1);
    sqlite3_bind_null(s, col + 2);
  }
  return col + 3;
}

}  // namespace

core::Aggregate read_aggregate(sqlite3_stmt* s, int col) {
  core::Aggregate a;
  a.start = sqlite3_column_int64(s, col);
  a.count = static_cast<std::size_t>(sqlite3_column_int64(s, col + 1));
  read_stats(s, col + 2, a.voltage, a.count);
  read_stats(s, col + 5, a.current, a.count);
  read_stats(s, col + 8, a.power, a.count);
  read_stats(s, col + 12, a.frequency, static_cast<std::size_t>(sqlite3_column_int64(s, col + 11)));
  read_stats(s, col + 16, a.power_factor,
             static_cast<std::size_t>(sqlite3_column_int64(s, col + 15)));
  a.first_ts = sqlite3_column_int64(s, col + 19);
  a.energy_first = sqlite3_column_double(s, col + 20);
  a.last_ts = sqlite3_column_int64(s, col + 21);
  a.energy_last = sqlite3_column_double(s, col + 22);
  // Corrections add and subtract: a bucket whose consumption is really 0 may
  // hold a rounding residue like -1e-17. Consumption is never negative.
  a.kwh = std::max(0.0, sqlite3_column_double(s, col + 23));
  return a;
}

core::Result<void> RollupWriter::prepare(sqlite3* db) {
  db_ = db;
  const std::pair<Stmt*, const char*> reads[] = {
      {&before_,
       "SELECT ts, energy FROM meter_readings WHERE meter_id = ?1 AND ts < ?2 "
       "ORDER BY ts DESC LIMIT 4"},
      {&between_,
       "SELECT ts, energy FROM meter_readings WHERE meter_id = ?1 AND ts >= ?2 AND ts <= ?3 "
       "ORDER BY ts"},
      {&after_,
       "SELECT ts, energy FROM meter_readings WHERE meter_id = ?1 AND ts > ?2 "
       "ORDER BY ts LIMIT 4"},
  };
  for (auto& [st, sql] : reads)
    if (auto r = sqlite::prepare(db, sql, *st); !r) return r;
  for (RollupTable t : {RollupTable::minute, RollupTable::hour}) {
    const std::string name = table_name(t);
    const std::string upsert =
        "INSERT INTO " + name + " (meter_id, " + kRollupColumns +
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
        "?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) "
        "ON CONFLICT (meter_id, bucket) DO UPDATE SET n = n + excluded.n, "
        "v_sum = v_sum + excluded.v_sum, v_min = min(v_min, excluded.v_min), "
        "v_max = max(v_max, excluded.v_max), "
        "i_sum = i_sum + excluded.i_sum, i_min = min(i_min, excluded.i_min), "
        "i_max = max(i_max, excluded.i_max), "
        "p_sum = p_sum + excluded.p_sum, p_min = min(p_min, excluded.p_min), "
        "p_max = max(p_max, excluded.p_max), "
        // Optional fields: min()/max() of SQL NULL are NULL, so fall back to whichever exists.
        "f_n = f_n + excluded.f_n, f_sum = f_sum + excluded.f_sum, "
        "f_min = coalesce(min(f_min, excluded.f_min), f_min, excluded.f_min), "
        "f_max = coalesce(max(f_max, excluded.f_max), f_max, excluded.f_max), "
        "pf_n = pf_n + excluded.pf_n, pf_sum = pf_sum + excluded.pf_sum, "
        "pf_min = coalesce(min(pf_min, excluded.pf_min), pf_min, excluded.pf_min), "
        "pf_max = coalesce(max(pf_max, excluded.pf_max), pf_max, excluded.pf_max), "
        // Right-hand sides see the row before the update.
        "e_first = CASE WHEN excluded.first_ts < first_ts THEN excluded.e_first ELSE e_first END, "
        "first_ts = min(first_ts, excluded.first_ts), "
        "e_last = CASE WHEN excluded.last_ts > last_ts THEN excluded.e_last ELSE e_last END, "
        "last_ts = max(last_ts, excluded.last_ts), kwh = kwh + excluded.kwh";
    const std::string add_kwh =
        "UPDATE " + name + " SET kwh = kwh + ?3 WHERE meter_id = ?1 AND bucket = ?2";
    const int i = static_cast<int>(t);
    if (auto r = sqlite::prepare(db, upsert.c_str(), upsert_[i]); !r) return r;
    if (auto r = sqlite::prepare(db, add_kwh.c_str(), add_kwh_[i]); !r) return r;
  }
  return {};
}

core::Result<void> RollupWriter::flush(RollupTable t, std::int64_t meter_id,
                                       const std::vector<core::Aggregate>& buckets) {
  const int i = static_cast<int>(t);
  for (const core::Aggregate& a : buckets) {
    if (a.count == 0) {
      if (a.kwh == 0) continue;
      sqlite3_stmt* s = add_kwh_[i].s;
      sqlite3_bind_int64(s, 1, meter_id);
      sqlite3_bind_int64(s, 2, a.start);
      sqlite3_bind_double(s, 3, a.kwh);
      if (!step_reset(s)) return unavailable(db_, "updating rollup failed");
      continue;
    }
    sqlite3_stmt* s = upsert_[i].s;
    sqlite3_bind_int64(s, 1, meter_id);
    sqlite3_bind_int64(s, 2, a.start);
    sqlite3_bind_int64(s, 3, static_cast<std::int64_t>(a.count));
    int col = bind_stats(s, 4, a.voltage);
    col = bind_stats(s, col, a.current);
    col = bind_stats(s, col, a.power);
    sqlite3_bind_int64(s, col++, static_cast<std::int64_t>(a.frequency.count));
    col = bind_stats(s, col, a.frequency);
    sqlite3_bind_int64(s, col++, static_cast<std::int64_t>(a.power_factor.count));
    col = bind_stats(s, col, a.power_factor);
    sqlite3_bind_int64(s, col++, a.first_ts);
    sqlite3_bind_double(s, col++, a.energy_first);
    sqlite3_bind_int64(s, col++, a.last_ts);
    sqlite3_bind_double(s, col++, a.energy_last);
    sqlite3_bind_double(s, col++, a.kwh);
    if (!step_reset(s)) return unavailable(db_, "writing rollup failed");
  }
  return {};
}

core::Result<RollupWindow> RollupWriter::fetch(std::int64_t meter_id, core::TimeMs lo,
                                               core::TimeMs hi) {
  RollupWindow w;
  auto collect = [&](Stmt& st, std::vector<RollupPoint>& into) {
    return each_row(db_, st.s, [&](sqlite3_stmt* s) {
      into.push_back({sqlite3_column_int64(s, 0), sqlite3_column_double(s, 1)});
    });
  };
  sqlite3_bind_int64(before_.s, 1, meter_id);
  sqlite3_bind_int64(before_.s, 2, lo);
  if (auto r = collect(before_, w.before); !r) return std::unexpected(r.error());
  std::reverse(w.before.begin(), w.before.end());  // newest first from the query
  sqlite3_bind_int64(between_.s, 1, meter_id);
  sqlite3_bind_int64(between_.s, 2, lo);
  sqlite3_bind_int64(between_.s, 3, hi);
  if (auto r = collect(between_, w.between); !r) return std::unexpected(r.error());
  sqlite3_bind_int64(after_.s, 1, meter_id);
  sqlite3_bind_int64(after_.s, 2, hi);
  if (auto r = collect(after_, w.after); !r) return std::unexpected(r.error());
  return w;
}

core::Result<void> RollupWriter::apply(std::int64_t meter_id,
                                       std::span<const core::Reading* const> fresh,
                                       bool truncated) {
  planner_.rules = rules;
  auto plan = planner_.plan(
      meter_id, fresh, truncated,
      [this](std::int64_t m, core::TimeMs lo, core::TimeMs hi) { return fetch(m, lo, hi); });
  if (!plan) return std::unexpected(plan.error());
  if (auto r = flush(RollupTable::minute, meter_id, plan->minute); !r) return r;
  return flush(RollupTable::hour, meter_id, plan->hour);
}

core::Result<void> RollupWriter::rebuild() {
  if (auto r = exec(db_, "DELETE FROM rollup_1m; DELETE FROM rollup_1h;"); !r) return r;
  Stmt meters, rows;
  if (auto r = sqlite::prepare(db_, "SELECT id FROM smart_meter ORDER BY id", meters); !r) return r;
  if (auto r = sqlite::prepare(db_,
                               "SELECT ts, voltage, current, power, energy, frequency, "
                               "power_factor FROM meter_readings WHERE meter_id = ?1 ORDER BY ts",
                               rows);
      !r)
    return r;
  std::vector<std::int64_t> ids;
  if (auto r = each_row(db_, meters.s,
                        [&](sqlite3_stmt* s) { ids.push_back(sqlite3_column_int64(s, 0)); });
      !r)
    return r;
  // Streams each meter's readings in chunks (a year of 1 s readings does not
  // fit in memory comfortably): a chunk is attributed with the last readings
  // of the previous chunk as context and the first of the next as `after`.
  constexpr std::size_t kChunk = 65'536;
  for (std::int64_t id : ids) {
    std::vector<core::Reading> chunk;
    std::vector<core::CounterPoint> context;
    auto process = [&](std::size_t n, bool has_after) -> core::Result<void> {
      std::vector<core::CounterPoint> pts;
      pts.reserve(n);
      for (std::size_t j = 0; j < n; ++j) pts.push_back({chunk[j].ts, chunk[j].energy});
      std::optional<core::CounterPoint> after;
      if (has_after) after = core::CounterPoint{chunk[n].ts, chunk[n].energy};
      const auto kwh = core::attribute_consumption(context, pts, after, rules);
      for (RollupTable t : {RollupTable::minute, RollupTable::hour}) {
        const auto buckets = core::aggregate_by_bucket(std::span(chunk).first(n), kwh, width(t));
        if (auto r = flush(t, id, buckets); !r) return r;
      }
      context.insert(context.end(),
                     pts.end() - static_cast<std::ptrdiff_t>(std::min(n, core::kContextBefore)),
                     pts.end());
      if (context.size() > core::kContextBefore)
        context.erase(context.begin(),
                      context.end() - static_cast<std::ptrdiff_t>(core::kContextBefore));
      chunk.erase(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      return {};
    };
    core::Result<void> failed;
    sqlite3_bind_int64(rows.s, 1, id);
    if (auto r = each_row(db_, rows.s,
                          [&](sqlite3_stmt* s) {
                            if (!failed) return;
                            core::Reading x;
                            x.ts = sqlite3_column_int64(s, 0);
                            x.voltage = sqlite3_column_double(s, 1);
                            x.current = sqlite3_column_double(s, 2);
                            x.power = sqlite3_column_double(s, 3);
                            x.energy = sqlite3_column_double(s, 4);
                            x.frequency = opt_double(s, 5);
                            x.power_factor = opt_double(s, 6);
                            chunk.push_back(std::move(x));
                            if (chunk.size() == kChunk + 1) failed = process(kChunk, true);
                          });
        !r)
      return r;
    if (!failed) return failed;
    if (!chunk.empty())
      if (auto r = process(chunk.size(), false); !r) return r;
  }
  return {};
}

}  // namespace meterhub::store::sqlite

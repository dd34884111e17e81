// meterhub-histload: fills a meterhub database with a synthetic history for
// the history benchmark (bench/history.sh, bench/README.md).
//
// One meter "big" at --big-interval (1 s) and --meters meters "m000".. at
// --small-interval (10 s), for --days days ending at --end (a fixed date, so
// every run produces the same data). Readings follow a household model:
// always-on base load, a fridge cycling, lighting/occupancy by local time of
// day (Europe/Berlin offsets, more in winter), and appliances (kettle, hob,
// oven, washer, dishwasher, TV, ...) planned per local day with Poisson
// counts and typical times of day; 230 V with grid drift, evening sag and
// noise; 50 Hz with an Ornstein-Uhlenbeck wander; power factor from the mix
// of loads; a kWh counter that integrates the power and reports whole Wh.
// Values are rounded like an ESP32 + PZEM-004T meter reports them (0.1 V,
// 0.001 A, 0.1 W, 1 Wh, 0.01 Hz, 0.01 PF). Each meter has its own seeded
// generator, so the data does not depend on batching or order.
//
// Everything is written through store::SqliteStore::write (so the rollup
// tables are maintained exactly as in the server), --batch readings per call
// (one transaction, one fsync):
//   --order time  (default) the batch holds a time slice of *all* meters,
//                 sorted by ts: the order a server sees when every meter
//                 reports live (or when a backfill replays history).
//   --order meter one meter's whole history after the other (each batch one
//                 meter): an import of per-meter archives.
// Resumable: on start it reads each meter's newest stored ts and skips what
// is already there (writes are atomic per batch), so an interrupted load can
// simply be rerun with the same options. DB.params records the data set's
// options; DB.done is written when the load is complete (history.sh's
// "already loaded" marker).
//
// --baseline-no-rollups writes the same readings into a bare copy of the
// readings table (same schema, pragmas, sort and transactions, no rollups)
// with plain SQLite: a diagnostic of what rollup maintenance costs. Never
// use that file with the server.
#include <sqlite3.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "core/reading.hpp"
#include "core/time.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

using meterhub::core::Reading;
using meterhub::core::TimeMs;
using Clock = std::chrono::steady_clock;

constexpr TimeMs kSec = 1000, kMin = 60 * kSec, kHour = 60 * kMin, kDay = 24 * kHour;

double secs_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded by splitmix64 (fast, and the same
// sequence on every platform, unlike std:: distributions).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {  // Marsaglia polar
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2 * uniform() - 1;
      v = 2 * uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s == 0);
    const double m = std::sqrt(-2 * std::log(s) / s);
    spare_ = v * m;
    has_spare_ = true;
    return u * m;
  }
  int poisson(double mean) {  // Knuth; means here are < 10
    const double l = std::exp(-mean);
    int k = 0;
    double p = uniform();
    while (p > l) {
      ++k;
      p *= uniform();
    }
    return k;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// ---------------------------------------------------------------------------
// Calendar: Europe/Berlin offsets by the EU rule (last Sunday of March /
// October, 01:00 UTC), enough for a load profile.
int berlin_offset_s(TimeMs t) {
  using namespace std::chrono;
  const sys_days d = floor<days>(sys_time<milliseconds>(milliseconds(t)));
  const int y = static_cast<int>(year_month_day(d).year());
  const auto start = sys_days(year(y) / March / Sunday[last]) + hours(1);
  const auto end = sys_days(year(y) / October / Sunday[last]) + hours(1);
  const auto tp = sys_time<milliseconds>(milliseconds(t));
  return tp >= start && tp < end ? 7200 : 3600;
}

// ---------------------------------------------------------------------------
// Household model.
enum Kind { kKettle, kMicrowave, kHob, kOven, kWasher, kDishwasher, kMedia, kVacuum, kDryer,
            kOffice, kKinds };

struct Appliance {
  double per_day;           // mean uses per day (weekday)
  double weekend;           // factor on weekends
  double w_lo, w_hi;        // rated power
  double min_lo, min_hi;    // duration in minutes
  double pf;                // power factor of the load
  double tod[24];           // relative likelihood of starting in each local hour
};

// Times of day: morning (6-9), noon, evening (17-22), daytime.
constexpr Appliance kAppliances[kKinds] = {
    // kettle
    {2.5, 1.2, 1850, 2200, 2, 4, 1.0,
     {0, 0, 0, 0, 0, 0.2, 1.5, 3, 2, 1, 0.6, 0.6, 0.8, 0.6, 0.8, 1, 1, 1.2, 1.2, 1, 0.8, 0.6, 0.3, 0.1}},
    // microwave
    {1.0, 1.2, 800, 1250, 1, 6, 0.95,
     {0, 0, 0, 0, 0, 0, 0.3, 0.8, 0.5, 0.3, 0.3, 0.8, 2, 1.2, 0.5, 0.3, 0.3, 0.8, 1.5, 1.5, 0.8, 0.5, 0.3, 0.1}},
    // hob (thermostat cycling)
    {0.8, 1.3, 1200, 2000, 15, 45, 1.0,
     {0, 0, 0, 0, 0, 0, 0, 0.2, 0.2, 0.1, 0.2, 1.2, 1.5, 0.5, 0.1, 0.1, 0.4, 1.5, 2.5, 1.5, 0.4, 0.1, 0, 0}},
    // oven (heat-up, then cycling)
    {0.3, 1.8, 2000, 2600, 30, 75, 1.0,
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1, 0.3, 0.8, 0.8, 0.3, 0.2, 0.3, 0.8, 2, 2.5, 1.5, 0.5, 0.1, 0, 0}},
    // washing machine (heat, motor, spin)
    {0.45, 2.0, 2000, 2200, 60, 130, 0.9,
     {0, 0, 0, 0, 0, 0, 0.2, 0.8, 1.5, 1.8, 1.8, 1.2, 0.8, 0.8, 1, 1, 1, 1, 1.2, 1, 0.6, 0.2, 0, 0}},
    // dishwasher (heat, wash, heat, dry)
    {0.6, 1.1, 1800, 2100, 100, 150, 0.95,
     {0, 0, 0, 0, 0, 0, 0, 0.2, 0.4, 0.3, 0.2, 0.2, 0.3, 0.5, 0.3, 0.2, 0.2, 0.3, 0.6, 1.5, 2.5, 2, 0.8, 0.2}},
    // TV / media
    {1.1, 1.5, 70, 160, 90, 240, 0.9,
     {0, 0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.6, 1, 2, 3, 3, 2, 0.8, 0.2}},
    // vacuum cleaner
    {0.2, 2.0, 650, 900, 10, 30, 0.9,
     {0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1.5, 2, 1.5, 0.5, 0.5, 1, 1.2, 1, 0.8, 0.3, 0, 0, 0, 0, 0}},
    // hair dryer
    {0.4, 1.2, 1200, 1800, 3, 8, 1.0,
     {0, 0, 0, 0, 0, 0, 1, 2.5, 1.5, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.3, 0.3, 0.5, 0.3, 0}},
    // home-office PC and screens (weekdays)
    {0.5, 0.2, 60, 140, 240, 540, 0.92,
     {0, 0, 0, 0, 0, 0, 0, 0.5, 3, 2, 0.5, 0.2, 0.2, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0}},
};

// Occupancy/lighting profile by local hour (fraction of the meter's amplitude).
constexpr double kLighting[2][24] = {
    // weekday
    {0.05, 0.04, 0.04, 0.04, 0.04, 0.08, 0.30, 0.60, 0.40, 0.15, 0.12, 0.12,
     0.15, 0.12, 0.12, 0.15, 0.25, 0.40, 0.70, 0.90, 1.00, 0.90, 0.60, 0.25},
    // weekend
    {0.06, 0.05, 0.04, 0.04, 0.04, 0.04, 0.08, 0.20, 0.45, 0.60, 0.45, 0.35,
     0.40, 0.35, 0.30, 0.30, 0.35, 0.45, 0.70, 0.90, 1.00, 0.95, 0.70, 0.35}};
// Grid voltage by local hour: higher at night, sagging in the evening peak (V).
constexpr double kGridV[24] = {1.5, 1.8, 2.0, 2.0, 1.8, 1.2, 0.2, -0.5, -0.3, 0.0, 0.2, 0.0,
                               -0.2, 0.0, 0.2, 0.0, -0.5, -1.2, -2.0, -2.4, -2.2, -1.5, -0.5, 0.6};

struct Event {
  TimeMs start, end;
  Kind kind;
  double watts;
  double phase;  // cycling offset, s
};

// One meter's generator. Readings are produced in time order; slot k has the
// nominal time k * interval + phase and a small per-reading jitter, so ts is
// strictly increasing.
class Household {
 public:
  Household(std::string id, std::uint64_t seed, TimeMs start, TimeMs interval, TimeMs phase,
            double dropouts_per_day)
      : id_(std::move(id)), rng_(seed), interval_(interval), phase_(phase % interval),
        dropouts_(dropouts_per_day) {
    base_w_ = rng_.uniform(45, 160);
    light_w_ = rng_.uniform(120, 380);
    size_ = rng_.uniform(0.6, 1.6);
    fridge_w_ = rng_.uniform(80, 130);
    fridge_period_s_ = rng_.uniform(2400, 3600);
    fridge_duty_ = rng_.uniform(0.28, 0.42);
    fridge_phase_s_ = rng_.uniform(0, fridge_period_s_);
    energy_kwh_ = std::floor(rng_.uniform(800, 25'000));
    v_drift_ = rng_.normal() * 1.2;
    f_dev_ = rng_.normal() * 0.02;
    jitter_max_ = std::min<TimeMs>(interval / 10, 100);
    // First slot at or after start.
    TimeMs k = (start - phase_ + interval - 1) / interval;
    next_base_ = k * interval + phase_;
    if (next_base_ < start) next_base_ += interval;
    prev_ts_ = next_base_ - interval;
  }

  const std::string& id() const { return id_; }
  std::uint64_t generated() const { return generated_; }

  // Generates the readings whose nominal time is in [t0, t1) and appends
  // those with ts > skip_le (already stored ones are generated, not kept).
  void fill(TimeMs t0, TimeMs t1, TimeMs skip_le, std::vector<Reading>& out) {
    while (next_base_ < t0) advance_slot(nullptr);  // only when resuming mid-slice
    while (next_base_ < t1) {
      Reading r;
      if (advance_slot(&r) && r.ts > skip_le) out.push_back(std::move(r));
    }
  }

 private:
  // Produces the reading of the next slot into *out (if not null and the
  // meter is not in a dropout); returns whether a reading was produced.
  bool advance_slot(Reading* out) {
    const TimeMs ts = next_base_ + (jitter_max_ > 0 ? static_cast<TimeMs>(rng_.next() % static_cast<std::uint64_t>(jitter_max_)) : 0);
    next_base_ += interval_;
    const double dt = static_cast<double>(ts - prev_ts_) / 1000.0;
    prev_ts_ = ts;

    // Local day bookkeeping: plan the day's appliance uses at local midnight.
    const int off = berlin_offset_s(ts);
    const TimeMs local = ts + static_cast<TimeMs>(off) * 1000;
    const TimeMs day = local >= 0 ? local / kDay : (local - kDay + 1) / kDay;
    if (day != day_) plan_day(day, off);
    const double hour_f = static_cast<double>(local - day * kDay) / static_cast<double>(kHour);
    const int hour = std::min(23, static_cast<int>(hour_f));
    const double frac = hour_f - hour;

    // Loads: P (W) and apparent power S (VA) per component.
    double p = 0, s = 0;
    auto load = [&](double w, double pf) {
      p += w;
      s += w / pf;
    };
    load(base_w_ * (1 + 0.03 * std::sin(static_cast<double>(ts) / 5.4e6)), 0.75);  // standby, router, ...
    const double fridge_pos = std::fmod(static_cast<double>(ts) / 1000.0 + fridge_phase_s_, fridge_period_s_);
    if (fridge_pos < fridge_duty_ * fridge_period_s_)
      load(fridge_pos < 3 ? fridge_w_ * 4 : fridge_w_, 0.8);  // compressor start-up surge
    const int wk = weekend_ ? 1 : 0;
    const double light = kLighting[wk][hour] + (kLighting[wk][(hour + 1) % 24] - kLighting[wk][hour]) * frac;
    load(light_w_ * light * season_light_, 0.92);

    // Appliance events.
    while (next_event_ < plan_.size() && plan_[next_event_].start <= ts) active_.push_back(plan_[next_event_++]);
    for (std::size_t i = 0; i < active_.size();) {
      const Event& e = active_[i];
      if (e.end <= ts) {
        active_[i] = active_.back();
        active_.pop_back();
        continue;
      }
      const double el = static_cast<double>(ts - e.start) / 1000.0;  // s since start
      const double len = static_cast<double>(e.end - e.start) / 1000.0;
      const Appliance& a = kAppliances[e.kind];
      double w = e.watts;
      switch (e.kind) {
        case kHob:  // thermostat: 70 s period, 55 % on
          w = std::fmod(el + e.phase, 70.0) < 38.5 ? e.watts : 15;
          break;
        case kOven:  // heat 12 min, then 3 min period at 40 %
          w = el < 720 || std::fmod(el + e.phase, 180.0) < 72 ? e.watts : 30;
          break;
        case kWasher:  // heat 15 min, wash, spin in the last 8 min
          w = el < 900 ? e.watts : (len - el < 480 ? 450 + 80 * std::sin(el) : 180 + 60 * std::sin(el / 7));
          break;
        case kDishwasher:  // heat, wash, heat, dry
          w = el < 1200 ? e.watts : el < 4200 ? 120 : el < 5100 ? e.watts : 40;
          break;
        default:
          break;
      }
      load(w, w > 200 && (e.kind == kWasher || e.kind == kDishwasher) ? 1.0 : a.pf);
      ++i;
    }
    const double noise = 1 + 0.01 * rng_.normal();
    p *= noise;
    s *= noise;

    // The counter keeps counting through dropouts.
    energy_kwh_ += p * dt / 3.6e6;
    ++generated_;
    if (ts >= drop_from_ && ts < drop_to_) return false;
    if (!out) return false;

    // Grid voltage: daily pattern + slow drift (OU, tau 30 min) + own load sag + noise.
    const double a_v = std::exp(-dt / 1800.0);
    v_drift_ = v_drift_ * a_v + 1.2 * std::sqrt(1 - a_v * a_v) * rng_.normal();
    double v = 230.0 + kGridV[hour] + v_drift_ - 0.35 * p / 1000.0 + 0.25 * rng_.normal();
    v = std::clamp(v, 207.0, 253.0);
    // Frequency: OU around 50 Hz, sd 0.02 Hz, tau 60 s.
    const double a_f = std::exp(-dt / 60.0);
    f_dev_ = f_dev_ * a_f + 0.02 * std::sqrt(1 - a_f * a_f) * rng_.normal();

    out->meter_id = id_;
    out->ts = ts;
    out->voltage = std::round(v * 10) / 10;
    out->current = std::round(s / v * 1000) / 1000;
    out->power = std::round(p * 10) / 10;
    out->energy = std::floor(energy_kwh_ * 1000) / 1000;  // whole Wh
    out->frequency = std::round((50.0 + f_dev_) * 100) / 100;
    out->power_factor = std::clamp(std::round(p / s * 100) / 100, 0.3, 1.0);
    return true;
  }

  void plan_day(TimeMs day, int off_s) {
    using namespace std::chrono;
    day_ = day;
    const auto wd = weekday(sys_days(days(day))).c_encoding();  // 0 = Sunday
    weekend_ = wd == 0 || wd == 6;
    const double doy_phase = 2 * std::numbers::pi * (static_cast<double>(day % 365) - 355.0) / 365.25;
    season_light_ = 0.55 + 0.45 * (1 + std::cos(doy_phase)) / 2;  // winter evenings are darker
    const TimeMs day_start = day * kDay - static_cast<TimeMs>(off_s) * 1000;  // UTC of local midnight
    // Keep events still running from yesterday.
    std::vector<Event> carry;
    for (std::size_t i = next_event_; i < plan_.size(); ++i) carry.push_back(plan_[i]);
    plan_ = std::move(carry);
    next_event_ = 0;
    for (int k = 0; k < kKinds; ++k) {
      const Appliance& a = kAppliances[k];
      const int n = rng_.poisson(a.per_day * size_ * (weekend_ ? a.weekend : 1.0));
      double total = 0;
      for (double w : a.tod) total += w;
      for (int j = 0; j < n; ++j) {
        double x = rng_.uniform() * total;
        int h = 0;
        while (h < 23 && x >= a.tod[h]) x -= a.tod[h++];
        const TimeMs start = day_start + h * kHour + static_cast<TimeMs>(rng_.uniform() * kHour);
        const TimeMs len = static_cast<TimeMs>(rng_.uniform(a.min_lo, a.min_hi) * kMin);
        plan_.push_back({start, start + len, static_cast<Kind>(k), rng_.uniform(a.w_lo, a.w_hi),
                         rng_.uniform(0, 180)});
      }
    }
    std::sort(plan_.begin(), plan_.end(), [](const Event& x, const Event& y) { return x.start < y.start; });
    // A WiFi/power dropout of 1-30 min on some days (readings missing, counter keeps counting).
    drop_from_ = drop_to_ = 0;
    if (dropouts_ > 0 && rng_.uniform() < dropouts_) {
      drop_from_ = day_start + static_cast<TimeMs>(rng_.uniform() * kDay);
      drop_to_ = drop_from_ + static_cast<TimeMs>(rng_.uniform(1, 30) * kMin);
    }
  }

  std::string id_;
  Rng rng_;
  TimeMs interval_, phase_, jitter_max_ = 0;
  double dropouts_;
  TimeMs next_base_ = 0, prev_ts_ = 0;
  double base_w_, light_w_, size_, fridge_w_, fridge_period_s_, fridge_duty_, fridge_phase_s_;
  double energy_kwh_, v_drift_, f_dev_;
  TimeMs day_ = INT64_MIN;
  bool weekend_ = false;
  double season_light_ = 1;
  std::vector<Event> plan_, active_;
  std::size_t next_event_ = 0;
  TimeMs drop_from_ = 0, drop_to_ = 0;
  std::uint64_t generated_ = 0;
};

// ---------------------------------------------------------------------------
// Sinks: the real store, or the no-rollup baseline.
class Sink {
 public:
  virtual ~Sink() = default;
  // Returns the number of readings inserted; -1 on error (message printed).
  virtual long long write(std::vector<Reading>& batch, TimeMs received_at) = 0;
  virtual TimeMs newest(const std::string& meter_id) = 0;  // INT64_MIN if none
  virtual std::uint64_t checkpoints() const { return 0; }  // background WAL checkpoints run
};

class StoreSink final : public Sink {
 public:
  explicit StoreSink(std::unique_ptr<meterhub::store::SqliteStore> s) : store_(std::move(s)) {}
  long long write(std::vector<Reading>& batch, TimeMs received_at) override {
    auto r = store_->write(batch, received_at);
    if (!r) {
      std::fprintf(stderr, "histload: write failed: %s\n", r.error().message.c_str());
      return -1;
    }
    long long n = 0;
    for (unsigned char c : r->inserted) n += c;
    return n;
  }
  TimeMs newest(const std::string& meter_id) override {
    meterhub::store::RangeQuery q{meter_id, INT64_MIN, INT64_MAX, 1, true};
    auto r = store_->read_range(q);
    return r && !r->empty() ? r->front().ts : INT64_MIN;
  }
  std::uint64_t checkpoints() const override { return store_->checkpoint_runs(); }
 private:
  std::unique_ptr<meterhub::store::SqliteStore> store_;
};

// Same readings table, pragmas, in-batch sort and one transaction per batch
// as SqliteStore::write, without meters bookkeeping beyond ids and without
// rollups.
class BaselineSink final : public Sink {
 public:
  static std::unique_ptr<BaselineSink> open(const std::string& path) {
    auto b = std::unique_ptr<BaselineSink>(new BaselineSink);
    if (sqlite3_open(path.c_str(), &b->db_) != SQLITE_OK) {
      std::fprintf(stderr, "histload: cannot open %s\n", path.c_str());
      return nullptr;
    }
    const char* setup =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"
        "PRAGMA journal_size_limit=67108864;"
        "CREATE TABLE IF NOT EXISTS smart_meter (id INTEGER PRIMARY KEY, access_id TEXT NOT NULL "
        "UNIQUE);"
        "CREATE TABLE IF NOT EXISTS meter_readings (meter_id INTEGER NOT NULL, ts INTEGER NOT NULL,"
        " voltage REAL NOT NULL, current REAL NOT NULL, power REAL NOT NULL, energy REAL NOT NULL,"
        " frequency REAL, power_factor REAL, PRIMARY KEY (meter_id, ts)) WITHOUT ROWID;";
    if (sqlite3_exec(b->db_, setup, nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db_,
                           "INSERT INTO meter_readings VALUES(?1,?2,?3,?4,?5,?6,?7,?8) "
                           "ON CONFLICT(meter_id, ts) DO NOTHING",
                           -1, &b->ins_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db_,
                           "INSERT INTO smart_meter(access_id) VALUES(?1) ON CONFLICT DO NOTHING",
                           -1, &b->meter_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db_, "SELECT id FROM smart_meter WHERE access_id = ?1", -1, &b->find_,
                           nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "histload: baseline setup failed: %s\n", sqlite3_errmsg(b->db_));
      return nullptr;
    }
    return b;
  }
  ~BaselineSink() override {
    sqlite3_finalize(ins_);
    sqlite3_finalize(meter_);
    sqlite3_finalize(find_);
    sqlite3_close(db_);
  }
  long long write(std::vector<Reading>& batch, TimeMs) override {
    sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    std::vector<std::int64_t> ids(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) ids[i] = id_for(batch[i].meter_id);
    std::vector<std::uint32_t> order(batch.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::uint32_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return ids[a] != ids[b] ? ids[a] < ids[b] : batch[a].ts < batch[b].ts;
    });
    long long n = 0;
    for (std::uint32_t i : order) {
      const Reading& r = batch[i];
      sqlite3_bind_int64(ins_, 1, ids[i]);
      sqlite3_bind_int64(ins_, 2, r.ts);
      sqlite3_bind_double(ins_, 3, r.voltage);
      sqlite3_bind_double(ins_, 4, r.current);
      sqlite3_bind_double(ins_, 5, r.power);
      sqlite3_bind_double(ins_, 6, r.energy);
      sqlite3_bind_double(ins_, 7, *r.frequency);
      sqlite3_bind_double(ins_, 8, *r.power_factor);
      if (sqlite3_step(ins_) != SQLITE_DONE) {
        std::fprintf(stderr, "histload: baseline insert failed: %s\n", sqlite3_errmsg(db_));
        sqlite3_reset(ins_);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return -1;
      }
      sqlite3_reset(ins_);
      n += sqlite3_changes(db_);
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return -1;
    return n;
  }
  TimeMs newest(const std::string& meter_id) override {
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db_,
                       "SELECT max(ts) FROM meter_readings WHERE meter_id = (SELECT id FROM "
                       "smart_meter WHERE access_id = ?1)",
                       -1, &q, nullptr);
    sqlite3_bind_text(q, 1, meter_id.c_str(), -1, SQLITE_TRANSIENT);
    TimeMs t = INT64_MIN;
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
      t = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return t;
  }

 private:
  BaselineSink() = default;
  std::int64_t id_for(const std::string& m) {
    if (auto it = std::find(names_.begin(), names_.end(), m); it != names_.end())
      return ids_[static_cast<std::size_t>(it - names_.begin())];
    sqlite3_bind_text(meter_, 1, m.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(meter_);
    sqlite3_reset(meter_);
    sqlite3_bind_text(find_, 1, m.c_str(), -1, SQLITE_TRANSIENT);
    std::int64_t id = -1;
    if (sqlite3_step(find_) == SQLITE_ROW) id = sqlite3_column_int64(find_, 0);
    sqlite3_reset(find_);
    names_.push_back(m);
    ids_.push_back(id);
    return id;
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt *ins_ = nullptr, *meter_ = nullptr, *find_ = nullptr;
  std::vector<std::string> names_;
  std::vector<std::int64_t> ids_;
};

// ---------------------------------------------------------------------------
std::uint64_t file_size(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

std::string human(double bytes) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", bytes, unit[u]);
  return buf;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Per-table sizes from SQLite's dbstat (reads every page: tens of seconds at
// full scale). Empty when dbstat is not compiled in.
std::vector<std::pair<std::string, std::uint64_t>> table_sizes(const std::string& path) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(db,
                         // Not aggregate=TRUE: SQLite 3.40 sums pgsize per table
                         // in 32 bits there, so tables over 2 GiB came out wrapped.
                         "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC",
                         -1, &q, nullptr) == SQLITE_OK) {
    while (sqlite3_step(q) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)),
                       static_cast<std::uint64_t>(sqlite3_column_int64(q, 1)));
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meterhub-histload: fills a meterhub database with a synthetic year of readings"};
  std::string db = "bench/out/history/history.db";
  double days = 365;
  int meters = 100;
  double big_interval = 1, small_interval = 10;
  std::string end_text = "2026-11-01T00:00:00Z";
  std::size_t batch = 20'000;
  std::string order = "time";
  std::uint64_t seed = 1;
  double dropouts = 0;
  bool fresh = false, baseline = false, no_sizes = false;
  double progress_s = 10;
  app.add_option("--db", db, "database file (created; DB.params / DB.done are written next to it)")
      ->capture_default_str();
  app.add_option("--days", days, "days of history")->check(CLI::Range(0.001, 3660.0))->capture_default_str();
  app.add_option("--meters", meters, "meters at --small-interval (m000..)")
      ->check(CLI::Range(0, 10'000))
      ->capture_default_str();
  app.add_option("--big-interval", big_interval, "seconds between readings of meter \"big\" (0 = no big meter)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--small-interval", small_interval, "seconds between readings of the other meters")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_option("--end", end_text, "end of the history (exclusive), RFC 3339 or epoch s/ms")
      ->capture_default_str();
  app.add_option("--batch", batch, "readings per SqliteStore::write (one transaction)")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--order", order, "time: each batch a time slice of all meters; meter: one meter after the other")
      ->check(CLI::IsMember({"time", "meter"}))
      ->capture_default_str();
  app.add_option("--seed", seed, "random seed of the data set")->capture_default_str();
  app.add_option("--dropouts", dropouts, "probability per meter and day of a 1-30 min gap in the readings")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--progress", progress_s, "seconds between progress lines")->capture_default_str();
  app.add_flag("--fresh", fresh, "delete an existing database (and its markers) first");
  app.add_flag("--no-table-sizes", no_sizes, "skip the per-table size breakdown (dbstat) at the end");
  app.add_flag("--baseline-no-rollups", baseline,
               "diagnostic: write the readings with plain SQLite into a readings table only (no "
               "rollups); not a meterhub database");
  CLI11_PARSE(app, argc, argv);

  TimeMs end = 0;
  {
    auto t = meterhub::core::parse_iso8601(end_text);
    if (!t) {
      char* e = nullptr;
      const double v = std::strtod(end_text.c_str(), &e);
      auto n = (e && *e == '\0') ? meterhub::core::from_epoch_number(v) : t;
      if (!n) {
        std::fprintf(stderr, "histload: bad --end: %s\n", end_text.c_str());
        return 2;
      }
      t = n;
    }
    end = *t;
  }
  const TimeMs big_ms = static_cast<TimeMs>(std::llround(big_interval * 1000));
  const TimeMs small_ms = static_cast<TimeMs>(std::llround(small_interval * 1000));
  const TimeMs span = static_cast<TimeMs>(std::llround(days * kDay));
  const TimeMs start = end - span;

  // Data set identity: what decides the rows (not how they are written).
  char params[512];
  std::snprintf(params, sizeof params,
                "days=%g meters=%d big_interval=%g small_interval=%g end=%" PRId64
                " seed=%" PRIu64 " dropouts=%g baseline=%d\n",
                days, meters, big_interval, small_interval, end, seed, dropouts, baseline ? 1 : 0);
  const std::string params_path = db + ".params", done_path = db + ".done";
  if (fresh) {
    for (const char* suffix : {"", "-wal", "-shm", ".params", ".done"})
      std::filesystem::remove(db + suffix);
  }
  if (std::filesystem::exists(db)) {
    const std::string old = read_file(params_path);
    if (old != params) {
      std::fprintf(stderr,
                   "histload: %s exists with other data-set options:\n  stored:    %s  requested: %s"
                   "Delete it or pass --fresh.\n",
                   db.c_str(), old.empty() ? "(no .params file)\n" : old.c_str(), params);
      return 2;
    }
    if (std::filesystem::exists(done_path)) {
      std::printf("histload: %s is complete (%s); nothing to do. --fresh reloads it.\n", db.c_str(),
                  done_path.c_str());
      std::fputs(read_file(done_path).c_str(), stdout);
      return 0;
    }
    std::printf("histload: resuming the load of %s\n", db.c_str());
  } else {
    if (auto p = std::filesystem::path(db).parent_path(); !p.empty())
      std::filesystem::create_directories(p);
  }
  std::filesystem::remove(done_path);
  {
    std::ofstream f(params_path);
    f << params;
  }

  std::unique_ptr<Sink> sink;
  if (baseline) {
    sink = BaselineSink::open(db);
    if (!sink) return 1;
  } else {
    auto s = meterhub::store::SqliteStore::open({db});
    if (!s) {
      std::fprintf(stderr, "histload: %s\n", s.error().message.c_str());
      return 1;
    }
    sink = std::make_unique<StoreSink>(std::move(*s));
  }

  // Meters: "big" first (its own seed), then m000...
  std::vector<Household> hh;
  if (big_ms > 0) hh.emplace_back("big", seed * 1'000'003 + 7, start, big_ms, 0, dropouts);
  for (int i = 0; i < meters; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "m%03d", i);
    const TimeMs phase = (static_cast<TimeMs>(i) * 7'919) % small_ms;  // meters do not tick together
    hh.emplace_back(id, seed * 1'000'003 + 1000 + static_cast<std::uint64_t>(i), start, small_ms,
                    phase, dropouts);
  }
  double per_sec = 0;  // readings per second of history, all meters
  for (const auto& h : hh)
    per_sec += 1000.0 / static_cast<double>(h.id() == "big" ? big_ms : small_ms);
  const double expected = per_sec * static_cast<double>(span) / 1000.0;

  std::vector<TimeMs> skip(hh.size(), INT64_MIN);
  std::uint64_t already = 0;
  for (std::size_t i = 0; i < hh.size(); ++i) {
    skip[i] = sink->newest(hh[i].id());
    if (skip[i] != INT64_MIN) ++already;
  }
  if (already) std::printf("histload: %" PRIu64 " meters already have readings; continuing after each one's newest\n", already);

  // Time slice holding about `batch` readings of all meters (whole seconds).
  TimeMs slice = static_cast<TimeMs>(static_cast<double>(batch) / per_sec) * 1000;
  slice = std::max<TimeMs>(slice, 1000);

  std::printf(
      "histload: %zu meters (%s), %g days %s .. %s, ~%.0f readings (%.1f M), batch %zu, order %s%s\n",
      hh.size(), big_ms > 0 ? "big + m000.." : "m000..", days,
      meterhub::core::format_iso8601(start).c_str(), meterhub::core::format_iso8601(end).c_str(),
      expected, expected / 1e6, batch, order.c_str(), baseline ? " [BASELINE: no rollups]" : "");
  std::fflush(stdout);

  std::vector<Reading> buf;
  buf.reserve(batch + batch / 4);
  std::uint64_t inserted = 0, written = 0, batches = 0;
  double gen_s = 0, write_s = 0;
  std::vector<double> write_ms;  // per batch
  write_ms.reserve(static_cast<std::size_t>(expected / static_cast<double>(batch)) + 16);
  const auto t_start = Clock::now();
  auto last_progress = t_start;
  std::uint64_t last_written = 0;
  double last_write_s = 0;
  std::uint64_t last_batches = 0;
  bool failed = false;

  auto flush = [&](TimeMs received_at) {
    if (buf.empty()) return;
    const auto t0 = Clock::now();
    const long long n = sink->write(buf, received_at);
    const double dt = secs_since(t0);
    write_s += dt;
    write_ms.push_back(dt * 1000);
    if (n < 0) {
      failed = true;
      return;
    }
    inserted += static_cast<std::uint64_t>(n);
    written += buf.size();
    ++batches;
    buf.clear();
  };
  auto progress = [&](double done_frac, bool force) {
    const auto now = Clock::now();
    if (!force && std::chrono::duration<double>(now - last_progress).count() < progress_s) return;
    const double el = secs_since(t_start);
    const double recent = std::chrono::duration<double>(now - last_progress).count();
    const double rate = el > 0 ? static_cast<double>(written) / el : 0;
    const double rate_recent = recent > 0 ? static_cast<double>(written - last_written) / recent : 0;
    const double wms = batches > last_batches ? (write_s - last_write_s) * 1000 / static_cast<double>(batches - last_batches) : 0;
    const double eta = done_frac > 0 ? el / done_frac * (1 - done_frac) : 0;
    std::printf(
        "[histload %7.0fs] %5.1f%%  written %" PRIu64 "  %.0f readings/s (last %.0fs: %.0f/s, %.0f ms/batch)  "
        "gen %.0f%% write %.0f%%  db+wal %s  ETA %.0f min\n",
        el, done_frac * 100, written, rate, recent, rate_recent, wms, el > 0 ? gen_s / el * 100 : 0,
        el > 0 ? write_s / el * 100 : 0, human(static_cast<double>(file_size(db) + file_size(db + "-wal"))).c_str(),
        eta / 60);
    std::fflush(stdout);
    last_progress = now;
    last_written = written;
    last_write_s = write_s;
    last_batches = batches;
  };

  if (order == "time") {
    for (TimeMs t0 = start; t0 < end && !failed; t0 += slice) {
      const TimeMs t1 = std::min(end, t0 + slice);
      const auto g0 = Clock::now();
      for (std::size_t i = 0; i < hh.size(); ++i) hh[i].fill(t0, t1, skip[i], buf);
      // Arrival order: by time across meters (the store sorts by meter and
      // time itself before inserting).
      std::sort(buf.begin(), buf.end(), [](const Reading& a, const Reading& b) { return a.ts < b.ts; });
      gen_s += secs_since(g0);
      flush(t1);
      progress(static_cast<double>(t1 - start) / static_cast<double>(span), false);
    }
  } else {
    // One meter after the other: slices of `batch` readings of that meter.
    double done_readings = 0;
    for (std::size_t i = 0; i < hh.size() && !failed; ++i) {
      const TimeMs interval = hh[i].id() == "big" ? big_ms : small_ms;
      const TimeMs mslice = std::max<TimeMs>(interval, static_cast<TimeMs>(batch) * interval);
      for (TimeMs t0 = start; t0 < end && !failed; t0 += mslice) {
        const TimeMs t1 = std::min(end, t0 + mslice);
        const auto g0 = Clock::now();
        hh[i].fill(t0, t1, skip[i], buf);
        gen_s += secs_since(g0);
        flush(t1);
        progress((done_readings + static_cast<double>(hh[i].generated())) / expected, false);
      }
      done_readings += static_cast<double>(hh[i].generated());
    }
  }
  if (failed) {
    std::fprintf(stderr, "histload: stopped after an error; rerun to resume\n");
    return 1;
  }
  progress(1.0, true);
  const double total_s = secs_since(t_start);
  const std::uint64_t db_bytes = file_size(db), wal_bytes = file_size(db + "-wal");

  std::sort(write_ms.begin(), write_ms.end());
  auto pct = [&](double p) {
    if (write_ms.empty()) return 0.0;
    return write_ms[std::min(write_ms.size() - 1, static_cast<std::size_t>(p * static_cast<double>(write_ms.size())))];
  };
  std::printf("histload: done in %.1f s: %" PRIu64 " readings written in %" PRIu64
              " batches (%" PRIu64 " new), %.0f readings/s overall, %.0f readings/s inside write()\n",
              total_s, written, batches, inserted, static_cast<double>(written) / total_s,
              write_s > 0 ? static_cast<double>(written) / write_s : 0);
  std::printf("histload: time split: generating %.1f s, store write %.1f s (per batch p50 %.1f / p99 %.1f / max %.1f ms)\n",
              gen_s, write_s, pct(0.5), pct(0.99), write_ms.empty() ? 0.0 : write_ms.back());
  std::printf("histload: size before close: db %s + wal %s = %s, %.1f bytes/reading\n",
              human(static_cast<double>(db_bytes)).c_str(), human(static_cast<double>(wal_bytes)).c_str(),
              human(static_cast<double>(db_bytes + wal_bytes)).c_str(),
              written ? static_cast<double>(db_bytes + wal_bytes) / static_cast<double>(written) : 0);
  const std::uint64_t ckpt_runs = sink->checkpoints();
  if (!baseline) std::printf("histload: background WAL checkpoints run by the store: %" PRIu64 "\n", ckpt_runs);

  // Close (the last connection checkpoints the WAL into the file).
  const auto c0 = Clock::now();
  sink.reset();
  const double close_s = secs_since(c0);
  const std::uint64_t final_db = file_size(db), final_wal = file_size(db + "-wal");
  std::printf("histload: closed in %.1f s; db %s + wal %s\n", close_s,
              human(static_cast<double>(final_db)).c_str(), human(static_cast<double>(final_wal)).c_str());

  // Total readings in the DB: ask it (cheap at small scale, and correct after a resume).
  std::uint64_t rows = 0;
  {
    sqlite3* h = nullptr;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* q = nullptr;
      // count(*) of a WITHOUT ROWID table walks its leaves; still seconds at full scale
      if (sqlite3_prepare_v2(h, "SELECT count(*) FROM meter_readings", -1, &q, nullptr) == SQLITE_OK &&
          sqlite3_step(q) == SQLITE_ROW)
        rows = static_cast<std::uint64_t>(sqlite3_column_int64(q, 0));
      sqlite3_finalize(q);
    }
    sqlite3_close(h);
  }
  std::string sizes_kv;
  if (!no_sizes) {
    const auto s0 = Clock::now();
    const auto sizes = table_sizes(db);
    std::printf("histload: per-table sizes (dbstat, %.1f s):\n", secs_since(s0));
    for (const auto& [name, bytes] : sizes) {
      std::printf("  %-40s %12s  %6.1f bytes/reading\n", name.c_str(), human(static_cast<double>(bytes)).c_str(),
                  rows ? static_cast<double>(bytes) / static_cast<double>(rows) : 0);
      if (name == "meter_readings" || name == "rollup_1m" || name == "rollup_1h")
        sizes_kv += " bytes_" + name + "=" + std::to_string(bytes);
    }
  }
  char result[1024];
  std::snprintf(result, sizeof result,
                "RESULT rows=%" PRIu64 " written=%" PRIu64 " inserted=%" PRIu64 " load_s=%.1f readings_per_s=%.0f "
                "write_s=%.1f gen_s=%.1f batch=%zu order=%s batch_p50_ms=%.1f batch_p99_ms=%.1f "
                "batch_max_ms=%.1f db_wal_bytes=%" PRIu64 " final_db_bytes=%" PRIu64
                " bytes_per_reading=%.1f resumed=%d baseline=%d checkpoints=%" PRIu64 "%s\n",
                rows, written, inserted, total_s, static_cast<double>(written) / total_s, write_s, gen_s,
                batch, order.c_str(), pct(0.5), pct(0.99), write_ms.empty() ? 0.0 : write_ms.back(),
                db_bytes + wal_bytes, final_db,
                rows ? static_cast<double>(final_db) / static_cast<double>(rows) : 0, already ? 1 : 0,
                baseline ? 1 : 0, ckpt_runs, sizes_kv.c_str());
  std::fputs(result, stdout);
  {
    std::ofstream f(done_path);
    f << params << result;
  }
  return 0;
}

// meterhub-histquery: in-process timing of the history queries of the
// history benchmark (bench/history.sh, bench/README.md), on a database that
// meterhub-histload filled.
//
// For each case (series of --meter over the last 1 h, 1 day, 30 days and 365
// days with step=auto and 1000 points; daily energy in --tz over the last
// 365 days) it times two ways to the same answer, with the store and query
// code the server uses:
//
//   server path: what GET /series and /energy do inside their query task
//                (src/api/history.cpp): find_meter, then read_rollup +
//                query::regroup for whole-minute/hour steps (read_range +
//                query::bucketize below a minute); for energy also
//                period_boundaries and the tariff look-ups, then
//                read_rollup + energy_report. No HTTP, no JSON encoding.
//                --reps timed runs after --warmup, p50/p99/max.
//   raw path:    the same buckets computed from the raw readings:
//                read_range over the range + query::bucketize (energy:
//                bucketize at the rollup width, then energy_report). The
//                range is read in chunks of whole buckets of about
//                --raw-chunk-days (with the same 3-before/1-after context as
//                the server), so a year of 1 s readings (31.5 M rows) does
//                not need 3 GB of Reading objects; the answer is identical.
//                Timed up to --raw-reps times, fewer when a run takes long
//                (--raw-budget seconds per case).
//
// Both answers are compared bucket by bucket (bucket starts and reading
// counts exactly; kWh and power averages within 1e-6 relative).
// Prints a table and, with --json FILE, the numbers for history_query.py.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "query/calendar.hpp"
#include "query/energy_report.hpp"
#include "query/series.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

using meterhub::core::Aggregate;
using meterhub::core::Reading;
using meterhub::core::TimeMs;
namespace store = meterhub::store;
namespace query = meterhub::query;
using Clock = std::chrono::steady_clock;

constexpr TimeMs kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // nearest rank
  const auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "histquery: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T check(meterhub::core::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().message);
  return std::move(*r);
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

struct Answer {
  std::vector<Aggregate> buckets;           // series
  std::vector<query::PeriodEnergy> periods;  // energy
  double total_kwh = 0;
  std::size_t rows = 0;  // rows read (rollup rows or raw readings)
};

struct Case {
  std::string name, kind;  // kind: series | energy
  TimeMs from = 0, to = 0, lo = 0, hi = 0, step = 0;
  std::string source;  // what the server uses
  std::vector<TimeMs> bounds;
  std::vector<double> server_ms, read_ms, raw_ms;
  Answer server, raw;
  std::size_t mismatched = 0;
  double max_kwh_diff = 0, max_power_rel = 0;
};

class Runner {
 public:
  Runner(store::SqliteStore& s, std::string meter, meterhub::core::CounterRules rules,
         TimeMs chunk)
      : store_(s), meter_(std::move(meter)), rules_(rules), chunk_(chunk) {}

  double read_ms = 0;  // time of the last server-path call spent in read_rollup

  // src/api/history.cpp get_series, the query task.
  Answer series_server(const Case& c) {
    Answer a;
    read_ms = 0;
    auto m = check(store_.find_meter(meter_), "find_meter");
    if (!m) die("no meter " + meter_);
    if (c.step % kHour == 0) {
      const auto t0 = Clock::now();
      auto rows = check(store_.read_rollup(meter_, store::Rollup::hour, c.lo, c.hi), "read_rollup");
      read_ms = ms_since(t0);
      a.rows = rows.size();
      a.buckets = query::regroup(rows, c.step);
    } else if (c.step % kMinute == 0) {
      const auto t0 = Clock::now();
      auto rows = check(store_.read_rollup(meter_, store::Rollup::minute, c.lo, c.hi), "read_rollup");
      read_ms = ms_since(t0);
      a.rows = rows.size();
      a.buckets = query::regroup(rows, c.step);
    } else {
      const auto t0 = Clock::now();
      a = raw_buckets(c.lo, c.hi, c.step);
      read_ms = ms_since(t0);  // includes bucketize here
    }
    return a;
  }

  // The buckets of [lo, hi) at `step` from raw readings, in chunks of whole buckets.
  Answer raw_buckets(TimeMs lo, TimeMs hi, TimeMs step) {
    Answer a;
    const TimeMs chunk = std::max<TimeMs>(step, chunk_ / step * step);
    for (TimeMs c0 = lo; c0 < hi; c0 += chunk) {
      const TimeMs c1 = std::min(hi, c0 + chunk);
      store::RangeQuery q{meter_, c0, c1, std::numeric_limits<std::size_t>::max() / 2, false};
      auto rows = check(store_.read_range(q), "read_range");
      store::RangeQuery b{meter_, std::numeric_limits<TimeMs>::min(), c0,
                          meterhub::core::kContextBefore, true};
      auto before = check(store_.read_range(b), "read_range before");
      std::reverse(before.begin(), before.end());
      store::RangeQuery n{meter_, c1, std::numeric_limits<TimeMs>::max(), 1, false};
      auto after = check(store_.read_range(n), "read_range after");
      std::optional<Reading> next;
      if (!after.empty()) next = after.front();
      a.rows += rows.size();
      auto part = query::bucketize(rows, before, next, step, rules_);
      a.buckets.insert(a.buckets.end(), part.begin(), part.end());
    }
    return a;
  }

  // src/api/history.cpp get_energy, the query task (no tariff in this data set).
  Answer energy_server(const Case& c, const query::TimeZone& tz) {
    Answer a;
    read_ms = 0;
    // The server computes the period boundaries per request (before the query task).
    const auto bounds = check(query::period_boundaries(tz, query::Period::day, c.from, c.to, 10'000), "bounds");
    if (bounds != c.bounds) die("period boundaries differ between runs");
    auto m = check(store_.find_meter(meter_), "find_meter");
    if (!m) die("no meter " + meter_);
    for (const std::string& scope : {meter_, std::string()}) (void)check(store_.tariff(scope), "tariff");
    const TimeMs width = query::bucket_width_for(c.bounds, tz, nullptr);
    const auto t0 = Clock::now();
    auto rows = check(store_.read_rollup(meter_, width == kHour ? store::Rollup::hour : store::Rollup::minute,
                                         c.bounds.front(), c.bounds.back()),
                      "read_rollup");
    read_ms = ms_since(t0);
    a.rows = rows.size();
    std::vector<query::KwhBucket> kwh;
    kwh.reserve(rows.size());
    for (const auto& r : rows) kwh.push_back({r.start, r.kwh});
    auto rep = query::energy_report(kwh, c.bounds, tz, nullptr);
    a.periods = std::move(rep.periods);
    a.total_kwh = rep.kwh;
    return a;
  }

  Answer energy_raw(const Case& c, const query::TimeZone& tz) {
    const TimeMs width = query::bucket_width_for(c.bounds, tz, nullptr);
    Answer a = raw_buckets(c.bounds.front(), c.bounds.back(), width);
    std::vector<query::KwhBucket> kwh;
    kwh.reserve(a.buckets.size());
    for (const auto& b : a.buckets) kwh.push_back({b.start, b.kwh});
    auto rep = query::energy_report(kwh, c.bounds, tz, nullptr);
    a.periods = std::move(rep.periods);
    a.total_kwh = rep.kwh;
    a.buckets.clear();
    return a;
  }

 private:
  store::SqliteStore& store_;
  std::string meter_;
  meterhub::core::CounterRules rules_;
  TimeMs chunk_;
};

void compare(Case& c) {
  auto rel = [](double x, double y) {
    const double d = std::fabs(x - y), m = std::max(std::fabs(x), std::fabs(y));
    return m > 0 ? d / m : 0.0;
  };
  if (c.kind == "series") {
    const auto &s = c.server.buckets, &r = c.raw.buckets;
    if (s.size() != r.size()) c.mismatched += s.size() > r.size() ? s.size() - r.size() : r.size() - s.size();
    for (std::size_t i = 0; i < std::min(s.size(), r.size()); ++i) {
      const double dk = std::fabs(s[i].kwh - r[i].kwh);
      const double dp = rel(s[i].power.avg(), r[i].power.avg());
      c.max_kwh_diff = std::max(c.max_kwh_diff, dk);
      c.max_power_rel = std::max(c.max_power_rel, dp);
      if (s[i].start != r[i].start || s[i].count != r[i].count || s[i].power.min != r[i].power.min ||
          s[i].power.max != r[i].power.max || dk > 1e-6 * std::max(1.0, std::fabs(r[i].kwh)) || dp > 1e-6)
        ++c.mismatched;
    }
  } else {
    const auto &s = c.server.periods, &r = c.raw.periods;
    if (s.size() != r.size()) c.mismatched += s.size() > r.size() ? s.size() - r.size() : r.size() - s.size();
    for (std::size_t i = 0; i < std::min(s.size(), r.size()); ++i) {
      const double dk = std::fabs(s[i].kwh - r[i].kwh);
      c.max_kwh_diff = std::max(c.max_kwh_diff, dk);
      if (s[i].start != r[i].start || dk > 1e-6 * std::max(1.0, std::fabs(r[i].kwh))) ++c.mismatched;
    }
  }
}

std::string json_num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meterhub-histquery: in-process history query timings, rollups vs raw readings"};
  std::string db, meter = "big", tz_name = "Europe/Berlin", json_out, end_text, only;
  int reps = 50, warmup = 5, raw_reps = 3;
  double raw_budget_s = 60, chunk_days = 7, max_power_kw = 1000;
  app.add_option("--db", db, "database filled by meterhub-histload")->required();
  app.add_option("--meter", meter, "meter to query")->capture_default_str();
  app.add_option("--end", end_text,
                 "end of the ranges (RFC 3339 or epoch s/ms); default: the hour after the meter's newest reading");
  app.add_option("--tz", tz_name, "time zone of the daily energy")->capture_default_str();
  app.add_option("--reps", reps, "timed runs of the server path per case")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed runs first")->capture_default_str();
  app.add_option("--raw-reps", raw_reps, "timed runs of the raw path per case, at most")->capture_default_str();
  app.add_option("--raw-budget", raw_budget_s, "seconds of raw-path runs per case before stopping early")
      ->capture_default_str();
  app.add_option("--raw-chunk-days", chunk_days, "raw readings are read and bucketized in chunks of about this span")
      ->capture_default_str();
  app.add_option("--max-power-kw", max_power_kw, "counter rule, as the server's --max-power-kw")->capture_default_str();
  app.add_option("--only", only, "run only the case with this name (1h, 1d, 30d, 365d, energy)");
  app.add_option("--json", json_out, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  meterhub::core::CounterRules rules;
  rules.max_power_w = max_power_kw * 1000;
  store::SqliteOptions opts{db};
  opts.counter_rules = rules;
  auto st = check(store::SqliteStore::open(opts), "open");
  auto meter_info = check(st->find_meter(meter), "find_meter");
  if (!meter_info || !meter_info->latest) die("meter " + meter + " has no readings in " + db);

  TimeMs end = 0;
  if (!end_text.empty()) {
    if (auto t = meterhub::core::parse_iso8601(end_text)) {
      end = *t;
    } else {
      char* rest = nullptr;
      const double v = std::strtod(end_text.c_str(), &rest);
      auto n = meterhub::core::from_epoch_number(v);
      if (rest == end_text.c_str() || *rest != '\0' || !n) die("bad --end: " + end_text);
      end = *n;
    }
  } else {
    end = meterhub::core::bucket_start(meter_info->latest->ts, kHour) + kHour;
  }
  auto tz = check(query::TimeZone::locate(tz_name), "--tz");

  std::vector<Case> cases;
  for (auto [name, span] : {std::pair{"1h", kHour}, std::pair{"1d", kDay}, std::pair{"30d", 30 * kDay},
                            std::pair{"365d", 365 * kDay}}) {
    Case c;
    c.name = name;
    c.kind = "series";
    c.from = end - span;
    c.to = end;
    c.step = query::auto_step(c.from, c.to, 1000);
    c.lo = meterhub::core::bucket_start(c.from, c.step);
    c.hi = meterhub::core::bucket_start(c.to - 1, c.step) + c.step;
    c.source = c.step % kHour == 0 ? "rollup_1h" : c.step % kMinute == 0 ? "rollup_1m" : "raw";
    cases.push_back(std::move(c));
  }
  {
    Case c;
    c.name = "energy";
    c.kind = "energy";
    c.from = end - 365 * kDay;
    c.to = end;
    c.bounds = check(query::period_boundaries(tz, query::Period::day, c.from, c.to, 10'000), "bounds");
    c.lo = c.bounds.front();
    c.hi = c.bounds.back();
    c.step = query::bucket_width_for(c.bounds, tz, nullptr);
    c.source = c.step == kHour ? "rollup_1h" : "rollup_1m";
    cases.push_back(std::move(c));
  }

  Runner run(*st, meter, rules, static_cast<TimeMs>(chunk_days * static_cast<double>(kDay)));
  std::printf("histquery: %s meter %s, ranges ending %s, %d+%d server-path runs, raw path up to %d runs / %.0f s\n",
              db.c_str(), meter.c_str(), meterhub::core::format_iso8601(end).c_str(), warmup, reps, raw_reps,
              raw_budget_s);
  std::printf("%-7s %-6s %-10s %8s %9s | %-28s %9s | %10s %12s %8s | %s\n", "case", "step", "source", "buckets",
              "rows", "server path p50/p99/max ms", "read p50", "raw rows", "raw ms", "x", "same answer");
  for (Case& c : cases) {
    if (!only.empty() && only != c.name) continue;
    auto server_once = [&] {
      return c.kind == "series" ? run.series_server(c) : run.energy_server(c, tz);
    };
    for (int i = 0; i < warmup; ++i) c.server = server_once();
    for (int i = 0; i < reps; ++i) {
      const auto t0 = Clock::now();
      c.server = server_once();
      c.server_ms.push_back(ms_since(t0));
      c.read_ms.push_back(run.read_ms);
    }
    const auto b0 = Clock::now();
    for (int i = 0; i < raw_reps; ++i) {
      const auto t0 = Clock::now();
      c.raw = c.kind == "series" ? run.raw_buckets(c.lo, c.hi, c.step) : run.energy_raw(c, tz);
      c.raw_ms.push_back(ms_since(t0));
      if (ms_since(b0) > raw_budget_s * 1000) break;
    }
    if (!c.raw_ms.empty()) compare(c);
    const double raw_best =
        c.raw_ms.empty() ? std::nan("") : *std::min_element(c.raw_ms.begin(), c.raw_ms.end());
    const std::size_t n = c.kind == "series" ? c.server.buckets.size() : c.server.periods.size();
    char srv[64], same[128];
    std::snprintf(srv, sizeof srv, "%.2f / %.2f / %.2f", pct(c.server_ms, 0.5), pct(c.server_ms, 0.99),
                  pct(c.server_ms, 1.0));
    std::snprintf(same, sizeof same, "%s (max |dkWh| %.2g, power avg rel %.2g)",
                  c.raw_ms.empty() ? "not compared"
                  : c.mismatched == 0 ? "yes"
                                      : ("NO: " + std::to_string(c.mismatched) + " differ").c_str(),
                  c.max_kwh_diff, c.max_power_rel);
    std::printf("%-7s %-6s %-10s %8zu %9zu | %-28s %9.2f | %10zu %12.1f %8.1f | %s\n", c.name.c_str(),
                c.step % kDay == 0 ? (std::to_string(c.step / kDay) + "d").c_str()
                : c.step % kHour == 0 ? (std::to_string(c.step / kHour) + "h").c_str()
                : c.step % kMinute == 0 ? (std::to_string(c.step / kMinute) + "m").c_str()
                                        : (std::to_string(c.step / 1000) + "s").c_str(),
                c.source.c_str(), n, c.server.rows, srv, pct(c.read_ms, 0.5), c.raw.rows, raw_best, raw_best / pct(c.server_ms, 0.5), same);
    std::fflush(stdout);
  }
  std::printf("histquery: peak RSS %.0f MiB\n", static_cast<double>(peak_rss_kib()) / 1024);

  if (!json_out.empty()) {
    std::string j = "{\"db\": \"" + db + "\", \"meter\": \"" + meter + "\", \"end\": " + std::to_string(end) +
                    ", \"peak_rss_kib\": " + std::to_string(peak_rss_kib()) + ", \"cases\": [";
    bool first = true;
    for (const Case& c : cases) {
      if (c.server_ms.empty()) continue;
      if (!first) j += ", ";
      first = false;
      const std::size_t n = c.kind == "series" ? c.server.buckets.size() : c.server.periods.size();
      j += "{\"name\": \"" + c.name + "\", \"kind\": \"" + c.kind + "\", \"from\": " + std::to_string(c.from) +
           ", \"to\": " + std::to_string(c.to) + ", \"step_ms\": " + std::to_string(c.step) +
           ", \"source\": \"" + c.source + "\", \"buckets\": " + std::to_string(n) +
           ", \"server_rows\": " + std::to_string(c.server.rows) + ", \"raw_rows\": " +
           std::to_string(c.raw.rows) + ", \"server_p50_ms\": " + json_num(pct(c.server_ms, 0.5)) +
           ", \"server_p99_ms\": " + json_num(pct(c.server_ms, 0.99)) +
           ", \"server_max_ms\": " + json_num(pct(c.server_ms, 1.0)) +
           ", \"read_p50_ms\": " + json_num(pct(c.read_ms, 0.5)) + ", \"raw_ms\": [";
      for (std::size_t i = 0; i < c.raw_ms.size(); ++i) j += (i ? ", " : "") + json_num(c.raw_ms[i]);
      double total = c.server.total_kwh;
      if (c.kind == "series") {
        total = 0;
        for (const auto& b : c.server.buckets) total += b.kwh;
      }
      j += "], \"mismatched\": " + std::to_string(c.mismatched) + ", \"max_kwh_diff\": " +
           json_num(c.max_kwh_diff) + ", \"max_power_rel\": " + json_num(c.max_power_rel) +
           ", \"total_kwh\": " + json_num(total) + "}";
    }
    j += "]}\n";
    std::ofstream(json_out) << j;
  }
  return 0;
}

// History endpoints of the Router: bucketed series, energy and cost per
// calendar period, tariffs. They read rollups where the step allows and raw
// readings otherwise (docs/api.md "Series", docs/energy.md).
#include <algorithm>
#include <charconv>
#include <limits>
#include <map>

#include "api/responses.hpp"
#include "api/router.hpp"
#include "api/target.hpp"
#include "codec/json_writer.hpp"
#include "codec/series_codec.hpp"
#include "codec/tariff_codec.hpp"
#include "core/time.hpp"
#include "query/calendar.hpp"
#include "query/energy_report.hpp"
#include "query/series.hpp"

namespace meterhub::api {
namespace {

using codec::JsonWriter;
constexpr core::TimeMs kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;

Response invalid(std::string message) {
  return error_response(400, "invalid_parameter", std::move(message));
}

Response csv_response(std::string body) {
  Response r = json_response(200, std::move(body));
  r.content_type = "text/csv; charset=utf-8";
  return r;
}

core::Result<std::size_t> parse_count(std::string_view name, std::string_view v, std::size_t max) {
  std::size_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 1 || n > max)
    return core::fail(
        "invalid_parameter",
        std::string(name) + " must be a whole number from 1 to " + std::to_string(max));
  return n;
}

// from/to with defaults: to = now, from = to - span.
core::Result<std::pair<core::TimeMs, core::TimeMs>> parse_range(const Target& t,
                                                                core::TimeMs default_span) {
  core::TimeMs to = core::now_ms();
  if (auto v = t.param("to")) {
    auto r = parse_time_param("to", *v);
    if (!r) return std::unexpected(r.error());
    to = *r;
  }
  core::TimeMs from = to - default_span;
  if (auto v = t.param("from")) {
    auto r = parse_time_param("from", *v);
    if (!r) return std::unexpected(r.error());
    from = *r;
  }
  if (from >= to) return core::fail("invalid_parameter", "from must be before to");
  // Keeps bucket arithmetic far from overflow, and the answer's bounds (the
  // range widened to whole buckets or periods, up to a month) printable.
  constexpr core::TimeMs kLatest = 253'370'764'800'000;  // 9999-01-01T00:00:00Z
  if (from < query::kCalendarMin + 400 * kDay || to > kLatest)
    return core::fail("invalid_parameter",
                      "from and to must lie between the years 2 and 9998 (inclusive)");
  return std::pair{from, to};
}

}  // namespace

void Router::get_series(std::string meter_id, const Request& req, const Target& t,
                        Responder& respond) {
  std::string format_error;
  const bool csv = wants_csv(req, t, format_error);
  if (!format_error.empty()) return respond(invalid(format_error));
  auto range = parse_range(t, kDay);
  if (!range) return respond(bad_parameter(range.error()));
  auto [from, to] = *range;
  std::size_t points = std::min<std::size_t>(1000, opts_.max_buckets);
  if (auto v = t.param("points")) {
    auto n = parse_count("points", *v, opts_.max_buckets);
    if (!n) return respond(bad_parameter(n.error()));
    points = *n;
  }
  core::TimeMs step = 0;
  const auto step_param = t.param("step");
  if (!step_param || *step_param == "auto") {
    step = query::auto_step(from, to, points);
  } else {
    auto s = query::parse_step(*step_param);
    if (!s) return respond(bad_parameter(s.error()));
    step = *s;
  }
  unsigned fields = codec::kAllFields;
  if (auto v = t.param("fields")) {
    auto f = codec::parse_series_fields(*v);
    if (!f) return respond(bad_parameter(f.error()));
    fields = *f;
  }
  // Whole buckets: the range is widened to the step grid (epoch-aligned).
  const core::TimeMs lo = core::bucket_start(from, step);
  const core::TimeMs hi = core::bucket_start(to - 1, step) + step;
  if (static_cast<std::size_t>((hi - lo) / step) > opts_.max_buckets)
    return respond(error_response(
        400, "range_too_large",
        "the range holds " + std::to_string((hi - lo) / step) + " buckets of this step; at most " +
            std::to_string(opts_.max_buckets) + ": use a larger step or step=auto"));

  query(respond, [this, meter_id = std::move(meter_id), lo, hi, step, fields, csv]() -> Response {
    if (auto missing = require_meter(meter_id)) return std::move(*missing);
    codec::SeriesMeta meta{meter_id, lo, hi, step, ""};
    std::vector<core::Aggregate> buckets;
    // The coarsest table whose buckets tile the step; raw below a minute.
    if (step % kHour == 0) {
      meta.source = "rollup_1h";
      auto rows = store_.read_rollup(meter_id, store::Rollup::hour, lo, hi);
      if (!rows) return from_store_error(rows.error());
      buckets = query::regroup(*rows, step);
    } else if (step % kMinute == 0) {
      meta.source = "rollup_1m";
      auto rows = store_.read_rollup(meter_id, store::Rollup::minute, lo, hi);
      if (!rows) return from_store_error(rows.error());
      buckets = query::regroup(*rows, step);
    } else {
      meta.source = "raw";
      store::RangeQuery q{meter_id, lo, hi, opts_.max_raw_rows + 1, false};
      auto rows = store_.read_range(q);
      if (!rows) return from_store_error(rows.error());
      if (rows->size() > opts_.max_raw_rows)
        return error_response(400, "range_too_large",
                              "more than " + std::to_string(opts_.max_raw_rows) +
                                  " readings in range for a step under 1m; use a step of whole "
                                  "minutes or a shorter range");
      // Context for the consumption of the first and last readings.
      store::RangeQuery b{meter_id, std::numeric_limits<core::TimeMs>::min(), lo,
                          core::kContextBefore, true};
      auto before = store_.read_range(b);
      store::RangeQuery a{meter_id, hi, std::numeric_limits<core::TimeMs>::max(), 1, false};
      auto after = store_.read_range(a);
      if (!before) return from_store_error(before.error());
      if (!after) return from_store_error(after.error());
      std::reverse(before->begin(), before->end());
      std::optional<core::Reading> next;
      if (!after->empty()) next = after->front();
      buckets = query::bucketize(*rows, *before, next, step, opts_.counter_rules);
    }
    if (csv) return csv_response(codec::encode_series_csv(buckets, fields));
    return json_response(200, codec::encode_series_json(meta, buckets, fields));
  });
}

void Router::get_energy(std::string meter_id, const Request& req, const Target& t,
                        Responder& respond) {
  std::string format_error;
  const bool csv = wants_csv(req, t, format_error);
  if (!format_error.empty()) return respond(invalid(format_error));
  query::Period period = query::Period::day;
  if (auto v = t.param("period")) {
    auto p = query::parse_period(*v);
    if (!p) return respond(bad_parameter(p.error()));
    period = *p;
  }
  // Default ranges: the last 48 hours, 30 days, 12 weeks or 12 months.
  const core::TimeMs span = period == query::Period::hour   ? 2 * kDay
                            : period == query::Period::day  ? 30 * kDay
                            : period == query::Period::week ? 84 * kDay
                                                            : 365 * kDay;
  auto range = parse_range(t, span);
  if (!range) return respond(bad_parameter(range.error()));
  auto tz = query::TimeZone::locate(t.param("tz").value_or(opts_.default_tz));
  if (!tz && tz.error().code == "tz_unavailable") return respond(unavailable(tz.error(), "60"));
  if (!tz) return respond(bad_parameter(tz.error()));
  auto bounds =
      query::period_boundaries(*tz, period, range->first, range->second, opts_.max_periods);
  if (!bounds) return respond(bad_parameter(bounds.error()));

  query(respond,
        [this, meter_id = std::move(meter_id), tz = *tz, period, bounds = *bounds,
         csv]() -> Response {
          if (auto missing = require_meter(meter_id)) return std::move(*missing);
          // The meter's tariff, else the server's, else none (no cost).
          std::optional<core::Tariff> tariff;
          std::string tariff_source = "none";
          for (const std::string& scope : {meter_id, std::string()}) {
            auto doc = store_.tariff(scope);
            if (!doc) return from_store_error(doc.error());
            if (!*doc) continue;
            auto parsed = codec::decode_tariff(**doc);
            if (!parsed) continue;  // stored by this server, so valid; skip rather than fail
            tariff = std::move(*parsed);
            tariff_source = scope.empty() ? "server" : "meter";
            break;
          }
          const core::Tariff* tp = tariff ? &*tariff : nullptr;
          core::TimeMs width = query::bucket_width_for(bounds, tz, tp);
          // Minute rollups older than their retention are gone: hourly is what is left.
          if (width == kMinute && opts_.minute_rollup_ms > 0 &&
              bounds.front() < core::now_ms() - opts_.minute_rollup_ms)
            width = kHour;
          auto rows = store_.read_kwh(meter_id,
                                      width == kHour ? store::Rollup::hour : store::Rollup::minute,
                                      bounds.front(), bounds.back());
          if (!rows) return from_store_error(rows.error());
          std::vector<query::KwhBucket> kwh;
          kwh.reserve(rows->size());
          for (const auto& [start, v] : *rows) kwh.push_back({start, v});
          const query::EnergyReport rep = query::energy_report(kwh, bounds, tz, tp);

          if (csv) {
            std::string out = "start,end,kwh,cost\r\n";
            for (const auto& p : rep.periods) {
              out += tz.format_local(p.start) + ',' + tz.format_local(p.end) + ',';
              codec::append_json_number(out, core::tidy(p.kwh));
              out += ',';
              if (p.cost) codec::append_json_number(out, core::tidy(*p.cost));
              out += "\r\n";
            }
            return csv_response(std::move(out));
          }
          std::string body;
          body.reserve(256 + rep.periods.size() * 100);
          JsonWriter w(body);
          w.begin_object();
          w.key("meter_id").string(meter_id);
          w.key("period").string(query::period_name(period));
          w.key("tz").string(tz.name());
          w.key("from").string(tz.format_local(bounds.front()));
          w.key("to").string(tz.format_local(bounds.back()));
          w.key("resolution").string(width == kHour ? "1h" : "1m");
          w.key("tariff").string(tariff_source);
          w.key("currency");
          if (tariff)
            w.string(tariff->currency);
          else
            w.null();
          w.key("periods").begin_array();
          for (const auto& p : rep.periods) {
            w.begin_object();
            w.key("start").string(tz.format_local(p.start));
            w.key("end").string(tz.format_local(p.end));
            w.key("hours").number(static_cast<double>(p.end - p.start) / kHour);
            w.key("kwh").number(core::tidy(p.kwh));
            w.key("cost");
            if (p.cost)
              w.number(core::tidy(*p.cost));
            else
              w.null();
            w.end_object();
          }
          w.end_array();
          w.key("total").begin_object().key("kwh").number(core::tidy(rep.kwh)).key("cost");
          if (rep.cost)
            w.number(core::tidy(*rep.cost));
          else
            w.null();
          w.end_object();
          w.end_object();
          return json_response(200, std::move(body));
        });
}

void Router::get_energy_summary(const Target& t, Responder& respond) {
  auto range = parse_range(t, kDay);
  if (!range) return respond(bad_parameter(range.error()));
  // Minute resolution: whole hours from the hourly rollup, the ragged ends
  // from the minute rollup.
  const core::TimeMs from = core::bucket_start(range->first, kMinute);
  const core::TimeMs to = core::bucket_start(range->second - 1, kMinute) + kMinute;
  query(respond, [this, from, to]() -> Response {
    std::map<std::string, double> kwh;
    auto add = [&](store::Rollup table, core::TimeMs a, core::TimeMs b) -> core::Result<void> {
      if (a >= b) return {};
      auto rows = store_.kwh_totals(table, a, b);
      if (!rows) return std::unexpected(rows.error());
      for (auto& [id, v] : *rows) kwh[id] += v;
      return {};
    };
    const core::TimeMs h_lo = core::bucket_start(from + kHour - 1, kHour);
    const core::TimeMs h_hi = core::bucket_start(to, kHour);
    core::Result<void> r;
    if (h_lo < h_hi) {
      r = add(store::Rollup::hour, h_lo, h_hi);
      if (r) r = add(store::Rollup::minute, from, h_lo);
      if (r) r = add(store::Rollup::minute, h_hi, to);
    } else {
      r = add(store::Rollup::minute, from, to);
    }
    if (!r) return from_store_error(r.error());
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("from").string(core::format_iso8601(from));
    w.key("to").string(core::format_iso8601(to));
    w.key("meters").begin_array();
    for (const auto& [id, v] : kwh)
      w.begin_object().key("meter_id").string(id).key("kwh").number(core::tidy(v)).end_object();
    w.end_array().end_object();
    return json_response(200, std::move(body));
  });
}

void Router::tariff(std::string meter_id, Request& req, Responder& respond) {
  const bool get = req.method == "GET", put = req.method == "PUT", del = req.method == "DELETE";
  if (!get && !put && !del) return respond(method_not_allowed("GET, PUT, DELETE"));
  std::optional<std::string> doc;
  if (put) {
    if (auto refused = require_json(req)) return respond(std::move(*refused));
    auto parsed = codec::decode_tariff(req.body);
    if (!parsed) return respond(bad_parameter(parsed.error()));
    doc = codec::encode_tariff(*parsed);  // stored normalised
  }
  const std::string what =
      meter_id.empty() ? std::string("the server") : "meter \"" + meter_id + "\"";
  query(respond, [this, meter_id = std::move(meter_id), doc = std::move(doc), get, what]() {
    if (get) {
      if (!meter_id.empty())
        if (auto missing = require_meter(meter_id)) return std::move(*missing);
      auto d = store_.tariff(meter_id);
      if (!d) return from_store_error(d.error());
      if (!*d) return error_response(404, "no_tariff", what + " has no tariff");
      return json_response(200, **d);
    }
    auto ok = store_.set_tariff(meter_id, doc, core::now_ms());
    if (!ok) return from_store_error(ok.error());
    if (!*ok) return error_response(404, "unknown_meter", "no meter \"" + meter_id + "\"");
    if (doc) return json_response(200, *doc);
    Response gone = json_response(204, "");
    gone.content_type.clear();
    return gone;
  });
}

}  // namespace meterhub::api

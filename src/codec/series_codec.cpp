#include "codec/series_codec.hpp"

#include "codec/json_writer.hpp"
#include "core/energy.hpp"
#include "core/time.hpp"

namespace meterhub::codec {
namespace {

struct StatField {
  SeriesField bit;
  const char* name;
  core::FieldStats core::Aggregate::*stats;
};

constexpr StatField kStatFields[] = {
    {kVoltage, "voltage", &core::Aggregate::voltage},
    {kCurrent, "current", &core::Aggregate::current},
    {kPower, "power", &core::Aggregate::power},
    {kFrequency, "frequency", &core::Aggregate::frequency},
    {kPowerFactor, "power_factor", &core::Aggregate::power_factor},
};

std::string step_text(core::TimeMs ms) {
  if (ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  return std::to_string(ms / 1'000) + "s";
}

// A column of the buckets: null where the field had no values.
template <class F>
void column(JsonWriter& w, std::string_view key, std::span<const core::Aggregate> bs, F&& value) {
  w.key(key).begin_array();
  for (const auto& b : bs) value(w, b);
  w.end_array();
}

void csv_number(std::string& out, double v) { append_json_number(out, v); }

}  // namespace

core::Result<unsigned> parse_series_fields(std::string_view list) {
  unsigned bits = 0;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    unsigned bit = 0;
    for (const auto& f : kStatFields)
      if (name == f.name) bit = f.bit;
    if (name == "energy") bit = kEnergy;
    if (!bit)
      return core::fail("invalid_parameter",
                        "fields: unknown field \"" + std::string(name.substr(0, 40)) +
                            "\"; use a comma-separated list of voltage, current, power, "
                            "frequency, power_factor, energy");
    bits |= bit;
  }
  if (!bits) return core::fail("invalid_parameter", "fields must name at least one field");
  return bits;
}

std::string encode_series_json(const SeriesMeta& meta, std::span<const core::Aggregate> bs,
                               unsigned fields) {
  std::string out;
  out.reserve(256 + bs.size() * 40 * 6);
  JsonWriter w(out);
  w.begin_object();
  w.key("meter_id").string(meta.meter_id);
  w.key("from").string(core::format_iso8601(meta.from));
  w.key("to").string(core::format_iso8601(meta.to));
  w.key("step").string(step_text(meta.step_ms));
  w.key("step_ms").integer(meta.step_ms);
  w.key("source").string(meta.source);
  w.key("buckets").integer(static_cast<std::int64_t>(bs.size()));
  column(w, "time", bs, [](JsonWriter& w, const core::Aggregate& b) { w.integer(b.start); });
  column(w, "readings", bs, [](JsonWriter& w, const core::Aggregate& b) {
    w.integer(static_cast<std::int64_t>(b.count));
  });
  for (const auto& f : kStatFields) {
    if (!(fields & f.bit)) continue;
    w.key(f.name).begin_object();
    auto stat = [&](const char* key, auto get) {
      column(w, key, bs, [&](JsonWriter& w, const core::Aggregate& b) {
        const core::FieldStats& s = b.*(f.stats);
        if (s.count == 0)
          w.null();
        else
          w.number(get(s));
      });
    };
    stat("avg", [](const core::FieldStats& s) { return s.avg(); });
    stat("min", [](const core::FieldStats& s) { return s.min; });
    stat("max", [](const core::FieldStats& s) { return s.max; });
    column(w, "count", bs, [&](JsonWriter& w, const core::Aggregate& b) {
      w.integer(static_cast<std::int64_t>((b.*(f.stats)).count));
    });
    w.end_object();
  }
  if (fields & kEnergy) {
    w.key("energy").begin_object();
    column(w, "first", bs,
           [](JsonWriter& w, const core::Aggregate& b) { w.number(b.energy_first); });
    column(w, "last", bs, [](JsonWriter& w, const core::Aggregate& b) { w.number(b.energy_last); });
    column(w, "kwh", bs,
           [](JsonWriter& w, const core::Aggregate& b) { w.number(core::tidy(b.kwh)); });
    w.end_object();
  }
  w.end_object();
  return out;
}

std::string encode_series_csv(std::span<const core::Aggregate> bs, unsigned fields) {
  std::string out = "time,readings";
  for (const auto& f : kStatFields) {
    if (!(fields & f.bit)) continue;
    for (const char* s : {"_avg", "_min", "_max", "_count"})
      out.append(",").append(f.name).append(s);
  }
  if (fields & kEnergy) out += ",energy_first,energy_last,kwh";
  out += "\r\n";
  for (const auto& b : bs) {
    core::append_iso8601(out, b.start);
    out += ',';
    out += std::to_string(b.count);
    for (const auto& f : kStatFields) {
      if (!(fields & f.bit)) continue;
      const core::FieldStats& s = b.*(f.stats);
      if (s.count == 0) {
        out += ",,,,0";
        continue;
      }
      for (double v : {s.avg(), s.min, s.max}) {
        out += ',';
        csv_number(out, v);
      }
      out += ',';
      out += std::to_string(s.count);
    }
    if (fields & kEnergy) {
      for (double v : {b.energy_first, b.energy_last, core::tidy(b.kwh)}) {
        out += ',';
        csv_number(out, v);
      }
    }
    out += "\r\n";
  }
  return out;
}

std::string encode_readings_csv(std::span<const core::Reading> rs) {
  std::string out = "time,voltage,current,power,energy,frequency,power_factor\r\n";
  out.reserve(out.size() + rs.size() * 80);
  for (const auto& r : rs) {
    core::append_iso8601(out, r.ts);
    for (double v : {r.voltage, r.current, r.power, r.energy}) {
      out += ',';
      csv_number(out, v);
    }
    for (const auto& v : {r.frequency, r.power_factor}) {
      out += ',';
      if (v) csv_number(out, *v);
    }
    out += "\r\n";
  }
  return out;
}

}  // namespace meterhub::codec

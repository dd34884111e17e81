// Decoders for what existing device firmware already sends: ThingsBoard
// telemetry, Emoncms inputs, Tasmota SENSOR messages and Shelly Gen2 status.
// Each turns one message into meterhub readings, which then take the same
// path as POST /api/v1/readings (validation, idempotent store, fan-out).
//
// Pure functions: no I/O, no clock (the caller passes `now`), no globals.
// All or nothing, like decode_readings: the first bad value fails the whole
// message with a core::Error whose code is "malformed_json", "empty_body",
// "empty_batch", "batch_too_large", "invalid_reading" (a value: field names
// the source key, index the position in a batch) or "invalid_parameter" (a
// request parameter such as Emoncms' node or time). Every reading returned
// has passed core::check_reading. The mappings are documented in
// docs/formats.md; change them only together with that page.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/reading_codec.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::query {
class TimeZone;  // query/calendar.hpp
}  // namespace meterhub::query

namespace meterhub::codec {

// ThingsBoard device telemetry (POST /api/v1/{token}/telemetry): a flat
// object of values, {"ts": <epoch ms>, "values": {...}}, or an array of
// either. ThingsBoard payloads carry no meter id: every reading is
// `meter_id`'s. Without "ts" a reading gets opts.now.
core::Result<std::vector<core::Reading>> decode_thingsboard(std::string_view body,
                                                            std::string_view meter_id,
                                                            const DecodeOptions& opts);

// Emoncms input/post: node (the meter id) and exactly one of fulljson
// ({"power":..}), json (the relaxed "power:100,voltage:230" form, braces
// optional) or data (a legacy name of json). csv (unnamed, positional
// values) is refused: nothing says which value is which. time: unix seconds
// (or ms, by magnitude); absent = opts.now, unless fulljson has "time".
struct EmoncmsPost {
  std::optional<std::string_view> node, fulljson, json, data, csv, time;
};
core::Result<std::vector<core::Reading>> decode_emoncms_post(const EmoncmsPost& in,
                                                             const DecodeOptions& opts);

// Emoncms input/bulk: data=[[t, node, {"power":..}, ...], ...]. The objects of
// an entry are merged. Positional numbers ([t, node, 100, 200]) are refused
// (unnamed values). The time of an entry, as Emoncms computes it:
//   time=T given:    T + t
//   sentat=S given:  now + (t - S)
//   offset=O given:  now + O + t
//   none of them:    t itself when t >= 946684800 (an absolute unix time),
//                    else now - (t_last - t) (Emoncms' legacy relative form).
struct EmoncmsBulk {
  std::string_view data;
  std::optional<std::string_view> time, sentat, offset;
};
core::Result<std::vector<core::Reading>> decode_emoncms_bulk(const EmoncmsBulk& in,
                                                             const DecodeOptions& opts);

// Tasmota tele/<topic>/SENSOR with an "ENERGY" object. `topic` is the meter
// id. Array values (multi-channel devices) give one reading per channel,
// meter ids "<topic>:1", "<topic>:2", ...; a scalar applies to every channel
// (a shared Voltage or Frequency), except Total, which must then be an array
// too (Tasmota sums the channels unless SetOption129 is on). "Time" is the
// device's local time without offset; it is read in `zone` (when a wall time
// occurs twice, the first; when it is skipped, it is shifted by the gap). A
// "Time" with an offset is taken as is; no "Time" gives opts.now.
core::Result<std::vector<core::Reading>> decode_tasmota_sensor(std::string_view topic,
                                                               std::string_view payload,
                                                               const query::TimeZone& zone,
                                                               const DecodeOptions& opts);

// Shelly Gen2 status of one component (topic <prefix>/status/<component>,
// or a component of Shelly.GetStatus / NotifyFullStatus):
//   "switch:N": apower W, voltage, current, pf, freq, aenergy.total Wh -> kWh.
//   "em1:N":    act_power, voltage, current, pf, freq; the energy counter is
//               in the companion "em1data:N" status (total_act_energy Wh),
//               passed as `energy_status` (required).
//   "em:0":     one reading per phase a, b, c (meter ids "<meter_id>:a" ...)
//               from a_act_power, a_voltage, ...; the counters come from
//               "emdata:0" (a_total_act_energy Wh ...) in `energy_status`.
// The reading time is opts.now (the status carries no measurement time).
core::Result<std::vector<core::Reading>> decode_shelly_status(
    std::string_view meter_id, std::string_view component, std::string_view payload,
    std::optional<std::string_view> energy_status, const DecodeOptions& opts);

// Shelly NotifyStatus carries only what changed: merges the object `delta`
// onto the last full status `base` (objects recursively, anything else
// replaced) and returns the merged JSON text. Both must be JSON objects.
core::Result<std::string> merge_shelly_status(std::string_view base, std::string_view delta);

}  // namespace meterhub::codec

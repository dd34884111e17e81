// The multiplexed WebSocket protocol of /ws (docs/api.md "WebSocket /ws"):
// client commands in, server messages out. One socket watches many meters.
//
//   client: {"subscribe": ["m1","m2"]} | {"subscribe": "*"}
//           {"unsubscribe": ["m1"]}    | {"unsubscribe": "*"}
//   server: {"type":"snapshot","meters":[{"meter_id","online","latest"}]}
//           {"type":"reading","reading":{...}}
//           {"type":"meter","event":"created","meter_id":"m3"}
//           {"type":"meter","event":"deleted","meter_id":"m3"}
//           {"type":"status","meter_id":"m1","online":false}
//           {"type":"error","error":{"code":"invalid_command","message":..}}
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::codec {

struct WsCommand {
  bool subscribe = true;  // false: unsubscribe
  bool all = false;       // "*"
  std::vector<std::string> meters;
};

// Error code "invalid_command" with a message saying what is wrong. At most
// `max_meters` ids per command; each must be a valid meter id.
core::Result<WsCommand> parse_ws_command(std::string_view text, std::size_t max_meters);

struct MeterState {
  std::string meter_id;
  bool online = false;
  std::optional<core::Reading> latest;
};

// {"type":"reading","reading":<reading_json>} around an already encoded
// reading (encode_reading), so a reading is encoded once for both endpoints.
std::string encode_ws_reading(std::string_view reading_json);
std::string encode_ws_snapshot(std::span<const MeterState> meters);
std::string encode_ws_created(std::string_view meter_id);
std::string encode_ws_deleted(std::string_view meter_id);
std::string encode_ws_status(std::string_view meter_id, bool online);
std::string encode_ws_error(const core::Error& e);

}  // namespace meterhub::codec

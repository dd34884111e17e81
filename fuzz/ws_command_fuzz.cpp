// parse_ws_command: client commands on the multiplexed /ws (ws_protocol.hpp).
// Input: the text message. Checks the header's promises: at most max_meters
// ids, each a valid meter id, none with "*"; errors are "invalid_command"
// and encode as a WebSocket error message.
#include "codec/ws_protocol.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  constexpr std::size_t kMax = 8;
  auto cmd = codec::parse_ws_command(fuzz::as_text(data, size), kMax);
  if (!cmd) {
    FUZZ_CHECK(cmd.error().code == "invalid_command", cmd.error().code);
    fuzz::check_error(cmd.error());
    auto v = fuzz::must_parse_json(codec::encode_ws_error(cmd.error()));
    FUZZ_CHECK(v.is_object() && v.as_object().contains("type"), cmd.error().message);
    return 0;
  }
  FUZZ_CHECK(!cmd->all || cmd->meters.empty(), "\"*\" with ids");
  FUZZ_CHECK(cmd->meters.size() <= kMax, std::to_string(cmd->meters.size()));
  for (const auto& m : cmd->meters) FUZZ_CHECK(!core::check_meter_id(m), m);
  return 0;
}

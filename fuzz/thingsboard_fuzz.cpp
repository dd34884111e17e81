// decode_thingsboard: ThingsBoard telemetry (docs/formats.md).
// Input: line 1 the meter id (from the device token), then the body.
#include "codec/formats.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto text = fuzz::as_text(data, size);
  auto meter = fuzz::take_lines(text, 1)[0];
  auto opts = fuzz::decode_options();
  opts.max_readings = 100;
  fuzz::check_readings(codec::decode_thingsboard(text, meter, opts), opts);
  return 0;
}

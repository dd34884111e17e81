// decode_tasmota_sensor (docs/formats.md, docs/mqtt.md). Input: line 1 the
// topic (meter id), line 2 the device's time zone (an IANA name; UTC when it
// is not one), then the SENSOR payload.
#include "codec/formats.hpp"
#include "fuzz_check.hpp"
#include "query/calendar.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto text = fuzz::as_text(data, size);
  auto head = fuzz::take_lines(text, 2);
  auto zone = query::TimeZone::locate(head[1]);
  if (!zone) {
    fuzz::check_error(zone.error());
    zone = query::TimeZone::locate("UTC");
    FUZZ_CHECK(zone.has_value(), "UTC");
  }
  auto opts = fuzz::decode_options();
  opts.max_readings = 100;
  fuzz::check_readings(codec::decode_tasmota_sensor(head[0], text, *zone, opts), opts);
  return 0;
}

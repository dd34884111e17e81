// decode_shelly_status and merge_shelly_status (docs/formats.md, Shelly Gen2).
// Input: line 1 the meter id, line 2 the component ("switch:0", "em1:0",
// "em:0", ...), line 3 the companion energy status (empty line: none), line
// 4 a NotifyStatus delta to merge first (empty line: none), then the status.
#include <boost/json/serialize.hpp>

#include "codec/formats.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto text = fuzz::as_text(data, size);
  auto head = fuzz::take_lines(text, 4);
  std::string status(text);
  if (!head[3].empty()) {
    auto merged = codec::merge_shelly_status(status, head[3]);
    if (!merged) {
      fuzz::check_error(merged.error());
    } else {
      // An object, and merging the same delta again changes nothing.
      auto v = fuzz::must_parse_json(*merged);
      FUZZ_CHECK(v.is_object(), *merged);
      auto twice = codec::merge_shelly_status(*merged, head[3]);
      FUZZ_CHECK(twice && fuzz::must_parse_json(*twice) == v,
                 *merged + " then " + (twice ? *twice : twice.error().message));
      status = std::move(*merged);
    }
  }
  std::optional<std::string_view> energy;
  if (!head[2].empty()) energy = head[2];
  auto opts = fuzz::decode_options();
  fuzz::check_readings(codec::decode_shelly_status(head[0], head[1], status, energy, opts), opts);
  return 0;
}

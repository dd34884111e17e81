// core::parse_iso8601 and from_epoch_number (the "ts" of every format).
// Input: the text. Checks: a parsed time formats to text that parses back to
// the same instant; a number the text spells (as strtod reads it) converts
// the same way.
#include <cstdlib>
#include <string>

#include "core/time.hpp"
#include "fuzz_check.hpp"

namespace {

void round_trip(meterhub::core::TimeMs ms, std::string_view from) {
  using namespace meterhub;
  auto text = core::format_iso8601(ms);
  auto back = core::parse_iso8601(text);
  FUZZ_CHECK(back && *back == ms, std::string(from) + " -> " + std::to_string(ms) + " -> " + text +
                                      " -> " + (back ? std::to_string(*back) : back.error().message));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto text = fuzz::as_text(data, size);
  auto t = core::parse_iso8601(text);
  if (t) {
    round_trip(*t, text);
  } else {
    fuzz::check_error(t.error());
  }
  std::string s(text);  // strtod needs a terminator
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str()) {
    auto n = core::from_epoch_number(v);
    if (n) {
      round_trip(*n, text);
    } else {
      fuzz::check_error(n.error());
    }
  }
  return 0;
}

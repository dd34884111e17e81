// decode_tariff (PUT /api/v1/meters/{id}/tariff, docs/api.md). Input: the
// body. Checks the promise of tariff_codec.hpp: decode(encode(t)) == t (to
// within one ulp of each price).
#include "codec/tariff_codec.hpp"
#include "core/tariff.hpp"
#include "fuzz_check.hpp"

namespace {

// Equal but for one ulp in a price: Boost.JSON 1.81's number parsing (see
// fuzz_check.hpp, within_ulp; "9e-71" reads as 8.999999999999999e-71).
bool same_tariff(const meterhub::core::Tariff& a, const meterhub::core::Tariff& b) {
  if (a.currency != b.currency || !meterhub::fuzz::within_ulp(a.price_per_kwh, b.price_per_kwh) ||
      a.windows.size() != b.windows.size())
    return false;
  for (std::size_t i = 0; i < a.windows.size(); ++i) {
    const auto &x = a.windows[i], &y = b.windows[i];
    if (x.from_minute != y.from_minute || x.to_minute != y.to_minute ||
        !meterhub::fuzz::within_ulp(x.price_per_kwh, y.price_per_kwh))
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto t = codec::decode_tariff(fuzz::as_text(data, size));
  if (!t) {
    fuzz::check_error(t.error());
    return 0;
  }
  auto valid = core::validate_tariff(*t);
  FUZZ_CHECK(valid.has_value(), valid ? std::string() : valid.error().message);
  auto text = codec::encode_tariff(*t);
  fuzz::must_parse_json(text);
  auto again = codec::decode_tariff(text);
  FUZZ_CHECK(again && same_tariff(*again, *t), text + " -> " + (again ? codec::encode_tariff(*again)
                                                           : again.error().message));
  return 0;
}

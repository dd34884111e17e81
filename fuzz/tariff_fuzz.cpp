// decode_tariff (PUT /api/v1/meters/{id}/tariff, docs/api.md). Input: the
// body. Checks the promise of tariff_codec.hpp: decode(encode(t)) == t.
#include "codec/tariff_codec.hpp"
#include "core/tariff.hpp"
#include "fuzz_check.hpp"

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
  FUZZ_CHECK(again && *again == *t, text + " -> " + (again ? codec::encode_tariff(*again)
                                                           : again.error().message));
  return 0;
}

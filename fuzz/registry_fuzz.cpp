// The registry bodies (registry_codec.hpp): POST /api/v1/meters, PATCH
// /api/v1/meters/{id} (and the tariff it may carry), POST /api/v1/tokens.
// Input: the body; all three decoders read it. Checks that what is accepted
// keeps the documented limits.
#include "codec/registry_codec.hpp"
#include "codec/tariff_codec.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto body = fuzz::as_text(data, size);

  if (auto m = codec::decode_new_meter(body)) {
    FUZZ_CHECK(!core::check_meter_id(m->meter_id), m->meter_id);
    FUZZ_CHECK(m->name.size() <= codec::kMeterNameMax, m->name);
    FUZZ_CHECK(m->location.size() <= codec::kMeterLocationMax, m->location);
    FUZZ_CHECK(!m->interval_s || (*m->interval_s > 0 && *m->interval_s <= codec::kMeterIntervalMax),
               std::to_string(*m->interval_s));
  } else {
    fuzz::check_error(m.error());
  }

  if (auto p = codec::decode_meter_patch(body)) {
    const auto& patch = p->patch;
    FUZZ_CHECK(!patch.name || patch.name->size() <= codec::kMeterNameMax, *patch.name);
    FUZZ_CHECK(!patch.location || patch.location->size() <= codec::kMeterLocationMax,
               *patch.location);
    FUZZ_CHECK(!patch.interval_s || !*patch.interval_s ||
                   (**patch.interval_s > 0 && **patch.interval_s <= codec::kMeterIntervalMax),
               std::to_string(**patch.interval_s));
    if (p->tariff && *p->tariff) {
      fuzz::must_parse_json(**p->tariff);
      auto t = codec::decode_tariff(**p->tariff);
      if (!t) fuzz::check_error(t.error());
    }
  } else {
    fuzz::check_error(p.error());
  }

  if (auto t = codec::decode_new_token(body)) {
    FUZZ_CHECK(t->scope == store::Scope::read || t->scope == store::Scope::admin, t->name);
  } else {
    fuzz::check_error(t.error());
  }
  return 0;
}

// decode_readings: the body of POST /api/v1/readings and of a WebSocket
// reading (docs/api.md). Input: the body as is.
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto opts = fuzz::decode_options();
  opts.max_readings = 100;  // small enough for the fuzzer to reach batch_too_large
  fuzz::check_readings(codec::decode_readings(fuzz::as_text(data, size), opts), opts);
  return 0;
}

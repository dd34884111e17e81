// decode_emoncms_post / decode_emoncms_bulk (docs/formats.md). Input: lines
// "name=value" with the request parameters node, fulljson, json, data, csv,
// time, sentat, offset; a "bulk=" line makes it an input/bulk call (its value
// is the data parameter), else it is input/post. A line without '=' or with
// another name is ignored; the last of a repeated name wins.
#include "codec/formats.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meterhub;
  auto text = fuzz::as_text(data, size);
  codec::EmoncmsPost post;
  std::optional<std::string_view> bulk, sentat, offset;
  while (!text.empty()) {
    auto line = fuzz::take_lines(text, 1)[0];
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    auto name = line.substr(0, eq);
    auto value = line.substr(eq + 1);
    if (name == "node") post.node = value;
    else if (name == "fulljson") post.fulljson = value;
    else if (name == "json") post.json = value;
    else if (name == "data") post.data = value;
    else if (name == "csv") post.csv = value;
    else if (name == "time") post.time = value;
    else if (name == "bulk") bulk = value;
    else if (name == "sentat") sentat = value;
    else if (name == "offset") offset = value;
  }
  auto opts = fuzz::decode_options();
  opts.max_readings = 100;
  if (bulk) {
    codec::EmoncmsBulk b{*bulk, post.time, sentat, offset};
    fuzz::check_readings(codec::decode_emoncms_bulk(b, opts), opts);
  } else {
    fuzz::check_readings(codec::decode_emoncms_post(post, opts), opts);
  }
  return 0;
}

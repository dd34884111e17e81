#include "api/target.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace meterhub::api {

std::optional<std::string> Target::param(std::string_view key) const {
  for (const auto& [k, v] : params)
    if (k == key) return v;
  return std::nullopt;
}

core::Result<Target> parse_target(std::string_view target) {
  auto u = boost::urls::parse_origin_form(target);
  if (!u) return core::fail("bad_target", "request target is not a valid path");
  Target t;
  for (auto seg : u->segments()) t.segments.emplace_back(seg);
  // '+' stays '+' (not a space): "from=2026-11-27T10:00:00+01:00" must keep
  // its offset when a client does not percent-encode it.
  boost::urls::encoding_opts opt;
  opt.space_as_plus = false;
  for (auto p : u->params(opt)) t.params.emplace_back(p.key, p.has_value ? p.value : "");
  return t;
}

}  // namespace meterhub::api

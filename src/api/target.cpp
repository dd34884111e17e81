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

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (c == '+' && plus_as_space) ? ' ' : c;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> split_params(std::string_view s,
                                                              bool plus_as_space) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!s.empty()) {
    const auto amp = s.find('&');
    std::string_view item = s.substr(0, amp);
    s = amp == std::string_view::npos ? std::string_view() : s.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    out.emplace_back(decode(item.substr(0, eq), plus_as_space),
                     eq == std::string_view::npos ? std::string()
                                                  : decode(item.substr(eq + 1), plus_as_space));
  }
  return out;
}

}  // namespace

core::Result<Target> parse_target_lenient(std::string_view target) {
  const auto q = target.find('?');
  auto t = parse_target(target.substr(0, q));
  if (!t) return t;
  if (q != std::string_view::npos) t->params = split_params(target.substr(q + 1), true);
  return t;
}

std::vector<std::pair<std::string, std::string>> parse_form(std::string_view body) {
  return split_params(body, true);
}

}  // namespace meterhub::api

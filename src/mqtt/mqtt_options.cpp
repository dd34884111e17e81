#include "mqtt/mqtt_options.hpp"

#include <cctype>
#include <charconv>

namespace meterhub::mqtt {
namespace {

core::Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size() ||
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr != s.data() + i + 3)
      return core::fail("invalid_parameter", "bad percent-encoding in the MQTT URL");
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

}  // namespace

core::Result<Broker> parse_broker_url(std::string_view url) {
  Broker b;
  std::string_view rest;
  if (url.starts_with("mqtt://")) {
    rest = url.substr(7);
  } else if (url.starts_with("mqtts://")) {
    rest = url.substr(8);
    b.tls = true;
    b.port = 8883;
  } else {
    return core::fail("invalid_parameter", "the MQTT URL must start with mqtt:// or mqtts://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos || rest.find('?') != std::string_view::npos)
    return core::fail("invalid_parameter", "the MQTT URL takes no path or query");
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    if (!user) return std::unexpected(user.error());
    b.username = *user;
    if (colon != std::string_view::npos) {
      auto pass = percent_decode(userinfo.substr(colon + 1));
      if (!pass) return std::unexpected(pass.error());
      b.password = *pass;
    }
    if (b.username.empty())
      return core::fail("invalid_parameter", "the MQTT URL has a password but no user name");
  }
  std::string_view port;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      return core::fail("invalid_parameter", "unclosed [ in the MQTT URL");
    b.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return core::fail("invalid_parameter", "bad MQTT URL after ]");
      port = rest.substr(1);
    }
  } else {
    auto colon = rest.rfind(':');
    b.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (b.host.empty()) return core::fail("invalid_parameter", "the MQTT URL names no host");
  if (!port.empty() || (rest.find(':') != std::string_view::npos)) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (port.empty() || ec != std::errc{} || p != port.data() + port.size() || v == 0 || v > 65535)
      return core::fail("invalid_parameter", "the MQTT URL's port must be 1 to 65535");
    b.port = static_cast<std::uint16_t>(v);
  }
  return b;
}

std::vector<std::string> default_topics() {
  return {"meterhub/+/readings", "tele/+/SENSOR", "tele/+/LWT", "+/status/+", "+/events/rpc"};
}

}  // namespace meterhub::mqtt

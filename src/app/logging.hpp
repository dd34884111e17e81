// Log setup: one stderr logger, as text (people) or JSON lines (log
// shippers). Both attach the fields of metrics::LogFields scopes open on the
// logging thread (request_id, route, status, ...).
//
//   text: 2026-11-27T17:03:56.123+0000 info request: GET /metrics -> 200 request_id=ab12…
//   json: {"ts":"2026-11-27T17:03:56.123Z","level":"info","msg":"request: …","request_id":"ab12…"}
//
// JSON lines are always valid JSON with UTF-8 text: control characters are
// escaped and invalid UTF-8 bytes become U+FFFD.
#pragma once

#include <string>

namespace meterhub::app {

// format: "text" or "json" (config.cpp checks). level: spdlog level name.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace meterhub::app

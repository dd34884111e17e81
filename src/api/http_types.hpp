// The request/response shapes the API handlers see. They carry no socket and
// no Beast type: src/http/ turns wire messages into these and back, so the
// handlers can be tested, and later fuzzed, without a network.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace meterhub::api {

struct Request {
  std::string method;         // "GET", "POST", ...
  std::string target;         // raw request-target, e.g. "/api/v1/meters?x=1"
  std::string content_type;   // the Content-Type header, empty if absent
  std::string accept;         // the Accept header, empty if absent
  std::string if_none_match;  // for static files (ETag revalidation)
  std::string body;
  std::string remote;  // peer address: logs and per-IP rate limits
  // Credentials and cross-origin headers (empty if absent):
  std::string authorization;   // "Bearer <key>"
  std::string api_key;         // X-API-Key
  std::string origin;          // Origin
  std::string ws_protocols;    // Sec-WebSocket-Protocol (upgrades)
  std::string cors_method;     // Access-Control-Request-Method (preflights)
  std::string request_id;      // X-Request-Id as received; the Router replaces an unsafe one
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Retry-After, Allow
};

// Called exactly once per request, from any thread.
using Responder = std::function<void(Response)>;

// {"error":{"code":..,"message":..}} with the given status.
Response error_response(unsigned status, std::string code, std::string message);

}  // namespace meterhub::api

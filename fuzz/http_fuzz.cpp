// The HTTP request path without a socket: raw bytes -> Beast's request parser
// (the limits of ServerOptions) -> api::Router -> Response, against a real
// store on a temporary SQLite file (on /dev/shm when there is one, so that a
// commit's fsync does not dominate). Input: HTTP/1.1 request bytes; "ADMIN"
// in the target, the Authorization and X-API-Key headers and the body is
// replaced by the real admin token, so the admin routes are reachable.
//
// Checks: the Router answers every request exactly once, within 60 s, with a
// status in 200..599; an error status comes with a JSON {"error":{"code"..}}
// body; a JSON answer is JSON. A WebSocket upgrade goes to Router::websocket,
// whose refusal obeys the same rules.
#include <atomic>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <spdlog/spdlog.h>
#include <string>

#include "api/router.hpp"
#include "auth/authenticator.hpp"
#include "core/time.hpp"
#include "fuzz_check.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using namespace meterhub;

constexpr std::size_t kMaxHeader = 16 * 1024;  // http::ServerOptions' defaults
constexpr std::size_t kMaxBody = 1 << 20;

// The API stack of tests/unit/router_harness.hpp, built once per process.
struct World {
  World() {
    spdlog::set_level(spdlog::level::off);  // a log line per refused request is noise here
    std::error_code ec;
    auto base = std::filesystem::is_directory("/dev/shm", ec)
                    ? std::filesystem::path("/dev/shm")
                    : std::filesystem::temp_directory_path();
    std::random_device rd;
    dir = base / ("meterhub-fuzz-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    auto s = store::SqliteStore::open({(dir / "fuzz.db").string()});
    if (!s) fuzz::violated("store open", s.error().message);
    store = std::move(*s);
    ingest = std::make_unique<ingest::Ingest>(*store, hub, ingest::IngestOptions{});
    ingest->start();
    auth::AuthOptions a;
    a.public_read = true;
    a.auto_register = true;
    authn = std::make_unique<auth::Authenticator>(*store, a);
    auto admin = authn->ensure_admin_token(core::now_ms());
    if (!admin || !*admin) fuzz::violated("admin token", "");
    admin_token = **admin;
    api::ApiOptions o;
    o.ip_rate = o.device_rate = 0;  // one "client" sends everything
    router = std::make_unique<api::Router>(*ingest, *store, pool, hub, *authn, o);
  }
  ~World() {
    router.reset();
    ingest->stop();
    pool.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::filesystem::path dir;
  std::unique_ptr<store::SqliteStore> store;
  hub::Hub hub;
  std::unique_ptr<ingest::Ingest> ingest;
  api::QueryPool pool{2, 64};
  std::unique_ptr<auth::Authenticator> authn;
  std::string admin_token;
  std::unique_ptr<api::Router> router;
};

World& world() {
  static World w;
  return w;
}

std::string with_admin(std::string value) {
  for (auto pos = value.find("ADMIN"); pos != std::string::npos;
       pos = value.find("ADMIN", pos + world().admin_token.size()))
    value.replace(pos, 5, world().admin_token);
  return value;
}

// As src/http/http_session.hpp's copy_headers (which is private to src/http).
api::Request to_request(const bhttp::request<bhttp::string_body>& msg) {
  api::Request req;
  req.method = msg.method() == bhttp::verb::head ? std::string("GET")
                                                 : std::string(msg.method_string());
  req.target = with_admin(std::string(msg.target()));
  req.content_type = std::string(msg[bhttp::field::content_type]);
  req.accept = std::string(msg[bhttp::field::accept]);
  req.if_none_match = std::string(msg[bhttp::field::if_none_match]);
  req.authorization = with_admin(std::string(msg[bhttp::field::authorization]));
  req.api_key = with_admin(std::string(msg["X-API-Key"]));
  req.origin = std::string(msg[bhttp::field::origin]);
  req.cors_method = std::string(msg[bhttp::field::access_control_request_method]);
  auto [it, end] = msg.equal_range(bhttp::field::sec_websocket_protocol);
  for (; it != end; ++it) {
    if (!req.ws_protocols.empty()) req.ws_protocols += ", ";
    req.ws_protocols += std::string(it->value());
  }
  req.body = with_admin(msg.body());
  req.remote = "192.0.2.1";
  return req;
}

void check_response(const api::Response& r, const api::Request& req) {
  auto what = req.method + " " + req.target + " -> " + std::to_string(r.status) + " " + r.body;
  FUZZ_CHECK(r.status >= 200 && r.status <= 599, what);
  const bool json = r.content_type.starts_with("application/json");
  if (r.status >= 400) {
    FUZZ_CHECK(json, what);
    auto v = fuzz::must_parse_json(r.body);
    const auto* err = v.is_object() ? v.as_object().if_contains("error") : nullptr;
    FUZZ_CHECK(err && err->is_object() && err->as_object().contains("code"), what);
  } else if (json && !r.body.empty()) {
    fuzz::must_parse_json(r.body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxHeader));
  parser.body_limit(kMaxBody);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = 0;
  while (!ec && !parser.is_done() && used < size)
    used += parser.put(boost::asio::buffer(data + used, size - used), ec);
  if (!parser.is_done() || ec) return 0;  // the server answers these itself (400/413/431)
  const auto& msg = parser.get();
  auto req = to_request(msg);
  auto& w = world();

  if (beast::websocket::is_upgrade(msg)) {
    req.method = "GET";
    auto grant = w.router->websocket(req);
    if (!grant) check_response(grant.error(), req);
    return 0;
  }

  auto answered = std::make_shared<std::atomic<int>>(0);
  auto promise = std::make_shared<std::promise<api::Response>>();
  auto future = promise->get_future();
  api::Request copy = req;
  w.router->handle(std::move(copy), [answered, promise](api::Response r) {
    if (answered->fetch_add(1) != 0) fuzz::violated("Responder called twice", r.body);
    promise->set_value(std::move(r));
  });
  if (future.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
    fuzz::violated("no answer within 60 s", req.method + " " + req.target);
  check_response(future.get(), req);
  return 0;
}

// docs/openapi.json (served as GET /openapi.json, shown by /docs) against the
// server itself: the route table api::routes() and the spec must name exactly
// the same operations, the spec must hang together ($refs, error schema,
// path parameters, security), and every API route of the table must really
// be served by Router::handle, with only the methods the table lists, and
// answer only as documented: succeeding, refusing a missing or wrong key,
// rate-limited, and with each error of the registry operations.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "api/router.hpp"
#include "core/time.hpp"
#include "router_harness.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

#ifndef METERHUB_SOURCE_DIR
#error "tests/CMakeLists.txt defines METERHUB_SOURCE_DIR (the repository root)"
#endif

namespace meterhub::api {
namespace {

namespace json = boost::json;
using Operation = std::pair<std::string, std::string>;  // (method, path template)

constexpr const char* kErrorRef = "#/components/schemas/Error";
constexpr const char* kSpecPath = METERHUB_SOURCE_DIR "/docs/openapi.json";

// The keys of a Path Item Object that are operations, and their HTTP method.
const std::map<std::string, std::string>& http_methods() {
  static const std::map<std::string, std::string> m = {
      {"get", "GET"},         {"put", "PUT"},   {"post", "POST"},   {"delete", "DELETE"},
      {"options", "OPTIONS"}, {"head", "HEAD"}, {"patch", "PATCH"}, {"trace", "TRACE"}};
  return m;
}

json::value load_spec() {
  std::ifstream in(kSpecPath, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot open " << kSpecPath;
    return nullptr;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json::error_code ec;
  json::value v = json::parse(ss.str(), ec);
  if (ec) {
    ADD_FAILURE() << kSpecPath << " is not valid JSON: " << ec.message();
    return nullptr;
  }
  return v;
}

const json::value& spec() {
  static const json::value doc = load_spec();
  return doc;
}

std::string str(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : std::string();
}

// The target of a local reference "#/a/b", or null when it does not resolve.
const json::value* resolve(const json::value& doc, std::string_view ref) {
  if (ref.empty() || ref[0] != '#') return nullptr;
  json::error_code ec;
  const json::value* v = doc.find_pointer(ref.substr(1), ec);
  return ec ? nullptr : v;
}

// An object that may be a Reference Object: what it refers to, else itself.
const json::value* deref(const json::value& doc, const json::value& v) {
  if (const auto* o = v.if_object())
    if (const auto* r = o->if_contains("$ref")) return resolve(doc, str(*r));
  return &v;
}

std::set<Operation> table_operations() {
  std::set<Operation> ops;
  for (const RouteInfo& r : routes()) {
    EXPECT_TRUE(ops.emplace(r.method, r.path).second)
        << "routes() lists " << r.method << " " << r.path << " twice";
  }
  return ops;
}

std::set<Operation> spec_operations(const json::value& doc) {
  std::set<Operation> ops;
  const auto* paths = doc.as_object().if_contains("paths");
  if (!paths || !paths->is_object()) return ops;
  for (const auto& [path, item] : paths->get_object()) {
    if (!item.is_object()) continue;
    for (const auto& [key, op] : item.get_object()) {
      auto m = http_methods().find(std::string(key));
      if (m != http_methods().end()) ops.emplace(m->second, std::string(path));
    }
  }
  return ops;
}

// Every operation of the spec, with its path template.
template <class F>
void for_each_operation(const json::value& doc, F&& f) {
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    for (const auto& [key, op] : item.as_object()) {
      auto m = http_methods().find(std::string(key));
      if (m != http_methods().end()) f(m->second, std::string(path), op, item);
    }
  }
}

// A key as a JSON Pointer token: "/api/v1/meters" -> "~1api~1v1~1meters".
std::string pointer_token(std::string_view key) {
  std::string t;
  for (char c : key)
    t += c == '/' ? std::string("~1") : c == '~' ? std::string("~0") : std::string(1, c);
  return t;
}

// Collects every "$ref" (and discriminator mapping target) under v.
void collect_refs(const json::value& v, const std::string& where,
                  std::vector<std::pair<std::string, std::string>>& out) {
  if (const auto* o = v.if_object()) {
    for (const auto& [k, child] : *o) {
      const std::string at = where + "/" + pointer_token(k);
      if (k == "$ref" && child.is_string()) {
        out.emplace_back(str(child), at);
      } else if (k == "mapping" && child.is_object() && where.ends_with("/discriminator")) {
        for (const auto& [name, target] : child.get_object())
          out.emplace_back(str(target), at + "/" + std::string(name));
      } else {
        collect_refs(child, at, out);
      }
    }
  } else if (const auto* a = v.if_array()) {
    for (std::size_t i = 0; i < a->size(); ++i)
      collect_refs((*a)[i], where + "/" + std::to_string(i), out);
  }
}

TEST(OpenApi, IsAnOpenApi31Document) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(str(doc.at("openapi")), "3.1.0");
  EXPECT_EQ(str(doc.at("info").at("title")), "meterhub API");
  EXPECT_EQ(str(doc.at("servers").at(0).at("url")), "/");
  ASSERT_TRUE(doc.at("paths").is_object());
  ASSERT_NE(resolve(doc, kErrorRef), nullptr) << "no Error schema";
}

// Both directions: a route added to the table without documenting it fails,
// and so does a documented operation the table does not have.
TEST(OpenApi, DocumentsExactlyTheRouteTable) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  const std::set<Operation> table = table_operations();
  const std::set<Operation> documented = spec_operations(doc);
  EXPECT_FALSE(table.empty());
  for (const auto& [method, path] : table)
    EXPECT_TRUE(documented.contains({method, path}))
        << method << " " << path << " is a route (api::routes()) but not in docs/openapi.json";
  for (const auto& [method, path] : documented)
    EXPECT_TRUE(table.contains({method, path}))
        << method << " " << path << " is in docs/openapi.json but not a route (api::routes())";
}

TEST(OpenApi, EveryReferenceResolves) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  std::vector<std::pair<std::string, std::string>> refs;
  collect_refs(doc, "#", refs);
  EXPECT_GT(refs.size(), 0u);
  for (const auto& [ref, where] : refs)
    EXPECT_NE(resolve(doc, ref), nullptr) << "unresolved $ref \"" << ref << "\" at " << where;
}

TEST(OpenApi, OperationsAreWellFormed) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  std::set<std::string> operation_ids;
  const std::regex template_param(R"(\{([^}]+)\})");
  for_each_operation(doc, [&](const std::string& method, const std::string& path,
                              const json::value& op, const json::value& item) {
    const std::string name = method + " " + path;
    ASSERT_TRUE(op.is_object()) << name;
    const auto& o = op.get_object();

    const auto* id = o.if_contains("operationId");
    ASSERT_TRUE(id && id->is_string()) << name << ": no operationId";
    EXPECT_TRUE(operation_ids.insert(str(*id)).second) << name << ": duplicate operationId";
    EXPECT_TRUE(o.contains("summary")) << name << ": no summary";

    // Path parameters: exactly the {names} of the template, each required.
    std::set<std::string> in_template, declared;
    for (std::sregex_iterator it(path.begin(), path.end(), template_param), end; it != end; ++it)
      in_template.insert((*it)[1].str());
    for (const json::object* scope : {item.if_object(), &o}) {
      const auto* params = scope ? scope->if_contains("parameters") : nullptr;
      if (!params) continue;
      for (const auto& p : params->as_array()) {
        const json::value* param = deref(doc, p);
        ASSERT_NE(param, nullptr) << name << ": unresolved parameter";
        if (str(param->at("in")) != "path") continue;
        declared.insert(str(param->at("name")));
        const auto* required = param->as_object().if_contains("required");
        EXPECT_TRUE(required && required->is_bool() && required->get_bool())
            << name << ": path parameter " << str(param->at("name")) << " must be required";
      }
    }
    EXPECT_EQ(declared, in_template) << name << ": path parameters";

    // Responses: at least one success (1xx/2xx), and every 4xx/5xx is an Error.
    const auto* responses = o.if_contains("responses");
    ASSERT_TRUE(responses && responses->is_object() && !responses->get_object().empty())
        << name << ": no responses";
    bool success = false;
    for (const auto& [status, r] : responses->get_object()) {
      const std::string code(status);
      ASSERT_EQ(code.size(), 3u) << name << ": response \"" << code << "\" is not a status";
      if (code[0] == '1' || code[0] == '2') success = true;
      const json::value* resp = deref(doc, r);
      ASSERT_NE(resp, nullptr) << name << " " << code << ": unresolved response";
      EXPECT_TRUE(resp->as_object().contains("description")) << name << " " << code;
      if (code[0] != '4' && code[0] != '5') continue;
      const auto* content = resp->as_object().if_contains("content");
      ASSERT_TRUE(content && content->is_object()) << name << " " << code << ": no content";
      EXPECT_EQ(content->get_object().size(), 1u)
          << name << " " << code << ": errors are application/json only";
      const auto* media = content->get_object().if_contains("application/json");
      ASSERT_TRUE(media) << name << " " << code << ": not application/json";
      const auto* schema = media->as_object().if_contains("schema");
      ASSERT_TRUE(schema && schema->is_object()) << name << " " << code << ": no schema";
      const auto* ref = schema->get_object().if_contains("$ref");
      EXPECT_TRUE(ref && str(*ref) == kErrorRef)
          << name << " " << code << ": an error response must reference " << kErrorRef;
    }
    EXPECT_TRUE(success) << name << ": no 1xx/2xx response";
  });
}

// Access control is declared: bearer and X-API-Key schemes required
// globally, lifted (`security: []`) exactly on the open routes, every
// requirement naming a declared scheme, and every operation documenting the
// per-IP 429 and, unless open, the 401 of a missing or bad key.
TEST(OpenApi, SecurityIsDeclared) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  json::error_code ec;
  const auto* schemes = doc.find_pointer("/components/securitySchemes", ec);
  ASSERT_TRUE(schemes && schemes->is_object()) << "no components.securitySchemes";
  const json::value* bearer = schemes->as_object().if_contains("bearerAuth");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(str(bearer->at("type")), "http");
  EXPECT_EQ(str(bearer->at("scheme")), "bearer");
  const json::value* header = schemes->as_object().if_contains("apiKeyHeader");
  ASSERT_TRUE(header);
  EXPECT_EQ(str(header->at("type")), "apiKey");
  EXPECT_EQ(str(header->at("in")), "header");
  EXPECT_EQ(str(header->at("name")), "X-API-Key");

  auto check_requirements = [&](const json::value& security, const std::string& where) {
    ASSERT_TRUE(security.is_array()) << where;
    for (const auto& req : security.as_array()) {
      ASSERT_TRUE(req.is_object()) << where;
      for (const auto& [scheme, scopes] : req.as_object()) {
        EXPECT_TRUE(schemes->as_object().contains(scheme))
            << where << " names an undeclared security scheme " << std::string(scheme);
        EXPECT_TRUE(scopes.is_array()) << where;
      }
    }
  };
  const auto* global = doc.as_object().if_contains("security");
  ASSERT_TRUE(global) << "no global security";
  ASSERT_FALSE(global->as_array().empty());
  check_requirements(*global, "global security");

  const std::set<std::string> open = {"/", "/docs", "/openapi.json", "/healthz", "/readyz"};
  for_each_operation(doc, [&](const std::string& method, const std::string& path,
                              const json::value& op, const json::value&) {
    const std::string name = method + " " + path;
    const auto* security = op.as_object().if_contains("security");
    if (security) check_requirements(*security, name);
    const bool lifted = security && security->is_array() && security->as_array().empty();
    EXPECT_EQ(lifted, open.contains(path))
        << name << (lifted ? " needs a key but has security: []" : " is open but needs a key");
    const auto& responses = op.at("responses").as_object();
    EXPECT_TRUE(responses.contains("429")) << name << ": no 429 (per-IP rate limit)";
    if (!open.contains(path)) {
      EXPECT_TRUE(responses.contains("401")) << name << ": no 401";
    }
  });
}

// ---------------------------------------------------------------------------
// The route table against Router::handle, over a real store.

class OpenApiRouterTest : public RouterHarness {
 protected:
  std::optional<Response> call(const std::string& method, const std::string& target,
                               std::string body = "") {
    return try_call(method, target, std::move(body));
  }

  // A call with another key ("" = none) than the harness's admin token.
  std::optional<Response> call_as(const std::string& key, const std::string& method,
                                  const std::string& target, std::string body = "") {
    return try_call(method, target, std::move(body), "application/json",
                    key.empty() ? std::string() : "Bearer " + key);
  }

  // The answer `res` of an operation is a status the spec documents for it,
  // and an error's code is named in that response's description.
  static void expect_documented(const std::string& method, const std::string& path,
                                const Response& res) {
    const json::value& doc = spec();
    const std::string name = method + " " + path;
    std::string lower = method;
    for (char& c : lower) c = static_cast<char>(c - 'A' + 'a');
    json::error_code ec;
    const json::value* op = doc.find_pointer("/paths/" + pointer_token(path) + "/" + lower, ec);
    if (!op) return;  // reported by DocumentsExactlyTheRouteTable
    const auto* resp =
        op->as_object().at("responses").as_object().if_contains(std::to_string(res.status));
    ASSERT_TRUE(resp) << name << " answered " << res.status
                      << ", which docs/openapi.json does not document: " << res.body;
    if (res.status >= 400) {
      const std::string code = code_of(res);
      const json::value* r = deref(doc, *resp);
      ASSERT_NE(r, nullptr);
      EXPECT_NE(str(r->at("description")).find("`" + code + "`"), std::string::npos)
          << name << " answered " << res.status << " " << code
          << ", a code the documented response does not name";
    }
  }

  static std::string code_of(const Response& r) {
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object()) return {};
    const auto* e = v.as_object().if_contains("error");
    if (!e || !e->is_object()) return {};
    const auto* c = e->as_object().if_contains("code");
    return c ? str(*c) : std::string();
  }

  // A concrete target for an operation: the sample meter, the sample token.
  // Deleting a meter deletes its data: that operation gets a meter of its
  // own (and the confirmation it needs), so that no other route's answer
  // depends on the order of the route table.
  std::string target_of(const std::string& method, std::string path) const {
    if (method == "DELETE" && path == "/api/v1/meters/{meter_id}")
      return "/api/v1/meters/" + std::string(kDoomed) + "?confirm=" + kDoomed;
    // Emoncms: the sample meter's values, in the query.
    if (path == "/input/post")
      return path + "?node=" + kMeter +
             "&fulljson={\"voltage\":230,\"current\":1,\"power\":230,\"energy\":3}";
    if (path == "/input/bulk")
      return path + "?data=[[" + std::to_string(t0_ / 1000 + 120) + ",\"" + kMeter +
             "\",{\"voltage\":230,\"current\":1,\"power\":230,\"energy\":4}]]";
    for (auto [param, value] :
         {std::pair<std::string, std::string>{"{meter_id}", kMeter},
          {"{token_id}", token_id_.empty() ? "000000000000" : token_id_},
          {"{access_token}", path_key_.empty() ? kUnknownDeviceKey : path_key_}})
      for (auto pos = path.find(param); pos != std::string::npos; pos = path.find(param))
        path.replace(pos, param.size(), value);
    return path;
  }

  // A valid body for the operations that take one.
  std::string body_for(const std::string& method, const std::string& path) const {
    if (method == "POST" && path == "/api/v1/readings")
      return R"({"meter_id":")" + std::string(kMeter) +
             R"(","voltage":230,"current":1,"power":230,"energy":2,"ts":)" +
             std::to_string(t0_ + 60'000) + "}";
    if (method == "PUT" && path.ends_with("/alerts"))
      return R"({"rules":[{"kind":"over_voltage","threshold":253,"hysteresis":3,"hold_s":5}]})";
    if (method == "PUT" && path.ends_with("/tariff"))
      return R"({"currency":"EUR","price_per_kwh":0.25})";
    if (method == "POST" && path == "/api/v1/meters")
      return R"({"meter_id":")" + std::string(kNewMeter) +
             R"(","name":"Garage","location":"outside","interval_s":60})";
    if (method == "PATCH" && path == "/api/v1/meters/{meter_id}")
      return R"({"name":"Kitchen","location":"ground floor","interval_s":10})";
    if (method == "POST" && path == "/api/v1/tokens") return R"({"name":"ci","scope":"read"})";
    if (method == "POST" && path == "/api/v1/{access_token}/telemetry")
      return R"({"voltage":230,"current":1,"power":230,"energy":5})";
    return {};
  }

  // The routes checked against Router::handle. The others are only checked
  // against the spec: "/", "/docs" and "/openapi.json" are static files (no
  // web root is loaded here), "/ws" and "/ws/{meter_id}" WebSocket upgrades
  // (src/http; a plain GET is 426).
  static bool served_by_router(const std::string& path) {
    return path.starts_with("/api/") || path.starts_with("/input/") || path == "/healthz" ||
           path == "/readyz";
  }

  static constexpr const char* kMeter = "m1";
  static constexpr const char* kDoomed = "m_deleted";  // DELETE /api/v1/meters/{meter_id}
  static constexpr const char* kNewMeter = "m_new";    // POST /api/v1/meters
  core::TimeMs t0_ = core::now_ms() - 3'600'000;
  std::string token_id_;  // a read token, revoked by DELETE /api/v1/tokens/{token_id}
  // The key in ThingsBoard's path (/api/v1/{access_token}/telemetry): a
  // device key, or the caller's key when the test is about who calls.
  std::string path_key_;
  static constexpr const char* kUnknownDeviceKey =
      "mhd_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
};

// Every API route answers as a route: not 404 not_found, not 405. With valid
// inputs it succeeds (or answers 404 no_tariff for a tariff not set yet); what
// it answers must be a status the spec documents for that operation, and an
// error's code must be named in that response's description.
TEST_F(OpenApiRouterTest, EveryApiRouteIsServedAsDocumented) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  // A meter with a reading, so that the meter's routes can succeed, and
  // one to delete.
  for (const char* meter : {kMeter, kDoomed}) {
    auto seeded = call("POST", "/api/v1/readings",
                       R"({"meter_id":")" + std::string(meter) +
                           R"(","voltage":230,"current":1,"power":230,"energy":1,"ts":)" +
                           std::to_string(t0_) + "}");
    ASSERT_TRUE(seeded);
    ASSERT_EQ(seeded->status, 201u) << seeded->body;
  }
  // A read token, for the route that revokes one.
  auto token = call("POST", "/api/v1/tokens", R"({"name":"to revoke","scope":"read"})");
  ASSERT_TRUE(token);
  ASSERT_EQ(token->status, 201u) << token->body;
  token_id_ = std::string(json::parse(token->body).at("id").as_string());
  // A device key for ThingsBoard's path, of a meter no other route touches.
  auto tb = call("POST", "/api/v1/meters", R"({"meter_id":"m_thingsboard"})");
  ASSERT_TRUE(tb);
  ASSERT_EQ(tb->status, 201u) << tb->body;
  path_key_ = std::string(json::parse(tb->body).at("device_key").as_string());
  ASSERT_EQ(token_id_.size(), 12u);

  static const std::map<Operation, std::string> kMayFail = {
      {{"GET", "/api/v1/meters/{meter_id}/tariff"}, "no_tariff"},
      {{"GET", "/api/v1/tariff"}, "no_tariff"},
  };
  std::size_t checked = 0;
  for (const RouteInfo& route : routes()) {
    const std::string method = route.method, path = route.path;
    if (!served_by_router(path)) continue;
    ++checked;
    const std::string name = method + " " + path;
    auto res = call(method, target_of(method, path), body_for(method, path));
    ASSERT_TRUE(res) << name << ": no answer within 10 s";
    const std::string code = code_of(*res);
    EXPECT_FALSE(res->status == 404 && code == "not_found")
        << name << " is in the route table but Router::handle does not serve it: " << res->body;
    EXPECT_NE(res->status, 405u) << name << ": " << res->body;
    EXPECT_NE(code, "bad_target") << name << ": " << res->body;
    // With the seeded state, target_of() and body_for(), every route
    // succeeds, except reading a tariff that is not set (yet): so a wrong
    // target or body cannot pass unnoticed as a documented 400 or 404.
    if (res->status >= 300) {
      auto allowed = kMayFail.find({method, path});
      EXPECT_TRUE(allowed != kMayFail.end() && allowed->second == code)
          << name << " failed with valid inputs: " << res->status << " " << res->body;
    }
    expect_documented(method, path, *res);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(checked, 10u);
  // The destructive routes hit their own targets, and only those.
  auto gone = call("GET", "/api/v1/meters/" + std::string(kDoomed));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404u) << gone->body;
  auto kept = call("GET", "/api/v1/meters/" + std::string(kMeter));
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->status, 200u) << kept->body;
  auto tokens = call("GET", "/api/v1/tokens");
  ASSERT_TRUE(tokens);
  ASSERT_EQ(tokens->status, 200u);
  bool revoked = false;
  const json::value listed = json::parse(tokens->body);
  for (const auto& t : listed.at("tokens").as_array())
    if (t.at("id") == json::value(token_id_)) revoked = !t.at("revoked_at").is_null();
  EXPECT_TRUE(revoked) << "token " << token_id_ << " was not revoked: " << tokens->body;
}

// The errors of the registry operations, each answered with its documented
// status and code (and nothing changed by a refused request).
TEST_F(OpenApiRouterTest, RegistryErrorsAreDocumented) {
  auto created = call("POST", "/api/v1/meters", R"({"meter_id":"kitchen"})");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201u) << created->body;
  struct Case {
    const char* method;
    const char* path;  // the operation
    std::string target;
    std::string body;
    unsigned status;
    const char* code;
    std::string content_type = "application/json";
  };
  const std::vector<Case> cases = {
      {"POST", "/api/v1/meters", "/api/v1/meters", R"({"meter_id":"kitchen"})", 409,
       "meter_exists"},
      {"POST", "/api/v1/meters", "/api/v1/meters", R"({"meter_id":"a/b"})", 400,
       "invalid_meter_id"},
      {"POST", "/api/v1/meters", "/api/v1/meters", R"({"name":"no id"})", 400, "invalid_parameter"},
      {"POST", "/api/v1/meters", "/api/v1/meters", R"({"meter_id":"x","key":"k"})", 400,
       "invalid_parameter"},
      {"POST", "/api/v1/meters", "/api/v1/meters", R"({"meter_id":"x","interval_s":0})", 400,
       "invalid_parameter"},
      {"POST", "/api/v1/meters", "/api/v1/meters", "[1]", 400, "malformed_json"},
      {"POST", "/api/v1/meters", "/api/v1/meters", "", 400, "empty_body"},
      {"POST", "/api/v1/meters", "/api/v1/meters", R"({"meter_id":"x"})", 415,
       "unsupported_media_type", "text/plain"},
      {"PATCH", "/api/v1/meters/{meter_id}", "/api/v1/meters/kitchen", "{}", 400,
       "invalid_parameter"},
      {"PATCH", "/api/v1/meters/{meter_id}", "/api/v1/meters/kitchen", R"({"name":null})", 400,
       "invalid_parameter"},
      {"PATCH", "/api/v1/meters/{meter_id}", "/api/v1/meters/kitchen",
       R"({"tariff":{"currency":1,"price_per_kwh":0.2}})", 400, "invalid_tariff"},
      {"PATCH", "/api/v1/meters/{meter_id}", "/api/v1/meters/nope", R"({"name":"x"})", 404,
       "unknown_meter"},
      {"PATCH", "/api/v1/meters/{meter_id}", "/api/v1/meters/..", R"({"name":"x"})", 400,
       "invalid_meter_id"},
      {"PATCH", "/api/v1/meters/{meter_id}", "/api/v1/meters/kitchen", R"({"name":"x"})", 415,
       "unsupported_media_type", "application/x-www-form-urlencoded"},
      {"DELETE", "/api/v1/meters/{meter_id}", "/api/v1/meters/kitchen", "", 400,
       "confirmation_required"},
      {"DELETE", "/api/v1/meters/{meter_id}", "/api/v1/meters/kitchen?confirm=kitchen2", "", 400,
       "confirmation_required"},
      {"DELETE", "/api/v1/meters/{meter_id}", "/api/v1/meters/nope?confirm=nope", "", 404,
       "unknown_meter"},
      {"POST", "/api/v1/meters/{meter_id}/rotate-key", "/api/v1/meters/nope/rotate-key", "", 404,
       "unknown_meter"},
      {"POST", "/api/v1/meters/{meter_id}/rotate-key", "/api/v1/meters/a%2Fb/rotate-key", "", 400,
       "invalid_meter_id"},
      {"POST", "/api/v1/tokens", "/api/v1/tokens", R"({"name":"x","scope":"write"})", 400,
       "invalid_parameter"},
      {"POST", "/api/v1/tokens", "/api/v1/tokens", R"({"name":""})", 400, "invalid_parameter"},
      {"POST", "/api/v1/tokens", "/api/v1/tokens", "null", 400, "malformed_json"},
      {"POST", "/api/v1/tokens", "/api/v1/tokens", R"({"name":"x"})", 415, "unsupported_media_type",
       "text/plain"},
      {"DELETE", "/api/v1/tokens/{token_id}", "/api/v1/tokens/000000000000", "", 404,
       "unknown_token"},
      {"DELETE", "/api/v1/tokens/{token_id}", "/api/v1/tokens/" + admin_token_.substr(4, 12), "",
       409, "last_admin_token"},
  };
  for (const Case& c : cases) {
    const std::string name = std::string(c.method) + " " + c.target + " " + c.body;
    auto res = try_call(c.method, c.target, c.body, c.content_type);
    ASSERT_TRUE(res) << name << ": no answer within 10 s";
    EXPECT_EQ(res->status, c.status) << name << ": " << res->body;
    EXPECT_EQ(code_of(*res), c.code) << name << ": " << res->body;
    SCOPED_TRACE(name);
    expect_documented(c.method, c.path, *res);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Nothing of it happened.
  auto meters = call("GET", "/api/v1/meters");
  ASSERT_TRUE(meters);
  EXPECT_EQ(json::parse(meters->body).at("count").as_int64(), 1) << meters->body;
  auto kitchen = call("GET", "/api/v1/meters/kitchen");
  ASSERT_TRUE(kitchen);
  EXPECT_EQ(kitchen->status, 200u);
  EXPECT_EQ(str(json::parse(kitchen->body).at("name")), "");
  auto tokens = call("GET", "/api/v1/tokens");
  ASSERT_TRUE(tokens);
  EXPECT_EQ(json::parse(tokens->body).at("tokens").as_array().size(), 1u) << tokens->body;
}

// The same routes refused: with the secure defaults (no --public-read, no
// --auto-register), an anonymous caller, a device key and a read token get
// 401/403 (or succeed where they may), each documented with its code.
class OpenApiAccessTest : public OpenApiRouterTest {
 protected:
  auth::AuthOptions auth_options() const override { return {}; }
};

TEST_F(OpenApiAccessTest, RefusalsAreDocumented) {
  auto meter = call("POST", "/api/v1/meters", R"({"meter_id":")" + std::string(kMeter) + R"("})");
  ASSERT_TRUE(meter);
  ASSERT_EQ(meter->status, 201u) << meter->body;
  const std::string device = str(json::parse(meter->body).at("device_key"));
  auto token = call("POST", "/api/v1/tokens", R"({"name":"reader","scope":"read"})");
  ASSERT_TRUE(token);
  ASSERT_EQ(token->status, 201u) << token->body;
  const json::value t = json::parse(token->body);
  const std::string read = str(t.at("token"));
  token_id_ = str(t.at("id"));
  ASSERT_FALSE(device.empty());
  ASSERT_FALSE(read.empty());

  std::map<unsigned, std::size_t> seen;  // statuses, to show the refusals happened
  for (const RouteInfo& route : routes()) {
    const std::string method = route.method, path = route.path;
    if (!served_by_router(path)) continue;
    const bool open = path == "/healthz" || path == "/readyz";
    for (const auto& [who, key] : {std::pair<std::string, std::string>{"anonymous", ""},
                                   {"device key", device},
                                   {"read token", read}}) {
      const std::string name = who + ": " + method + " " + path;
      path_key_ = key;  // ThingsBoard: the caller's key is in the path
      auto res = call_as(key, method, target_of(method, path), body_for(method, path));
      ASSERT_TRUE(res) << name << ": no answer within 10 s";
      ++seen[res->status];
      if (who == "anonymous") {
        EXPECT_EQ(res->status, open ? 200u : 401u) << name << ": " << res->body;
      }
      SCOPED_TRACE(name);
      expect_documented(method, path, *res);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  EXPECT_GT(seen[401], 10u);
  EXPECT_GT(seen[403], 10u);
}

// Every route is rate-limited per client address, and documents it.
class OpenApiRateLimitTest : public OpenApiRouterTest {
 protected:
  bool limits_on() const override { return true; }
  ApiOptions options() const override {
    ApiOptions o;
    o.ip_rate = 0.001;
    o.ip_burst = 1;
    return o;
  }
};

TEST_F(OpenApiRateLimitTest, RateLimitsAreDocumented) {
  auto first = call("GET", "/healthz");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200u);
  std::size_t checked = 0;
  for (const RouteInfo& route : routes()) {
    const std::string method = route.method, path = route.path;
    if (!served_by_router(path)) continue;
    const std::string name = method + " " + path;
    auto res = call(method, target_of(method, path), body_for(method, path));
    ASSERT_TRUE(res) << name << ": no answer within 10 s";
    EXPECT_EQ(res->status, 429u) << name << ": " << res->body;
    SCOPED_TRACE(name);
    expect_documented(method, path, *res);
    if (::testing::Test::HasFatalFailure()) return;
    ++checked;
  }
  EXPECT_GT(checked, 10u);
}

// The table lists every method a path serves: any other method is 405 with an
// Allow header naming exactly the table's methods for that path.
TEST_F(OpenApiRouterTest, OtherMethodsAreRefusedWithTheTablesAllow) {
  std::map<std::string, std::set<std::string>> methods_of;
  for (const RouteInfo& r : routes())
    if (served_by_router(r.path)) methods_of[r.path].insert(r.method);
  ASSERT_FALSE(methods_of.empty());

  for (const auto& [path, methods] : methods_of) {
    for (const char* m : {"GET", "POST", "PUT", "DELETE", "PATCH"}) {
      if (methods.contains(m)) continue;
      const std::string name = std::string(m) + " " + path;
      auto res = call(m, target_of(m, path));
      ASSERT_TRUE(res) << name << ": no answer within 10 s";
      EXPECT_EQ(res->status, 405u)
          << name << " is not in the route table but answered " << res->status << ": " << res->body;
      if (res->status != 405) continue;
      std::set<std::string> allow;
      for (const auto& [k, v] : res->headers) {
        if (k != "Allow") continue;
        std::stringstream ss(v);
        for (std::string item; std::getline(ss, item, ',');) {
          const auto b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
          if (b != std::string::npos) allow.insert(item.substr(b, e - b + 1));
        }
      }
      EXPECT_EQ(allow, methods) << name << ": the Allow header and the route table differ";
    }
  }
}

}  // namespace
}  // namespace meterhub::api

// docs/openapi.json (served as GET /openapi.json, shown by /docs) against the
// server itself: the route table api::routes() and the spec must name exactly
// the same operations, the spec must hang together ($refs, error schema,
// path parameters), and every API route of the table must really be served
// by Router::handle, with only the methods the table lists.
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

// ---------------------------------------------------------------------------
// The route table against Router::handle, over a real store.

class OpenApiRouterTest : public RouterHarness {
 protected:
  std::optional<Response> call(const std::string& method, const std::string& target,
                               std::string body = "") {
    return try_call(method, target, std::move(body));
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

  // A concrete target for a path template, with the sample meter.
  static std::string target_of(std::string path) {
    const std::string param = "{meter_id}";
    for (auto pos = path.find(param); pos != std::string::npos; pos = path.find(param))
      path.replace(pos, param.size(), kMeter);
    return path;
  }

  // A valid body for the operations that take one.
  std::string body_for(const std::string& method, const std::string& path) const {
    if (method == "POST" && path == "/api/v1/readings")
      return R"({"meter_id":")" + std::string(kMeter) +
             R"(","voltage":230,"current":1,"power":230,"energy":2,"ts":)" +
             std::to_string(t0_ + 60'000) + "}";
    if (method == "PUT" && path.ends_with("/tariff"))
      return R"({"currency":"EUR","price_per_kwh":0.25})";
    return {};
  }

  // The routes checked against Router::handle. The others are only checked
  // against the spec: "/", "/docs" and "/openapi.json" are static files (no
  // web root is loaded here), "/ws" and "/ws/{meter_id}" WebSocket upgrades
  // (src/http; a plain GET is 426).
  static bool served_by_router(const std::string& path) {
    return path.starts_with("/api/") || path == "/healthz" || path == "/readyz";
  }

  static constexpr const char* kMeter = "m1";
  core::TimeMs t0_ = core::now_ms() - 3'600'000;
};

// Every API route answers as a route: not 404 not_found, not 405. Whatever it
// answers (200, 201, 204, a 404 unknown_meter/no_tariff, ...) must be a
// status the spec documents for that operation, and an error's code must be
// named in that response's description.
TEST_F(OpenApiRouterTest, EveryApiRouteIsServedAsDocumented) {
  const json::value& doc = spec();
  ASSERT_TRUE(doc.is_object());
  // A meter with a reading, so that the meter's routes can succeed.
  auto seeded = call("POST", "/api/v1/readings",
                     R"({"meter_id":")" + std::string(kMeter) +
                         R"(","voltage":230,"current":1,"power":230,"energy":1,"ts":)" +
                         std::to_string(t0_) + "}");
  ASSERT_TRUE(seeded);
  ASSERT_EQ(seeded->status, 201u) << seeded->body;

  std::size_t checked = 0;
  for (const RouteInfo& route : routes()) {
    const std::string method = route.method, path = route.path;
    if (!served_by_router(path)) continue;
    ++checked;
    const std::string name = method + " " + path;
    auto res = call(method, target_of(path), body_for(method, path));
    ASSERT_TRUE(res) << name << ": no answer within 10 s";
    const std::string code = code_of(*res);
    EXPECT_FALSE(res->status == 404 && code == "not_found")
        << name << " is in the route table but Router::handle does not serve it: " << res->body;
    EXPECT_NE(res->status, 405u) << name << ": " << res->body;
    EXPECT_NE(code, "bad_target") << name << ": " << res->body;

    std::string lower = method;
    for (char& c : lower) c = static_cast<char>(c - 'A' + 'a');
    json::error_code ec;
    const json::value* op = doc.find_pointer("/paths/" + pointer_token(path) + "/" + lower, ec);
    if (!op) continue;  // reported by DocumentsExactlyTheRouteTable
    const auto* resp =
        op->as_object().at("responses").as_object().if_contains(std::to_string(res->status));
    ASSERT_TRUE(resp) << name << " answered " << res->status
                      << ", which docs/openapi.json does not document: " << res->body;
    if (res->status >= 400) {
      const json::value* r = deref(doc, *resp);
      ASSERT_NE(r, nullptr);
      EXPECT_NE(str(r->at("description")).find("`" + code + "`"), std::string::npos)
          << name << " answered " << res->status << " " << code
          << ", a code the documented response does not name";
    }
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
      auto res = call(m, target_of(path));
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

#include "api/router.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "core/time.hpp"
#include "router_harness.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

namespace meterhub::api {
namespace {

class RouterTest : public RouterHarness {
 protected:
  ApiOptions options() const override {
    ApiOptions o;
    o.max_batch = 10;
    o.page_default = 3;
    o.page_max = 5;
    return o;
  }

  static std::string code_of(const Response& r) {
    auto v = boost::json::parse(r.body);
    return std::string(v.at("error").at("code").as_string());
  }

  std::string reading(const std::string& meter, core::TimeMs ts) {
    return R"({"meter_id":")" + meter +
           R"(","voltage":230,"current":1,"power":230,"energy":1,"ts":)" + std::to_string(ts) + "}";
  }

  core::TimeMs t0_ = core::now_ms() - 3'600'000;
};

TEST_F(RouterTest, PostThenReadBack) {
  auto r = call("POST", "/api/v1/readings", reading("m1", t0_));
  EXPECT_EQ(r.status, 201u);
  EXPECT_EQ(r.body, R"({"accepted":1,"duplicates":0})");
  r = call("POST", "/api/v1/readings",
           "[" + reading("m1", t0_) + "," + reading("m1", t0_ + 1) + "]");
  EXPECT_EQ(r.body, R"({"accepted":1,"duplicates":1})");
  auto latest = call("GET", "/api/v1/meters/m1/latest");
  EXPECT_EQ(latest.status, 200u);
  EXPECT_EQ(boost::json::parse(latest.body).at("ts").as_string(), core::format_iso8601(t0_ + 1));
  auto meters = boost::json::parse(call("GET", "/api/v1/meters").body);
  EXPECT_EQ(meters.at("count").as_int64(), 1);
  EXPECT_EQ(meters.at("meters").at(0).at("meter_id").as_string(), "m1");
}

TEST_F(RouterTest, ContentTypeRules) {
  EXPECT_EQ(call("POST", "/api/v1/readings", reading("m", t0_), "").status, 201u);
  EXPECT_EQ(
      call("POST", "/api/v1/readings", reading("m", t0_ + 1), "Application/JSON; charset=utf-8")
          .status,
      201u);
  auto r =
      call("POST", "/api/v1/readings", reading("m", t0_ + 2), "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 415u);
  EXPECT_EQ(code_of(r), "unsupported_media_type");
}

TEST_F(RouterTest, RoutingErrors) {
  EXPECT_EQ(call("GET", "/nope").status, 404u);
  EXPECT_EQ(call("GET", "/api/v1/meters/m/other").status, 404u);
  EXPECT_EQ(call("GET", "/api/v2/meters").status, 404u);
  auto r = call("GET", "/api/v1/readings");
  EXPECT_EQ(r.status, 405u);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Allow", "POST"}));
  EXPECT_EQ(r.headers[1].first, "X-Request-Id");  // api/metrics.cpp: every answer has one
  EXPECT_EQ(r.headers[1].second.size(), 16u);
  EXPECT_EQ(call("DELETE", "/api/v1/meters").status, 405u);
  EXPECT_EQ(call("GET", "/api/v1/meters/%2e%2e").status, 400u);
  EXPECT_EQ(call("GET", "/api/v1/meters/a%2Fb/latest").status, 400u);
  EXPECT_EQ(call("GET", "/api/v1/meters/unknown").status, 404u);
  EXPECT_EQ(code_of(call("GET", "/api/v1/meters/unknown/latest")), "unknown_meter");
  EXPECT_EQ(call("GET", "/ws/m1").status, 426u);
  EXPECT_EQ(call("GET", "not-a-path").status, 400u);
  EXPECT_EQ(call("GET", "/healthz").status, 200u);
  EXPECT_EQ(call("GET", "/readyz").status, 200u);
}

TEST_F(RouterTest, InvalidBatchStoresNothing) {
  std::string body = "[" + reading("m", t0_) + R"(,{"meter_id":"m","voltage":1})" + "]";
  auto r = call("POST", "/api/v1/readings", body);
  EXPECT_EQ(r.status, 400u);
  auto e = boost::json::parse(r.body).at("error");
  EXPECT_EQ(e.at("index").as_int64(), 1);
  EXPECT_EQ(e.at("field").as_string(), "current");
  EXPECT_EQ(call("GET", "/api/v1/meters/m").status, 404u);
}

TEST_F(RouterTest, ReadingsArePagedThroughNextLinks) {
  std::string batch = "[";
  for (int i = 0; i < 7; ++i) batch += (i ? "," : "") + reading("p", t0_ + i * 1000);
  batch += "]";
  ASSERT_EQ(call("POST", "/api/v1/readings", batch).status, 201u);
  std::vector<std::string> seen;
  std::string target = "/api/v1/meters/p/readings";
  for (int guard = 0; guard < 10 && !target.empty(); ++guard) {
    auto page = boost::json::parse(call("GET", target).body);
    for (auto& r : page.at("readings").as_array()) seen.emplace_back(r.at("ts").as_string());
    target = page.at("next").is_null() ? "" : std::string(page.at("next").as_string());
  }
  ASSERT_EQ(seen.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(seen[i], core::format_iso8601(t0_ + i * 1000));

  auto desc = boost::json::parse(call("GET", "/api/v1/meters/p/readings?order=desc&limit=2").body);
  EXPECT_EQ(desc.at("readings").at(0).at("ts").as_string(), core::format_iso8601(t0_ + 6000));
  auto next = boost::json::parse(call("GET", std::string(desc.at("next").as_string())).body);
  EXPECT_EQ(next.at("readings").at(0).at("ts").as_string(), core::format_iso8601(t0_ + 4000));

  auto ranged = boost::json::parse(
      call("GET", "/api/v1/meters/p/readings?from=" + core::format_iso8601(t0_ + 1000) +
                      "&to=" + std::to_string(t0_ + 3000))
          .body);
  EXPECT_EQ(ranged.at("count").as_int64(), 2);
}

TEST_F(RouterTest, BadQueryParameters) {
  ASSERT_EQ(call("POST", "/api/v1/readings", reading("q", t0_)).status, 201u);
  for (const char* q : {"limit=0", "limit=6", "limit=abc", "limit=-1", "from=yesterday", "to=1e999",
                        "order=up", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"}) {
    auto r = call("GET", std::string("/api/v1/meters/q/readings?") + q);
    EXPECT_EQ(r.status, 400u) << q;
    EXPECT_EQ(code_of(r), "invalid_parameter") << q;
  }
}

TEST_F(RouterTest, WebSocketPaths) {
  auto ws = [&](std::string target) {
    Request r;
    r.method = "GET";
    r.target = std::move(target);
    r.remote = "test";
    return router_->websocket(r);
  };
  EXPECT_EQ(*ws("/ws/m1")->meter, "m1");
  EXPECT_EQ(ws("/ws")->meter, std::nullopt);  // multiplexed
  EXPECT_EQ(ws("/ws/a/b").error().status, 404u);
  EXPECT_EQ(ws("/ws/..").error().status, 400u);
  EXPECT_EQ(ws("/ws/a%20b").error().status, 400u);
  EXPECT_EQ(ws("/other/m1").error().status, 404u);
}

}  // namespace
}  // namespace meterhub::api

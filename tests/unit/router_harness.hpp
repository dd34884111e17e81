// The whole API stack without sockets, for tests that call Router::handle:
// Router -> Ingest / QueryPool -> a real SQLite file in a temp dir.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "alerts/engine.hpp"
#include "api/router.hpp"
#include "core/time.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

namespace meterhub::api {

class RouterHarness : public ::testing::Test {
 protected:
  // The API options of the Router under test (rate limits are turned off
  // unless limits_on(): every call comes from the same "IP").
  virtual ApiOptions options() const { return {}; }
  virtual bool limits_on() const { return false; }
  // Access control: open by default (these suites test the API, not keys);
  // the admin token below is sent when a call names no Authorization.
  virtual auth::AuthOptions auth_options() const {
    auth::AuthOptions a;
    a.public_read = true;
    a.auto_register = true;
    return a;
  }

  void SetUp() override {
    auto s = store::SqliteStore::open({dir_.file("m.db")});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    ingest_ = std::make_unique<ingest::Ingest>(*store_, hub_, ingest::IngestOptions{});
    ingest_->start();
    auth_ = std::make_unique<auth::Authenticator>(*store_, auth_options());
    auto admin = auth_->ensure_admin_token(core::now_ms());
    ASSERT_TRUE(admin && *admin);
    admin_token_ = **admin;
    ApiOptions o = options();
    if (!limits_on()) o.ip_rate = o.device_rate = 0;
    router_ = std::make_unique<Router>(*ingest_, *store_, pool_, hub_, *auth_, o);
    alerts_ = std::make_unique<alerts::Engine>(*store_, hub_, nullptr);
    ASSERT_TRUE(alerts_->load());
    alerts_->start();
    router_->set_alerts(alerts_.get());
  }
  void TearDown() override {
    ingest_->stop();
    pool_.stop();
    if (alerts_) alerts_->stop();
  }

  // The Router's answer, or nullopt when none came within 10 s.
  std::optional<Response> try_call(std::string method, std::string target, std::string body = "",
                                   std::string content_type = "application/json",
                                   std::optional<std::string> authorization = std::nullopt) {
    auto p = std::make_shared<std::promise<Response>>();
    auto f = p->get_future();
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    r.remote = "test";
    r.authorization = authorization ? *authorization : "Bearer " + admin_token_;
    router_->handle(std::move(r), [p](Response res) { p->set_value(std::move(res)); });
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return std::nullopt;
    return f.get();
  }
  // The same, throwing (failing the test) when no answer came.
  Response call(std::string method, std::string target, std::string body = "",
                std::string content_type = "application/json") {
    return try_call(std::move(method), std::move(target), std::move(body), std::move(content_type))
        .value();
  }

  meterhub::testing::TempDir dir_;
  std::unique_ptr<store::SqliteStore> store_;
  hub::Hub hub_;
  std::unique_ptr<ingest::Ingest> ingest_;
  QueryPool pool_{2, 64};
  std::unique_ptr<auth::Authenticator> auth_;
  std::string admin_token_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<alerts::Engine> alerts_;  // destroyed first (it watches hub_)
};

}  // namespace meterhub::api

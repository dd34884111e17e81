// The whole API stack without sockets, for tests that call Router::handle:
// Router -> Ingest / QueryPool -> a real SQLite file in a temp dir.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "api/router.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

namespace meterhub::api {

class RouterHarness : public ::testing::Test {
 protected:
  // The API options of the Router under test.
  virtual ApiOptions options() const { return {}; }

  void SetUp() override {
    auto s = store::SqliteStore::open({dir_.file("m.db")});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    ingest_ = std::make_unique<ingest::Ingest>(*store_, hub_, ingest::IngestOptions{});
    ingest_->start();
    router_ = std::make_unique<Router>(*ingest_, *store_, pool_, options());
  }
  void TearDown() override {
    ingest_->stop();
    pool_.stop();
  }

  // The Router's answer, or nullopt when none came within 10 s.
  std::optional<Response> try_call(std::string method, std::string target, std::string body = "",
                                   std::string content_type = "application/json") {
    auto p = std::make_shared<std::promise<Response>>();
    auto f = p->get_future();
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    r.remote = "test";
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
  std::unique_ptr<Router> router_;
};

}  // namespace meterhub::api

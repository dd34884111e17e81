// A fresh database of either store backend for each test of the store
// contract suite (store_contract_test.cpp), as value-parameterised
// GoogleTest: TEST_P(StoreContract, …) runs once per backend it is
// instantiated with.
//  - SQLite: a file in a temporary directory, removed after the test.
//  - PostgreSQL (compiled only with METERHUB_STORE_CONTRACT_PG, into
//    store_contract_tests): a database created with CREATE DATABASE (with
//    ICU's en-US collation) on the server that METERHUB_TEST_PG names (a URL
//    to its `postgres` database) and dropped WITH (FORCE) after the test, so every test starts
//    empty and a test that leaves connections open cannot keep its database alive. Without
//    METERHUB_TEST_PG the test is skipped with the reason, unless METERHUB_REQUIRE_PG=1 (ctest sets
//    it), which makes it a failure.
// Several store objects may be opened on one test's database: two processes
// on one SQLite file, two nodes on one PostgreSQL database. Every store call
// that fails adds a test failure with the store's error message.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

#ifdef METERHUB_STORE_CONTRACT_PG
#include <libpq-fe.h>

#include "pg_test_util.hpp"
#include "store/open.hpp"
#endif

namespace meterhub::testing {

enum class Backend { sqlite, postgres };

// How GoogleTest (and so ctest's test names) print the parameter.
inline void PrintTo(Backend b, std::ostream* os) {
  *os << (b == Backend::sqlite ? "sqlite" : "postgres");
}

// "Sqlite" / "Postgres": the test names' suffixes.
inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::sqlite ? "Sqlite" : "Postgres";
}

#ifdef METERHUB_STORE_CONTRACT_PG
// One open libpq connection, closed on destruction.
class PgConnection {
 public:
  explicit PgConnection(const std::string& url) : c_(PQconnectdb(url.c_str())) {}
  ~PgConnection() { PQfinish(c_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  bool ok() const { return c_ && PQstatus(c_) == CONNECTION_OK; }
  std::string error() const { return c_ ? PQerrorMessage(c_) : "out of memory"; }
  // Runs `sql`; "" on success, else the server's message.
  std::string exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto st = PQresultStatus(r);
    std::string err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
                          ? ""
                          : std::string("failed: ") + PQresultErrorMessage(r);
    PQclear(r);
    return err;
  }
  // The first column of the first row as an integer, or -1 with a failure.
  std::int64_t query_int(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    std::int64_t v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
      v = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    else
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
    return v;
  }

 private:
  PGconn* c_;
};

#endif

// Forwards every call to a store and adds a test failure naming the call and
// the store's error whenever one fails (no contract case expects a store
// error), so that a `.value()` that throws is explained by the error text.
class ReportingStore final : public store::Store {
 public:
  explicit ReportingStore(std::unique_ptr<store::Store> s) : s_(std::move(s)) {}

  core::Result<store::WriteOutcome> write(std::span<const core::Reading> readings,
                                          core::TimeMs received_at) override {
    return check("write", s_->write(readings, received_at));
  }
  core::Result<void> probe_write(core::TimeMs now) override {
    return check("probe_write", s_->probe_write(now));
  }
  core::Result<store::RetentionOutcome> apply_retention(const store::RetentionPolicy& policy,
                                                        core::TimeMs now) override {
    return check("apply_retention", s_->apply_retention(policy, now));
  }
  core::Result<std::vector<store::MeterInfo>> list_meters() override {
    return check("list_meters", s_->list_meters());
  }
  core::Result<std::optional<store::MeterInfo>> find_meter(std::string_view meter_id) override {
    return check("find_meter", s_->find_meter(meter_id));
  }
  core::Result<std::vector<core::Reading>> read_range(const store::RangeQuery& q) override {
    return check("read_range", s_->read_range(q));
  }
  core::Result<std::vector<core::Reading>> latest_per_meter() override {
    return check("latest_per_meter", s_->latest_per_meter());
  }
  core::Result<std::vector<core::Aggregate>> read_rollup(std::string_view meter_id,
                                                         store::Rollup table, core::TimeMs from,
                                                         core::TimeMs to) override {
    return check("read_rollup", s_->read_rollup(meter_id, table, from, to));
  }
  core::Result<std::vector<std::pair<core::TimeMs, double>>> read_kwh(std::string_view meter_id,
                                                                      store::Rollup table,
                                                                      core::TimeMs from,
                                                                      core::TimeMs to) override {
    return check("read_kwh", s_->read_kwh(meter_id, table, from, to));
  }
  core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(store::Rollup table,
                                                                       core::TimeMs from,
                                                                       core::TimeMs to) override {
    return check("kwh_totals", s_->kwh_totals(table, from, to));
  }
  core::Result<std::optional<std::string>> tariff(std::string_view meter_id) override {
    return check("tariff", s_->tariff(meter_id));
  }
  core::Result<bool> set_tariff(std::string_view meter_id, std::optional<std::string> doc,
                                core::TimeMs now) override {
    return check("set_tariff", s_->set_tariff(meter_id, std::move(doc), now));
  }
  core::Result<bool> create_meter(const store::NewMeter& m,
                                  const std::optional<store::Credential>& key,
                                  core::TimeMs now) override {
    return check("create_meter", s_->create_meter(m, key, now));
  }
  core::Result<bool> update_meter(std::string_view meter_id, const store::MeterPatch& p) override {
    return check("update_meter", s_->update_meter(meter_id, p));
  }
  core::Result<std::optional<std::size_t>> delete_meter(std::string_view meter_id) override {
    return check("delete_meter", s_->delete_meter(meter_id));
  }
  core::Result<std::vector<std::string>> writer_missing_meters(
      std::span<const std::string> meter_ids) override {
    return check("writer_missing_meters", s_->writer_missing_meters(meter_ids));
  }
  core::Result<bool> add_credential(const store::Credential& c, core::TimeMs now) override {
    return check("add_credential", s_->add_credential(c, now));
  }
  core::Result<Revoke> revoke_credential(std::string_view id, core::TimeMs now) override {
    return check("revoke_credential", s_->revoke_credential(id, now));
  }
  core::Result<std::vector<store::Credential>> list_credentials() override {
    return check("list_credentials", s_->list_credentials());
  }
  core::Result<std::int64_t> registry_generation() override {
    return check("registry_generation", s_->registry_generation());
  }
  core::Result<bool> set_alert_rules(std::string_view meter_id, const std::string& doc,
                                     core::TimeMs now) override {
    return check("set_alert_rules", s_->set_alert_rules(meter_id, doc, now));
  }
  core::Result<std::optional<std::string>> alert_rules(std::string_view meter_id) override {
    return check("alert_rules", s_->alert_rules(meter_id));
  }
  core::Result<std::vector<std::pair<std::string, std::string>>> all_alert_rules() override {
    return check("all_alert_rules", s_->all_alert_rules());
  }
  core::Result<std::int64_t> raise_alert(const store::AlertRecord& a) override {
    return check("raise_alert", s_->raise_alert(a));
  }
  core::Result<void> clear_alert(std::int64_t id, core::TimeMs at, double value,
                                 const std::string& message) override {
    return check("clear_alert", s_->clear_alert(id, at, value, message));
  }
  core::Result<std::vector<store::AlertRecord>> list_alerts(const store::AlertQuery& q) override {
    return check("list_alerts", s_->list_alerts(q));
  }

 private:
  template <class T>
  static core::Result<T> check(const char* call, core::Result<T> r) {
    if (!r)
      ADD_FAILURE() << "Store::" << call << " failed: " << r.error().code << ": "
                    << r.error().message;
    return r;
  }

  std::unique_ptr<store::Store> s_;
};

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::sqlite) {
      path_ = dir_.file("m.db");
    } else {
#ifdef METERHUB_STORE_CONTRACT_PG
      const char* url = std::getenv("METERHUB_TEST_PG");
      if (!url || !*url) {
        const char* require = std::getenv("METERHUB_REQUIRE_PG");
        if (require && std::string(require) == "1")
          FAIL() << "METERHUB_REQUIRE_PG=1 but METERHUB_TEST_PG is not set: the ctest fixture "
                    "pg_cluster_start should have provided a PostgreSQL server";
        GTEST_SKIP() << "METERHUB_TEST_PG is not set: no PostgreSQL server to test against "
                        "(set it to e.g. postgresql://postgres@/postgres?host=/tmp&port=5432, "
                        "or run the test through ctest)";
      }
      admin_url_ = url;
      std::random_device rd;
      db_name_ = "contract_" + std::to_string(rd()) + std::to_string(rd());
      PgConnection admin(admin_url_);
      ASSERT_TRUE(admin.ok()) << "cannot connect to METERHUB_TEST_PG=" << admin_url_ << ": "
                              << admin.error();
      // With a natural-language collation, as production databases often
      // have: text sorted without COLLATE "C" then differs from SQLite's
      // byte order and the ordering cases fail. Servers built without ICU
      // get the server's default collation.
      std::string err = admin.exec("CREATE DATABASE " + db_name_ +
                                   " TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' "
                                   "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
      if (!err.empty()) {
        std::cerr << "[   NOTE   ] no ICU collation (" << err << "): the server's default\n";
        err = admin.exec("CREATE DATABASE " + db_name_);
      }
      ASSERT_EQ(err, "") << "CREATE DATABASE " << db_name_;
      created_ = true;
      path_ = meterhub::testing::pg_url_for(admin_url_, db_name_);
#else
      GTEST_SKIP() << "built without PostgreSQL support (see store_contract_tests)";
#endif
    }
    store_ = open();
    ASSERT_TRUE(store_);
  }

  void TearDown() override {
    store_.reset();
#ifdef METERHUB_STORE_CONTRACT_PG
    if (created_) {
      PgConnection admin(admin_url_);
      ASSERT_TRUE(admin.ok()) << admin.error();
      EXPECT_EQ(admin.exec("DROP DATABASE IF EXISTS " + db_name_ + " WITH (FORCE)"), "");
    }
#endif
  }

  Backend backend() const { return GetParam(); }
  store::Store& store() { return *store_; }

  // Another store object on this test's database (another process on the
  // SQLite file, another node on the PostgreSQL database), or nullptr after
  // a test failure.
  std::unique_ptr<store::Store> open() {
    if (GetParam() == Backend::sqlite) {
      auto s = store::SqliteStore::open({path_});
      EXPECT_TRUE(s) << (s ? "" : s.error().message);
      if (!s) return nullptr;
      return std::make_unique<ReportingStore>(std::move(*s));
    }
#ifdef METERHUB_STORE_CONTRACT_PG
    store::StoreConfig cfg;
    cfg.db = path_;
    cfg.pg_connections = 2;
    auto s = store::open_store(cfg);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    if (!s) return nullptr;
    return std::make_unique<ReportingStore>(std::move(s->store));
#else
    return nullptr;
#endif
  }

  // Closes the test's store and opens it again on the same database.
  void reopen() {
    store_.reset();
    store_ = open();
  }

  // One integer from SQL run on the database beside the store (the tables
  // are named alike in both backends).
  std::int64_t query_int(const std::string& sql) {
    if (GetParam() == Backend::sqlite) {
      sqlite3* db = nullptr;
      std::int64_t v = -1;
      sqlite3_stmt* st = nullptr;
      if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
          sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
      else
        ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
      sqlite3_finalize(st);
      sqlite3_close(db);
      return v;
    }
#ifdef METERHUB_STORE_CONTRACT_PG
    PgConnection c(path_);
    if (!c.ok()) {
      ADD_FAILURE() << c.error();
      return -1;
    }
    return c.query_int(sql);
#else
    return -1;
#endif
  }

  std::unique_ptr<store::Store> store_;

 private:
  TempDir dir_;
  std::string path_;  // the SQLite file, or the PostgreSQL URL of the test's database
  std::string admin_url_;
  std::string db_name_;
  [[maybe_unused]] bool created_ = false;  // used with METERHUB_STORE_CONTRACT_PG
};

}  // namespace meterhub::testing

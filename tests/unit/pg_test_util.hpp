// Helpers for tests against a real PostgreSQL server: METERHUB_TEST_PG names
// a server (a URL to its `postgres` database); each TempPgDb creates its own
// database there and drops it again, so tests never share state.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <string>

namespace meterhub::testing {

// The server URL, or nullopt when the tests should skip.
inline std::optional<std::string> pg_server() {
  const char* v = std::getenv("METERHUB_TEST_PG");
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

// `url` with its database replaced by `db` (postgresql://…/db?…).
inline std::string pg_url_for(const std::string& url, const std::string& db) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string::npos ? 0 : scheme + 3;
  const auto query = url.find('?', start);
  const auto slash = url.find('/', start);
  if (slash == std::string::npos || (query != std::string::npos && slash > query)) {
    const auto at = query == std::string::npos ? url.size() : query;
    return url.substr(0, at) + "/" + db + url.substr(at);
  }
  const auto end = query == std::string::npos ? url.size() : query;
  return url.substr(0, slash + 1) + db + url.substr(end);
}

// Runs one statement on the server's maintenance database; "" or the error.
inline std::string pg_admin(const std::string& server, const std::string& sql) {
  PGconn* c = PQconnectdb(server.c_str());
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);  // "does not exist, skipping"
  std::string err;
  if (PQstatus(c) != CONNECTION_OK) {
    err = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
      err = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  return err;
}

// A fresh database core_t<pid>_<n>, dropped (connections and all) on
// destruction.
class TempPgDb {
 public:
  explicit TempPgDb(const std::string& server) : server_(server) {
    static std::atomic<int> n{0};
    name_ = "core_t" + std::to_string(::getpid()) + "_" + std::to_string(n++);
    pg_admin(server_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    const std::string err = pg_admin(server_, "CREATE DATABASE " + name_);
    EXPECT_EQ(err, "") << "cannot create test database " << name_;
    url_ = pg_url_for(server_, name_);
  }
  ~TempPgDb() { pg_admin(server_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)"); }
  TempPgDb(const TempPgDb&) = delete;
  TempPgDb& operator=(const TempPgDb&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  std::string server_, name_, url_;
};

}  // namespace meterhub::testing

// Skips the current test when no server is configured.
#define METERHUB_REQUIRE_PG(server_var)                                                     \
  const auto server_var##_opt = ::meterhub::testing::pg_server();                           \
  if (!server_var##_opt)                                                                    \
    GTEST_SKIP() << "METERHUB_TEST_PG is not set (a URL to a PostgreSQL server's postgres " \
                    "database, e.g. postgresql://postgres@/postgres?host=/tmp&port=55432)"; \
  const std::string& server_var = *server_var##_opt

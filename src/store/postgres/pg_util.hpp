// Small RAII wrappers over libpq shared by the files of the PostgreSQL store.
// Internal to src/store/postgres.
//
// Every query is sent with PQexecParams/PQexecPrepared in text format: the
// values are few and small, and text keeps the code obvious (doubles are
// printed with std::to_chars, which round-trips exactly).
#pragma once

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace meterhub::store::pg {

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};

// One query's result. ok() for COMMAND_OK / TUPLES_OK / COPY_IN.
class Res {
 public:
  Res() = default;
  explicit Res(PGresult* r) : r_(r) {}
  PGresult* get() const { return r_.get(); }
  bool ok() const {
    const auto st = PQresultStatus(r_.get());
    return r_ && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN);
  }
  int rows() const { return PQntuples(r_.get()); }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view text(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
  }
  std::int64_t i64(int row, int col) const {
    std::int64_t v = 0;
    auto t = text(row, col);
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
  }
  double f64(int row, int col) const {
    double v = 0;
    auto t = text(row, col);
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
  }
  std::optional<double> opt_f64(int row, int col) const {
    if (null(row, col)) return std::nullopt;
    return f64(row, col);
  }
  std::optional<std::int64_t> opt_i64(int row, int col) const {
    if (null(row, col)) return std::nullopt;
    return i64(row, col);
  }
  // The SQLSTATE of a failed query ("" if none), e.g. "40P01" deadlock.
  std::string sqlstate() const {
    const char* s = r_ ? PQresultErrorField(r_.get(), PG_DIAG_SQLSTATE) : nullptr;
    return s ? s : "";
  }
  std::string message() const {
    const char* m = r_ ? PQresultErrorMessage(r_.get()) : nullptr;
    std::string s = m ? m : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

 private:
  std::unique_ptr<PGresult, ResultDeleter> r_;
};

// Text parameters of one query: nullopt is SQL NULL.
class Params {
 public:
  Params& add(std::string_view s) {
    vals_.emplace_back(s);
    return *this;
  }
  Params& add(const char* s) { return add(std::string_view(s)); }
  Params& add(const std::string& s) { return add(std::string_view(s)); }
  Params& add(std::int64_t v) {
    char buf[24];
    auto [p, _] = std::to_chars(buf, buf + sizeof buf, v);
    vals_.emplace_back(std::string(buf, p));
    return *this;
  }
  Params& add(int v) { return add(static_cast<std::int64_t>(v)); }
  Params& add(std::size_t v) { return add(static_cast<std::int64_t>(v)); }
  Params& add(double v) {
    char buf[32];
    auto [p, _] = std::to_chars(buf, buf + sizeof buf, v);
    vals_.emplace_back(std::string(buf, p));
    return *this;
  }
  Params& add(bool v) { return add(std::string_view(v ? "t" : "f")); }
  template <class T>
  Params& add(const std::optional<T>& v) {
    if (v) return add(*v);
    vals_.emplace_back(std::nullopt);
    return *this;
  }
  Params& null() {
    vals_.emplace_back(std::nullopt);
    return *this;
  }
  // Binary-safe bytes (bytea) as hex text: '\x…'.
  Params& bytes(std::string_view raw) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s = "\\x";
    s.reserve(2 + raw.size() * 2);
    for (unsigned char c : raw) {
      s.push_back(kHex[c >> 4]);
      s.push_back(kHex[c & 15]);
    }
    vals_.emplace_back(std::move(s));
    return *this;
  }
  int size() const { return static_cast<int>(vals_.size()); }
  std::vector<const char*> pointers() const {
    std::vector<const char*> p;
    p.reserve(vals_.size());
    for (const auto& v : vals_) p.push_back(v ? v->c_str() : nullptr);
    return p;
  }

 private:
  std::vector<std::optional<std::string>> vals_;
};

// bytea column (hex output format) back to raw bytes.
inline std::string unhex(std::string_view t) {
  if (t.size() < 2 || t[0] != '\\' || t[1] != 'x') return std::string(t);
  auto v = [](char c) -> int {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
  };
  std::string out;
  out.reserve((t.size() - 2) / 2);
  for (std::size_t i = 2; i + 1 < t.size(); i += 2)
    out.push_back(static_cast<char>(v(t[i]) << 4 | v(t[i + 1])));
  return out;
}

inline Res exec(PGconn* c, const char* sql) { return Res(PQexec(c, sql)); }
inline Res exec(PGconn* c, const std::string& sql, const Params& p) {
  auto ptrs = p.pointers();
  return Res(PQexecParams(c, sql.c_str(), p.size(), nullptr, ptrs.data(), nullptr, nullptr, 0));
}

// The error for a failed query: code "store_unavailable" (the store's
// contract), with PostgreSQL's own words.
inline std::unexpected<core::Error> unavailable(PGconn* c, const Res& r, std::string_view what) {
  std::string why = r.get() ? r.message() : std::string();
  if (why.empty() && c) why = PQerrorMessage(c);
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  return core::fail("store_unavailable", std::string(what) + ": " + why);
}

// Errors worth retrying the whole transaction for.
inline bool retryable(const Res& r) {
  const std::string s = r.sqlstate();
  return s == "40001" || s == "40P01";  // serialization failure, deadlock
}

}  // namespace meterhub::store::pg

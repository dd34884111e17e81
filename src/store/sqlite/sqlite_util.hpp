// Small RAII wrappers and helpers over the SQLite C API, shared by the files
// of the SQLite store. Internal to src/store/sqlite.
#pragma once

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::store::sqlite {

// Why a write failed, in the OS's words: SQLite reports a read-only disk
// as "disk I/O error" and keeps no errno for a failed COMMIT. So on such a
// failure (only then) ask the filesystem: first whether the database file and
// its WAL may be written (access(2): "Read-only file system" for a read-only
// mount, "Operation not permitted" for an immutable file; it never opens
// them, since closing a descriptor of the database would drop SQLite's
// locks), then write one byte to a scratch file beside the database ("No
// space left on device"). Empty when all of that works.
inline std::string filesystem_state(sqlite3* db) {
  const char* file = sqlite3_db_filename(db, "main");
  if (!file || !*file) return {};
  const std::string main_file = file;
  for (const std::string& f : {main_file, main_file + "-wal"}) {
    if (::access(f.c_str(), W_OK) != 0 && errno != ENOENT) return std::strerror(errno);
  }
  const std::string probe = main_file + "-fsprobe";
  int err = 0;
  errno = 0;
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    err = errno;
  } else {
    if (::write(fd, "x", 1) != 1 || ::fsync(fd) != 0) err = errno ? errno : EIO;
    ::close(fd);
    ::unlink(probe.c_str());
  }
  return err ? std::strerror(err) : std::string();
}

inline std::unexpected<core::Error> unavailable(sqlite3* db, std::string_view what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
  if (db) {
    const int primary = sqlite3_extended_errcode(db) & 0xff;
    if (primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_READONLY ||
        primary == SQLITE_CANTOPEN) {
      const std::string why = filesystem_state(db);
      if (!why.empty()) msg += " (" + why + ")";
    }
  }
  return core::fail("store_unavailable", std::move(msg));
}

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

// Owns a connection. Declare it before the statements that use it, so members'
// reverse destruction order finalizes every statement before the close.
struct Db {
  sqlite3* db = nullptr;
  Db() = default;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { sqlite3_close(db); }
};

inline core::Result<void> exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return core::fail("store_unavailable", msg);
  }
  return {};
}

inline core::Result<void> prepare(sqlite3* db, const char* sql, Stmt& st) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st.s, nullptr) != SQLITE_OK)
    return unavailable(db, "prepare failed");
  return {};
}

// One IMMEDIATE transaction around `body`: committed when it returns a value,
// rolled back otherwise (and when COMMIT fails).
template <class T, class F>
core::Result<T> transaction(sqlite3* db, F&& body) {
  if (auto r = exec(db, "BEGIN IMMEDIATE"); !r) return std::unexpected(r.error());
  core::Result<T> out = body();
  if (!out) {
    (void)exec(db, "ROLLBACK");
    return out;
  }
  if (auto c = exec(db, "COMMIT"); !c) {
    (void)exec(db, "ROLLBACK");
    return std::unexpected(c.error());
  }
  return out;
}

// Runs one step of a statement and resets it; SQLITE_DONE/ROW are fine.
inline bool step_reset(sqlite3_stmt* s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

inline std::optional<double> opt_double(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(s, col);
}

inline void bind_opt(sqlite3_stmt* s, int col, std::optional<double> v) {
  if (v)
    sqlite3_bind_double(s, col, *v);
  else
    sqlite3_bind_null(s, col);
}

inline std::string text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

// Steps a read statement to completion, calling row(s) for each row; resets it.
template <class F>
core::Result<void> each_row(sqlite3* db, sqlite3_stmt* s, F&& row) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return unavailable(db, "query failed");
  return {};
}

}  // namespace meterhub::store::sqlite

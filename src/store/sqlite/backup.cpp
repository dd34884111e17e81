#include "store/sqlite/backup.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "store/sqlite/sqlite_util.hpp"

namespace meterhub::store {
namespace {

namespace fs = std::filesystem;
using sqlite::Db;
using sqlite::Stmt;

std::unexpected<core::Error> failure(std::string msg) {
  return core::fail("backup_failed", std::move(msg));
}

std::unexpected<core::Error> db_failure(sqlite3* db, const std::string& what) {
  return failure(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

bool fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// Removes the temporary copy (and any journal of it) unless released.
struct TempFile {
  std::string path;
  bool keep = false;
  ~TempFile() {
    if (keep) return;
    std::error_code ec;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(path + suffix, ec);
  }
};

}  // namespace

core::Result<BackupReport> backup_database(const std::string& db_path, const std::string& out,
                                           const BackupOptions& opts) {
  using Clock = std::chrono::steady_clock;
  BackupReport rep;
  std::error_code ec;
  if (out.empty()) return failure("--out is empty");
  if (fs::weakly_canonical(db_path, ec) == fs::weakly_canonical(out, ec) && !ec)
    return failure("--out is the database itself");
  if (fs::exists(out, ec) && !opts.force)
    return failure("\"" + out + "\" exists; pass --force to replace it");
  if (!fs::exists(db_path, ec)) return failure("no database at \"" + db_path + "\"");

  // Read-write only so that a WAL database without its -shm file opens; the
  // connection never writes.
  Db src;
  if (sqlite3_open_v2(db_path.c_str(), &src.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return db_failure(src.db, "cannot open \"" + db_path + "\"");
  sqlite3_busy_timeout(src.db, opts.busy_timeout_ms);
  // The snapshot: a read transaction held until the last page is copied.
  if (auto r = sqlite::exec(src.db, "BEGIN"); !r) return failure(r.error().message);
  {
    Stmt st;
    if (sqlite3_prepare_v2(src.db, "SELECT max(version) FROM schema_version", -1, &st.s, nullptr) !=
        SQLITE_OK)
      return failure("\"" + db_path + "\" is not a meterhub database (" + sqlite3_errmsg(src.db) +
                     ")");
    if (sqlite3_step(st.s) != SQLITE_ROW) return db_failure(src.db, "reading schema_version");
    rep.schema_version = sqlite3_column_int(st.s, 0);
  }

  TempFile tmp{out + ".tmp"};
  {
    TempFile stale{tmp.path};  // a copy left by an interrupted backup
  }
  const auto copy_start = Clock::now();
  {
    Db dst;
    if (sqlite3_open_v2(tmp.path.c_str(), &dst.db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      return db_failure(dst.db, "cannot create \"" + tmp.path + "\"");
    sqlite3_backup* b = sqlite3_backup_init(dst.db, "main", src.db, "main");
    if (!b) return db_failure(dst.db, "backup");
    int rc = SQLITE_OK;
    int busy_rounds = 0;
    while (true) {
      rc = sqlite3_backup_step(b, opts.pages_per_step);
      if (rc == SQLITE_DONE) break;
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        // Only the destination can be busy (nobody else should use it).
        if (++busy_rounds > 1000) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (rc != SQLITE_OK) break;
      if (opts.pause.count() > 0) std::this_thread::sleep_for(opts.pause);
    }
    rep.pages = sqlite3_backup_pagecount(b);
    const int fin = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
      return failure(std::string("copying pages: ") + sqlite3_errstr(rc == SQLITE_OK ? fin : rc));
    if (fin != SQLITE_OK) return db_failure(dst.db, "finishing the copy");
    (void)sqlite::exec(src.db, "COMMIT");  // ends the snapshot; nothing was written
    rep.copy_time =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - copy_start);

    // The copy is checked on its own connection's view of the new file.
    const auto check_start = Clock::now();
    Stmt st;
    if (sqlite3_prepare_v2(dst.db, "PRAGMA integrity_check", -1, &st.s, nullptr) != SQLITE_OK)
      return db_failure(dst.db, "integrity_check");
    std::string verdict;
    while (sqlite3_step(st.s) == SQLITE_ROW) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0));
      if (!verdict.empty()) verdict += "; ";
      verdict += t ? t : "";
      if (verdict.size() > 2000) break;
    }
    if (verdict != "ok") return failure("the copy failed PRAGMA integrity_check: " + verdict);
    rep.check_time =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - check_start);
    // Leave a single self-contained file: no WAL beside the copy.
    if (auto r = sqlite::exec(dst.db, "PRAGMA journal_mode=DELETE"); !r)
      return failure("the copy: " + r.error().message);
  }  // closes the copy

  if (!fsync_path(tmp.path, false)) return failure("fsync of \"" + tmp.path + "\" failed");
  rep.bytes = static_cast<std::int64_t>(fs::file_size(tmp.path, ec));
  fs::rename(tmp.path, out, ec);
  if (ec) return failure("cannot rename the copy to \"" + out + "\": " + ec.message());
  tmp.keep = true;
  fs::path dir = fs::path(out).parent_path();
  if (dir.empty()) dir = ".";
  if (!fsync_path(dir.string(), true)) return failure("fsync of \"" + dir.string() + "\" failed");
  return rep;
}

}  // namespace meterhub::store

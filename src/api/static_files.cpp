#include "api/static_files.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace meterhub::api {
namespace {

constexpr std::size_t kMaxTotal = 64u << 20;

std::string content_type_for(const std::filesystem::path& p) {
  static const std::unordered_map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".woff2", "font/woff2"},
      {".webmanifest", "application/manifest+json"},
  };
  auto it = kTypes.find(p.extension().string());
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

// FNV-1a, 64 bit: a cache validator, not a security measure.
std::string etag_of(std::string_view body) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

core::Result<StaticFiles> StaticFiles::load(const std::filesystem::path& root) {
  StaticFiles out;
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return out;
  std::size_t total = 0;
  auto it = std::filesystem::recursive_directory_iterator(
      root, std::filesystem::directory_options::follow_directory_symlink, ec);
  if (ec) return core::fail("web_root", "cannot read " + root.string() + ": " + ec.message());
  for (; it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return core::fail("web_root", "cannot read " + root.string() + ": " + ec.message());
    const auto& p = it->path();
    if (p.filename().string().starts_with(".")) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in) return core::fail("web_root", "cannot read " + p.string());
    File f;
    f.body = std::move(ss).str();
    total += f.body.size();
    if (total > kMaxTotal)
      return core::fail("web_root", root.string() + " holds more than 64 MiB of files");
    f.content_type = content_type_for(p);
    f.etag = etag_of(f.body);
    out.files_.emplace("/" + std::filesystem::relative(p, root).generic_string(), std::move(f));
  }
  return out;
}

const StaticFiles::File* StaticFiles::find(std::string_view path) const {
  if (path == "/") path = "/index.html";
  if (path == "/docs") path = "/docs.html";
  auto it = files_.find(std::string(path));
  return it == files_.end() ? nullptr : &it->second;
}

}  // namespace meterhub::api

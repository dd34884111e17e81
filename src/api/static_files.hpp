// The dashboard's static files (HTML, JS modules, CSS, vendored uPlot and
// Swagger UI), loaded from the web root into memory at start-up and served
// from there: no file system access per request, and no path a request can
// name outside the loaded set (so no traversal). A few MB at most.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/error.hpp"

namespace meterhub::api {

class StaticFiles {
 public:
  struct File {
    std::string body;
    std::string content_type;
    std::string etag;  // strong validator: a hash of the body, quoted
  };

  // Every regular file under `root`, recursively (symlinks followed, dot
  // files skipped), up to 64 MiB in all. A missing root gives an empty set.
  static core::Result<StaticFiles> load(const std::filesystem::path& root);

  // By request path: "/js/app.js". "/" is "/index.html" and "/docs" is
  // "/docs.html". nullptr when there is no such file.
  const File* find(std::string_view path) const;
  std::size_t size() const { return files_.size(); }

 private:
  std::unordered_map<std::string, File> files_;
};

}  // namespace meterhub::api

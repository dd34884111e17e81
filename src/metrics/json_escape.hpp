// JSON string escaping for log lines (app/logging.cpp), header-only so that
// any output buffer with append(first, last) works (std::string, fmt's
// memory_buf_t). Always produces valid JSON string contents from any bytes:
// quotes, backslashes and control characters are escaped, and bytes that
// are not valid UTF-8 become U+FFFD.
#pragma once

#include <cstddef>
#include <string_view>

namespace meterhub::metrics {

// Length of a valid UTF-8 sequence at s[i], or 0.
inline std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(k) & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
  if (c == 0xED && b(1) > 0x9F) return 0;  // surrogates
  if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
  if (c == 0xF4 && b(1) > 0x8F) return 0;  // > U+10FFFF
  return n;
}

// Appends `s` as the contents of a JSON string (no quotes) to `out`.
template <class Out>
void escape_json_into(Out& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto put = [&](std::string_view v) { out.append(v.data(), v.data() + v.size()); };
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_len(s, i);
      if (n == 0) {
        put("\\ufffd");
        ++i;
      } else {
        put(s.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        put("\\\"");
        break;
      case '\\':
        put("\\\\");
        break;
      case '\n':
        put("\\n");
        break;
      case '\r':
        put("\\r");
        break;
      case '\t':
        put("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          put(std::string_view(u, 6));
        } else {
          const char ch = static_cast<char>(c);
          put(std::string_view(&ch, 1));
        }
    }
  }
}

}  // namespace meterhub::metrics

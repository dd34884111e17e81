#include "core/error.hpp"

namespace meterhub::core {

std::unexpected<Error> fail(std::string code, std::string message) {
  return std::unexpected(Error{std::move(code), std::move(message), std::nullopt, {}});
}

}  // namespace meterhub::core

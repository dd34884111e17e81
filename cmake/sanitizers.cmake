# Sanitizer and fuzzing builds (docs/testing.md, "Fuzzing and sanitizers").
#
#   METERHUB_SANITIZE=ON  every target with AddressSanitizer + UndefinedBehavior-
#                         Sanitizer; any UB report aborts (-fno-sanitize-recover).
#   METERHUB_FUZZ=ON      also libFuzzer coverage on every TU and the fuzz/
#                         targets (clang only). Implies METERHUB_SANITIZE.
#
# `make test-asan` and `make fuzz` share one such build dir (build-asan,
# clang-16): the unit tests, the server and the fuzz targets are compiled once.
option(METERHUB_SANITIZE "Build with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
option(METERHUB_FUZZ "Build the libFuzzer targets in fuzz/ (clang)" OFF)

if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # libstdc++ 12 offers std::expected only when __cpp_concepts >= 202002L,
  # which clang 16 does not claim although it implements what <expected>
  # needs of it (P0848, conditionally trivial special members).
  # clang 14/15 do not: they fail on std::expected's destructor.
  if(CMAKE_CXX_COMPILER_VERSION VERSION_LESS 16)
    message(FATAL_ERROR "meterhub needs clang >= 16 (std::expected with libstdc++); "
                        "Debian 12: apt-get install clang-16")
  endif()
  add_compile_options(-D__cpp_concepts=202002L -Wno-macro-redefined)
endif()

if(METERHUB_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "METERHUB_FUZZ needs clang (libFuzzer): "
                        "cmake -DCMAKE_CXX_COMPILER=clang++-16 ...")
  endif()
  set(METERHUB_SANITIZE ON)
  # Coverage feedback for libFuzzer in every library; only the fuzz targets
  # link libFuzzer itself (-fsanitize=fuzzer, in fuzz/CMakeLists.txt).
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(METERHUB_SANITIZE)
  set(METERHUB_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                         -fno-omit-frame-pointer)
  add_compile_options(${METERHUB_SAN_FLAGS})
  add_link_options(${METERHUB_SAN_FLAGS})
endif()

# Removes files from the web root that the build no longer produces (a source
# file that was deleted or renamed), since meterhub serves every file there.
# Called by the `web` target: cmake -DROOT=<web root> -DLIST=<file> -P prune.cmake
cmake_minimum_required(VERSION 3.25)
file(STRINGS "${LIST}" keep)
file(GLOB_RECURSE present LIST_DIRECTORIES false RELATIVE "${ROOT}" "${ROOT}/*")
foreach(f IN LISTS present)
  if(NOT f IN_LIST keep)
    message(STATUS "web: removing stale ${f}")
    file(REMOVE "${ROOT}/${f}")
  endif()
endforeach()

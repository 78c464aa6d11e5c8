# find_package(raft) support for an installed raft-manager C library. Expected layout:
#   <prefix>/lib/libraft.so (+ libraft.so.0), <prefix>/include/raft.h,
#   <prefix>/lib/cmake/raft/raftConfig.cmake (this file) and raftConfigVersion.cmake.
# Provides the imported target raft::raft and, when raft.hpp is installed, the C++17
# interface target raft::raftxx (header-only raft.hpp over raft::raft).
get_filename_component(_raft_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

find_library(RAFT_LIBRARY NAMES raft PATHS "${_raft_prefix}/lib" NO_DEFAULT_PATH)
find_path(RAFT_INCLUDE_DIR raft.h PATHS "${_raft_prefix}/include" NO_DEFAULT_PATH)

if(NOT RAFT_LIBRARY OR NOT RAFT_INCLUDE_DIR)
  set(raft_FOUND FALSE)
  set(raft_NOT_FOUND_MESSAGE "libraft or raft.h not found under ${_raft_prefix}")
  return()
endif()

if(NOT TARGET raft::raft)
  include(CMakeFindDependencyMacro)
  find_dependency(Threads)
  add_library(raft::raft SHARED IMPORTED)
  set_target_properties(raft::raft PROPERTIES
    IMPORTED_LOCATION "${RAFT_LIBRARY}"
    IMPORTED_SONAME "libraft.so.0"
    INTERFACE_INCLUDE_DIRECTORIES "${RAFT_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
if(NOT TARGET raft::raftxx AND EXISTS "${RAFT_INCLUDE_DIR}/raft.hpp")
  add_library(raft::raftxx INTERFACE IMPORTED)
  set_target_properties(raft::raftxx PROPERTIES
    INTERFACE_LINK_LIBRARIES raft::raft
    INTERFACE_COMPILE_FEATURES cxx_std_17)
endif()
set(raft_FOUND TRUE)
unset(_raft_prefix)

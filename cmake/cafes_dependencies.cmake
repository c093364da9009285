# Finds the system packages cafes builds on and gives them imported target names.
# Used both by the build and by the installed package config (find_package(cafes)).
include_guard(GLOBAL)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
# The metrics' data model and text exposition (node::metrics).
find_package(prometheus-cpp REQUIRED COMPONENTS core)
find_package(OpenSSL REQUIRED)

# CAF 0.17.6 ships no CMake package: look the files up by hand.
if(NOT TARGET cafes_caf_core)
  find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
  find_library(CAF_CORE_LIB caf_core REQUIRED)
  find_library(CAF_IO_LIB caf_io REQUIRED)
  find_library(CAF_OPENSSL_LIB caf_openssl REQUIRED)
  add_library(cafes_caf_core INTERFACE IMPORTED GLOBAL)
  target_include_directories(cafes_caf_core INTERFACE ${CAF_INCLUDE_DIR})
  target_link_libraries(cafes_caf_core INTERFACE ${CAF_CORE_LIB} Threads::Threads)
  add_library(cafes_caf_io INTERFACE IMPORTED GLOBAL)
  target_link_libraries(cafes_caf_io INTERFACE ${CAF_IO_LIB} cafes_caf_core)
  # TLS between nodes: CAF's OpenSSL module, and OpenSSL itself (its headers include OpenSSL's).
  add_library(cafes_caf_openssl INTERFACE IMPORTED GLOBAL)
  target_link_libraries(cafes_caf_openssl INTERFACE ${CAF_OPENSSL_LIB} cafes_caf_io OpenSSL::SSL OpenSSL::Crypto)
endif()

# librdkafka 2.0.2 ships only pkg-config files.
if(NOT TARGET PkgConfig::RDKAFKA)
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET GLOBAL rdkafka++ rdkafka)
endif()

# msgpack-cxx is header-only; its CMake package drags in Boost, which we do not use.
if(NOT TARGET cafes_msgpack)
  find_path(MSGPACK_INCLUDE_DIR msgpack.hpp REQUIRED)
  add_library(cafes_msgpack INTERFACE IMPORTED GLOBAL)
  target_include_directories(cafes_msgpack INTERFACE ${MSGPACK_INCLUDE_DIR})
  target_compile_definitions(cafes_msgpack INTERFACE MSGPACK_NO_BOOST MSGPACK_DEFAULT_API_VERSION=3)
endif()

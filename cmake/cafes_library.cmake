# One helper that every layer calls, so that all layers build alike.
include_guard(GLOBAL)

# Warnings (as errors) and sanitizers for our own targets only; consumers never inherit them.
add_library(cafes_internal INTERFACE)
target_compile_options(cafes_internal INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wcast-align -Werror
  # GCC 12 reports false -Wrestrict positives inside std::string (GCC bug 105329).
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-restrict>)
if(CAFES_SANITIZERS)
  target_compile_options(cafes_internal INTERFACE -fsanitize=${CAFES_SANITIZERS} -fno-omit-frame-pointer)
  target_link_options(cafes_internal INTERFACE -fsanitize=${CAFES_SANITIZERS})
endif()

# cafes_add_layer(NAME <name> SRCS <files...> DEPS <public deps...> [PRIVATE_DEPS <deps...>])
# Defines the library cafes_<name>, its alias cafes::<name>, and its install rules.
function(cafes_add_layer)
  cmake_parse_arguments(L "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(tgt cafes_${L_NAME})
  add_library(${tgt} ${L_SRCS})
  add_library(cafes::${L_NAME} ALIAS ${tgt})
  set_target_properties(${tgt} PROPERTIES EXPORT_NAME ${L_NAME} OUTPUT_NAME cafes_${L_NAME}
    POSITION_INDEPENDENT_CODE ON)
  target_compile_features(${tgt} PUBLIC cxx_std_20)
  target_include_directories(${tgt} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${tgt} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS} $<BUILD_INTERFACE:cafes_internal>)
  install(TARGETS ${tgt} EXPORT cafes-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

# cafes_add_executable(NAME <name> SRCS <files...> DEPS <deps...>): a program of ours.
function(cafes_add_executable)
  cmake_parse_arguments(E "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${E_NAME} ${E_SRCS})
  target_link_libraries(${E_NAME} PRIVATE ${E_DEPS} cafes_internal)
endfunction()

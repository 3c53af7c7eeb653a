# Libraries, installation and packaging (issue #7). Included at the end of
# the top-level CMakeLists.txt; reuses atom_objects, so the libraries, the
# binary and the tests are built from one compilation of runtime/.
#
#   libatom.so.MAJOR (soname) + libatom.a   only atom_* symbols are exported
#   include/atom.h                          the one public header
#   lib/pkgconfig/atom.pc                   pkg-config --cflags --libs atom
#   lib/cmake/atom/                         find_package(atom) -> atom::atom
#   share/lua/5.4/atom/...                  the Lua half (specs excluded)
#   lib/lua/5.4/atom/core.so                the C modules for plain lua5.4
#   share/man/man1/atom.1                   the CLI's man page
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Debian's liblua5.4-cjson.a is not PIC, so the shared library links cjson's
# shared build instead (same code, distribution-maintained); the static
# library and the binary keep linking the archive.
find_library(CJSON_SHARED NAMES liblua5.4-cjson.so.0 liblua5.4-cjson.so lua5.4-cjson REQUIRED)
add_library(atom_shared SHARED $<TARGET_OBJECTS:atom_objects>)
# --exclude-libs keeps any archive's symbols out of the dynamic table, so
# only ATOM_API names show.
target_link_libraries(atom_shared PRIVATE ${ATOM_DEPS} ${CJSON_SHARED} -Wl,--exclude-libs,ALL
  -Wl,--no-undefined)
target_include_directories(atom_shared INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(atom_shared PROPERTIES
  OUTPUT_NAME atom EXPORT_NAME atom
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  C_VISIBILITY_PRESET hidden)

add_library(atom_static STATIC $<TARGET_OBJECTS:atom_objects>)
set_target_properties(atom_static PROPERTIES OUTPUT_NAME atom)

# A sanitized libatom (ATOM_SANITIZE) only runs in a program that links the
# sanitizer runtimes first; say so to every consumer, through the CMake
# package and atom.pc alike.
set(ATOM_PC_SANITIZE "")
if(ATOM_SANITIZE)
  set(ATOM_PC_SANITIZE "-fsanitize=address,undefined")
  target_link_options(atom_shared INTERFACE -fsanitize=address,undefined)
  target_link_options(atom_static INTERFACE -fsanitize=address,undefined)
endif()

# luarocks (rockspec/atom-scm-1.rockspec) installs only the Lua module: the
# Lua files into PREFIX/lua and the C modules into PREFIX/lib, the layout
# luarocks deploys into its tree. Everything else is left out of `all`.
option(ATOM_LUAROCKS "Build and install only the Lua module, laid out for luarocks" OFF)

if(NOT ATOM_LUAROCKS)
  install(TARGETS atom RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(TARGETS atom_shared EXPORT atomTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(TARGETS atom_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(FILES ${CMAKE_SOURCE_DIR}/include/atom.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

  # pkg-config
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(ATOM_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  else()
    set(ATOM_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(ATOM_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
  else()
    set(ATOM_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()
  file(RELATIVE_PATH ATOM_PC_RELPREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
  string(REGEX REPLACE "/$" "" ATOM_PC_RELPREFIX "${ATOM_PC_RELPREFIX}")
  set(ATOM_PC_PRIVATE_LIBS "")
  foreach(lib IN LISTS LUA_LIBRARIES CURL_LIBRARIES OPENSSL_LIBRARIES YAML_LIBRARIES ZLIB_LIBRARIES
                       EVENT_LIBRARIES)
    string(APPEND ATOM_PC_PRIVATE_LIBS " -l${lib}")
  endforeach()
  string(STRIP "${ATOM_PC_PRIVATE_LIBS}" ATOM_PC_PRIVATE_LIBS)
  configure_file(${CMAKE_SOURCE_DIR}/cmake/atom.pc.in ${CMAKE_BINARY_DIR}/atom.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/atom.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

  # CMake package
  set(ATOM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/atom)
  install(EXPORT atomTargets NAMESPACE atom:: DESTINATION ${ATOM_CMAKE_DIR})
  configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/atomConfig.cmake.in
    ${CMAKE_BINARY_DIR}/atomConfig.cmake
    INSTALL_DESTINATION ${ATOM_CMAKE_DIR}
    PATH_VARS CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR)
  write_basic_package_version_file(${CMAKE_BINARY_DIR}/atomConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
  install(FILES ${CMAKE_BINARY_DIR}/atomConfig.cmake ${CMAKE_BINARY_DIR}/atomConfigVersion.cmake
    DESTINATION ${ATOM_CMAKE_DIR})
endif()

# The Lua half, for plain lua5.4 and for reading: same tree as lua/.
if(ATOM_LUAROCKS)
  set(ATOM_LUA_SHARE lua)
  set(ATOM_LUA_LIB lib)
  get_property(ATOM_ALL_TARGETS DIRECTORY ${CMAKE_SOURCE_DIR} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS ATOM_ALL_TARGETS)
    if(NOT t STREQUAL "atom_lua_module")
      set_target_properties(${t} PROPERTIES EXCLUDE_FROM_ALL ON)
    endif()
  endforeach()
else()
  set(ATOM_LUA_SHARE ${CMAKE_INSTALL_DATADIR}/lua/5.4)
  set(ATOM_LUA_LIB ${CMAKE_INSTALL_LIBDIR}/lua/5.4)
endif()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/lua/ DESTINATION ${ATOM_LUA_SHARE}
  FILES_MATCHING PATTERN "*.lua" PATTERN "*_spec.lua" EXCLUDE)
install(TARGETS atom_lua_module LIBRARY DESTINATION ${ATOM_LUA_LIB}/atom)
# Each native module is the same core.so under its own name (require
# "atom.host" opens atom/host.so -> luaopen_atom_host). Copies, not
# symlinks: luarocks deploys files one by one.
foreach(mod IN LISTS ATOM_NATIVE_MODULES)
  if(NOT mod STREQUAL "core")
    install(FILES $<TARGET_FILE:atom_lua_module> DESTINATION ${ATOM_LUA_LIB}/atom RENAME ${mod}.so)
  endif()
endforeach()

if(ATOM_LUAROCKS)
  return()
endif()

install(FILES ${CMAKE_SOURCE_DIR}/man/atom.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# ---- checks of the public surface -----------------------------------------
# atom.h alone, as C11 and C++, with the strictest warnings.
add_test(NAME c.headertest
  COMMAND ${CMAKE_C_COMPILER} -std=c11 -Wall -Wextra -pedantic -Werror -fsyntax-only
          -I${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/tests/headertest.c)
find_program(ATOM_CXX NAMES c++ g++ clang++)
if(ATOM_CXX)
  add_test(NAME c.headertest_cxx
    COMMAND ${ATOM_CXX} -x c++ -std=c++11 -Wall -Wextra -pedantic -Werror -fsyntax-only
            -I${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/tests/headertest.c)
endif()
# Only atom_ names in the shared library's dynamic symbol table.
add_test(NAME c.exported_symbols
  COMMAND sh -c "nm -D --defined-only \"$1\" | awk '{print $3}' | grep -v '^atom_' | grep . && exit 1 || exit 0"
          sh $<TARGET_FILE:atom_shared>)

# The layering rules of the top-level CMakeLists.txt and docs/ARCHITECTURE.md section 1, checked on the sources
# (CMake cannot see them: every folder has the whole source tree on its include path, and libpqxx's headers are
# system-wide, so a stray #include compiles). Fails, naming the file and the line, when
#   - a folder includes a header of a folder above it (config < introspect < persistence < actors < http < app;
#     introspect may use nothing of ours, config nothing but itself, ops and ai only config),
#   - a file outside persistence/ includes libpqxx, directly or through a persistence header that does,
#   - two atoms share a value (CAF dispatches on the value, not on the C++ name: an actor handling one would also
#     take the other).
# Run as: cmake -DROOT=<source dir> -P layering_check.cmake
cmake_minimum_required(VERSION 3.18)
if(NOT ROOT)
  message(FATAL_ERROR "ROOT (the source directory) is required")
endif()

set(folders config ai ops introspect persistence actors http app tools)
set(allowed_config config)
set(allowed_ai ai config) # the AI providers' wire formats: pure code
set(allowed_introspect introspect)
set(allowed_ops ops config) # the pure observability code: history, alerts, the metrics text reader
set(allowed_persistence persistence config introspect)
set(allowed_actors actors ai ops persistence config introspect)
set(allowed_http http ai actors ops persistence config introspect)
set(allowed_app app http ai actors ops persistence config introspect)
set(allowed_tools tools http ai config) # the mock upstream uses http/'s protocol part and ai/ only

# The persistence headers that take libpqxx: only persistence/ may include them.
set(pqxx_headers "")
file(GLOB persistence_headers "${ROOT}/persistence/*.hpp")
foreach(header IN LISTS persistence_headers)
  file(STRINGS "${header}" hits REGEX "^[ \t]*#[ \t]*include[ \t]*<pqxx/")
  if(hits)
    file(RELATIVE_PATH shown "${ROOT}" "${header}")
    list(APPEND pqxx_headers "${shown}")
  endif()
endforeach()

set(problems "")
set(atom_values "")
foreach(dir IN LISTS folders)
  file(GLOB_RECURSE sources "${ROOT}/${dir}/*.cpp" "${ROOT}/${dir}/*.hpp")
  foreach(source IN LISTS sources)
    file(RELATIVE_PATH shown "${ROOT}" "${source}")
    file(STRINGS "${source}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
    foreach(line IN LISTS includes)
      if(line MATCHES "#[ \t]*include[ \t]*<pqxx/" AND NOT dir STREQUAL "persistence")
        list(APPEND problems "${shown}: libpqxx outside persistence/: ${line}")
      elseif(line MATCHES "#[ \t]*include[ \t]*\"([a-z_]+)/([^\"]*)\"")
        set(target_dir "${CMAKE_MATCH_1}")
        set(target "${CMAKE_MATCH_1}/${CMAKE_MATCH_2}")
        if(target_dir IN_LIST folders AND NOT target_dir IN_LIST allowed_${dir})
          list(APPEND problems "${shown}: ${dir}/ may not include ${target_dir}/: ${line}")
        elseif(NOT dir STREQUAL "persistence" AND target IN_LIST pqxx_headers)
          list(APPEND problems "${shown}: ${target} takes libpqxx, which stays inside persistence/")
        endif()
      endif()
    endforeach()
    file(STRINGS "${source}" atoms REGEX "caf::atom\\(\"[^\"]*\"\\)")
    foreach(line IN LISTS atoms)
      string(REGEX MATCHALL "caf::atom\\(\"[^\"]*\"\\)" found "${line}")
      foreach(atom IN LISTS found)
        string(REGEX REPLACE "caf::atom\\(\"([^\"]*)\"\\)" "\\1" value "${atom}")
        if(DEFINED atom_at_${value})
          list(APPEND problems "${shown}: the atom value \"${value}\" is already used in ${atom_at_${value}}")
        else()
          set(atom_at_${value} "${shown}")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()

if(problems)
  list(LENGTH problems count)
  foreach(problem IN LISTS problems)
    message("${problem}")
  endforeach()
  message(FATAL_ERROR "${count} layering problem(s) above (rules: docs/ARCHITECTURE.md section 1)")
endif()
message(STATUS "layers, libpqxx and atom values as the rules say")

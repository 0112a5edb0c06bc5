# Compiles tests/actors/typed_protocols_misuse.cpp once per case (cmake -P, from CTest): case 0 must compile, every
# other case must fail with the error its "expect:" comment names. A typed interface that stopped checking
# (an untyped handle, a signature widened to accept anything) turns a failing case into a compiling one.
#
# -DCXX=<compiler> -DROOT=<source root> -DSOURCE=<the misuse file> [-DCAF_INCLUDE=<CAF's include directory>]

if(CAF_INCLUDE)
  set(CAF_FLAGS -I "${CAF_INCLUDE}")
endif()

file(READ "${SOURCE}" text)
string(REGEX MATCHALL "#elif MISUSE == [0-9]+\n  // expect: [^\n]+" cases "${text}")
string(REGEX MATCHALL "\n#elif MISUSE == [0-9]+" all_cases "${text}")
list(LENGTH cases count)
list(LENGTH all_cases all_count)
if(count EQUAL 0)
  message(FATAL_ERROR "no misuse case found in ${SOURCE}")
endif()
if(NOT count EQUAL all_count)
  message(FATAL_ERROR "${all_count} misuse cases but ${count} with an \"// expect:\" line right below: each needs one")
endif()

function(compile_case n out_var result_var)
  # LC_ALL=C: the expected texts are the compiler's English messages.
  execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C "${CXX}" -std=c++17 -fsyntax-only -I "${ROOT}" ${CAF_FLAGS}
                          -DMISUSE=${n} "${SOURCE}"
                  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${result_var} "${result}" PARENT_SCOPE)
endfunction()

compile_case(0 out result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the correct uses (case 0) do not compile:\n${out}")
endif()

foreach(c IN LISTS cases)
  string(REGEX REPLACE "#elif MISUSE == ([0-9]+)\n.*" "\\1" n "${c}")
  string(REGEX REPLACE ".*// expect: ([^\n]+)" "\\1" expected "${c}")
  compile_case(${n} out result)
  if(result EQUAL 0)
    message(FATAL_ERROR "misuse case ${n} compiles; it must fail with \"${expected}\"")
  endif()
  string(FIND "${out}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "misuse case ${n} fails, but not with \"${expected}\":\n${out}")
  endif()
  message(STATUS "case ${n}: refused (${expected})")
endforeach()
message(STATUS "${count} misuses refused, case 0 compiles")

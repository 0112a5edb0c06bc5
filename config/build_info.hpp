#pragma once
// What was built: the version (the top-level project()), the commit and the build, written into build_info.cpp by
// config/build_info.cmake at every build (the file changes only when they do). GET /api/status shows them.

namespace troupe::build_info {

extern const char* const version;     // "0.9.0"
extern const char* const commit;      // "a65b1fd2c3d4", "+dirty" when the tree had changes; "unknown" outside git
extern const char* const build_type;  // CMAKE_BUILD_TYPE
extern const char* const compiler;    // "GNU 12.2.0"
const char* caf_version();            // "0.17.6": the CAF headers built against

} // namespace troupe::build_info

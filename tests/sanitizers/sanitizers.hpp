#pragma once
// What a test may need to know about the sanitizer it runs under (scripts/test-sanitize builds the suite with
// -DTROUPE_SANITIZE=address or thread; GCC then defines __SANITIZE_ADDRESS__ or __SANITIZE_THREAD__).

#include <cstddef>
#include <cstdlib>
#include <string>

namespace troupe::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr const char* sanitizer_name = "AddressSanitizer";
#elif defined(__SANITIZE_THREAD__)
inline constexpr const char* sanitizer_name = "ThreadSanitizer";
#else
inline constexpr const char* sanitizer_name = "";
#endif

/// True when this test binary (and the troupe binary of the same build) runs under a sanitizer.
inline constexpr bool under_sanitizer = sanitizer_name[0] != '\0';

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Exported by libasan and libtsan; GCC 12 ships no header declaring them (LLVM's sanitizer/allocator_interface.h).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

/// Bytes the program itself has allocated and not freed, under a sanitizer; 0 otherwise. A test that bounds its
/// process's memory measures this under a sanitizer instead of RSS: ASan keeps freed chunks in a quarantine (256 MiB
/// by default) and pads every chunk with redzones, TSan maps shadow memory for every byte touched, and both count in
/// RSS without saying anything about the code under test.
inline size_t sanitizer_allocated_bytes() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return __sanitizer_get_current_allocated_bytes();
#else
  return 0;
#endif
}

/// ASAN_OPTIONS for a server whose memory a test measures: the options in force, without the quarantine.
inline std::string asan_options_without_quarantine() {
  const char* current = std::getenv("ASAN_OPTIONS");
  std::string options = current && *current ? std::string{current} + ":" : std::string{};
  return options + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
}

} // namespace troupe::testing

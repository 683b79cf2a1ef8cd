// The error protocol of the project's C++ shims (calib-train's fused optimisers, calib-dist's
// c10d groups): a function returns 0, or 1 with *err set to a malloc'ed copy of the message
// (the caller frees it with the shim's free function). No C++ exception crosses the boundary.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace calib {

inline char* copy_message(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, text.c_str(), text.size() + 1);
  }
  return out;
}

// Runs `body`, turning any exception into the error protocol above.
template <class F>
int guarded(char** err, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("an unknown C++ exception");
  }
  return 1;
}

}  // namespace calib

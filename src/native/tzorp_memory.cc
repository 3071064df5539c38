// Giving start-up memory back (issue 14: "daemon start-up RSS ≤ 150 MB for primary plus two workers").
// A process that has just loaded a policy holds a heap sized for that work: a young generation grown
// to several MiB, old-generation pages of the parse and compile garbage, and malloc arenas of the same.
// None of it is needed while the process waits or relays, and V8 only gives it back under memory
// pressure or when idle for long. shedMemory tells V8 memory is low (a full, compacting collection that
// shrinks the young generation and frees empty pages) and then returns glibc's free heap to the kernel.
// It costs one full collection (milliseconds to tens of them): callers use it once after a start or a
// reload, never per session. N-API has no such call, so this one file speaks V8's C++ API.
#include <malloc.h>
#include <node_api.h>
#include <v8.h>

extern "C" void tzorp_memory_register(napi_env env, napi_value exports);

static napi_value ShedMemory(napi_env env, napi_callback_info info) {
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  malloc_trim(0);
  return nullptr;
}

void tzorp_memory_register(napi_env env, napi_value exports) {
  napi_property_descriptor p = {"shedMemory", NULL, ShedMemory, NULL, NULL, NULL, napi_enumerable, NULL};
  napi_define_properties(env, exports, 1, &p);
}

{
  "targets": [
    {
      "target_name": "tzorp_native",
      "sources": ["tzorp_native.c", "tzorp_privs.c", "tzorp_relay.c", "tzorp_nflog.c", "tzorp_io.c", "tzorp_memory.cc"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "cflags_c": ["-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

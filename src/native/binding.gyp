{
  "targets": [
    {
      "target_name": "tzorp_native",
      "sources": ["tzorp_native.c", "tzorp_privs.c", "tzorp_relay.c", "tzorp_nflog.c", "tzorp_io.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

// libFuzzer's driver entry (compiler-rt FuzzerInterface.h), declared for Swift.
//
// Why this exists: SwiftPM links every executable target on Linux with
// `--defsym main=<Target>_main` (so tests can link the module), which leaves
// libFuzzer's own main unused. Each fuzz target therefore defines <Target>_main
// itself and hands control to libFuzzer here, with LLVMFuzzerTestOneInput as
// the callback.
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

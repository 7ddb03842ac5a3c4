#!/usr/bin/env bash
# Proves ecoedge-core links into firmware: builds the no_std, allocator-free
# static library, links main.c against it with the system C compiler, runs the
# simulated windows, and checks with nm that the archive neither defines nor
# references an allocator or anything from std.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# A target directory of its own (ignored by git): the workspace's builds use
# other profiles, and this one only compiles the core and its few dependencies.
target="$here/../../target/ffi-check"

cargo build --quiet --locked --manifest-path "$here/Cargo.toml" --target-dir "$target"
lib="$target/debug/libecoedge_ffi_check.a"

# Only the C library: the archive brings everything else it needs.
cc -std=c11 -Wall -Wextra -Werror -o "$target/ffi-check" "$here/main.c" "$lib" -Wl,--gc-sections
timeout 60 "$target/ffi-check"

# The allocator shims (__rust_alloc, __rdl_*, __rg_*, __rust_alloc_error_handler)
# and the alloc and std crates (legacy and v0 mangling) must be nowhere, defined
# or referenced. nm runs on its own so that a failing nm fails the check.
symbols=$(nm -A "$lib" 2>/dev/null)
grep -q ' T ecoedge_start$' <<<"$symbols" || { echo "ffi-check: nm shows no ecoedge_start" >&2; exit 1; }
if grep -E '__rust_(alloc|dealloc|realloc|alloc_zeroed|alloc_error_handler)|__rdl_|__rg_|_ZN5alloc|_ZN3std|Cs[0-9A-Za-z]*_5alloc|Cs[0-9A-Za-z]*_3std' <<<"$symbols"; then
    echo "ffi-check: the symbols above need an allocator or std" >&2
    exit 1
fi
echo "ffi-check: no allocator or std symbol in $(basename "$lib")"

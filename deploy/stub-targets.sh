#!/bin/sh
# Creates empty stand-ins for every target Cargo.toml declares (the binary,
# the library and each [[bench]]), so the image can fetch and build its
# dependencies before the sources are copied: cargo refuses a manifest whose
# targets are missing. Used by deploy/Dockerfile and checked by
# scripts/check-manifests.sh. Run in the directory holding Cargo.toml.
set -eu
mkdir -p src benches
echo 'fn main() {}' > src/main.rs
: > src/lib.rs
for bench in $(awk '/^\[\[bench\]\]/ { b = 1; next } b && /^name/ { gsub(/.*= *"|"/, ""); print; b = 0 }' Cargo.toml); do
    echo 'fn main() {}' > "benches/$bench.rs"
done

#!/usr/bin/env bash
# docs/CPP.md's first C++ block must be examples/cpp/quickstart.cpp (which ctest builds and
# runs as cpp_quickstart).   Usage: doc_check.sh REPO_ROOT
set -euo pipefail
root="$1"
snippet="$(mktemp)"
trap 'rm -f "$snippet"' EXIT
awk '/^```cpp$/{on=1; next} /^```$/{if(on){exit}} on' "$root/docs/CPP.md" > "$snippet"
if ! diff -u "$root/examples/cpp/quickstart.cpp" "$snippet"; then
  echo "docs/CPP.md's first C++ block differs from examples/cpp/quickstart.cpp" >&2
  exit 1
fi
echo "docs/CPP.md snippet = examples/cpp/quickstart.cpp"

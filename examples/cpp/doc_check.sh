#!/usr/bin/env bash
# docs/CPP.md's first C++ block must be examples/cpp/quickstart.cpp (which ctest also builds
# and runs as cpp_quickstart), and its build lines must work.
#   Usage: doc_check.sh REPO_ROOT LIB_DIR WORK_DIR   (LIB_DIR replaces target/debug)
set -euo pipefail
root="$1"; lib="$2"; work="$3"
mkdir -p "$work"
snippet="$work/snippet.cpp"
awk '/^```cpp$/{on=1; next} /^```$/{if(on){exit}} on' "$root/docs/CPP.md" > "$snippet"
if ! diff -u "$root/examples/cpp/quickstart.cpp" "$snippet"; then
  echo "docs/CPP.md's first C++ block differs from examples/cpp/quickstart.cpp" >&2
  exit 1
fi
link=$(grep -m1 '^ln -sfn libraft.so target/debug/libraft.so.0' "$root/docs/CPP.md")
link=${link%%#*}
link=${link//target\/debug/$lib}
line=$(grep -m1 '^c++ -std=c++17 examples/cpp/quickstart.cpp' "$root/docs/CPP.md")
pwd_lib='$PWD/target/debug'
line=${line//"$pwd_lib"/@LIB@}
line=${line//target\/debug/@LIB@}
line=${line//@LIB@/$lib}
line=${line//-o quickstart/-o $work/quickstart}
line=${line//.\/quickstart/$work/quickstart}
cd "$root"
echo "+ $link"
eval "$link"
echo "+ $line"
eval "$line"

#!/usr/bin/env bash
# Checks that the README's C program is examples/c/readme_minimal.c and that the README's
# compile line builds and runs it. Usage: readme_check.sh REPO_ROOT LIB_DIR WORK_DIR
# (LIB_DIR replaces target/release in the line, so the debug build can be used.)
set -euo pipefail
root="$1"; lib="$2"; work="$3"
mkdir -p "$work"
snippet="$work/snippet.c"
awk '/^```c$/{on=1; next} /^```$/{if(on){exit}} on' "$root/README.md" > "$snippet"
if ! diff -u "$root/examples/c/readme_minimal.c" "$snippet"; then
  echo "README C snippet differs from examples/c/readme_minimal.c" >&2
  exit 1
fi
link=$(grep -m1 '^ln -sf libraft.so target/release/libraft.so.0' "$root/README.md")
link=${link%%#*}
link=${link//target\/release/$lib}
line=$(grep -m1 '^cc -std=c11 .*readme_minimal' "$root/README.md")
line=${line//target\/release/$lib}
line=${line//-o readme_minimal/-o $work/readme_minimal}
line=${line//.\/readme_minimal/$work/readme_minimal}
cd "$root"
echo "+ $link"
eval "$link"
echo "+ $line"
eval "$line"

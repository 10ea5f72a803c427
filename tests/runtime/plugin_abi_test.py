#!/usr/bin/env python3
"""plugin_abi_version is the hash of the headers a plugin compiles against.

Recomputes, independently of cmake/QerlPluginAbi.cmake, the #include "..."
closure of the plugin API roots in the source tree and the SHA-256 of those
headers (path, then text without // comments and with whitespace runs
collapsed, in path order), and checks that:
  - the closure covers PipelineSpec, the schema, values, the payloads and
    the stage API (so a change to any of them changes the version);
  - the generated header's plugin_abi_version is the first 7 hex digits of
    that hash, i.e. it follows the current files (CMake re-ran after edits);
  - the version moves when a payload member changes and stays when only a
    comment or the layout of the text changes.
Prints one line per failure and exits 1.
"""
import argparse
import hashlib
import pathlib
import re
import sys

ROOTS = ["runtime/plugin_api.hpp", "actors/payloads.hpp", "actors/payload_wire.hpp"]
MUST_COVER = [
    "dsl/pipeline_spec.hpp", "dsl/schema.hpp", "dsl/value.hpp", "actors/payloads.hpp",
    "runtime/stage.hpp", "runtime/payload.hpp", "runtime/stage_registry.hpp",
    "runtime/plugin.hpp", "runtime/plugin_api.hpp", "runtime/wire.hpp",
]
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)


def closure(source: pathlib.Path) -> list:
    seen, queue = set(), list(ROOTS)
    while queue:
        header = queue.pop(0)
        if header in seen or not (source / header).is_file():
            continue
        seen.add(header)
        queue.extend(INCLUDE.findall((source / header).read_text()))
    return sorted(seen)


def normalized(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def version_of(texts: dict) -> int:
    blob = "".join(f"{path}\n{normalized(texts[path])}\n" for path in sorted(texts))
    return int(hashlib.sha256(blob.encode()).hexdigest()[:7], 16)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True, type=pathlib.Path)
    ap.add_argument("--generated", required=True, type=pathlib.Path)
    args = ap.parse_args()
    failures = []

    headers = closure(args.source_dir)
    missing = [h for h in MUST_COVER if h not in headers]
    if missing:
        failures.append(f"the plugin ABI does not cover {', '.join(missing)}")

    texts = {h: (args.source_dir / h).read_text() for h in headers}
    expected = version_of(texts)
    match = re.search(r"plugin_abi_version = (\d+);", args.generated.read_text())
    if not match:
        failures.append(f"{args.generated}: no 'plugin_abi_version = N;' line")
    elif int(match.group(1)) != expected:
        failures.append(f"{args.generated}: plugin_abi_version = {match.group(1)}, but the hash of the "
                        f"current {len(headers)} headers gives {expected} (re-run cmake)")

    payloads = texts["actors/payloads.hpp"]
    member = "  int64_t prompt_width = 0;"
    if member not in payloads:
        failures.append(f"actors/payloads.hpp has no line '{member.strip()}' to perturb")
    else:
        changed = dict(texts, **{"actors/payloads.hpp": payloads.replace(member, member + "\n  int64_t extra = 0;")})
        if version_of(changed) == expected:
            failures.append("adding a member to RolloutBatch leaves the version unchanged")
    relaid = dict(texts, **{"actors/payloads.hpp": "// a new comment\n" + payloads.replace("\n", "\n\n  ")})
    if version_of(relaid) != expected:
        failures.append("a comment or a layout change alone changes the version")

    for line in failures:
        print(f"plugin_abi_test: {line}")
    if not failures:
        print(f"plugin_abi_version {expected} covers {len(headers)} headers: {' '.join(headers)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

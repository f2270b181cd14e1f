"""`python -m benchmarks` (`make bench`): every stage's benchmark, one after the other, each printing
its table and writing benchmarks/results/<stage>.json. Name stages to run only those."""

import subprocess
import sys

STAGES = ["add_data", "embeddings", "layout", "topics", "topic_names", "duplicates", "end_to_end", "web", "server_load"]


def main(argv: list[str]) -> int:
    chosen = argv or STAGES
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {STAGES}", file=sys.stderr)
        return 2
    failed = []
    for stage in chosen:
        print(f"\n=== benchmarks.{stage} ===", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{stage}"]) != 0:
            failed.append(stage)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

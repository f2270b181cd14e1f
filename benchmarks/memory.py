"""Process memory readings for benchmarks (Linux /proc)."""


def status_mib(key: str) -> float:
    """A /proc/self/status figure in MiB, e.g. VmRSS or VmHWM (peak RSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Writing 5 to clear_refs resets VmHWM, so the next peak is the measured step's own."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")

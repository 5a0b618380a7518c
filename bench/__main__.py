"""``python -m bench``: every benchmark once, with modest defaults (a few minutes in all)."""

from __future__ import annotations

from bench import freshness, memory, recovery, sketch, throughput


def main() -> None:
    summaries = [
        throughput.summary_line(throughput.main(["--messages", "300000", "--repeat", "3"])),
        recovery.summary_line(recovery.main(["--kills", "2"])),
        freshness.summary_line(freshness.main(["--rate", "20000", "--seconds", "30"])),
        memory.summary_line(memory.main(["--users", "300000", "--window", "20"])),
        "sketch: datasketch HLL {datasketch_us_per_message:.2f} us/msg vs worker fold "
        "{fold_us_per_message:.2f} us/msg ({ratio:.1f}x)".format(**sketch.main([])),
    ]
    print("\n".join(["", "summary:", *summaries]))


if __name__ == "__main__":
    main()

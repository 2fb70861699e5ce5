"""bench/report.py: the results table, the target checks and the written document."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import report
from bench.cases import Results


def results(rows: dict[str, dict[str, list[float]]], fmt: str = "{:.0f}") -> Results:
    res = Results()
    for key, per in rows.items():
        res.fig(key, "1", f"label of {key}", fmt)
        for engine, values in per.items():
            for v in values:
                res.add(key, engine, v)
    return res


def target_row(res: Results, text_start: str) -> str:
    return next(line for line in report.targets(res) if line.startswith(f"| {text_start}"))


@pytest.mark.parametrize(
    ("value", "op", "bound", "met"),
    [
        (1.0, "<=", 1.0, True),
        (1.1, "<=", 1.0, False),
        (1.0, "<", 1.0, False),
        (0.9, "<", 1.0, True),
        (1.0, ">=", 1.0, True),
        (0.9, ">=", 1.0, False),
    ],
)
def test_compare(value: float, op: str, bound: float, met: bool) -> None:
    assert report.compare(value, op, bound) is met


def test_table_has_a_column_per_engine_and_ratios_per_peer() -> None:
    res = results({"net_create": {"tether": [10, 20, 30], "docker": [40], "podman": [20]}})
    lines = report.table(res, ["tether", "docker", "podman"])
    assert lines[0] == (
        "| § | What | tether | Docker | Podman | tether / Docker | tether / Podman |"
    )
    assert lines[1] == "|" + "---|" * 7
    assert lines[2] == (
        "| 1 | label of net_create | 10 / **20** / 30 | **40** | **20** | 0.50× | 1.00× |"
    )


def test_table_limit_column_only_when_a_figure_has_one() -> None:
    res = results({"a": {"tether": [30], "podman": [60], "limit": [20]}, "b": {"tether": [5]}})
    lines = report.table(res, ["tether", "podman"])
    assert lines[0] == "| § | What | tether | Podman | limit | tether / Podman | tether / limit |"
    assert lines[2] == "| 1 | label of a | **30** | **60** | **20** | 0.50× | 1.50× |"
    assert lines[3] == "| 1 | label of b | **5** | n/a | n/a | n/a | n/a |"


def test_table_missing_engine_is_na() -> None:
    res = results({"k": {"tether": [5]}})
    assert report.table(res, ["tether", "docker"])[2] == "| 1 | label of k | **5** | n/a | n/a |"


def test_target_against_docker_met_and_not_met() -> None:
    res = results({"net_create": {"tether": [40], "docker": [100]},
                   "net_rm": {"tether": [60], "docker": [100]}})  # fmt: skip
    assert target_row(res, "network create") == (
        "| network create ≤ 0.5× Docker | 40 | 100 | 0.40× | yes |"
    )
    assert target_row(res, "network rm").endswith("| 0.60× | **no** |")


def test_target_not_measured_and_peer_missing() -> None:
    res = results({"connect": {"tether": [40]}})
    assert target_row(res, "network create").endswith("| not measured |")
    assert target_row(res, "connect") == "| connect ≤ 1.0× Docker | 40 | docker: n/a | | n/a |"


def test_absolute_target() -> None:
    res = results({"tether_ls": {"tether": [90, 120, 130]}})
    assert target_row(res, "`tether network ls`").endswith("| 120 | | 120 | **no** |")
    res = results({"tether_ls": {"tether": [95]}})
    assert target_row(res, "`tether network ls`").endswith("| yes |")


def test_flatness_target_prefers_the_scale_case() -> None:
    res = results({"many_flat": {"tether": [1.3]}, "big_flat": {"tether": [1.05]}}, "{:.2f}")
    row = target_row(res, "per-container time flat")
    assert "(label of big_flat)" in row
    assert row.endswith("| 1.05 | | 1.05 | yes |")


def test_flatness_target_falls_back_to_fifty() -> None:
    res = results({"many_flat": {"tether": [1.3]}}, "{:.2f}")
    row = target_row(res, "per-container time flat")
    assert "(label of many_flat)" in row
    assert row.endswith("| **no** |")


def test_higher_is_better_target() -> None:
    res = results({"dns_qps_name": {"tether": [90], "docker": [100]}})
    assert target_row(res, "DNS name queries/s").endswith("| 0.90× | **no** |")
    res = results({"dns_qps_name": {"tether": [100], "docker": [100]}})
    assert target_row(res, "DNS name queries/s").endswith("| 1.00× | yes |")


def test_rss_target_is_strict() -> None:
    res = results({"rss_many": {"tether": [100], "docker": [100]}})
    assert target_row(res, "daemon RSS").endswith("| 1.00× | **no** |")
    res = results({"rss_many": {"tether": [60], "docker": [100]},
                   "rss_big": {"tether": [70], "docker": [140]}})  # fmt: skip
    row = target_row(res, "daemon RSS")
    assert "(label of rss_big)" in row and row.endswith("| 0.50× | yes |")


def test_write_puts_the_sections_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    findings = tmp_path / "FINDINGS.md"
    findings.write_text("## Profiling and optimisations\n\nsomething we learnt\n")
    monkeypatch.setattr(report, "FINDINGS", str(findings))
    monkeypatch.setattr(report, "_cli_version", lambda: "Docker version X")
    res = results({"net_create": {"tether": [40], "docker": [100]}})
    res.notes.append("a note")
    out = tmp_path / "docs" / "benchmarks.md"
    report.write(
        str(out), res, ["tether", "docker"], {"tether": "tether 0.1", "docker": "dockerd 20.10"},
        {"podman": "not installed"}, ["python", "-m", "bench.run"], "today", 12.3,
        [("Extra title", "extra body\n")], raw_path=str(tmp_path / "raw.json"),
    )  # fmt: skip
    text = out.read_text()
    assert text.startswith("# Benchmarks: tether, Docker and Podman side by side")
    assert "took 12 s: `python -m bench.run`" in text
    assert "- Client for Docker and tether: Docker version X" in text
    assert "- Docker: dockerd 20.10" in text
    assert "- Podman: **not measured**: not installed" in text
    assert "| 1 | label of net_create | **40** | **100** | 0.40× |" in text
    assert "- a note" in text
    assert "| network create ≤ 0.5× Docker | 40 | 100 | 0.40× | yes |" in text
    assert "## Extra title\n\nextra body\n" in text
    assert text.index("## Results") < text.index("## Targets") < text.index("## Extra title")
    assert text.rstrip().endswith("something we learnt")


def test_a_saved_run_renders_again_with_new_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    findings = tmp_path / "FINDINGS.md"
    findings.write_text("old findings\n")
    monkeypatch.setattr(report, "FINDINGS", str(findings))
    monkeypatch.setattr(report, "RAW", str(tmp_path / "unused.json"))
    res = results({"dns_qps_name": {"tether": [1000, 3000], "docker": [1500]}}, "{:,.0f}")
    res.note("dns_qps_name", "podman", "set-up failed")
    res.notes.append("load")
    first, again, raw = tmp_path / "a.md", tmp_path / "b.md", tmp_path / "raw.json"
    args = (["tether", "docker", "podman"], {"tether": "t"}, {}, ["x"], "then", 5.0, [("T", "B")])
    report.write(str(first), res, *args, cli="Docker version X", raw_path=str(raw))
    monkeypatch.setattr(report, "_cli_version", lambda: "must not be asked")
    findings.write_text("new findings\n")
    report.rerender(str(raw), str(again))
    a, b = first.read_text(), again.read_text()
    assert (
        "| 1 | label of dns_qps_name | 1,000 / **2,000** / 3,000 | **1,500** | set-up failed |" in b
    )
    assert a.replace("old findings", "new findings") == b
    assert not (tmp_path / "unused.json").exists()


def test_issue21_targets_use_the_own_client_rows_with_the_docker_cli_beside() -> None:
    res = results(
        {
            "net_create": {"tether": [40], "docker": [120], "podman": [50]},
            "net_create_own": {"tether": [25], "docker": [120], "podman": [50]},
            "run_tcp": {"tether": [120], "podman": [250], "limit": [70]},
            "run_tcp_own": {"tether": [95], "podman": [250], "limit": [70]},
        }
    )
    assert target_row(res, "network create ≤ 0.6× Podman") == (
        "| network create ≤ 0.6× Podman (each engine through its own client) "
        "| 25 (docker CLI: 40) | 50 "
        "| 0.50× (docker CLI: 0.80×) | yes |"
    )
    assert target_row(res, "run until reachable ≤ 0.4× Podman") == (
        "| run until reachable ≤ 0.4× Podman (each engine through its own client) "
        "| 95 (docker CLI: 120) | 250 "
        "| 0.38× (docker CLI: 0.48×) | yes |"
    )
    assert target_row(res, "run until reachable ≤ 1.5× the floor").endswith(
        "| 95 (docker CLI: 120) | 70 | 1.36× (docker CLI: 1.71×) | yes |"
    )
    # against Docker: still docker CLI against docker CLI
    assert target_row(res, "network create ≤ 0.5× Docker").startswith(
        "| network create ≤ 0.5× Docker | 40 | 120 | 0.33× |"
    )


def test_issue21_targets_fall_back_to_the_docker_cli_rows() -> None:
    res = results({"net_rm": {"tether": [40], "podman": [50]}})
    assert target_row(res, "network rm ≤ 0.8× Podman") == (
        "| network rm ≤ 0.8× Podman (label of net_rm) | 40 | 50 | 0.80× | yes |"
    )


def test_own_rows_take_tether_own_samples_and_the_others_usual_ones() -> None:
    from bench import cases

    res = results(
        {
            "run_tcp": {"tether": [120], "podman": [250], "limit": [70]},
            "run_tcp_own": {cases.OWN: [95, 97]},
        }
    )
    cases.own_rows(res, {"run_tcp_own": "run_tcp"})
    row = res.data["run_tcp_own"]
    assert sorted(row) == ["limit", "podman", "tether"]
    assert row["tether"].values == [95, 97]
    assert row["podman"].values == [250] and row["limit"].values == [70]

"""The Go text/template subset used by --format."""

from __future__ import annotations

from typing import Any

import pytest

from tether.cli.gotemplate import TemplateError, render

C: dict[str, Any] = {
    "Name": "/r1",
    "RestartCount": 3,
    "State": {"Status": "exited", "Running": False, "Pid": 0, "ExitCode": 1},
    "Config": {"Labels": {"z": "1", "a": "2"}, "Env": ["A=1", "B=2"], "Tty": True},
    "NetworkSettings": {
        "Networks": {
            "oldboyedu2021": {
                "IPAMConfig": None,
                "Aliases": ["511bdd7e5960"],
                "Gateway": "172.26.1.254",
                "IPAddress": "172.26.1.96",
            },
            "jasonyin2020": {
                "IPAMConfig": {},
                "Aliases": None,
                "Gateway": "172.28.0.254",
                "IPAddress": "172.28.0.3",
            },
        }
    },
}


@pytest.mark.parametrize(
    ("tmpl", "out"),
    [
        ("{{.Name}}", "/r1"),
        ("{{.RestartCount}} {{.State.Status}}", "3 exited"),
        (
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}",
            "172.28.0.3 172.28.0.254172.26.1.96 172.26.1.254",
        ),
        (
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}",
            "jasonyin2020=172.28.0.3;oldboyedu2021=172.26.1.96;",
        ),
        ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
        ("{{if .State.Running}}up{{else}}down{{end}}", "down"),
        ("{{if .State.Running}}up{{else if .Config.Tty}}tty{{else}}no{{end}}", "tty"),
        ('{{index .Config.Labels "z"}}', "1"),
        ("{{index .Config.Env 1}}", "B=2"),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ('{{upper .State.Status}}{{lower "AB"}}', "EXITEDab"),
        ("{{.Config.Labels}}", "map[a:2 z:1]"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.State}}", "{exited false 0 1}"),
        ("{{.Nope}}", "<no value>"),
        ("{{println .Name}}", "/r1\n"),
        ("a {{- .Name -}} b", "a/r1b"),
        ("{{/* comment */}}x", "x"),
        ("{{$n := .Name}}{{$n}}", "/r1"),
        ("{{with .State}}{{.ExitCode}}{{end}}", "1"),
        ("{{len .Config.Env}}", "2"),
        ('{{if eq .State.Status "running" "exited"}}y{{end}}', "y"),
        ("{{if and .Config.Tty (not .State.Running)}}ok{{end}}", "ok"),
        ('{{printf "%s-%d" .State.Status .RestartCount}}', "exited-3"),
        ('{{.Name | printf "%q"}}', '"/r1"'),
        ('{{range .Config.Env}}{{if eq . "B=2"}}{{break}}{{end}}{{.}};{{end}}', "A=1;"),
        ("{{range .Missing}}x{{else}}empty{{end}}", "empty"),
        ('{{split "a,b" ","}}', "[a b]"),
        ("{{json .Config.Labels}}", '{"a":"2","z":"1"}'),
        ("{{json .State}}", '{"Status":"exited","Running":false,"Pid":0,"ExitCode":1}'),
        ('{{(index .NetworkSettings.Networks "jasonyin2020").IPAddress}}', "172.28.0.3"),
        ('{{title "hello world"}}', "Hello World"),
    ],
)
def test_render(tmpl: str, out: str) -> None:
    assert render(tmpl, C) == out


def test_json_of_networks_matches_docker_shape() -> None:
    # map keys sorted (a Go map), struct fields in the daemon's order
    out = render("{{json .NetworkSettings.Networks}}", C)
    assert out.startswith('{"jasonyin2020":{"IPAMConfig":{},"Aliases":null,')
    assert '"oldboyedu2021":{"IPAMConfig":null,"Aliases":["511bdd7e5960"]' in out


def test_map_of_pointers_prints_addresses() -> None:
    out = render("{{.NetworkSettings.Networks}}", C)
    assert out.startswith("map[jasonyin2020:0xc")
    assert " oldboyedu2021:0xc" in out


def test_json_no_html_escape() -> None:
    assert render("{{json .}}", {"A": "<&>"}) == '{"A":"<&>"}'


@pytest.mark.parametrize(
    "tmpl",
    ["{{.Name", "{{if .A}}x", "{{end}}", "{{nosuchfunc .A}}", "{{range}}{{end}}x{{else}}"],
)
def test_parse_errors(tmpl: str) -> None:
    with pytest.raises(TemplateError):
        render(tmpl, C)


def test_exec_errors() -> None:
    with pytest.raises(TemplateError):
        render("{{.Nope.Deeper}}", C)
    with pytest.raises(TemplateError):
        render("{{index .Config.Env 5}}", C)

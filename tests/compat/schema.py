"""A small checker of JSON answers against the Docker Engine API v1.41 (Swagger 2.0) spec.

It knows the subset of JSON Schema the spec uses: ``$ref`` to ``#/definitions``, ``allOf``,
``type`` (object, array, string, integer, number, boolean), ``properties``, ``required``,
``additionalProperties``, ``items`` and ``enum``. Extra keys are allowed (Swagger's default;
Docker itself adds keys newer than a given API version). ``null`` is accepted where Docker
sends it: for objects and arrays (Go's nil maps and slices), and for anything marked
``x-nullable``, and for the few scalars Docker sends as null anyway (``DOCKER_NULLS``); any
other ``null`` string, number or boolean is a violation. An empty string passes an ``enum``
(Docker sends ``""`` for unset enum fields, e.g. ``RestartPolicy.Name``).

An error answer (status >= 400) must be ``{"message": "<non-empty string>"}`` whatever the
spec lists for that route.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path("/work/shared/reference/docker-engine-api-v1.41.yaml")
if not SPEC_PATH.exists():  # the repo-relative copy, when the shared folder is elsewhere
    SPEC_PATH = (
        Path(__file__).resolve().parents[3] / "shared/reference/docker-engine-api-v1.41.yaml"
    )

_VERSION_PREFIX = re.compile(r"^/v\d+\.\d+(?=/)")
ERROR_SCHEMA: dict[str, Any] = {"$ref": "#/definitions/ErrorResponse"}

# scalars Docker itself sends as null although the spec does not say x-nullable
DOCKER_NULLS = {
    ("/exec/{id}/json", "$.ExitCode"),  # a Go *int: null until the exec process has exited
    # Go *int64 fields of HostConfig that Docker 20.10's inspect shows as null when unset
    ("/containers/{id}/json", "$.HostConfig.MemorySwappiness"),
    ("/containers/{id}/json", "$.HostConfig.PidsLimit"),
}


class SchemaViolation(AssertionError):
    """An answer that does not match the spec (raised by :meth:`Spec.check`)."""


@cache
def load_spec(path: str = str(SPEC_PATH)) -> Spec:
    with open(path) as f:
        return Spec(yaml.safe_load(f))


class Spec:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.definitions: dict[str, Any] = doc["definitions"]
        self._routes: list[tuple[int, re.Pattern[str], str]] = []
        for template in doc["paths"]:
            literal = 0
            parts = []
            for seg in template.strip("/").split("/"):
                if seg.startswith("{") and seg.endswith("}"):
                    # an image name may hold slashes (library/busybox)
                    parts.append(".+" if seg == "{name}" else "[^/]+")
                else:
                    literal += 1
                    parts.append(re.escape(seg))
            self._routes.append((literal, re.compile("^/" + "/".join(parts) + "$"), template))
        self._routes.sort(key=lambda r: -r[0])

    # -- routing -------------------------------------------------------------------------

    def template(self, path: str) -> str | None:
        """The spec's path template for a concrete path (``/v1.41`` prefix and query ignored)."""
        path = _VERSION_PREFIX.sub("", path.split("?", 1)[0])
        for _, rx, template in self._routes:
            if rx.match(path):
                return template
        return None

    def response_schema(self, method: str, path: str, status: int) -> dict[str, Any] | None:
        """The schema for this answer; ErrorResponse for any error; None when the spec has none."""
        if status >= 400:
            return ERROR_SCHEMA
        template = self.template(path)
        if template is None:
            return None
        op = self.doc["paths"][template].get(method.lower())
        if op is None:
            return None
        resp = op.get("responses", {}).get(str(status)) or op.get("responses", {}).get(status)
        if not resp:
            return None
        schema = resp.get("schema")
        return schema if isinstance(schema, dict) else None

    # -- validation ----------------------------------------------------------------------

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/definitions/"):
                raise ValueError(f"unsupported $ref {ref}")
            schema = self.definitions[ref[len("#/definitions/") :]]
        return schema

    def errors(self, schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
        """Every violation of ``schema`` by ``value`` (empty when it conforms)."""
        out: list[str] = []
        self._walk(schema, value, where, out)
        return out

    def _walk(self, schema: dict[str, Any], value: Any, where: str, out: list[str]) -> None:
        nullable = bool(schema.get("x-nullable"))
        schema = self.resolve(schema)
        nullable = nullable or bool(schema.get("x-nullable"))
        for part in schema.get("allOf", []):
            self._walk(part, value, where, out)
        kind = schema.get("type")
        if kind is None and ("properties" in schema or "additionalProperties" in schema):
            kind = "object"
        if value is None:
            if kind in (None, "object", "array") or nullable:
                return
            out.append(f"{where}: null where the spec wants {kind}")
            return
        if kind == "object":
            if not isinstance(value, dict):
                out.append(f"{where}: {type(value).__name__} where the spec wants object")
                return
            for key in schema.get("required", []):
                if key not in value:
                    out.append(f"{where}: missing required key {key!r}")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for key, sub in value.items():
                if key in props:
                    self._walk(props[key], sub, f"{where}.{key}", out)
                elif isinstance(extra, dict):
                    self._walk(extra, sub, f"{where}[{key!r}]", out)
        elif kind == "array":
            if not isinstance(value, list):
                out.append(f"{where}: {type(value).__name__} where the spec wants array")
                return
            items = schema.get("items")
            if isinstance(items, dict):
                for i, sub in enumerate(value):
                    self._walk(items, sub, f"{where}[{i}]", out)
        elif kind == "string":
            if not isinstance(value, str):
                out.append(f"{where}: {value!r} where the spec wants string")
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                out.append(f"{where}: {value!r} where the spec wants integer")
        elif kind == "number":
            if not isinstance(value, int | float) or isinstance(value, bool):
                out.append(f"{where}: {value!r} where the spec wants number")
        elif kind == "boolean" and not isinstance(value, bool):
            out.append(f"{where}: {value!r} where the spec wants boolean")
        enum = schema.get("enum")
        if enum is not None and isinstance(value, str | int) and value not in enum and value != "":
            out.append(f"{where}: {value!r} is not one of {enum}")

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        """Raise :class:`SchemaViolation` when ``body`` does not fit the route's answer."""
        problems: list[str] = []
        if status >= 400:
            if not isinstance(body, dict) or not isinstance(body.get("message"), str):
                problems.append(f"error answer without a message: {body!r}")
            elif not body["message"].strip():
                problems.append("error answer with an empty message")
        schema = self.response_schema(method, path, status)
        if schema is not None:
            template = self.template(path)
            for problem in self.errors(schema, body):
                where = problem.split(":", 1)[0]
                if "null where" in problem and (template, where) in DOCKER_NULLS:
                    continue
                problems.append(problem)
        if problems:
            shown = "\n  ".join(problems[:20])
            raise SchemaViolation(f"{method} {path} -> {status}:\n  {shown}")

"""The GTM server-container templates in gtm/ parse and ask for no more than they use.

Each ``.tpl`` is what users import into GTM (Templates > New > Import): sections marked
``___NAME___``, three of them JSON. The sandboxed code must be granted a permission for
every API that needs one, and the permissions must be the narrowest that let it work:
exactly the OAuth scopes, event data keys and hosts the code uses. The code itself runs
under Node's test runner (``gtm/tests``); the last test here runs that suite.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GTM_DIR = Path(__file__).resolve().parent.parent / "gtm"
SHARED_DIR = GTM_DIR.parent / "shared"
TEMPLATES = sorted(GTM_DIR.glob("*.tpl"))

SECTIONS = (
    "___TERMS_OF_SERVICE___",
    "___INFO___",
    "___TEMPLATE_PARAMETERS___",
    "___SANDBOXED_JS_FOR_SERVER___",
    "___SERVER_PERMISSIONS___",
    "___TESTS___",
    "___NOTES___",
)

# Server-side APIs and the permission GTM checks when they are called (None: none).
API_PERMISSIONS: dict[str, str | None] = {
    "BigQuery": "access_bigquery",
    "Firestore": "access_firestore",
    "JSON": None,
    "Math": None,
    "Object": None,
    "Promise": None,
    "encodeUriComponent": None,
    "fromBase64": None,
    "generateRandom": None,
    "getAllEventData": "read_event_data",
    "getContainerVersion": "read_container_data",
    "getEventData": "read_event_data",
    "getGoogleAuth": "use_google_credentials",
    "getRequestHeader": "read_request",
    "getTimestampMillis": None,
    "getType": None,
    "logToConsole": "logging",
    "makeInteger": None,
    "makeNumber": None,
    "makeString": None,
    "queryPermission": None,
    "sendHttpGet": "send_http",
    "sendHttpRequest": "send_http",
    "sha256Sync": None,
    "templateDataStorage": "access_template_storage",
    "toBase64": None,
}

# Hosts a user-supplied endpoint URL may have (the variable's resolve-identity-session
# function on Cloud Run or Cloud Functions); only a template with an endpointUrl
# parameter may declare them.
ENDPOINT_HOST_PATTERNS = {"*.run.app", "*.cloudfunctions.net"}

SCOPE_LITERAL = re.compile(r"^https://www\.googleapis\.com/auth/[\w.-]+$")
HOST_LITERAL = re.compile(r"^[a-z0-9][a-z0-9.-]*\.(?:com|net|app|dev|io)$")
URL_LITERAL = re.compile(r"^https://([a-z0-9][a-z0-9.-]*)(?:/|$)")


@dataclass(frozen=True)
class Template:
    """One parsed .tpl file."""

    path: Path
    sections: dict[str, str]
    order: tuple[str, ...]

    @property
    def code(self) -> str:
        return self.sections["___SANDBOXED_JS_FOR_SERVER___"]

    def json(self, section: str) -> Any:
        return json.loads(self.sections[section])

    @property
    def permissions(self) -> dict[str, dict[str, Any]]:
        return {
            entry["instance"]["key"]["publicId"]: {
                param["key"]: _param_value(param["value"]) for param in entry["instance"]["param"]
            }
            for entry in self.json("___SERVER_PERMISSIONS___")
        }

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return list(_flatten(self.json("___TEMPLATE_PARAMETERS___")))

    @property
    def required_apis(self) -> list[str]:
        return re.findall(r"require\('([^']+)'\)", self.code)

    @property
    def string_literals(self) -> set[str]:
        code = re.sub(r"^\s*//.*$", "", self.code, flags=re.MULTILINE)
        return set(re.findall(r"'((?:[^'\\\n]|\\.)*)'", code))


def _param_value(value: dict[str, Any]) -> Any:
    kinds = {
        1: lambda v: v["string"],
        2: lambda v: [_param_value(i) for i in v["listItem"]],
        8: lambda v: v["boolean"],
    }
    return kinds[value["type"]](value)


def _flatten(parameters: list[dict[str, Any]]) -> Any:
    for parameter in parameters:
        yield parameter
        yield from _flatten(parameter.get("subParams", []))


def load(path: Path) -> Template:
    sections: dict[str, list[str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").split("\n"):
        header = re.fullmatch(r"(___[A-Z_]+___)\s*", line)
        if header:
            current = header.group(1)
            sections[current] = []
        elif current:
            sections[current].append(line)
    texts = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    return Template(path=path, sections=texts, order=tuple(sections))


@pytest.fixture(params=TEMPLATES, ids=lambda path: path.name)
def template(request: pytest.FixtureRequest) -> Template:
    return load(request.param)


def _host_covered(host: str, pattern_host: str) -> bool:
    if pattern_host.startswith("*."):
        return host.endswith(pattern_host[1:])
    return host == pattern_host


def test_both_templates_exist() -> None:
    """The tag and the variable are both shipped."""
    assert [path.name for path in TEMPLATES] == [
        "pubsub-publish-tag.tpl",
        "resolve-identity-session-variable.tpl",
    ]


def test_every_section_is_present_in_export_order(template: Template) -> None:
    """All seven sections of a GTM export, in order, none empty."""
    assert template.order == SECTIONS
    assert all(template.sections[name] for name in SECTIONS)
    assert template.sections["___TESTS___"].startswith("scenarios:")


def test_tests_section_holds_editor_scenarios(template: Template) -> None:
    """___TESTS___ is the editor's export: a non-empty ``scenarios:`` list of uniquely named
    ``code: |-`` blocks, then a ``setup: |-`` block, nothing else at the top level. (The
    Node suite parses and runs the scenarios.)"""
    lines = template.sections["___TESTS___"].split("\n")
    top = [line for line in lines if line and not line[0].isspace() and not line.startswith("- ")]
    assert top == ["scenarios:", "setup: |-"]
    names = [line[len("- name: ") :] for line in lines if line.startswith("- name: ")]
    assert names
    assert len(names) == len(set(names))
    items = [i for i, line in enumerate(lines) if line.startswith("- ")]
    assert len(items) == len(names)
    for i in items:
        assert lines[i + 1] == "  code: |-", lines[i]
    assert not any(line != line.rstrip() or "\t" in line for line in lines)


def test_json_sections_parse(template: Template) -> None:
    """___INFO___, ___TEMPLATE_PARAMETERS___ and ___SERVER_PERMISSIONS___ are valid JSON."""
    for section in ("___INFO___", "___TEMPLATE_PARAMETERS___", "___SERVER_PERMISSIONS___"):
        template.json(section)


def test_info_describes_a_server_template(template: Template) -> None:
    """The importer needs the type, the placeholder id and the server context."""
    info = template.json("___INFO___")
    assert info["type"] in {"TAG", "MACRO"}
    assert info["id"] == "cvt_temp_public_id"
    assert info["version"] == 1
    assert info["containerContexts"] == ["SERVER"]
    assert info["displayName"]
    assert info["description"]


def test_parameters_are_well_formed(template: Template) -> None:
    """Unique names; choices and enabling conditions refer to what exists."""
    named = [p for p in template.parameters if p["type"] not in {"GROUP", "LABEL"}]
    names = [p["name"] for p in named]
    assert len(names) == len(set(names))
    for parameter in named:
        items = parameter.get("radioItems") or parameter.get("selectItems")
        if items and "defaultValue" in parameter:
            assert parameter["defaultValue"] in {item["value"] for item in items}
        for condition in parameter.get("enablingConditions", []):
            assert condition["paramName"] in names
        for column in parameter.get("simpleTableColumns", []):
            assert column["name"]


def test_code_reads_exactly_the_declared_parameters(template: Template) -> None:
    """Every data.X in the code is a parameter, and every parameter is used."""
    used = set(re.findall(r"\bdata\.([A-Za-z_]\w*)", template.code))
    used -= {"gtmOnSuccess", "gtmOnFailure"}
    declared = {p["name"] for p in template.parameters if p["type"] not in {"GROUP", "LABEL"}}
    assert used == declared


def test_every_required_api_is_known_and_permitted(template: Template) -> None:
    """Each API that GTM guards has its permission declared."""
    unknown = [api for api in template.required_apis if api not in API_PERMISSIONS]
    assert not unknown
    needed = {API_PERMISSIONS[api] for api in template.required_apis} - {None}
    missing = needed - set(template.permissions)
    assert not missing


def test_no_permission_is_declared_without_an_api_that_needs_it(template: Template) -> None:
    """Permissions are minimal: nothing beyond what the required APIs use."""
    needed = {API_PERMISSIONS[api] for api in template.required_apis} - {None}
    assert set(template.permissions) == needed


def test_oauth_scopes_are_exactly_those_the_code_requests(template: Template) -> None:
    """use_google_credentials allows only the scopes passed to getGoogleAuth."""
    scopes = {s for s in template.string_literals if SCOPE_LITERAL.match(s)}
    declared = template.permissions.get("use_google_credentials", {}).get("allowedScopes", [])
    assert set(declared) == scopes
    assert "https://www.googleapis.com/auth/cloud-platform" not in declared


def test_event_data_access_is_exactly_the_keys_read(template: Template) -> None:
    """read_event_data is 'any' only for getAllEventData, else exactly the keys read."""
    params = template.permissions["read_event_data"]
    if "getAllEventData" in template.required_apis:
        assert params["eventDataAccess"] == "any"
        return
    keys = set(re.findall(r"getEventData\('([^']+)'\)", template.code))
    assert params["eventDataAccess"] == "specific"
    assert set(params["keyPatterns"]) == keys


def test_send_http_covers_only_the_hosts_used(template: Template) -> None:
    """Specific https URL patterns, one per host the code calls, and nothing else."""
    params = template.permissions["send_http"]
    assert params["allowedUrls"] == "specific"
    assert "allowGoogleDomains" not in params
    urls = [URL_LITERAL.match(s) for s in template.string_literals if not SCOPE_LITERAL.match(s)]
    hosts = {match.group(1) for match in urls if match}
    hosts |= {s for s in template.string_literals if HOST_LITERAL.match(s)}
    endpoint_parameter = any(p.get("name") == "endpointUrl" for p in template.parameters)
    pattern_hosts = set()
    for pattern in params["urls"]:
        match = re.fullmatch(r"https://([^/]+)/\*", pattern)
        assert match, pattern
        host = match.group(1)
        pattern_hosts.add(host)
        if host in ENDPOINT_HOST_PATTERNS:
            assert endpoint_parameter, pattern
        else:
            assert host in hosts, pattern
    for host in hosts:
        assert any(_host_covered(host, p) for p in pattern_hosts), host


def test_failure_logs_reach_cloud_logging_in_production(template: Template) -> None:
    """logToConsole is allowed in every environment, not only in preview."""
    assert template.permissions["logging"]["environments"] == "all"


def _module_constants(path: Path) -> dict[str, Any]:
    """Top-level ``NAME: Final = value`` / ``NAME = value`` constants of a module, unevaluated."""
    constants: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            constants[node.target.id] = node.value
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = node.value
    return constants


def _inline_request_fields() -> set[str]:
    """``REQUEST_FIELDS`` of the inline endpoint, read from its source (no imports)."""
    names = _module_constants(SHARED_DIR / "domain" / "crossdomain" / "tokens.py")
    names.update(_module_constants(SHARED_DIR / "services" / "inline.py"))
    fields = set()
    for element in names["REQUEST_FIELDS"].elts:
        value = names[element.id] if isinstance(element, ast.Name) else element
        fields.add(ast.literal_eval(value))
    return fields


def test_variable_sends_the_inline_endpoint_contract() -> None:
    """Every field the variable sends is one the endpoint reads, and it sends all of them
    (the stream once, as ``measurement_id``): the inline and pipeline paths then see the
    same event id, time, stream, consent, name and page of each event."""
    code = load(GTM_DIR / "resolve-identity-session-variable.tpl").code
    passed = re.search(r"const PASSED_TEXT_FIELDS = \[([^\]]*)\]", code)
    body = re.search(r"^function requestBody\(\) \{\n(.*?)^\}", code, re.MULTILINE | re.DOTALL)
    assert passed
    assert body
    sent = set(re.findall(r"'([^']+)'", passed.group(1)))
    sent |= set(re.findall(r"^ {4}(\w+):", body.group(1), re.MULTILINE))
    sent |= set(re.findall(r"\bbody\.(\w+) =", body.group(1)))
    endpoint = _inline_request_fields()
    assert sent <= endpoint, sent - endpoint
    assert endpoint - sent == {"x-ga-measurement_id"}


def test_sandboxed_code_passes_its_node_test_suite() -> None:
    """The code inside each .tpl runs green under node --test against the GTM stand-in."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run(
        [node, "--test", "gtm/tests/"],
        cwd=GTM_DIR.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

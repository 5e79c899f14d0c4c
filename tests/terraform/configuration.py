"""The Terraform configuration and the code's names, read statically for the structure tests.

python-hcl2 parses each ``.tf`` file: string literals come back bare, expressions as
``"${...}"`` text. Nothing here evaluates Terraform; the rules compare literals and the
text of references. The code side is read with ``ast`` (settings, entry points, Firestore
collections) and from the tables in ``docs/contracts.md``, never by running it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_ENV_READERS = frozenset(
    {
        "text",
        "optional",
        "integer",
        "number",
        "flag",
        "choice",
        "words",
        "json_object",
        "json_any",
        "digits",
    }
)


@dataclass(frozen=True)
class Configuration:
    """Every block of one Terraform module, merged across its files."""

    locals: dict[str, Any]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, dict[str, Any]]]
    data: dict[str, dict[str, dict[str, Any]]]
    settings: list[dict[str, Any]]
    modules: dict[str, dict[str, Any]]

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources.get(kind, {}).get(name, {})

    def all_resources(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (kind, name, body)
            for kind, named in self.resources.items()
            for name, body in named.items()
        ]


def load_configuration(directory: Path = TERRAFORM) -> Configuration:
    config = Configuration({}, {}, {}, {}, {}, [], {})
    for path in sorted(directory.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle, serialization_options=_OPTIONS)
        for block in parsed.get("locals", []):
            config.locals.update(block)
        for key, target in (
            ("variable", config.variables),
            ("output", config.outputs),
            ("module", config.modules),
        ):
            for block in parsed.get(key, []):
                target.update(block)
        for key, target in (("resource", config.resources), ("data", config.data)):
            for block in parsed.get(key, []):
                for kind, named in block.items():
                    target.setdefault(kind, {}).update(named)
        config.settings.extend(parsed.get("terraform", []))
    return config


def first(blocks: Any) -> dict[str, Any]:
    """The single instance of a nested block (python-hcl2 returns blocks as lists)."""
    if isinstance(blocks, list) and blocks:
        return blocks[0]
    return {}


def markdown_table(path: Path, header: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Rows of the table in ``path`` whose header row is ``header``, cells unquoted."""
    rows: list[tuple[str, ...]] = []
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            inside = False
            continue
        cells = tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        if cells == header:
            inside = True
        elif inside and not set("".join(cells)) <= set("-: "):
            rows.append(tuple(_unquote(cell) for cell in cells))
    return rows


def _unquote(cell: str) -> str:
    """A cell that is one code span, without its backticks; any other cell unchanged."""
    if len(cell) > 1 and cell[0] == cell[-1] == "`" and "`" not in cell[1:-1]:
        return cell[1:-1]
    return cell


@dataclass(frozen=True)
class SettingRead:
    """One ``env.<reader>(NAME, ...)`` call in ``Settings.from_env``."""

    reader: str
    arguments: tuple[Any, ...]
    keywords: dict[str, Any]


@dataclass(frozen=True)
class Code:
    topic_defaults: dict[str, str]
    required_variables: tuple[str, ...]
    settings_reads: dict[str, SettingRead]
    fallbacks: frozenset[str]
    entry_points: dict[str, str]
    collections: frozenset[str]
    published_topics: dict[str, frozenset[str]]
    """Entry point -> topic variables its service modules publish to."""
    secret_variables: frozenset[str]
    """Variables read into a settings field declared ``repr=False`` (a secret)."""


def load_code(repo: Path = REPO) -> Code:
    from shared.settings import REQUIRED_VARIABLES, TOPIC_DEFAULTS

    reads, fallbacks = settings_reads(repo / "shared" / "settings.py")
    return Code(
        topic_defaults=dict(TOPIC_DEFAULTS),
        required_variables=tuple(REQUIRED_VARIABLES),
        settings_reads=reads,
        fallbacks=fallbacks,
        entry_points=entry_points(repo / "functions" / "main.py"),
        collections=collections_used(repo / "shared"),
        published_topics=published_topics(repo),
        secret_variables=secret_variables(repo / "shared" / "settings.py"),
    )


def settings_reads(path: Path) -> tuple[dict[str, SettingRead], frozenset[str]]:
    """Variables read through ``env``, and those only read as a fallback (``a or b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reads: dict[str, SettingRead] = {}
    for node in ast.walk(tree):
        name = _env_variable(node)
        if name is not None and isinstance(node, ast.Call):
            reads[name] = SettingRead(
                reader=node.func.attr,  # type: ignore[attr-defined]
                arguments=tuple(constant(argument) for argument in node.args[1:]),
                keywords={kw.arg: constant(kw.value) for kw in node.keywords if kw.arg},
            )
    fallbacks = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or)
        for value in node.values[1:]
        if (name := _env_variable(value)) is not None
    }
    return reads, frozenset(fallbacks)


def secret_variables(path: Path) -> frozenset[str]:
    """Variables passed to a dataclass field declared ``field(..., repr=False)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = {
        node.target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(node.value, ast.Call)
        and any(
            keyword.arg == "repr" and constant(keyword.value) is False
            for keyword in node.value.keywords
        )
    }
    return frozenset(
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg in hidden
        for inner in ast.walk(node.value)
        if (name := _env_variable(inner)) is not None
    )


def _env_variable(node: ast.AST) -> str | None:
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "env"
        and node.func.attr in _ENV_READERS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return None
    return node.args[0].value


def constant(node: ast.AST) -> Any:
    """The value of a constant expression (``24 * 30``, ``frozenset({...})``), else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        node = node.args[0] if node.func.id == "frozenset" else node
    if isinstance(node, ast.Tuple | ast.Set | ast.List):
        return tuple(constant(element) for element in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        left, right = constant(node.left), constant(node.right)
        numbers = isinstance(left, int | float) and isinstance(right, int | float)
        return left * right if numbers else None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError):
        return None


def entry_points(path: Path) -> dict[str, str]:
    """Function name -> ``cloud_event`` or ``http``, for each functions-framework entry point."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Attribute)
                and isinstance(decorator.value, ast.Name)
                and decorator.value.id == "functions_framework"
            ):
                found[node.name] = decorator.attr
    return found


def published_topics(repo: Path) -> dict[str, frozenset[str]]:
    """Entry point -> the topic variables reachable from it through ``settings.topics``.

    Follows the calls statically: main.py's entry point calls a method on the runtime its
    factory builds through ``shared.bootstrap`` (whose function names the runtime class in
    its return annotation); from those methods, calls on ``self``/``cls``, on attributes
    typed in ``__init__`` (``self._resolver``) and on classes of the shared package are
    followed. A topic is used where a method reads ``.topics.<field>``, or reads an
    attribute that bootstrap filled from ``settings.topics.<field>`` (``self._config.
    enriched_topic``, ``self._dead_letter_topic``); each maps to its variable through the
    ``Topics(field=env.text("VARIABLE", ...))`` call in settings.py.
    """
    fields = _topic_fields(repo / "shared" / "settings.py")
    classes = _classes(repo / "shared")
    wiring = ast.parse((repo / "shared" / "bootstrap.py").read_text(encoding="utf-8"))
    builders = {node.name: node for node in wiring.body if isinstance(node, ast.FunctionDef)}
    injected = _injected_topics(wiring, classes)
    main = ast.parse((repo / "functions" / "main.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in main.body if isinstance(node, ast.FunctionDef)}
    found = {}
    for name in entry_points(repo / "functions" / "main.py"):
        starts = set()
        for call in _calls(functions[name]):
            receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
            if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name):
                for runtime in _built_runtimes(functions.get(receiver.func.id), builders):
                    if runtime in classes:
                        starts |= {(runtime, "__init__"), (runtime, call.func.attr)}  # type: ignore[union-attr]
        used = _reachable_topics(starts, classes, injected)
        found[name] = frozenset(fields[field] for field in used if field in fields)
    return found


def _built_runtimes(
    factory: ast.FunctionDef | None, builders: dict[str, ast.FunctionDef]
) -> set[str]:
    """The classes a main.py factory gets from ``bootstrap.<builder>(...)`` calls."""
    names = set()
    for call in _calls(factory or ast.Module()):
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            builder = builders.get(func.attr) if func.value.id == "bootstrap" else None
            if builder is not None and builder.returns is not None:
                names.add(ast.unparse(builder.returns).strip("'\""))
    return names


def _injected_topics(
    wiring: ast.Module, classes: dict[str, ast.ClassDef]
) -> dict[tuple[str, str], str]:
    """(class, keyword) -> topic field, for ``Class(keyword=settings.topics.<field>)`` calls."""
    injected = {}
    for call in _calls(wiring):
        if isinstance(call.func, ast.Name) and call.func.id in classes:
            for keyword in call.keywords:
                value = keyword.value
                topical = isinstance(value, ast.Attribute) and isinstance(
                    value.value, ast.Attribute
                )
                if keyword.arg and topical and value.value.attr == "topics":  # type: ignore[attr-defined]
                    injected[call.func.id, keyword.arg] = value.attr  # type: ignore[attr-defined]
    return injected


def _calls(node: ast.AST) -> list[ast.Call]:
    return [call for call in ast.walk(node) if isinstance(call, ast.Call)]


def _classes(package: Path) -> dict[str, ast.ClassDef]:
    return {
        node.name: node
        for path in package.rglob("*.py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ClassDef)
    }


def _method_of_class(call: ast.Call, classes: dict[str, ast.ClassDef]) -> tuple[str, str] | None:
    """``C(...)`` -> (C, __init__); ``C.m(...)`` -> (C, m), for classes of the package."""
    if isinstance(call.func, ast.Name) and call.func.id in classes:
        return call.func.id, "__init__"
    func = call.func
    named = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
    if named and func.value.id in classes:  # type: ignore[attr-defined]
        return func.value.id, func.attr  # type: ignore[attr-defined]
    return None


def _attribute_types(cls: ast.ClassDef) -> dict[str, str]:
    """``self.a = b`` in ``__init__``, where ``b: SomeClass`` -> {"a": "SomeClass"}."""
    init = next(
        (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
    )
    if init is None:
        return {}
    every = init.args.posonlyargs + init.args.args + init.args.kwonlyargs
    annotated = {arg.arg: ast.unparse(arg.annotation) for arg in every if arg.annotation}
    types = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and node.value.id in annotated:
                    types[target.attr] = annotated[node.value.id].split("|")[0].strip(" '\"")
    return types


def _reachable_topics(
    starts: set[tuple[str, str]],
    classes: dict[str, ast.ClassDef],
    injected: dict[tuple[str, str], str],
) -> set[str]:
    pending, seen, topics = list(starts), set(), set()
    while pending:
        owner, method = pending.pop()
        if (owner, method) in seen or owner not in classes:
            continue
        seen.add((owner, method))
        node = next(
            (n for n in classes[owner].body if isinstance(n, ast.FunctionDef) and n.name == method),
            None,
        )
        if node is None:
            continue
        types = _attribute_types(classes[owner])
        topics |= _topics_used(node) | _injected_used(node, owner, types, injected)
        for call in _calls(node):
            target = _method_of_class(call, classes)
            func = call.func
            if target is None and isinstance(func, ast.Attribute):
                receiver = func.value
                if isinstance(receiver, ast.Name) and receiver.id in {"self", "cls"}:
                    target = owner, func.attr
                elif isinstance(receiver, ast.Attribute) and receiver.attr in types:
                    target = types[receiver.attr], func.attr
            if target is not None:
                pending.append(target)
    return topics


def _topic_fields(settings: Path) -> dict[str, str]:
    for node in ast.walk(ast.parse(settings.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Topics"
        ):
            return {
                keyword.arg: name
                for keyword in node.keywords
                if keyword.arg and (name := _env_variable(keyword.value)) is not None
            }
    return {}


def _topics_used(node: ast.AST) -> set[str]:
    return {
        attribute.attr
        for attribute in ast.walk(node)
        if isinstance(attribute, ast.Attribute)
        and isinstance(attribute.value, ast.Attribute)
        and attribute.value.attr == "topics"
    }


def _injected_used(
    node: ast.AST, owner: str, types: dict[str, str], injected: dict[tuple[str, str], str]
) -> set[str]:
    """Topic fields read as ``self._<keyword>`` or ``self._<attribute>.<keyword>``."""
    used = set()
    for attribute in ast.walk(node):
        if not isinstance(attribute, ast.Attribute):
            continue
        value = attribute.value
        if isinstance(value, ast.Name) and value.id == "self":
            key = owner, attribute.attr.lstrip("_")
        elif isinstance(value, ast.Attribute) and value.attr in types:
            key = types[value.attr], attribute.attr
        else:
            continue
        if key in injected:
            used.add(injected[key])
    return used


def collections_used(package: Path) -> frozenset[str]:
    """Collection names passed to ``<...settings>.collection("name")`` in the package."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "collection"
                and "settings" in ast.unparse(node.func.value)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return frozenset(names)


def reference(expression: Any) -> str | None:
    """The address at the start of an expression: ``${a.b["k"].c}`` -> ``a.b["k"]``."""
    if not isinstance(expression, str):
        return None
    match = re.match(r"\$\{([a-z0-9_]+\.[a-z0-9_]+(?:\[[^\]]*\])?)", expression)
    return match.group(1) if match else None


CONTRACTS = REPO / "docs" / "contracts.md"


def contract_collections(path: Path = CONTRACTS) -> set[str]:
    """Firestore collections listed in docs/contracts.md."""
    return {row[0] for row in markdown_table(path, ("collection", "document id", "holds"))}


def contract_feeds(topic_defaults: dict[str, str], path: Path = CONTRACTS) -> dict[str, str]:
    """Entry point -> the topic variable whose topic pushes to it, per docs/contracts.md."""
    by_name = {name: variable for variable, name in topic_defaults.items()}
    feeds = {}
    for row in markdown_table(path, ("entry point (`main.py`)", "trigger", "what it does")):
        pushed = re.search(r"push from `([^`]+)`", row[1])
        if pushed:
            feeds[row[0]] = by_name.get(pushed.group(1), pushed.group(1))
    return feeds

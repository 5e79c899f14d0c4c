"""What the Terraform configuration must say, as checks that return the problems they find.

Each check takes a parsed ``Configuration`` (and the code's names) and returns a list of
human-readable problems, empty when the rule holds, so a test can run it on the real
configuration and on a deliberately broken copy alike.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from tests.terraform.configuration import (
    Code,
    Configuration,
    first,
    markdown_table,
    reference,
)

IAM_TABLE_HEADER = ("principal", "role", "resource", "condition", "why")

# The attribute that names the resource each kind of IAM grant is made on.
IAM_TARGETS = {
    "google_project_iam_member": None,
    "google_pubsub_topic_iam_member": "topic",
    "google_pubsub_subscription_iam_member": "subscription",
    "google_secret_manager_secret_iam_member": "secret_id",
    "google_cloud_run_service_iam_member": "service",
    "google_service_account_iam_member": "service_account_id",
    "google_bigquery_dataset_iam_member": "dataset_id",
    "google_artifact_registry_repository_iam_member": "repository",
    "google_storage_bucket_iam_member": "bucket",
}
FRAMEWORK_VARIABLES = frozenset({"THREADS", "WORKERS"})
"""What functions-framework itself reads (requests served at once), beside the settings."""
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})


def topic_problems(config: Configuration, code: Code) -> list[str]:
    """Topics carry the code's names and reach the functions through the code's variables."""
    topics = config.locals.get("topics", {})
    problems = [
        f"{variable}: the code uses {name!r}, Terraform creates {topics.get(variable)!r}"
        for variable, name in code.topic_defaults.items()
        if topics.get(variable) != name
    ]
    problems += [
        f"{variable}: Terraform creates a topic the code does not know"
        for variable in topics.keys() - code.topic_defaults.keys()
    ]
    pipeline = config.resource("google_pubsub_topic", "pipeline")
    if (pipeline.get("for_each"), pipeline.get("name")) != ("${local.topics}", "${each.value}"):
        problems.append("google_pubsub_topic.pipeline must create one topic per local.topics entry")
    environment = config.locals.get("settings_environment", {})
    for variable in code.topic_defaults:
        expected = f'${{google_pubsub_topic.pipeline["{variable}"].name}}'
        if environment.get(variable) != expected:
            problems.append(f"{variable} must be set to {expected}")
    return problems


def subscription_problems(config: Configuration, code: Code, feeds: dict[str, str]) -> list[str]:
    """Push subscriptions feed every pipeline function with ordering, OIDC and dead letters."""
    problems: list[str] = []
    push = config.locals.get("push_subscriptions", {})
    pipeline = config.locals.get("pipeline_functions", {})
    if set(push) != set(pipeline):
        problems.append(
            f"push subscriptions {sorted(push)} != pipeline functions {sorted(pipeline)}"
        )
    for function, topic in feeds.items():
        spec = push.get(function, {})
        if spec.get("topic") != topic:
            problems.append(f"{function} must be fed from {topic}, not {spec.get('topic')}")
        if spec.get("dead_letter") != f"{function.upper()}_DEAD_LETTER_TOPIC":
            problems.append(f"{function} must dead-letter to {function.upper()}_DEAD_LETTER_TOPIC")
    dead_letters = sorted(
        name for name in code.topic_defaults if name.endswith("_DEAD_LETTER_TOPIC")
    )
    if sorted(config.locals.get("dead_letter_topics", [])) != dead_letters:
        problems.append(f"local.dead_letter_topics must be {dead_letters}")
    for name, body in config.resources.get("google_pubsub_subscription", {}).items():
        problems += [f"subscription {name}: {problem}" for problem in _subscription(body)]
    attempts = " ".join(
        rule.get("condition", "")
        for rule in config.variables["max_delivery_attempts"]["validation"]
    )
    if ">= 5" not in attempts or "<= 100" not in attempts:
        problems.append("max_delivery_attempts must be validated to Pub/Sub's range 5..100")
    return problems


def _subscription(body: dict[str, Any]) -> list[str]:
    if "push_config" in body:
        return _push_subscription(body)
    if "bigquery_config" in body:
        bigquery = first(body["bigquery_config"])
        problems = _delivery_policies(body)
        if bigquery.get("write_metadata") is not True or bigquery.get("use_topic_schema"):
            problems.append("BigQuery export writes metadata columns without a topic schema")
        return problems
    source = f"{body.get('topic')} {body.get('for_each')}"
    return (
        [] if "dead_letter" in source else ["a pull subscription may only read a dead-letter topic"]
    )


def _push_subscription(body: dict[str, Any]) -> list[str]:
    problems = _delivery_policies(body)
    if body.get("enable_message_ordering") is not True:
        problems.append("enable_message_ordering must be true")
    push = first(body["push_config"])
    token = first(push.get("oidc_token"))
    if reference(token.get("service_account_email")) != "google_service_account.push":
        problems.append("push_config needs an oidc_token as google_service_account.push")
    if token.get("audience") != push.get("push_endpoint"):
        problems.append("the OIDC audience must be the push endpoint")
    return problems


def _delivery_policies(body: dict[str, Any]) -> list[str]:
    problems = []
    dead_letter = first(body.get("dead_letter_policy"))
    if not dead_letter.get("dead_letter_topic") or "max_delivery_attempts" not in dead_letter:
        problems.append("needs a dead_letter_policy with a topic and max_delivery_attempts")
    retry = first(body.get("retry_policy"))
    if "minimum_backoff" not in retry or "maximum_backoff" not in retry:
        problems.append("needs a retry_policy with minimum and maximum backoff")
    return problems


FUNCTION_GROUPS = ("pipeline_functions", "inline_functions")
"""The locals that list the deployed functions (``terraform/functions.tf``)."""


def function_specs(config: Configuration) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every deployed function as (group, key, spec), in the locals' order."""
    for group in FUNCTION_GROUPS:
        for key, spec in config.locals.get(group, {}).items():
            yield group, key, spec


def entry_point_problems(config: Configuration, code: Code) -> list[str]:
    """Every deployed entry point is an HTTP entry point of functions/main.py (the pipeline
    functions read their push requests themselves), and every one there is deployed."""
    problems = []
    deployed: set[str] = set()
    for group in FUNCTION_GROUPS:
        names = {spec.get("entry_point") for spec in config.locals.get(group, {}).values()}
        present = {name for name, found in code.entry_points.items() if found == "http"}
        problems += [f"{group}: {name} is not an http entry point" for name in names - present]
        deployed |= names
    problems += [
        f"http entry point {name} is not deployed"
        for name, found in code.entry_points.items()
        if found == "http" and name not in deployed
    ]
    problems += [
        f"{name} is a {found} entry point; the functions are deployed HTTP-only"
        for name, found in code.entry_points.items()
        if found != "http"
    ]
    function = config.resource("google_cloudfunctions2_function", "this")
    if first(function.get("build_config")).get("entry_point") != "${each.value.entry_point}":
        problems.append("google_cloudfunctions2_function.this must deploy each.value.entry_point")
    if function.get("for_each") != "${local.functions}":
        problems.append("google_cloudfunctions2_function.this must deploy local.functions")
    return problems


def environment_problems(config: Configuration, code: Code) -> list[str]:
    """Each variable the settings read is set, plainly or from Secret Manager, never both;
    one a function's ``runtime_environment`` sets (``THREADS``, which functions-framework
    reads too) counts as set."""
    environment = config.locals.get("settings_environment", {})
    secrets = config.locals.get("secrets", {})
    per_function = {
        name
        for _, _, spec in function_specs(config)
        if isinstance(spec.get("runtime_environment"), dict)
        for name in spec["runtime_environment"]
    }
    needed = set(code.settings_reads) - code.fallbacks
    problems = [
        f"{name} is read by the settings but never set"
        for name in needed - set(environment) - set(secrets) - per_function
    ]
    problems += [
        f"{name} is set but the settings never read it" for name in set(environment) - needed
    ]
    problems += [f"{name} is a secret the settings never read" for name in set(secrets) - needed]
    problems += [
        f"required {name} is not set" for name in set(code.required_variables) - set(environment)
    ]
    secret_like = set(code.secret_variables)
    problems += [f"{name} must come from Secret Manager" for name in secret_like - set(secrets)]
    problems += [f"{name} must not be a plain variable" for name in secret_like & set(environment)]
    mounted = {name for _, _, spec in function_specs(config) for name in spec.get("secrets", [])}
    problems += [f"secret {name} is mounted by no function" for name in set(secrets) - mounted]
    problems += [f"mounted secret {name} is not created" for name in mounted - set(secrets)]
    service = first(
        config.resource("google_cloudfunctions2_function", "this").get("service_config")
    )
    if service.get("environment_variables") != (
        "${merge(local.settings_environment, each.value.runtime_environment)}"
    ):
        problems.append(
            "the functions must take local.settings_environment (and their runtime_environment)"
        )
    for _, key, spec in function_specs(config):
        runtime = spec.get("runtime_environment")
        if not isinstance(runtime, dict):
            problems.append(f"{key} must have a runtime_environment map")
            continue
        problems += [
            f"{key}: {name} is not a functions-framework serving option"
            for name in set(runtime) - FRAMEWORK_VARIABLES
        ]
    mounts = first(service.get("dynamic", [{}])).get("secret_environment_variables", {})
    if first(mounts.get("content")).get("key") != "${secret_environment_variables.value}":
        problems.append("the functions must mount their secrets as environment variables")
    return problems


def setting_variables(config: Configuration) -> dict[str, str]:
    """Environment variable -> the one Terraform variable its value is made from."""
    found = {}
    for name, expression in config.locals.get("settings_environment", {}).items():
        variables = set(re.findall(r"\bvar\.(\w+)", str(expression)))
        if len(variables) == 1:
            found[name] = variables.pop()
    return found


def validation_problems(config: Configuration, code: Code) -> list[str]:
    """Each variable's default and validated range match what the settings accept."""
    problems = []
    for name, variable in setting_variables(config).items():
        read = code.settings_reads.get(name)
        if read is None:
            continue
        body = config.variables[variable]
        problems += [f"{name}: {problem}" for problem in _mirrors(body, read.reader, read)]
    return problems


def _mirrors(variable: dict[str, Any], reader: str, read: Any) -> list[str]:
    conditions = " ".join(rule.get("condition", "") for rule in variable.get("validation", []))
    default = variable.get("default")
    arguments = read.arguments
    if reader in {"integer", "number"}:
        expected_default, low, high = arguments
        problems = [
            f"validation must include {bound}"
            for bound in (f">= {_number(low)}", f"<= {_number(high)}")
            if not re.search(re.escape(bound) + r"(?![0-9.])", conditions)
        ]
        if default is None or float(default) != float(expected_default):
            problems.append(f"default {default} differs from the settings' {expected_default}")
        return problems
    if reader == "choice":
        expected_default, allowed = arguments
        quoted = {value.lower() for value in re.findall(r'"([^"]+)"', conditions)}
        problems = [
            f"validation must allow {value!r}" for value in allowed if value.lower() not in quoted
        ]
        if str(default).lower() != expected_default.lower():
            problems.append(f"default {default!r} differs from the settings' {expected_default!r}")
        return problems
    if reader == "flag":
        expected = read.keywords.get("default", arguments[0] if arguments else False)
        return (
            []
            if default is expected
            else [f"default {default} differs from the settings' {expected}"]
        )
    if reader in {"text", "words"} and arguments:
        expected = list(arguments[0]) if reader == "words" else arguments[0]
        return (
            []
            if default == expected
            else [f"default {default!r} differs from the settings' {expected!r}"]
        )
    return []


def _number(value: float) -> str:
    """A number as Terraform source writes it: 1000000, 0.1, 60."""
    return str(int(value)) if float(value).is_integer() else str(value)


def grants(config: Configuration) -> tuple[set[tuple[str, str, str, str]], list[str]]:
    """Every IAM grant as (principal, role, resource, condition), and what could not be read."""
    found: set[tuple[str, str, str, str]] = set()
    problems: list[str] = []
    for kind, name, body in config.all_resources():
        if "_iam_" not in kind:
            continue
        if kind not in IAM_TARGETS:
            problems.append(f"{kind}.{name}: only additive *_iam_member grants are allowed")
            continue
        attribute = IAM_TARGETS[kind]
        target = "project" if attribute is None else reference(body.get(attribute))
        condition = first(body.get("condition")).get("title", "-")
        found.add(
            (_principal(body), body.get("role", ""), str(target), _resolve(config, condition))
        )
        if body.get("role") in BASIC_ROLES or str(body.get("member")) in PUBLIC_MEMBERS:
            problems.append(f"{kind}.{name}: basic roles and public members are forbidden")
    return found, problems


def _principal(body: dict[str, Any]) -> str:
    member = str(body.get("member", ""))
    if "each.value" in member:
        member = str(body.get("for_each", ""))
    account = re.search(r"google_service_account\.(\w+)", member)
    if account:
        return account.group(1)
    named = re.search(r"\b(?:local|var)\.(\w+)", member)
    return named.group(1) if named else member


def _resolve(config: Configuration, value: str) -> str:
    match = re.fullmatch(r"\$\{local\.(\w+)\.(\w+)\}", value)
    if match:
        return str(config.locals.get(match.group(1), {}).get(match.group(2), value))
    return value


def iam_problems(config: Configuration, readme: Path) -> list[str]:
    """The IAM grants in the configuration are exactly the documented least-privilege table."""
    found, problems = grants(config)
    documented = {row[:4] for row in markdown_table(readme, IAM_TABLE_HEADER)}
    if not documented:
        problems.append(f"{readme}: no table with header {IAM_TABLE_HEADER}")
    problems += [f"granted but not documented: {grant}" for grant in sorted(found - documented)]
    problems += [f"documented but not granted: {grant}" for grant in sorted(documented - found)]
    return problems


def wiring_problems(config: Configuration) -> list[str]:
    """Each function can read the secrets it mounts, and the push identity can invoke it."""
    found, _ = grants(config)
    expected = set()
    for group, key, spec in function_specs(config):
        principal = _principal({"member": spec.get("service_account", "")})
        expected |= {
            (
                principal,
                "roles/secretmanager.secretAccessor",
                f'google_secret_manager_secret.this["{secret}"]',
            )
            for secret in spec.get("secrets", [])
        }
        if group == "pipeline_functions":
            expected.add(
                ("push", "roles/run.invoker", f'google_cloudfunctions2_function.this["{key}"]')
            )
    have = {grant[:3] for grant in found}
    return [f"missing grant {grant}" for grant in sorted(expected - have)]


def archive_problems(config: Configuration, repo: Path) -> list[str]:
    """The source archive holds main.py at its root, the shared package and requirements."""
    files = config.locals.get("archive_single_files", {})
    packages = config.locals.get("archive_packages", [])
    problems = [
        f"archive entry {name} -> {path} does not exist"
        for name, path in files.items()
        if not (repo / path).is_file()
    ]
    if files.get("main.py") != "functions/main.py" or "requirements.txt" not in files:
        problems.append("the archive needs functions/main.py as main.py and requirements.txt")
    if "shared" not in packages:
        problems.append("the archive must include the shared package")
    if "__pycache__" not in str(config.locals.get("archive_files")):
        problems.append("the archive must leave out __pycache__")
    archive = config.data.get("archive_file", {}).get("source", {})
    sources = first(archive.get("dynamic", [{}])).get("source", {})
    if sources.get("for_each") != "${local.archive_files}":
        problems.append("data.archive_file.source must zip local.archive_files")
    name = str(config.resource("google_storage_bucket_object", "source").get("name"))
    if not re.search(r"data\.archive_file\.source\.output_(md5|sha|sha256|base64sha256)\b", name):
        problems.append("the source object's name must carry the archive's hash")
    storage = first(
        first(
            first(
                config.resource("google_cloudfunctions2_function", "this").get("build_config")
            ).get("source")
        ).get("storage_source")
    )
    if storage.get("object") != "${google_storage_bucket_object.source.name}":
        problems.append("the functions must build from google_storage_bucket_object.source")
    listing = archive_listing(files, packages, repo)
    problems += [
        f"main.py imports {module}, which the archive lacks"
        for module in _missing_imports(listing, repo)
    ]
    return problems


def archive_listing(files: dict[str, str], packages: list[str], repo: Path) -> dict[str, Path]:
    """Archive path -> file, as source.tf builds it (fileset minus caches and hidden files)."""
    listing = {name: repo / path for name, path in files.items()}
    for package in packages:
        for path in sorted((repo / package).rglob("*")):
            relative = path.relative_to(repo / package)
            if (
                path.is_file()
                and "__pycache__" not in relative.parts
                and path.suffix != ".pyc"
                and not path.name.startswith(".")
            ):
                listing[f"{package}/{relative.as_posix()}"] = path
    return listing


def _missing_imports(listing: dict[str, Path], repo: Path) -> list[str]:
    """Modules of the repository's shared package that main.py imports (transitively) but
    the archive lacks. A module missing from the repository itself is the code's concern."""
    pending, seen, missing = ["main.py"], set(), []
    while pending:
        entry = pending.pop()
        if entry in seen or entry not in listing:
            continue
        seen.add(entry)
        for module in _local_imports(listing[entry]):
            candidates = [
                module.replace(".", "/") + ".py",
                module.replace(".", "/") + "/__init__.py",
            ]
            found = [candidate for candidate in candidates if candidate in listing]
            if found:
                pending.extend(found)
            elif any((repo / candidate).exists() for candidate in candidates):
                missing.append(module)
    return sorted(set(missing))


def _local_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return [module for module in modules if module.split(".")[0] == "shared"]


def firestore_problems(
    config: Configuration, code: Code, contract_collections: set[str]
) -> list[str]:
    """Every collection the code uses or docs/contracts.md lists has a TTL on expire_at."""
    collections = set(config.locals.get("state_collections", []))
    problems = [
        f"collection {name} is used by the code but has no TTL policy"
        for name in code.collections - collections
    ]
    problems += [
        f"collection {name} is in docs/contracts.md but has no TTL policy"
        for name in contract_collections - collections
    ]
    problems += [
        f"collection {name} has a TTL policy but no code uses it"
        for name in collections - code.collections - contract_collections
    ]
    ttl = config.resource("google_firestore_field", "expire_at")
    if ttl.get("field") != "expire_at" or "ttl_config" not in ttl:
        problems.append("google_firestore_field.expire_at must put a TTL on expire_at")
    if ttl.get("for_each") != "${toset(local.state_collections)}":
        problems.append("the TTL policy must cover every state collection")
    if "var.collection_prefix" not in str(ttl.get("collection")):
        problems.append("TTL collections must include COLLECTION_PREFIX")
    database = config.resource("google_firestore_database", "this")
    if database.get("type") != "FIRESTORE_NATIVE":
        problems.append("the Firestore database must be in native mode")
    return problems


def publisher_problems(config: Configuration, code: Code) -> list[str]:
    """Each function account may publish to exactly the topics its functions' code uses."""
    found, _ = grants(config)
    expected: dict[str, set[str]] = {}
    for _, _, spec in function_specs(config):
        principal = _principal({"member": spec.get("service_account", "")})
        topics = code.published_topics.get(spec.get("entry_point"), frozenset())
        expected.setdefault(principal, set()).update(
            f'google_pubsub_topic.pipeline["{topic}"]' for topic in topics
        )
    problems = []
    for principal, topics in expected.items():
        granted = {
            resource
            for who, role, resource, _ in found
            if who == principal and role == "roles/pubsub.publisher"
        }
        problems += [f"{principal} publishes to {t} without a grant" for t in topics - granted]
        problems += [
            f"{principal} may publish to {t}, which it never does" for t in granted - topics
        ]
    return problems


def monitoring_problems(config: Configuration, package: Path) -> list[str]:
    """The dead-letter metric selects the log fields the functions actually write."""
    metric = config.resource("google_logging_metric", "dead_lettered")
    problems = []
    if 'jsonPayload.event="dead_lettered"' not in str(metric.get("filter")):
        problems.append('the dead-letter metric must select jsonPayload.event="dead_lettered"')
    if metric.get("label_extractors", {}).get("reason") != "EXTRACT(jsonPayload.reason)":
        problems.append("the dead-letter metric must label events by jsonPayload.reason")
    if not _logs_dead_letters_with_reason(package):
        problems.append('no module of shared/ logs {"event": "dead_lettered", "reason": ...}')
    if (
        config.locals.get("monitored_services")
        != "${[for key, spec in local.functions : spec.name]}"
    ):
        problems.append("the metrics must cover every deployed function")
    return problems


def _logs_dead_letters_with_reason(package: Path) -> bool:
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                pairs = {
                    key.value: value
                    for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant)
                }
                event = pairs.get("event")
                dead_letter = isinstance(event, ast.Constant) and event.value == "dead_lettered"
                if dead_letter and "reason" in pairs:
                    return True
    return False


def exclusion_problems(config: Configuration) -> list[str]:
    """Log exclusions drop only Cloud Run's request entries of pushes the pipeline
    functions acknowledged (2xx), and only when asked: never a function's own lines, the
    entry of a refused, failed or timed-out request, nor an inline function's."""
    exclusions = config.resources.get("google_logging_project_exclusion", {})
    if not exclusions:
        return ["no google_logging_project_exclusion for the pipeline's request logs"]
    problems = []
    for name, body in exclusions.items():
        where = f"google_logging_project_exclusion.{name}"
        if "var.exclude_pipeline_request_logs" not in str(body.get("count")):
            problems.append(f"{where} must be created by var.exclude_pipeline_request_logs")
        text = str(body.get("filter", ""))
        named = re.fullmatch(r"\$\{local\.(\w+)\}", text)
        if named:
            text = str(config.locals.get(named.group(1), ""))
        required = (
            "cloud_run_revision",
            "/logs/run.googleapis.com%2Frequests",
            "local.pipeline_functions",
            "httpRequest.status>=200",
            "httpRequest.status<300",
        )
        problems += [f"{where}: the filter lacks {part}" for part in required if part not in text]
        if re.search(r"\blocal\.(functions|inline_functions)\b", text):
            problems.append(f"{where}: the filter must name the pipeline functions only")
    return problems

"""The Terraform configuration agrees with the code: names, settings, grants, archive.

Runs without providers or credentials: the configuration is parsed (python-hcl2), the code
is read with ``ast``. The drift tests at the end break a copy on purpose and check that
the rule notices, so a rule that silently passes everything cannot hide here.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.terraform import rules
from tests.terraform.configuration import (
    REPO,
    TERRAFORM,
    Code,
    Configuration,
    contract_collections,
    contract_feeds,
    first,
    load_code,
    load_configuration,
    markdown_table,
)

README = TERRAFORM / "README.md"
# Resources whose kind has no project argument.
PROJECTLESS = frozenset({"google_storage_bucket_object", "google_service_account_iam_member"})


@pytest.fixture(scope="module")
def config() -> Configuration:
    return load_configuration()


@pytest.fixture(scope="module")
def code() -> Code:
    return load_code()


def test_topics_exist_with_the_names_the_code_uses(config: Configuration, code: Code) -> None:
    """Every topic in shared.settings.TOPIC_DEFAULTS is created and passed to the functions."""
    assert rules.topic_problems(config, code) == []


def test_push_subscriptions_carry_ordering_oidc_retry_and_dead_letters(
    config: Configuration, code: Code
) -> None:
    """Each function is fed by its contract topic through an ordered, authenticated push."""
    feeds = contract_feeds(code.topic_defaults)
    assert feeds, "docs/contracts.md lists no push-triggered entry point"
    assert rules.subscription_problems(config, code, feeds) == []


def test_each_deployed_entry_point_exists_in_main(config: Configuration, code: Code) -> None:
    """Deployed entry points and functions/main.py's decorated functions are the same set."""
    assert rules.entry_point_problems(config, code) == []


def test_every_setting_the_code_reads_is_set_on_the_functions(
    config: Configuration, code: Code
) -> None:
    """Each variable Settings.from_env reads is an env var or a mounted secret, never both."""
    assert rules.environment_problems(config, code) == []


def test_each_pipeline_function_works_on_as_many_deliveries_as_it_is_sent(
    config: Configuration,
) -> None:
    """functions-framework's ``THREADS`` (default: 4 per CPU) follows each pipeline
    function's Cloud Run concurrency, or an instance is sent 80 deliveries at once and
    works on 4 of them while Cloud Run counts it busy."""
    functions = config.locals["pipeline_functions"]
    assert set(functions) == {"resolve", "forward"}
    for key, spec in functions.items():
        threads = spec["runtime_environment"].get("THREADS")
        assert threads == f"${{tostring(var.{key}_function.concurrency)}}", key


def test_variable_defaults_and_ranges_mirror_the_settings(
    config: Configuration, code: Code
) -> None:
    """Terraform refuses at plan time what the settings would refuse at start-up."""
    assert rules.validation_problems(config, code) == []


def test_iam_grants_match_the_least_privilege_table(config: Configuration) -> None:
    """Every *_iam_member grant is a row of README.md's table, and every row is granted."""
    assert rules.iam_problems(config, README) == []


def test_each_function_can_read_its_secrets_and_be_pushed_to(config: Configuration) -> None:
    """A mounted secret is readable by the function's account; push may invoke each function."""
    assert rules.wiring_problems(config) == []


def test_function_accounts_publish_to_exactly_the_topics_their_code_uses(
    config: Configuration, code: Code
) -> None:
    """Topic-level publisher grants follow the settings.topics each service module uses."""
    assert code.published_topics.get("resolve"), "found no topic the resolve service publishes to"
    assert rules.publisher_problems(config, code) == []


def test_dead_letter_metric_reads_the_fields_the_functions_log(config: Configuration) -> None:
    """The log-based metric selects event="dead_lettered" and labels it by reason."""
    assert rules.monitoring_problems(config, REPO / "shared") == []


def test_log_exclusions_drop_only_acknowledged_pipeline_request_entries(
    config: Configuration,
) -> None:
    """The request-log exclusion selects Cloud Run request entries of 2xx answers of resolve
    and forward alone, behind its variable."""
    assert rules.exclusion_problems(config) == []


def test_archive_holds_main_the_shared_package_and_requirements(config: Configuration) -> None:
    """The source zip has main.py at its root with every shared module it imports."""
    assert rules.archive_problems(config, REPO) == []


def test_state_collections_expire_on_expire_at(config: Configuration, code: Code) -> None:
    """Each Firestore collection the code writes has a TTL policy on expire_at."""
    assert rules.firestore_problems(config, code, contract_collections()) == []


def test_unindexed_fields_are_fields_the_state_store_writes(config: Configuration) -> None:
    """Index exemptions name top-level fields of the client document, so they take effect."""
    written = _client_document_fields(REPO / "shared" / "adapters" / "firestore" / "codec.py")
    assert written, "the codec's encode() no longer returns the client document as a dict"
    exempted = config.variables["firestore_unindexed_fields"]["default"]
    assert set(exempted.get("clients", [])) <= written


def test_every_variable_is_typed_described_and_validated(config: Configuration) -> None:
    """Variables have a type and a description; all but booleans have a validation."""
    untyped = [name for name, body in config.variables.items() if not body.get("type")]
    undescribed = [name for name, body in config.variables.items() if not body.get("description")]
    unvalidated = [
        name
        for name, body in config.variables.items()
        if body.get("type") != "bool" and not body.get("validation")
    ]
    assert (untyped, undescribed, unvalidated) == ([], [], [])


def test_every_variable_and_output_is_documented(config: Configuration) -> None:
    """README.md's variables table lists every variable; every output has a description."""
    documented = {
        row[0] for row in markdown_table(README, ("name", "type", "default", "description"))
    }
    assert documented == set(config.variables)
    assert [name for name, body in config.outputs.items() if not body.get("description")] == []


def test_every_resource_names_its_project(config: Configuration) -> None:
    """No resource falls back to the provider's default project."""
    missing = [
        f"{kind}.{name}"
        for kind, name, body in config.all_resources()
        if kind not in PROJECTLESS and body.get("project") != "${var.project_id}"
    ]
    assert missing == []


def test_services_stay_enabled_on_destroy(config: Configuration) -> None:
    """Destroying the pipeline never disables an API other workloads may use."""
    assert config.resource("google_project_service", "this").get("disable_on_destroy") is False


def test_terraform_and_provider_versions_are_pinned(config: Configuration) -> None:
    """required_version is >= 1.5 and every provider has a source and a version constraint."""
    settings = first(config.settings)
    providers = first(settings.get("required_providers"))
    assert settings.get("required_version") == ">= 1.5"
    assert {"google", "archive"} <= set(providers)
    assert all(spec.get("source") and spec.get("version") for spec in providers.values())


def test_minimal_example_sets_every_required_variable(config: Configuration) -> None:
    """examples/minimal passes each variable that has no default to the module."""
    example = load_configuration(TERRAFORM / "examples" / "minimal")
    required = {name for name, body in config.variables.items() if "default" not in body}
    module = example.modules["ga4_stitch"]
    assert module["source"] == "../.."
    assert required <= set(module)


def _client_document_fields(codec: Path) -> set[str] | None:
    for path in [codec]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "encode":
                returned = [
                    statement.value
                    for statement in ast.walk(node)
                    if isinstance(statement, ast.Return) and isinstance(statement.value, ast.Dict)
                ]
                return {
                    key.value
                    for value in returned
                    for key in value.keys
                    if isinstance(key, ast.Constant)
                }
    return None


# --- the rules notice drift ------------------------------------------------------------

DRIFTS = {
    "renamed topic": ("pubsub.tf", '"ga4-stitch-enriched-events"', '"ga4-stitch-enriched"'),
    "unordered subscription": ("pubsub.tf", "enable_message_ordering = true", ""),
    "push without OIDC": (
        "pubsub.tf",
        "service_account_email = google_service_account.push.email",
        "",
    ),
    "dead-letter policy removed": (
        "pubsub.tf",
        "max_delivery_attempts = var.max_delivery_attempts",
        "",
    ),
    "renamed entry point": (
        "functions.tf",
        'entry_point     = "forward"',
        'entry_point     = "fwd"',
    ),
    "setting left unset": (
        "settings.tf",
        "SESSION_TIMEOUT_MINUTES = tostring(var.session_timeout_minutes)",
        "",
    ),
    "secret set in plain text": (
        "settings.tf",
        "LOG_LEVEL            = var.log_level",
        "LOG_LEVEL = var.log_level\n    GA4_API_SECRET = var.log_level",
    ),
    "range narrower than settings": (
        "variables.tf",
        "var.session_timeout_minutes <= 475",
        "var.session_timeout_minutes <= 400",
    ),
    "broader role": (
        "iam.tf",
        'role    = "roles/pubsub.publisher"\n  member  = "serviceAccount:${var.gtm',
        'role    = "roles/pubsub.editor"\n  member  = "serviceAccount:${var.gtm',
    ),
    "unreadable secret": (
        "functions.tf",
        'secrets         = ["GA4_API_SECRET", "GA4_STREAM_SECRETS"]',
        'secrets         = ["GA4_API_SECRET", "GA4_STREAM_SECRETS", "PII_HASH_SECRET"]',
    ),
    "shared package left out": (
        "source.tf",
        'archive_packages = ["shared"]',
        "archive_packages = []",
    ),
    "collection without TTL": ("firestore.tf", '"forwarded", ', ""),
    "publisher grant on a topic never published to": (
        "iam.tf",
        '"forward_publishes_dead_letter" {\n  project = var.project_id\n'
        '  topic   = google_pubsub_topic.pipeline["FORWARD_DEAD_LETTER_TOPIC"]',
        '"forward_publishes_dead_letter" {\n  project = var.project_id\n'
        '  topic   = google_pubsub_topic.pipeline["ENRICHED_TOPIC"]',
    ),
    "dead-letter metric on another field": (
        "monitoring.tf",
        'jsonPayload.event=\\"dead_lettered\\"',
        'jsonPayload.kind=\\"dead_lettered\\"',
    ),
    "request logs excluded for every function": (
        "logging.tf",
        "local.pipeline_functions : ",
        "local.functions : ",
    ),
    "failed requests' entries excluded too": ("logging.tf", '    "httpRequest.status<300",\n', ""),
}


def _subscriptions(config: Configuration, code: Code) -> list[str]:
    return rules.subscription_problems(config, code, contract_feeds(code.topic_defaults))


CHECKS = {
    "renamed topic": rules.topic_problems,
    "unordered subscription": _subscriptions,
    "push without OIDC": _subscriptions,
    "dead-letter policy removed": _subscriptions,
    "renamed entry point": rules.entry_point_problems,
    "setting left unset": rules.environment_problems,
    "secret set in plain text": rules.environment_problems,
    "range narrower than settings": rules.validation_problems,
    "broader role": lambda config, _: rules.iam_problems(config, README),
    "unreadable secret": lambda config, _: rules.wiring_problems(config),
    "shared package left out": lambda config, _: rules.archive_problems(config, REPO),
    "collection without TTL": lambda config, code: rules.firestore_problems(
        config, code, contract_collections()
    ),
    "publisher grant on a topic never published to": rules.publisher_problems,
    "dead-letter metric on another field": lambda config, _: rules.monitoring_problems(
        config, REPO / "shared"
    ),
    "request logs excluded for every function": lambda config, _: rules.exclusion_problems(config),
    "failed requests' entries excluded too": lambda config, _: rules.exclusion_problems(config),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_rules_report_a_drifted_copy(
    drift: str, tmp_path: Path, config: Configuration, code: Code
) -> None:
    """Each rule passes on the real configuration and fails on a copy broken on purpose."""
    filename, before, after = DRIFTS[drift]
    copy = tmp_path / "terraform"
    shutil.copytree(
        TERRAFORM, copy, ignore=shutil.ignore_patterns(".build", ".terraform", "examples")
    )
    text = (copy / filename).read_text(encoding="utf-8")
    assert text.count(before) == 1, f"{drift}: {before!r} should occur once in {filename}"
    (copy / filename).write_text(text.replace(before, after), encoding="utf-8")
    assert CHECKS[drift](config, code) == []
    assert CHECKS[drift](load_configuration(copy), code) != []


def test_a_topic_renamed_in_the_code_is_reported(config: Configuration, code: Code) -> None:
    """Renaming a topic default in shared/settings.py alone breaks the topic rule."""
    renamed = {**code.topic_defaults, "RAW_EVENTS_TOPIC": "ga4-stitch-raw"}
    problems = rules.topic_problems(config, replace(code, topic_defaults=renamed))
    assert any(re.search("RAW_EVENTS_TOPIC", problem) for problem in problems)


def test_a_setting_added_to_the_code_is_reported(config: Configuration, code: Code) -> None:
    """A new variable read by the settings fails the environment rule until Terraform sets it."""
    added = {**code.settings_reads, "NEW_SETTING": code.settings_reads["LOG_LEVEL"]}
    problems = rules.environment_problems(config, replace(code, settings_reads=added))
    assert problems == ["NEW_SETTING is read by the settings but never set"]


def test_a_secret_added_to_the_code_must_come_from_secret_manager(
    config: Configuration, code: Code
) -> None:
    """A new repr=False setting fails the environment rule until it is a mounted secret."""
    added = {**code.settings_reads, "NEW_KEY": code.settings_reads["GA4_API_SECRET"]}
    secret = replace(
        code, settings_reads=added, secret_variables=code.secret_variables | {"NEW_KEY"}
    )
    problems = rules.environment_problems(config, secret)
    assert "NEW_KEY must come from Secret Manager" in problems


def _logged_events() -> set[str]:
    """Every event name the functions' code logs: ``"event": "<name>"`` fields, and the
    first argument of the forward service's ``_log("<name>", ...)``."""
    found = set()
    for path in (REPO / "shared").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'"event": "([a-z0-9_]+)"', text))
        found |= set(re.findall(r'_log\(\s*"([a-z0-9_]+)"', text))
    return found


def test_the_dashboard_charts_events_the_functions_log(config: Configuration) -> None:
    """A chart filtering on an event name nobody logs would stay flat forever."""
    chosen = r'metric\.label\.event=(?:one_of\(([^)]*)\)|"([^"]+)")'
    named = {
        name.strip().strip('"')
        for chart in config.locals["dashboard_charts"]
        for names in re.findall(chosen, chart[1])
        for name in ",".join(names).split(",")
        if name.strip()
    }
    assert named, "the dashboard charts no event"
    assert named <= _logged_events()

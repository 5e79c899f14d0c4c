"""Which subscriptions the local pipeline creates: the deployment's, plus the export's
stand-ins only when the export is on."""

from __future__ import annotations

from pathlib import Path

from ga4_stitch.pipeline import EXPORT_ROLES, LocalPipeline, PipelineOptions


def test_the_export_stand_ins_are_kept_by_default(tmp_path: Path) -> None:
    """``replay`` drains them into ``SENT.export/`` for the warehouse."""
    pipeline = LocalPipeline(PipelineOptions(work_dir=tmp_path))
    assert set(EXPORT_ROLES) <= set(pipeline.subscriptions)


def test_without_the_export_only_the_deployments_subscriptions_remain(tmp_path: Path) -> None:
    """As Terraform deploys by default: the push and dead-letter subscriptions only."""
    pipeline = LocalPipeline(PipelineOptions(work_dir=tmp_path, export=False))
    assert not set(EXPORT_ROLES) & set(pipeline.subscriptions)
    assert {"resolve", "forward", "resolve_dead_letter", "forward_dead_letter"} <= set(
        pipeline.subscriptions
    )

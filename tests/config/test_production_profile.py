"""The cloud profile reads bars from S3, and production refuses synthetic bars in one line."""

from pathlib import Path

import boto3
import pytest
from pydantic import ValidationError

from configs import ConfigError, Settings, load_config
from configs.data import DataConfig
from pipelines.data.checks import check_bars
from pipelines.data.sources import load_source

GOOD = Path(__file__).resolve().parents[1] / "data" / "good" / "DEMO.csv"


def test_cloud_profile_is_production_on_s3() -> None:
    cfg = load_config("cloud", environ={})
    assert (cfg.profile, cfg.environment, cfg.data.source) == ("cloud", "production", "s3")
    assert cfg.mlflow.experiment == "edgeflow-cloud"


def test_cloud_profile_reads_its_bars_from_s3(s3_endpoint: str, s3_bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.put_object(Bucket=s3_bucket, Key="bars/DEMO.csv", Body=GOOD.read_bytes())
    env = {
        "EDGEFLOW_DATA__S3_URI": f"s3://{s3_bucket}/bars/",
        "EDGEFLOW_DATA__S3_ENDPOINT_URL": s3_endpoint,
    }
    cfg = load_config("cloud", environ=env)
    reader = boto3.client("s3", endpoint_url=cfg.data.s3_endpoint_url, region_name="us-east-1")
    raws = load_source(cfg.data, cfg.seed, s3_client=reader)
    assert [r.origin for r in raws] == [f"s3://{s3_bucket}/bars/DEMO.csv"]
    report = check_bars(raws, cfg.data.checks).report
    assert {s.symbol: s.rows for s in report.symbols} == {"DEMO": 2000}


@pytest.mark.parametrize(
    ("profile", "environ"),
    [
        ("configs/default.yaml", {"EDGEFLOW_ENVIRONMENT": "production"}),
        ("configs/demo.yaml", {"EDGEFLOW_ENVIRONMENT": "production"}),
        ("cloud", {"EDGEFLOW_DATA__SOURCE": "synthetic"}),
    ],
)
def test_production_refuses_synthetic_bars(profile: str, environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(profile, environ=environ)
    problems = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert problems == [
        "  - data: Value error, environment 'production' refuses data.source 'synthetic'; "
        "set data.source to s3 or files (configs/cloud.yaml reads bars from S3)"
    ]


def test_the_refusal_holds_for_settings_built_in_code_and_dev_keeps_synthetic() -> None:
    with pytest.raises(ValidationError, match=r"refuses data\.source 'synthetic'"):
        Settings(environment="production")
    assert Settings(environment="dev").data.source == "synthetic"
    assert (
        Settings(environment="production", data=DataConfig(source="files")).data.source == "files"
    )
